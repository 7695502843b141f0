"""The brightness channels: apparent peak magnitude, absolute with the host photo-z or a Mangrove match."""

from __future__ import annotations

import numpy as np
import pytest

from fink_t2.scoring.lightcurves import (
    BRIGHTNESS_CHANNELS,
    FLUXCAL_ZEROPOINT,
    Observations,
    PreparationConfig,
    brightness_input,
    prepare,
)
from fink_t2.scoring.sky import SkyContext, distance_modulus, luminosity_distance_mpc


def test_apparent_and_absolute_magnitude_by_hand():
    peak = np.array([10 ** (-0.4 * (22.0 - FLUXCAL_ZEROPOINT)), 10 ** (-0.4 * (24.0 - FLUXCAL_ZEROPOINT))] * 2)
    host_z = np.array([0.1, np.nan, np.nan, 0.0])  # 0: no distance (PLAsTiCC's Galactic objects)
    sky = SkyContext(host_known=np.array([True, True, False, True]), host_distance_mpc=np.array([50.0, 80.0, np.nan,
                                                                                          np.inf]))
    out = brightness_input(peak, host_z, sky, 4)
    np.testing.assert_allclose(out[:, 0], [0.0, 1.0, 0.0, 1.0], atol=1e-5)  # (m - 22) / 2
    m_abs = 22.0 - distance_modulus(luminosity_distance_mpc(0.1))  # the photo-z wins over the Mangrove match
    assert out[0, 1] == pytest.approx((m_abs + 19.0) / 2, abs=1e-4) and out[0, 2] == 1
    assert out[1, 1] == pytest.approx(min((24.0 - distance_modulus(80.0) + 19.0) / 2, 4.0), abs=1e-4)  # clipped at 4
    assert out[1, 2] == 1
    assert out[2, 1] == 0 and out[2, 2] == 0  # nothing known
    assert out[3, 2] == 0  # z = 0 and no plausible match: unknown


def test_prepare_writes_the_channels_last_and_constant_in_time():
    config = PreparationConfig(survey="rubin", context_channels=True, host_redshift=True, brightness=True)
    assert config.channel_names[-3:] == BRIGHTNESS_CHANNELS and config.reads_sky
    flux = 10 ** (-0.4 * (21.0 - FLUXCAL_ZEROPOINT))
    obs = Observations(np.array([0, 0, 0]), np.array([0.0, 2.0, 4.0]), np.array([2, 2, 3], np.int8),
                       np.array([flux / 2, flux, flux / 3]), np.full(3, flux / 50), np.ones(3, bool), 1)
    batch = prepare(obs, config, host_z=np.array([0.3]))
    values = batch.values[0, :, -3:]
    assert np.ptp(values, axis=0).max() == 0
    assert values[0, 0] == pytest.approx(-0.5, abs=1e-5)
    assert values[0, 2] == 1
    without = prepare(obs, config, host_z=np.array([np.nan]))
    assert without.values[0, 0, -1] == 0 and without.values[0, 0, -2] == 0
    # The other channels do not move with the brightness channels.
    np.testing.assert_array_equal(batch.values[0, :, :-3][:, :-2], without.values[0, :, :-3][:, :-2])


def test_a_preparation_without_brightness_is_written_as_before():
    assert "brightness" not in PreparationConfig().to_dict()
    assert PreparationConfig(brightness=True).to_dict()["brightness"] is True
