"""``polydiff demo``: every app's demo into ``DIR/<app>/``, then ``DIR/report.html``.

An app that fails is marked in the report and makes the exit status 1; the others still
run. ``DIR/demo.json`` records what the demo wrote (and every app's metrics): with
``--overwrite`` those files, and only those, may be replaced by a new run.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from polydiff.apps.contract import DemoResult
from polydiff.runtime import UserError, atomic_output
from polydiff.tour.report import AppRun, render_report

MANIFEST = "demo.json"
REPORT = "report.html"


def _manifest_files(out: Path) -> set[str]:
    """The files (relative to ``out``) that an earlier demo recorded as its own."""
    path = out / MANIFEST
    try:
        data = json.loads(path.read_text())
        return {str(p) for p in data["files"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{out} holds demo outputs but no readable {MANIFEST} saying which "
                        "files an earlier demo wrote; choose another folder") from err


def check_folder(out: Path, names: list[str], overwrite: bool) -> set[str]:
    """Refuse to write over anything that is not an earlier demo's; return its files."""
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out} is an existing file; the demo writes a folder")
    ours = [out / REPORT, out / MANIFEST, *(out / n for n in names)]
    existing = [p for p in ours if p.exists()]
    if not existing:
        return set()
    if not overwrite:
        raise UserError(f"{out} already holds demo outputs ({existing[0]}); give --overwrite "
                        "to replace them")
    own = _manifest_files(out)
    for path in existing:
        found = [f for f in path.rglob("*") if not f.is_dir()] if path.is_dir() else [path]
        for f in found:
            rel = f.relative_to(out).as_posix()
            if rel != MANIFEST and rel not in own:
                raise UserError(f"{f} was not written by polydiff demo; it is never "
                                "replaced: move it or choose another -o")
    return own


def _clear_old(out: Path, name: str, own: set[str]) -> None:
    """Remove the files an earlier demo wrote for ``name`` (so none is shown stale)."""
    for rel in sorted(own):
        if rel.startswith(f"{name}/"):
            (out / rel).unlink(missing_ok=True)


def run_app(name: str, description: str, demo: Callable[..., DemoResult] | None, out: Path,
            *, device, seed: int) -> AppRun:
    """One app's demo, timed; any error is caught and kept for the report."""
    run = AppRun(name, description, folder=out / name)
    start = time.perf_counter()
    try:
        if demo is None:
            raise UserError(f"the {name} app is not available in this installation")
        result = demo(out / name, device=device, seed=seed)
        if not isinstance(result, DemoResult):
            raise TypeError(f"{name}'s demo returned {type(result).__name__}, not a DemoResult")
        missing = [p for p in [*result.files, *result.images] if not Path(p).is_file()]
        if missing:
            raise RuntimeError(f"{name}'s demo names a file it did not write: {missing[0]}")
        run.result = result
    except Exception as err:  # noqa: BLE001 - an app's failure must not stop the tour
        kind = "" if isinstance(err, UserError) else f"{type(err).__name__}: "
        run.error = f"{kind}{err}"
        frames = traceback.extract_tb(err.__traceback__)[-3:]
        if not isinstance(err, UserError) and frames:
            run.error += "\n" + "".join(traceback.format_list(frames))
    run.seconds = time.perf_counter() - start
    if run.folder.is_dir():
        run.files = sorted(p for p in run.folder.rglob("*") if p.is_file())
    return run


def _line(i: int, n: int, run: AppRun) -> str:
    if run.ok:
        return f"[{i}/{n}] {run.name}: ok in {run.seconds:.1f} s: {run.result.summary}"
    first = run.error.splitlines()[0] if run.error else "failed"
    return f"[{i}/{n}] {run.name}: FAILED after {run.seconds:.1f} s: {first}"


def write_outputs(out: Path, runs: list[AppRun], header: str, meta: dict) -> Path:
    """``report.html`` and ``demo.json`` (each whole or not at all)."""
    out.mkdir(parents=True, exist_ok=True)
    report = out / REPORT
    with atomic_output(report) as tmp:
        tmp.write_text(render_report(runs, out, header=header), encoding="utf-8")
    files = sorted({p.relative_to(out).as_posix() for run in runs for p in run.files} | {REPORT})
    record = {**meta, "files": files, "apps": {
        run.name: {"ok": run.ok, "seconds": round(run.seconds, 2), "error": run.error or None,
                   "summary": run.result.summary if run.ok else None,
                   "metrics": run.result.metrics if run.ok else None,
                   "baseline": run.result.baseline if run.ok else None}
        for run in runs}}
    with atomic_output(out / MANIFEST) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=float))
    return report


def run_tour(out: Path, apps: dict[str, tuple[str, Callable[..., DemoResult] | None]], *,
             device, seed: int, overwrite: bool, version: str = "") -> int:
    """Run every app's demo into ``out/<app>/`` and write the report; 0 when all succeed."""
    out = Path(out)
    own = check_folder(out, list(apps), overwrite)
    runs, start, n = [], time.perf_counter(), len(apps)
    for i, (name, (description, demo)) in enumerate(apps.items(), 1):
        print(f"[{i}/{n}] {name}: {description} ...", flush=True)
        _clear_old(out, name, own)
        run = run_app(name, description, demo, out, device=device, seed=seed)
        print(_line(i, n, run), flush=True)
        runs.append(run)
    total = time.perf_counter() - start
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    header = (f"polydiff {version}, {when}, device {device}, seed {seed}: "
              f"{sum(r.ok for r in runs)} of {n} apps ran in {total:.0f} s.")
    report = write_outputs(out, runs, header, {"version": version, "device": str(device),
                                               "seed": seed, "seconds": round(total, 1)})
    failed = [r.name for r in runs if not r.ok]
    print(f"{n - len(failed)} of {n} apps ok in {total:.0f} s"
          + (f"; failed: {', '.join(failed)}" if failed else "") + f"; wrote {report}",
          flush=True)
    return 1 if failed else 0
