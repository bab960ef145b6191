"""Captions: training and held-out vocabularies never meet; prompts name what they mean."""

import numpy as np
import pytest

from polydiff.apps.mesh.captions import (
    ASPECTS,
    COLOURS,
    SHAPE_WORDS,
    TEMPLATES,
    Spec,
    caption,
    heldout_prompts,
    random_spec,
    vocabulary,
)
from polydiff.geometry.shapes import SHAPE_KINDS


def test_every_shape_kind_has_words_and_the_splits_are_disjoint():
    assert set(SHAPE_WORDS) == set(SHAPE_KINDS)
    assert not vocabulary("train") & vocabulary("heldout")
    # every held-out template is a new sentence frame
    rng = np.random.default_rng(0)
    train = {caption(random_spec(rng), rng) for _ in range(2000)}
    held = {caption(random_spec(rng), rng, "heldout") for _ in range(500)}
    assert not train & held
    assert not set(TEMPLATES.train) & set(TEMPLATES.heldout)


def _words_in(text, words):
    text = f" {text} "
    return {w for w in words if f" {w} " in text.replace(",", " ")}


def test_captions_use_only_their_split_and_name_the_spec():
    rng = np.random.default_rng(0)
    for _ in range(300):
        spec = random_spec(rng)
        for split in ("train", "heldout"):
            text = caption(spec, rng, split)
            shape_words = getattr(SHAPE_WORDS[spec.shape], split)
            assert any(f" {w}" in f" {text}" for w in shape_words), text
            assert _words_in(text, getattr(COLOURS[spec.colour][1], split)), text
            if split == "train":  # no held-out entry (a phrase) in a training caption
                assert not _words_in(text, vocabulary("heldout")), text
            if spec.aspect:
                assert any(f" {w} " in f" {text} "
                           for w in getattr(ASPECTS[spec.aspect][1], split)), text
            assert " a a" not in f" {text}" and " a e" not in text and " a o" not in text


def test_articles_agree_and_same_seed_same_captions():
    text = caption(Spec("box", "orange"), np.random.default_rng(1))
    assert "a orange" not in text
    a = [caption(random_spec(r := np.random.default_rng(3)), r) for _ in range(5)]
    b = [caption(random_spec(r := np.random.default_rng(3)), r) for _ in range(5)]
    assert a == b
    prompts = heldout_prompts(np.random.default_rng(0), 20)
    assert len(prompts) == 20 and all(isinstance(s, Spec) for _, s in prompts)


def test_colours_have_rgb_and_bad_split():
    assert all(len(rgb) == 3 for rgb, _ in COLOURS.values())
    with pytest.raises(ValueError, match="split"):
        caption(Spec("box", "red"), np.random.default_rng(0), "test")
