"""Training t2 on alert-like views of PLAsTiCC objects.

Each epoch draws fresh random views of the training objects (augmentation),
prepares them with the same :func:`fink_t2.lightcurves.prepare` that serves
alerts, and takes one pass of Adam on the class-balanced (flat) log-loss.
Validation uses fixed views of the validation objects; the best epoch by
validation flat log-loss is kept (early stopping), and the learning rate
drops on plateaus.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from fink_t2.classes import CLASSES, N_CLASSES
from fink_t2.config import build, load_yaml
from fink_t2.lightcurves import PreparationConfig, prepare
from fink_t2.model import ModelConfig
from fink_t2.plasticc import (
    EVALUATION_EPOCHS,
    PlasticcData,
    ViewSpec,
    evaluation_views,
    load_plasticc,
    make_views,
    sample_training_views,
    split_objects,
    training_view_observations,
)

KERAS_FILE = "t2.keras"
CONFIG_FILE = "config.yaml"
HISTORY_FILE = "history.json"


@dataclass
class TrainConfig:
    """Everything that defines a training run (``conf/train.yaml``)."""

    seed: int = 42
    split: tuple[float, ...] = (0.7, 0.15, 0.15)
    views_per_object: int = 16
    validation_views_per_object: int = 4
    epochs: int = 40
    batch_size: int = 256
    learning_rate: float = 0.005
    clipnorm: float = 1.0
    patience: int = 6
    lr_patience: int = 3
    lr_factor: float = 0.5
    min_learning_rate: float = 1e-4
    long_history_fraction: float = 0.25
    resampled_fraction: float = 0.5
    preparation: PreparationConfig = field(default_factory=PreparationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        """Safe-loaded and strictly typed: an unknown key or a wrong type names the file and the key."""
        return build(cls, load_yaml(path), str(path))

    def to_dict(self) -> dict:
        values = asdict(self)
        values["split"] = list(self.split)
        return values


def class_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample weights giving every class the same total weight (mean weight 1)."""
    counts = np.bincount(labels, minlength=N_CLASSES).astype(np.float64)
    present = counts > 0
    per_class = np.zeros(N_CLASSES)
    per_class[present] = len(labels) / (present.sum() * counts[present])
    return per_class[labels].astype(np.float32)


