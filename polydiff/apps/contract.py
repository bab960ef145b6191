"""The one contract every app follows: loading, command-line names, outputs, training.

Checkpoint folder (diffusers' layout plus one polydiff file)::

    folder/
      unet/config.json, unet/diffusion_pytorch_model.safetensors    the network(s)
      scheduler/scheduler_config.json                               the noise schedule
      polydiff.json
        {"format": 1,                      this layout's version
         "app": "pde",                     which app the folder belongs to (checked on load)
         "kind": "wdno",                   which of the app's models (or null)
         "config": {...},                  the app's typed config, normalisation included
         "train": {...},                   the TrainConfig that made it
         "networks": {"unet": {"type": "unet2d", "periodic": false}},
         "default_network": "unet"}

A plain diffusers folder (``unet/`` + ``scheduler/``, no ``polydiff.json``) also loads: its
network replaces the bundled one, and the app's config comes from the bundled checkpoint,
after its channel counts and sample size are checked against it.

Command-line names (:func:`add_output`, :func:`add_members`, ...): ``-o/--output`` for what
a command writes, ``--members`` for ensembles and particles, ``--steps`` for sampling steps,
``--train-steps`` for training, ``--truth/--pred/--json`` for evaluation, and
``--device/--seed/--model`` wherever they mean something. Numbers are range-checked by the
parser, and the range is shown in ``--help``.

Outputs (:class:`Outputs`): a command declares every file it will write before the work;
outputs that are inputs are refused, existing files the user did not name are kept unless
``--overwrite``, the files appear together at the end or not at all, with the permissions
the umask allows, and only rank 0 writes under torchrun.

This module imports neither torch nor diffusers until a function needs them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from polydiff.runtime import (
    UserError,
    is_main_process,
    make_parent,
    process_rank,
    publish,
    remove_empty,
    temp_beside,
)

if TYPE_CHECKING:
    import torch

T = TypeVar("T")
FORMAT = 1
CONFIG_NAME = "polydiff.json"


# ============================================================================ command line
class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit status 2."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class Number:
    """An argparse ``type`` that accepts a finite int or float within a range."""

    def __init__(self, kind: type = float, lo: float | None = None, hi: float | None = None,
                 *, lo_open: bool = False, hi_open: bool = False) -> None:
        self.kind, self.lo, self.hi, self.lo_open, self.hi_open = kind, lo, hi, lo_open, hi_open
        self.__name__ = kind.__name__  # argparse names the type in its messages

    def describe(self) -> str:
        """The range as in ``--help``: e.g. ``(0, 10]`` or ``>= 1``."""
        if self.lo is not None and self.hi is not None:
            return (f"{'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}"
                    f"{')' if self.hi_open else ']'}")
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {self.hi:g}"
        return "any finite number"

    def __call__(self, text: str):
        try:
            value = self.kind(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if self.kind is int else 'a number'}, got {text!r}"
            ) from err
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        low_bad = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        high_bad = self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi)
        if low_bad or high_bad:
            raise argparse.ArgumentTypeError(f"{text} is outside {self.describe()}")
        return value


def add_number(parser: argparse.ArgumentParser, *flags: str, kind: type = float,
               lo: float | None = None, hi: float | None = None, lo_open: bool = False,
               hi_open: bool = False, default: Any = None, help: str = "", **kw) -> None:
    """A numeric option whose range is checked by the parser and shown in ``--help``."""
    number = Number(kind, lo, hi, lo_open=lo_open, hi_open=hi_open)
    shown = "" if default is None else f"; default: {default:g}" if isinstance(
        default, (int, float)) else f"; default: {default}"
    parser.add_argument(*flags, type=number, default=default,
                        help=f"{help} (range {number.describe()}{shown})", **kw)


def add_runtime_args(parser: argparse.ArgumentParser, *, model: bool = True,
                     seed: bool = True, device: bool = True) -> None:
    """``--device``, ``--seed`` and ``--model`` as every command spells them."""
    if device:
        parser.add_argument("--device", default="auto", help="auto|cpu|cuda (default: auto)")
    if seed:
        add_number(parser, "--seed", kind=int, lo=0, hi=2**63 - 1, default=0,
                   help="random seed; the same seed gives the same files")
    if model:
        parser.add_argument("--model", type=Path, default=None, metavar="DIR",
                            help="checkpoint folder (default: the bundled checkpoint)")


def add_output(parser: argparse.ArgumentParser, help: str, *, required: bool = True,
               default: Path | None = None) -> None:
    """``-o/--output`` (what the command writes) and ``--overwrite``."""
    parser.add_argument("-o", "--output", type=Path, required=required, default=default,
                        help=help)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing files the command writes beside the output "
                             "(never its inputs); without it they are refused")


def add_members(parser: argparse.ArgumentParser, default: int, what: str = "ensemble members",
                *, aliases: Iterable[str] = (), lo: int = 1, hi: int = 256) -> None:
    """``--members``: the size of an ensemble (or of a particle system)."""
    add_number(parser, "--members", *aliases, kind=int, lo=lo, hi=hi, default=default,
               dest="members", help=what)


def add_steps(parser: argparse.ArgumentParser, default: int | None,
              help: str = "reverse diffusion (sampling) steps", hi: int = 1000) -> None:
    """``--steps``: sampling steps (training steps are ``--train-steps``)."""
    add_number(parser, "--steps", kind=int, lo=1, hi=hi, default=default, help=help)


def add_train_args(parser: argparse.ArgumentParser, app: str, *,
                   data_cache: str | None = None) -> None:
    """What every ``train`` command takes: a config, and overrides of its train block.

    ``data_cache`` (its help text) adds ``--data-cache FILE`` for apps whose training data
    are simulated and worth keeping between runs.
    """
    parser.add_argument("--config", type=Path, required=True, help=f"configs/{app}/<name>.yaml")
    parser.add_argument("-o", "--output", type=Path, default=None, metavar="DIR",
                        help="checkpoint folder (default: train.out_dir of the config); "
                             "training resumes from its train_state/ when present")
    add_number(parser, "--train-steps", kind=int, lo=1, hi=10**9,
               help="training steps (default: train.steps of the config)")
    add_number(parser, "--time-budget", kind=float, lo=1, hi=10**7, metavar="SECONDS",
               help="stop training when this much wall-clock time is spent, with the "
                    "schedule shortened to fit (default: train.time_budget_s, 0 = none)")
    add_number(parser, "--seed", kind=int, lo=0, hi=2**63 - 1,
               help="seed of initialisation and batches (default: train.seed of the config)")
    parser.add_argument("--device", default=None,
                        help="auto|cpu|cuda (default: train.device of the config)")
    if data_cache is not None:
        parser.add_argument("--data-cache", type=Path, default=None, metavar="FILE",
                            help=data_cache)


def add_eval_args(parser: argparse.ArgumentParser, *, truth: str, pred: str,
                  pred_required: bool = True) -> None:
    """``--truth``, ``--pred`` and ``--json`` of every ``evaluate`` command."""
    parser.add_argument("--truth", type=Path, required=True, help=truth)
    parser.add_argument("--pred", type=Path, required=pred_required, default=None, help=pred)
    parser.add_argument("--json", type=Path, default=None,
                        help="metrics JSON (default: <pred or truth>.metrics.json)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing metrics JSON that was not named")


def apply_train_args(train_cfg: Any, args: argparse.Namespace) -> Any:
    """Copy ``--output/--train-steps/--time-budget/--seed/--device`` onto a TrainConfig
    (in place)."""
    if getattr(args, "output", None) is not None:
        train_cfg.out_dir = str(args.output)
    if getattr(args, "train_steps", None) is not None:
        train_cfg.steps = int(args.train_steps)
    if getattr(args, "time_budget", None) is not None:
        train_cfg.time_budget_s = float(args.time_budget)
    if getattr(args, "seed", None) is not None:
        train_cfg.seed = int(args.seed)
    if getattr(args, "device", None) is not None:
        from polydiff.runtime import pick_device

        pick_device(args.device)  # refuse cuda without a GPU before any data is made
        train_cfg.device = args.device
    return train_cfg


def report(message: str) -> None:
    """Print ``message`` in the main process only (one line per run under torchrun)."""
    if is_main_process():
        print(message, flush=True)


# ============================================================================ outputs
def _identity(path: Path) -> tuple[Path, tuple[int, int] | None]:
    """``path`` resolved, and its (device, inode) when it exists (what samefile compares)."""
    try:
        resolved = path.resolve()
        st = path.stat() if path.exists() else None
    except OSError:
        return path.absolute(), None
    return resolved, (st.st_dev, st.st_ino) if st is not None else None


class Outputs:
    """Every file one command writes, made all-or-nothing.

    Declare each output before the work with :meth:`file` (a temporary path to write to is
    returned), then let the ``with`` block end: on success all files are renamed into place
    together; on any error (or SIGTERM, which the CLI turns into SystemExit) none appear
    and the folders created for them are removed again.

    Rules, checked when a file is declared:
      * an output that is one of ``inputs`` is refused;
      * an existing file is replaced only when the user named it (``named=True``, e.g. the
        ``-o`` path) or gave ``--overwrite``; an existing folder is never replaced;
      * two outputs of one command may not share a name.

    Under torchrun only rank 0 writes (``all_ranks=True`` lets every rank write its own).
    """

    def __init__(self, inputs: Iterable[str | os.PathLike | None] = (), *,
                 overwrite: bool = False, all_ranks: bool = False) -> None:
        self.inputs = [Path(p) for p in inputs if p is not None]
        ids = [_identity(p) for p in self.inputs]  # once: a check is O(1) in the inputs
        self.input_paths = {r for r, _ in ids}
        self.input_inodes = {i for _, i in ids if i is not None}
        self.overwrite = overwrite
        self.active = all_ranks or is_main_process()
        self.pending: dict[Path, Path] = {}  # final path -> temporary path
        self.resolved: set[Path] = set()  # the pending paths resolved (a duplicate check in O(1))
        self.created: list[Path] = []
        self.written: list[Path] = []

    def check(self, path: str | os.PathLike, *, named: bool = False) -> Path:
        """Apply the rules to ``path`` without declaring it; return it as a Path."""
        path = Path(path)
        resolved, inode = _identity(path)
        if resolved in self.input_paths or (inode is not None and inode in self.input_inodes):
            raise UserError(f"output {path} is also an input; choose another output name")
        if path.is_dir():
            raise UserError(f"output {path} is an existing folder; it is never replaced")
        if path.exists() and not (named or self.overwrite):
            raise UserError(f"{path} already exists and was not named as the output; "
                            "give --overwrite to replace it")
        if resolved in self.resolved:
            raise UserError(f"two outputs of this command would both be {path}")
        return path

    def file(self, path: str | os.PathLike, *, named: bool = False) -> Path:
        """Declare ``path`` as an output; return the temporary path to write it to."""
        path = self.check(path, named=named)
        self.resolved.add(path.resolve())
        if not self.active:  # another rank writes; this one works in a scratch file
            tmp = Path(os.devnull)
            self.pending[path] = tmp
            return tmp
        self.created += make_parent(path)
        tmp = temp_beside(path)
        self.pending[path] = tmp
        return tmp

    def commit(self) -> list[Path]:
        """Rename every temporary file into place; return the final paths."""
        if self.active:
            for path, tmp in self.pending.items():
                publish(tmp)
                os.replace(tmp, path)
                self.written.append(path)
        self.pending.clear()
        self.resolved.clear()
        return self.written

    def discard(self) -> None:
        """Remove the temporary files and the folders created for them."""
        for tmp in self.pending.values():
            if tmp != Path(os.devnull):
                tmp.unlink(missing_ok=True)
        self.pending.clear()
        self.resolved.clear()
        remove_empty(self.created)

    def summary(self) -> str:
        """``wrote a.nc, a.png`` — the final line of a command."""
        return "wrote " + ", ".join(str(p) for p in self.written) if self.written else \
            "wrote nothing"

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.commit()
            except OSError as err:
                self.discard()
                raise UserError(f"could not write the outputs: {err}") from err
        else:
            self.discard()


def default_json(pred: Path | None, truth: Path) -> Path:
    """Where evaluate writes its metrics when ``--json`` is not given."""
    base = pred if pred is not None else truth
    return base.with_name(base.name.split(".")[0] + ".metrics.json") if base.suffix else \
        base.with_name(base.name + ".metrics.json")


def write_json(path: Path, data: dict, outputs: Outputs, *, named: bool) -> Path:
    """Write ``data`` as JSON through ``outputs``."""
    tmp = outputs.file(path, named=named)
    if tmp != Path(os.devnull):
        tmp.write_text(json.dumps(data, indent=2, default=float))
    return path


# ============================================================================ many inputs
def add_resume(parser: argparse.ArgumentParser) -> None:
    """``--resume``: skip the inputs whose outputs all exist already."""
    parser.add_argument("--resume", action="store_true",
                        help="skip inputs whose output files all exist already (an interrupted "
                             "run, or one split over processes, goes on where it stopped)")


def shard_of() -> tuple[int, int]:
    """(index, count) of this process among those that share one list of inputs.

    torchrun's ``RANK``/``WORLD_SIZE``, within each task of a Slurm array job
    (``SLURM_ARRAY_TASK_ID``, ``_MIN``, ``_STEP``, ``_COUNT``): task a of A, rank r of W is
    share a * W + r of A * W. (0, 1) for a plain run.
    """
    rank, world = process_rank(), int(os.environ.get("WORLD_SIZE", "1"))
    task, tasks = 0, 1
    if "SLURM_ARRAY_TASK_ID" in os.environ and "SLURM_ARRAY_TASK_COUNT" in os.environ:
        first = int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
        step = int(os.environ.get("SLURM_ARRAY_TASK_STEP", "1")) or 1
        task = (int(os.environ["SLURM_ARRAY_TASK_ID"]) - first) // step
        tasks = int(os.environ["SLURM_ARRAY_TASK_COUNT"])
    index, count = task * world + rank, tasks * world
    if not (count >= 1 and 0 <= index < count):
        raise UserError(f"process {rank} of {world} (array task {task} of {tasks}) is not a "
                        "valid share of the inputs; check RANK/WORLD_SIZE/SLURM_ARRAY_*")
    return index, count


def my_share(items: Sequence[T]) -> list[T]:
    """The items this process works on: items i, i + n, i + 2n, ... for share (i, n)."""
    index, count = shard_of()
    return list(items)[index::count]


class PerInput(Generic[T]):
    """A command that writes its own files for each of many inputs.

    The inputs are split between processes (:func:`my_share`: torchrun ranks and Slurm
    array tasks need no glue); with ``resume`` an input whose outputs all exist is skipped;
    every output of this process's share is checked by the :class:`Outputs` rules before
    any work; and each input's files appear together as soon as that input is done, so an
    interrupted run keeps what it finished::

        batch = PerInput(paths, lambda p: [folder / (p.name + ".npy")], inputs=paths,
                         overwrite=args.overwrite, resume=args.resume)
        for path in batch.todo:
            with batch.outputs(path) as (npy,):
                np.save(npy, work(path))
        batch.print_summary()
    """

    def __init__(self, items: Sequence[T], outputs_of: Callable[[T], Sequence[Path]], *,
                 inputs: Iterable[str | os.PathLike | None] = (), overwrite: bool = False,
                 resume: bool = False) -> None:
        self.inputs = [Path(p) for p in inputs if p is not None]
        self.overwrite = overwrite
        self.outputs_of = outputs_of
        self.share = shard_of()
        self.mine = my_share(items)
        self.skipped: list[T] = []
        self.todo: list[T] = []
        self.written: list[Path] = []
        checker = Outputs(self.inputs, overwrite=overwrite, all_ranks=True)
        for item in self.mine:
            paths = [Path(p) for p in outputs_of(item)]
            if resume and paths and all(p.is_file() for p in paths):
                self.skipped.append(item)
                continue
            for path in paths:
                checker.resolved.add(checker.check(path).resolve())
            self.todo.append(item)

    @contextmanager
    def outputs(self, item: T) -> Iterator[list[Path]]:
        """The temporary paths of ``item``'s outputs; they appear together when the block ends
        without an error (none of them otherwise)."""
        with Outputs(self.inputs, overwrite=self.overwrite, all_ranks=True) as out:
            yield [out.file(p) for p in self.outputs_of(item)]
        self.written += out.written

    def summary(self) -> str:
        """``wrote a, b; skipped 3 inputs whose outputs exist (--resume)``."""
        text = "wrote " + ", ".join(map(str, self.written)) if self.written else "wrote nothing"
        if self.skipped:
            text += f"; skipped {len(self.skipped)} input(s) whose outputs exist (--resume)"
        index, count = self.share
        return f"[share {index + 1} of {count}: {len(self.mine)} input(s)] {text}" \
            if count > 1 else text

    def print_summary(self) -> None:
        """Print :meth:`summary` in every process that had a share (each wrote its own)."""
        if self.mine or is_main_process():
            print(self.summary(), flush=True)


# ============================================================================ demo
class DemoResult(NamedTuple):
    """What an app's ``demo(out_dir, *, device, seed)`` returns to ``polydiff demo``.

    ``metrics`` and ``baseline`` hold the same keys: the app's key numbers and those of a
    simple reference (zero-filled MRI, a constant depth, the solver ...); lower is better
    unless the key is in ``higher_is_better``.
    """

    summary: str                  # one line for the terminal
    files: list[Path]             # every file the demo wrote
    images: list[Path]            # the PNGs to show, in order (a subset of files)
    metrics: dict[str, float]
    baseline: dict[str, float]
    higher_is_better: tuple[str, ...] = ()


# ============================================================================ checkpoints
class AppCheckpoint(NamedTuple):
    """A loaded checkpoint of one app."""

    net: Any            # torch.nn.Module in eval mode on the requested device
    scheduler: Any      # a diffusers scheduler
    config: dict        # the app's config block ("config" of polydiff.json)
    folder: Path
    meta: dict          # the whole polydiff.json (or the bundled one for a plain folder)


def checkpoint_meta(app: str, config: dict, *, kind: str | None = None) -> dict:
    """The app's part of ``polydiff.json``; pass it as ``config=`` to ``train``/``save``."""
    return {"format": FORMAT, "app": app, "kind": kind, "config": config}


