"""Training: the denoising loss, EMA, clipping, mixed precision, resumable checkpoints, DDP.

Randomness is tied to the *global* batch: at step s the indices, noise and timesteps of all
``batch_size`` items are drawn from a generator seeded with (seed, s), and process r of W
takes items r, r+W, … . So one process with batch 2b and two processes with b each make the
same update, and a run resumed at step k continues exactly as if it had never stopped.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import torch
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from polydiff.diffusion import distributed
from polydiff.diffusion.checkpoint import CONFIG_NAME, save_checkpoint
from polydiff.diffusion.networks import Denoiser
from polydiff.diffusion.predictions import training_target
from polydiff.runtime import atomic_directory

BUDGET_PROBE = (10, 60)  # steps timed (after warm-up) before a time budget fixes the count
Batch = dict[str, Tensor]
LossFn = Callable[[nn.Module, Batch, Tensor, Tensor], Tensor]


@dataclass
class TrainConfig:
    """Optimisation settings; ``batch_size`` is global (split over torchrun processes)."""

    steps: int = 1000
    batch_size: int = 32
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lr_schedule: str = "constant"    # "constant" or "cosine" (decay to 0 after warm-up)
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0
    micro_batch: int = 0             # items per forward/backward (0: the whole batch at once)
    mixed_precision: str = "no"      # "no" or "bf16" (CUDA only)
    checkpoint_every: int = 0        # 0: only at the end
    log_every: int = 50
    out_dir: str = "runs/model"
    state_dir: str | None = None     # resumable state; default <out_dir>/train_state
    device: str = "auto"
    resume: bool = True
    time_budget_s: float = 0.0       # >0: stop when the wall-clock budget runs out (see train)


class TrainResult(NamedTuple):
    net: nn.Module            # the trained network, EMA weights in place if EMA was used
    losses: list[float]
    step: int


def denoising_loss(model: Callable[[Tensor, Tensor], Tensor], scheduler, x0: Tensor,
                   noise: Tensor, timesteps: Tensor, *, weight: Tensor | None = None,
                   known: Tensor | None = None, known_clean: bool = False) -> Tensor:
    """Mean squared error of the model's prediction at x_t = √ᾱx₀ + √(1−ᾱ)ε.

    Args:
        model: callable (x_t, t (B,)) -> output of ``scheduler.config.prediction_type``.
        x0, noise: (B, C, ...); timesteps: (B,) integer training timesteps.
        weight: per-channel weights (C,) or any tensor broadcastable to x0.
        known: boolean mask broadcastable to x0 of entries given as conditions; they are
            excluded from the loss (WDNO: the loss ignores the conditioned channels).
        known_clean: give the model the clean known entries instead of noised ones (pairs
            with ``ReplaceKnown(..., noised=False)`` at sampling time).
    """
    ab = scheduler.alphas_cumprod.to(x0.device)[timesteps].to(x0.dtype)
    ab = ab.reshape(-1, *([1] * (x0.dim() - 1)))
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    if known is not None and known_clean:
        x_t = torch.where(known.to(x0.device).bool(), x0, x_t)
    target = training_target(x0, noise, ab, scheduler.config.prediction_type)
    err = (model(x_t, timesteps) - target) ** 2
    w = torch.ones_like(err)
    if weight is not None:
        weight = weight.to(err)
        if weight.dim() == 1 and x0.dim() > 1:
            weight = weight.reshape(1, -1, *([1] * (x0.dim() - 2)))
        w = w * weight
    if known is not None:
        w = w * (~known.to(err.device).bool()).to(err)
    return (err * w).sum() / w.sum().clamp_min(1e-12)


def snr_capped_timestep_weights(scheduler, cap: float) -> Tensor:
    """Training probabilities (num_train_timesteps,) of the timesteps, ∝ min(1, cap / (1 +
    SNR_t)): the noisy steps are drawn as often as uniformly, the nearly clean ones (1 + SNR
    above ``cap``) less, in proportion. With v-prediction the loss at step t is (1 + SNR_t)
    times the clean-sample error, so a uniform draw spends most of its gradient on steps
    that barely change a sample; this is Min-SNR-γ's cap (Hang et al. 2023), applied to
    the draw instead of the loss, and without its down-weighting of the noisiest steps."""
    if not cap > 0:
        raise ValueError(f"the SNR cap must be positive, got {cap}")
    ab = scheduler.alphas_cumprod.double()
    return torch.clamp(cap * (1 - ab), max=1.0)  # 1 / (1 + SNR) = 1 - ᾱ


def default_loss(net: nn.Module, batch: Batch, noise: Tensor, timesteps: Tensor,
                 scheduler=None) -> Tensor:
    """``denoising_loss`` on batch["x"], with batch["cond"] concatenated when present."""
    model = Denoiser(net, batch.get("cond"))
    return denoising_loss(model, scheduler, batch["x"], noise, timesteps,
                          weight=batch.get("weight"), known=batch.get("known"))


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def global_indices(n: int, batch_size: int, step: int, seed: int) -> Tensor:
    """Indices of step ``step``'s global batch: epochs of seeded permutations of range(n)."""
    pos = step * batch_size + torch.arange(batch_size)
    out = torch.empty(batch_size, dtype=torch.long)
    for epoch in pos.div(n, rounding_mode="floor").unique().tolist():
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919 * epoch))
        sel = pos.div(n, rounding_mode="floor") == epoch
        out[sel] = perm[pos[sel] % n]
    return out


