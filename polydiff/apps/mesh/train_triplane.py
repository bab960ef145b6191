"""Training of the triplane generator by Progressive Rendering Distillation (no 3-D data).

    python -m polydiff.apps.mesh.train_triplane --config configs/mesh/triplane_tiny_v5.yaml

runs as is under ``torchrun --nproc_per_node=K``: every process draws its own share of the
global batch of prompts (seeded by step and rank) and gradients are averaged over processes
before each update. Prompts come from the caption vocabulary (training split); the only
supervision is the frozen teachers' denoising of the student's renders
(:mod:`polydiff.apps.mesh.distill`). With ``anchor.steps`` > 0 the first steps are the
teacher-anchored warm-up (:mod:`polydiff.apps.mesh.anchor`: the teacher's own fused meshes,
an auto-decoder fit, the UNet as denoiser of the fitted latents), which is what makes the
tiny student's shape follow its prompt; PRD continues from there.

With ``network.pretrained_unet`` (a diffusers UNet folder, e.g. Stable Diffusion 2.1's
``unet/``) the base stays frozen and LoRA adapters (peft) on the attention projections are
trained, with the plane embedding, the text projection and the plane decoder, as in
TriplaneTurbo; the exported UNet has the adapters merged, so it loads as a plain UNet.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from polydiff.apps.contract import copy_weights
from polydiff.apps.mesh.anchor import AnchorConfig
from polydiff.apps.mesh.distill import (
    DistillConfig,
    NormalTeacher,
    PromptColourTeacher,
    Teacher,
    TextColourTeacher,
    prd_loss,
)
from polydiff.apps.mesh.triplane_model import (
    APP,
    KIND,
    TriplaneConfig,
    TriplaneModel,
    build_triplane_model,
    save_triplane,
)
from polydiff.diffusion import TrainConfig, count_parameters, distributed, load_config
from polydiff.runtime import UserError


@dataclass
class GeneratorNetConfig:
    """The plane UNet: a new small one, or a pretrained one adapted with LoRA."""

    channels: tuple[int, ...] = (32, 64)
    attention_levels: int = 2
    layers_per_block: int = 1
    heads: int = 4
    norm_groups: int = 8
    prediction_type: str = "v_prediction"
    beta_schedule: str = "squaredcos_cap_v2"
    beta_start: float = 0.0001        # Stable Diffusion: 0.00085 (scaled_linear)
    beta_end: float = 0.02            # Stable Diffusion: 0.012
    pretrained_unet: str | None = None  # diffusers UNet folder: frozen base + LoRA
    lora_rank: int = 16
    lora_alpha: float = 16.0


@dataclass
class DecoderConfig:
    """PlaneDecoder settings (the SDF/RGB MLPs are 64 wide with 2 hidden layers)."""

    features: int = 16
    hidden: int = 32
    upsample: int = 1
    mlp_hidden: int = 64
    mlp_layers: int = 2
    aggregate: str = "sum"
    sphere_radius: float = 0.3
    bound: float = 0.5                # half side of the cube the planes span
    sdf_init_scale: float = 0.05      # SDF head's last layer at init (TriplaneField)


@dataclass
class TriplaneTrainConfig:
    """A whole PRD run, as written in ``configs/mesh/triplane_<name>.yaml``."""

    model: TriplaneConfig = field(default_factory=TriplaneConfig)
    network: GeneratorNetConfig = field(default_factory=GeneratorNetConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    anchor: AnchorConfig = field(default_factory=AnchorConfig)  # warm-up on teacher meshes
    teacher: str | None = None        # normal-model folder; None: the bundled one
    colour_teacher: str = "text"      # "text" (learned from the embedding), "prompt"
                                      # (keyword fallback) or "none"
    init_from: str | None = None      # triplane folder to start from ("bundled")
    init_decoder: bool = True         # False: copy only the UNet; the decoder starts fresh
    text_encoder: str | None = None   # folder; None: the bundled all-MiniLM-L6-v2
    decoder_lr: float = 3e-3          # the plane decoder learns faster than the UNet
    train: TrainConfig = field(default_factory=TrainConfig)
    threads: int = 0


CONFIG_CLASS = TriplaneTrainConfig  # what ``polydiff mesh train`` builds from the YAML


def add_lora(unet: nn.Module, rank: int, alpha: float) -> list[nn.Parameter]:
    """Freeze ``unet`` and add LoRA adapters (peft) on its attention projections; the new
    plane embedding and text projection stay trainable. Returns the trainable parameters."""
    try:
        from peft import LoraConfig
    except ImportError as err:
        raise UserError("LoRA training needs peft: pip install 'polydiff[lora]'") from err

    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian",
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    for name in ("class_embedding", "encoder_hid_proj"):
        module = getattr(unet, name, None)
        if module is not None:
            module.requires_grad_(True)
    return [p for p in unet.parameters() if p.requires_grad]


def merge_lora(unet: nn.Module) -> nn.Module:
    """Fold the LoRA adapters into the base weights and remove them (a plain UNet again)."""
    unet.fuse_lora(lora_scale=1.0)
    unet.unload_lora()
    return unet


def training_prompts(seed: int, step: int, rank: int, count: int) -> list[str]:
    """``count`` captions for one process at one step (training vocabulary only)."""
    from polydiff.apps.mesh.captions import caption, random_spec

    rng = np.random.default_rng([seed, step, rank])
    return [caption(random_spec(rng), rng, "train") for _ in range(count)]


def make_teachers(cfg: TriplaneTrainConfig, device: torch.device) -> list[Teacher]:
    """The normal teacher (frozen) and, unless switched off, a colour teacher."""
    from polydiff.apps.mesh.normals import load_normal_model

    normal = load_normal_model(cfg.teacher, device)
    teachers: list[Teacher] = [NormalTeacher(normal, cfg.distill.guidance_scale)]
    size, views = normal.config.size, normal.config.views
    if cfg.colour_teacher == "text":
        teachers.append(TextColourTeacher(colour_head(cfg), size, views))
    elif cfg.colour_teacher == "prompt":
        teachers.append(PromptColourTeacher(size, views))
    elif cfg.colour_teacher != "none":
        raise UserError(f"colour_teacher must be 'text', 'prompt' or 'none', got "
                        f"{cfg.colour_teacher!r}")
    return teachers


def colour_head(cfg: TriplaneTrainConfig):
    """The normal teacher's colour head (``colour/`` in its folder), else one fitted now on
    training captions with the run's text encoder and seed."""
    from polydiff.apps.contract import bundled_folder
    from polydiff.apps.mesh.colour import fit_colour_head, load_colour_head
    from polydiff.apps.mesh.text_encoder import TextEncoder

    folder = cfg.teacher if cfg.teacher is not None else bundled_folder(APP, "normals")
    head = load_colour_head(folder)
    if head is None:
        head = fit_colour_head(TextEncoder(cfg.text_encoder), seed=cfg.train.seed)
    return head


