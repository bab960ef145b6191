"""Text -> colour, learned from the sentence embedding: the app's colour teacher.

:class:`ColourHead` is a linear classifier from a prompt's sentence embedding (D,) to the
named colours of the procedural set (``captions.COLOURS``); its colour is the
probability-weighted mean of their RGB values. It is fitted (:func:`fit_colour_head`) on
captions written with the *training* vocabulary only, so a held-out synonym ("crimson",
"navy") gets a colour only as far as the text encoder places it near the training words:
no keyword table is consulted. The folder it is saved in is ``colour/`` (diffusers config +
safetensors) inside a normal-model checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from polydiff.runtime import UserError

FOLDER = "colour"      # sub-folder of a normal-model checkpoint
INPUT_SCALE = 10.0     # unit embeddings -> logits of a useful range at init


class ColourHead(ModelMixin, ConfigMixin):
    """Unit text embeddings (B, D) -> colour logits (B, K) over the named ``palette``."""

    @register_to_config
    def __init__(self, text_dim: int = 384, names: tuple[str, ...] = (),
                 palette: tuple[tuple[float, float, float], ...] = ()):
        super().__init__()
        if not names or len(names) != len(palette):
            raise ValueError("ColourHead needs one RGB triple per colour name")
        self.linear = nn.Linear(text_dim, len(names))
        self.register_buffer("table", torch.tensor(palette, dtype=torch.float32),
                             persistent=False)

    def forward(self, text: Tensor) -> Tensor:
        return self.linear(text * INPUT_SCALE)

    @torch.no_grad()
    def probabilities(self, text: Tensor) -> Tensor:
        """(B, K) probabilities of the named colours."""
        return self(text.to(self.linear.weight)).softmax(-1)

    def rgb(self, text: Tensor) -> Tensor:
        """(B, 3) in [0, 1]: the probability-weighted palette colour (no graph)."""
        return self.probabilities(text) @ self.table.to(self.linear.weight)

    def name(self, text: Tensor) -> list[str]:
        """The most probable colour name of each embedding."""
        return [self.config.names[i] for i in self.probabilities(text).argmax(-1).tolist()]


def fit_colour_head(encoder, *, captions: int = 3000, steps: int = 400, lr: float = 1e-2,
                    weight_decay: float = 1e-3, seed: int = 0,
                    progress: bool = False) -> ColourHead:
    """Fit a :class:`ColourHead` on ``captions`` random training-vocabulary captions
    (full-batch Adam, cross-entropy); the same seed gives the same head."""
    from tqdm.auto import tqdm

    from polydiff.apps.contract import seeded
    from polydiff.apps.mesh.captions import COLOURS, caption, random_spec

    names = tuple(COLOURS)
    rng = np.random.default_rng(seed)
    specs = [random_spec(rng) for _ in range(captions)]
    text = encoder([caption(s, rng, "train") for s in specs])              # (N, D)
    label = torch.tensor([names.index(s.colour) for s in specs])
    head = seeded(seed, lambda: ColourHead(encoder.dim, names,
                                           tuple(COLOURS[n][0] for n in names)))
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in tqdm(range(steps), desc="colour head", disable=not progress):
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(head(text), label)
        loss.backward()
        opt.step()
    return head.eval().requires_grad_(False)


def save_colour_head(head: ColourHead, folder: str | os.PathLike) -> Path:
    """Write ``folder/colour/`` (config + safetensors); returns that folder."""
    out = Path(folder) / FOLDER
    head.save_pretrained(out, safe_serialization=True)
    return out


def load_colour_head(folder: str | os.PathLike) -> ColourHead | None:
    """The head in ``folder/colour/``; None when the folder has none."""
    sub = Path(folder) / FOLDER
    if not any(sub.glob("*.safetensors")):
        return None
    try:
        head = ColourHead.from_pretrained(sub, use_safetensors=True, low_cpu_mem_usage=False)
    except (OSError, ValueError, RuntimeError, TypeError) as err:
        raise UserError(f"cannot load the colour head {sub}: {str(err).splitlines()[0]}") \
            from err
    return head.eval().requires_grad_(False)