def bundled_folder(app: str, kind: str | None = None) -> Path:
    """The bundled checkpoint folder of ``app`` (``kind`` names a sub-folder)."""
    from polydiff.weights import bundled_path

    return bundled_path(app) / kind if kind else bundled_path(app)


def named_or_folder(app: str, folder: str | os.PathLike | None,
                    names: dict[str, str | None]) -> Path | None:
    """``--model`` resolved: a bundled prior of ``app`` by name (``names``: name -> its
    sub-folder, None for the app's default) when no folder of that name exists, else
    ``folder`` itself (None stays None: the default)."""
    if folder is None or Path(folder).exists() or str(folder) not in names:
        return None if folder is None else Path(folder)
    return bundled_folder(app, names[str(folder)])


def _check_meta(meta: dict, app: str, kind: str | None, folder: Path) -> None:
    owner = meta.get("app")
    if owner != app:
        raise UserError(f"{folder} is a checkpoint of the {owner or 'unknown'} app, "
                        f"not of {app}")
    if meta.get("format") != FORMAT:
        raise UserError(f"{folder}: polydiff.json has format {meta.get('format')!r}, this "
                        f"polydiff reads format {FORMAT}; re-export the checkpoint")
    if kind is not None and meta.get("kind") != kind:
        raise UserError(f"{folder} holds a {meta.get('kind')} model of {app}, "
                        f"where a {kind} model is needed")
    if not isinstance(meta.get("config"), dict):
        raise UserError(f"{folder}: polydiff.json has no 'config' block")