def warm_start(model: TriplaneModel, folder: str, decoder: bool = True) -> None:
    """Copy the UNet and (``decoder``) the decoder weights of the triplane checkpoint
    ``folder`` ("bundled": the bundled one) into ``model`` (in place); the networks must
    have the same shapes."""
    from polydiff.apps.mesh.triplane_model import load_triplane_model

    old = load_triplane_model(None if folder == "bundled" else folder)
    for name in ("unet", "decoder") if decoder else ("unet",):
        copy_weights(getattr(model, name), getattr(old, name).state_dict(),
                     f"init_from {folder} ({name})")


def prepare_anchor(cfg: TriplaneTrainConfig, teachers: list[Teacher], encoder,
                   state_dir: Path, group, progress: bool):
    """The warm-up's teacher meshes (:mod:`polydiff.apps.mesh.anchor`): read from
    ``state_dir`` when a previous run of this config built them, else built now (on the
    main process, then shared through the file)."""
    from polydiff.apps.mesh.anchor import (
        SET_FILE,
        anchor_specs,
        build_anchor_set,
        load_anchor_set,
        paraphrase_prompts,
        save_anchor_set,
    )

    normal = next((t for t in teachers if isinstance(t, NormalTeacher)), None)
    if normal is None:
        raise UserError("anchor.steps > 0 needs the multi-view normal teacher (its meshes "
                        "are the warm-up's targets)")
    head = next((t.head for t in teachers if isinstance(t, TextColourTeacher)), None)
    path = state_dir / SET_FILE
    if group.is_main and not path.is_file():
        a = cfg.anchor
        gen = torch.Generator().manual_seed(cfg.train.seed * 7919 + 17)
        specs = anchor_specs(cfg.train.seed, a.prompts)
        alt = paraphrase_prompts([s for _, s in specs], a.paraphrases, cfg.train.seed) \
            if a.paraphrases > 0 else None
        anchor = build_anchor_set(normal.model, head or colour_head(cfg), encoder,
                                  [text for text, _ in specs], cfg.decoder.bound, a, gen,
                                  paraphrases=alt, groups=[(s.shape, s.aspect) for _, s in specs]
                                  if a.shared_geometry else None, progress=progress)
        state_dir.mkdir(parents=True, exist_ok=True)
        save_anchor_set(path, anchor)
    distributed.barrier(group)
    return load_anchor_set(path)


