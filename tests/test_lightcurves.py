"""The shared preparation: units, band order, time direction, edge cases, source equivalence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fink_t2.scoring.alerts import observations_from_alerts
from fink_t2.scoring.lightcurves import (
    BANDS,
    REASON_NO_DATA,
    REASON_NO_DETECTION,
    Observations,
    PreparationConfig,
    fluxcal_to_mag,
    mag_to_fluxcal,
    prepare,
)
from fink_t2.training.plasticc import observations_from_plasticc

CONFIG = PreparationConfig()


def obs_of(points: list[tuple], n_objects: int | None = None) -> Observations:
    """Observations from (object, time, band, flux, flux_err, detected) tuples."""
    obj, t, b, f, e, d = (np.array(v) for v in zip(*points))
    return Observations(obj, t, b, f, e, d, n_objects if n_objects is not None else int(obj.max()) + 1)


def test_band_order_is_g_then_r():
    assert BANDS == ("g", "r")


def test_magnitudes_to_fluxcal_units():
    flux, err = mag_to_fluxcal([27.5, 20.0], [0.1, 0.1])
    assert flux == pytest.approx([1.0, 1000.0])
    # REFERENCE formula: 9.21034e10 * exp(-0.921034 mag) * sigma
    assert err[1] == pytest.approx(9.21034e10 * np.exp(-0.921034 * 20.0) * 0.1, rel=1e-5)
    mag, sigma = fluxcal_to_mag(flux, err)
    assert mag == pytest.approx([27.5, 20.0])
    assert sigma == pytest.approx([0.1, 0.1])


def test_output_shape_dtype_and_peak_normalisation():
    obs = obs_of([(0, 100.0, 0, 500.0, 10.0, True), (0, 104.0, 1, 250.0, 10.0, True)])
    batch = prepare(obs, CONFIG)
    assert batch.values.shape == (1, CONFIG.n_steps, 2)
    assert batch.values.dtype == np.float32
    assert batch.ok.tolist() == [True]
    assert batch.reason.tolist() == [None]
    # Peak-normalised: the brightest detection is close to 1 (GP shrinks a little).
    assert 0.8 < batch.values[0].max() <= 1.05


def test_time_runs_forward_and_last_step_is_latest_observation():
    # Bright 20 days before the latest (faint) observation, in g.
    obs = obs_of([(0, 80.0, 0, 1000.0, 10.0, True), (0, 100.0, 0, 100.0, 10.0, True)])
    values = prepare(obs, CONFIG).values[0, :, 0]
    step_of_bright = CONFIG.n_steps - 1 - int(round(20.0 / CONFIG.step_days))
    assert int(np.argmax(values)) == step_of_bright
    assert values[-1] == pytest.approx(0.1, abs=0.05)
    assert values[step_of_bright] > values[-1]


def test_missing_band_is_inferred_and_bands_are_symmetric():
    g_only = obs_of([(0, 10.0, 0, 300.0, 5.0, True), (0, 12.0, 0, 200.0, 5.0, True)])
    r_only = obs_of([(0, 10.0, 1, 300.0, 5.0, True), (0, 12.0, 1, 200.0, 5.0, True)])
    xg, xr = prepare(g_only, CONFIG).values[0], prepare(r_only, CONFIG).values[0]
    np.testing.assert_allclose(xg[:, 0], xr[:, 1], atol=1e-6)
    np.testing.assert_allclose(xg[:, 1], xr[:, 0], atol=1e-6)
    # The observed band is stronger than the inferred one, but the inferred one is not empty.
    assert xg[-1, 0] > xg[-1, 1] > 0.3


def test_single_point_is_classifiable_and_peaks_at_the_end():
    batch = prepare(obs_of([(0, 5.0, 1, 42.0, 2.0, True)]), CONFIG)
    assert batch.ok[0] and batch.n_detections[0] == 1
    assert int(np.argmax(batch.values[0, :, 1])) == CONFIG.n_steps - 1


def test_objects_without_detections_are_declined_with_reason():
    obs = obs_of([(0, 1.0, 0, 0.0, 10.0, False), (2, 1.0, 0, 50.0, 1.0, True)], n_objects=3)
    batch = prepare(obs, CONFIG)
    assert batch.ok.tolist() == [False, False, True]
    assert batch.reason.tolist() == [REASON_NO_DETECTION, REASON_NO_DATA, None]
    assert not batch.values[:2].any()


def test_upper_limits_pull_the_curve_down():
    det = [(0, 100.0, 0, 100.0, 5.0, True)]
    limits = [(0, 96.0, 0, 0.0, 5.0, False), (0, 98.0, 0, 0.0, 5.0, False)]
    with_limits = prepare(obs_of(det + limits), CONFIG).values[0, :, 0]
    without = prepare(obs_of(det + limits), PreparationConfig(use_upper_limits=False)).values[0, :, 0]
    step = CONFIG.n_steps - 1 - 2  # 4 days before the end
    assert with_limits[step] < 0.5 * without[step]


def test_order_of_input_rows_does_not_matter():
    rng = np.random.default_rng(3)
    points = [(i % 3, float(t), int(rng.integers(2)), float(rng.uniform(10, 100)), 2.0, True)
              for i, t in enumerate(rng.uniform(0, 40, 30))]
    shuffled = [points[i] for i in rng.permutation(len(points))]
    np.testing.assert_allclose(prepare(obs_of(points)).values, prepare(obs_of(shuffled)).values, atol=1e-6)


def test_batch_result_equals_one_by_one():
    rng = np.random.default_rng(4)
    points = [(int(o), float(t), int(rng.integers(2)), float(rng.normal(50, 30)), 3.0, True)
              for o, t in zip(rng.integers(0, 20, 300), rng.uniform(0, 80, 300))]
    together = prepare(obs_of(points, 20)).values
    for obj in range(20):
        alone = [(0, *p[1:]) for p in points if p[0] == obj]
        np.testing.assert_allclose(prepare(obs_of(alone, 1)).values[0], together[obj], atol=1e-5)


def test_old_points_beyond_lookback_are_ignored():
    recent = [(0, 200.0, 0, 100.0, 5.0, True)]
    ancient = [(0, 200.0 - CONFIG.lookback_days - 5, 0, 900.0, 5.0, True)]
    np.testing.assert_allclose(prepare(obs_of(recent)).values, prepare(obs_of(recent + ancient)).values, atol=1e-6)


def test_linear_alternative_interpolates_between_points():
    obs = obs_of([(0, 96.0, 0, 100.0, 5.0, True), (0, 100.0, 0, 200.0, 5.0, True)])
    values = prepare(obs, PreparationConfig(method="linear")).values[0, :, 0]
    assert values[-1] == pytest.approx(1.0)
    assert values[-2] == pytest.approx(0.75)  # halfway, 2 days back
    assert values[-3] == pytest.approx(0.5)
    assert values[-4] == 0.0


# ---------------------------------------------------------------- alert columns


def alert_columns(rows: list[dict]) -> dict:
    return {key: [row[key] for row in rows] for key in rows[0]}


def test_alert_columns_units_sign_and_upper_limits():
    cols = alert_columns([{
        "cjd": [2459000.5, 2459002.5, 2459003.5],
        "cfid": [1, 2, 1],
        "cmagpsf": [None, 20.0, 19.0],
        "csigmapsf": [None, 0.1, 0.05],
        "cisdiffpos": [None, "f", "t"],
        "cdiffmaglim": [20.5, 20.6, 20.7],
    }])
    obs, reason = observations_from_alerts(**cols)
    assert reason.tolist() == [None]
    assert obs.detected.tolist() == [False, True, True]
    assert obs.band.tolist() == [0, 1, 0]
    assert obs.flux[1] == pytest.approx(-1000.0)  # isdiffpos 'f': negative difference flux
    assert obs.flux[2] == pytest.approx(10 ** (-0.4 * (19.0 - 27.5)))
    assert obs.flux[0] == 0.0
    assert obs.flux_err[0] == pytest.approx(10 ** (-0.4 * (20.5 - 27.5)) / 5.0)


def test_alert_columns_drop_bad_points_and_flag_inconsistent_alerts():
    cols = alert_columns([
        {"cjd": [1.0, 2.0, 3.0, 4.0, np.nan], "cfid": [1, 3, 2, 2, 1], "cmagpsf": [18.0, 18.0, np.inf, 99.0, 18.0],
         "csigmapsf": [0.1, 0.1, 0.1, 0.1, 0.1]},
        {"cjd": [1.0, 2.0], "cfid": [1], "cmagpsf": [18.0, 18.0], "csigmapsf": [0.1, 0.1]},
        {"cjd": None, "cfid": None, "cmagpsf": None, "csigmapsf": None},
    ])
    obs, reason = observations_from_alerts(**cols)
    # Alert 0 keeps only its first point (fid 3, inf, 99 mag and NaN time dropped).
    assert obs.object_index.tolist() == [0]
    assert reason[1] == "alert arrays have different lengths"
    assert reason[0] is None and reason[2] is None
    batch = prepare(obs)
    assert batch.ok.tolist() == [True, False, False]


def test_alert_columns_tolerate_strings_and_ints():
    cols = alert_columns([{"cjd": ["10.0", 12], "cfid": ["1", 2], "cmagpsf": ["18.5", "oops"],
                           "csigmapsf": [0.1, 0.2]}])
    obs, _ = observations_from_alerts(**cols)
    assert obs.time.tolist() == [10.0]
    assert obs.flux[0] == pytest.approx(mag_to_fluxcal(18.5))


def test_plasticc_rows_and_alert_columns_give_identical_inputs():
    """The same points as PLAsTiCC rows or as ZTF alert columns must prepare identically."""
    rows = pd.DataFrame({
        "object_id": [7] * 8,
        "mjd": [59000.1, 59001.2, 59003.0, 59005.5, 59006.0, 59010.3, 59012.0, 59013.9],
        "passband": [1, 2, 1, 2, 3, 1, 2, 1],  # passband 3 (i) is not used
        "flux": [5.0, 150.0, 400.0, -80.0, 1000.0, 600.0, 350.0, 20.0],
        "flux_err": [4.0, 10.0, 12.0, 9.0, 20.0, 11.0, 10.0, 6.0],
        "detected_bool": [0, 1, 1, 1, 1, 1, 1, 0],
    })
    from_rows, ids = observations_from_plasticc(rows)
    assert ids.tolist() == [7]
    gr = rows[rows.passband.isin([1, 2])]
    det = gr.detected_bool.to_numpy().astype(bool)
    flux, err = gr.flux.to_numpy(), gr.flux_err.to_numpy()
    mag, sigma = fluxcal_to_mag(np.abs(flux), err)
    limit_mag = fluxcal_to_mag(5.0 * err)
    alert = {
        "cjd": [list(gr.mjd + 2400000.5)],
        "cfid": [list(gr.passband)],
        "cmagpsf": [[m if d else None for m, d in zip(mag, det)]],
        "csigmapsf": [[s if d else None for s, d in zip(sigma, det)]],
        "cisdiffpos": [["t" if f > 0 else "f" for f in flux]],
        "cdiffmaglim": [list(limit_mag)],
    }
    from_alert, _ = observations_from_alerts(**alert)
    np.testing.assert_allclose(np.sort(from_alert.flux), np.sort(from_rows.flux), rtol=1e-9, atol=1e-9)
    a, b = prepare(from_rows).values, prepare(from_alert).values
    assert np.abs(a).max() > 0.5
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_config_rejects_unknown_and_bad_values():
    with pytest.raises(ValueError, match="unknown"):
        PreparationConfig.from_dict({"n_step": 10})
    with pytest.raises(ValueError, match="method"):
        PreparationConfig.from_dict({"method": "spline"})
    with pytest.raises(ValueError, match="step_days"):
        PreparationConfig.from_dict({"step_days": 0})


def test_upper_limits_after_the_first_detection_are_ignored():
    dets = [(0, 90.0, 0, 100.0, 5.0, True), (0, 100.0, 0, 100.0, 5.0, True)]
    between = [(0, 95.0, 0, 0.0, 5.0, False), (0, 96.0, 1, 0.0, 5.0, False)]
    np.testing.assert_allclose(prepare(obs_of(dets + between)).values, prepare(obs_of(dets)).values, atol=1e-6)
    # A limit after the last detection does not move the reference time either.
    after = [(0, 104.0, 0, 0.0, 5.0, False)]
    np.testing.assert_allclose(prepare(obs_of(dets + after)).values, prepare(obs_of(dets)).values, atol=1e-6)


def test_arrow_list_columns_give_the_same_observations_as_python_rows():
    import pyarrow as pa

    rows = alert_columns([
        {"cjd": [1.0, 2.0, 3.0], "cfid": [1, 2, 1], "cmagpsf": [18.0, None, 17.5], "csigmapsf": [0.1, None, 0.05],
         "cisdiffpos": ["t", None, "f"], "cdiffmaglim": [20.0, 20.5, 20.1]},
        {"cjd": None, "cfid": None, "cmagpsf": None, "csigmapsf": None, "cisdiffpos": None, "cdiffmaglim": None},
        {"cjd": [5.0], "cfid": [2], "cmagpsf": [19.0], "csigmapsf": [0.2], "cisdiffpos": ["1"], "cdiffmaglim": [20.0]},
    ])
    arrow = {key: pa.array(values, type=pa.list_(pa.string() if key == "cisdiffpos" else pa.float64()))
             for key, values in rows.items()}
    arrow["cfid"] = pa.chunked_array([arrow["cfid"].cast(pa.list_(pa.int32()))])
    a, _ = observations_from_alerts(**rows)
    b, _ = observations_from_alerts(**arrow)
    for name in ("object_index", "time", "band", "flux", "flux_err", "detected"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert b.flux[2] < 0 < b.flux[3]  # isdiffpos 'f' makes alert 0's last detection negative


def test_real_alerts_prepare_the_same_sorted_or_shuffled(sample_columns):
    """Histories arrive sorted (the sort is skipped) or not (it is done): the model input is the same."""
    from fink_t2.scoring.lightcurves import _sorted_by_object_and_time

    cols = {name: sample_columns[name] for name in ("cjd", "cfid", "cmagpsf", "csigmapsf")}
    obs, _ = observations_from_alerts(**cols, cdiffmaglim=sample_columns["cdiffmaglim"])
    order = np.random.default_rng(6).permutation(len(obs.time))
    shuffled = obs.subset(order)
    assert not _sorted_by_object_and_time(shuffled)
    a, b = prepare(obs), prepare(shuffled)
    assert a.ok.sum() > 300
    np.testing.assert_array_equal(a.ok, b.ok)
    np.testing.assert_allclose(a.values, b.values, atol=1e-4)  # float32 grid: tied times may swap


def _reference_selection(obs: Observations, config: PreparationConfig):
    """Per-object loop version of the selection: first detection, reference time and peak."""
    first, t_ref, peak = (np.full(obs.n_objects, v) for v in (np.inf, -np.inf, 0.0))
    for i in range(obs.n_objects):
        mine = (obs.object_index == i) & np.isfinite(obs.time) & np.isfinite(obs.flux) & (obs.flux_err > 0)
        det = mine & obs.detected
        if det.any():
            first[i] = obs.time[det].min()
        kept = mine & (obs.detected | (obs.time < first[i]))
        if kept.any():
            t_ref[i] = obs.time[kept].max()
        recent = det & (obs.time >= t_ref[i] - config.lookback_days)
        if recent.any():
            peak[i] = np.abs(obs.flux[recent]).max()
    return first, t_ref, peak


def test_selection_per_object_matches_a_loop_on_shuffled_input():
    """The selection's vectorised first detections, reference times and peaks (scatters over all objects at
    once): on shuffled points with limits, limit-only objects, negative fluxes, ties and bad values they are
    what a per-object loop gives, and the points kept come out sorted by (object, time)."""
    from fink_t2.scoring.lightcurves import _select_points

    rng = np.random.default_rng(7)
    n_objects, n = 40, 900
    obs = Observations(rng.integers(0, n_objects, n), rng.integers(0, 120, n).astype(float), rng.integers(0, 2, n),
                       rng.normal(0, 50, n), rng.uniform(0.5, 5, n), rng.random(n) < 0.6, n_objects)
    obs.detected[obs.object_index < 3] = False  # three objects with upper limits only
    obs.flux[~obs.detected] = 0.0
    obs.time[rng.integers(0, n, 20)] = np.nan
    obs.flux_err[rng.integers(0, n, 20)] = -1.0
    kept, t_ref, peak, first = _select_points(obs, CONFIG)
    ref_first, ref_t_ref, ref_peak = _reference_selection(obs, CONFIG)
    np.testing.assert_array_equal(first, ref_first)
    np.testing.assert_array_equal(t_ref, ref_t_ref)
    np.testing.assert_array_equal(peak, ref_peak)
    order = np.lexsort((kept.time, kept.object_index))
    np.testing.assert_array_equal(order, np.arange(len(order)))  # sorted by (object, time)
