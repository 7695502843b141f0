"""A held-out set that looks like PLAsTiCC's test set: the project's own test objects moved farther away.

The PLAsTiCC test set (never used here) is what Rubin's alert stream will be: supernovae farther
(host photo-z median 0.58 SN Ia, 0.42 SN II, 0.33 SN Ibc, against 0.38 / 0.22 / 0.21 in the
training set), fainter and sparser (a median of 4 detections, a quarter with 2), in the
wide-fast-deep fields. The training set's held-out objects are drawn like the training set, so
a model judged on them alone is judged on the wrong population. Here each held-out test
object of the split is moved to higher redshifts by :func:`fink_t2.training.redshift_augmentation.augment`
with a fixed seed (``TEST_LIKE``: farther than training draws reach, deep-drilling sources
made wide-fast-deep), keeping the copies the survey would detect at least twice. The copies
come only from the split's test objects: no object's copy is in two splits.

Views are Rubin alerts: detections only, up to :data:`RUBIN_HISTORY_DAYS` of history, at the 3rd
detection, the last detection within 10 and 30 days of the first, pooled over those three
("alert epochs"), and the whole light curve. Supernova metrics follow the issue that asked for
them: SN Ia against SN II + Ibc AUC of p(SN Ia), Ia / II / Ibc balanced accuracy (top class
among the three), and the share of these supernovae whose top class (of all 14) is none of
the three.
"""

from __future__ import annotations

import hashlib

import numpy as np

from fink_t2.scoring.classes import CLASSES
from fink_t2.scoring.lightcurves import Observations
from fink_t2.training.evaluation import balanced_accuracy, roc_auc
from fink_t2.training.plasticc import PlasticcData, ViewSpec, evaluation_views, make_views
from fink_t2.training.redshift_augmentation import AugmentedObjects, RedshiftAugmentation, augment

#: How far and how many: copies of each test object, drawn farther than the training augmentation.
TEST_LIKE = RedshiftAugmentation(copies=2, stretch_factor=4.0, min_step=0.4, max_redshift=3.0, min_detections=2,
                                 peak_shift_days=30.0, to_wide_fast_deep=True, copy_galactic=True)
TEST_LIKE_SEED = 20261208
#: Rubin alerts carry 12 months of previous detections (prvDiaSources).
RUBIN_HISTORY_DAYS = 365.0
SUPERNOVAE: tuple[str, ...] = ("SNIa", "SNII", "SNIbc")
ALERT_EPOCHS: tuple[str, ...] = ("det3", "first+10d", "first+30d")
EPOCHS: tuple[str, ...] = (*ALERT_EPOCHS, "pooled", "full")
#: The population the test-like set aims at (the issue's measurements of PLAsTiCC's test supernovae).
TARGET_POPULATION = {"photoz_median": {"SNIa": 0.58, "SNII": 0.42, "SNIbc": 0.33}, "detections_median": 4,
                     "share_with_2_detections": 0.25}


def test_like_objects(data: PlasticcData, test_objects: np.ndarray, seed: int = TEST_LIKE_SEED,
                      config: RedshiftAugmentation = TEST_LIKE) -> AugmentedObjects:
    """The test-like set: copies of ``test_objects`` (six-band ``data``), photo-z errors drawn from the test
    objects' own."""
    return augment(data, test_objects, np.random.default_rng(seed), config, reference_objects=test_objects)


def population(data: PlasticcData) -> dict:
    """Per supernova class: objects, median host photo-z, median detections, share with exactly 2."""
    det = np.bincount(data.observations.object_index[data.observations.detected],
                      minlength=data.observations.n_objects)
    out = {}
    for name in SUPERNOVAE:
        members = data.labels == CLASSES.index(name)
        out[name] = {"n": int(members.sum()),
                     "photoz_median": float(np.median(data.host_z[members])) if members.any() else float("nan"),
                     "detections_median": float(np.median(det[members])) if members.any() else float("nan"),
                     "share_with_2_detections": float(np.mean(det[members] == 2)) if members.any() else float("nan")}
    return out


def epoch_spec(obs: Observations, objects: np.ndarray, epoch: str,
               history_days: float = RUBIN_HISTORY_DAYS) -> ViewSpec:
    """Exact views of ``objects`` at ``epoch`` (one of :data:`ALERT_EPOCHS` or ``full``), Rubin's history."""
    return evaluation_views(obs, objects, epoch, history_days)[0]


