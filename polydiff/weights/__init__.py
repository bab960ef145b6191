"""Bundled small checkpoints, one folder per app (the embedded default of each command)."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent


def bundled_path(app: str) -> Path:
    """The bundled checkpoint folder of ``app`` (it may not exist yet)."""
    return WEIGHTS_DIR / app


def bundled_checkpoints() -> dict[str, tuple[Path, int]]:
    """Every bundled checkpoint folder with its size in bytes."""
    found = {}
    for folder in sorted(p for p in WEIGHTS_DIR.iterdir() if p.is_dir()):
        if folder.name.startswith(("_", ".")):
            continue
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        found[folder.name] = (folder, size)
    return found
