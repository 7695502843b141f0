"""Rubin (LSST) alerts: every schema version and the Avro file read, flux units, bands, scoring and Spark.

The shared files (``../shared/data/rubin_alerts``) hold every schema version
Fink's test data has (lsst v7.1, v10.0, ELAsTiCC v0.9, Fink-enriched Avro);
tests on them skip when the folder is absent. ``data/rubin_alerts_sample.parquet``
is always there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from fink_t2.scoring.paths import SAMPLE_RUBIN_ALERTS, SHARED_RUBIN_ALERTS
from fink_t2.scoring.rubin_alerts import (
    HOST_Z_COLUMN,
    NJY_TO_FLUXCAL,
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
    current = pc.struct_field(table.column("diaSource").combine_chunks(), fields[0]).to_numpy()
    np.testing.assert_array_equal(last, current)


def test_elasticc_host_redshift_and_all_six_bands():
    table = pq.read_table(shared("fink_science_elasticc_sample.parquet"))
    frame = rubin_alert_columns(table)
    zphot = pc.struct_field(table.column("diaObject").combine_chunks(), "hostgal_zphot").to_numpy(
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
