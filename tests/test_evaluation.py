"""Metrics checked against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fink_t2.scoring.classes import CLASS_CODES, CLASSES, class_index
from fink_t2.training.evaluation import (
    balanced_accuracy,
    classification_metrics,
    confusion_matrix,
    flat_log_loss,
    per_class_recall,
    roc_auc,
)


def test_class_order_matches_reference():
    assert CLASS_CODES == [6, 15, 16, 42, 52, 53, 62, 64, 65, 67, 88, 90, 92, 95]
    assert CLASSES[class_index(90)] == "SNIa" and len(CLASSES) == 14


def test_flat_log_loss_weights_classes_equally():
    labels = np.array([0, 0, 0, 1])
    p = np.zeros((4, 14))
    p[:3, 0] = [0.5, 0.5, 0.5]
    p[:3, 1] = [0.5, 0.5, 0.5]
    p[3, 1], p[3, 0] = 0.25, 0.75
    # class 0: -log 0.5 ; class 1: -log 0.25 ; mean of the two.
    expected = (-math.log(0.5) - math.log(0.25)) / 2
    assert flat_log_loss(labels, p) == pytest.approx(expected)


def test_flat_log_loss_clips_zero_probabilities():
    p = np.zeros((1, 14))
    p[0, 3] = 1.0
    assert flat_log_loss(np.array([0]), p) == pytest.approx(-math.log(1e-15), rel=1e-6)


def test_roc_auc_hand_values():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert roc_auc([1, 1, 0], [0.9, 0.8, 0.1]) == pytest.approx(1.0)
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_recall_balanced_accuracy_and_confusion():
    labels = np.array([0, 0, 0, 0, 2, 2])
    predicted = np.array([0, 0, 0, 1, 2, 0])
    matrix = confusion_matrix(labels, predicted)
    assert matrix[0, 0] == 3 and matrix[0, 1] == 1 and matrix[2, 0] == 1 and matrix.sum() == 6
    recall = per_class_recall(labels, predicted)
    assert recall[0] == pytest.approx(0.75) and recall[2] == pytest.approx(0.5) and np.isnan(recall[1])
    assert balanced_accuracy(labels, predicted) == pytest.approx(0.625)


def test_classification_metrics_perfect_predictions():
    labels = np.repeat(np.arange(14), 3)
    p = np.full((len(labels), 14), 0.01 / 13)
    p[np.arange(len(labels)), labels] = 0.99
    m = classification_metrics(labels, p)
    assert m["accuracy"] == 1.0 and m["balanced_accuracy"] == 1.0
    assert m["micro_roc_auc"] == pytest.approx(1.0) and m["snia_vs_rest_auc"] == pytest.approx(1.0)
    assert m["flat_log_loss"] == pytest.approx(-math.log(0.99))


def test_evaluate_refuses_a_bad_baseline_model_in_one_line(tmp_path, capsys):
    """``fink-t2 evaluate --tflite NAME=PATH``: a model that cannot be verified stops the run before any work."""
    import yaml
    from conftest import copy_model

    from fink_t2.tools.cli import main

    bad = copy_model(tmp_path / "bad")
    meta = yaml.safe_load(bad.with_suffix(".yaml").read_text())
    del meta["identity_sha256"]  # as the YAML of a model written before identities existed
    bad.with_suffix(".yaml").write_text(yaml.safe_dump(meta))
    output = tmp_path / "report"
    for item, named in ((f"old={bad}", str(bad.with_suffix(".yaml"))), ("no-equals-sign", "NAME=PATH"),
                        (f"gone={tmp_path / 'none.tflite'}", "none")):
        assert main(["evaluate", "--run", str(tmp_path / "no-run"), "--output", str(output), "--tflite", item]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and named in err, err
    assert not output.exists()  # nothing written
