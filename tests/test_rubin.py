"""Rubin (LSST) alerts: every schema version and the Avro file read, flux units, bands, scoring and Spark.

The shared files (``../shared/data/rubin_alerts``) hold every schema version
Fink's test data has (lsst v7.1, v10.0, ELAsTiCC v0.9, Fink-enriched Avro);
tests on them skip when the folder is absent. ``data/rubin_alerts_sample.parquet``
is always there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fink_t2.scoring.arrow_compat import pyarrow_version, struct_field
from fink_t2.scoring.lightcurves import NJY_TO_FLUXCAL
from fink_t2.scoring.paths import SAMPLE_RUBIN_ALERTS, SHARED_RUBIN_ALERTS
from fink_t2.scoring.rubin_alerts import (
    HOST_Z_COLUMN,
    REASON_LENGTHS,
    REASON_NO_RUBIN_BAND,
    RUBIN_COLUMNS,
    observations_from_rubin,
    rubin_alert_columns,
)

#: Shared file -> (alerts, name of the time / band / flux fields in diaSource).
SHARED_FILES = {
    "fink_science_rubin_v10_0_ddf.parquet": (25, ("midpointMjdTai", "band", "psfFlux")),
    "fink_science_rubin_or4_v7_1.parquet": (50, ("midpointMjdTai", "band", "psfFlux")),
    "fink_science_elasticc_sample.parquet": (89, ("midPointTai", "filterName", "psFlux")),
    "fink_science_elasticc_snia.parquet": (556, ("midPointTai", "filterName", "psFlux")),
    "fink_science_elasticc_agn.parquet": (100, ("midPointTai", "filterName", "psFlux")),
}
AVRO_FILE = "fink_client_rubin_enriched.avro"


def shared(name: str):
    path = SHARED_RUBIN_ALERTS / name
    if not path.is_file():
        pytest.skip(f"{path} absent (shared Rubin alerts not available here)")
    return path


def _expected_points(table: pa.Table, fields: tuple[str, str, str]) -> list[list[tuple]]:
    """Per alert, (time, band, flux) of prvDiaSources then diaSource, read row by row (the slow, obvious way)."""
    time, band, flux = fields
    out = []
    for alert in table.select(["diaSource", "prvDiaSources"]).to_pylist():
        points = [(p[time], p[band], p[flux]) for p in (alert["prvDiaSources"] or [])]
        current = alert["diaSource"]
        points.append((current[time], current[band], current[flux]))
        out.append(points)
    return out


def _check_columns_match_rows(table: pa.Table, fields) -> pd.DataFrame:
    frame = rubin_alert_columns(table)
    assert list(frame.columns) == [*RUBIN_COLUMNS, HOST_Z_COLUMN]
    assert len(frame) == table.num_rows
    expected = _expected_points(table, fields)
    for i, points in enumerate(expected):
        assert len(frame["cmidpointMjdTai"].iloc[i]) == len(points)
        np.testing.assert_allclose(frame["cmidpointMjdTai"].iloc[i], [p[0] for p in points])
        assert list(frame["cband"].iloc[i]) == [p[1] for p in points]
        np.testing.assert_allclose(frame["cpsfFlux"].iloc[i], np.array([p[2] for p in points], dtype=np.float64),
                                   rtol=1e-6)
    return frame


# --------------------------------------------------------------------------- schema versions


@pytest.mark.parametrize("name", sorted(SHARED_FILES))
def test_every_schema_version_reads_history_first_current_last(name):
    alerts, fields = SHARED_FILES[name]
    table = pq.read_table(shared(name))
    assert table.num_rows == alerts
    frame = _check_columns_match_rows(table, fields)
    obs, reason = observations_from_rubin(*(frame[c] for c in RUBIN_COLUMNS))
    assert obs.n_objects == alerts and np.equal(reason, None).all()
    assert set(np.unique(obs.band)) <= set(range(6)) and obs.detected.all()
    # the current alert is the last point of each alert: its time is the alert's latest
    last = np.array([t[-1] for t in frame["cmidpointMjdTai"]])
    current = struct_field(table.column("diaSource").combine_chunks(), fields[0]).to_numpy()
    np.testing.assert_array_equal(last, current)


def test_elasticc_host_redshift_and_all_six_bands():
    table = pq.read_table(shared("fink_science_elasticc_sample.parquet"))
    frame = rubin_alert_columns(table)
    zphot = struct_field(table.column("diaObject").combine_chunks(), "hostgal_zphot").to_numpy(
        zero_copy_only=False).astype(float)
    known = np.isfinite(zphot) & (zphot >= 0)
    assert 0 < known.sum() < len(zphot)  # ELAsTiCC marks an unknown host redshift with a negative value
    np.testing.assert_allclose(frame[HOST_Z_COLUMN][known], zphot[known])
    assert frame[HOST_Z_COLUMN][~known].isna().all()
    obs, _ = observations_from_rubin(*(frame[c] for c in RUBIN_COLUMNS))
    assert np.bincount(obs.band, minlength=6).min() > 0  # u g r i z y all present (ELAsTiCC writes "Y")


def test_real_rubin_alerts_have_no_host_redshift_and_negative_fluxes():
    table = pq.read_table(shared("fink_science_rubin_or4_v7_1.parquet"))
    frame = rubin_alert_columns(table)
    assert frame[HOST_Z_COLUMN].isna().all()
    obs, _ = observations_from_rubin(*(frame[c] for c in RUBIN_COLUMNS))
    flat = np.concatenate(frame["cpsfFlux"].to_list())
    assert (flat < 0).sum() > 0 and (obs.flux < 0).sum() == (flat < 0).sum()  # every negative flux kept


def test_history_without_a_band_field_is_dropped_not_guessed():
    """lsst v7.1 may carry ``band`` in diaSource only: history points without a band are dropped."""
    source = pa.struct([("midpointMjdTai", pa.float64()), ("band", pa.string()), ("psfFlux", pa.float64()),
                        ("psfFluxErr", pa.float64())])
    past = pa.struct([("midpointMjdTai", pa.float64()), ("psfFlux", pa.float64()), ("psfFluxErr", pa.float64())])
    table = pa.table({
        "diaSource": pa.array([{"midpointMjdTai": 60010.0, "band": "g", "psfFlux": 5000.0, "psfFluxErr": 100.0}],
                              type=source),
        "prvDiaSources": pa.array([[{"midpointMjdTai": 60000.0, "psfFlux": 4000.0, "psfFluxErr": 90.0}]],
                                  type=pa.list_(past)),
    })
    frame = rubin_alert_columns(table)
    assert list(frame["cband"].iloc[0]) == [None, "g"]
    obs, reason = observations_from_rubin(*(frame[c] for c in RUBIN_COLUMNS))
    assert obs.time.tolist() == [60010.0] and reason[0] is None


def test_a_diasource_without_the_fields_is_a_clear_error():
    table = pa.table({"diaSource": pa.array([{"mjd": 1.0}])})
    with pytest.raises(ValueError, match="midpointMjdTai or midPointTai"):
        rubin_alert_columns(table)


# --------------------------------------------------------------------------- units and bands


def test_njy_to_fluxcal_is_the_zero_point_difference():
    """31.4 (nJy) -> 27.5 (FLUXCAL): a 27.5 AB mag source has 10**(0.4 * 3.9) nJy and FLUXCAL 1."""
    assert NJY_TO_FLUXCAL == pytest.approx(10 ** (-0.4 * 3.9))
    njy_of_mag_27_5 = 10 ** (-0.4 * (27.5 - 31.4))
    obs, _ = observations_from_rubin([[1.0, 2.0]], [["r", "r"]], [[njy_of_mag_27_5, -njy_of_mag_27_5]],
                                     [[njy_of_mag_27_5 / 10, njy_of_mag_27_5 / 10]])
    np.testing.assert_allclose(obs.flux, [1.0, -1.0])
    np.testing.assert_allclose(obs.flux_err, [0.1, 0.1])
    assert obs.detected.all()  # a negative difference flux is a measurement, not an upper limit


def test_all_six_bands_in_order_and_unknown_bands_dropped():
    names = ["u", "g", "r", "i", "z", "y", "Y", " g ", "w", None, "VR"]
    n = len(names)
    obs, reason = observations_from_rubin([np.arange(n, dtype=float)], [names], [np.full(n, 100.0)],
                                          [np.full(n, 10.0)])
    assert obs.band.tolist() == [0, 1, 2, 3, 4, 5, 5, 1]
    assert obs.time.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert reason[0] is None


def test_alert_with_only_unknown_bands_or_bad_values_is_declined_with_a_reason():
    obs, reason = observations_from_rubin(
        [[1.0, 2.0], [1.0], [1.0, 2.0], [np.nan]],
        [["w", "x"], ["g"], ["g"], ["r"]],
        [[10.0, 20.0], [np.inf], [10.0, 20.0], [5.0]],
        [[1.0, 1.0], [1.0], [1.0, 1.0], [1.0]])
    assert reason[0] == REASON_NO_RUBIN_BAND
    assert reason[2] == REASON_LENGTHS
    assert reason[1] is None and reason[3] is None  # no usable point: the preparation declines them
    assert obs.object_index.tolist() == []


def test_odd_cell_types_never_raise():
    obs, reason = observations_from_rubin(
        pd.Series([None, "abc", [1.0, "x"], np.array([3.0])], dtype=object),
        pd.Series([None, ["g"], ["g", 7], [b"r"]], dtype=object),
        pd.Series([None, [1.0], [2.0, 3.0], [4.0]], dtype=object),
        pd.Series([None, [1.0], [1.0, 1.0], [1.0]], dtype=object))
    assert obs.n_objects == 4
    assert obs.object_index.tolist() == [2, 3] and obs.band.tolist() == [1, 2]  # the one valid point of each
    assert reason[1] == REASON_LENGTHS


def test_arrow_and_pandas_inputs_agree():
    frame = rubin_alert_columns(pq.read_table(SAMPLE_RUBIN_ALERTS))
    from_pandas, _ = observations_from_rubin(*(frame[c] for c in RUBIN_COLUMNS))
    arrow = [pa.array(frame[c].to_list()) for c in RUBIN_COLUMNS]
    from_arrow, _ = observations_from_rubin(*arrow)
    for name in ("object_index", "time", "band", "flux", "flux_err", "detected"):
        np.testing.assert_array_equal(getattr(from_pandas, name), getattr(from_arrow, name))


# --------------------------------------------------------------------------- the sample and the Avro file


def test_sample_is_real_rubin_alerts_with_histories():
    table = pq.read_table(SAMPLE_RUBIN_ALERTS)
    assert 30 <= table.num_rows <= 60
    assert set(table.column("lsst_schema_version").to_pylist()) == {"10.0", "7.1"}
    frame = rubin_alert_columns(table)
    lengths = frame["cmidpointMjdTai"].map(len)
    assert (lengths >= 20).sum() >= 10 and (lengths == 1).sum() >= 10  # long histories and lone detections


#: pyarrow 9 (Fink's ZTF image) cannot build the Rubin Avro files' map columns from Python dicts; Rubin
#: alerts are read in Fink's Rubin image (pyarrow 16).
OLD_PYARROW_MAPS = pytest.mark.skipif(pyarrow_version() < (10,), reason="pyarrow < 10 builds no map column from "
                                      "dicts: the Rubin Avro files are read on Fink's Rubin image, not the ZTF one")


@OLD_PYARROW_MAPS
def test_avro_reader_matches_the_records():
    fastavro = pytest.importorskip("fastavro", reason="fastavro (the Avro reader's dependency) not installed")
    from fink_t2.tools.avro_alerts import read_avro

    path = shared(AVRO_FILE)
    table = read_avro(path)
    with open(path, "rb") as handle:
        records = list(fastavro.reader(handle))
    assert table.num_rows == len(records) == 7
    assert table.column_names == [f["name"] for f in fastavro.reader(open(path, "rb")).writer_schema["fields"]]
    frame = _check_columns_match_rows(table, ("midpointMjdTai", "band", "psfFlux"))
    assert [len(t) for t in frame["cmidpointMjdTai"]] == [len(r["prvDiaSources"] or []) + 1 for r in records]


def test_avro_reader_damaged_file_is_one_clear_line(tmp_path):
    pytest.importorskip("fastavro", reason="fastavro not installed")
    from fink_t2.scoring.inputs import InputError
    from fink_t2.tools.avro_alerts import read_avro

    bad = tmp_path / "bad.avro"
    bad.write_bytes(b"not avro at all")
    with pytest.raises(InputError, match=r"cannot read Avro file .*bad\.avro.*remove or replace it") as info:
        read_avro(bad)
    assert "\n" not in str(info.value)


def test_avro_reader_without_fastavro_says_how_to_install(monkeypatch, tmp_path):
    import builtins

    from fink_t2.scoring.inputs import InputError
    from fink_t2.tools.avro_alerts import read_avro

    real_import = builtins.__import__

    def no_fastavro(name, *args, **kwargs):
        if name == "fastavro":
            raise ModuleNotFoundError("No module named 'fastavro'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_fastavro)
    with pytest.raises(InputError, match=r"pip install 'fink-t2\[avro\]'"):
        read_avro(tmp_path / "x.avro")


# --------------------------------------------------------------------------- scoring (a six-band model)


@pytest.fixture(scope="module")
def rubin_model(tmp_path_factory) -> Path:
    """The shipped Rubin model if the package has it, else a tiny untrained six-band one written by the
    compression code (TensorFlow needed; skipped without it). Scoring is checked for its contract, not skill."""
    from fink_t2.scoring.paths import default_model

    shipped = default_model("rubin")
    if shipped.is_file():
        return shipped
    pytest.importorskip("tensorflow", reason="no shipped Rubin model and no TensorFlow to build a test one")
    pytest.importorskip("tf_keras", reason="no shipped Rubin model and no tf_keras to build a test one")
    from fink_t2.scoring.lightcurves import PreparationConfig
    from fink_t2.training.compression import convert, save_tflite
    from fink_t2.training.model import ModelConfig, build_model

    preparation = PreparationConfig(survey="rubin", context_channels=True, host_redshift=True)
    keras_model = build_model(preparation.n_steps, preparation.n_channels,
                              ModelConfig(d_model=8, num_heads=2, ff_dim=16, num_blocks=1), seed=3)
    data = convert(keras_model, "float32", preparation.n_steps)
    return save_tflite(data, tmp_path_factory.mktemp("rubin_model") / "t2_rubin_test.tflite", preparation)


def _check_scores(probs: pd.DataFrame, reasons: pd.Series) -> None:
    classified = reasons.isna().to_numpy()
    values = probs.to_numpy()
    np.testing.assert_allclose(values[classified].sum(axis=1), 1.0, atol=1e-6)
    assert np.isnan(values[~classified]).all()
    assert all(isinstance(r, str) and r for r in reasons[~classified])


def test_classify_rubin_sample_raw_and_c_columns_agree(rubin_model):
    from fink_t2.scoring import classify_with_reasons

    raw = pq.read_table(SAMPLE_RUBIN_ALERTS).to_pandas()
    probs, reasons = classify_with_reasons(raw, rubin_model)  # survey read off the diaSource column
    _check_scores(probs, reasons)
    assert reasons.isna().sum() >= 10  # the alerts with histories are classified
    columns = rubin_alert_columns(pq.read_table(SAMPLE_RUBIN_ALERTS))
    lone = columns["cmidpointMjdTai"].map(len).to_numpy() == 1
    assert (reasons[lone] == "fewer than 2 valid u/g/r/i/z/y detections: too little for the model").all()
    again, again_reasons = classify_with_reasons(columns, rubin_model, survey="rubin")
    np.testing.assert_allclose(again.to_numpy(), probs.to_numpy(), atol=1e-6, equal_nan=True)
    assert again_reasons.equals(reasons)


def test_negative_fluxes_reach_the_model(rubin_model):
    """Flipping the sign of an alert's fluxes changes its input (and so its scores): negatives are not dropped."""
    from fink_t2.scoring import classify

    columns = rubin_alert_columns(pq.read_table(SAMPLE_RUBIN_ALERTS))
    row = int(np.argmax(columns["cmidpointMjdTai"].map(len).to_numpy()))
    one = columns.iloc[[row]].reset_index(drop=True)
    flipped = one.copy()
    flipped["cpsfFlux"] = [-np.asarray(one["cpsfFlux"].iloc[0])]
    a, b = classify(one, rubin_model, survey="rubin"), classify(flipped, rubin_model, survey="rubin")
    assert np.isfinite(a.to_numpy()).all() and np.isfinite(b.to_numpy()).all()
    assert not np.allclose(a.to_numpy(), b.to_numpy(), atol=1e-7)