def read_app_meta(folder: Path, app: str, kind: str | None = None) -> dict:
    """``polydiff.json`` of ``folder`` after checking it belongs to ``app`` (and ``kind``)."""
    from polydiff.diffusion.checkpoint import read_config

    meta = read_config(folder)
    _check_meta(meta, app, kind, folder)
    return meta


def load_app_checkpoint(app: str, folder: str | os.PathLike | None,
                        device: torch.device | str = "cpu", *, kind: str | None = None,
                        network: str | None = None, bundled: Path | None = None,
                        ) -> AppCheckpoint:
    """Load ``folder`` (default: the bundled checkpoint) as a checkpoint of ``app``.

    Raises a UserError when the folder is missing, holds pickles, belongs to another app or
    kind, or is a plain diffusers folder whose network does not fit the app.
    """
    from polydiff.diffusion.checkpoint import check_folder, load_network, load_scheduler

    bundled = bundled if bundled is not None else bundled_folder(app, kind)
    if folder is None:
        if not (bundled / CONFIG_NAME).is_file():
            raise UserError(f"no bundled {app} checkpoint in {bundled}; train one with "
                            f"`polydiff {app} train --config configs/{app}/...` and pass "
                            "--model DIR")
        folder = bundled
    folder = check_folder(folder)
    if not (folder / CONFIG_NAME).is_file() and (folder / "unet" / "config.json").is_file():
        return _load_plain_diffusers(app, folder, device, kind, bundled)
    meta = read_app_meta(folder, app, kind)
    net = load_network(folder, network, device)
    return AppCheckpoint(net, load_scheduler(folder), meta["config"], folder, meta)


