"""Redshift augmentation against physics checkable by hand, and the test-like set's construction.

Synthetic objects (a Gaussian-in-time light curve with a power-law spectrum, f_nu ~ lambda^beta) are
generated here; the split tests use the PLAsTiCC training set and skip without it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fink_t2.scoring.classes import CLASSES
from fink_t2.scoring.lightcurves import Observations
from fink_t2.scoring.sky import luminosity_distance_mpc
from fink_t2.scoring.surveys import RUBIN
from fink_t2.training.plasticc import PlasticcData, default_data_dir, load_plasticc, split_objects
from fink_t2.training.redshift_augmentation import (
    PASSBAND_WAVELENGTHS,
    RedshiftAugmentation,
    augment,
    augmented_split,
    draw_redshifts,
    fit_object_gp,
    flux_scale,
    in_survey,
)

HAS_PLASTICC = (default_data_dir() / "plasticc_train_metadata.csv.gz").exists()
PEAK_MJD = 60100.0
WIDTH_DAYS = 12.0  # Gaussian sigma of the synthetic light curve
SLOPE = -1.5  # f_nu proportional to (lambda / 6000 A)^SLOPE


def synthetic_flux(time, wavelength, amplitude=1000.0):
    return amplitude * np.exp(-0.5 * ((time - PEAK_MJD) / WIDTH_DAYS) ** 2) * (wavelength / 6000.0) ** SLOPE


def synthetic_data(z: float = 0.1, n_objects: int = 1, relative_error: float = 1e-3, cadence_days: float = 1.0,
                   amplitude: float = 1000.0) -> PlasticcData:
    """Objects observed in all six bands every ``cadence_days`` for 300 days, almost noiseless."""
    times = np.arange(PEAK_MJD - 150.0, PEAK_MJD + 150.0, cadence_days)
    index, time, band = [], [], []
    for obj in range(n_objects):
        for b in range(6):
            index.append(np.full(len(times), obj))
            time.append(times)
            band.append(np.full(len(times), b))
    index, time, band = np.concatenate(index), np.concatenate(time), np.concatenate(band).astype(np.int8)
    flux = synthetic_flux(time, PASSBAND_WAVELENGTHS[band], amplitude)
    err = np.full(len(flux), relative_error * amplitude)
    detected = np.abs(flux) >= 5 * err
    forced = Observations(index, time, band, flux, err, detected, n_objects)
    obs = Observations(index, time, band, np.where(detected, flux, 0.0), err, detected, n_objects)
    meta = pd.DataFrame({"object_id": np.arange(n_objects), "hostgal_specz": z, "hostgal_photoz": z * 1.02,
                         "true_z": z, "ddf_bool": 0, "true_peakmjd": PEAK_MJD,
                         "target": 90})
    labels = np.full(n_objects, CLASSES.index("SNIa"))
    return PlasticcData(obs, forced, np.arange(n_objects), labels, meta, RUBIN)


def moved_to(data: PlasticcData, z_new: float, seed: int = 0, **options):
    """Augment with the new redshift forced to ``z_new`` (the draw replaced), the peak not shifted."""
    from unittest import mock

    from fink_t2.training import redshift_augmentation

    config = RedshiftAugmentation(copies=1, peak_shift_days=0.0, **options)
    with mock.patch.object(redshift_augmentation, "draw_redshifts", lambda z, rng, c: np.full(len(z), z_new)):
        return augment(data, np.arange(data.observations.n_objects), np.random.default_rng(seed), config)


def test_flux_scale_is_the_distance_ratio_squared_times_the_bandwidth_term():
    # Nearby, d_L ~ cz/H0: twice the redshift is four times fainter, times (1+z')/(1+z).
    assert flux_scale(0.01, 0.02) == pytest.approx(0.25 * 1.02 / 1.01, rel=0.03)
    z, z_new = 0.3, 0.6
    expected = (luminosity_distance_mpc(z) / luminosity_distance_mpc(z_new)) ** 2 * 1.6 / 1.3
    assert flux_scale(z, z_new) == pytest.approx(expected, rel=1e-12)
    # In magnitudes: the distance moduli's difference, less the bandwidth term.
    dm = 5 * np.log10(luminosity_distance_mpc(z_new) / luminosity_distance_mpc(z))
    assert -2.5 * np.log10(flux_scale(z, z_new)) == pytest.approx(dm - 2.5 * np.log10(1.6 / 1.3), abs=1e-9)


def test_new_redshifts_are_never_nearer_and_stay_in_range():
    config = RedshiftAugmentation(stretch_factor=3.0, min_step=0.2, max_redshift=1.5)
    z = np.array([0.01, 0.1, 0.5, 1.2, 1.5])
    draws = np.stack([draw_redshifts(z, np.random.default_rng(s), config) for s in range(200)])
    assert (draws >= z - 1e-12).all()
    assert (draws <= np.maximum(np.minimum(np.maximum(3 * z, z + 0.2), 1.5), z) + 1e-12).all()
    assert draws[:, 1].max() > 0.25  # a wide range is used


def test_gp_reproduces_a_smooth_light_curve_between_bands():
    data = synthetic_data(cadence_days=3.0)
    f = data.forced
    near = np.abs(f.time - PEAK_MJD) < 60
    gp = fit_object_gp(f.time[near], PASSBAND_WAVELENGTHS[f.band[near]], f.flux[near], f.flux_err[near])
    wavelength = np.array([5500.0, 7000.0])  # between g-r and r-i
    mean, sd = gp.predict(np.array([PEAK_MJD, PEAK_MJD]), wavelength)
    np.testing.assert_allclose(mean, synthetic_flux(PEAK_MJD, wavelength), rtol=0.03)
    assert (sd < 0.2 * gp.amplitude).all()  # a Matern-3/2 between bands: about 10 % of the amplitude


def test_a_known_spectral_slope_and_distance_ratio_come_out_at_the_new_redshift():
    z, z_new = 0.1, 0.32
    out = moved_to(synthetic_data(z), z_new)
    assert out.stats["kept"] == 1 and out.redshift[0] == pytest.approx(z_new)
    obs = out.data.forced
    stretch = (1 + z_new) / (1 + z)
    at_peak = np.abs(obs.time - PEAK_MJD) < 0.5
    for band in (1, 2, 3):  # g r i: their rest-frame wavelengths lie inside the source's bands
        point = at_peak & (obs.band == band)
        expected = flux_scale(z, z_new) * synthetic_flux(PEAK_MJD, PASSBAND_WAVELENGTHS[band] / stretch)
        assert obs.flux[point][0] == pytest.approx(expected, rel=0.05), band
    # The colour: the flux ratio of two bands follows the slope at the shifted wavelengths.
    g, i = (obs.flux[at_peak & (obs.band == b)][0] for b in (1, 3))
    assert g / i == pytest.approx((PASSBAND_WAVELENGTHS[1] / PASSBAND_WAVELENGTHS[3]) ** SLOPE, rel=0.05)


def test_time_is_dilated_by_the_ratio_of_one_plus_z():
    z, z_new = 0.1, 0.65
    out = moved_to(synthetic_data(z, relative_error=1e-6), z_new)  # the noise must not widen the moments
    obs = out.data.forced
    r = obs.band == 2
    t, f = obs.time[r], np.clip(obs.flux[r], 0, None)
    width = np.sqrt(np.sum(f * (t - PEAK_MJD) ** 2) / np.sum(f))
    assert width == pytest.approx(WIDTH_DAYS * (1 + z_new) / (1 + z), rel=0.05)
    assert np.sum(f * t) / np.sum(f) == pytest.approx(PEAK_MJD, abs=1.0)  # no shift asked: the peak stays


def test_points_under_five_sigma_are_not_detected_and_undetectable_objects_are_dropped():
    data = synthetic_data(0.05, relative_error=0.01)
    out = moved_to(data, 0.3)
    obs = out.data.forced
    np.testing.assert_array_equal(obs.detected, np.abs(obs.flux) >= 5 * obs.flux_err)
    assert 0 < obs.detected.sum() < len(obs.detected)
    assert (out.data.observations.flux[~out.data.observations.detected] == 0).all()  # as alerts: limits at 0
    # Far enough, nothing reaches 5 sigma: the survey would not see it, so the copy is not made.
    far = moved_to(data, 2.5)
    assert far.stats == {"tried": 1, "kept": 0, "dropped_undetected": 1}


def test_host_photoz_is_drawn_around_the_new_redshift():
    data = synthetic_data(0.2, n_objects=60)
    meta = data.metadata
    meta["hostgal_photoz"] = meta["hostgal_specz"] + np.linspace(-0.05, 0.05, 60) * 1.2  # errors in units of 1+z
    config = RedshiftAugmentation(copies=2, stretch_factor=2.0, min_step=0.0)
    out = augment(data, np.arange(60), np.random.default_rng(1), config)
    error = (out.data.host_z - out.redshift) / (1 + out.redshift)
    assert np.abs(error).max() <= 0.05 + 1e-9 and error.std() > 0.01


def test_augmentation_is_reproducible_from_its_seed():
    data = synthetic_data(0.1, n_objects=3, relative_error=0.01)
    config = RedshiftAugmentation(copies=2)
    a = augment(data, np.arange(3), np.random.default_rng(5), config)
    b = augment(data, np.arange(3), np.random.default_rng(5), config)
    np.testing.assert_array_equal(a.data.forced.flux, b.data.forced.flux)
    np.testing.assert_array_equal(a.redshift, b.redshift)


def test_galactic_objects_keep_their_light_curve():
    data = synthetic_data(0.1, relative_error=0.01)
    data.metadata["hostgal_specz"] = 0.0
    data.metadata["true_z"] = 0.0
    out = augment(data, np.array([0]), np.random.default_rng(0), RedshiftAugmentation(copies=1))
    assert out.redshift[0] == 0.0
    mine, theirs = out.data.forced, data.forced
    a, b = np.lexsort((mine.band, mine.time)), np.lexsort((theirs.band, theirs.time))
    np.testing.assert_array_equal(mine.flux[a], theirs.flux[b])
    np.testing.assert_array_equal(mine.time[a], theirs.time[b])


@pytest.mark.skipif(not HAS_PLASTICC, reason="PLAsTiCC data (../shared/data/plasticc) not present")
def test_every_copy_stays_in_its_source_split_and_the_test_like_set_uses_test_objects_only():
    from fink_t2.training.test_like import test_like_objects

    data = load_plasticc(max_objects=300, seed=2, survey="rubin")
    split = split_objects(data.labels)
    config = RedshiftAugmentation(copies=2)
    joined, new_split, counts = augmented_split(data, split, config, seed=4, max_objects=300)
    n = data.observations.n_objects
    assert counts["train"] > 0 and counts["validation"] > 0
    np.testing.assert_array_equal(new_split["test"], split["test"])
    assert not set(new_split["train"]) & set(new_split["validation"])
    # Each appended object is a copy of an object of the same split: its id is its source's.
    ids = np.asarray(joined.object_ids)
    for name in ("train", "validation"):
        copies = new_split[name][new_split[name] >= n]
        assert set(ids[copies]) <= set(ids[split[name]])
    assert not set(ids[n:]) & set(ids[split["test"]])
    test_like = test_like_objects(data, split["test"])
    assert set(test_like.source) <= set(split["test"])
    assert set(np.asarray(test_like.data.object_ids)) <= set(ids[split["test"]])
    # The ZTF model's copies: the same objects, in g and r only.
    ztf = in_survey(joined, "ztf")
    assert ztf.survey.name == "ztf" and set(np.unique(ztf.observations.band)) <= {0, 1}


@pytest.mark.skipif(not HAS_PLASTICC, reason="PLAsTiCC data (../shared/data/plasticc) not present")
def test_test_like_supernovae_are_farther_and_sparser_than_the_plain_ones():
    from fink_t2.training.test_like import population, test_like_objects

    data = load_plasticc(max_objects=800, seed=2, survey="rubin")
    objects = np.arange(data.observations.n_objects)
    plain, moved = population(data), population(test_like_objects(data, objects).data)
    for name in ("SNIa", "SNII"):
        assert moved[name]["photoz_median"] > plain[name]["photoz_median"] + 0.05
        assert moved[name]["detections_median"] < plain[name]["detections_median"]


def test_supernova_metrics_by_hand():
    from fink_t2.training.test_like import supernova_metrics

    ia, ii, ibc, tde = (CLASSES.index(c) for c in ("SNIa", "SNII", "SNIbc", "TDE"))
    labels = np.array([ia, ia, ii, ibc])
    p = np.full((5, 14), 0.01)
    p[0, ia], p[1, tde], p[1, ia], p[2, ii], p[3, ia] = 0.8, 0.6, 0.3, 0.5, 0.4  # row 1: TDE on top, Ia second
    p[4] = np.nan  # declined: not judged
    m = supernova_metrics(np.append(labels, ia), p / np.nansum(p, axis=1, keepdims=True))
    assert m["n"] == 4
    # p(Ia): Ia 0.8 and 0.3 against II 0.01, Ibc 0.4 -> 3 of 4 pairs ordered
    assert m["snia_auc"] == pytest.approx(0.75)
    # top among Ia/II/Ibc: Ia, Ia, II, Ia -> recalls Ia 1, II 1, Ibc 0
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)
    assert m["non_supernova_top_share"] == pytest.approx(0.25)