def test_host_redshift_reaches_a_model_that_reads_it(rubin_model):
    from fink_t2.scoring import classify
    from fink_t2.scoring.runtime import get_model

    if not get_model(rubin_model).preparation.host_redshift:
        pytest.skip("this Rubin model has no host-redshift channels")
    table = pq.read_table(shared("fink_science_elasticc_sample.parquet"))
    columns = rubin_alert_columns(table)
    known = columns[HOST_Z_COLUMN].notna()
    unknown = columns.assign(**{HOST_Z_COLUMN: np.nan})
    with_z, without_z = classify(columns, rubin_model, survey="rubin"), classify(unknown, rubin_model, survey="rubin")
    both = known.to_numpy() & np.isfinite(with_z.to_numpy()).all(axis=1)
    assert both.sum() > 10
    assert not np.allclose(with_z.to_numpy()[both], without_z.to_numpy()[both], atol=1e-7)
    np.testing.assert_allclose(with_z.to_numpy()[~known.to_numpy()], without_z.to_numpy()[~known.to_numpy()],
                               atol=1e-6, equal_nan=True)


def test_mangrove_distance_reaches_a_model_with_brightness_where_no_photoz_is_known(rubin_model):
    """Fink's Rubin stage adds ``mangrove_lum_dist`` (null: no galaxy): the absolute brightness uses it where
    the alert has no host photo-z; a photo-z wins where both are known."""
    from fink_t2.scoring import classify
    from fink_t2.scoring.runtime import get_model

    if not get_model(rubin_model).preparation.brightness:
        pytest.skip("this Rubin model has no brightness channels")
    columns = rubin_alert_columns(pq.read_table(shared("fink_science_elasticc_sample.parquet")))
    known = columns[HOST_Z_COLUMN].notna().to_numpy()
    near = columns.assign(mangrove_lum_dist=80.0)
    plain, with_host = classify(columns, rubin_model, survey="rubin"), classify(near, rubin_model, survey="rubin")
    scored = np.isfinite(plain.to_numpy()).all(axis=1)
    assert (scored & ~known).sum() > 10
    assert not np.allclose(plain.to_numpy()[scored & ~known], with_host.to_numpy()[scored & ~known], atol=1e-7)
    np.testing.assert_allclose(plain.to_numpy()[known], with_host.to_numpy()[known], atol=1e-6, equal_nan=True)


