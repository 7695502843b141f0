"""Compression of a trained t2 into TFLite flatbuffers (training extra: imports TensorFlow).

Variants: float32, float16 weights, dynamic-range int8 weights, full-integer
int8 (calibrated on training views only), weight clustering, and magnitude
pruning, each converted from the Keras graph; and the same model rewritten as a
lean inference graph (:func:`lean_function`: half the operators) in
float32, float16 and int8 weights. Each is written with its metadata YAML so
the runtime can verify it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from fink_t2.scoring.classes import CLASSES
from fink_t2.scoring.lightcurves import PreparationConfig, prepare
from fink_t2.scoring.paths import MODELS, SAMPLE_ALERTS, SAMPLE_RUBIN_ALERTS
from fink_t2.scoring.runtime import write_metadata

#: Converted from the Keras graph as it is.
KERAS_GRAPH_VARIANTS = ("float32", "float16", "dynamic_int8", "dynamic_int8_per_tensor", "full_int8")
#: Converted from :func:`lean_function` (same weights, same outputs, fewer operators).
LEAN_VARIANTS = ("lean_float32", "lean_float16", "lean_int8_weights")
VARIANTS = KERAS_GRAPH_VARIANTS + LEAN_VARIANTS


def _concrete_converter(keras_model, n_steps: int):
    """A converter from a concrete function with a dynamic batch dimension."""
    import tensorflow as tf

    spec = tf.TensorSpec([None, n_steps, int(keras_model.input_shape[-1])], tf.float32, name="light_curve")
    function = tf.function(lambda x: keras_model(x, training=False)).get_concrete_function(spec)
    return tf.lite.TFLiteConverter.from_concrete_functions([function], keras_model)


def convert(keras_model, variant: str, n_steps: int, calibration: np.ndarray | None = None) -> bytes:
    """TFLite flatbuffer bytes of ``keras_model`` for one variant."""
    import tensorflow as tf

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {VARIANTS}")
    if variant in LEAN_VARIANTS:
        function = lean_function(keras_model, n_steps)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], function)
        variant = variant.removeprefix("lean_")  # same weight formats as the Keras-graph variants
    else:
        converter = _concrete_converter(keras_model, n_steps)
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant in ("dynamic_int8", "dynamic_int8_per_tensor"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        # One scale per weight tensor instead of one (plus an int64 zero point) per output channel.
        converter._experimental_disable_per_channel = variant == "dynamic_int8_per_tensor"
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
    data = strip_names(converter.convert())
    return int8_weights(data) if variant == "int8_weights" else data


def strip_names(data: bytes) -> bytes:
    """Drop tensor names and signature definitions from a flatbuffer.

    They are a sixth of a model this small and the runtime addresses tensors
    by index; the operators and weights are untouched (outputs identical).
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    flatbuffer_utils.strip_strings(model)
    model.signatureDefs = []
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def lean_function(keras_model, n_steps: int):
    """The trained Keras t2 as one ``tf.function`` of plain operators, with the same weights.

    Why: the Keras graph becomes 74 TFLite operators and 112 tensors (einsum
    reshapes, separate Q/K/V projections, LayerNorm affines): more bytes of
    flatbuffer bookkeeping than of weights in a model this small (and per-op
    overhead at run time). Here Q, K and V are one
    projection, the 1/sqrt(key_dim) scale is folded into Q, and the last
    LayerNorm's scale and offset are folded into the classifier (pooling and
    the classifier are linear). Outputs equal the Keras model's to float
    rounding (checked by the tests and by ``fink-t2 compress``).
    """
    import tensorflow as tf

    from fink_t2.training.model import positional_encoding

    def weights(name: str) -> list[np.ndarray]:
        return [np.asarray(w, dtype=np.float64) for w in keras_model.get_layer(name).get_weights()]

    def const(values) -> "tf.Tensor":
        return tf.constant(np.asarray(values, dtype=np.float32))

    names = {layer.name for layer in keras_model.layers}
    n_blocks = sum(1 for name in names if name.startswith("attention_norm_"))
    embed_kernel, embed_bias = weights("embedding")
    embed_kernel = embed_kernel[0]
    d_model = embed_kernel.shape[1]
    blocks = []
    for i in range(n_blocks):
        wq, bq, wk, bk, wv, bv, wo, bo = weights(f"attention_{i}")
        n_heads, key_dim = wq.shape[1], wq.shape[2]
        scale = 1.0 / np.sqrt(key_dim)
        blocks.append({
            "n_heads": n_heads, "key_dim": key_dim,
            "qkv": (np.concatenate([wq.reshape(d_model, -1) * scale, wk.reshape(d_model, -1),
                                    wv.reshape(d_model, -1)], axis=1),
                    np.concatenate([bq.reshape(-1) * scale, bk.reshape(-1), bv.reshape(-1)])),
            "out": (wo.reshape(n_heads * key_dim, d_model), bo),
            "norm1": weights(f"attention_norm_{i}"), "ff_in": weights(f"ff_in_{i}"),
            "ff_out": weights(f"ff_out_{i}"), "norm2": weights(f"ff_norm_{i}")})
    head_kernel, head_bias = weights("probabilities")
    gamma, beta = blocks[-1]["norm2"]
    head_kernel, head_bias = gamma[:, None] * head_kernel, beta @ head_kernel + head_bias
    encoding = positional_encoding(n_steps, d_model)
    epsilon = keras_model.get_layer("attention_norm_0").epsilon

    def normalise(x):
        mean = tf.reduce_mean(x, axis=-1, keepdims=True)
        variance = tf.reduce_mean(tf.math.squared_difference(x, mean), axis=-1, keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + epsilon)

    n_channels = int(keras_model.input_shape[-1])

    @tf.function(input_signature=[tf.TensorSpec([None, n_steps, n_channels], tf.float32, name="light_curve")])
    def t2_inference(x):
        h = tf.nn.relu(tf.matmul(x, const(embed_kernel)) + const(embed_bias)) + const(encoding)
        for index, block in enumerate(blocks):
            n_heads, key_dim = block["n_heads"], block["key_dim"]
            qkv = tf.matmul(h, const(block["qkv"][0])) + const(block["qkv"][1])
            qkv = tf.transpose(tf.reshape(qkv, [-1, n_steps, 3 * n_heads, key_dim]), [0, 2, 1, 3])
            q, k, v = tf.split(qkv, 3, axis=1)
            attention = tf.matmul(tf.nn.softmax(tf.matmul(q, k, transpose_b=True)), v)
            attention = tf.reshape(tf.transpose(attention, [0, 2, 1, 3]), [-1, n_steps, n_heads * key_dim])
            attention = tf.matmul(attention, const(block["out"][0])) + const(block["out"][1])
            h = normalise(h + attention) * const(block["norm1"][0]) + const(block["norm1"][1])
            ff = tf.nn.relu(tf.matmul(h, const(block["ff_in"][0])) + const(block["ff_in"][1]))
            h = normalise(h + tf.matmul(ff, const(block["ff_out"][0])) + const(block["ff_out"][1]))
            if index < len(blocks) - 1:
                h = h * const(block["norm2"][0]) + const(block["norm2"][1])
        pooled = tf.reduce_mean(h, axis=1)
        return tf.nn.softmax(tf.matmul(pooled, const(head_kernel)) + const(head_bias))

    return t2_inference


