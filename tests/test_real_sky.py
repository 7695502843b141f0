"""The real-sky side: BTS light curves, alert-like samples, folds, context channels, calibration, priors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fink_t2.scoring.calibration import FLAT, ZTF_ALERT_PRIOR, calibrate, fit_temperature, prior_vector
from fink_t2.scoring.classes import CLASSES, N_CLASSES
from fink_t2.scoring.lightcurves import Observations, PreparationConfig, prepare
from fink_t2.training.bts import REAL_EPOCHS, bts_alert_columns, load_bts, object_folds, predict_real_epochs
from fink_t2.training.evaluation import (
    expected_calibration_error,
    purity_at_efficiency,
    real_sky_metrics,
    sn_family_predictions,
)
from fink_t2.training.plasticc import ALERT_HISTORY_DAYS, evaluation_views, make_views

BTS_SAMPLE = Path(__file__).resolve().parent.parent / "data" / "bts_sample.parquet"


@pytest.fixture(scope="module")
def real():
    return load_bts(BTS_SAMPLE)


def test_bts_sample_loads_with_labels_in_model_order(real):
    frame = pd.read_parquet(BTS_SAMPLE)
    assert len(real.labels) == len(frame) == real.observations.n_objects
    assert [CLASSES[i] for i in real.labels] == list(frame["target_name"])
    # Every detection of the file is an observation (BTS has detections only).
    assert len(real.observations.time) == int(frame["ndet"].sum())
    assert real.observations.detected.all()


def test_real_light_curves_go_through_the_alert_path(real):
    """A BTS light curve scored as a served alert (Fink's c* columns -> classify) equals the training path."""
    from fink_t2.scoring import classify
    from fink_t2.scoring.runtime import get_model

    frame = pd.read_parquet(BTS_SAMPLE).head(12)
    served = classify(bts_alert_columns(frame)).to_numpy()
    model = get_model()
    batch = prepare(real.observations.subset(real.observations.object_index < 12), model.preparation)
    trained = model.predict(batch.values[:12])
    np.testing.assert_allclose(served, trained, atol=1e-5)


def test_alert_epochs_cut_at_a_detection_with_a_30_day_history(real):
    objects = np.arange(len(real.labels))
    obs = real.observations
    for epoch in REAL_EPOCHS:
        spec, positions = evaluation_views(obs, objects, epoch)
        views = make_views(obs, spec)
        for v in range(len(spec)):
            source = spec.source[v]
            times = np.sort(obs.time[obs.object_index == source])
            seen = views.time[views.object_index == v]
            assert seen.max() == spec.alert_time[v]  # the alert is a detection, the latest point seen
            if epoch == "full":
                np.testing.assert_array_equal(np.sort(seen), times)
                continue
            assert seen.min() >= spec.alert_time[v] - ALERT_HISTORY_DAYS
            first = times[0]
            if epoch == "det3":
                assert spec.alert_time[v] == times[2]
            else:
                days = 10.0 if epoch == "first+10d" else 30.0
                assert spec.alert_time[v] <= first + days
                later = times[times > spec.alert_time[v]]
                assert len(later) == 0 or later[0] > first + days
    # Objects with fewer than 3 detections have no det3 view.
    n_det = np.bincount(obs.object_index, minlength=len(objects))
    assert len(evaluation_views(obs, objects, "det3")[0]) == int((n_det >= 3).sum())


def test_folds_split_objects_stratified_and_disjoint(real):
    folds = object_folds(real.labels, k=5, seed=3)
    assert set(np.unique(folds)) == set(range(5))
    for label in np.unique(real.labels):
        counts = np.bincount(folds[real.labels == label], minlength=5)
        assert counts.max() - counts.min() <= 1  # each class dealt evenly
    # A view of a held-out object never comes from a training object: views keep their source object.
    held = np.flatnonzero(folds == 0)
    predicted = predict_real_epochs(lambda v: np.full((len(v), N_CLASSES), 1.0 / N_CLASSES), real, held,
                                    PreparationConfig(n_steps=16, step_days=3.0, context_channels=True))
    for values in predicted.values():
        assert set(values["object"]) <= set(held)
        np.testing.assert_array_equal(values["label"], real.labels[values["object"]])
    assert np.array_equal(object_folds(real.labels, 5, 3), folds)  # deterministic
    with pytest.raises(ValueError):
        object_folds(real.labels, 1)


def test_context_channels_by_hand():
    """Age since the first detection and the distance to the nearest point of each band."""
    config = PreparationConfig(n_steps=4, step_days=5.0, time_scale_days=10.0, context_channels=True)
    # One object: g detections at t=100, 110; r detection at 112 (latest: the grid ends there).
    obs = Observations([0, 0, 0], [100.0, 110.0, 112.0], [0, 0, 1], [1.0, 2.0, 2.0], [0.1, 0.1, 0.1],
                       [True, True, True], 1)
    batch = prepare(obs, config)
    assert batch.values.shape == (1, 4, 5) and config.n_channels == 5
    steps = np.array([97.0, 102.0, 107.0, 112.0])
    np.testing.assert_allclose(batch.values[0, :, 2], np.arcsinh((steps - 100.0) / 20.0), rtol=1e-6)
    gap_g = np.minimum(np.array([3.0, 2.0, 3.0, 2.0]) / 10.0, 3.0)
    gap_r = np.array([15.0, 10.0, 5.0, 0.0]) / 10.0
    np.testing.assert_allclose(batch.values[0, :, 3], gap_g, rtol=1e-6)
    np.testing.assert_allclose(batch.values[0, :, 4], gap_r, rtol=1e-6)
    # Without the context channels the flux channels are the same numbers.
    plain = prepare(obs, PreparationConfig(n_steps=4, step_days=5.0, time_scale_days=10.0))
    np.testing.assert_allclose(plain.values[0], batch.values[0, :, :2])


def test_calibration_hand_computed():
    p = np.array([[0.5, 0.25, 0.25] + [0.0] * (N_CLASSES - 3)])
    # Temperature 2: p ** 0.5, renormalised (the zero classes stay ~0).
    expected = np.sqrt(p) / np.sqrt(p).sum()
    np.testing.assert_allclose(calibrate(p, 2.0), expected, atol=1e-6)
    # A prior twice as high on class 1 (flat training prior): class 1 doubles before renormalising.
    prior = np.full(N_CLASSES, 1.0)
    prior[1] = 2.0
    prior /= prior.sum()
    q = calibrate(p, 1.0, prior)
    np.testing.assert_allclose(q[0, :3], np.array([0.5, 0.5, 0.25]) / 1.25, atol=1e-6)
    # Temperature fit: sharpening helps when the top class is always right.
    labels = np.zeros(50, dtype=np.int64)
    soft = np.tile(np.array([0.4] + [0.6 / (N_CLASSES - 1)] * (N_CLASSES - 1)), (50, 1))
    assert fit_temperature(labels, soft) < 1.0


def test_prior_vector_checks_classes():
    v = prior_vector(ZTF_ALERT_PRIOR)
    assert v.shape == (N_CLASSES,) and v.sum() == pytest.approx(1.0)
    assert v[CLASSES.index("SNIa")] > v[CLASSES.index("KN")]
    with pytest.raises(ValueError, match="missing"):
        prior_vector({"SNIa": 1.0})
    np.testing.assert_allclose(prior_vector(None), 1.0 / N_CLASSES)


def test_model_prior_option(tmp_path):
    """The shipped model's default prior and the flat option, both recorded in its YAML."""
    import yaml
    from conftest import copy_model

    from fink_t2.scoring.runtime import ModelFileError, load_model, metadata_path

    default = load_model()
    flat = load_model(prior=FLAT)
    x = np.random.default_rng(0).normal(size=(20, *default.input_shape)).astype(np.float32)
    raw = default.predict(x, calibrated=False)
    np.testing.assert_allclose(flat.predict(x), raw, atol=1e-6)  # flat: the network's own output
    meta = yaml.safe_load(metadata_path(default.path).read_text())
    section = meta.get("calibration")
    if section:
        assert default.prior == section["prior"] and section["prior"] in section["class_priors"]
        expected = calibrate(raw, section["temperature"], prior_vector(section["class_priors"][section["prior"]]))
        np.testing.assert_allclose(default.predict(x), expected, atol=1e-5)
    with pytest.raises(ModelFileError, match="unknown class prior"):
        load_model(prior="no-such-prior")
    bad = copy_model(tmp_path, meta_changes={"calibration": {"prior": "p", "temperature": -1.0,
                                                             "class_priors": {"p": dict(ZTF_ALERT_PRIOR)}}})
    with pytest.raises(ModelFileError, match="temperature"):
        load_model(bad)


def test_real_sky_metrics_by_hand():
    snia, snii, snibc = (CLASSES.index(c) for c in ("SNIa", "SNII", "SNIbc"))
    labels = np.array([snia, snia, snia, snii, snibc])
    score = np.array([0.9, 0.8, 0.3, 0.85, 0.1])
    # 50 % efficiency: the best 2 SNe Ia (0.9, 0.8) -> selected 0.9, 0.85, 0.8: purity 2/3.
    assert purity_at_efficiency(labels == snia, score, 0.5) == pytest.approx(2 / 3)
    assert purity_at_efficiency(labels == snia, score, 1.0) == pytest.approx(3 / 4)
    p = np.full((5, N_CLASSES), 0.01)
    p[[0, 1, 2, 3, 4], [snia, CLASSES.index("SNIa-91bg"), snii, snii, snii]] = 0.8
    true, predicted = sn_family_predictions(labels, p)
    np.testing.assert_array_equal(true, [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(predicted, [0, 0, 1, 1, 1])  # a 91bg vote counts for the Ia family
    m = real_sky_metrics(labels, p)
    assert m["family_balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    # ECE: all predictions at confidence c with accuracy a -> |c - a|.
    q = np.tile(np.eye(N_CLASSES)[0] * 0.7 + 0.3 / N_CLASSES, (4, 1))
    assert expected_calibration_error(np.array([0, 0, 0, 1]), q) == pytest.approx(abs(q[0].max() - 0.75))


@pytest.mark.tensorflow
def test_real_stage_reduces_the_loss_on_a_tiny_real_subset(real):
    pytest.importorskip("tf_keras")
    from fink_t2.training.model import build_model
    from fink_t2.training.train import RealStageConfig, TrainConfig, fine_tune, real_views

    config = TrainConfig.from_yaml("conf/train.yaml")
    config.real = RealStageConfig(epochs=6, views_per_object=8, plasticc_views_per_object=0, real_share=1.0,
                                  learning_rate=0.01)
    prep = config.preparation
    model = build_model(prep.n_steps, prep.n_channels, config.model, seed=1)
    objects = np.arange(len(real.labels))
    x, y = real_views(real, objects, 4, np.random.default_rng(5), 0.3, prep)

    def loss() -> float:
        p = model.predict(x, verbose=0)
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-15, 1))))

    before = loss()
    history = fine_tune(model, config, None, np.zeros(0, dtype=np.int64), real, objects, progress=False)
    assert len(history) == 6
    assert loss() < before - 0.3, (before, loss())