def test_the_rubin_udf_body_takes_the_mangrove_distance_last(rubin_model):
    pytest.importorskip("pyspark")
    from fink_t2.scoring import classify
    from fink_t2.scoring.cuts import Cuts
    from fink_t2.spark.processor import score_batch

    columns = rubin_alert_columns(pq.read_table(shared("fink_science_elasticc_sample.parquet")))
    distance = pd.Series(np.where(np.arange(len(columns)) % 2 == 0, 80.0, np.nan))
    names = ["cmidpointMjdTai", "cband", "cpsfFlux", "cpsfFluxErr", HOST_Z_COLUMN]
    scores = score_batch((*(columns[n] for n in names), distance), str(rubin_model), Cuts(enabled=False), "rubin")
    expected = classify(columns.assign(mangrove_lum_dist=distance), rubin_model, survey="rubin")
    np.testing.assert_allclose(scores.probabilities, expected.to_numpy(), atol=1e-6, equal_nan=True)
    with pytest.raises(TypeError, match="mangrove_lum_dist"):
        score_batch((*(columns[n] for n in names), distance, distance), str(rubin_model), Cuts(enabled=False),
                    "rubin")


def test_a_host_redshift_column_beside_raw_alerts_is_used():
    """A cross-match's ``host_z`` next to raw alerts wins over diaObject (and is NaN-safe)."""
    from fink_t2.scoring.readers import light_curve_columns

    raw = pq.read_table(SAMPLE_RUBIN_ALERTS).to_pandas()
    assert light_curve_columns(raw, "rubin")[HOST_Z_COLUMN].isna().all()
    z = np.linspace(0.1, 0.9, len(raw))
    built = light_curve_columns(raw.assign(host_z=z), "rubin")
    np.testing.assert_allclose(built[HOST_Z_COLUMN], z)