def int8_weights(data: bytes, min_values: int = 64) -> bytes:
    """Store every float32 constant of ``min_values`` or more as int8 with one scale, behind a DEQUANTIZE.

    Weight-only quantisation: the arithmetic stays float32 (the interpreter
    dequantizes constant weights once, at the first invoke), so the only error
    is the rounding of the weights, symmetric, one scale per tensor (a scale
    per channel costs 12 bytes each in the flatbuffer, a tenth of this model).
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    if len(model.subgraphs) != 1:
        raise ValueError("int8_weights expects a single-subgraph model")
    graph = model.subgraphs[0]
    dequantize = next((i for i, code in enumerate(model.operatorCodes)
                       if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.DEQUANTIZE),
                      None)
    if dequantize is None:
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.DEQUANTIZE
        code.version = 2  # int8 input
        model.operatorCodes.append(code)
        dequantize = len(model.operatorCodes) - 1
    empty_buffer = graph.tensors[graph.inputs[0]].buffer
    new_operators = []
    shared = Counter(tensor.buffer for tensor in graph.tensors)
    for index, tensor in enumerate(list(graph.tensors)):
        buffer = model.buffers[tensor.buffer]
        if (tensor.type != schema.TensorType.FLOAT32 or buffer.data is None or len(buffer.data) < 4 * min_values
                or shared[tensor.buffer] > 1):
            continue
        values = np.frombuffer(np.asarray(buffer.data, dtype=np.uint8).tobytes(), dtype=np.float32)
        scale = float(np.abs(values).max()) / 127.0 or 1.0
        quantised = np.clip(np.round(values / scale), -127, 127).astype(np.int8)
        stored = schema.TensorT()
        stored.shape, stored.type, stored.buffer = list(tensor.shape), schema.TensorType.INT8, tensor.buffer
        stored.quantization = schema.QuantizationParametersT()
        stored.quantization.scale, stored.quantization.zeroPoint = [scale], [0]
        buffer.data = np.frombuffer(quantised.tobytes(), dtype=np.uint8)
        tensor.buffer = empty_buffer  # now computed by the DEQUANTIZE below
        graph.tensors.append(stored)
        operator = schema.OperatorT()
        operator.opcodeIndex, operator.inputs, operator.outputs = dequantize, [len(graph.tensors) - 1], [index]
        new_operators.append(operator)
    graph.operators = new_operators + list(graph.operators)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def save_tflite(data: bytes, path: str | Path, preparation: PreparationConfig, extra: dict | None = None) -> Path:
    """Write the flatbuffer and its metadata YAML; returns the model path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    write_metadata(path, data, preparation, extra)
    return path


