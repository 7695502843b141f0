"""Strict YAML configuration: files mapped onto typed dataclasses.

Files are read with the strict safe loader (:mod:`fink_t2.scoring.safe_yaml`)
and mapped onto dataclasses (:func:`build`): an unknown key or a value of the
wrong type is ONE clear error naming the file and the key, raised before any
alert is read (a typo in a broker's config must not silently fall back to a
default). The selection cuts (:func:`fink_t2.scoring.cuts.load_cuts`), the
stream (:mod:`fink_t2.spark.stream`), the preparation parameters and the
training configuration are all built this way.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
from pathlib import Path

import yaml

from fink_t2.scoring.safe_yaml import error_text, read_text, short, strict_load

#: Union types as ``typing.get_origin`` reports them (``X | None`` is types.UnionType from Python 3.10 on).
_UNIONS = (typing.Union, getattr(types, "UnionType", typing.Union))


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the file and the key."""


def _type_name(tp) -> str:
    if isinstance(tp, type):
        return {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}.get(
            tp.__name__, tp.__name__)
    return str(tp).replace("typing.", "")


def _coerce(value, tp, source: str, key: str):
    """``value`` of ``key`` checked against the annotation ``tp`` (str/int/float/bool, Optional, list, dataclass)."""
    where = f"{source}: key {key!r}"
    origin = typing.get_origin(tp)
    if origin in _UNIONS:
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, source, key)
            except ConfigError as error:
                errors.append(error)
        raise errors[0]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping of keys, got {type(value).__name__} {short(value)}")
        return build(tp, value, source, prefix=f"{key}.")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {type(value).__name__} {short(value)}")
        (item,) = typing.get_args(tp)[:1]
        return tuple(_coerce(v, item, source, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # .nan / .inf would pass every range check and mean nothing
                raise ConfigError(f"{where} must be a finite number, got {value!r}")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a schema bug, not a user error
        raise TypeError(f"unsupported config type {tp}")
    raise ConfigError(f"{where} must be {_type_name(tp)}, got {type(value).__name__} {short(value)}")


def _field_types(cls) -> dict:
    """The evaluated annotations of dataclass ``cls``, ``X | None`` ones included on Python 3.9.

    On 3.9 ``typing.get_type_hints`` cannot evaluate ``X | None`` (a string under
    ``from __future__ import annotations``): each top-level ``|`` alternative is
    then evaluated alone and the alternatives joined into ``typing.Union``.
    """
    try:
        return typing.get_type_hints(cls)
    except TypeError:
        if sys.version_info >= (3, 10):
            raise
    namespace = vars(sys.modules[cls.__module__])
    hints = {}
    for klass in reversed(cls.__mro__):
        for name, annotation in getattr(klass, "__annotations__", {}).items():
            if not isinstance(annotation, str):
                hints[name] = annotation
                continue
            options = tuple(_evaluate(part, namespace) for part in _top_level_alternatives(annotation))
            hints[name] = typing.Union[options] if len(options) > 1 else options[0]
    return hints


def _evaluate(annotation: str, namespace: dict):
    """One annotation without a top-level ``|``, evaluated by ``typing.get_type_hints`` in ``namespace``."""
    holder = type("_Annotation", (), {"__annotations__": {"value": annotation}})
    return typing.get_type_hints(holder, globalns=namespace)["value"]


def _top_level_alternatives(annotation: str) -> list[str]:
    """``"tuple[int, ...] | None"`` -> ``["tuple[int, ...]", "None"]`` (a ``|`` inside brackets is kept)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(annotation):
        depth += ch in "[("
        depth -= ch in "])"
        if ch == "|" and depth == 0:
            parts.append(annotation[start:i].strip())
            start = i + 1
    parts.append(annotation[start:].strip())
    return parts


def build(cls, values: dict, source: str, prefix: str = ""):
    """An instance of dataclass ``cls`` from ``values``; errors name ``source`` and the dotted key."""
    hints = _field_types(cls)
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [k for k in values if k not in known]
    if unknown:
        raise ConfigError(f"{source}: unknown key {short(prefix + str(unknown[0]))} (known keys: {', '.join(known)})")
    kwargs = {key: _coerce(value, hints[key], source, prefix + key) for key, value in values.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as error:  # the class's own range checks (__post_init__)
        raise ConfigError(f"{source}: {error}") from error


def load_yaml(path: str | Path) -> dict:
    """A YAML mapping from ``path`` (safe types, no aliases, no duplicate keys), with errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path}")
    try:
        data = strict_load(read_text(path))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error_text(error)}") from error
    except (OSError, ValueError) as error:  # unreadable, not UTF-8, too large
        raise ConfigError(f"{path}: cannot be read as a configuration file: {error_text(error)}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


__all__ = ["ConfigError", "build", "load_yaml"]