def test_a_model_of_the_other_survey_is_refused_in_one_line(rubin_model):
    from fink_t2.scoring import classify
    from fink_t2.scoring.runtime import DEFAULT_MODEL

    raw = pq.read_table(SAMPLE_RUBIN_ALERTS).to_pandas()
    with pytest.raises(ValueError, match="the model reads ztf alerts .*these are rubin alerts"):
        classify(raw, DEFAULT_MODEL)
    with pytest.raises(ValueError, match="the model reads rubin alerts"):
        from fink_t2.scoring.alerts import alert_columns
        from fink_t2.scoring.paths import SAMPLE_ALERTS

        classify(alert_columns(pq.read_table(SAMPLE_ALERTS)).head(3), rubin_model)


def _all_rubin_inputs() -> list:
    names = sorted(SHARED_FILES) + [AVRO_FILE]
    return [pytest.param(name, id=name) for name in names] + [pytest.param(None, id="sample")]


def _input_path(name):
    if name is None:
        return SAMPLE_RUBIN_ALERTS
    if name.endswith(".avro"):
        pytest.importorskip("fastavro", reason="fastavro not installed")
    return shared(name)


def _check_t2(values: list, n: int) -> dict:
    from fink_t2.scoring import t2_probabilities

    assert len(values) == n
    outcome = {"classified": 0, "declined": 0}
    for value in values:
        probs = t2_probabilities(value)
        if probs is None:
            assert value["reason"], value
            outcome["declined"] += 1
        else:
            assert value["reason"] is None and abs(sum(probs.values()) - 1) < 1e-5
            outcome["classified"] += 1
    return outcome


