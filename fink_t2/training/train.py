"""Training t2 on alert-like views of PLAsTiCC objects.

Each epoch draws fresh random views of the training objects (augmentation),
prepares them with the same :func:`fink_t2.scoring.lightcurves.prepare` that serves
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

from fink_t2.scoring.classes import CLASSES, N_CLASSES
from fink_t2.scoring.config import build, load_yaml
from fink_t2.scoring.lightcurves import PreparationConfig, prepare
from fink_t2.scoring.sky import SkyContext
from fink_t2.training.bts import REAL_EPOCHS, RealData, predict_real_epochs
from fink_t2.training.model import ModelConfig
from fink_t2.training.plasticc import (
    EVALUATION_EPOCHS,
    PlasticcData,
    ViewSpec,
    alert_views,
    evaluation_views,
    load_plasticc,
    make_views,
    sample_training_views,
    split_objects,
    training_view_observations,
)
from fink_t2.training.redshift_augmentation import RedshiftAugmentation, augmented_split
from fink_t2.training.sky_simulation import plasticc_sky_inputs, real_sky, simulate_sky, training_sky

KERAS_FILE = "t2.keras"
PRETRAINED_FILE = "pretrained.keras"
CONFIG_FILE = "config.yaml"
HISTORY_FILE = "history.json"
CV_FILE = "cv_predictions.npz"
#: The same out-of-fold predictions with the light curve alone (models with sky-context channels).
CV_LC_ONLY_FILE = "cv_predictions_lc_only.npz"
CALIBRATION_FILE = "calibration.json"


@dataclass
class RealStageConfig:
    """The real-data stage: fine-tune the PLAsTiCC-pretrained t2 on typed real ZTF light curves.

    Real views and PLAsTiCC views are mixed in every epoch, so classes with no
    real label (variables, AGN, KN, ...) keep what pretraining taught.
    """

    epochs: int = 10
    views_per_object: int = 32          # fresh random alert-like views per real object per epoch
    plasticc_views_per_object: int = 4  # PLAsTiCC views per training object per epoch, mixed in
    real_share: float = 0.5             # share of the loss weight carried by the real views
    learning_rate: float = 0.002
    long_history_fraction: float = 0.3  # real views with the whole history instead of 30 days
    early_fraction: float = 0.6         # real views whose alert is within early_days of the first detection
    early_days: float = 60.0
    #: PLAsTiCC views mixed in: share whose alert is within ``early_days`` of the first detection (null:
    #: as in pretraining). Meant to keep the simulation's early epochs from being taught only by the real
    #: supernovae; measured (docs/model_search.md, session 8): no help on either set, so off.
    plasticc_early_fraction: float | None = None
    #: Real views neither thinned nor made noisier (BTS light curves are bright: the thinned, noisier views
    #: teach robustness, the clean ones what an alert as delivered looks like).
    clean_fraction: float = 0.0
    #: Weights averaged over the last ``average_epochs`` epochs (stochastic weight averaging; 0: the last
    #: epoch's), at no cost in size or speed (LayerNorm, no batch statistics). Measured (session 8): no
    #: gain on the real folds, so off.
    average_epochs: int = 0
    distill: float = 0.0                # PLAsTiCC targets: this share from the pretrained model's own output
    min_real_objects: int = 20          # a real class with fewer objects gets a share of its weight in proportion
    folds: int = 5                      # object-wise cross-validation folds of the real set
    bts_path: str | None = None         # null: fink_t2.training.bts.default_bts_path()

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.views_per_object < 1 or self.plasticc_views_per_object < 0:
            raise ValueError("real.epochs and real.views_per_object must be >= 1, "
                             "real.plasticc_views_per_object >= 0")
        if not 0.0 < self.real_share <= 1.0:
            raise ValueError("real.real_share must be in (0, 1]")
        if not self.learning_rate > 0 or self.min_real_objects < 1:
            raise ValueError("real.learning_rate must be > 0 and real.min_real_objects >= 1")
        if self.folds < 2:
            raise ValueError("real.folds must be >= 2")
        if not 0.0 <= self.distill <= 1.0:
            raise ValueError("real.distill must be in [0, 1]")
        if not (0.0 <= self.early_fraction <= 1.0 and self.early_days > 0):
            raise ValueError("real.early_fraction must be in [0, 1] and real.early_days > 0")
        if self.plasticc_early_fraction is not None and not 0.0 <= self.plasticc_early_fraction <= 1.0:
            raise ValueError("real.plasticc_early_fraction must be null or in [0, 1]")
        if not 0.0 <= self.clean_fraction <= 1.0:
            raise ValueError("real.clean_fraction must be in [0, 1]")
        if not 0 <= self.average_epochs <= self.epochs:
            raise ValueError("real.average_epochs must be in [0, real.epochs]")


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
    #: Share of the training views whose host redshift is withheld (with ``preparation.host_redshift``),
    #: so the model also judges alerts that carry none.
    redshift_dropout: float = 0.0
    #: Share of the training views (simulated and real alike) whose sky context is withheld (with
    #: ``preparation.sky_context``), so the model also judges the light curve alone.
    sky_dropout: float = 0.3
    preparation: PreparationConfig = field(default_factory=PreparationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    real: RealStageConfig | None = None  # null: PLAsTiCC only
    #: Redshift augmentation of the PLAsTiCC training and validation objects
    #: (:mod:`fink_t2.training.redshift_augmentation`); null: none.
    augmentation: RedshiftAugmentation | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.redshift_dropout <= 1.0:
            raise ValueError("redshift_dropout must be in [0, 1]")
        if not 0.0 <= self.sky_dropout <= 1.0:
            raise ValueError("sky_dropout must be in [0, 1]")
        if self.real is not None and self.preparation.survey != "ztf":
            raise ValueError(f"the real-data stage fine-tunes on ZTF light curves; preparation.survey is "
                             f"{self.preparation.survey!r}: set 'real: null'")
        alert_views(self.preparation.survey)  # training views are defined for the survey

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        """Safe-loaded and strictly typed: an unknown key or a wrong type names the file and the key."""
        return build(cls, load_yaml(path), str(path))

    def to_dict(self) -> dict:
        values = asdict(self)
        values["split"] = list(self.split)
        values["preparation"] = self.preparation.to_dict()  # a ZTF preparation as it was always written
        if self.augmentation is None:  # configurations from before it existed are written as they were
            del values["augmentation"]
        return values


def class_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample weights giving every class the same total weight (mean weight 1)."""
    counts = np.bincount(labels, minlength=N_CLASSES).astype(np.float64)
    present = counts > 0
    per_class = np.zeros(N_CLASSES)
    per_class[present] = len(labels) / (present.sum() * counts[present])
    return per_class[labels].astype(np.float32)