def build_model(cfg: TriplaneTrainConfig, text_dim: int, text_name: str) -> TriplaneModel:
    model_cfg = dataclasses.replace(cfg.model, text_dim=text_dim, text_encoder=text_name)
    n = cfg.network
    return build_triplane_model(
        model_cfg, channels=tuple(n.channels), attention_levels=n.attention_levels,
        layers_per_block=n.layers_per_block, heads=n.heads, norm_groups=n.norm_groups,
        decoder=dataclasses.asdict(cfg.decoder), prediction_type=n.prediction_type,
        beta_schedule=n.beta_schedule, seed=cfg.train.seed, pretrained=n.pretrained_unet,
        scheduler_kwargs={"beta_start": n.beta_start, "beta_end": n.beta_end})


def prepare_latents(cfg: TriplaneTrainConfig, model: TriplaneModel, anchor, state_dir: Path,
                    group, progress: bool):
    """Stage 1 of the warm-up: the auto-decoder's latents of the teacher meshes, fitted with
    the decoder (in place) on the main process, or read back with that decoder."""
    from polydiff.apps.mesh.anchor import LATENT_FILE, fit_latents, load_latents, save_latents
    from polydiff.apps.mesh.triplane_model import latent_shape

    path = state_dir / LATENT_FILE
    if group.is_main and not path.is_file():
        gen = torch.Generator().manual_seed(cfg.train.seed * 7919 + 29)
        z = fit_latents(model.decoder, anchor, latent_shape(model.config, 1)[1:], cfg.anchor,
                        gen, decoder_lr=cfg.decoder_lr,
                        eikonal_weight=cfg.distill.eikonal_weight, progress=progress)
        save_latents(path, z, model.decoder)
    distributed.barrier(group)
    return load_latents(path, model.decoder)


