"""Classification metrics (pure numpy) and the evaluation report.

The headline metric is PLAsTiCC's flat log-loss: the mean over classes of each
class's mean negative log-probability of the true class, so every class
weighs the same whatever its frequency.
"""

from __future__ import annotations

import numpy as np

from fink_t2.scoring.classes import CLASSES, N_CLASSES

_EPS = 1e-15
#: The metrics a summary line reports, in order (keys of :func:`classification_metrics`).
HEADLINE_METRICS = ("flat_log_loss", "accuracy", "balanced_accuracy", "micro_roc_auc", "macro_roc_auc",
                    "snia_vs_rest_auc")


def flat_log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Class-balanced log-loss over the classes present in ``labels``."""
    labels = np.asarray(labels, dtype=np.int64)
    p = np.clip(np.asarray(probabilities, dtype=np.float64), _EPS, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    nll = -np.log(p[np.arange(len(labels)), labels])
    per_class = [nll[labels == c].mean() for c in np.unique(labels)]
    return float(np.mean(per_class))


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """Counts: rows true class, columns predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predicted)), 1)
    return matrix


def per_class_recall(labels: np.ndarray, predicted: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """Recall per class (NaN for a class absent from ``labels``)."""
    matrix = confusion_matrix(labels, predicted, n_classes)
    support = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(matrix) / support, np.nan)


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the classes present."""
    return float(np.nanmean(per_class_recall(labels, predicted)))


def roc_auc(is_positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); NaN if one class is empty."""
    is_positive = np.asarray(is_positive, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos = int(is_positive.sum())
    n_neg = len(is_positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    sorted_score = score[order]
    ranks = np.empty(len(score))
    # Average rank over runs of equal scores.
    boundaries = np.flatnonzero(np.diff(sorted_score)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(score)]])
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    return float((ranks[is_positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(is_positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every threshold (for plots)."""
    is_positive = np.asarray(is_positive, dtype=bool)
    order = np.argsort(-np.asarray(score), kind="mergesort")
    hits = is_positive[order]
    tpr = np.concatenate([[0.0], np.cumsum(hits) / max(hits.sum(), 1)])
    fpr = np.concatenate([[0.0], np.cumsum(~hits) / max((~hits).sum(), 1)])
    return fpr, tpr


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """All metrics of the model card for one set of predictions."""
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predicted = probabilities.argmax(axis=1)
    one_hot = np.eye(N_CLASSES, dtype=bool)[labels]
    per_class_auc = [roc_auc(one_hot[:, c], probabilities[:, c]) for c in range(N_CLASSES)]
    snia = CLASSES.index("SNIa")
    recall = per_class_recall(labels, predicted)
    return {
        "n": int(len(labels)),
        "flat_log_loss": flat_log_loss(labels, probabilities),
        "accuracy": float(np.mean(predicted == labels)),
        "balanced_accuracy": balanced_accuracy(labels, predicted),
        "micro_roc_auc": roc_auc(one_hot.ravel(), probabilities.ravel()),
        "macro_roc_auc": float(np.nanmean(per_class_auc)),
        "snia_vs_rest_auc": roc_auc(labels == snia, probabilities[:, snia]),
        "per_class_recall": {name: (None if np.isnan(r) else float(r)) for name, r in zip(CLASSES, recall)},
        "per_class_auc": {name: (None if np.isnan(a) else float(a)) for name, a in zip(CLASSES, per_class_auc)},
    }


# --------------------------------------------------------------------------- real-sky metrics

#: The three supernova families of the real-sky report: SN Ia (with its 91bg and Iax sub-types),
#: SN II and SN Ibc. A prediction is the most probable of the three summed families.
SN_FAMILIES: dict[str, tuple[str, ...]] = {
    "Ia": ("SNIa", "SNIa-91bg", "SNIax"), "II": ("SNII",), "Ibc": ("SNIbc",),
}


def purity_at_efficiency(is_positive: np.ndarray, score: np.ndarray, efficiency: float) -> float:
    """Purity (precision) of the highest-scoring candidates that hold ``efficiency`` of the positives.

    The threshold is the score of the k-th best positive, k = ceil(efficiency * positives);
    every object scoring at or above it is selected. NaN without positives.
    """
    is_positive = np.asarray(is_positive, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos = int(is_positive.sum())
    if n_pos == 0:
        return float("nan")
    k = max(int(np.ceil(efficiency * n_pos - 1e-9)), 1)
    threshold = np.sort(score[is_positive])[::-1][k - 1]
    selected = score >= threshold
    return float(is_positive[selected].mean())


def sn_family_predictions(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(true family, predicted family) indices into :data:`SN_FAMILIES` for the objects of those families."""
    labels = np.asarray(labels, dtype=np.int64)
    family_of = np.full(N_CLASSES, -1)
    columns = []
    for f, members in enumerate(SN_FAMILIES.values()):
        index = [CLASSES.index(m) for m in members]
        family_of[index] = f
        columns.append(np.asarray(probabilities)[:, index].sum(axis=1))
    true = family_of[labels]
    keep = true >= 0
    predicted = np.stack(columns, axis=1).argmax(axis=1)
    return true[keep], predicted[keep]


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, n_bins: int = 10) -> float:
    """Top-label ECE: the confidence-weighted gap between confidence and accuracy over equal-width bins."""
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    bins = np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        members = bins == b
        if members.any():
            total += members.sum() * abs(confidence[members].mean() - correct[members].mean())
    return float(total / max(len(labels), 1))


def reliability_curve(is_positive: np.ndarray, score: np.ndarray, n_bins: int = 10) -> dict:
    """Mean predicted probability, observed frequency and count per equal-width bin (for the plot)."""
    is_positive = np.asarray(is_positive, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    bins = np.minimum((score * n_bins).astype(np.int64), n_bins - 1)
    mean_p, observed, count = [], [], []
    for b in range(n_bins):
        members = bins == b
        count.append(int(members.sum()))
        mean_p.append(float(score[members].mean()) if members.any() else None)
        observed.append(float(is_positive[members].mean()) if members.any() else None)
    return {"mean_probability": mean_p, "observed_fraction": observed, "count": count}


def real_sky_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """The real-sky report for one set of predictions (see docs/evaluation.md)."""
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    snia = CLASSES.index("SNIa")
    is_ia = labels == snia
    true_family, predicted_family = sn_family_predictions(labels, probabilities)
    family_recall = per_class_recall(true_family, predicted_family, len(SN_FAMILIES))
    predicted = probabilities.argmax(axis=1)
    recall = per_class_recall(labels, predicted)
    return {
        "n": int(len(labels)),
        "snia_vs_rest_auc": roc_auc(is_ia, probabilities[:, snia]),
        "snia_purity_at_50": purity_at_efficiency(is_ia, probabilities[:, snia], 0.5),
        "snia_purity_at_80": purity_at_efficiency(is_ia, probabilities[:, snia], 0.8),
        "family_accuracy": float(np.mean(true_family == predicted_family)) if len(true_family) else float("nan"),
        "family_balanced_accuracy": float(np.nanmean(family_recall)),
        "family_recall": {name: (None if np.isnan(r) else float(r)) for name, r in zip(SN_FAMILIES, family_recall)},
        "accuracy": float(np.mean(predicted == labels)),
        "flat_log_loss": flat_log_loss(labels, probabilities),
        "ece": expected_calibration_error(labels, probabilities),
        "snia_reliability": reliability_curve(is_ia, probabilities[:, snia]),
        "per_class_recall": {name: (None if np.isnan(r) else float(r)) for name, r in zip(CLASSES, recall)
                             if (labels == CLASSES.index(name)).any()},
        "confusion": confusion_matrix(labels, predicted).tolist(),
    }
