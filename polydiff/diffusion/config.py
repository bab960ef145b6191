"""Typed configs: YAML (or dict) blocks become dataclasses, and unknown keys are refused."""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from polydiff.runtime import UserError

T = TypeVar("T")


def read_yaml(path: str | os.PathLike) -> dict:
    """A YAML mapping from ``path``; a missing or malformed file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"config {path} is not valid YAML: {err}".splitlines()[0]) from err
    if not isinstance(data, dict):
        raise UserError(f"config {path} must hold a mapping at the top level")
    return data


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if _is_dataclass_type(tp) and isinstance(value, dict):
        return from_dict(value, tp, where)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is type(None) and value is None:
                return None
            if _is_dataclass_type(arg) and isinstance(value, dict):
                return from_dict(value, arg, where)
        return value
    if origin in (tuple, list) and isinstance(value, (list, tuple)):
        return origin(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def from_dict(data: dict, cls: type[T], where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys raise a UserError naming them."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)} "
                        f"(known: {', '.join(sorted(fields))})")
    hints = typing.get_type_hints(cls)
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise UserError(f"{where}: {err}") from err


def load_config(source: str | os.PathLike | dict | None, cls: type[T]) -> T:
    """A ``cls`` instance from a YAML path, a dict, or defaults when ``source`` is None."""
    if source is None:
        return cls()
    if isinstance(source, dict):
        return from_dict(source, cls)
    return from_dict(read_yaml(source), cls, where=str(source))


def to_dict(config: Any) -> dict:
    """A plain dict of a (nested) config dataclass, for JSON/YAML."""
    return dataclasses.asdict(config)