def test_mixed_class_weights_keep_every_class_equal():
    """Real views (SNe only) must not move the training prior towards SNe; tiny real classes get a small share."""
    from fink_t2.training.train import mixed_class_weights

    snia, snii, agn, iax = (CLASSES.index(c) for c in ("SNIa", "SNII", "AGN", "SNIax"))
    y_real = np.array([snia] * 60 + [snii] * 20 + [iax] * 4)
    objects = np.bincount(np.array([snia] * 30 + [snii] * 10 + [iax] * 2), minlength=N_CLASSES)
    y_sim = np.array([snia] * 10 + [snii] * 10 + [agn] * 5 + [iax] * 10)
    w_real, w_sim = mixed_class_weights(y_real, objects, y_sim, real_share=0.6, min_real_objects=20)
    assert (w_real.sum() + w_sim.sum()) / (len(y_real) + len(y_sim)) == pytest.approx(1.0)
    totals = [w_real[y_real == c].sum() + w_sim[y_sim == c].sum() for c in (snia, snii, agn, iax)]
    np.testing.assert_allclose(totals, totals[0], rtol=1e-5)  # every class the same total weight
    share = lambda c: w_real[y_real == c].sum() / (w_real[y_real == c].sum() + w_sim[y_sim == c].sum())  # noqa: E731
    assert share(snia) == pytest.approx(0.6)
    assert share(snii) == pytest.approx(0.6 * 10 / 20)  # 10 real objects out of the 20 needed
    assert share(iax) == pytest.approx(0.6 * 2 / 20)


