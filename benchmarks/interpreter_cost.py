"""What the LiteRT interpreter costs per light curve: the shipped two-block t2 beside a one-block t2.

The throughput issue's Spark targets leave t2's own work a few microseconds per alert
(``docs/performance.md``, "What each Spark target leaves for t2's own work"). The interpreter
is the part the model's architecture fixes. This times, on one thread and in rounds
alternating between models so machine noise hits them alike, the interpreter alone
(``T2Model.predict``) on the real alerts of ``data/alerts_sample.parquet`` as the
preparation makes them (replicated), for several interpreter batch sizes:

* ``fink_t2/data/t2.tflite``: the shipped model, two transformer blocks (d_model 16, 2 heads);
* ``tests/data/ztf_reference_t2.tflite``: the model shipped before it, one block, same width.

With ``--ablate`` (needs TensorFlow, the ``train`` extra) it also converts the shipped model's
Keras file with the attention softmax replaced by the identity (same graph otherwise): what the
softmax of the attention costs. Nothing here is shipped.

    python benchmarks/interpreter_cost.py [--lightcurves 16384] [--batches 128,256,1024] [--rounds 3] [--ablate]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from fink_t2.scoring.paths import MODELS, default_model  # noqa: E402

SHIPPED = default_model("ztf")
MODEL_FILES = {"two blocks (shipped)": SHIPPED,
               "one block (shipped before)": Path(__file__).resolve().parents[1] / "tests" / "data"
               / "ztf_reference_t2.tflite"}


def softmax_ablated_model(directory: Path) -> Path:
    """The shipped model converted again with the attention's softmax replaced by the identity."""
    import tensorflow as tf

    from fink_t2.scoring.runtime import load_model
    from fink_t2.training.compression import convert, save_tflite
    from fink_t2.training.train import load_keras_model

    shipped = load_model(SHIPPED)
    keras_model = load_keras_model(MODELS / "t2.keras")
    softmax = tf.nn.softmax
    # The attention weights are rank 4 (batch, head, query, key); the classifier's softmax (rank 2) stays.
    tf.nn.softmax = lambda x, *args, **kwargs: x if x.shape.rank == 4 else softmax(x, *args, **kwargs)
    try:
        data = convert(keras_model, "lean_float16", shipped.input_shape[0])
    finally:
        tf.nn.softmax = softmax
    return save_tflite(data, directory / "t2_no_attention_softmax.tflite", shipped.preparation)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lightcurves", type=int, default=16_384, help="light curves per timed call of predict")
    parser.add_argument("--batches", default="128,256,1024", help="interpreter batch sizes (predict's chunk)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ablate", action="store_true", help="also the shipped model without attention softmax")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        models = dict(MODEL_FILES)
        if args.ablate:
            models["two blocks, attention softmax removed"] = softmax_ablated_model(Path(scratch))
        return _time_models(models, args)


def _time_models(models: dict[str, Path], args) -> int:
    from fink_t2.scoring.runtime import load_model
    from fink_t2.training.compression import ztf_alert_inputs

    batches = [int(b) for b in args.batches.split(",")]
    # One interpreter per (model, batch size): an interpreter only grows, so sizes must not share one.
    loaded = {(name, batch): load_model(path) for name, path in models.items() for batch in batches}
    real = ztf_alert_inputs(next(iter(loaded.values())).preparation)
    inputs = np.resize(real, (args.lightcurves, *real.shape[1:])).astype(np.float32)
    for (_, batch), model in loaded.items():
        model.predict(inputs[:batch], chunk=batch)  # allocate at this size
    timings: dict[tuple[str, int], list[float]] = {key: [] for key in loaded}
    for _ in range(args.rounds):
        for (name, batch), model in loaded.items():
            start = time.perf_counter()
            model.predict(inputs, chunk=batch)
            timings[(name, batch)].append((time.perf_counter() - start) / len(inputs) * 1e6)
    print(f"{len(inputs):,} light curves ({len(real)} real ones of the sample, replicated), one thread; "
          f"us per light curve, best of {args.rounds} rounds (all rounds)")
    for (name, batch), values in timings.items():
        print(f"{name:<40} batch {batch:>5}: {min(values):6.2f}   ({'  '.join(f'{v:.2f}' for v in values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
