"""PLAsTiCC loading, the object split and alert-like views, on the real training set."""

from __future__ import annotations

import numpy as np
import pytest

from fink_t2.scoring.classes import N_CLASSES
from fink_t2.scoring.lightcurves import prepare
from fink_t2.training.plasticc import (
    ALERT_HISTORY_DAYS,
    EVALUATION_EPOCHS,
    default_data_dir,
    detection_epochs,
    evaluation_views,
    load_plasticc,
    make_views,
    resample_views,
    sample_training_views,
    split_objects,
)

pytestmark = pytest.mark.skipif(not (default_data_dir() / "plasticc_train_metadata.csv.gz").exists(),
                                reason="PLAsTiCC data (../shared/data/plasticc) not present")


@pytest.fixture(scope="module")
def data():
    return load_plasticc(max_objects=400, seed=1)


def test_subset_is_stratified_and_labelled(data):
    assert 350 <= len(data.labels) <= 450
    assert set(np.unique(data.labels)) == set(range(N_CLASSES))
    assert data.observations.n_objects == len(data.object_ids)
    assert set(np.unique(data.observations.band)) == {0, 1}


def test_split_is_disjoint_complete_stratified_and_seeded():
    labels = np.repeat(np.arange(14), [151, 495, 924, 1193, 183, 30, 484, 102, 981, 208, 370, 2313, 239, 175])
    split = split_objects(labels, seed=42)
    parts = [set(v) for v in split.values()]
    assert sum(len(p) for p in parts) == len(labels)
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    test_counts = np.bincount(labels[split["test"]], minlength=14)
    assert abs(test_counts[11] - 0.15 * 2313) <= 1 and test_counts[5] == round(0.15 * 30)
    again = split_objects(labels, seed=42)
    assert all(np.array_equal(split[k], again[k]) for k in split)
    assert not np.array_equal(split["test"], split_objects(labels, seed=7)["test"])


def test_views_hold_only_their_window_of_their_source(data):
    rng = np.random.default_rng(0)
    objects = np.arange(data.observations.n_objects)
    spec = sample_training_views(data.observations, objects, 3, rng, long_history_fraction=0.0)
    views = make_views(data.observations, spec)
    t_alert = spec.alert_time[views.object_index]
    assert np.all(views.time <= t_alert) and np.all(views.time >= t_alert - ALERT_HISTORY_DAYS)
    # Every view ends on one of its source's detections.
    times, owner = detection_epochs(data.observations)
    detections = set(zip(owner.tolist(), times.tolist()))
    assert all((s, t) in detections for s, t in zip(spec.source.tolist(), spec.alert_time.tolist()))
    assert prepare(views).ok.mean() > 0.99


def test_augmentation_thins_and_adds_noise_but_keeps_the_alert_point(data):
    rng = np.random.default_rng(1)
    objects = np.arange(data.observations.n_objects)
    spec = sample_training_views(data.observations, objects, 2, rng)
    spec.keep_fraction[:] = 0.3
    spec.noise_factor[:] = 2.0
    exact = make_views(data.observations, spec)
    noisy = make_views(data.observations, spec, rng)
    assert len(noisy.time) < 0.8 * len(exact.time)
    assert np.allclose(np.median(noisy.flux_err / 2.0), np.median(exact.flux_err), rtol=0.3)
    last = np.zeros(len(spec))
    np.maximum.at(last, noisy.object_index, noisy.time)
    has_points = np.bincount(noisy.object_index, minlength=len(spec)) > 0
    assert np.all(last[has_points] == spec.alert_time[has_points])


def test_resampled_views_have_ztf_like_density(data):
    rng = np.random.default_rng(2)
    objects = np.arange(data.observations.n_objects)
    spec = sample_training_views(data.observations, objects, 2, rng, long_history_fraction=0.0)
    original = make_views(data.observations, spec)
    resampled = resample_views(data.forced, spec, rng)
    per_view = np.bincount(resampled.object_index, minlength=len(spec))
    assert np.median(per_view) >= 3 * np.median(np.bincount(original.object_index, minlength=len(spec)))
    t_alert = spec.alert_time[resampled.object_index]
    assert np.all(resampled.time <= t_alert + 1e-9) and np.all(resampled.time >= t_alert - ALERT_HISTORY_DAYS - 0.2)
    batch = prepare(resampled)
    assert batch.ok.mean() > 0.8 and np.isfinite(batch.values).all()


def test_evaluation_views_are_deterministic_and_defined(data):
    objects = np.arange(data.observations.n_objects)
    for epoch in EVALUATION_EPOCHS:
        spec, positions = evaluation_views(data.observations, objects, epoch)
        again, _ = evaluation_views(data.observations, objects, epoch)
        assert np.array_equal(spec.alert_time, again.alert_time)
        assert len(positions) > 0.8 * len(objects) if epoch != "det3" else len(positions) > 0.3 * len(objects)
    full, _ = evaluation_views(data.observations, objects, "full")
    early, _ = evaluation_views(data.observations, objects, "first+10d")
    assert np.all(early.alert_time <= full.alert_time)
    with pytest.raises(ValueError, match="unknown epoch"):
        evaluation_views(data.observations, objects, "peak")