def _as_dataset(data: Tensor | Mapping[str, Tensor]) -> dict[str, Tensor]:
    data = {"x": data} if isinstance(data, Tensor) else dict(data)
    n = {len(v) for v in data.values() if isinstance(v, Tensor) and v.dim() > 0}
    if len(n) != 1 or "x" not in data:
        raise ValueError("dataset must be a tensor or a dict of equal-length tensors with 'x'")
    return data


def lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    """Linear warm-up over ``warmup_steps``, then constant or cosine decay to 0."""
    if cfg.lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"unknown lr_schedule {cfg.lr_schedule!r} (constant or cosine)")

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "constant":
            return 1.0
        done = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, done)))

    return factor


def save_state(path: Path, net: nn.Module, opt, ema: EMAModel | None, step: int,
                losses: list[float]) -> None:
    """Write the resumable state (weights, optimizer, EMA, step, losses) as safetensors."""
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
              path / "model.safetensors")
    opt_state = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in opt_state["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"{idx}.{key}"] = val.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{key}"] = val
    if tensors:
        save_file(tensors, path / "optimizer.safetensors")
    if ema is not None:
        save_file({str(i): p.detach().cpu().contiguous() for i, p in enumerate(ema.shadow_params)},
                  path / "ema.safetensors")
    meta = {"step": step, "losses": losses, "param_groups": opt_state["param_groups"],
            "optimizer_scalars": scalars,
            "ema_optimization_step": ema.optimization_step if ema is not None else None}
    (path / "state.json").write_text(json.dumps(meta))