def prepared_views(data: PlasticcData, spec: ViewSpec, prep: PreparationConfig,
                   rng: np.random.Generator | None = None,
                   resampled_fraction: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model inputs and labels of views; views that cannot be prepared are dropped.

    Without ``rng`` the views are exact (evaluation); with it they are
    augmented, ``resampled_fraction`` of them re-observed at ZTF-like cadence.
    Returns (inputs, labels, positions of the kept views in ``spec``).
    """
    if rng is None:
        views, position = make_views(data.observations, spec), np.arange(len(spec))
    else:
        views, position = training_view_observations(data, spec, rng, resampled_fraction)
    batch = prepare(views, prep)
    kept = np.flatnonzero(batch.ok)
    return batch.values[kept], data.labels[spec.source[position[kept]]], position[kept]


def validation_set(data: PlasticcData, objects: np.ndarray, config: TrainConfig,
                   prep: PreparationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Fixed validation views: every evaluation epoch plus seeded random alert-like views."""
    xs, ys = [], []
    for epoch in EVALUATION_EPOCHS:
        spec, _ = evaluation_views(data.observations, objects, epoch)
        x, y, _ = prepared_views(data, spec, prep)
        xs.append(x)
        ys.append(y)
    rng = np.random.default_rng(config.seed + 1)
    spec = sample_training_views(data.observations, objects, config.validation_views_per_object, rng,
                                 config.long_history_fraction)
    x, y, _ = prepared_views(data, spec, prep, rng, config.resampled_fraction)
    xs.append(x)
    ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def _log(message: str, progress: bool) -> None:
    if progress:
        print(message, flush=True)


def train(config: TrainConfig, output_dir: str | Path, data_dir: str | Path | None = None,
          max_objects: int | None = None, progress: bool = True, data: PlasticcData | None = None) -> dict:
    """Train a t2 model; write the Keras file, its config and the history into ``output_dir``.

    Returns the history (per-epoch losses) and the split sizes.
    """
    import tensorflow as tf
    import tf_keras as keras

    from fink_t2.evaluation import balanced_accuracy, flat_log_loss
    from fink_t2.model import build_model

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    prep = config.preparation
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()

    started = time.time()
    if data is None:
        _log("loading PLAsTiCC ...", progress)
        data = load_plasticc(data_dir, max_objects=max_objects, seed=config.seed)
    split = split_objects(data.labels, config.split, config.seed)
    _log(f"objects: {len(data.labels)} (train {len(split['train'])}, validation {len(split['validation'])}, "
         f"test {len(split['test'])}); {time.time() - started:.1f}s", progress)
    x_val, y_val = validation_set(data, split["validation"], config, prep)

    model = build_model(prep.n_steps, 2, config.model, seed=config.seed)
    optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate, clipnorm=config.clipnorm)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", weighted_metrics=["accuracy"])
    rng = np.random.default_rng(config.seed)
    history: list[dict] = []
    best_loss, best_weights, best_epoch = np.inf, model.get_weights(), -1
    since_best = since_lr_drop = 0
    learning_rate = config.learning_rate
    for epoch in range(config.epochs):
        t0 = time.time()
        spec = sample_training_views(data.observations, split["train"], config.views_per_object, rng,
                                     config.long_history_fraction)
        x_train, y_train, _ = prepared_views(data, spec, prep, rng, config.resampled_fraction)
        t_prep = time.time() - t0
        fit = model.fit(x_train, y_train, sample_weight=class_weights(y_train), batch_size=config.batch_size,
                        epochs=1, shuffle=True, verbose=0)
        p_val = model.predict(x_val, batch_size=4096, verbose=0)
        val_loss = flat_log_loss(y_val, p_val)
        val_acc = balanced_accuracy(y_val, p_val.argmax(1))
        record = {"epoch": epoch + 1, "train_loss": float(fit.history["loss"][-1]), "val_flat_log_loss": val_loss,
                  "val_balanced_accuracy": val_acc, "learning_rate": learning_rate, "n_train_views": len(y_train),
                  "prep_seconds": round(t_prep, 2), "seconds": round(time.time() - t0, 2)}
        history.append(record)
        improved = val_loss < best_loss - 1e-4
        _log(f"epoch {epoch + 1:3d}/{config.epochs}  train {record['train_loss']:.4f}  val flat LL {val_loss:.4f}  "
             f"val bal.acc {val_acc:.3f}  lr {learning_rate:.2g}  {record['seconds']:.0f}s"
             + ("  *" if improved else ""), progress)
        if improved:
            best_loss, best_weights, best_epoch = val_loss, model.get_weights(), epoch + 1
            since_best = since_lr_drop = 0
        else:
            since_best += 1
            since_lr_drop += 1
            if since_best >= config.patience:
                _log(f"early stop: no improvement for {config.patience} epochs", progress)
                break
            if since_lr_drop >= config.lr_patience and learning_rate > config.min_learning_rate:
                learning_rate = max(learning_rate * config.lr_factor, config.min_learning_rate)
                model.optimizer.learning_rate.assign(learning_rate)
                since_lr_drop = 0
    model.set_weights(best_weights)
    model.save(output_dir / KERAS_FILE)
    with open(output_dir / CONFIG_FILE, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config.to_dict(), handle, sort_keys=False)
    summary = {
        "best_epoch": best_epoch, "best_val_flat_log_loss": best_loss, "history": history,
        "split": {name: int(len(idx)) for name, idx in split.items()},
        "classes": CLASSES, "seconds": round(time.time() - started, 1),
        "parameters": int(model.count_params()),
    }
    with open(output_dir / HISTORY_FILE, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=1)
    _log(f"best epoch {best_epoch}: val flat LL {best_loss:.4f}; saved {output_dir / KERAS_FILE}", progress)
    return summary


def load_keras_model(path: str | Path):
    """Load a trained t2 Keras file (training/compression only: imports TensorFlow)."""
    import tf_keras as keras

    from fink_t2.model import custom_objects

    return keras.models.load_model(path, custom_objects=custom_objects(), compile=False)
