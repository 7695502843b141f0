"""The shipped TFLite model against its Keras original, and the conversion path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fink_t2.scoring.lightcurves import prepare
from fink_t2.scoring.runtime import DEFAULT_MODEL, load_model

ROOT = Path(__file__).resolve().parents[1]

SHIPPED_KERAS = DEFAULT_MODEL.with_suffix(".keras")


@pytest.fixture(scope="module")
def keras_model():
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf_keras")
    from fink_t2.training.train import load_keras_model

    return load_keras_model(SHIPPED_KERAS)


def test_shipped_keras_model_is_committed_and_small():
    assert SHIPPED_KERAS.exists()
    assert SHIPPED_KERAS.stat().st_size < 400_000
    assert DEFAULT_MODEL.stat().st_size < 250_000


@pytest.mark.tensorflow
def test_shipped_tflite_agrees_with_keras_on_real_alerts(keras_model):
    from fink_t2.training.compression import ztf_alert_inputs

    model = load_model()
    x = ztf_alert_inputs(model.preparation)
    assert len(x) > 200
    # The network against the network: the calibration (temperature, prior) comes after both.
    p_lite, p_keras = model.predict(x, calibrated=False), keras_model.predict(x, verbose=0)
    assert np.mean(p_lite.argmax(1) == p_keras.argmax(1)) >= 0.99
    assert np.abs(p_lite - p_keras).max() < 0.05


@pytest.mark.tensorflow
def test_conversion_writes_verifiable_variants(tmp_path, keras_model):
    from fink_t2.training.compression import convert, save_tflite

    preparation = load_model().preparation
    x = np.random.default_rng(1).normal(0, 0.4, (64, preparation.n_steps, preparation.n_channels)).astype(np.float32)
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
    assert sizes["dynamic_int8"] < sizes["float32"]


@pytest.mark.tensorflow
def test_pruning_puts_real_zeros_in_the_weights(keras_model):
    from fink_t2.training.compression import kernel_sparsity, pruned_model
    from fink_t2.training.train import load_keras_model

    n_steps = load_model().preparation.n_steps
    rng = np.random.default_rng(2)
    x = rng.normal(0, 0.4, (3072, n_steps, load_model().preparation.n_channels)).astype(np.float32)
    y = rng.integers(0, 14, len(x))
    fresh = load_keras_model(SHIPPED_KERAS)  # fine-tuning a wrapped model changes its layers
    pruned = pruned_model(fresh, x, y, np.ones(len(x), np.float32), sparsity=0.5, epochs=1)
    sparsity = kernel_sparsity(pruned)
    assert sparsity and min(sparsity.values()) >= 0.45
    assert min(kernel_sparsity(keras_model).values()) < 0.05


def test_shipped_file_is_within_the_size_limit():
    from fink_t2.scoring.runtime import read_metadata
    from fink_t2.training.compression import MAX_SHIPPED_BYTES

    meta = read_metadata(DEFAULT_MODEL)
    assert meta["size_bytes"] == DEFAULT_MODEL.stat().st_size <= MAX_SHIPPED_BYTES


@pytest.mark.tensorflow
def test_shipped_file_keeps_the_float32_models_snia_ranking(keras_model):
    """The compressed file against the float32 Keras model of the same weights, on the repository's real BTS
    light curves at every evaluation epoch: SN Ia AUC lost at most MAX_AUC_LOSS, probabilities close."""
    from fink_t2.training.bts import REAL_EPOCHS, load_bts
    from fink_t2.training.compression import MAX_AUC_LOSS, snia_auc_by_epoch
    from fink_t2.training.plasticc import evaluation_views, make_views
    from fink_t2.training.sky_simulation import real_sky

    shipped = load_model(DEFAULT_MODEL, prior="flat")
    real = load_bts(ROOT / "data" / "bts_sample.parquet")
    sky = real_sky(real.metadata)
    sets = {}
    for epoch in REAL_EPOCHS:
        spec, _ = evaluation_views(real.observations, np.arange(len(real.labels)), epoch)
        batch = prepare(make_views(real.observations, spec), shipped.preparation, sky=sky.take(spec.source))
        sets[epoch] = (batch.values[batch.ok], real.labels[spec.source][batch.ok])
    reference = snia_auc_by_epoch(sets, lambda x: keras_model.predict(x, verbose=0))
    compressed = snia_auc_by_epoch(sets, shipped.predict)
    assert set(reference) == set(REAL_EPOCHS)
    for epoch in REAL_EPOCHS:
        assert reference[epoch] - compressed[epoch] <= MAX_AUC_LOSS, epoch
        x = sets[epoch][0]
        assert np.abs(shipped.predict(x) - keras_model.predict(x, verbose=0)).max() < 0.02


@pytest.mark.tensorflow
def test_lean_graph_computes_the_keras_model_with_fewer_operators(tmp_path, keras_model):
    from fink_t2.training.compression import convert, graph_size, save_tflite, ztf_alert_inputs

    preparation = load_model().preparation
    rng = np.random.default_rng(3)
    x = np.concatenate([ztf_alert_inputs(preparation),
                        rng.normal(0, 0.4, (100, preparation.n_steps, preparation.n_channels)).astype(np.float32)])
    reference = keras_model.predict(x, verbose=0)
    lean = convert(keras_model, "lean_float32", preparation.n_steps)
    model = load_model(save_tflite(lean, tmp_path / "lean.tflite", preparation))
    assert np.abs(model.predict(x) - reference).max() < 1e-4
    keras_graph = convert(keras_model, "float32", preparation.n_steps)
    assert graph_size(lean)[0] < 0.6 * graph_size(keras_graph)[0]
    assert len(lean) < len(keras_graph)


@pytest.mark.tensorflow
def test_int8_weights_are_int8_in_the_file_and_float_in_the_arithmetic(tmp_path, keras_model):
    from fink_t2.scoring.runtime import interpreter_class
    from fink_t2.training.compression import convert, save_tflite

    preparation = load_model().preparation
    x = np.random.default_rng(4).normal(0, 0.4, (256, preparation.n_steps, preparation.n_channels)).astype(np.float32)
    lean = convert(keras_model, "lean_float32", preparation.n_steps)
    int8 = convert(keras_model, "lean_int8_weights", preparation.n_steps)
    interpreter = interpreter_class()(model_content=int8)
    interpreter.allocate_tensors()
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    int8_constants = [d for d in interpreter.get_tensor_details() if d["dtype"] == np.int8]
    assert ops.count("DEQUANTIZE") == len(int8_constants) >= 5
    assert all(len(d["quantization_parameters"]["scales"]) == 1 for d in int8_constants)
    n_int8 = sum(int(np.prod(d["shape"])) for d in int8_constants)
    # Each int8 weight saves 3 of its 4 bytes.
    assert len(lean) - len(int8) > 2.5 * n_int8
    p = load_model(save_tflite(int8, tmp_path / "int8.tflite", preparation)).predict(x)
    reference = keras_model.predict(x, verbose=0)
    assert 1e-5 < np.abs(p - reference).max() < 0.15
    assert np.mean(p.argmax(1) == reference.argmax(1)) > 0.9
