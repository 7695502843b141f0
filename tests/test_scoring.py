"""classify / classify_with_reasons on real ZTF alerts from data/alerts_sample.parquet."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import n_detections

import fink_t2
from fink_t2 import CLASSES
from fink_t2.scoring import (
    MIN_DETECTIONS,
    REQUIRED_COLUMNS,
    Cuts,
    classify,
    classify_with_reasons,
    cut_reasons,
    make_selector,
    reason_too_few,
    score_alerts,
    t2_arrow,
    t2_arrow_type,
    t2_frame,
    t2_probabilities,
)
from fink_t2.scoring.classes import CLASS_FIELDS
from fink_t2.scoring.runtime import T2Model

ROOT = Path(__file__).resolve().parent.parent


def _check_probabilities(probs: pd.DataFrame, reasons: pd.Series) -> None:
    classified = reasons.isna()
    assert list(probs.columns) == list(CLASSES)
    assert all(dtype == np.float64 for dtype in probs.dtypes)
    ok = probs[classified.to_numpy()]
    assert np.isfinite(ok.to_numpy()).all()
    assert (ok.to_numpy() >= 0).all()
    np.testing.assert_allclose(ok.sum(axis=1), 1.0, atol=1e-9)
    assert probs[~classified.to_numpy()].isna().all(axis=None)


def test_classify_real_alerts_same_index_and_rows_sum_to_one(sample_columns, sample_table):
    pdf = sample_columns.copy()
    pdf.index = pd.Index(sample_table.column("objectId").to_pylist(), name="objectId")  # non-default index
    probs, reasons = classify_with_reasons(pdf)
    assert probs.index.equals(pdf.index) and reasons.index.equals(pdf.index)
    _check_probabilities(probs, reasons)
    # Real alerts all carry a current detection: the model classifies every one with enough detections,
    # and declines the others (a lone detection) with a reason rather than near-uniform probabilities.
    enough = n_detections(pdf) >= MIN_DETECTIONS
    assert reasons[enough].isna().all() and enough.mean() > 0.6
    assert (reasons[~enough] == reason_too_few(MIN_DETECTIONS)).all()
    assert fink_t2.classify(pdf).equals(probs)


def test_classify_is_deterministic_and_order_independent(sample_columns):
    first = classify(sample_columns)
    shuffled = sample_columns.sample(frac=1.0, random_state=0)
    again = classify(shuffled).loc[first.index]
    np.testing.assert_allclose(again.to_numpy(), first.to_numpy(), atol=1e-6)


def test_one_interpreter_call_for_a_batch(sample_columns, monkeypatch):
    calls = []
    original = T2Model.predict

    def counting(self, values, *args, **kwargs):
        calls.append(len(values))
        return original(self, values, *args, **kwargs)

    monkeypatch.setattr(T2Model, "predict", counting)
    classify(sample_columns)
    # every sample alert the model judges is prepared; one call scores them all
    assert calls == [int((n_detections(sample_columns) >= MIN_DETECTIONS).sum())]


def test_missing_columns_is_a_clear_error(sample_columns):
    with pytest.raises(ValueError, match=r"missing required column\(s\) \['cmagpsf', 'csigmapsf'\]"):
        classify(sample_columns.drop(columns=["cmagpsf", "csigmapsf"]))
    with pytest.raises(TypeError):
        classify(sample_columns.to_dict())


def test_declined_alerts_get_nan_rows_and_reasons(judged_columns):
    pdf = judged_columns.iloc[:6].copy().reset_index(drop=True)
    pdf.at[0, "cmagpsf"] = np.full(len(pdf.at[0, "cjd"]), np.nan)  # only upper limits left
    for name in REQUIRED_COLUMNS + ("cisdiffpos", "cdiffmaglim"):
        pdf.at[1, name] = np.array([])  # nothing at all
    pdf.at[2, "cfid"] = pdf.at[2, "cfid"][:-1]  # arrays of different lengths
    pdf.at[3, "cfid"] = np.full(len(pdf.at[3, "cjd"]), 3.0)  # ZTF i only: not modelled
    probs, reasons = classify_with_reasons(pdf)
    _check_probabilities(probs, reasons)
    assert reasons[0] == "no valid g/r detection"
    assert reasons[1] == "no observations"
    assert reasons[2] == "alert arrays have different lengths"
    assert reasons[3] is not None
    assert reasons[4] is None and reasons[5] is None


def test_optional_columns_are_optional(sample_columns, judged_columns):
    full = classify(sample_columns)
    bare_probs, bare_reasons = classify_with_reasons(sample_columns[list(REQUIRED_COLUMNS)])
    _check_probabilities(bare_probs, bare_reasons)
    assert bare_probs.shape == full.shape
    # An all-null optional column is the same as no column.
    pdf = sample_columns[list(REQUIRED_COLUMNS)].copy()
    pdf["cisdiffpos"] = None
    pdf["cdiffmaglim"] = None
    np.testing.assert_allclose(classify(pdf).to_numpy(), bare_probs.to_numpy(), equal_nan=True)
    # A null optional row means "unknown", it does not decline the alert.
    pdf = judged_columns.copy()
    pdf["cisdiffpos"] = pdf["cisdiffpos"].astype(object)
    pdf.at[pdf.index[0], "cisdiffpos"] = None
    assert classify_with_reasons(pdf)[1].iloc[0] is None


def test_an_alert_that_breaks_the_vectorised_path_is_isolated(judged_columns):
    pdf = judged_columns.iloc[:9].copy().reset_index(drop=True).astype(object)
    pdf.at[4, "cjd"] = object()  # neither a sequence nor a number
    probs, reasons = classify_with_reasons(pdf)
    assert reasons[4].startswith("error: ")
    assert probs.iloc[4].isna().all()
    assert reasons.drop(index=4).isna().all()
    expected = classify(judged_columns.iloc[:9].reset_index(drop=True)).drop(index=4)
    np.testing.assert_allclose(probs.drop(index=4).to_numpy(), expected.to_numpy(), atol=1e-6)


def test_empty_frame(sample_columns):
    probs, reasons = classify_with_reasons(sample_columns.iloc[:0])
    assert probs.shape == (0, len(CLASSES)) and len(reasons) == 0


def test_string_and_int_dtypes_are_read_as_numbers(sample_columns):
    pdf = sample_columns.iloc[:5].copy().reset_index(drop=True)
    expected = classify(pdf)
    pdf["cfid"] = pdf["cfid"].map(lambda a: a.astype(np.int64))
    pdf["cjd"] = pdf["cjd"].map(lambda a: [repr(float(v)) for v in a])
    np.testing.assert_allclose(classify(pdf).to_numpy(), expected.to_numpy(), atol=1e-6)


def test_cuts_decline_with_reasons(sample_columns):
    n = 8
    several = sample_columns["cmagpsf"].map(lambda mags: np.isfinite(mags).sum() >= 3)
    pdf = sample_columns[several.to_numpy()].iloc[:n].reset_index(drop=True)
    cuts = Cuts(enabled=True)
    jdstarthist = [float(row[-1]) - 10.0 for row in pdf["cjd"]]
    jdstarthist[1] = float(pdf.at[1, "cjd"][-1]) - 400.0  # long history
    roid = [0] * n
    roid[2] = 3  # known asteroid
    xmatch = ["Unknown"] * n
    xmatch[3] = "RRLyr"  # a galactic variable star
    xmatch[4] = None  # missing: does not reject
    pdf.at[5, "cmagpsf"] = np.where(np.arange(len(pdf.at[5, "cjd"])) == len(pdf.at[5, "cjd"]) - 1,
                                    pdf.at[5, "cmagpsf"], np.nan)  # one detection only
    scores = score_alerts(*(pdf[c] for c in REQUIRED_COLUMNS), cisdiffpos=pdf["cisdiffpos"],
                          cdiffmaglim=pdf["cdiffmaglim"], select=make_selector(cuts, jdstarthist, roid, xmatch))
    reasons = list(scores.reason)
    assert reasons[1] == "cut: history longer than 90 days"
    assert reasons[2] == "cut: known solar-system object (roid=3)"
    assert reasons[3] == "cut: cdsxmatch not compatible with an extragalactic host"
    assert reasons[5] == "cut: fewer than 2 valid g/r detections"
    assert np.isnan(scores.probabilities[[1, 2, 3, 5]]).all()
    kept = [i for i in range(n) if reasons[i] is None]
    assert 0 in kept and 4 in kept
    np.testing.assert_allclose(scores.probabilities[kept].sum(axis=1), 1.0, atol=1e-9)
    # Disabled cuts keep everyone.
    assert make_selector(Cuts(), jdstarthist, roid, xmatch) is None


def test_cut_reasons_g_and_r():
    from fink_t2.scoring.lightcurves import Observations

    obs = Observations([0, 0, 1, 1], [1.0, 2.0, 1.0, 2.0], [0, 1, 0, 0], [1, 1, 1, 1], [0.1] * 4, [True] * 4, 2)
    reasons = cut_reasons(obs, Cuts(enabled=True, require_g_and_r=True))
    assert reasons[0] is None and reasons[1] == "cut: needs detections in both g and r"


def test_output_formats_agree(judged_columns):
    pdf = judged_columns.iloc[:5].copy().reset_index(drop=True)
    pdf.at[1, "cmagpsf"] = np.full(len(pdf.at[1, "cjd"]), np.nan)
    scores = score_alerts(*(pdf[c] for c in REQUIRED_COLUMNS), cdiffmaglim=pdf["cdiffmaglim"])
    frame = t2_frame(scores)
    arrow = t2_arrow(scores)
    assert arrow.type == t2_arrow_type()
    rows = arrow.to_pylist()
    assert rows[1] == {**{c: None for c in CLASS_FIELDS}, "top_class": None, "reason": "no valid g/r detection"}
    assert list(frame.columns) == [field.name for field in arrow.type] == [*CLASS_FIELDS, "top_class", "reason"]
    assert frame.loc[1, list(CLASS_FIELDS)].isna().all() and frame.at[1, "top_class"] is None
    assert t2_probabilities(rows[1]) is None
    for i in (0, 2, 3, 4):
        as_map = t2_probabilities(rows[i])
        assert list(as_map) == list(CLASSES)
        assert rows[i]["top_class"] == max(as_map, key=as_map.get) == frame.at[i, "top_class"]
        assert rows[i]["reason"] is None
        np.testing.assert_allclose(list(as_map.values()), frame.loc[i, list(CLASS_FIELDS)].to_numpy(float), rtol=1e-6)
    with pytest.raises(ValueError, match="declined t2 value carries probabilities"):
        t2_probabilities({**rows[0], "top_class": None})
    assert isinstance(arrow, pa.StructArray)


def test_scoring_never_imports_tensorflow():
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        import pyarrow.parquet as pq
        import fink_t2
        from fink_t2.scoring.alerts import alert_columns
        probs = fink_t2.classify(alert_columns(pq.read_table({str(ROOT / 'data' / 'alerts_sample.parquet')!r})))
        assert probs.notna().any(axis=None)
        print('tensorflow' in sys.modules, 'keras' in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("as_arrow", [False, True])
def test_large_batches_are_scored_in_chunks_with_the_same_result(sample_columns, monkeypatch, as_arrow):
    """Chunking is invisible: same probabilities, same reasons, cuts and fault isolation at the right rows."""
    import fink_t2.scoring.classifier as classifier

    pdf = sample_columns.reset_index(drop=True).astype(object)
    n = len(pdf)
    rng = np.random.default_rng(5)
    roid = [3 if i % 11 == 0 else 0 for i in range(n)]
    xmatch = ["RRLyr" if i % 13 == 0 else "Unknown" for i in range(n)]
    jdstarthist = [float(row[-1]) - 10.0 for row in pdf["cjd"]]
    bad = int(rng.integers(40, n))
    columns = [pdf[c] for c in REQUIRED_COLUMNS] + [pdf["cisdiffpos"], pdf["cdiffmaglim"]]
    if as_arrow:  # Spark's Arrow UDF input; the bad alert has a null magnitude array
        columns = [pa.array([list(v) for v in c]) for c in columns]
        columns[2] = pa.array([None if i == bad else list(v) for i, v in enumerate(pdf["cmagpsf"])])
    else:  # breaks the vectorised path of its chunk: isolated and declined alone
        columns[2] = columns[2].copy()
        columns[2].at[bad] = object()  # neither a sequence nor a number

    def run():
        return score_alerts(*columns[:4], cisdiffpos=columns[4], cdiffmaglim=columns[5],
                            select=make_selector(Cuts(enabled=True), jdstarthist, roid, xmatch))

    whole = run()
    monkeypatch.setattr(classifier, "SCORING_CHUNK", 37)
    chunked = run()
    np.testing.assert_array_equal(chunked.reason, whole.reason)
    np.testing.assert_allclose(chunked.probabilities, whole.probabilities, atol=1e-6)
    reasons = list(chunked.reason)
    assert all(reasons[i] == "cut: known solar-system object (roid=3)" for i in range(0, n, 11))
    assert reasons[bad] is not None and (as_arrow or reasons[bad].startswith("error: "))
    assert 0.5 < np.mean([r is None for r in reasons]) < 0.95


def test_top_classes_of_a_frame_with_declined_rows(sample_columns):
    """``probs.idxmax(axis=1)`` breaks on pandas 3 for a declined (all-NaN) row: top_classes gives None there."""
    from fink_t2.scoring import top_classes

    probs = fink_t2.classify(sample_columns.iloc[:60])
    top = top_classes(probs)
    declined = probs.isna().all(axis=1)
    assert declined.any() and (~declined).any()
    assert top[declined].isna().all()
    assert (top[~declined] == probs[~declined].idxmax(axis=1)).all()
    assert top.index.equals(probs.index)
