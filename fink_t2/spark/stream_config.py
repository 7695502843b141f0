"""The stream's configuration: ``conf/stream.yaml`` (strict, safe-loaded), then the command line's flags.

Mapped onto :class:`StreamConfig` by the strict loader of
:mod:`fink_t2.scoring.config`: an unknown key, a wrong type, a non-finite
number, a duplicate key or a YAML alias is ONE error naming the file and the
key, before any alert is read. No pyspark import.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from fink_t2.scoring.config import ConfigError, build, load_yaml
from fink_t2.scoring.cuts import Cuts
from fink_t2.scoring.surveys import SURVEYS


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
    survey: str | None = None  # whose alerts the lake holds: ztf, rubin; null: read off the files' columns

    def validate(self, source: str) -> None:
        for key in ("input", "output", "checkpoint"):
            if not getattr(self, key):
                raise ConfigError(f"{source}: key {key!r} is required (set it in the file or pass --{key})")
        if not math.isfinite(self.trigger_seconds) or self.trigger_seconds <= 0:
            raise ConfigError(f"{source}: key 'trigger_seconds' must be > 0, got {self.trigger_seconds}")
        if not isinstance(self.max_files_per_trigger, int) or self.max_files_per_trigger < 1:
            raise ConfigError(f"{source}: key 'max_files_per_trigger' must be >= 1, got {self.max_files_per_trigger}")
        if self.survey is not None and self.survey not in SURVEYS:
            raise ConfigError(f"{source}: key 'survey' must be one of {sorted(SURVEYS)} or null, got {self.survey!r}")


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


__all__ = ["StreamConfig", "load_stream_config"]
