"""The package works installed, away from a checkout: its files come with it, nothing points into the clone.

The wheel is built from this checkout and unpacked into a temporary folder
(as pip would into site-packages); every check runs there, in another working
directory, so a path computed from the checkout's layout would show.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """site-packages-like folder holding the wheel's files."""
    build = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(build), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.skip(f"cannot build the wheel here (no build backend available offline?): {done.stderr[-300:]}")
    (wheel,) = build.glob("fink_t2-*.whl")
    site = tmp_path_factory.mktemp("site-packages")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def _run(site: Path, cwd: Path, code: str, **env: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FINK_T2_SHARED")}
    environment.update(PYTHONPATH=str(site), **env)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env=environment)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


_FACTS = """
import json, fink_t2, fink_t2.scoring.paths as p
from fink_t2.scoring.cuts import load_cuts
from fink_t2.spark.stream_config import load_stream_config
load_stream_config(p.default_config("stream.yaml")); load_cuts(p.config_file("cuts.yaml"))
print(json.dumps({"package": fink_t2.__file__, "sample": str(p.SAMPLE_ALERTS),
                  "sample_exists": p.SAMPLE_ALERTS.is_file(),
                  "shared": str(p.SHARED_ZTF_ALERTS), "checkout": str(p.checkout_root()),
                  "stream_config": p.default_config("stream.yaml"), "train_config": p.default_config("train.yaml"),
                  "configs": sorted(f.name for f in p.resource("conf").iterdir())}))
"""


def test_installed_package_carries_its_files_and_no_checkout_path(installed, tmp_path):
    facts = _run(installed, tmp_path, _FACTS)
    assert facts["package"].startswith(str(installed))
    assert facts["checkout"] == "None"
    assert facts["sample"] == str(installed / "fink_t2" / "resources" / "alerts_sample.parquet")
    assert facts["sample_exists"]
    assert facts["configs"] == ["cuts.yaml", "stream.yaml", "train.yaml"]
    assert facts["stream_config"] == str(installed / "fink_t2" / "resources" / "conf" / "stream.yaml")
    assert facts["train_config"] == str(installed / "fink_t2" / "resources" / "conf" / "train.yaml")
    # Shared data: ./shared of the working directory unless FINK_T2_SHARED says where.
    assert facts["shared"] == str(tmp_path / "shared" / "data" / "ztf_alerts")
    elsewhere = _run(installed, tmp_path, _FACTS, FINK_T2_SHARED=str(tmp_path / "store"))
    assert elsewhere["shared"] == str(tmp_path / "store" / "data" / "ztf_alerts")


def test_installed_train_config_loads_and_scoring_runs(installed, tmp_path):
    code = """
import json
from fink_t2.scoring.paths import default_config
from fink_t2.training.train import TrainConfig
config = TrainConfig.from_yaml(default_config("train.yaml"))
from fink_t2.scoring.paths import SAMPLE_ALERTS
import fink_t2.tools.cli
import contextlib, io
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = fink_t2.tools.cli.main(["score", str(SAMPLE_ALERTS), "--engine", "pandas", "--summary", "--no-progress"])
print(json.dumps({"epochs": config.epochs, "code": code, "summary": out.getvalue().splitlines()[0]}))
"""
    facts = _run(installed, tmp_path, code)
    assert facts["code"] == 0 and facts["epochs"] > 0
    assert facts["summary"].startswith("329 alerts:")
    assert list(tmp_path.iterdir()) == []


def test_checkout_uses_its_own_files():
    from fink_t2.scoring import paths
    from fink_t2.scoring.paths import SAMPLE_ALERTS

    if paths.checkout_root() is None:
        pytest.skip("the package under test is installed, not this checkout")
    assert SAMPLE_ALERTS.read_bytes() == (ROOT / "data" / "alerts_sample.parquet").read_bytes()
    for name in ("stream.yaml", "cuts.yaml", "train.yaml"):
        assert paths.config_file(name).read_bytes() == (ROOT / "conf" / name).read_bytes()
