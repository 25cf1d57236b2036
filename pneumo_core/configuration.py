"""Frozen dataclasses built from YAML, with unknown keys and wrong types as errors.

Every configuration in pneumo-search (training, data, experiments) is a frozen dataclass.
:func:`from_dict` builds one from a plain mapping, checking each value against the field's
type hint, and :func:`load_yaml` reads a file with ``yaml.safe_load`` (so ``!!python`` tags
are refused). Range checks live in each dataclass's ``__post_init__`` and raise
:class:`~pneumo_errors.ConfigError` through :func:`require`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from pneumo_errors import ConfigError

T = TypeVar("T")

__all__ = ["from_dict", "load_config", "load_yaml", "merge_dicts", "require", "to_dict"]


def require(condition: bool, key: str, message: str) -> None:
    """Raises a :class:`ConfigError` for ``key`` unless ``condition`` holds.

    Args:
        condition: The check that must pass.
        key: Name of the field being checked.
        message: What would be valid.

    Raises:
        ConfigError: When ``condition`` is false.
    """
    if not condition:
        raise ConfigError(key, message)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Reads a YAML mapping with ``yaml.safe_load``.

    Args:
        path: The file to read.

    Returns:
        The top-level mapping (empty if the file is empty).

    Raises:
        ConfigError: The file is missing, is not valid YAML, uses a Python tag or is not a
            mapping. The message names the file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("", f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError("", f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError("", f"{path}: not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("", f"{path}: expected a mapping of keys at the top level")
    return data


def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, prefix: str = "") -> T:
    """Builds the frozen dataclass ``cls`` from ``data``, checking keys and types.

    Args:
        cls: A dataclass type.
        data: Its fields as a mapping; ``None`` means all defaults.
        prefix: Dotted path of ``data`` inside a larger file, used in error messages.

    Returns:
        An instance of ``cls``.

    Raises:
        ConfigError: A key is unknown, a required key is missing, or a value has the
            wrong type or fails the dataclass's own checks. The key is named in full.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(prefix, f"expected a mapping, got {_describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        key = _join(prefix, unknown[0])
        raise ConfigError(key, f"unknown key; valid keys here: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        key = _join(prefix, name)
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], key)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(key, "required key is missing")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise exc.under(prefix) from None


def load_config(
    cls: type[T],
    path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
) -> T:
    """Reads a YAML file into the frozen dataclass ``cls`` (every config file's loader).

    Args:
        cls: A dataclass type.
        path: The YAML file.
        overrides: Nested values that replace the file's (``{"data": {"root": ...}}``).
        defaults: Top-level values used where neither the file nor ``overrides`` has one.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: Naming the file and the key at fault.
    """
    raw = merge_dicts(load_yaml(path), overrides or {})
    for key, value in (defaults or {}).items():
        raw.setdefault(key, value)
    try:
        return from_dict(cls, raw)
    except ConfigError as exc:
        raise ConfigError("", f"{path}: {exc}") from None


def to_dict(obj: Any) -> Any:
    """Converts a (nested) dataclass back into plain YAML/JSON-serializable values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    return obj


def merge_dicts(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Returns ``base`` with ``overrides`` merged in, recursively for nested mappings."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_dicts(merged[key], value)
        else:
            merged[key] = value
    return merged


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _convert(value: Any, hint: Any, key: str) -> Any:
    origin = get_origin(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, key)
            except ConfigError as exc:
                errors.append(exc.message)
        raise ConfigError(key, " or ".join(errors))
    if origin is Literal:
        choices = get_args(hint)
        if value not in choices:
            valid = ", ".join(repr(c) for c in choices)
            raise ConfigError(key, f"got {_describe(value)}; valid values: {valid}")
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, prefix=key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"expected a list, got {_describe(value)}")
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(key, f"expected a list of {len(args)} values, got {len(value)}")
        return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(args, value)))
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a mapping, got {_describe(value)}")
        args = get_args(hint)
        value_hint = args[1] if len(args) == 2 else Any
        return {str(k): _convert(v, value_hint, f"{key}.{k}") for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {_describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(key, f"expected an integer, got {_describe(value)}")
        return value
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError(key, f"expected a number, got {_describe(value)}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            # YAML 1.1 reads 1e-3 (no dot) as a string; accept what is clearly a number.
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(key, f"expected a number, got {_describe(value)}")
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {_describe(value)}")
        return value
    raise TypeError(f"unsupported type hint {hint!r} for {key}")  # a programming error
