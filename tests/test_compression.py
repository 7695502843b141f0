"""The shipped TFLite model against its Keras original, and the conversion path."""

from __future__ import annotations

import numpy as np
import pytest

from fink_t2.scoring.runtime import DEFAULT_MODEL, load_model

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
    assert DEFAULT_MODEL.stat().st_size < 60_000


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


def test_shipped_file_is_18x_smaller_than_the_recorded_saved_model():
    from fink_t2.scoring.runtime import read_metadata

    meta = read_metadata(DEFAULT_MODEL)
    assert meta["size_bytes"] == DEFAULT_MODEL.stat().st_size
    assert meta["saved_model_bytes"] >= 18 * meta["size_bytes"]


@pytest.mark.tensorflow
def test_shipped_file_is_18x_smaller_than_a_fresh_saved_model(tmp_path, keras_model):
    from fink_t2.training.compression import directory_bytes

    keras_model.save(str(tmp_path / "saved_model"), save_format="tf")
    saved_model_bytes = directory_bytes(tmp_path / "saved_model")
    assert saved_model_bytes >= 18 * DEFAULT_MODEL.stat().st_size


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
