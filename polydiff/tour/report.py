"""``report.html`` of ``polydiff demo``: every app's pictures, 3-D views, metrics and files.

The page needs nothing from the network: pictures are linked beside it (relative paths inside
the demo folder), GLB meshes and point clouds are embedded and drawn by the generated
WebGL viewer of :mod:`polydiff.tour.viewer`.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from polydiff.apps.contract import DemoResult
from polydiff.tour.viewer import point_cloud_glb, viewer_html, viewer_script

MAX_EMBED = 24_000_000  # bytes of GLB embedded per file; larger ones are linked only

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.6em 0; }
td, th { border: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #11772d; font-weight: 600; } .failed { color: #b00020; font-weight: 600; }
.better { color: #11772d; } .worse { color: #b00020; }
figure { display: inline-block; margin: 0.4em 0.8em 0.8em 0; vertical-align: top; }
figure img { max-width: 100%; min-height: 180px; max-height: 560px; border: 1px solid #eee; }
canvas { border: 1px solid #ddd; cursor: grab; }
figcaption { font-size: 0.85em; color: #555; } .error { white-space: pre-wrap; }
details { margin: 0.5em 0; } code { font-size: 0.9em; }
"""


@dataclass
class AppRun:
    """One app's part of the tour: its result, or why it failed."""

    name: str
    description: str
    seconds: float = 0.0
    result: DemoResult | None = None
    error: str = ""
    folder: Path | None = None
    files: list[Path] = field(default_factory=list)  # what it left in its folder

    @property
    def ok(self) -> bool:
        return self.result is not None and not self.error


def _rel(path: Path, root: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), root.resolve())).as_posix()


def _number(x: float) -> str:
    return f"{x:.4g}" if isinstance(x, (int, float)) else html.escape(str(x))


def _verdict(key: str, ours: float, base: float | None, higher: tuple[str, ...]) -> str:
    if base is None:
        return ""
    if ours == base:
        return "same"
    good = ours > base if key in higher else ours < base
    return f'<span class="{"better" if good else "worse"}">{"better" if good else "worse"}</span>'


def metrics_table(result: DemoResult) -> str:
    """The app's key metrics beside those of its baseline."""
    if not result.metrics:
        return "<p>No metric for this app.</p>"
    rows = []
    for key, ours in result.metrics.items():
        base = result.baseline.get(key)
        arrow = "higher is better" if key in result.higher_is_better else "lower is better"
        rows.append(f"<tr><td>{html.escape(key)} <small>({arrow})</small></td>"
                    f'<td class="num">{_number(ours)}</td>'
                    f'<td class="num">{"–" if base is None else _number(base)}</td>'
                    f"<td>{_verdict(key, ours, base, result.higher_is_better)}</td></tr>")
    return ("<table><tr><th>metric</th><th>polydiff</th><th>baseline</th><th></th></tr>"
            + "".join(rows) + "</table>")


def _viewers(run: AppRun, root: Path) -> list[str]:
    """3-D views of the app's GLB meshes and PLY point clouds."""
    out = []
    for i, path in enumerate(p for p in run.result.files if p.suffix in (".glb", ".ply")):
        if not path.is_file() or path.stat().st_size > MAX_EMBED:
            continue
        label = f"{_rel(path, root)} (drag to turn, wheel to zoom)"
        if path.suffix == ".glb":
            out.append(viewer_html(path.read_bytes(), f"view-{run.name}-{i}",
                                   label=f"mesh {label}"))
        else:  # a point cloud in its camera's frame: first seen from the camera, a bit above
            out.append(viewer_html(point_cloud_glb(path), f"view-{run.name}-{i}", yaw=0.0,
                                   pitch=0.25, label=f"point cloud {label}"))
    return out


def app_section(run: AppRun, root: Path) -> str:
    """One app: status, summary, metrics, pictures, 3-D views, files."""
    head = (f'<h2 id="{run.name}">{html.escape(run.name)} <small>— '
            f"{html.escape(run.description)}</small></h2>")
    if not run.ok:
        parts = [head, f'<p class="failed">failed after {run.seconds:.1f} s</p>',
                 f'<pre class="error">{html.escape(run.error)}</pre>']
    else:
        r = run.result
        said = re.sub(r";?\s*wrote .*$", "", r.summary)  # the files are listed below
        parts = [head, f'<p><span class="ok">ok</span> in {run.seconds:.1f} s: '
                       f"{html.escape(said)}</p>", metrics_table(r)]
        parts += [f'<figure><img src="{html.escape(_rel(p, root))}" alt="{html.escape(p.name)}">'
                  f"<figcaption>{html.escape(_rel(p, root))}</figcaption></figure>"
                  for p in r.images]
        parts += _viewers(run, root)
    if run.files:
        items = "".join(f'<li><a href="{html.escape(_rel(p, root))}">'
                        f"{html.escape(_rel(p, root))}</a></li>" for p in run.files)
        parts.append(f"<details><summary>{len(run.files)} files</summary><ul>{items}</ul>"
                     "</details>")
    return "<section>" + "\n".join(parts) + "</section>"


def overview(runs: list[AppRun]) -> str:
    """One row per app: status, time, first key metric against its baseline."""
    rows = []
    for run in runs:
        status = '<span class="ok">ok</span>' if run.ok else '<span class="failed">failed</span>'
        metric = base = ""
        if run.ok and run.result.metrics:
            key, value = next(iter(run.result.metrics.items()))
            metric = f"{html.escape(key)} {_number(value)}"
            if key in run.result.baseline:
                base = _number(run.result.baseline[key])
        rows.append(f'<tr><td><a href="#{run.name}">{run.name}</a></td><td>{status}</td>'
                    f'<td class="num">{run.seconds:.1f} s</td><td>{metric}</td>'
                    f'<td class="num">{base}</td></tr>')
    return ("<table><tr><th>app</th><th>status</th><th>time</th><th>key metric</th>"
            "<th>baseline</th></tr>" + "".join(rows) + "</table>")


def render_report(runs: list[AppRun], root: Path, *, header: str) -> str:
    """The whole page; paths inside it are relative to ``root`` (the demo folder)."""
    sections = "\n".join(app_section(run, root) for run in runs)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>polydiff demo</title><style>{STYLE}</style></head><body>"
            f"<h1>polydiff demo</h1><p>{html.escape(header)}</p>{overview(runs)}\n"
            f"{sections}\n{viewer_script()}</body></html>\n")
