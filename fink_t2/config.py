"""Strict YAML configuration for the streaming job and batch scoring.

Files are read with ``yaml.safe_load`` and mapped onto dataclasses: an
unknown key or a value of the wrong type is ONE clear error naming the file
and the key, raised before any alert is read (a typo in a broker's config
must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fink_t2.safe_yaml import error_text, read_text, short, strict_load
from fink_t2.scoring import Cuts


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
    if origin in (typing.Union, types.UnionType):
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


def build(cls, values: dict, source: str, prefix: str = ""):
    """An instance of dataclass ``cls`` from ``values``; errors name ``source`` and the dotted key."""
    hints = typing.get_type_hints(cls)
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


@dataclass
class StreamConfig:
    """Settings of ``run_t2_stream.py`` (conf/stream.yaml); every key can be overridden by a flag."""

    input: str | None = None  # directory of raw alert parquet files (Fink's raw lake)
    output: str | None = None  # parquet sink directory
    checkpoint: str | None = None  # checkpoint directory (offsets, commits)
    model_path: str | None = None  # null: the model shipped in the package
    trigger_seconds: float = 10.0  # processing-time trigger interval
    max_files_per_trigger: int = 10  # files per micro-batch
    once: bool = False  # process what is there (available-now), then stop
    query_name: str = "fink_t2"
    cuts: Cuts = field(default_factory=Cuts)

    def validate(self, source: str) -> None:
        for key in ("input", "output", "checkpoint"):
            if not getattr(self, key):
                raise ConfigError(f"{source}: key {key!r} is required (set it in the file or pass --{key})")
        if not math.isfinite(self.trigger_seconds) or self.trigger_seconds <= 0:
            raise ConfigError(f"{source}: key 'trigger_seconds' must be > 0, got {self.trigger_seconds}")
        if not isinstance(self.max_files_per_trigger, int) or self.max_files_per_trigger < 1:
            raise ConfigError(f"{source}: key 'max_files_per_trigger' must be >= 1, got {self.max_files_per_trigger}")


def load_stream_config(path: str | Path | None, overrides: dict | None = None) -> StreamConfig:
    """conf/stream.yaml (or defaults if ``path`` is None) with non-None ``overrides`` applied, validated."""
    source = str(path) if path is not None else "defaults"
    values = load_yaml(path) if path is not None else {}
    config = build(StreamConfig, values, source)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key.startswith("cuts."):
            try:
                config.cuts = dataclasses.replace(config.cuts, **{key[5:]: value})
            except ValueError as error:
                raise ConfigError(f"{source}: {error}") from error
        else:
            setattr(config, key, value)
    config.validate(source)
    return config


def load_cuts(path: str | Path) -> Cuts:
    """Selection cuts from a YAML file holding a ``cuts:`` mapping (as in conf/stream.yaml)."""
    values = load_yaml(path)
    unknown = [k for k in values if k != "cuts"]
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} (a cuts file holds only 'cuts')")
    return build(Cuts, values.get("cuts") or {}, str(path), prefix="cuts.")


__all__ = ["ConfigError", "StreamConfig", "load_stream_config", "load_cuts", "build", "load_yaml"]