def mixed_class_weights(y_real: np.ndarray, real_objects_per_class: np.ndarray, y_sim: np.ndarray,
                        real_share: float, min_real_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-view weights of real and PLAsTiCC views that keep every class's total weight equal (mean 1).

    The real set holds supernovae only: weighting its views on top of
    PLAsTiCC's would move the training prior towards SNe and away from the
    classes with no real label. Here each class weighs the same in total;
    within a class, the real views carry ``real_share`` of it (less for a
    class with fewer than ``min_real_objects`` real objects, in proportion:
    three SNe Iax must not redefine the class), PLAsTiCC's views the rest.
    """
    n_real = np.bincount(y_real, minlength=N_CLASSES).astype(np.float64)
    n_sim = np.bincount(y_sim, minlength=N_CLASSES).astype(np.float64)
    share = np.where(n_real > 0, real_share * np.minimum(1.0, real_objects_per_class / min_real_objects), 0.0)
    share = np.where(n_sim > 0, share, np.where(n_real > 0, 1.0, 0.0))  # a class only the real set has
    w_real = np.divide(share, n_real, out=np.zeros(N_CLASSES), where=n_real > 0)[y_real]
    w_sim = np.divide(1.0 - share, n_sim, out=np.zeros(N_CLASSES), where=n_sim > 0)[y_sim]
    mean = (w_real.sum() + w_sim.sum()) / max(len(y_real) + len(y_sim), 1)
    return (w_real / mean).astype(np.float32), (w_sim / mean).astype(np.float32)


def view_host_z(data: PlasticcData, spec: ViewSpec, position: np.ndarray, prep: PreparationConfig,
                rng: np.random.Generator | None = None, dropout: float = 0.0) -> np.ndarray | None:
    """Host redshift of each view (its source's), ``dropout`` of them withheld (NaN) when ``rng`` is given;
    None for a preparation without the redshift channels."""
    if not prep.host_redshift:
        return None
    host_z = data.host_z[spec.source[position]]
    if rng is not None and dropout > 0:
        host_z = np.where(rng.random(len(host_z)) < dropout, np.nan, host_z)
    return host_z


#: Seed of the sky-context draw of exact (evaluation) views: the same simulated cross-match every time.
EVALUATION_SKY_SEED = 2024


def view_sky(data: PlasticcData, sources: np.ndarray, prep: PreparationConfig, rng: np.random.Generator | None,
             dropout: float = 0.0, with_sky: bool = True) -> SkyContext | None:
    """Simulated sky context of PLAsTiCC views of ``sources`` (:mod:`fink_t2.training.sky_simulation`), ``dropout``
    of it withheld; exact views (``rng`` None) get a fixed draw with all context. None without sky channels."""
    if not prep.reads_sky:
        return None
    if not with_sky:
        return SkyContext.unknown(len(sources))
    redshift, latitude = plasticc_sky_inputs(data.metadata)
    draw = rng if rng is not None else np.random.default_rng(EVALUATION_SKY_SEED)
    sky = simulate_sky(redshift[sources], latitude[sources], draw)
    return training_sky(sky, rng, dropout) if rng is not None else sky


def prepared_views(data: PlasticcData, spec: ViewSpec, prep: PreparationConfig,
                   rng: np.random.Generator | None = None, resampled_fraction: float = 0.0,
                   redshift_dropout: float = 0.0, with_host_z: bool = True, sky_dropout: float = 0.0,
                   with_sky: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model inputs and labels of views; views that cannot be prepared are dropped.

    Without ``rng`` the views are exact (evaluation); with it they are
    augmented, ``resampled_fraction`` of them re-observed at the survey's
    cadence and ``redshift_dropout`` of them without their host redshift
    (``with_host_z`` False withholds it from all). Returns (inputs, labels,
    positions of the kept views in ``spec``).
    """
    if rng is None:
        views, position = make_views(data.observations, spec), np.arange(len(spec))
    else:
        views, position = training_view_observations(data, spec, rng, resampled_fraction)
    host_z = view_host_z(data, spec, position, prep, rng, redshift_dropout) if with_host_z else None
    sky = view_sky(data, spec.source[position], prep, rng, sky_dropout, with_sky)
    batch = prepare(views, prep, host_z=host_z, sky=sky)
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
                                 config.long_history_fraction, history_days=alert_views(prep.survey).history_days)
    x, y, _ = prepared_views(data, spec, prep, rng, config.resampled_fraction, config.redshift_dropout,
                             sky_dropout=config.sky_dropout)
    xs.append(x)
    ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def _log(message: str, progress: bool) -> None:
    if progress:
        print(message, flush=True)


def train(config: TrainConfig, output_dir: str | Path, data_dir: str | Path | None = None,
          max_objects: int | None = None, progress: bool = True, data: PlasticcData | None = None,
          real: RealData | None = None, pretrained: str | Path | None = None) -> dict:
    """Train a t2 model; write the Keras file, its config and the history into ``output_dir``.

    Stage 1 pretrains on PLAsTiCC views (skipped if ``pretrained`` names a Keras
    file). With ``config.real``, stage 2 fine-tunes on typed real light curves:
    first once per object-wise fold (the out-of-fold predictions of the real
    objects at the alert epochs go to ``cv_predictions.npz``; they are the
    real-sky evaluation and fit the calibration), then on every real object for
    the shipped model. Returns the history and the split sizes.
    """
    import tensorflow as tf
    import tf_keras as keras

    from fink_t2.training.model import build_model

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    prep = config.preparation
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()

    started = time.time()
    if data is None:
        _log("loading PLAsTiCC ...", progress)
        data = load_plasticc(data_dir, max_objects=max_objects, seed=config.seed, survey=prep.survey)
    if data.survey.name != prep.survey:
        raise ValueError(f"the PLAsTiCC data are in survey {data.survey.name!r}'s bands, the preparation is for "
                         f"{prep.survey!r}")
    split = split_objects(data.labels, config.split, config.seed)
    _log(f"objects: {len(data.labels)} (train {len(split['train'])}, validation {len(split['validation'])}, "
         f"test {len(split['test'])}); {time.time() - started:.1f}s", progress)
    if config.augmentation is not None:
        data, split, counts = augmented_split(data, split, config.augmentation, config.seed, data_dir=data_dir,
                                              max_objects=max_objects)
        _log(f"redshift augmentation: {counts['train']} training and {counts['validation']} validation objects "
             f"added (test objects untouched); {time.time() - started:.1f}s", progress)
    x_val, y_val = validation_set(data, split["validation"], config, prep)
    summary: dict = {"split": {name: int(len(idx)) for name, idx in split.items()}, "classes": CLASSES}

    if pretrained is not None:
        model = load_keras_model(pretrained)
        _log(f"stage 1 skipped: pretrained weights from {pretrained}", progress)
    else:
        model = build_model(prep.n_steps, prep.n_channels, config.model, seed=config.seed)
        summary.update(_pretrain(model, config, data, split, x_val, y_val, progress))
    with open(output_dir / CONFIG_FILE, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config.to_dict(), handle, sort_keys=False)
    if config.real is None:
        model.save(output_dir / KERAS_FILE)
    else:
        model.save(output_dir / PRETRAINED_FILE)
        if real is None:
            from fink_t2.training.bts import load_bts

            real = load_bts(config.real.bts_path)
        summary["real"] = _real_stage(output_dir / PRETRAINED_FILE, config, data, split, x_val, y_val, real,
                                      output_dir, progress)
    summary["seconds"] = round(time.time() - started, 1)
    summary["parameters"] = int(model.count_params())
    with open(output_dir / HISTORY_FILE, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=1)
    _log(f"saved {output_dir / KERAS_FILE} in {summary['seconds']:.0f}s", progress)
    return summary


def _compile(model, learning_rate: float, clipnorm: float, soft_targets: bool = False) -> None:
    import tf_keras as keras

    optimizer = keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=clipnorm)
    loss = "categorical_crossentropy" if soft_targets else "sparse_categorical_crossentropy"
    model.compile(optimizer=optimizer, loss=loss, weighted_metrics=["accuracy"])


