"""Read one section of ``params.yaml`` into a typed dataclass.

Each stage reads only its own section (stage name = params section), and the defaults
live in ``params.yaml`` alone: a dataclass field without a value in the file is an error,
not a silent default.

    >>> from gistkv.params import load_section
    >>> from gistkv.model import ModelParams
    >>> load_section("params.yaml", "model", ModelParams)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from gistkv.errors import GistkvError

T = TypeVar("T")


def read_params(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.exists():
        raise GistkvError(f"{path}: params file not found.")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise GistkvError(f"{path}: not valid YAML ({str(err).splitlines()[0]}).") from None
    if not isinstance(params, dict):
        raise GistkvError(f"{path}: expected a mapping of sections at the top level.")
    return params


def from_mapping(cls: type[T], mapping: Any, where: str) -> T:
    """Build dataclass ``cls`` from ``mapping``; ``where`` names the section in errors."""
    if not isinstance(mapping, dict):
        raise GistkvError(f"{where}: expected a mapping, got {type(mapping).__name__}.")
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise GistkvError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(fields))}).")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        key = f"{where}.{name}"
        if name not in mapping:
            if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING:
                continue
            raise GistkvError(f"{key}: missing in params.")
        values[name] = _convert(hints[name], mapping[name], key)
    instance = cls(**values)
    validate = getattr(instance, "validate", None)
    if validate is not None:
        validate(where)
    return instance


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [arg for arg in args if arg is not type(None)]
        return _convert(non_none[0], value, key)
    if origin is list:
        if not isinstance(value, list):
            raise GistkvError(f"{key}: expected a list, got {value!r}.")
        return [_convert(args[0], item, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise GistkvError(f"{key}: expected a mapping, got {value!r}.")
        return {k: _convert(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint in (int, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise GistkvError(f"{key}: expected {hint.__name__}, got {value!r}.")
        return value
    if hint is float:
        raise GistkvError(f"{key}: expected a number, got {value!r}.")
    return value


def load_section(path: str | Path, section: str, cls: type[T]) -> T:
    params = read_params(path)
    if section not in params:
        raise GistkvError(f"{path}: section '{section}' missing.")
    return from_mapping(cls, params[section], section)


def require(condition: bool, key: str, message: str) -> None:
    """Raise a one-line params error naming ``key`` unless ``condition`` holds."""
    if not condition:
        raise GistkvError(f"{key}: {message}")
