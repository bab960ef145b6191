"""docs/images/mono.png from ``make demo``'s mono outputs: per row an input image, its depth
and its normals (the generated room, then the photograph), each row scaled to one height.

Run after ``make demo``: ``python -m benchmarks.readme_mono_image [demo_out] [-o PATH]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

ROWS = ("room.png", "motorcycle.png")
PANELS = ("", ".depth_vis.png", ".normals.png")


def compose(folder: Path, out: Path, height: int = 200, gap: int = 6) -> Path:
    rows = []
    for name in ROWS:
        panels = [Image.open(folder / f"{name}{suffix}").convert("RGB") for suffix in PANELS]
        h = height if not rows else int(height * 0.725)
        rows.append([p.resize((round(p.width * h / p.height), h), Image.LANCZOS)
                     for p in panels])
    width = max(sum(p.width for p in r) + gap * (len(r) - 1) for r in rows)
    sheet = Image.new("RGB", (width, sum(r[0].height for r in rows) + gap * (len(rows) - 1)),
                      "white")
    y = 0
    for r in rows:
        x = 0
        for p in r:
            sheet.paste(p, (x, y))
            x += p.width + gap
        y += r[0].height + gap
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", nargs="?", type=Path, default=Path("demo_out"))
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/images/mono.png"))
    args = parser.parse_args()
    print(compose(args.demo / "mono", args.output))


if __name__ == "__main__":
    main()
