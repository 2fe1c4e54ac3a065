"""Read one section of ``params.yaml`` into a typed dataclass, checked by pydantic.

Each stage reads only its own section (stage name = params section), and the defaults
live in ``params.yaml`` alone: a dataclass field without a value in the file is an error,
not a silent default.

    >>> from gistkv.params import load_section
    >>> from gistkv.core.model import ModelParams
    >>> load_section("params.yaml", "model", ModelParams)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from gistkv.errors import GistkvError

T = TypeVar("T")

# What pydantic.with_config would set on every params dataclass: a key the class does not know is an error.
PARAMS_CONFIG = pydantic.ConfigDict(extra="forbid")


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
    """Build dataclass ``cls`` from ``mapping`` with pydantic; ``where`` names the section in errors.

    Types are strict (``"1"`` is not an int, ``true`` is not a number), unknown keys are refused, a field
    without a default must be in the file; then the class's own ``validate(where)`` checks ranges and
    cross-field rules. Every failure is one line naming the key.
    """
    if not isinstance(mapping, dict):
        raise GistkvError(f"{where}: expected a mapping, got {type(mapping).__name__}.")
    if problem := _not_json(mapping, where):
        raise GistkvError(problem)
    _forbid_unknown_keys(cls)
    try:
        # JSON mode: strict types still accept a mapping for a nested dataclass (Python mode wants an instance).
        instance = pydantic.TypeAdapter(cls).validate_json(json.dumps(mapping), strict=True)
    except pydantic.ValidationError as err:
        errors = err.errors()
        # A misspelt key is also a missing one: name the misspelling, which is what the user typed.
        unknown = [error for error in errors if error["type"] == "unexpected_keyword_argument"]
        raise GistkvError(_one_line((unknown or errors)[0], where, cls)) from None
    _validate(instance, where)
    return instance


def _validate(value: Any, key: str) -> None:
    """Each dataclass's own ``validate(key)``, nested ones first (their keys named in full)."""
    if dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            _validate(getattr(value, field.name), f"{key}.{field.name}")
        if callable(getattr(value, "validate", None)):
            value.validate(key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _validate(item, f"{key}.{index}")
    elif isinstance(value, dict):
        for name, item in value.items():
            _validate(item, f"{key}.{name}")


def _not_json(value: Any, key: str) -> str | None:
    """Where YAML gave something JSON (and so pydantic's strict mode) cannot hold: a date, a non-string key."""
    if isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                return f"{key}.{name}: a key must be a string, got {name!r}; quote it in params.yaml."
            if problem := _not_json(item, f"{key}.{name}"):
                return problem
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if problem := _not_json(item, f"{key}.{index}"):
                return problem
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        return f"{key}: YAML read {value!r} as a {type(value).__name__}; quote it in params.yaml if it is text."
    return None


def _forbid_unknown_keys(cls: type) -> None:
    """Give ``cls`` and the dataclasses nested in it pydantic's ``extra="forbid"`` (what ``with_config`` sets)."""
    if not dataclasses.is_dataclass(cls) or "__pydantic_config__" in vars(cls):
        return
    cls.__pydantic_config__ = PARAMS_CONFIG
    for hint in typing.get_type_hints(cls).values():
        for inner in (hint, *_type_args(hint)):
            _forbid_unknown_keys(inner)


def _type_args(hint: Any) -> list:
    args = list(typing.get_args(hint))
    return args + [nested for arg in args for nested in _type_args(arg)]


def _one_line(error: dict, where: str, cls: type) -> str:
    key = ".".join([where, *(str(part) for part in error["loc"])])
    if error["type"] == "missing":
        return f"{key}: missing in params."
    if error["type"] == "unexpected_keyword_argument":
        owner = _owner(cls, error["loc"][:-1])
        known = ", ".join(sorted(field.name for field in dataclasses.fields(owner))) if owner else "see params.yaml"
        return f"{key}: unknown key (known: {known})."
    # The input went through JSON (see from_mapping); say it in YAML's words.
    message = error["msg"].replace("an object", "a mapping").replace("a valid array", "a list")
    return f"{key}: {message}, got {error['input']!r}."


def _owner(cls: type, loc: tuple) -> type | None:
    """The dataclass that holds the key at ``loc`` (through nested dataclasses, lists and mappings)."""
    for part in loc:
        hints = typing.get_type_hints(cls)
        if part not in hints:      # a list index or a mapping key: the same dataclass holds the next part
            continue
        nested = [arg for arg in (hints[part], *_type_args(hints[part])) if dataclasses.is_dataclass(arg)]
        if not nested:
            return None
        cls = nested[0]
    return cls


def load_section(path: str | Path, section: str, cls: type[T]) -> T:
    params = read_params(path)
    if section not in params:
        raise GistkvError(f"{path}: section '{section}' missing.")
    return from_mapping(cls, params[section], section)


def require(condition: bool, key: str, message: str) -> None:
    """Raise a one-line params error naming ``key`` unless ``condition`` holds."""
    if not condition:
        raise GistkvError(f"{key}: {message}")