@pytest.mark.parametrize("name", _all_rubin_inputs())
def test_every_rubin_file_scored_by_the_pandas_engine(name, rubin_model, tmp_path, capsys):
    from fink_t2.tools.cli import main as cli_main

    path = _input_path(name)
    if path.suffix == ".avro" and pyarrow_version() < (10,):
        pytest.skip("pyarrow < 10 builds no map column from dicts: Rubin Avro files are read on Fink's Rubin image")
    out = tmp_path / "scored.parquet"
    assert cli_main(["score", str(path), "--engine", "pandas", "--model", str(rubin_model), "--output", str(out),
                     "--summary", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert " alerts: " in text
    table = pq.read_table(out)
    ids = struct_field(table.column("diaSource").combine_chunks(), "diaObjectId").to_pylist()
    assert any(f" {int(i)} " in text for i in ids)  # the examples name alerts by their diaObjectId
    outcome = _check_t2(table.column("t2").to_pylist(), table.num_rows)
    assert outcome["classified"] > 0
    assert "diaSource" in table.column_names  # every input column kept


def test_the_survey_is_detected_and_said_or_checked(rubin_model, tmp_path, caplog, capsys):
    import logging

    from fink_t2.scoring.paths import SAMPLE_ALERTS
    from fink_t2.tools.cli import main as cli_main

    caplog.set_level(logging.INFO, logger="fink_t2.tools.batch")
    assert cli_main(["score", str(SAMPLE_RUBIN_ALERTS), "--engine", "pandas", "--model", str(rubin_model),
                     "--output", str(tmp_path / "a.parquet"), "--no-progress"]) == 0
    assert any("inputs hold rubin alerts" in r.getMessage() for r in caplog.records)
    capsys.readouterr()
    assert cli_main(["score", str(SAMPLE_RUBIN_ALERTS), "--engine", "pandas", "--survey", "ztf",
                     "--output", str(tmp_path / "b.parquet")]) == 2
    err = capsys.readouterr().err
    assert "holds rubin alerts, not ztf ones (--survey ztf)" in err and err.count("\n") == 1
    assert cli_main(["score", str(SAMPLE_RUBIN_ALERTS), "--engine", "pandas", "--cuts", "--model", str(rubin_model),
                     "--output", str(tmp_path / "c.parquet")]) == 2
    assert "score them without --cuts" in capsys.readouterr().err
    # ZTF alerts with --survey rubin, and a ZTF model for Rubin alerts: refused in one line each
    assert cli_main(["score", str(SAMPLE_ALERTS), "--engine", "pandas", "--survey", "rubin",
                     "--output", str(tmp_path / "d.parquet")]) == 2
    assert "holds ztf alerts, not rubin ones" in capsys.readouterr().err
    from fink_t2.scoring.runtime import DEFAULT_MODEL

    assert cli_main(["score", str(SAMPLE_RUBIN_ALERTS), "--engine", "pandas", "--model", str(DEFAULT_MODEL),
                     "--output", str(tmp_path / "e.parquet")]) == 2
    err = capsys.readouterr().err
    assert "the model reads ztf alerts" in err and err.count("\n") == 1
    assert not any((tmp_path / f"{x}.parquet").exists() for x in "bcde")


def test_ztf_and_rubin_files_in_one_job_are_refused(tmp_path, rubin_model, sample_path):
    from fink_t2.scoring.inputs import InputError
    from fink_t2.tools.batch import score_spark

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "ztf.parquet").write_bytes(sample_path.read_bytes())
    (mixed / "rubin.parquet").write_bytes(SAMPLE_RUBIN_ALERTS.read_bytes())
    with pytest.raises(InputError, match="the inputs mix surveys .*rubin.parquet holds rubin alerts.*ztf.parquet "
                                         "holds ztf alerts"):
        score_spark([mixed], tmp_path / "out", model_path=rubin_model)


# --------------------------------------------------------------------------- Spark: UDF, batch engine, stream


@pytest.mark.spark
def test_spark_udf_on_rubin_alerts_matches_pandas(spark, rubin_model):
    from fink_t2.scoring import T2_FIELDS, classify_with_reasons
    from fink_t2.spark.processor import apply_t2

    for path in [SAMPLE_RUBIN_ALERTS] + ([SHARED_RUBIN_ALERTS / "fink_science_elasticc_sample.parquet"]
                                         if (SHARED_RUBIN_ALERTS / "fink_science_elasticc_sample.parquet").is_file()
                                         else []):
        df = spark.read.parquet(str(path))
        scored = apply_t2(df, model_path=rubin_model, survey="rubin")
        assert scored.schema["t2"].dataType.simpleString() == apply_t2(
            df, model_path=rubin_model).schema["t2"].dataType.simpleString()  # same struct type, survey read off
        assert [f.name for f in scored.schema["t2"].dataType.fields] == list(T2_FIELDS)
        rows = scored.select("diaSource.diaSourceId", "t2").collect()
        table = pq.read_table(path)
        probs, reasons = classify_with_reasons(table.to_pandas(), rubin_model)
        order = {i: k for k, i in enumerate(struct_field(table.column("diaSource").combine_chunks(),
                                                             "diaSourceId").to_pylist())}
        for row in rows:
            k = order[row.diaSourceId]
            assert row.t2["reason"] == reasons.iloc[k]
            if reasons.iloc[k] is None:
                got = [row.t2[f] for f in T2_FIELDS[: probs.shape[1]]]
                np.testing.assert_allclose(got, probs.iloc[k].to_numpy(), atol=1e-5)


@pytest.mark.spark
def test_rubin_udf_flavours_agree(spark, rubin_model):
    """The pandas UDF (Spark 3.4-4.0) and the Arrow UDF (Spark >= 4.1) give the same Rubin column."""
    from fink_t2.spark.processor import arrow_udfs_available, make_t2_udf, rubin_input_columns

    df = spark.read.parquet(str(SAMPLE_RUBIN_ALERTS))
    engines = ["pandas", "arrow"] if arrow_udfs_available() else ["pandas"]
    results = []
    for engine in engines:
        udf = make_t2_udf(rubin_model, engine=engine, survey="rubin")
        rows = df.select("diaSourceId", udf(*rubin_input_columns(df)).alias("t2")).orderBy("diaSourceId").collect()
        results.append([r.t2.asDict() for r in rows])
    _check_t2(results[0], df.count())
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert a["reason"] == b["reason"] and a["top_class"] == b["top_class"]
            assert all(a[k] == pytest.approx(b[k], abs=1e-6) for k in a if k not in ("reason", "top_class")
                       and a[k] is not None)


@pytest.mark.spark
def test_spark_refuses_cuts_and_a_ztf_model_for_rubin(spark, rubin_model):
    from fink_t2.scoring import FINK_CUTS
    from fink_t2.scoring.runtime import DEFAULT_MODEL
    from fink_t2.spark.processor import apply_t2

    df = spark.read.parquet(str(SAMPLE_RUBIN_ALERTS))
    with pytest.raises(ValueError, match="selection cuts read ZTF columns"):
        apply_t2(df, model_path=rubin_model, cuts=FINK_CUTS)
    with pytest.raises(ValueError, match="the model reads ztf alerts"):
        apply_t2(df, model_path=DEFAULT_MODEL)


@pytest.mark.spark
@pytest.mark.parametrize("name", _all_rubin_inputs())
def test_every_rubin_file_scored_by_the_spark_engine(name, spark, rubin_model, tmp_path):
    from fink_t2.tools.batch import score_spark

    path = _input_path(name)
    if path.suffix == ".avro" and pyarrow_version() < (10,):
        pytest.skip("pyarrow < 10 builds no map column from dicts: Rubin Avro files are read on Fink's Rubin image")
    out = score_spark([path], tmp_path / "scored", model_path=rubin_model, spark=spark, progress=False)
    result = spark.read.parquet(str(out))
    n = (pq.read_metadata(path).num_rows if path.suffix == ".parquet" else 7)
    values = [row.t2.asDict() for row in result.select("t2").collect()]
    outcome = _check_t2(values, n)
    assert outcome["classified"] > 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # converted Avro removed


@pytest.mark.spark
def test_cli_spark_engine_scores_the_rubin_sample(spark, rubin_model, tmp_path, capsys):
    from fink_t2.tools.cli import main as cli_main

    out = tmp_path / "scored"
    assert cli_main(["score", str(SAMPLE_RUBIN_ALERTS), "--survey", "rubin", "--model", str(rubin_model),
                     "--output", str(out), "--summary", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{pq.read_metadata(SAMPLE_RUBIN_ALERTS).num_rows} alerts: ")


@pytest.mark.spark
def test_stream_restart_on_rubin_files(spark, stream_module, rubin_model, tmp_path):
    from conftest import write_parts

    table = pq.read_table(SAMPLE_RUBIN_ALERTS)
    staging = write_parts(table, tmp_path / "staging", [12, 12, 12, table.num_rows - 36])
    raw, out, ckpt = tmp_path / "raw", tmp_path / "science", tmp_path / "checkpoint"
    raw.mkdir()
    flags = ["--input", str(raw), "--output", str(out), "--checkpoint", str(ckpt), "--model", str(rubin_model),
             "--max-files-per-trigger", "1", "--once", "--no-cuts"]
    for path in staging[:2]:
        path.rename(raw / path.name)
    assert stream_module.main(flags, spark=spark) == 0  # survey read off the lake
    first = spark.read.parquet(str(out)).select("diaSourceId", "t2").toPandas()
    assert len(first) == 24 and first["diaSourceId"].is_unique
    for path in staging[2:]:
        path.rename(raw / path.name)
    assert stream_module.main([*flags, "--survey", "rubin"], spark=spark) == 0
    result = spark.read.parquet(str(out)).select("diaSourceId", "t2").toPandas()
    assert sorted(result["diaSourceId"]) == sorted(table.column("diaSourceId").to_pylist())  # no loss, no duplicate
    _check_t2([v if isinstance(v, dict) else v.asDict() for v in result["t2"]], table.num_rows)


def test_stream_refuses_a_lake_mixing_surveys(stream_module, tmp_path, sample_path, rubin_model, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.parquet").write_bytes(SAMPLE_RUBIN_ALERTS.read_bytes())
    (raw / "b.parquet").write_bytes(sample_path.read_bytes())
    flags = ["--input", str(raw), "--output", str(tmp_path / "o"), "--checkpoint", str(tmp_path / "c"), "--once"]
    assert stream_module.main(flags) == 2
    err = capsys.readouterr().err
    assert "input files mix surveys" in err and err.count("\n") == 1
    (raw / "b.parquet").unlink()
    assert stream_module.main([*flags, "--survey", "ztf"]) == 2
    assert "holds rubin alerts, the configuration says survey ztf" in capsys.readouterr().err
    assert stream_module.main([*flags, "--cuts", "--model", str(rubin_model)]) == 2
    assert "pass --no-cuts" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_folder_of_avro_files_is_named_file_by_file(tmp_path, capsys):
    from fink_t2.tools.cli import main as cli_main

    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "a.avro").write_bytes(b"Obj\x01")
    assert cli_main(["score", str(folder), "--engine", "pandas", "--summary"]) == 2
    err = capsys.readouterr().err
    assert "no parquet file found under" in err and "name them one by one" in err and err.count("\n") == 1


def test_a_null_diasource_or_history_row_is_declined_not_a_crash(rubin_model):
    from fink_t2.scoring import classify_with_reasons

    table = pq.read_table(SAMPLE_RUBIN_ALERTS).slice(0, 4)
    current = table.column("diaSource").combine_chunks()
    nulled = pa.array([None, *current.to_pylist()[1:]], type=current.type)
    history = table.column("prvDiaSources").combine_chunks()
    table = table.set_column(table.column_names.index("diaSource"), "diaSource", nulled)
    table = table.set_column(table.column_names.index("prvDiaSources"), "prvDiaSources",
                             pa.array([None] * 4, type=history.type))
    probs, reasons = classify_with_reasons(table.to_pandas(), rubin_model)
    assert reasons.iloc[0] == "no observations" and reasons.notna().all()  # one point at most: all declined
    assert np.isnan(probs.to_numpy()).all()


@pytest.mark.spark
def test_schema_versions_scored_in_one_spark_job_as_one_by_one(spark, rubin_model, tmp_path):
    """lsst v7.1 and ELAsTiCC files in one job (their structs unified by field name: both names present, each
    null where the other is set) score as each file alone does with the pandas engine."""
    from fink_t2.tools.batch import score_pandas, score_spark

    paths = [shared("fink_science_rubin_or4_v7_1.parquet"), shared("fink_science_elasticc_sample.parquet")]
    out = score_spark(paths, tmp_path / "scored", model_path=rubin_model, spark=spark, progress=False)
    rows = spark.read.parquet(str(out)).select("diaSource.diaSourceId", "t2").collect()
    got = {r.diaSourceId: r.t2.asDict() for r in rows}
    expected = {}
    for path in paths:
        table = score_pandas(path, None, model_path=rubin_model, progress=False)
        ids = struct_field(table.column("diaSource").combine_chunks(), "diaSourceId").to_pylist()
        expected.update(zip(ids, table.column("t2").to_pylist()))
    assert set(got) == set(expected) and len(rows) == len(expected)
    for key, want in expected.items():
        assert got[key]["reason"] == want["reason"]
        if want["reason"] is None:
            assert got[key]["SNIa"] == pytest.approx(want["SNIa"], abs=1e-5)


@pytest.mark.spark
def test_files_spark_cannot_unify_are_one_clear_error(spark, rubin_model, tmp_path):
    """The ELAsTiCC SN Ia file stores a nanosecond timestamp (read as int64), the AGN file a timestamp: no cast
    between them, so one job of both is refused naming both files (each alone is scored, test above)."""
    from fink_t2.scoring.inputs import InputError
    from fink_t2.tools.batch import score_spark

    paths = [shared("fink_science_elasticc_agn.parquet"), shared("fink_science_elasticc_snia.parquet")]
    with pytest.raises(InputError, match=r"elasticc_snia.parquet has a schema that cannot be unified with .*"
                                         r"elasticc_agn.parquet .*score these files separately") as info:
        score_spark(paths, tmp_path / "scored", model_path=rubin_model, spark=spark, progress=False)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "scored").exists()
