"""Real, spectroscopically typed ZTF light curves (Bright Transient Survey) for training and evaluation.

PLAsTiCC is an LSST simulation; a model trained on it alone ranked real ZTF
SNe Ia at chance. The BTS file (``../shared/data/ztf_bts_dev``) holds whole g/r
light curves of detections of 1,318 typed objects. They enter the project
through the same door as alerts: each light curve becomes Fink's ``c*``
columns and goes through :func:`fink_t2.scoring.alerts.observations_from_alerts`,
so a real training light curve and a served alert are prepared by one code
path.

Folds are drawn by object (stratified by class) before any view is made: no
object lends views to two folds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fink_t2.scoring.alerts import observations_from_alerts
from fink_t2.scoring.classes import CLASS_CODES, class_indices
from fink_t2.scoring.lightcurves import Observations, PreparationConfig, prepare
from fink_t2.scoring.sky import SkyContext
from fink_t2.training.plasticc import evaluation_views, make_views

BTS_FILE = "bts_dev.parquet"
#: Columns a BTS file must have (one row per object; list columns time-ordered).
BTS_COLUMNS = ("object_id", "target", "jd", "fid", "magpsf", "sigmapsf")


@dataclass
class RealData:
    """Observations of typed real objects, with labels in model-output order."""

    observations: Observations
    object_ids: np.ndarray
    labels: np.ndarray  # class index per object (see fink_t2.scoring.classes)
    metadata: pd.DataFrame  # the file's scalar columns, one row per object


def default_bts_path() -> Path:
    """``data/ztf_bts_dev/bts_dev.parquet`` in the shared-data folder (see :func:`fink_t2.scoring.paths.shared_dir`)."""
    from fink_t2.scoring.paths import shared_path

    return shared_path("data", "ztf_bts_dev", BTS_FILE)


def bts_alert_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per object -> Fink's concatenated columns ``cjd, cfid, cmagpsf, csigmapsf``."""
    return pd.DataFrame({"cjd": frame["jd"], "cfid": frame["fid"], "cmagpsf": frame["magpsf"],
                         "csigmapsf": frame["sigmapsf"]}, index=frame.index)


def load_bts(path: str | Path | None = None) -> RealData:
    """Read a BTS light-curve file; objects of classes the model does not know are dropped."""
    path = Path(path) if path is not None else default_bts_path()
    if not path.is_file():
        raise FileNotFoundError(f"BTS light curves not found: {path} (pass --bts pointing to bts_dev.parquet, "
                                "or set FINK_T2_SHARED to the folder holding data/ztf_bts_dev)")
    frame = pd.read_parquet(path)
    missing = [c for c in BTS_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: not a BTS light-curve file, columns {missing} missing")
    frame = frame[frame["target"].isin(CLASS_CODES)].reset_index(drop=True)
    columns = bts_alert_columns(frame)
    obs, _ = observations_from_alerts(columns["cjd"], columns["cfid"], columns["cmagpsf"], columns["csigmapsf"])
    scalars = frame[[c for c in frame.columns if c not in ("jd", "fid", "magpsf", "sigmapsf")]]
    labels = np.asarray(class_indices(frame["target"]), dtype=np.int64)
    return RealData(obs, frame["object_id"].to_numpy(), labels, scalars)


def object_folds(labels: np.ndarray, k: int = 5, seed: int = 42) -> np.ndarray:
    """Fold number (0..k-1) of every object, stratified by class (each class dealt round-robin)."""
    if k < 2:
        raise ValueError("k must be >= 2")
    rng = np.random.default_rng(seed)
    folds = np.empty(len(labels), dtype=np.int64)
    start = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        folds[members] = (start + np.arange(len(members))) % k
        start += len(members)  # rare classes do not all land in fold 0
    return folds


#: Real-sky evaluation epochs: the alert epochs (30-day history) and the whole light curve.
REAL_EPOCHS = ("det3", "first+10d", "first+30d", "full")


def predict_real_epochs(predict, real: RealData, objects: np.ndarray, prep: PreparationConfig,
                        sky: SkyContext | None = None) -> dict:
    """Per epoch of :data:`REAL_EPOCHS`: object indices, labels and probabilities of the views ``predict`` judges.

    ``predict(values) -> probabilities``; views that cannot be prepared are left out (and counted).
    ``sky``: the sky context of every real object (None: unknown, the light curve alone).
    """
    out = {}
    for epoch in REAL_EPOCHS:
        spec, _ = evaluation_views(real.observations, objects, epoch)
        batch = prepare(make_views(real.observations, spec), prep, sky=None if sky is None else sky.take(spec.source))
        kept = np.flatnonzero(batch.ok)
        out[epoch] = {"object": spec.source[kept], "label": real.labels[spec.source[kept]],
                      "probabilities": np.asarray(predict(batch.values[kept]), dtype=np.float32),
                      "n_views": len(spec)}
    return out