def load_state(path: Path, net: nn.Module, opt, ema: EMAModel | None) -> tuple[int, list]:
    """Restore what :func:`save_state` wrote; return the step and the losses so far."""
    meta = json.loads((path / "state.json").read_text())
    net.load_state_dict(load_file(path / "model.safetensors", device="cpu"))
    state: dict[int, dict] = {}
    if (path / "optimizer.safetensors").is_file():
        for key, val in load_file(path / "optimizer.safetensors", device="cpu").items():
            idx, name = key.split(".", 1)
            state.setdefault(int(idx), {})[name] = val
    for key, val in meta["optimizer_scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = val
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    if ema is not None and (path / "ema.safetensors").is_file():
        shadow = load_file(path / "ema.safetensors", device="cpu")
        ema.shadow_params = [shadow[str(i)].to(p.device) for i, p in enumerate(ema.shadow_params)]
        ema.optimization_step = meta["ema_optimization_step"]
    return meta["step"], meta["losses"]


def train(net: nn.Module, scheduler, dataset: Tensor | Mapping[str, Tensor], cfg: TrainConfig,
          *, loss_fn: LossFn | None = None, config: dict | None = None,
          timestep_weights: Tensor | None = None, progress: bool = True) -> TrainResult:
    """Train ``net`` as a denoiser; the same call runs under torchrun with many processes.

    Args:
        dataset: a tensor (N, ...) or a dict of tensors with key "x" (and e.g. "cond",
            "known", "weight"), all of length N, kept in memory.
        loss_fn: (net, batch, noise, timesteps) -> scalar; ``default_loss`` if None.
        config: the app's config written into ``polydiff.json`` of the exported folder.
        timestep_weights: (num_train_timesteps,) relative probabilities of the training
            timesteps; None draws them uniformly.

    With ``cfg.time_budget_s`` > 0 (seconds of the training loop) the run times steps
    :data:`BUDGET_PROBE` and then shortens ``cfg.steps`` to what fits the budget, so the
    cosine schedule still ends at 0. The exported ``polydiff.json`` records the steps run;
    when ``warmup_steps`` covers the probe, rerunning with that step count and no budget
    repeats the run exactly.
    Writes the resumable state (``state_dir``, default ``out_dir/train_state``) and the
    exported checkpoint folder ``out_dir``.
    """
    group = distributed.setup(cfg.device)
    if cfg.batch_size % group.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by "
                         f"{group.world_size} processes")
    data = _as_dataset(dataset)
    n = len(data["x"])
    if timestep_weights is not None:
        timestep_weights = torch.as_tensor(timestep_weights, dtype=torch.float64)
        if timestep_weights.shape != (scheduler.config.num_train_timesteps,) or \
                not bool((timestep_weights >= 0).all()) or not timestep_weights.sum() > 0:
            raise ValueError("timestep_weights must be num_train_timesteps non-negative "
                             "weights with a positive sum")
    net = net.to(group.device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = EMAModel(net.parameters(), decay=cfg.ema_decay) if cfg.ema_decay > 0 else None
    out_dir = Path(cfg.out_dir)
    state_dir = Path(cfg.state_dir) if cfg.state_dir else out_dir / "train_state"
    start, losses = 0, []
    if cfg.resume and (state_dir / "state.json").is_file():
        start, losses = load_state(state_dir, net, opt, ema)
        for group_ in opt.param_groups:  # the config's peak rate, also when it changed
            group_["initial_lr"] = cfg.lr
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg), last_epoch=start - 1) \
        if start else torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    model = DistributedDataParallel(net) if group.world_size > 1 else net
    loss_fn = loss_fn or (lambda m, b, e, t: default_loss(m, b, e, t, scheduler))
    mine = slice(group.rank, None, group.world_size)
    amp = cfg.mixed_precision == "bf16" and group.device.type == "cuda"
    bar = tqdm(desc="training", disable=not (progress and group.is_main), initial=start,
               total=cfg.steps)
    pending: list[Tensor] = []  # losses still on the device
    began = clock = time.perf_counter()
    for step in range(start, cfg.steps):
        gen = _step_generator(cfg.seed, step)
        idx = global_indices(n, cfg.batch_size, step, cfg.seed)
        noise = torch.randn((cfg.batch_size, *data["x"].shape[1:]), generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (cfg.batch_size,),
                          generator=gen) if timestep_weights is None else \
            torch.multinomial(timestep_weights, cfg.batch_size, replacement=True, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss = _accumulate(model, loss_fn, data, idx[mine], noise[mine], t[mine], group.device,
                           cfg.micro_batch, amp)
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        if ema is not None:
            ema.step(net.parameters())
        pending.append(loss.detach())
        if cfg.time_budget_s > 0 and step + 1 == start + BUDGET_PROBE[0]:
            clock = _synchronized_clock(group)
        if cfg.time_budget_s > 0 and step + 1 == min(start + BUDGET_PROBE[1], cfg.steps):
            cfg = replace(cfg, steps=_steps_in_budget(cfg, group, step + 1, began, clock))
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg), last_epoch=step)
            bar.total = cfg.steps
        done = step + 1 == cfg.steps
        save = done or (cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0)
        if save or (step + 1) % max(cfg.log_every, 1) == 0:  # the only host syncs
            losses += _gather_losses(pending, group, step)
            pending = []
            if group.is_main:
                recent = losses[-max(cfg.log_every, 1):]
                bar.set_postfix(loss=f"{sum(recent) / len(recent):.4g}")
        if group.is_main and save:
            save_state(state_dir, net, opt, ema, step + 1, losses)
        bar.update(1)
        if done:  # cfg.steps may have been shortened by a time budget
            break
    bar.close()
    if ema is not None:
        ema.copy_to(net.parameters())
    if group.is_main:  # the exported folder appears whole or not at all
        with atomic_directory(out_dir, replace={"unet", "scheduler", CONFIG_NAME}) as tmp:
            save_checkpoint(tmp, net, scheduler, {"train": config_record(cfg), **(config or {})})
    # Free DDP's reducer while the process group is still alive: were it the last owner of
    # the gloo group, its destructor would join gloo's thread while holding the GIL that
    # thread waits for (a deadlock seen at interpreter exit).
    model = loss = None
    gc.collect()
    distributed.barrier(group)
    distributed.teardown(group)
    return TrainResult(net.eval(), losses, cfg.steps)


