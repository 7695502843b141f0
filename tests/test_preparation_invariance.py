"""The speed settings of the preparation change its speed, never its values.

The GP's batching (objects per solve, ``lightcurves._GP_CHUNK``) and padding
(``lightcurves._PAD_MULTIPLE``) were retuned for speed: on the real sample
alerts the model input and the probabilities must match those of the settings
before (256, 4) and of the plainest ones (one object per solve, no padding) to
1e-5 (:data:`BLAS_ATOL`). The vectorised context channels must match a per-object computation
written out the slow way.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from fink_t2.scoring import lightcurves
from fink_t2.scoring.alerts import alert_columns, observations_from_columns
from fink_t2.scoring.classifier import classify_with_reasons
from fink_t2.scoring.lightcurves import AGE_SCALE_DAYS, BANDS, MAX_GAP_SCALES, prepare
from fink_t2.scoring.paths import SAMPLE_ALERTS
from fink_t2.scoring.runtime import get_model

#: (objects per solve, padding multiple): the settings before the speed change, and the plainest.
OTHER_SETTINGS = ((256, 4), (1, 1))
#: Another batch or padding is another matrix size for the BLAS solve, and OpenBLAS's AVX-512 kernels
#: (AMD EPYC here) round by matrix size: up to 2.4e-6 apart on the sample (under 1e-6 on Haswell kernels).
#: A real change of the preparation moves values by orders of magnitude more.
BLAS_ATOL = 1e-5


@pytest.fixture(scope="module")
def sample_columns():
    if not SAMPLE_ALERTS.exists():
        pytest.skip(f"sample alerts absent: {SAMPLE_ALERTS}")
    return alert_columns(pq.read_table(SAMPLE_ALERTS))


def _with_settings(monkeypatch, chunk: int, pad: int) -> None:
    monkeypatch.setattr(lightcurves, "_GP_CHUNK", chunk)
    monkeypatch.setattr(lightcurves, "_PAD_MULTIPLE", pad)


@pytest.mark.parametrize("chunk,pad", OTHER_SETTINGS)
def test_model_input_does_not_depend_on_gp_batching(sample_columns, monkeypatch, chunk: int, pad: int) -> None:
    config = get_model().preparation
    obs, _ = observations_from_columns(sample_columns)
    current = prepare(obs, config)
    assert current.ok.sum() > 200  # the sample is mostly preparable: the comparison covers real GP solves
    _with_settings(monkeypatch, chunk, pad)
    other = prepare(obs, config)
    np.testing.assert_array_equal(current.ok, other.ok)
    np.testing.assert_array_equal(current.reason, other.reason)
    np.testing.assert_allclose(current.values, other.values, rtol=0, atol=BLAS_ATOL)


@pytest.mark.parametrize("chunk,pad", OTHER_SETTINGS)
def test_probabilities_do_not_depend_on_gp_batching(sample_columns, monkeypatch, chunk: int, pad: int) -> None:
    probabilities, reasons = classify_with_reasons(sample_columns)
    assert reasons.isna().sum() > 200
    _with_settings(monkeypatch, chunk, pad)
    other, other_reasons = classify_with_reasons(sample_columns)
    assert reasons.equals(other_reasons)
    np.testing.assert_allclose(probabilities.to_numpy(), other.to_numpy(), rtol=0, atol=BLAS_ATOL)


def _context_by_hand(kept, objects, t_ref, first_detection, config) -> np.ndarray:
    """The context channels one object, one step and one band at a time."""
    out = np.zeros((len(objects), config.n_steps, 3))
    for row, obj in enumerate(objects):
        mine = kept.object_index == obj
        for step in range(config.n_steps):
            fine = config.n_steps - config.coarse_steps  # the newest steps, step_days apart; older: coarser
            back = ((config.n_steps - 1 - step) * config.step_days if step >= config.coarse_steps else
                    (fine - 1) * config.step_days + (config.coarse_steps - step) * config.coarse_step_days)
            when = t_ref[obj] - back
            out[row, step, 0] = np.arcsinh((when - first_detection[obj]) / AGE_SCALE_DAYS)
            for band in range(len(BANDS)):
                times = kept.time[mine & (kept.band == band)]
                gap = np.min(np.abs(times - when)) if len(times) else np.inf
                out[row, step, 1 + band] = min(gap / config.time_scale_days, MAX_GAP_SCALES)
    return out


def test_context_channels_match_a_per_object_computation(sample_columns) -> None:
    config = get_model().preparation
    if not config.context_channels:
        pytest.skip("the shipped model has no context channels")
    obs, _ = observations_from_columns(sample_columns)
    kept, t_ref, peak, first_detection = lightcurves._select_points(obs, config)
    n_det = np.bincount(kept.object_index[kept.detected], minlength=obs.n_objects)
    ok = (n_det > 0) & (peak > 0)
    objects = np.flatnonzero(ok)
    kept = kept.subset(ok[kept.object_index])
    fast = lightcurves._context_channels(kept, objects, t_ref, first_detection, config)
    slow = _context_by_hand(kept, objects, t_ref, first_detection, config)
    assert len(objects) > 200 and (slow[:, :, 1:] < MAX_GAP_SCALES).any() and (slow[:, :, 1:] == MAX_GAP_SCALES).any()
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-5)  # float32 output