def supernova_views(data: PlasticcData, objects: np.ndarray, epoch: str) -> tuple[Observations, np.ndarray]:
    """Observations of the views of the supernovae among ``objects`` at ``epoch`` ("pooled": the three alert
    epochs one after the other) and the object index of each view."""
    sn = np.isin(data.labels[objects], [CLASSES.index(c) for c in SUPERNOVAE])
    objects = np.asarray(objects)[sn]
    if epoch == "pooled":
        specs = [epoch_spec(data.observations, objects, e) for e in ALERT_EPOCHS]
        spec = ViewSpec(*(np.concatenate([getattr(s, f) for s in specs]) for f in
                          ("source", "alert_time", "history_days", "keep_fraction", "noise_factor")))
    else:
        spec = epoch_spec(data.observations, objects, epoch)
    return make_views(data.observations, spec), spec.source


def view_set_digest(data: PlasticcData, objects: np.ndarray) -> str:
    """sha256 (16 hex) of the supernova views' observations at every epoch: two reports compare only when equal."""
    digest = hashlib.sha256()
    for epoch in EPOCHS:
        obs, source = supernova_views(data, objects, epoch)
        for array in (source, obs.object_index, obs.time, obs.band, obs.flux, obs.flux_err, obs.detected):
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def supernova_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """SN Ia vs II + Ibc AUC, Ia/II/Ibc balanced accuracy (top class among the three) and the share whose top
    class of all 14 is none of the three; only rows with finite probabilities are judged."""
    labels = np.asarray(labels)
    p = np.asarray(probabilities, dtype=np.float64)
    judged = np.isfinite(p).all(axis=1)
    labels, p = labels[judged], p[judged]
    columns = [CLASSES.index(c) for c in SUPERNOVAE]
    position = np.full(len(CLASSES), -1)
    position[columns] = np.arange(len(columns))
    sn_label = position[labels]
    is_ia = labels == CLASSES.index("SNIa")
    top3 = p[:, columns].argmax(axis=1) if len(p) else np.zeros(0, int)
    top = p.argmax(axis=1) if len(p) else np.zeros(0, int)
    both = is_ia.any() and (~is_ia).any()
    return {"n": int(len(labels)),
            "snia_auc": float(roc_auc(is_ia, p[:, CLASSES.index("SNIa")])) if both else float("nan"),
            "balanced_accuracy": float(balanced_accuracy(sn_label, top3)) if len(labels) else float("nan"),
            "non_supernova_top_share": float(np.mean(~np.isin(top, columns))) if len(labels) else float("nan")}


def supernova_report(predictors: dict, sets: dict, progress: bool = True) -> dict:
    """Per set (name -> (data, objects)), epoch (:data:`EPOCHS`) and predictor (name -> function(observations,
    host z per view) -> probabilities (n, 14), NaN rows for views it declines): :func:`supernova_metrics` on the
    views every predictor judges, and the set's population and digest."""
    report: dict = {}
    for set_name, (data, objects) in sets.items():
        entry = {"digest": view_set_digest(data, objects), "epochs": {}}
        for epoch in EPOCHS:
            obs, source = supernova_views(data, objects, epoch)
            labels, host_z = data.labels[source], data.host_z[source]
            outputs = {name: np.asarray(predict(obs, host_z), dtype=np.float64) for name, predict in predictors.items()}
            common = np.logical_and.reduce([np.isfinite(p).all(axis=1) for p in outputs.values()])
            entry["epochs"][epoch] = {"n_views": int(len(labels)), "n_judged_by_all": int(common.sum()),
                                      "models": {name: supernova_metrics(labels[common], p[common])
                                                 for name, p in outputs.items()}}
            if progress:
                print(f"  {set_name:10s} {epoch:10s} " + "  ".join(
                    f"{name}: AUC {m['snia_auc']:.3f}" for name, m in entry["epochs"][epoch]["models"].items()),
                    flush=True)
        report[set_name] = entry
    return report


__all__ = ["ALERT_EPOCHS", "EPOCHS", "RUBIN_HISTORY_DAYS", "SUPERNOVAE", "TARGET_POPULATION", "TEST_LIKE",
           "epoch_spec", "population", "supernova_metrics", "supernova_report", "supernova_views", "test_like_objects",
           "view_set_digest"]