def _synchronized_clock(group) -> float:
    """The wall clock once the device has finished the work queued so far."""
    if group.device.type == "cuda":
        torch.cuda.synchronize(group.device)
    return time.perf_counter()


def _steps_in_budget(cfg: TrainConfig, group, done: int, began: float, clock: float) -> int:
    """Total steps that fit ``cfg.time_budget_s`` (counted from ``began``) at the pace of the
    probe steps (from ``clock`` to step ``done``): at least ``done``, at most ``cfg.steps``;
    rank 0's answer for all processes."""
    now = _synchronized_clock(group)
    pace = max((now - clock) / (BUDGET_PROBE[1] - BUDGET_PROBE[0]), 1e-9)
    fit = done + int(max(0.0, cfg.time_budget_s - (now - began)) / pace)
    total = torch.tensor([min(cfg.steps, max(done, fit))], device=group.device)
    if group.world_size > 1:
        torch.distributed.broadcast(total, src=0)
    return int(total.item())


def _gather_losses(pending: list[Tensor], group, step: int) -> list[float]:
    """Mean losses over processes of the steps in ``pending`` as floats; refuse non-finite."""
    if not pending:
        return []
    values = torch.stack(pending)
    if group.world_size > 1:
        torch.distributed.all_reduce(values)
        values = values / group.world_size
    out = values.float().cpu().tolist()
    bad = [i for i, v in enumerate(out) if not math.isfinite(v)]
    if bad:
        raise FloatingPointError(f"loss became {out[bad[0]]} at step "
                                 f"{step - len(out) + 1 + bad[0]}")
    return out


def _accumulate(model: nn.Module, loss_fn: LossFn, data: dict[str, Tensor], idx: Tensor,
                noise: Tensor, t: Tensor, device: torch.device, micro_batch: int,
                amp: bool) -> Tensor:
    """Forward and backward of one process's batch in micro-batches; the mean loss.

    Each micro-batch's mean loss is weighted by its share of the batch, so the gradient is
    that of the whole batch's mean (exactly so for losses that average over items). DDP
    synchronises gradients once, on the last micro-batch.
    """
    size = micro_batch if micro_batch > 0 else len(idx)
    chunks = list(torch.arange(len(idx)).split(size))
    total = torch.zeros((), device=device)
    for i, part in enumerate(chunks):
        sync = i == len(chunks) - 1 or not isinstance(model, DistributedDataParallel)
        context = contextlib.nullcontext() if sync else model.no_sync()
        batch = {k: v[idx[part]].to(device, non_blocking=True) for k, v in data.items()}
        with context:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                loss = loss_fn(model, batch, noise[part].to(device), t[part].to(device))
            (loss * (len(part) / len(idx))).backward()
        total = total + loss.detach() * (len(part) / len(idx))
    return total


def config_record(cfg: TrainConfig) -> dict:
    """The TrainConfig as the plain dict written into ``polydiff.json``."""
    from dataclasses import asdict

    return asdict(cfg)