# --------------------------------------------------------------------------- pruning and clustering


def _fine_tune(model, x: np.ndarray, y: np.ndarray, weights: np.ndarray, epochs: int, callbacks=None,
               learning_rate: float = 5e-4) -> None:
    import tf_keras as keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=1.0),
                  loss="sparse_categorical_crossentropy")
    model.fit(x, y, sample_weight=weights, batch_size=256, epochs=epochs, verbose=0, callbacks=callbacks or [])


def pruned_model(keras_model, x, y, weights, sparsity: float = 0.5, epochs: int = 3):
    """Magnitude pruning of Dense/Conv1D kernels to ``sparsity``, fine-tuned, then stripped.

    Fine-tuning changes ``keras_model``'s own layers (the wrappers share them): pass a copy.
    """
    import tensorflow_model_optimization as tfmot

    schedule = tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=0, frequency=10)
    wrapped = _wrap_layers_with_weights(
        keras_model, lambda layer: tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule))
    _fine_tune(wrapped, x, y, weights, epochs, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(wrapped)


def clustered_model(keras_model, x, y, weights, clusters: int = 16, epochs: int = 3):
    """Weight clustering of Dense/Conv1D kernels to ``clusters`` centroids, fine-tuned, then stripped.

    Fine-tuning changes ``keras_model``'s own layers (the wrappers share them): pass a copy.
    """
    import tensorflow_model_optimization as tfmot

    init = tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS
    wrapped = _wrap_layers_with_weights(
        keras_model,
        lambda layer: tfmot.clustering.keras.cluster_weights(layer, number_of_clusters=clusters,
                                                             cluster_centroids_init=init))
    _fine_tune(wrapped, x, y, weights, epochs)
    return tfmot.clustering.keras.strip_clustering(wrapped)


def _wrap_layers_with_weights(keras_model, wrap):
    """Clone with ``wrap`` on Dense/Conv1D layers, each built from the trained layer (weights kept)."""
    import tf_keras as keras

    def clone(layer):
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv1D)):
            return wrap(layer)
        return layer

    return keras.models.clone_model(keras_model, clone_function=clone)


def kernel_sparsity(keras_model) -> dict[str, float]:
    """Fraction of exact zeros in each Dense/Conv1D kernel (to check pruning really happened)."""
    import tf_keras as keras

    out = {}
    for layer in keras_model.layers:
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv1D)):
            kernel = layer.get_weights()[0]
            out[layer.name] = float(np.mean(kernel == 0))
    return out


def tflite_weight_sparsity(data: bytes) -> float:
    """Fraction of exact zeros over the constant weight tensors of a TFLite file (>= 64 values)."""
    from fink_t2.scoring.runtime import interpreter_class

    interpreter = interpreter_class()(model_content=data)
    interpreter.allocate_tensors()
    zeros = total = 0
    for detail in interpreter.get_tensor_details():
        if len(detail["shape"]) < 2 or int(np.prod(detail["shape"])) < 64:
            continue
        try:
            values = interpreter.get_tensor(detail["index"])
        except ValueError:
            continue
        if values.dtype not in (np.int8, np.float32, np.float16):
            continue
        if "weights" in detail["name"].lower() or "kernel" in detail["name"].lower() or values.dtype == np.int8:
            zeros += int(np.sum(values == 0))
            total += values.size
    return zeros / total if total else 0.0


# --------------------------------------------------------------------------- the compress command

#: Acceptance for the shipped variant, against the float32 model of the same architecture and weights.
MAX_LOG_LOSS_INCREASE = 0.02
MIN_ARGMAX_AGREEMENT = 0.99
#: SN Ia vs rest AUC may drop by at most this much at any evaluation epoch (PLAsTiCC held-out and, for a ZTF
#: model, the real BTS epochs).
MAX_AUC_LOSS = 0.005
#: The shipped file's size limit (a model Fink ships with its science module). The SavedModel ratio is reported
#: for the record only: it penalised capacity (a SavedModel's fixed graph shrinks relatively as weights grow).
MAX_SHIPPED_BYTES = 250_000


