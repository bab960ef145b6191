"""Vocabulary snapping: a prompt is read as the nearest caption of the training vocabulary.

The mesh models are trained on procedural captions ("a tall red mug", with synonyms and
sentence frames). A prompt in other words ("a crimson beer stein") lands where the small
generator has never been trained, and its shape follows the prompt weakly. The sentence
encoder does place such a prompt near the right training caption (on the benchmark's 44
held-out prompts the nearest anchor names the prompted shape 33 times). So the prompt is
replaced by the nearest of the *anchor captions* — every training shape word x colour
word x plain/tall/short, "a {size}{colour} {shape}" — by cosine similarity of the
embeddings, and the model is conditioned on that caption's own embedding, which lies
where it was trained. ``--no-snap`` conditions on the prompt as written.

The encoder places unseen colour words poorly, so where the prompt names a colour
(:func:`polydiff.apps.mesh.colour_names.find_colour`: a training colour word, or a
colour-survey name read as its nearest training colour) only the anchors of that colour
compete, and the encoder picks the shape and proportion among them from the prompt without
a survey name, which otherwise pulls the embedding off the shape. On 300 fresh held-out
prompts (not the benchmark's 44; ``benchmarks/mesh_generate``, "heldout_fresh300") the
snapped shape is right 270 times this way and 238 by the encoder alone; while designing it,
replacing the name by its training colour word gave 258 and leaving it in 246.

The anchors' embeddings for the bundled encoder ship in ``polydiff/weights/mesh/prompts``
(int8, only used to find the nearest caption); for another encoder they are computed once
per process.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import torch
from torch import Tensor

from polydiff.apps.mesh.captions import COLOURS, SHAPE_WORDS, Spec, article
from polydiff.apps.mesh.colour_names import find_colour, without_phrase
from polydiff.runtime import UserError

ANCHOR_FILE = "anchors.safetensors"
SIZE_OF_ASPECT = {None: "", "tall": "tall ", "squat": "short "}   # proportion -> size word


@functools.lru_cache(maxsize=1)
def _anchors() -> tuple[tuple[str, Spec], ...]:
    """Every training shape word x colour word x size as ("a {size}{colour} {shape}", what
    it says), with the article the training captions use ("an orange mug")."""
    return tuple((f"{article(size + colour)} {size}{colour} {shape}", Spec(kind, name, aspect))
                 for kind, shapes in SHAPE_WORDS.items() for shape in shapes.train
                 for name, (_, colours) in COLOURS.items() for colour in colours.train
                 for aspect, size in SIZE_OF_ASPECT.items())


def anchor_captions() -> list[str]:
    """Every training shape word x colour word x size as "a {size}{colour} {shape}"."""
    return [text for text, _ in _anchors()]


def anchor_specs() -> list[Spec]:
    """What each of :func:`anchor_captions` says: shape kind, colour name, proportion."""
    return [spec for _, spec in _anchors()]


def spec_anchor_captions(spec: Spec) -> list[str]:
    """The anchor captions that say what ``spec`` says: every training word of its shape x
    every training word of its colour, at its proportion."""
    return [text for text, said in _anchors() if said == spec]


def bundled_anchor_folder() -> Path:
    from polydiff.apps.contract import bundled_folder

    return bundled_folder("mesh", "prompts")


def save_anchors(folder: str | Path, encoder) -> Path:
    """Write the anchors' embeddings by ``encoder`` (int8 with one scale) to ``folder``."""
    from safetensors.torch import save_file

    from polydiff.runtime import atomic_output

    captions = anchor_captions()
    emb = encoder(captions, batch_size=256).float()
    scale = float(emb.abs().max()) / 127.0
    path = Path(folder) / ANCHOR_FILE
    with atomic_output(path) as tmp:  # renamed onto path only once complete
        save_file({"embeddings": torch.round(emb / scale).to(torch.int8),
                   "scale": torch.tensor([scale])}, str(tmp),
                  metadata={"encoder": str(getattr(encoder, "name", "")),
                            "captions": json.dumps(captions)})
    return path


def _read_anchors(path: Path, encoder) -> Tensor | None:
    """The stored anchor embeddings (N, dim) when they were made by this encoder with the
    current vocabulary; None otherwise (or when the file is absent)."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if (meta.get("encoder") != str(getattr(encoder, "name", "")) or
                json.loads(meta.get("captions", "[]")) != anchor_captions()):
            return None
        emb = f.get_tensor("embeddings").float() * f.get_tensor("scale").float()
    return emb if emb.shape[1] == encoder.dim else None


class SnappedEncoder:
    """An encoder (prompts -> (N, dim) embeddings) that reads each prompt as its nearest
    anchor caption and returns that caption's embedding.

    Args:
        encoder: the text encoder the models were trained with (``TextEncoder``).
        folder: where ``anchors.safetensors`` lies (default: the bundled one); used when it
            was made by this encoder, else the anchors are embedded here.
        colour_names: restrict each prompt to the anchors of the colour it names (see the
            module docstring); False: the encoder alone decides.
    """

    def __init__(self, encoder, folder: str | Path | None = None, *,
                 colour_names: bool = True) -> None:
        self.encoder = encoder
        self.name = getattr(encoder, "name", "")
        self.colour_names = colour_names
        self.captions = anchor_captions()
        colours = [spec.colour for spec in anchor_specs()]
        self._of_colour = {name: torch.tensor([c == name for c in colours]) for name in COLOURS}
        path = Path(folder or bundled_anchor_folder()) / ANCHOR_FILE
        emb = _read_anchors(path, encoder)
        if emb is None:
            who = self.name or "the text encoder"
            print(f"embedding {len(self.captions)} anchor captions with {who} (a few seconds)",
                  file=sys.stderr)
            emb = encoder(self.captions, batch_size=256).float()
        self.anchors = torch.nn.functional.normalize(emb, dim=-1)

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def read_as(self, prompts: str | list[str]) -> list[str]:
        """The anchor caption each prompt is read as."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        named = [find_colour(p) if self.colour_names else None for p in prompts]
        texts = [(without_phrase(p, c.phrase) or p) if c is not None and c.surveyed else p
                 for p, c in zip(prompts, named)]
        query = torch.nn.functional.normalize(self.encoder(texts).float(), dim=-1)
        sim = query @ self.anchors.T
        for row, colour in enumerate(named):
            if colour is not None:
                sim[row, ~self._of_colour[colour.colour]] = float("-inf")
        return [self.captions[i] for i in sim.argmax(1).tolist()]

    def __call__(self, prompts: str | list[str], batch_size: int = 64) -> Tensor:
        """(N, dim) embeddings of the anchor captions the prompts are read as."""
        return self.encoder(self.read_as(prompts), batch_size=batch_size)


def main(argv: list[str] | None = None) -> int:
    """Write the bundled encoder's anchors: ``python -m polydiff.apps.mesh.snapping [-o DIR]``."""
    import argparse

    from polydiff.apps.mesh.text_encoder import TextEncoder

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="folder (default: the bundled polydiff/weights/mesh/prompts)")
    args = parser.parse_args(argv)
    try:
        path = save_anchors(args.output or bundled_anchor_folder(), TextEncoder(device="cpu"))
    except (UserError, OSError) as err:  # one line, as polydiff's commands give it
        print(f"mesh snapping: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({len(anchor_captions())} anchor captions)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
