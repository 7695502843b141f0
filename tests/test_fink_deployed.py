"""The Fink-as-deployed baseline (bench extra): george GP preparation and the deployed TFLite model.

Skipped without george or without the deployed model file (install the bench
extra, or set FINK_T2_DEPLOYED_MODEL to the .tflite from fink-science 7.4.0).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("george")

from fink_t2.bench import fink_deployed as fd  # noqa: E402
from fink_t2.scoring.alerts import alert_columns_from_files, observations_from_alerts  # noqa: E402
from fink_t2.scoring.classes import N_CLASSES  # noqa: E402
from fink_t2.scoring.lightcurves import Observations  # noqa: E402
from fink_t2.scoring.paths import SHARED_ZTF_ALERTS, alert_files  # noqa: E402

ALERT_FILES = alert_files(SHARED_ZTF_ALERTS) if SHARED_ZTF_ALERTS.is_dir() else []


@pytest.fixture(scope="module")
def model_path() -> Path:
    try:
        return fd.find_deployed_model()
    except fd.DeployedModelError as error:
        pytest.skip(f"deployed model not available: {error}")


@pytest.fixture(scope="module")
def plasticc_views() -> tuple[Observations, np.ndarray]:
    """Full light curves of a small stratified set of real PLAsTiCC objects."""
    from fink_t2.training.plasticc import evaluation_views, load_plasticc, make_views

    try:
        data = load_plasticc(max_objects=30, seed=3)
    except FileNotFoundError as error:
        pytest.skip(str(error))
    objects = np.arange(len(data.object_ids))
    spec, positions = evaluation_views(data.observations, objects, "full")
    return make_views(data.observations, spec), data.labels[positions]


@pytest.fixture(scope="module")
def alerts():
    if not ALERT_FILES:
        pytest.skip("no real ZTF alerts in ../shared/data/ztf_alerts")
    frame = alert_columns_from_files(ALERT_FILES)
    return frame.iloc[::6].reset_index(drop=True)  # about 65 alerts of every file and schema


def _both_bands_detected(obs: Observations) -> np.ndarray:
    det = obs.detected
    g = np.bincount(obs.object_index[det & (obs.band == 0)], minlength=obs.n_objects)
    r = np.bincount(obs.object_index[det & (obs.band == 1)], minlength=obs.n_objects)
    return (g > 0) & (r > 0)


# --------------------------------------------------------------------------- model file


def test_model_file_is_verified(model_path: Path, tmp_path: Path) -> None:
    assert model_path.stat().st_size == fd.DEPLOYED_MODEL_SIZE
    assert fd.find_deployed_model(model_path) == model_path
    assert fd.find_deployed_model(model_path.parent) == model_path  # a folder holding it
    wrong = tmp_path / fd.DEPLOYED_MODEL_NAME
    wrong.write_bytes(b"\0" * fd.DEPLOYED_MODEL_SIZE)
    with pytest.raises(fd.DeployedModelError, match="sha256"):
        fd.find_deployed_model(wrong)
    wrong.write_bytes(b"\0" * 10)
    with pytest.raises(fd.DeployedModelError, match="bytes"):
        fd.find_deployed_model(wrong)
    with pytest.raises(fd.DeployedModelError, match="pip install --no-deps fink-science==7.4.0"):
        fd.find_deployed_model(tmp_path / "missing.tflite")


def test_model_found_in_an_installed_fink_science(model_path: Path, tmp_path: Path, monkeypatch) -> None:
    import importlib
    import shutil

    folder = tmp_path / "fink_science" / "data" / "models"
    folder.mkdir(parents=True)
    (tmp_path / "fink_science" / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    shutil.copyfile(model_path, folder / fd.DEPLOYED_MODEL_NAME)
    monkeypatch.delenv(fd.MODEL_ENV_VAR, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    # A real fink_science imported earlier in the session would be found through sys.modules first.
    for name in [m for m in sys.modules if m == "fink_science" or m.startswith("fink_science.")]:
        monkeypatch.delitem(sys.modules, name)
    importlib.invalidate_caches()
    assert fd.find_deployed_model() == (folder / fd.DEPLOYED_MODEL_NAME).resolve()


def test_band_order_follows_the_hash_seed() -> None:
    orders = {seed: fd.band_order_for_hash_seed(seed) for seed in range(10)}
    assert set(orders.values()) == {("g", "r"), ("r", "g")}  # the fault: both orders occur
    assert fd.band_order_for_hash_seed(2) == orders[2]  # but a fixed seed is reproducible
    assert fd.process_band_order() in {("g", "r"), ("r", "g")}


def test_not_imported_by_the_scoring_path() -> None:
    # Statically: no scoring-path module names this module or george.
    import ast

    package = Path(fd.__file__).resolve().parents[1]  # fink_t2/
    paths = [package / "__init__.py", *(package / "scoring").glob("*.py"), *(package / "spark").glob("*.py")]
    assert {p.stem for p in paths} >= {"runtime", "classifier", "processor", "lightcurves", "__init__"}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
                assert not any("fink_deployed" in n or n.split(".")[0] == "george" for n in names), (path, names)
    # Dynamically: importing what imports cleanly without Spark pulls neither in.
    code = (
        "import sys\n"
        "for name in ('fink_t2', 'fink_t2.scoring.runtime', 'fink_t2.scoring.classifier', 'fink_t2.scoring.column',\n"
        "             'fink_t2.spark.processor', 'fink_t2.tools.batch'):\n"
        "    try:\n"
        "        __import__(name)\n"
        "    except Exception:\n"
        "        pass\n"
        "assert 'fink_t2.bench.fink_deployed' not in sys.modules and 'george' not in sys.modules\n"
    )
    root = str(Path(__file__).resolve().parents[1])
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, capture_output=True,
                   env={"PYTHONPATH": root, "PATH": "/usr/bin:/bin"})

# --------------------------------------------------------------------------- preparation


def test_hand_made_light_curve_time_direction_and_refusals() -> None:
    time = np.arange(12) * 3.0
    band = np.tile([0, 1], 6)
    flux = 100.0 + 40.0 * time  # rising in both bands
    err = np.full(12, 5.0)
    forward = fd.deployed_input(time, band, flux, err, corrected=True)
    assert forward.shape == (100, 2) and forward.dtype == np.float32
    assert np.all(forward[-1] > forward[0])  # latest epoch last
    backward = fd.deployed_input(time, band, flux, err, corrected=False, band_order=("g", "r"))
    assert np.all(backward[0] > backward[-1])  # the deployed fault: latest epoch first
    # Per-object, per-band robust scaling: median 0 and IQR 1 in each band.
    q25, median, q75 = np.percentile(forward, [25, 50, 75], axis=0)
    np.testing.assert_allclose(median, 0.0, atol=1e-5)
    np.testing.assert_allclose(q75 - q25, 1.0, atol=1e-5)
    # The deployed module refused single-band, single-point and zero-span histories.
    assert fd.deployed_input(time, np.zeros(12, int), flux, err) is None
    assert fd.deployed_input(time[:1], band[:1], flux[:1], err[:1]) is None
    assert fd.deployed_input(np.zeros(4), np.array([0, 1, 0, 1]), flux[:4], err[:4]) is None
    assert fd.deployed_input(time, np.zeros(12, int), flux, err, require_both_bands=False).shape == (100, 2)
    with pytest.raises(ValueError, match="corrected=True"):
        fd.deployed_input(time, band, flux, err, corrected=True, band_order=("r", "g"))


def test_plasticc_shapes_and_fault_reorderings(plasticc_views) -> None:
    views, _ = plasticc_views
    corrected, ok = fd.prepare_deployed(views, corrected=True)
    assert corrected.shape == (views.n_objects, 100, 2) and corrected.dtype == np.float32
    np.testing.assert_array_equal(ok, _both_bands_detected(views) & ok)
    assert ok.sum() >= 10 and not np.any(corrected[~ok])
    assert np.all(np.isfinite(corrected))
    # Time reversal only (order [g, r]) and reversal plus band swap (order [r, g]).
    reversed_gr, ok_gr = fd.prepare_deployed(views, corrected=False, band_order=("g", "r"))
    reversed_rg, ok_rg = fd.prepare_deployed(views, corrected=False, band_order=("r", "g"))
    np.testing.assert_array_equal(ok_gr, ok)
    np.testing.assert_array_equal(ok_rg, ok)
    np.testing.assert_allclose(reversed_gr, corrected[:, ::-1, :], atol=1e-4)
    np.testing.assert_allclose(reversed_rg, corrected[:, ::-1, ::-1], atol=1e-4)
    # They really differ (the faults are not no-ops) on objects whose curve is not symmetric.
    assert np.abs(reversed_gr[ok] - corrected[ok]).max() > 0.1


def test_deployed_model_probabilities_per_alert_and_batched(plasticc_views, model_path: Path) -> None:
    views, _ = plasticc_views
    values, ok = fd.prepare_deployed(views, corrected=True)
    batched = fd.predict_deployed(values[ok], model_path, batch_size=7)  # several batches and a short last one
    single = fd.predict_deployed(values[ok], model_path, per_alert=True)
    assert batched.shape == (ok.sum(), N_CLASSES)
    np.testing.assert_allclose(single, batched, atol=1e-6)
    assert np.all((batched >= 0) & (batched <= 1))
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=1e-5)
    assert fd.predict_deployed(np.zeros((0, 100, 2)), model_path).shape == (0, N_CLASSES)
    with pytest.raises(ValueError, match="shape"):
        fd.predict_deployed(np.zeros((2, 50, 2)), model_path)


# --------------------------------------------------------------------------- real alerts


def test_udf_body_on_real_alerts(alerts, model_path: Path) -> None:
    columns = (alerts.cjd, alerts.cfid, alerts.cmagpsf, alerts.csigmapsf)
    deployed = fd.deployed_pandas_udf_body(*columns, model_path, corrected=False, band_order=("r", "g"))
    fixed = fd.deployed_pandas_udf_body(*columns, model_path, corrected=True)
    assert len(deployed) == len(fixed) == len(alerts)
    classified = deployed.notna().to_numpy()
    np.testing.assert_array_equal(classified, fixed.notna().to_numpy())
    assert 5 <= classified.sum() < len(alerts)  # some alerts lack g or r: None, as deployed
    for row in list(deployed[classified]) + list(fixed[classified]):
        p = np.asarray(row)
        assert p.shape == (N_CLASSES,) and np.all((p >= 0) & (p <= 1)) and abs(p.sum() - 1) < 1e-5
    # Same alerts through Observations + prepare_deployed + predict_deployed: same answers.
    obs, _ = observations_from_alerts(*columns)
    values, ok = fd.prepare_deployed(obs, corrected=True)
    np.testing.assert_array_equal(ok, classified)
    expected = fd.predict_deployed(values[ok], model_path)
    np.testing.assert_allclose(np.stack(fixed[classified].to_list()), expected, atol=2e-3)
    # The uncorrected input is the corrected one reversed in time with bands swapped.
    swapped = fd.predict_deployed(np.ascontiguousarray(values[ok][:, ::-1, ::-1]), model_path)
    np.testing.assert_allclose(np.stack(deployed[classified].to_list()), swapped, atol=2e-3)
    # A mask (Fink's other cuts) leaves the rejected alerts unclassified.
    mask = np.zeros(len(alerts), dtype=bool)
    mask[np.flatnonzero(classified)[:3]] = True
    masked = fd.deployed_pandas_udf_body(*columns, model_path, corrected=True, mask=mask)
    assert masked.notna().sum() == 3


def test_udf_body_loads_the_interpreter_on_every_call(alerts, model_path: Path, monkeypatch) -> None:
    calls = []
    original = fd.open_interpreter

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(fd, "open_interpreter", counting)
    head = alerts.iloc[:3]
    for _ in range(2):
        fd.deployed_pandas_udf_body(head.cjd, head.cfid, head.cmagpsf, head.csigmapsf, model_path)
    assert len(calls) == 2