def _load_plain_diffusers(app: str, folder: Path, device, kind: str | None,
                          bundled: Path) -> AppCheckpoint:
    """A diffusers ``unet/`` (+ ``scheduler/``) with the bundled app config around it."""
    from polydiff.diffusion.checkpoint import load_network, load_scheduler
    from polydiff.diffusion.networks import NETWORKS

    if not (bundled / CONFIG_NAME).is_file():
        raise UserError(f"{folder} has no polydiff.json and there is no bundled {app} "
                        "config to pair it with")
    meta = read_app_meta(bundled, app, kind)
    theirs = json.loads((folder / "unet" / "config.json").read_text())
    ours = json.loads((bundled / "unet" / "config.json").read_text())
    for key in ("in_channels", "out_channels", "sample_size"):
        if theirs.get(key) != ours.get(key):
            raise UserError(f"{folder}/unet does not fit the {app} app: {key} is "
                            f"{theirs.get(key)}, the app needs {ours.get(key)}")
    types = {cls.__name__: name for name, cls in NETWORKS.items()}
    kind_name = types.get(theirs.get("_class_name", ""))
    if kind_name is None:
        raise UserError(f"{folder}/unet: unsupported network class {theirs.get('_class_name')}")
    block = dict(meta["networks"][meta.get("default_network", "unet")], type=kind_name)
    plain = dict(meta, networks={"unet": block}, default_network="unet", source="diffusers")
    net = load_network(folder, "unet", device, meta=plain)
    has_sched = (folder / "scheduler" / "scheduler_config.json").is_file()
    scheduler = load_scheduler(folder if has_sched else bundled)
    return AppCheckpoint(net, scheduler, meta["config"], folder, plain)