def snia_auc_by_epoch(held_out: dict, predict) -> dict:
    """SN Ia vs rest AUC of ``predict(x)`` per epoch of ``held_out`` ({epoch: (x, labels)})."""
    from fink_t2.training.evaluation import roc_auc

    snia = CLASSES.index("SNIa")
    out = {}
    for epoch, (x, y) in held_out.items():
        truth = np.asarray(y) == snia
        if truth.all() or not truth.any():
            continue
        out[epoch] = float(roc_auc(truth, np.asarray(predict(x))[:, snia]))
    return out


def real_epoch_inputs(preparation: PreparationConfig) -> dict:
    """{``real:<epoch>``: (inputs, labels)} of the BTS evaluation epochs with their sky context, or {} without
    the BTS file (a compression check: how far a variant moves from the float model on real light curves)."""
    from fink_t2.training.bts import REAL_EPOCHS, load_bts
    from fink_t2.training.plasticc import evaluation_views, make_views
    from fink_t2.training.sky_simulation import real_sky

    try:
        real = load_bts()
    except (FileNotFoundError, ValueError):
        return {}
    sky = real_sky(real.metadata) if preparation.sky_context else None
    out = {}
    for epoch in REAL_EPOCHS:
        spec, _ = evaluation_views(real.observations, np.arange(len(real.labels)), epoch)
        batch = prepare(make_views(real.observations, spec), preparation,
                        sky=None if sky is None else sky.take(spec.source))
        out[f"real:{epoch}"] = (batch.values[batch.ok], real.labels[spec.source][batch.ok])
    return out


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def ztf_alert_inputs(preparation: PreparationConfig, path: str | Path = SAMPLE_ALERTS) -> np.ndarray:
    """Prepared model inputs of the real ZTF alerts in ``path`` that the preparation accepts."""
    import pyarrow.parquet as pq

    from fink_t2.scoring.alerts import alert_columns, observations_from_columns
    from fink_t2.scoring.lightcurves import prepare
    from fink_t2.scoring.sky import sky_context

    columns = alert_columns(pq.read_table(path))
    obs, _ = observations_from_columns(columns)
    position = {name: columns[name] for name in ("ra", "dec") if name in columns}
    sky = sky_context(len(columns), **position) if len(position) == 2 else None  # the host match, as served
    batch = prepare(obs, preparation, sky=sky)
    return batch.values[batch.ok]


def rubin_alert_inputs(preparation: PreparationConfig, path: str | Path = SAMPLE_RUBIN_ALERTS) -> np.ndarray:
    """Prepared model inputs of the Rubin alerts in ``path`` (the package's sample) that the preparation accepts."""
    import pyarrow.parquet as pq

    from fink_t2.scoring.lightcurves import prepare
    from fink_t2.scoring.rubin_alerts import HOST_Z_COLUMN, RUBIN_COLUMNS, observations_from_rubin, rubin_alert_columns

    columns = rubin_alert_columns(pq.read_table(path))
    obs, _ = observations_from_rubin(*(columns[c] for c in RUBIN_COLUMNS))
    batch = prepare(obs, preparation, host_z=columns[HOST_Z_COLUMN].to_numpy(np.float64))
    return batch.values[batch.ok]


#: Per survey: real alerts every variant is also checked on (the package's sample of that survey).
REAL_ALERT_INPUTS = {"ztf": ztf_alert_inputs, "rubin": rubin_alert_inputs}


def shipped_model_path(survey: str) -> Path:
    """Where ``fink-t2 compress --ship`` puts a survey's model: ``t2.tflite`` for ZTF, ``t2_<survey>.tflite``
    for the others (the Keras file and the training config beside it, same stem)."""
    return MODELS / ("t2.tflite" if survey == "ztf" else f"t2_{survey}.tflite")


def graph_size(data: bytes) -> tuple[int, int]:
    """(operators, tensors) of a flatbuffer: the bookkeeping that dominates a file this small."""
    from fink_t2.scoring.runtime import interpreter_class

    interpreter = interpreter_class()(model_content=data)
    return len(interpreter._get_ops_details()), len(interpreter.get_tensor_details())