def test_evaluate_real_report_from_a_run_folder(real, tmp_path):
    """``fink-t2 evaluate --real``'s section: a run's out-of-fold predictions -> tables, targets, JSON and plot."""
    pytest.importorskip("matplotlib")
    import json

    from fink_t2.scoring.lightcurves import PreparationConfig as Prep
    from fink_t2.training.report import _real_sky_section
    from fink_t2.training.train import CALIBRATION_FILE, CV_FILE

    run = tmp_path / "run"
    run.mkdir()
    folds = object_folds(real.labels, 5, 42)
    snia = CLASSES.index("SNIa")

    def informative(values: np.ndarray) -> np.ndarray:  # a fake model: SN Ia probability from the colour channel
        p = np.full((len(values), N_CLASSES), 1.0)
        p[:, snia] += np.exp(values[:, -1, 0] - values[:, -1, 1])
        return p / p.sum(1, keepdims=True)

    predicted = predict_real_epochs(informative, real, np.arange(len(real.labels)), Prep(context_channels=True))
    arrays = {}
    for epoch, values in predicted.items():
        for key in ("object", "label", "probabilities"):
            arrays[f"{epoch}/{key}"] = values[key]
        arrays[f"{epoch}/fold"] = folds[values["object"]]
    np.savez_compressed(run / CV_FILE, **arrays)
    (run / CALIBRATION_FILE).write_text(json.dumps({"temperature": 1.0}))
    text: list[str] = []
    out = tmp_path / "report"
    report = _real_sky_section(run, out, {}, BTS_SAMPLE, text, False)
    assert (out / "real_sky.json").is_file() and (out / "real_sky.png").is_file()
    shipped = next(iter(report["results"]))
    pooled = report["results"][shipped]["alert epochs pooled"]
    assert 0.0 <= pooled["snia_vs_rest_auc"] <= 1.0
    assert any("Real sky" in line for line in text) and any("AUC" in line for line in text)