def _pretrain(model, config: TrainConfig, data: PlasticcData, split: dict, x_val: np.ndarray, y_val: np.ndarray,
              progress: bool) -> dict:
    """Stage 1: PLAsTiCC views, early stopping on the validation flat log-loss; ``model`` ends at its best epoch."""
    from fink_t2.training.evaluation import balanced_accuracy, flat_log_loss

    prep = config.preparation
    _compile(model, config.learning_rate, config.clipnorm)
    rng = np.random.default_rng(config.seed)
    history: list[dict] = []
    best_loss, best_weights, best_epoch = np.inf, model.get_weights(), -1
    since_best = since_lr_drop = 0
    learning_rate = config.learning_rate
    for epoch in range(config.epochs):
        t0 = time.time()
        spec = sample_training_views(data.observations, split["train"], config.views_per_object, rng,
                                     config.long_history_fraction,
                                     history_days=alert_views(prep.survey).history_days)
        x_train, y_train, _ = prepared_views(data, spec, prep, rng, config.resampled_fraction,
                                             config.redshift_dropout)
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
    _log(f"stage 1 best epoch {best_epoch}: val flat LL {best_loss:.4f}", progress)
    return {"best_epoch": best_epoch, "best_val_flat_log_loss": best_loss, "history": history}


def real_views(real: RealData, objects: np.ndarray, views_per_object: int, rng: np.random.Generator,
               long_history_fraction: float, prep: PreparationConfig, early_fraction: float = 0.6,
               early_days: float = 60.0, clean_fraction: float = 0.0, sky: SkyContext | None = None,
               sky_dropout: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Prepared random alert-like views of real ``objects`` (thinned, noisier: as PLAsTiCC's, but
    ``clean_fraction`` of them as delivered) and their labels. ``sky``: the objects' sky context (one entry
    per real object), ``sky_dropout`` of the views without it."""
    spec = sample_training_views(real.observations, objects, views_per_object, rng, long_history_fraction,
                                 early_fraction, early_days, clean_fraction=clean_fraction)
    views = make_views(real.observations, spec, rng)
    view_context = None
    if prep.sky_context and sky is not None:
        view_context = training_sky(sky.take(spec.source), rng, sky_dropout)
    batch = prepare(views, prep, sky=view_context)
    kept = np.flatnonzero(batch.ok)
    return batch.values[kept], real.labels[spec.source[kept]]


def running_average(average: list | None, count: int, weights: list) -> tuple[list, int]:
    """Add one set of weights (a list of arrays) to a running mean of ``count`` of them."""
    if average is None:
        return [np.array(w, dtype=np.float64) for w in weights], 1
    count += 1
    return [a + (np.asarray(w, dtype=np.float64) - a) / count for a, w in zip(average, weights)], count


def mixed_in_plasticc_views(obs, objects: np.ndarray, config: TrainConfig, rng: np.random.Generator):
    """The random PLAsTiCC views mixed into an epoch of the real stage (``real.plasticc_early_fraction`` of them
    within ``real.early_days`` of the first detection; null: the pretraining's draw)."""
    stage = config.real
    early = {} if stage.plasticc_early_fraction is None else {
        "early_fraction": stage.plasticc_early_fraction, "early_days": stage.early_days}
    return sample_training_views(obs, objects, stage.plasticc_views_per_object, rng, config.long_history_fraction,
                                 **early)


def fine_tune(model, config: TrainConfig, data: PlasticcData, plasticc_objects: np.ndarray, real: RealData,
              real_objects: np.ndarray, progress: bool = True, x_val=None, y_val=None) -> list[dict]:
    """Stage 2 on ``model`` in place: fixed epochs of real views of ``real_objects`` mixed with PLAsTiCC views.

    Every class weighs the same in total (:func:`mixed_class_weights`); the
    real views carry ``real_share`` of the weight of the classes they hold.
    With ``distill`` > 0 the PLAsTiCC views' targets mix their label with
    what the model said before fine-tuning (learning without forgetting):
    the real views move the model where the simulation is wrong about the
    sky without erasing what it knew of the classes that have no real label.
    """
    import tf_keras as keras

    from fink_t2.training.evaluation import flat_log_loss

    stage = config.real
    prep = config.preparation
    teacher = None
    if stage.distill > 0:
        teacher = keras.models.clone_model(model)
        teacher.set_weights(model.get_weights())
    _compile(model, stage.learning_rate, config.clipnorm, soft_targets=True)
    rng = np.random.default_rng(config.seed + 7)
    real_sky_context = real_sky(real.metadata) if prep.sky_context else None
    objects_per_class = np.bincount(real.labels[real_objects], minlength=N_CLASSES)
    history = []
    averaged, n_averaged = None, 0
    for epoch in range(stage.epochs):
        t0 = time.time()
        x_real, y_real = real_views(real, real_objects, stage.views_per_object, rng, stage.long_history_fraction,
                                    prep, stage.early_fraction, stage.early_days, stage.clean_fraction,
                                    real_sky_context, config.sky_dropout)
        xs, ys = [x_real], [np.eye(N_CLASSES, dtype=np.float32)[y_real]]
        y_sim = np.zeros(0, dtype=np.int64)
        if stage.plasticc_views_per_object and stage.real_share < 1.0:
            spec = mixed_in_plasticc_views(data.observations, plasticc_objects, config, rng)
            x_sim, y_sim, _ = prepared_views(data, spec, prep, rng, config.resampled_fraction,
                                             sky_dropout=config.sky_dropout)
            target = np.eye(N_CLASSES, dtype=np.float32)[y_sim]
            if teacher is not None:
                said = teacher.predict(x_sim, batch_size=4096, verbose=0)
                target = (1.0 - stage.distill) * target + stage.distill * said
            xs.append(x_sim)
            ys.append(target)
        w_real, w_sim = mixed_class_weights(y_real, objects_per_class, y_sim, stage.real_share,
                                            stage.min_real_objects)
        ws = [w_real, w_sim]
        x, y, w = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
        fit = model.fit(x, y, sample_weight=w / w.mean(), batch_size=config.batch_size, epochs=1, shuffle=True,
                        verbose=0)
        if epoch >= stage.epochs - stage.average_epochs:
            averaged, n_averaged = running_average(averaged, n_averaged, model.get_weights())
            if epoch == stage.epochs - 1:
                model.set_weights(averaged)
        record = {"epoch": epoch + 1, "train_loss": float(fit.history["loss"][-1]), "n_real_views": len(y_real),
                  "n_views": len(y), "seconds": round(time.time() - t0, 2)}
        if x_val is not None:
            record["plasticc_val_flat_log_loss"] = flat_log_loss(y_val, model.predict(x_val, batch_size=4096,
                                                                                      verbose=0))
        history.append(record)
        _log(f"  real epoch {epoch + 1:2d}/{stage.epochs}  train {record['train_loss']:.4f}"
             + (f"  PLAsTiCC val flat LL {record['plasticc_val_flat_log_loss']:.4f}" if x_val is not None else "")
             + f"  {record['seconds']:.0f}s", progress)
    return history


def _real_stage(pretrained: Path, config: TrainConfig, data: PlasticcData, split: dict, x_val, y_val,
                real: RealData, output_dir: Path, progress: bool) -> dict:
    """Cross-validated fine-tuning (out-of-fold predictions, calibration), then the final fine-tune."""
    from fink_t2.scoring.calibration import ZTF_ALERT_PRIOR, fit_temperature, prior_vector
    from fink_t2.training.bts import object_folds

    stage = config.real
    folds = object_folds(real.labels, stage.folds, config.seed)
    # With sky channels: out-of-fold predictions with the objects' context (as Fink gives it), and again with the
    # light curve alone, on the same folds and views (CV_FILE and CV_LC_ONLY_FILE).
    variants = {CV_FILE: real_sky(real.metadata)} if config.preparation.sky_context else {CV_FILE: None}
    if config.preparation.sky_context:
        variants[CV_LC_ONLY_FILE] = SkyContext.unknown(len(real.labels))
    parts: dict[str, dict[str, list]] = {name: {epoch: [] for epoch in REAL_EPOCHS} for name in variants}
    histories = []
    for k in range(stage.folds):
        held = np.flatnonzero(folds == k)
        _log(f"real stage, fold {k + 1}/{stage.folds}: fine-tune on {len(real.labels) - len(held)} real objects, "
             f"predict {len(held)}", progress)
        model = load_keras_model(pretrained)
        histories.append(fine_tune(model, config, data, split["train"], real, np.flatnonzero(folds != k), progress))
        for name, sky in variants.items():
            predicted = predict_real_epochs(lambda v, m=model: m.predict(v, batch_size=4096, verbose=0), real, held,
                                            config.preparation, sky=sky)
            for epoch, values in predicted.items():
                parts[name][epoch].append({**values, "fold": np.full(len(values["object"]), k)})
    for name, by_epoch in parts.items():
        saved = {}
        for epoch, chunks in by_epoch.items():
            for key in ("object", "label", "probabilities", "fold"):
                saved[f"{epoch}/{key}"] = np.concatenate([c[key] for c in chunks])
        np.savez_compressed(output_dir / name, **saved)
        if name == CV_FILE:
            arrays = saved

    # Temperature under the shipped prior, on the pooled out-of-fold alert epochs.
    prior = prior_vector(ZTF_ALERT_PRIOR)
    alert = [e for e in REAL_EPOCHS if e != "full"]
    labels = np.concatenate([arrays[f"{e}/label"] for e in alert])
    probabilities = np.concatenate([arrays[f"{e}/probabilities"] for e in alert])
    temperature = fit_temperature(labels, probabilities, prior)
    with open(output_dir / CALIBRATION_FILE, "w", encoding="utf-8") as handle:
        json.dump({"temperature": temperature, "fitted_on": "out-of-fold real alert-epoch views"}, handle, indent=1)
    _log(f"calibration: temperature {temperature:.3f}", progress)

    _log(f"real stage, final: fine-tune on all {len(real.labels)} real objects", progress)
    model = load_keras_model(pretrained)
    final = fine_tune(model, config, data, split["train"], real, np.arange(len(real.labels)), progress, x_val, y_val)
    model.save(output_dir / KERAS_FILE)
    return {"folds": stage.folds, "fold_histories": histories, "final_history": final, "temperature": temperature}


def load_keras_model(path: str | Path):
    """Load a trained t2 Keras file (training/compression only: imports TensorFlow)."""
    import tf_keras as keras

    from fink_t2.training.model import custom_objects

    return keras.models.load_model(path, custom_objects=custom_objects(), compile=False)