def latency_microseconds(data: bytes, inputs: np.ndarray, batch: int, repeats: int = 3) -> float:
    """Wall time per light curve with one LiteRT thread at the given batch size (best of repeats)."""
    import time

    from fink_t2.scoring.runtime import interpreter_class

    interpreter = interpreter_class()(model_content=data, num_threads=1)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, [batch, *inputs.shape[1:]])
    interpreter.allocate_tensors()
    n_calls = max(1, min(len(inputs) // batch, 2000 if batch == 1 else 8))
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n_calls):
            interpreter.set_tensor(index, inputs[i * batch:(i + 1) * batch])
            interpreter.invoke()
        best = min(best, (time.perf_counter() - start) / (n_calls * batch))
    return best * 1e6


def compress_run(run_dir: str | Path, output_dir: str | Path, ship: str | None = None,
                 data_dir: str | Path | None = None, report: str | Path | None = "docs/compression.md",
                 finetune_epochs: int = 3, progress: bool = True) -> dict:
    """Every variant of a trained run, measured side by side; optionally ship one into the package."""
    import gzip
    import json
    import os
    import shutil
    import tempfile

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

    from fink_t2.scoring.runtime import load_model, sha256_of
    from fink_t2.training.evaluation import balanced_accuracy, flat_log_loss
    from fink_t2.training.plasticc import (
        EVALUATION_EPOCHS,
        alert_views,
        evaluation_views,
        load_plasticc,
        sample_training_views,
        split_objects,
    )
    from fink_t2.training.train import (
        CONFIG_FILE,
        KERAS_FILE,
        TrainConfig,
        class_weights,
        load_keras_model,
        prepared_views,
    )

    def log(message: str) -> None:
        if progress:
            print(message, flush=True)

    run_dir, output_dir = Path(run_dir), Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    config = TrainConfig.from_yaml(run_dir / CONFIG_FILE)
    prep = config.preparation
    keras_model = load_keras_model(run_dir / KERAS_FILE)
    with tempfile.TemporaryDirectory() as tmp:
        # "The same model as a Keras SavedModel directory", as the tinho paper measured it.
        keras_model.save(os.path.join(tmp, "saved_model"), save_format="tf")
        saved_model_bytes = directory_bytes(Path(tmp) / "saved_model")
    keras_bytes = (run_dir / KERAS_FILE).stat().st_size
    log(f"SavedModel directory: {saved_model_bytes} B; .keras file: {keras_bytes} B")

    data = load_plasticc(data_dir, seed=config.seed, survey=prep.survey)
    split = split_objects(data.labels, config.split, config.seed)
    rng = np.random.default_rng(config.seed + 2)
    spec = sample_training_views(data.observations, split["train"], 4, rng, config.long_history_fraction,
                                 history_days=alert_views(prep.survey).history_days)
    x_train, y_train, _ = prepared_views(data, spec, prep, rng, config.resampled_fraction, config.redshift_dropout)
    calibration = x_train[rng.permutation(len(x_train))[:2000]]
    held_out = {}
    for epoch in EVALUATION_EPOCHS:
        espec, _ = evaluation_views(data.observations, split["test"], epoch)
        held_out[epoch] = prepared_views(data, espec, prep)[:2]
    x_test = np.concatenate([x for x, _ in held_out.values()])
    y_test = np.concatenate([y for _, y in held_out.values()])
    x_ztf = REAL_ALERT_INPUTS[prep.survey](prep)  # the survey's sample alerts (named _ztf for ZTF's report)
    log(f"held-out views: {len(x_test)}; sample {prep.survey} alerts prepared: {len(x_ztf)}")

    auc_sets = {**held_out, **(real_epoch_inputs(prep) if prep.survey == "ztf" else {})}
    reference_auc = snia_auc_by_epoch(auc_sets, lambda x: keras_model.predict(x, batch_size=4096, verbose=0))
    reference_test = keras_model.predict(x_test, batch_size=4096, verbose=0)
    reference_ztf = keras_model.predict(x_ztf, batch_size=4096, verbose=0)

    flatbuffers: dict[str, bytes] = {}
    notes: dict[str, str] = {}
    for variant in VARIANTS:
        log(f"converting {variant} ...")
        flatbuffers[variant] = convert(keras_model, variant, prep.n_steps,
                                       calibration if variant == "full_int8" else None)
    weights = class_weights(y_train)
    log("pruning (50% of Dense/Conv1D weights) and fine-tuning ...")
    # Each fine-tuned variant starts from a fresh copy: wrapping shares layers with the model it wraps.
    pruned = pruned_model(load_keras_model(run_dir / KERAS_FILE), x_train, y_train, weights, 0.5, finetune_epochs)
    flatbuffers["pruned50_dynamic_int8"] = convert(pruned, "dynamic_int8", prep.n_steps)
    sparsity = kernel_sparsity(pruned)
    notes["pruned50_dynamic_int8"] = (f"stripped Keras kernels zero fraction {min(sparsity.values()):.2f}-"
                                      f"{max(sparsity.values()):.2f}; TFLite weight zeros "
                                      f"{tflite_weight_sparsity(flatbuffers['pruned50_dynamic_int8']):.2f}")
    log("clustering (16 centroids per Dense/Conv1D kernel) and fine-tuning ...")
    clustered = clustered_model(load_keras_model(run_dir / KERAS_FILE), x_train, y_train, weights, 16,
                                finetune_epochs)
    flatbuffers["clustered16_dynamic_int8"] = convert(clustered, "dynamic_int8", prep.n_steps)
    unique = [len(np.unique(layer.get_weights()[0])) for layer in clustered.layers
              if layer.get_weights() and layer.name.startswith(("ff_", "embedding", "probabilities"))]
    notes["clustered16_dynamic_int8"] = f"distinct kernel values per clustered layer: {unique}"

    rows = []
    reference_loss = flat_log_loss(y_test, reference_test)
    rows.append({"variant": "Keras float32 (reference)", "bytes": keras_bytes,
                 "gzip_bytes": len(gzip.compress((run_dir / KERAS_FILE).read_bytes(), 9)),
                 "ratio_to_saved_model": saved_model_bytes / keras_bytes,
                 "flat_log_loss": reference_loss,
                 "balanced_accuracy": balanced_accuracy(y_test, reference_test.argmax(1)),
                 "per_epoch": {e: flat_log_loss(y, keras_model.predict(x, batch_size=4096, verbose=0))
                               for e, (x, y) in held_out.items()},
                 "agreement_test": 1.0, "max_dp_test": 0.0, "agreement_ztf": 1.0, "max_dp_ztf": 0.0,
                 "snia_auc": reference_auc, "max_auc_loss": 0.0,
                 "us_batch1": None, "us_batch1024": None, "note": "tf-keras, not used for serving"})
    for variant, data_bytes in flatbuffers.items():
        path = output_dir / f"t2_{variant}.tflite"
        save_tflite(data_bytes, path, prep, {"variant": variant})
        model = load_model(path)
        p_test, p_ztf = model.predict(x_test), model.predict(x_ztf)
        row = {"variant": variant, "bytes": len(data_bytes), "gzip_bytes": len(gzip.compress(data_bytes, 9)),
               "ratio_to_saved_model": saved_model_bytes / len(data_bytes),
               "flat_log_loss": flat_log_loss(y_test, p_test),
               "balanced_accuracy": balanced_accuracy(y_test, p_test.argmax(1)),
               "per_epoch": {e: flat_log_loss(y, model.predict(x)) for e, (x, y) in held_out.items()},
               "agreement_test": float(np.mean(p_test.argmax(1) == reference_test.argmax(1))),
               "max_dp_test": float(np.abs(p_test - reference_test).max()),
               "agreement_ztf": float(np.mean(p_ztf.argmax(1) == reference_ztf.argmax(1))),
               "max_dp_ztf": float(np.abs(p_ztf - reference_ztf).max()),
               "us_batch1": latency_microseconds(data_bytes, x_test, 1),
               "us_batch1024": latency_microseconds(data_bytes, x_test, 1024),
               "sha256": sha256_of(data_bytes), "note": notes.get(variant, ""),
               "operators_tensors": graph_size(data_bytes)}
        row["snia_auc"] = snia_auc_by_epoch(auc_sets, model.predict)
        row["max_auc_loss"] = max([reference_auc[e] - row["snia_auc"][e] for e in reference_auc], default=0.0)
        row["accepted"] = bool(row["flat_log_loss"] <= reference_loss * (1 + MAX_LOG_LOSS_INCREASE)
                               and row["agreement_test"] >= MIN_ARGMAX_AGREEMENT
                               and row["agreement_ztf"] >= MIN_ARGMAX_AGREEMENT
                               and row["max_auc_loss"] <= MAX_AUC_LOSS)
        rows.append(row)
        log(f"  {variant:26s} {row['bytes']:7d} B  LL {row['flat_log_loss']:.4f}  agree {row['agreement_test']:.4f}"
            f"/{row['agreement_ztf']:.4f}  {row['us_batch1024']:.1f} us/lc  accepted={row['accepted']}")

    chosen = None
    if ship == "auto":
        accepted = [r for r in rows[1:] if r["accepted"]]
        chosen = min(accepted, key=lambda r: (r["bytes"], r["us_batch1024"]))["variant"] if accepted else None
        if chosen is None:
            log("no variant meets the acceptance criteria; nothing shipped")
    elif ship:
        if ship not in flatbuffers:
            raise ValueError(f"unknown variant {ship!r}; made: {list(flatbuffers)}")
        chosen = ship
    summary = {"run": str(run_dir), "survey": prep.survey, "saved_model_bytes": saved_model_bytes,
               "n_test_views": int(len(x_test)),
               "n_ztf_alerts": int(len(x_ztf)), "rows": rows, "shipped": chosen,
               "criteria": {"max_log_loss_increase": MAX_LOG_LOSS_INCREASE,
                            "min_argmax_agreement": MIN_ARGMAX_AGREEMENT, "max_auc_loss": MAX_AUC_LOSS,
                            "max_shipped_bytes": MAX_SHIPPED_BYTES}}
    if chosen:
        row = next(r for r in rows if r["variant"] == chosen)
        shipped = shipped_model_path(prep.survey)
        shutil.copyfile(run_dir / KERAS_FILE, shipped.with_suffix(".keras"))
        shutil.copyfile(run_dir / CONFIG_FILE, shipped.with_name(f"{shipped.stem}_train.yaml"))
        save_tflite(flatbuffers[chosen], shipped, prep, {
            "variant": chosen, "trained_on": _trained_on(config),
            **run_calibration(run_dir),
            "keras_sha256": sha256_of((run_dir / KERAS_FILE).read_bytes()),
            "held_out_flat_log_loss": round(row["flat_log_loss"], 4),
            "held_out_balanced_accuracy": round(row["balanced_accuracy"], 4),
            "model": config.model.to_dict(), "saved_model_bytes": saved_model_bytes})
        log(f"shipped {chosen} -> {shipped} ({row['bytes']} B, sha256 {row['sha256']})")
    (output_dir / "compression.json").write_text(json.dumps(summary, indent=1))
    if report:
        write_compression_report(summary, Path(report))
    return summary


def _trained_on(config) -> str:
    if config.preparation.survey != "ztf":
        return (f"PLAsTiCC training set in the {config.preparation.survey} bands "
                f"({', '.join(config.preparation.bands)})"
                + (" with host photo-z" if config.preparation.host_redshift else "")
                + f", alert-like views (see docs/model_card_{config.preparation.survey}.md)")
    if config.real is None:
        return "PLAsTiCC training set, alert-like views (see docs/model_card.md)"
    return ("PLAsTiCC training set (pretraining), then typed real ZTF BTS light curves mixed with PLAsTiCC "
            "(see docs/model_card.md)")


def run_calibration(run_dir: Path) -> dict:
    """The metadata's ``calibration`` section for a run: its fitted temperature and the stated class prior.

    A run without a real-data stage has no fitted temperature: its output stays flat, except the augmented
    Rubin model's, which states the PLAsTiCC training set's class mix as its prior.
    """
    import json

    from fink_t2.scoring.calibration import ZTF_ALERT_PRIOR, ZTF_ALERTS
    from fink_t2.training.train import CALIBRATION_FILE

    path = Path(run_dir) / CALIBRATION_FILE
    if not path.is_file():
        from fink_t2.scoring.calibration import PLASTICC_TRAINING, PLASTICC_TRAINING_PRIOR
        from fink_t2.training.train import TrainConfig

        config = TrainConfig.from_yaml(Path(run_dir) / "config.yaml")
        if config.preparation.survey == "rubin" and config.augmentation is not None:
            # No real alerts to fit a temperature on: the flat output under the training set's class mix.
            return {"calibration": {"prior": PLASTICC_TRAINING, "temperature": 1.0,
                                    "temperature_fitted_on": "none (no labelled real Rubin alerts)",
                                    "class_priors": {PLASTICC_TRAINING: dict(PLASTICC_TRAINING_PRIOR)}}}
        return {}
    fitted = json.loads(path.read_text())
    return {"calibration": {"prior": ZTF_ALERTS, "temperature": round(float(fitted["temperature"]), 4),
                            "temperature_fitted_on": fitted.get("fitted_on", ""),
                            "class_priors": {ZTF_ALERTS: dict(ZTF_ALERT_PRIOR)}}}


def write_compression_report(summary: dict, path: Path) -> None:
    """The variant table as markdown."""
    lines = [
        "# Compression of t2: measured variants", "",
        f"Generated by `fink-t2 compress --run {summary['run']}`. SavedModel directory of the same model: "
        f"**{summary['saved_model_bytes']:,} B**. Held-out: {summary['n_test_views']} views of the PLAsTiCC test "
        f"objects (all four evaluation epochs); real alerts: {summary['n_ztf_alerts']} "
        + ("ZTF alerts of `data/alerts_sample.parquet`" if summary.get("survey", "ztf") == "ztf" else
           f"{summary['survey']} alerts of `data/{summary['survey']}_alerts_sample.parquet` (columns 'ZTF' below)")
        + ". Agreement and max |dp| are against the float Keras model. Latency: one "
        "LiteRT thread, per light curve, at batch 1 and batch 1024.", "",
        "The first variants are TFLite's conversion of the Keras graph as it is. The `lean_` variants are the same "
        "weights in `fink_t2.training.compression.lean_function`'s graph: one fused Q/K/V projection with the "
        "attention scale folded in, batched matrix products per head, and the last LayerNorm's affine folded into the "
        "classifier; fewer operators and tensors mean less flatbuffer bookkeeping, which is most of a file this "
        "small. `lean_int8_weights` stores the weights as int8 (one symmetric scale per tensor) behind DEQUANTIZE "
        "operators and computes in float32: its only error is the rounding of the weights.", "",
        "| variant | operators / tensors | bytes | gzip bytes | x smaller than SavedModel | flat log-loss "
        "| balanced acc. | argmax agreement held-out | max abs dp held-out | argmax agreement ZTF | max abs dp ZTF "
        "| us/lc batch 1 | us/lc batch 1024 | accurate enough | small enough |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["rows"]:
        latency1 = "-" if r["us_batch1"] is None else f"{r['us_batch1']:.1f}"
        latency_b = "-" if r["us_batch1024"] is None else f"{r['us_batch1024']:.1f}"
        mark = "shipped" if r["variant"] == summary["shipped"] else ("yes" if r.get("accepted") else "-")
        small = "yes" if r["bytes"] <= summary["criteria"].get("max_shipped_bytes", MAX_SHIPPED_BYTES) else "-"
        graph = "/".join(map(str, r["operators_tensors"])) if r.get("operators_tensors") else "-"
        lines.append(f"| {r['variant']} | {graph} | {r['bytes']:,} | {r['gzip_bytes']:,} | "
                     f"{r['ratio_to_saved_model']:.1f} | "
                     f"{r['flat_log_loss']:.4f} | {r['balanced_accuracy']:.4f} | {r['agreement_test']:.4f} | "
                     f"{r['max_dp_test']:.4f} | {r['agreement_ztf']:.4f} | {r['max_dp_ztf']:.4f} | {latency1} | "
                     f"{latency_b} | {mark} | {small} |")
    lines += ["", "Flat log-loss per evaluation epoch:", "",
              "| variant | " + " | ".join(summary["rows"][0]["per_epoch"]) + " |",
              "|---|" + "---|" * len(summary["rows"][0]["per_epoch"])]
    for r in summary["rows"]:
        lines.append(f"| {r['variant']} | " + " | ".join(f"{v:.4f}" for v in r["per_epoch"].values()) + " |")
    if summary["rows"][0].get("snia_auc"):
        epochs = list(summary["rows"][0]["snia_auc"])
        lines += ["", "SN Ia vs rest AUC per epoch (PLAsTiCC held-out epochs; `real:` the BTS epochs with their host "
                  "context, objects the final model was fine-tuned on: a fidelity check, not a score), and the largest "
                  "loss against the float32 model:", "",
                  "| variant | " + " | ".join(epochs) + " | max loss |", "|---|" + "---|" * (len(epochs) + 1)]
        for r in summary["rows"]:
            lines.append(f"| {r['variant']} | " + " | ".join(f"{r['snia_auc'].get(e, float('nan')):.4f}"
                                                              for e in epochs) + f" | {r['max_auc_loss']:.4f} |")
    notes = [f"- {r['variant']}: {r['note']}" for r in summary["rows"] if r.get("note")]
    if notes:
        lines += ["", "Notes:", ""] + notes
    criteria = summary["criteria"]
    lines += ["", f"Acceptance, against the float32 model of the same architecture and weights: flat log-loss within "
              f"{criteria['max_log_loss_increase']:.0%}, argmax agreement >= {criteria['min_argmax_agreement']:.0%} "
              "on both held-out objects and real alerts"
              + (f", SN Ia AUC lost at most {criteria['max_auc_loss']} at every epoch" if "max_auc_loss" in criteria
                 else "")
              + " ('accurate enough'); the smallest such variant is shipped. Size limit: "
              f"{criteria.get('max_shipped_bytes', MAX_SHIPPED_BYTES):,} B ('small enough'); the SavedModel ratio is "
              "for the record.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
