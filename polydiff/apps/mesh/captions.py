"""Captions of the procedural shapes, with paraphrases and synonyms.

A caption names a shape kind, a colour and optionally a proportion ("tall", "squat"). Every
word has training synonyms and *held-out* synonyms (unseen words such as "teacup", or new
phrases such as "cherry red"), and the sentence templates have a training set and a held-out
set: the held-out entries and templates never appear in training captions, so prompts made
from them measure how far the text encoder carries the model beyond its training captions
(issue 12's generalisation benchmark).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from polydiff.geometry.shapes import SHAPE_KINDS


class Words(NamedTuple):
    """Training synonyms and held-out synonyms of one concept."""

    train: tuple[str, ...]
    heldout: tuple[str, ...]


SHAPE_WORDS: dict[str, Words] = {
    "mug": Words(("mug", "coffee mug", "cup with a handle"), ("teacup", "beer stein")),
    "table": Words(("table", "dining table", "desk"), ("worktable", "kitchen table")),
    "chair": Words(("chair", "dining chair", "seat with a backrest"), ("armchair",
                                                                       "side chair")),
    "lamp": Words(("lamp", "table lamp", "desk lamp"), ("lantern", "reading light")),
    "snowman": Words(("snowman", "snow man", "snow figure"), ("frosty", "snow sculpture")),
    "rocket": Words(("rocket", "spaceship", "space rocket"), ("spacecraft", "missile")),
    "box": Words(("box", "cube", "crate"), ("cuboid", "carton")),
    "ball": Words(("ball", "sphere", "orb"), ("globe", "marble")),
    "cylinder": Words(("cylinder", "column", "can"), ("pillar", "tin can")),
    "cone": Words(("cone", "traffic cone", "conical solid"), ("spike", "pointed cone")),
    "torus": Words(("torus", "donut", "ring"), ("doughnut", "bagel")),
}

# name -> (RGB in [0, 1], synonyms)
COLOURS: dict[str, tuple[tuple[float, float, float], Words]] = {
    "red": ((0.8, 0.1, 0.1), Words(("red", "scarlet"), ("crimson", "cherry red"))),
    "orange": ((0.95, 0.5, 0.1), Words(("orange", "tangerine"), ("pumpkin", "apricot"))),
    "yellow": ((0.95, 0.85, 0.15), Words(("yellow", "golden"), ("lemon", "canary yellow"))),
    "green": ((0.15, 0.65, 0.2), Words(("green", "emerald"), ("lime", "jade"))),
    "blue": ((0.15, 0.3, 0.85), Words(("blue", "azure"), ("navy", "sapphire"))),
    "purple": ((0.55, 0.2, 0.7), Words(("purple", "violet"), ("lilac", "lavender"))),
    "pink": ((0.95, 0.5, 0.7), Words(("pink", "rose"), ("fuchsia", "salmon"))),
    "white": ((0.92, 0.92, 0.92), Words(("white", "snow white"), ("ivory", "pearl white"))),
    "black": ((0.1, 0.1, 0.1), Words(("black", "jet black"), ("ebony", "onyx"))),
    "brown": ((0.45, 0.28, 0.12), Words(("brown", "chocolate"), ("coffee coloured",
                                                                 "chestnut"))),
    "grey": ((0.5, 0.5, 0.5), Words(("grey", "gray"), ("slate", "silver"))),
}

# proportion -> (stretch range along z, synonyms); None (no word) is the middle range.
ASPECTS: dict[str, tuple[tuple[float, float], Words]] = {
    "tall": ((1.35, 1.7), Words(("tall", "high", "long"), ("towering", "lanky"))),
    "squat": ((0.55, 0.75), Words(("short", "squat", "flat"), ("stubby", "low"))),
}
PLAIN_ASPECT = (0.85, 1.15)

TEMPLATES = Words(
    ("{a} {size}{colour} {shape}", "{size}{colour} {shape}",
     "{a} 3d model of {a} {size}{colour} {shape}", "{a} {size}{shape} that is {colour}",
     "{a} {size}{shape} in {colour}", "{a} {size}{shape}, coloured {colour}"),
    ("there is {a} {size}{colour} {shape}", "{a} render of {a} {size}{shape} painted {colour}",
     "an object: {a} {size}{colour} {shape}", "my {size}{shape} is {colour}"),
)


@dataclass(frozen=True)
class Spec:
    """What a caption says: shape kind, colour name and proportion (None: plain)."""

    shape: str
    colour: str
    aspect: str | None = None

    @property
    def rgb(self) -> tuple[float, float, float]:
        return COLOURS[self.colour][0]

    def aspect_range(self) -> tuple[float, float]:
        return ASPECTS[self.aspect][0] if self.aspect else PLAIN_ASPECT


def article(word: str) -> str:
    """The indefinite article before ``word`` ("an" before a vowel)."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


def caption(spec: Spec, rng: np.random.Generator, split: str = "train") -> str:
    """One random caption of ``spec`` from the ``split`` ("train" or "heldout") vocabulary."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")

    def pick(words: Words) -> str:
        return _pick(rng, getattr(words, split))

    shape = pick(SHAPE_WORDS[spec.shape])
    colour = pick(COLOURS[spec.colour][1])
    size = pick(ASPECTS[spec.aspect][1]) + " " if spec.aspect else ""
    text = pick(TEMPLATES).format(a="\0", size=size, colour=colour, shape=shape)
    text = re.sub(r"\s+", " ", text).strip()
    # each article agrees with the word after it
    return re.sub("\0 (\\w)", lambda m: article(m.group(1)) + " " + m.group(1), text)


def random_spec(rng: np.random.Generator, p_aspect: float = 0.4) -> Spec:
    """A uniformly random shape and colour; a proportion word with probability ``p_aspect``."""
    shape = SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]
    colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    aspect = list(ASPECTS)[int(rng.integers(len(ASPECTS)))] if rng.random() < p_aspect else None
    return Spec(shape, colour, aspect)


def heldout_prompts(rng: np.random.Generator, n: int) -> list[tuple[str, Spec]]:
    """``n`` prompts written only with held-out synonyms and templates, with their specs."""
    out = []
    for _ in range(n):
        spec = random_spec(rng)
        out.append((caption(spec, rng, "heldout"), spec))
    return out


def vocabulary(split: str) -> set[str]:
    """Every shape, colour and proportion word of ``split`` ("train" or "heldout")."""
    groups = [w for w in SHAPE_WORDS.values()] + [w for _, w in COLOURS.values()] + \
        [w for _, w in ASPECTS.values()]
    return {word for w in groups for word in getattr(w, split)}
