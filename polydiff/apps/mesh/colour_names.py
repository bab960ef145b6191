"""Colour words the sentence encoder cannot place, grounded in a colour-name survey.

The bundled sentence encoder (all-MiniLM-L6-v2) places unseen colour words poorly:
"crimson", "sapphire" or "lime" do not land nearest their colours, and vocabulary snapping
read the prompted colour for only 16 of the benchmark's 44 held-out prompts. So a colour
name outside the training vocabulary is looked up in the XKCD colour survey's 949 names
(``matplotlib.colors.XKCD_COLORS``: the names over 200 000 people gave to RGB colours) and
read as the training colour nearest to it in CIELAB (CIE76 distance).

* Training colour words come first: they are what the models learnt ("azure" is blue here,
  though the survey's azure is nearer white).
* Text inside a training shape word is no colour ("coffee" in "coffee mug").
* The lexicon and the distance were chosen on the 22 training colour words (each read as
  its own colour, 22 of 22), not on the held-out words the benchmark prompts with.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

import numpy as np

from polydiff.apps.mesh.captions import COLOURS, SHAPE_WORDS


def _normalise(text: str) -> str:
    """Lower case, words separated by single spaces, padded by one space each side."""
    return " " + " ".join(re.sub(r"[^a-z/]+", " ", text.lower()).split()) + " "


@functools.lru_cache(maxsize=1)
def survey_colours() -> dict[str, str]:
    """Every survey colour name (normalised, e.g. "cherry red") -> the training colour it is
    nearest in CIELAB."""
    from matplotlib.colors import XKCD_COLORS, to_rgb
    from skimage.color import rgb2lab

    names = list(COLOURS)
    palette = rgb2lab(np.array([COLOURS[n][0] for n in names])[None])[0]     # (C, 3)
    survey = {_normalise(k.removeprefix("xkcd:")).strip(): to_rgb(v)
              for k, v in XKCD_COLORS.items()}
    lab = rgb2lab(np.array(list(survey.values()))[None])[0]                 # (S, 3)
    nearest = ((lab[:, None] - palette[None]) ** 2).sum(-1).argmin(1)
    return {word: names[i] for word, i in zip(survey, nearest.tolist())}


@functools.lru_cache(maxsize=1)
def _training_colours() -> dict[str, str]:
    return {_normalise(w).strip(): name for name, (_, words) in COLOURS.items()
            for w in words.train}


class NamedColour(NamedTuple):
    """A colour a prompt names: the training colour (a key of ``captions.COLOURS``), the
    prompt's words for it (normalised) and whether they are a survey name rather than a
    training colour word ("cherry red" is one, around the training word "red")."""

    colour: str
    phrase: str
    surveyed: bool


def _longest(text: str, table: dict[str, str]) -> tuple[str, str] | None:
    """(phrase, colour) of the longest ``table`` phrase in the normalised ``text``."""
    found = [p for p in table if f" {p} " in text]
    if not found:
        return None
    phrase = max(found, key=len)
    return phrase, table[phrase]


def find_colour(prompt: str) -> NamedColour | None:
    """The colour ``prompt`` names, or None: a training colour word's if there is one (its
    phrase the longer survey name around it, if any), else the longest survey name's
    nearest training colour."""
    text = _normalise(prompt)
    for words in SHAPE_WORDS.values():           # shape words are not colour words
        for word in sorted(words.train, key=len, reverse=True):
            text = text.replace(_normalise(word), " | ")
    train, survey = _longest(text, _training_colours()), _longest(text, survey_colours())
    if train is not None:
        around = survey is not None and len(survey[0]) > len(train[0]) and \
            f" {train[0]} " in f" {survey[0]} "
        return NamedColour(train[1], survey[0], True) if around else \
            NamedColour(train[1], train[0], False)
    return NamedColour(survey[1], survey[0], True) if survey is not None else None


def prompt_colour(prompt: str) -> str | None:
    """The training colour ``prompt`` names (:func:`find_colour`), or None."""
    found = find_colour(prompt)
    return found.colour if found else None


def without_phrase(prompt: str, phrase: str) -> str:
    """``prompt`` with the words of ``phrase`` (normalised, as :class:`NamedColour` gives
    it) taken out, whatever their case and the punctuation between them."""
    words = r"[^a-z/]+".join(map(re.escape, phrase.split()))
    out = re.sub(rf"(?<![a-z]){words}(?![a-z])", " ", prompt, flags=re.IGNORECASE)
    return " ".join(out.split())
