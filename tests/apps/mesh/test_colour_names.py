"""Colour words grounded in the XKCD colour survey: every anchor caption reads as its own
colour, unseen names as the training colour nearest them in CIELAB, and snapping keeps to
the colour a prompt names."""

from __future__ import annotations

import numpy as np

from polydiff.apps.mesh.captions import COLOURS
from polydiff.apps.mesh.colour_names import (
    NamedColour,
    find_colour,
    prompt_colour,
    survey_colours,
    without_phrase,
)
from polydiff.apps.mesh.snapping import anchor_captions, anchor_specs


def test_every_anchor_caption_reads_as_its_own_colour() -> None:
    captions, specs = anchor_captions(), anchor_specs()
    assert len(captions) == len(specs)
    assert [prompt_colour(c) for c in captions] == [s.colour for s in specs]


def test_training_words_come_first_and_shape_words_are_no_colour() -> None:
    assert prompt_colour("an azure cube") == "blue"           # the survey's azure is whiter
    assert prompt_colour("a brown chair") == "brown"
    assert prompt_colour("a coffee mug") is None              # "coffee" is a survey colour
    assert prompt_colour("a cup with a handle") is None
    assert prompt_colour("a lime green box") == "green"       # training word over survey
    assert prompt_colour("A Crimson teacup!") == "red"
    assert prompt_colour("my lantern is sapphire") == "blue"
    assert prompt_colour("a pumpkin coloured cone") == "orange"


def test_the_words_that_name_the_colour_come_out_whole() -> None:
    found = find_colour("An object: a Cherry-Red beer stein")
    assert found == NamedColour("red", "cherry red", True)
    assert without_phrase("An object: a Cherry-Red beer stein", found.phrase) == \
        "An object: a beer stein"
    assert find_colour("a tall red mug") == NamedColour("red", "red", False)
    assert without_phrase("my bagel is coffee coloured", "coffee") == "my bagel is coloured"
    assert without_phrase("a redder red", "red") == "a redder"   # whole words only
    assert find_colour("a cube") is None


def test_survey_names_read_as_the_nearest_training_colour_in_cielab() -> None:
    from matplotlib.colors import XKCD_COLORS, to_rgb
    from skimage.color import deltaE_cie76, rgb2lab

    table = survey_colours()
    assert len(table) == len(XKCD_COLORS) == 949
    names = list(COLOURS)
    palette = rgb2lab(np.array([COLOURS[n][0] for n in names])[None])[0]
    rng = np.random.default_rng(0)
    keys = list(XKCD_COLORS)
    for key in rng.choice(keys, 40, replace=False):        # an independent distance routine
        lab = rgb2lab(np.array(to_rgb(XKCD_COLORS[key]))[None, None])[0, 0]
        nearest = names[int(np.argmin(deltaE_cie76(palette, lab[None])))]
        assert table[key.removeprefix("xkcd:")] == nearest, key
