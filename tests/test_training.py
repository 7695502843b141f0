"""A tiny real training run (needs the training extra: TensorFlow)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fink_t2.training.plasticc import default_data_dir
from fink_t2.training.train import TrainConfig, class_weights

pytestmark = pytest.mark.skipif(not (default_data_dir() / "plasticc_train_metadata.csv.gz").exists(),
                                reason="PLAsTiCC data (../shared/data/plasticc) not present")


def test_class_weights_balance_classes():
    labels = np.array([0, 0, 0, 1])
    w = class_weights(labels)
    assert w[:3].sum() == pytest.approx(w[3]) and w.mean() == pytest.approx(1.0)


def test_config_file_loads():
    config = TrainConfig.from_yaml("conf/train.yaml")
    assert config.preparation.n_steps >= 8


@pytest.mark.parametrize("text, named", [
    ("epochs: 3\nlearnin_rate: 0.1\n", "learnin_rate"),
    ("epochs: many\n", "epochs"),
    ("preparation:\n  n_steps: 16\n  method: spline\n", "method"),
    ("model:\n  d_model: 30\n  num_heads: 4\n", "multiple"),
], ids=["unknown_key", "wrong_type", "bad_preparation", "bad_model"])
def test_bad_config_is_rejected_naming_the_key(tmp_path, text, named):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ValueError, match=named):
        TrainConfig.from_yaml(bad)


@pytest.mark.tensorflow
def test_tiny_training_run_reduces_loss_and_saves_a_usable_model(tmp_path):
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf_keras")
    from fink_t2.training.train import load_keras_model, train

    config = TrainConfig.from_yaml("conf/train.yaml")
    config.epochs, config.views_per_object, config.patience = 6, 8, 10
    config.model = replace(config.model, ff_dim=32)
    config.real = None  # PLAsTiCC only here; the real stage has its own test (test_real_sky.py)
    summary = train(config, tmp_path, max_objects=300, progress=False)
    losses = [h["train_loss"] for h in summary["history"]]
    assert losses[-1] < losses[0] - 0.05, losses
    assert summary["best_val_flat_log_loss"] < np.log(14)
    model = load_keras_model(tmp_path / "t2.keras")
    x = np.zeros((3, config.preparation.n_steps, config.preparation.n_channels), dtype=np.float32)
    p = model.predict(x, verbose=0)
    assert p.shape == (3, 14) and np.allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert (tmp_path / "config.yaml").exists() and (tmp_path / "history.json").exists()


@pytest.mark.tensorflow
def test_augmented_rubin_training_is_reproducible_from_its_seed(tmp_path):
    """One command and a seed: two runs of the Rubin configuration (redshift augmentation included) give the
    same losses and the same weights."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf_keras")
    from fink_t2.training.train import load_keras_model, train

    config = TrainConfig.from_yaml("conf/train_rubin.yaml")
    assert config.augmentation is not None
    config.epochs, config.views_per_object, config.validation_views_per_object = 2, 2, 1
    config.model = replace(config.model, d_model=8, num_heads=2, ff_dim=16, num_blocks=1)
    runs = [train(config, tmp_path / name, max_objects=150, progress=False) for name in ("a", "b")]
    assert [h["train_loss"] for h in runs[0]["history"]] == [h["train_loss"] for h in runs[1]["history"]]
    a, b = (load_keras_model(tmp_path / name / "t2.keras").get_weights() for name in ("a", "b"))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