def copy_weights(net: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Load ``state`` into ``net`` for a warm start (``init_from``): the same layers with the
    same shapes, else one line naming ``what`` (e.g. "init_from runs/old") and the mismatch."""
    mine = net.state_dict()
    if state.keys() != mine.keys():
        raise UserError(f"{what}: its network's layers differ from the config's network (a "
                        "warm start needs the same architecture)")
    for name, value in state.items():
        if value.shape != mine[name].shape:
            raise UserError(f"{what}: its network's layers differ from the config's network "
                            f"({name} has shape {tuple(value.shape)}, the config's "
                            f"{tuple(mine[name].shape)})")
    net.load_state_dict(state)


def typed_config(ckpt: AppCheckpoint, cls: type[T]) -> T:
    """The checkpoint's config block as the app's dataclass (unknown keys refused)."""
    from polydiff.diffusion.config import from_dict

    try:
        return from_dict(ckpt.config, cls, where=f"{ckpt.folder}/{CONFIG_NAME}:config")
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{ckpt.folder}: bad {cls.__name__} ({err})") from err


# ============================================================================ training
def seeded(seed: int, build: Callable[[], T]) -> T:
    """``build()`` with torch's global generator seeded, and restored afterwards.

    diffusers draws initial weights from the global generator; this makes a network's
    initialisation a function of the seed without changing anyone else's random state.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()


def progress_enabled() -> bool:
    """Progress bars show in the main process, on a terminal or a log file alike."""
    return is_main_process() and sys.stderr is not None