def _anchor_step(model: TriplaneModel, anchor, latents, cfg: TriplaneTrainConfig,
                 gen: torch.Generator, world: int):
    """One warm-up loss on this process's share of ``anchor.batch_size`` objects: the UNet
    as the denoiser of the fitted latents (stage 2) when there are latents, else the
    end-to-end regression of the 4-step sample's fields."""
    from polydiff.apps.mesh.anchor import anchor_batch, anchor_loss, latent_loss

    a, d = cfg.anchor, cfg.distill
    if latents is not None:
        idx = torch.randperm(len(latents), generator=gen)[: max(1, a.batch_size // world)]
        device = next(model.unet.parameters()).device
        return latent_loss(model, latents[idx].to(device),
                           anchor.condition(idx, gen).to(device), gen)
    seeds = max(1, a.seeds_per_prompt)
    prompts = max(1, a.batch_size // seeds // world)
    idx = anchor_batch(anchor, prompts, seeds, gen)
    margin = d.bound_margin * 2 * cfg.decoder.bound / (d.mesh_resolution - 1)
    return anchor_loss(model, anchor, idx, a, gen, eikonal_weight=d.eikonal_weight,
                       bound_weight=d.bound_weight, bound_margin=margin)


def _average_gradients(params: list[nn.Parameter], world: int) -> None:
    if world > 1:
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            torch.distributed.all_reduce(p.grad)
            p.grad /= world


def run_training(config: str | os.PathLike | dict | TriplaneTrainConfig, *,
                 out_dir: str | None = None, steps: int | None = None,
                 progress: bool = True, teachers: list[Teacher] | None = None) -> Path:
    """Distill the generator from its teachers and export the checkpoint folder (returned).

    ``teachers`` replaces the configured ones (e.g. a user's MVDream-class model).
    """
    from diffusers.training_utils import EMAModel

    from polydiff.apps.contract import checkpoint_meta
    from polydiff.apps.mesh.text_encoder import TextEncoder
    from polydiff.diffusion.checkpoint import CONFIG_NAME
    from polydiff.diffusion.training import config_record, load_state, lr_lambda, save_state
    from polydiff.runtime import atomic_directory

    cfg = config if isinstance(config, TriplaneTrainConfig) else \
        load_config(config, TriplaneTrainConfig)
    tc = cfg.train
    if out_dir is not None:
        tc.out_dir = str(out_dir)
    if steps is not None:
        tc.steps = steps
    if tc.time_budget_s > 0:
        raise UserError("--time-budget (train.time_budget_s): the PRD loop takes a step "
                        "count (--train-steps)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    group = distributed.setup(tc.device)
    if tc.batch_size % group.world_size:
        raise UserError(f"batch_size {tc.batch_size} is not divisible by "
                        f"{group.world_size} processes")
    per_rank = tc.batch_size // group.world_size
    encoder = TextEncoder(cfg.text_encoder)
    teachers = teachers if teachers is not None else make_teachers(cfg, group.device)
    model = build_model(cfg, encoder.dim, encoder.name)
    if cfg.init_from:
        warm_start(model, cfg.init_from, cfg.init_decoder)
    state_dir = Path(tc.state_dir) if tc.state_dir else Path(tc.out_dir) / "train_state"
    a = cfg.anchor
    anchor = prepare_anchor(cfg, teachers, encoder, state_dir, group, progress) \
        if a.steps > 0 else None
    latents = prepare_latents(cfg, model, anchor, state_dir, group, progress) \
        if anchor is not None and a.fit_steps > 0 else None
    unet, decoder = model.unet.to(group.device).train(), model.decoder.to(group.device).train()
    lora = cfg.network.pretrained_unet is not None
    unet_params = add_lora(unet, cfg.network.lora_rank, cfg.network.lora_alpha) if lora \
        else list(unet.parameters())
    params = unet_params + list(decoder.parameters())
    opt = torch.optim.AdamW([{"params": unet_params, "lr": tc.lr},
                             {"params": list(decoder.parameters()), "lr": cfg.decoder_lr}],
                            weight_decay=tc.weight_decay)
    ema = EMAModel(params, decay=tc.ema_decay) if tc.ema_decay > 0 else None
    both = nn.ModuleDict({"unet": unet, "decoder": decoder})
    start, losses = 0, []
    if tc.resume and (state_dir / "state.json").is_file():
        start, losses = load_state(state_dir, both, opt, ema)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(tc), last_epoch=start - 1) \
        if start else torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(tc))
    if progress and group.is_main:
        print(f"mesh triplane: {count_parameters(unet) / 1e6:.2f} M UNet + "
              f"{count_parameters(decoder) / 1e6:.3f} M decoder parameters, "
              f"{sum(p.numel() for p in params) / 1e6:.2f} M trained; teachers "
              f"{', '.join(t.name for t in teachers)}", flush=True)
    bar = tqdm(range(start, tc.steps), desc="PRD", initial=start, total=tc.steps,
               disable=not (progress and group.is_main))
    recent: list[dict[str, float]] = []
    for step in bar:
        gen = torch.Generator().manual_seed(tc.seed * 1_000_003 + step * 1009 + group.rank)
        if step < a.steps:                    # warm-up on the teachers' meshes
            out = _anchor_step(model, anchor, latents, cfg, gen, group.world_size)
        else:
            if a.freeze_decoder and anchor is not None:
                decoder.requires_grad_(False)
            prompts = training_prompts(tc.seed, step, group.rank, per_rank)
            text = encoder(prompts).to(group.device)
            out = prd_loss(model, teachers, text, prompts, cfg.distill, gen,
                           progress=(step - a.steps) / max(1, tc.steps - a.steps - 1))
            if anchor is not None and a.weight_after > 0:
                extra = _anchor_step(model, anchor, latents, cfg, gen, group.world_size)
                out = out._replace(total=out.total + a.weight_after * extra.total,
                                   parts={**out.parts, **{k: v for k, v in extra.parts.items()
                                                          if k in ("anchor_sdf", "latent")}})
        if not math.isfinite(float(out.total.detach())):
            raise FloatingPointError(f"PRD loss became {float(out.total.detach())} at step {step}")
        opt.zero_grad(set_to_none=True)
        out.total.backward()
        _average_gradients(params, group.world_size)
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
        opt.step()
        sched.step()
        if ema is not None:
            ema.step(params)
        losses.append(float(out.total.detach()))
        recent = (recent + [out.parts])[-max(tc.log_every, 1):]
        bar.set_postfix({k[:8]: f"{np.mean([r[k] for r in recent if k in r]):.4f}"
                        for k in out.parts})
        done = step + 1 == tc.steps
        if group.is_main and (done or (tc.checkpoint_every and
                                       (step + 1) % tc.checkpoint_every == 0)):
            save_state(state_dir, both, opt, ema, step + 1, losses)
    if ema is not None:
        ema.copy_to(params)
    if lora:
        merge_lora(unet)
    if group.is_main:
        record = dataclasses.asdict(model.config)
        record["teacher"] = ", ".join(t.name for t in teachers)
        meta = checkpoint_meta(APP, record, kind=KIND)
        meta["train"] = config_record(tc)
        meta["distill"] = dataclasses.asdict(cfg.distill)
        meta["anchor"] = dataclasses.asdict(cfg.anchor)
        meta["init_from"] = cfg.init_from
        meta["init_decoder"] = cfg.init_decoder
        with atomic_directory(tc.out_dir, replace={"unet", "decoder", "scheduler",
                                                   CONFIG_NAME}) as tmp:
            save_triplane(tmp, model._replace(unet=unet.eval(), decoder=decoder.eval()), meta)
    distributed.barrier(group)
    distributed.teardown(group)
    return Path(tc.out_dir)


def main(argv: list[str] | None = None) -> int:
    """``python -m polydiff.apps.mesh.train_triplane --config ...``: the same as ``polydiff mesh
    train`` (the config picks the model), with its one-line errors."""
    import sys

    from polydiff.cli import main as polydiff

    return polydiff(["mesh", "train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
