"""Compression of a trained t2 into TFLite flatbuffers (training extra: imports TensorFlow).

Variants: float32, float16 weights, dynamic-range int8 weights, full-integer
int8 (calibrated on training views only), weight clustering, and magnitude
pruning. Each is written with its metadata YAML so the runtime can verify it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fink_t2.lightcurves import PreparationConfig
from fink_t2.runtime import write_metadata

VARIANTS = ("float32", "float16", "dynamic_int8", "full_int8")


def _concrete_converter(keras_model, n_steps: int):
    """A converter from a concrete function with a dynamic batch dimension."""
    import tensorflow as tf

    spec = tf.TensorSpec([None, n_steps, 2], tf.float32, name="light_curve")
    function = tf.function(lambda x: keras_model(x, training=False)).get_concrete_function(spec)
    return tf.lite.TFLiteConverter.from_concrete_functions([function], keras_model)


def convert(keras_model, variant: str, n_steps: int, calibration: np.ndarray | None = None) -> bytes:
    """TFLite flatbuffer bytes of ``keras_model`` for one variant."""
    import tensorflow as tf

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {VARIANTS}")
    converter = _concrete_converter(keras_model, n_steps)
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "full_int8":
        if calibration is None:
            raise ValueError("full_int8 needs calibration inputs (training views)")
        samples = np.asarray(calibration, dtype=np.float32)

        def representative():
            for i in range(0, len(samples), 32):
                yield [samples[i:i + 32]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def save_tflite(data: bytes, path: str | Path, preparation: PreparationConfig, extra: dict | None = None) -> Path:
    """Write the flatbuffer and its metadata YAML; returns the model path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    write_metadata(path, data, preparation, extra)
    return path
