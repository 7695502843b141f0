"""Shared fixtures: the real-alert sample and ONE local Spark session for all Spark tests.

Spark starts once per test run (about 10 s); tests that need it are marked
``@pytest.mark.spark`` and take the ``spark`` fixture.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from fink_t2.scoring.paths import SAMPLE_ALERTS

ROOT = Path(__file__).resolve().parent.parent


def copy_model(folder: Path, data: bytes | None = None, meta_changes: dict | None = None,
               name: str = "model.tflite") -> Path:
    """The shipped model (or ``data``) written as ``folder/name`` beside its metadata, with ``meta_changes``.

    Tests import it (``from conftest import copy_model``) to build good, damaged or mislabelled model files.
    Changed metadata gets a matching ``identity_sha256`` (as if written so by ``write_metadata``) unless
    ``meta_changes`` sets one itself.
    """
    import yaml

    from fink_t2.scoring.runtime import DEFAULT_MODEL, metadata_identity, metadata_path

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(DEFAULT_MODEL.read_bytes() if data is None else data)
    if meta_changes:
        meta = yaml.safe_load(metadata_path(DEFAULT_MODEL).read_text())
        meta.update(meta_changes)
        if "identity_sha256" not in meta_changes:
            meta["identity_sha256"] = metadata_identity(meta)
        metadata_path(path).write_text(yaml.safe_dump(meta))
    else:
        metadata_path(path).write_bytes(metadata_path(DEFAULT_MODEL).read_bytes())
    return path


#: Slows every t2 UDF batch from outside the package (slow_workers/sitecustomize.py): the variable and its log line.
SLOW_WORKERS = Path(__file__).resolve().parent / "slow_workers"
SLOW_BATCH_ENV, SLOW_BATCH_MARKER = "T2_TEST_BATCH_SECONDS", "t2 test batch: "


def job_env(delay: float | None = None) -> dict:
    """The environment of a fink-t2 job a test starts; with ``delay``, every UDF batch waits that long."""
    env = dict(os.environ)
    first = [str(SLOW_WORKERS)] if delay is not None else []
    env["PYTHONPATH"] = os.pathsep.join(p for p in (*first, str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYSPARK_PYTHON"] = sys.executable
    env["PYSPARK_SUBMIT_ARGS"] = ("--conf spark.ui.enabled=false --conf spark.ui.showConsoleProgress=false "
                                  "--conf spark.sql.shuffle.partitions=1 --driver-memory 512m pyspark-shell")
    env.pop(SLOW_BATCH_ENV, None)
    if delay is not None:
        env[SLOW_BATCH_ENV] = str(delay)
    return env


def write_parts(table, folder: Path, sizes: list[int], prefix: str = "alerts") -> list[Path]:
    """Consecutive slices of ``table`` as parquet files (size 0 gives a file with the schema and no rows)."""
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    paths, start = [], 0
    for i, size in enumerate(sizes):
        path = folder / f"{prefix}-{i:02d}.parquet"
        pq.write_table(table.slice(start, size), path)
        start += size
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def stream_module():
    """``run_t2_stream.py`` (a script, not a package module) loaded once per test module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_t2_stream", ROOT / "run_t2_stream.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def sample_path() -> Path:
    assert SAMPLE_ALERTS.exists(), "data/alerts_sample.parquet is missing: run python data/make_sample.py"
    return SAMPLE_ALERTS


@pytest.fixture(scope="session")
def sample_table(sample_path):
    import pyarrow.parquet as pq

    return pq.read_table(sample_path)


@pytest.fixture(scope="session")
def sample_columns(sample_table):
    """Fink's c* columns of the sample alerts (pandas, one numpy array per cell)."""
    from fink_t2.scoring.alerts import alert_columns

    return alert_columns(sample_table)


def n_detections(columns):
    """Valid g/r detections per alert of a frame of Fink's c* columns (numpy array)."""
    import numpy as np

    from fink_t2.scoring.alerts import observations_from_columns

    obs, _ = observations_from_columns(columns)
    return np.bincount(obs.object_index[obs.detected], minlength=len(columns))


@pytest.fixture(scope="session")
def judged_columns(sample_columns):
    """The sample alerts the model judges (>= scoring.MIN_DETECTIONS detections), index 0..n-1."""
    from fink_t2.scoring import MIN_DETECTIONS

    keep = n_detections(sample_columns) >= MIN_DETECTIONS
    return sample_columns[keep].reset_index(drop=True)


@pytest.fixture(scope="session")
def spark():
    """One local Spark session, a single reused Python worker (local[1], worker reuse on)."""
    pytest.importorskip("pyspark")
    # Workers must import this checkout even when the package is not installed.
    path = os.environ.get("PYTHONPATH", "")
    if str(ROOT) not in path.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), path) if p)
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from fink_t2.spark.processor import spark_session

    session = spark_session("fink-t2-tests", master="local[1]", conf={
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.python.worker.reuse": "true",
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.memory": "1g",
        "spark.sql.streaming.pollingDelay": "100ms",
    })
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


#: Tests that take minutes on a 2-core machine, besides those marked ``tensorflow`` (training): ``slow``.
SLOW_TESTS = ("test_sigkill_mid_batch_then_restart_neither_loses_nor_duplicates",
              "test_smoke_run_report_is_complete_and_consistent")


def pytest_collection_modifyitems(config, items):
    """Mark the slow tests ``slow`` (deselected by pyproject's addopts; .ci/run runs them with -m slow)."""
    for item in items:
        if item.get_closest_marker("tensorflow") or item.originalname in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
