"""Data safety, round 3 (issue 26): concurrent writers, stale output, and the last tracebacks.

Each test names the issue's item it covers. Concurrent publishing is tested with real
concurrent processes (``fink-t2 score`` with both engines, and the stream).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import copy_model

from fink_t2.scoring.runtime import DEFAULT_MODEL, ModelFileError, load_model, metadata_path
from fink_t2.tools.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent


def _one_line(text: str, prefix: str = "fink-t2 score: error:") -> str:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


# --------------------------------------------------------------------------- 3. model metadata ranges


def _shipped_metadata() -> dict:
    return yaml.safe_load(metadata_path(DEFAULT_MODEL).read_text())


def _set(meta: dict, dotted: str, value) -> dict:
    meta = copy.deepcopy(meta)
    *parents, last = dotted.split(".")
    node = meta
    for key in parents:
        node = node[key]
    node[last] = value
    return meta


@pytest.mark.parametrize("key, value", [
    ("size_bytes", 2**70), ("size_bytes", 2**40),
    ("min_detections", 10**9),
    ("preparation.n_steps", 10**7),
    ("preparation.step_days", 1e308), ("preparation.step_days", 1e-300),
    ("preparation.time_scale_days", 1e300),
    ("preparation.wavelength_scale", 1e-300),
    ("preparation.noise_floor", 1e300),
    ("preparation.max_points", 10**12),
    ("preparation.limit_noise_factor", 1e-310),
    ("calibration.temperature", 1e-310), ("calibration.temperature", 1e300),
    ("calibration.class_priors.ztf_alerts.SNIa", 1e300),
    ("calibration.class_priors.ztf_alerts.KN", 1e-320),
    ("held_out_balanced_accuracy", 7.0),
    ("saved_model_bytes", 2**70),
])
def test_metadata_values_outside_their_range_are_one_line(tmp_path, sample_path, capsys, key, value):
    """Item 3: every number the metadata sets is range-checked, even when the identity hash was recomputed."""
    meta = _set(_shipped_metadata(), key, value)
    changes = {top: meta[top] for top in meta if top != "identity_sha256"}
    model = copy_model(tmp_path / "m", meta_changes=changes)
    with pytest.raises(ModelFileError, match="outside the plausible range") as raised:
        load_model(model)
    text = str(raised.value)
    assert str(metadata_path(model)) in text and key in text and "reinstall fink-t2" in text
    out = tmp_path / "out.parquet"
    assert cli_main(["score", str(sample_path), "--engine", "pandas", "--model", str(model), "--output", str(out),
                     "--no-progress"]) == 2
    assert "outside the plausible range" in _one_line(capsys.readouterr().err)
    assert not out.exists()


def test_shipped_models_are_within_the_ranges():
    from fink_t2.scoring.paths import MODELS

    for path in sorted(MODELS.glob("*.tflite")):
        load_model(path)
