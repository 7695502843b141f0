"""The shipped TFLite model against its Keras original, and the conversion path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fink_t2.runtime import DEFAULT_MODEL, load_model

SHIPPED_KERAS = DEFAULT_MODEL.with_suffix(".keras")
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "alerts_sample.parquet"


@pytest.fixture(scope="module")
def keras_model():
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf_keras")
    from fink_t2.training import load_keras_model

    return load_keras_model(SHIPPED_KERAS)


def test_shipped_keras_model_is_committed_and_small():
    assert SHIPPED_KERAS.exists()
    assert SHIPPED_KERAS.stat().st_size < 400_000
    assert DEFAULT_MODEL.stat().st_size < 60_000


@pytest.mark.tensorflow
def test_shipped_tflite_agrees_with_keras_on_real_alerts(keras_model):
    from fink_t2.compression import ztf_alert_inputs

    model = load_model()
    x = ztf_alert_inputs(model.preparation, SAMPLE)
    assert len(x) > 200
    p_lite, p_keras = model.predict(x), keras_model.predict(x, verbose=0)
    assert np.mean(p_lite.argmax(1) == p_keras.argmax(1)) >= 0.99
    assert np.abs(p_lite - p_keras).max() < 0.05


@pytest.mark.tensorflow
def test_conversion_writes_verifiable_variants(tmp_path, keras_model):
    from fink_t2.compression import convert, save_tflite

    preparation = load_model().preparation
    x = np.random.default_rng(1).normal(0, 0.4, (64, preparation.n_steps, 2)).astype(np.float32)
    reference = keras_model.predict(x, verbose=0)
    sizes = {}
    for variant in ("float32", "dynamic_int8", "full_int8"):
        data = convert(keras_model, variant, preparation.n_steps, calibration=x)
        path = save_tflite(data, tmp_path / f"{variant}.tflite", preparation, {"variant": variant})
        model = load_model(path)
        p = model.predict(x)
        sizes[variant] = len(data)
        tolerance = 1e-4 if variant == "float32" else 0.15
        assert np.abs(p - reference).max() < tolerance, variant
    assert sizes["dynamic_int8"] < 0.7 * sizes["float32"]


@pytest.mark.tensorflow
def test_pruning_puts_real_zeros_in_the_weights(keras_model):
    from fink_t2.compression import kernel_sparsity, pruned_model
    from fink_t2.training import load_keras_model

    n_steps = load_model().preparation.n_steps
    rng = np.random.default_rng(2)
    x = rng.normal(0, 0.4, (3072, n_steps, 2)).astype(np.float32)
    y = rng.integers(0, 14, len(x))
    fresh = load_keras_model(SHIPPED_KERAS)  # fine-tuning a wrapped model changes its layers
    pruned = pruned_model(fresh, x, y, np.ones(len(x), np.float32), sparsity=0.5, epochs=1)
    sparsity = kernel_sparsity(pruned)
    assert sparsity and min(sparsity.values()) >= 0.45
    assert min(kernel_sparsity(keras_model).values()) < 0.05