def test_mixed_in_plasticc_views_follow_the_early_fraction(real):
    """``real.plasticc_early_fraction``: the simulated views of the real stage can be as early as the real ones."""
    from fink_t2.training.plasticc import detection_epochs
    from fink_t2.training.train import RealStageConfig, TrainConfig, mixed_in_plasticc_views

    objects = np.arange(len(real.labels))
    times, owner = detection_epochs(real.observations)
    first = np.full(real.observations.n_objects, np.inf)
    np.minimum.at(first, owner, times)

    def ages(stage: RealStageConfig) -> np.ndarray:
        config = TrainConfig(real=stage)
        spec = mixed_in_plasticc_views(real.observations, objects, config, np.random.default_rng(3))
        assert len(spec) == len(objects) * stage.plasticc_views_per_object
        return spec.alert_time - first[spec.source]

    early = ages(RealStageConfig(plasticc_views_per_object=20, plasticc_early_fraction=1.0, early_days=10.0))
    assert early.min() >= 0 and early.max() <= 10.0
    default = ages(RealStageConfig(plasticc_views_per_object=20, early_days=10.0))
    assert (default > 10.0).mean() > 0.2  # null: the pretraining's draw (60 % within 60 days), not the real views'
    with pytest.raises(ValueError, match="plasticc_early_fraction"):
        RealStageConfig(plasticc_early_fraction=1.5)


def test_clean_views_are_neither_thinned_nor_noisier(real):
    """``real.clean_fraction``: that share of the real views is the alert as delivered."""
    from fink_t2.training.plasticc import sample_training_views

    objects = np.arange(len(real.labels))

    def spec(clean: float):
        return sample_training_views(real.observations, objects, 40, np.random.default_rng(4), 0.3, 0.8, 30.0,
                                     clean_fraction=clean)

    augmented = lambda s: (s.keep_fraction < 1) | (s.noise_factor > 1)  # noqa: E731
    assert augmented(spec(0.0)).mean() > 0.7
    assert augmented(spec(1.0)).sum() == 0
    base, half = spec(0.0), spec(0.5)
    assert 0.25 < augmented(half).mean() < 0.55
    # The clean draw comes last: every other draw is what a run without it makes (older runs reproduce),
    # and a view it leaves augmented keeps its thinning and noise.
    np.testing.assert_array_equal(half.alert_time, base.alert_time)
    np.testing.assert_array_equal(half.history_days, base.history_days)
    kept = augmented(half)
    np.testing.assert_array_equal(half.keep_fraction[kept], base.keep_fraction[kept])
    np.testing.assert_array_equal(half.noise_factor[kept], base.noise_factor[kept])


def test_running_average_of_weights_by_hand():
    """``real.average_epochs``: the weights kept are the plain mean of the last epochs' weights."""
    from fink_t2.training.train import RealStageConfig, running_average

    epochs = [[np.array([1.0, 2.0]), np.array([[3.0]])], [np.array([3.0, 2.0]), np.array([[0.0]])],
              [np.array([5.0, 8.0]), np.array([[6.0]])]]
    average, count = None, 0
    for weights in epochs:
        average, count = running_average(average, count, weights)
    assert count == 3
    np.testing.assert_allclose(average[0], [3.0, 4.0])
    np.testing.assert_allclose(average[1], [[3.0]])
    with pytest.raises(ValueError, match="average_epochs"):
        RealStageConfig(epochs=5, average_epochs=6)
