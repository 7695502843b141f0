"""The six-band Rubin t2 (issue 13): its training configuration, the survey-driven training views,
the shipped model and the evaluation's pieces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fink_t2.scoring.lightcurves import Observations, PreparationConfig, prepare
from fink_t2.scoring.paths import MODELS, shared_path
from fink_t2.scoring.surveys import RUBIN, ZTF
from fink_t2.training.plasticc import (
    ALERT_VIEWS,
    ViewSpec,
    alert_views,
    default_data_dir,
    load_plasticc,
    passband_to_band,
    resample_views,
    restrict_to_survey,
)
from fink_t2.training.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
RUBIN_MODEL = MODELS / "t2_rubin.tflite"
HAS_PLASTICC = (default_data_dir() / "plasticc_train_metadata.csv.gz").exists()
ELASTICC_AGN = shared_path("data", "rubin_alerts") / "fink_science_elasticc_agn.parquet"


def test_training_config_parses():
    config = TrainConfig.from_yaml(ROOT / "conf" / "train_rubin.yaml")
    prep = config.preparation
    assert prep.survey == "rubin" and prep.bands == RUBIN.bands and prep.host_redshift
    assert prep.n_channels == 6 + 7 + 2 + 3 and prep.brightness and not prep.use_upper_limits
    assert config.real is None and 0 < config.redshift_dropout < 1
    assert config.augmentation is not None and config.augmentation.copies >= 1
    # The held-out objects are the ZTF model's held-out objects too: same seed and fractions.
    ztf = TrainConfig.from_yaml(ROOT / "conf" / "train.yaml")
    assert (config.seed, config.split) == (ztf.seed, ztf.split)


@pytest.mark.skipif(not RUBIN_MODEL.exists(), reason="the Rubin model is not shipped in this checkout")
def test_conf_is_the_shipped_models_training_configuration():
    """`fink-t2 train --config conf/train_rubin.yaml` is how the shipped model was made (its card says so)."""
    shipped = TrainConfig.from_yaml(RUBIN_MODEL.with_name("t2_rubin_train.yaml"))
    assert TrainConfig.from_yaml(ROOT / "conf" / "train_rubin.yaml") == shipped


def test_real_stage_is_refused_for_rubin(tmp_path):
    text = (ROOT / "conf" / "train_rubin.yaml").read_text().replace("real: null", "real: {epochs: 2}")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match="real-data stage fine-tunes on ZTF"):
        TrainConfig.from_yaml(path)


def test_passbands_are_matched_by_name():
    assert passband_to_band(ZTF) == {1: 0, 2: 1}
    assert passband_to_band(RUBIN) == {i: i for i in range(6)}
    assert alert_views("rubin").history_days == 365.0 and len(ALERT_VIEWS["rubin"].band_probability) == 6
    with pytest.raises(ValueError, match="no training views"):
        alert_views("decam")


def _six_band_curve(n_objects: int = 3, n: int = 60) -> Observations:
    t = np.tile(59000.0 + np.arange(n) * 1.5, n_objects)
    obj = np.repeat(np.arange(n_objects), n)
    band = np.tile(np.arange(n) % 6, n_objects).astype(np.int8)
    flux = 200.0 * np.exp(-0.5 * ((t - 59045.0) / 12.0) ** 2) * (1 + 0.1 * band)
    return Observations(obj, t, band, flux, np.full(len(t), 5.0), np.abs(flux) > 25.0, n_objects)


def test_rubin_resampled_views_use_six_bands_and_stay_in_their_window():
    forced = _six_band_curve()
    spec = ViewSpec(np.array([0, 1, 2]), np.array([59040.0, 59050.0, 59060.0]), np.array([30.0, 30.0, 1e5]),
                    np.ones(3), np.ones(3))
    views = resample_views(forced, spec, np.random.default_rng(0), survey="rubin")
    assert views.n_objects == 3
    assert set(np.unique(views.band)) <= set(range(6)) and len(np.unique(views.band)) >= 4
    start = spec.alert_time - np.minimum(spec.history_days, 90.0)
    assert (views.time >= start[views.object_index] - 0.2).all()
    assert (views.time <= spec.alert_time[views.object_index] + 1e-9).all()
    for v in range(3):  # the alert's own night holds exactly one point
        assert np.sum(np.isclose(views.time[views.object_index == v], spec.alert_time[v])) == 1


def test_restrict_to_ztf_bands_maps_by_name():
    obs = _six_band_curve(1, 12)
    gr = restrict_to_survey(obs, RUBIN, ZTF)
    assert len(gr.time) == 4 and set(gr.band.tolist()) == {0, 1}
    np.testing.assert_array_equal(gr.time[gr.band == 0], obs.time[obs.band == 1])
    np.testing.assert_array_equal(gr.flux[gr.band == 1], obs.flux[obs.band == 2])


@pytest.mark.skipif(not HAS_PLASTICC, reason="PLAsTiCC data (../shared/data/plasticc) not present")
def test_plasticc_in_six_bands_with_host_redshift():
    data = load_plasticc(max_objects=200, seed=3, survey="rubin")
    ztf = load_plasticc(max_objects=200, seed=3)
    np.testing.assert_array_equal(data.labels, ztf.labels)  # same objects, same order: same split
    assert set(np.unique(data.observations.band)) == set(range(6))
    assert data.survey is RUBIN and data.host_z.shape == data.labels.shape
    assert np.isfinite(data.host_z).all() and (data.host_z >= 0).all()
    # g/r of the six-band data are ZTF's data.
    gr = restrict_to_survey(data.observations, RUBIN, ZTF)
    np.testing.assert_array_equal(gr.time, ztf.observations.time)
    np.testing.assert_array_equal(gr.band, ztf.observations.band)


@pytest.mark.skipif(not RUBIN_MODEL.exists(), reason="the Rubin model is not shipped in this checkout")
def test_shipped_rubin_model_loads_and_scores_a_six_band_light_curve():
    from fink_t2.scoring.runtime import load_model

    model = load_model(RUBIN_MODEL)
    assert model.survey is RUBIN and model.metadata["survey"] == RUBIN.to_dict()
    assert model.metadata["bands"] == list(RUBIN.bands)
    assert model.input_shape == (model.preparation.n_steps, model.preparation.n_channels) == (30, 6 + 7 + 2 + 3)
    train = TrainConfig.from_yaml(RUBIN_MODEL.with_name("t2_rubin_train.yaml"))
    assert train.preparation == model.preparation
    obs = _six_band_curve()
    with_z = prepare(obs, model.preparation, host_z=np.array([0.2, 0.8, np.nan]))
    without = prepare(obs, model.preparation)
    assert with_z.ok.all()
    p, q = model.predict(with_z.values), model.predict(without.values)
    assert np.isfinite(p).all() and np.allclose(p.sum(axis=1), 1.0, atol=1e-4)
    assert np.abs(p[:2] - q[:2]).max() > 1e-4  # the redshift is read
    np.testing.assert_allclose(p[2], q[2], atol=1e-6)  # NaN is "unknown", as no redshift at all


@pytest.mark.skipif(not (RUBIN_MODEL.exists() and ELASTICC_AGN.exists()),
                    reason="needs the shipped Rubin model and ../shared/data/rubin_alerts")
def test_elasticc_recall_counts(tmp_path):
    from fink_t2.scoring.runtime import load_model
    from fink_t2.training.rubin_evaluation import ZTF_GR, elasticc_recall, predictors

    (tmp_path / ELASTICC_AGN.name).write_bytes(ELASTICC_AGN.read_bytes())
    models = predictors(load_model(RUBIN_MODEL, prior="flat"), load_model(prior="flat"))
    out = elasticc_recall(models, tmp_path)
    assert list(out) == ["AGN"] and out["AGN"]["n_alerts"] == 100
    for m in out["AGN"]["models"].values():
        assert 0 < m["n_judged"] <= 100 and sum(m["top_class_counts"].values()) == m["n_judged"]
        assert 0.0 <= m["recall_of_all"] <= m["recall_of_judged"] <= 1.0
    assert out["AGN"]["models"][ZTF_GR]["n_judged"] <= out["AGN"]["models"][next(iter(models))]["n_judged"]


def test_preparation_default_is_still_ztf():
    assert PreparationConfig().survey == "ztf" and PreparationConfig().bands == ("g", "r")
