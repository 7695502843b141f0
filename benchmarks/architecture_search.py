"""Small search over sequence length, heads, width and representation (GP vs linear).

Each variant is trained for a few epochs with the same seed and data, then
scored on the validation views (flat log-loss, balanced accuracy) and timed as
a float32 TFLite model (one thread, batch 1024). Writes a JSON and prints a
markdown table. Usage:

    python benchmarks/architecture_search.py --epochs 15 --output runs/search
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from fink_t2.scoring.runtime import interpreter_class
from fink_t2.training.compression import convert
from fink_t2.training.evaluation import balanced_accuracy, flat_log_loss
from fink_t2.training.plasticc import load_plasticc, split_objects
from fink_t2.training.train import TrainConfig, load_keras_model, train, validation_set

VARIANTS = {
    # name: (preparation overrides, model overrides)
    "published t2 sizes, 32x2d GP": ({"n_steps": 32, "step_days": 2.0}, {"num_heads": 16, "ff_dim": 128}),
    "32x2d GP, 4 heads, ff 64": ({"n_steps": 32, "step_days": 2.0}, {"num_heads": 4, "ff_dim": 64}),
    "24x2d GP, 4 heads, ff 64": ({"n_steps": 24, "step_days": 2.0}, {"num_heads": 4, "ff_dim": 64}),
    "16x3d GP, 4 heads, ff 64": ({"n_steps": 16, "step_days": 3.0}, {"num_heads": 4, "ff_dim": 64}),
    "24x2d linear interp., 4 heads, ff 64": ({"n_steps": 24, "step_days": 2.0, "method": "linear"},
                                             {"num_heads": 4, "ff_dim": 64}),
    "24x2d GP 5-day scale, 4 heads, ff 64": ({"n_steps": 24, "step_days": 2.0, "time_scale_days": 5.0},
                                             {"num_heads": 4, "ff_dim": 64}),
    "24x2d GP no upper limits, 4 heads, ff 64": ({"n_steps": 24, "step_days": 2.0, "use_upper_limits": False},
                                                 {"num_heads": 4, "ff_dim": 64}),
}


def tflite_microseconds(keras_model, n_steps: int, batch: int = 1024, repeats: int = 5) -> float:
    interpreter = interpreter_class()(model_content=convert(keras_model, "float32", n_steps), num_threads=1)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, [batch, n_steps, 2])
    interpreter.allocate_tensors()
    x = np.random.default_rng(0).random((batch, n_steps, 2), dtype=np.float32)
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    start = time.perf_counter()
    for _ in range(repeats):
        interpreter.set_tensor(index, x)
        interpreter.invoke()
    return (time.perf_counter() - start) / repeats / batch * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="conf/train.yaml")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--views-per-object", type=int, default=12)
    parser.add_argument("--output", default="runs/search")
    parser.add_argument("--only", nargs="*", default=None, help="variant names to run")
    args = parser.parse_args()
    base = TrainConfig.from_yaml(args.config)
    data = load_plasticc(seed=base.seed)
    split = split_objects(data.labels, base.split, base.seed)
    results = []
    for name, (prep_over, model_over) in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        config = TrainConfig.from_yaml(args.config)
        config.epochs, config.views_per_object = args.epochs, args.views_per_object
        config.preparation = replace(config.preparation, **prep_over)
        config.model = replace(config.model, **model_over)
        out = Path(args.output) / name.replace(" ", "_").replace(",", "")
        summary = train(config, out, data=data, progress=True)
        model = load_keras_model(out / "t2.keras")
        x_val, y_val = validation_set(data, split["validation"], config, config.preparation)
        p = model.predict(x_val, batch_size=4096, verbose=0)
        row = {"variant": name, "preparation": config.preparation.to_dict(), "model": config.model.to_dict(),
               "parameters": summary["parameters"], "best_epoch": summary["best_epoch"],
               "val_flat_log_loss": flat_log_loss(y_val, p),
               "val_balanced_accuracy": balanced_accuracy(y_val, p.argmax(1)),
               "tflite_float32_us_per_lc": tflite_microseconds(model, config.preparation.n_steps),
               "train_seconds": summary["seconds"]}
        results.append(row)
        print(json.dumps(row), flush=True)
        Path(args.output).mkdir(parents=True, exist_ok=True)
        with open(Path(args.output) / "search.json", "w") as handle:
            json.dump(results, handle, indent=1)
    print("| variant | params | val flat LL | val bal. acc | TFLite us/lc |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['variant']} | {r['parameters']} | {r['val_flat_log_loss']:.3f} | "
              f"{r['val_balanced_accuracy']:.3f} | {r['tflite_float32_us_per_lc']:.1f} |")


if __name__ == "__main__":
    main()
