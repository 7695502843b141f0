"""The Rubin yardstick's features (benchmarks/rubin_yardstick.py), on a light curve built here; the trees
themselves need lightgbm and are run by the benchmark, not the tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from fink_t2.scoring.lightcurves import FLUXCAL_ZEROPOINT, Observations

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "rubin_yardstick.py"


@pytest.fixture(scope="module")
def yardstick():
    spec = importlib.util.spec_from_file_location("rubin_yardstick", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_features_of_a_light_curve_by_hand(yardstick):
    # object 0: r rises 10 -> 100 -> 40 at days 0, 10, 30; i has one point of 50 at day 10, g a negative -20.
    # object 1: no detection at all.
    obs = Observations(np.array([0, 0, 0, 0, 0, 1]), np.array([0.0, 10.0, 30.0, 10.0, 5.0, 3.0]),
                       np.array([2, 2, 2, 3, 1, 2], np.int8), np.array([10.0, 100.0, 40.0, 50.0, -20.0, 0.0]),
                       np.full(6, 2.0), np.array([True, True, True, True, True, False]), 2)
    x = yardstick.features(obs, np.array([0.1, np.nan]))
    assert x.shape == (2, 48) and np.isnan(x[1]).all()
    names = yardstick.N_DET_COLUMN
    n_det, duration, log_peak, magnitude, rise, decline = x[0, names:names + 6]
    assert (n_det, duration, rise, decline) == (5, 30, 10, 20)
    assert log_peak == pytest.approx(2.0) and magnitude == pytest.approx(FLUXCAL_ZEROPOINT - 5.0)
    r = 5 * 2  # the r band's five features
    assert x[0, r] == 3 and x[0, r + 1] == pytest.approx(2.0) and x[0, r + 2] == 20
    assert x[0, r + 4] == pytest.approx(0.4)  # the latest r flux over the r peak
    negative = x[0, names + 8]
    assert negative == pytest.approx(1 / 5)
    assert x[0, -2] == pytest.approx(0.1) and np.isfinite(x[0, -1])  # host z and the absolute magnitude
    assert np.isnan(yardstick.features(obs, None)[0, -2])
