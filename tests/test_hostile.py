"""Hostile alert contents: a table of named cases and property tests, through classify and the Spark UDF.

Every case has a defined outcome: the alert is classified from what remains valid (often
asserted equal to scoring the cleaned alert), or declined with a stated reason. Whatever
the case: no exception, probabilities finite, in [0, 1] and summing to 1 on classified
rows, all-NaN rows on declined ones, and the good alerts of the same batch score exactly
as they do alone. docs/reliability.md lists the cases and the counts of the property runs.

``FINK_T2_HYPOTHESIS_EXAMPLES`` sets the number of property examples (default 500) and
``FINK_T2_HYPOTHESIS_REPORT`` a JSON file where the counts of hostile inputs are written.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fink_t2 import CLASSES
from fink_t2.scoring import MIN_DETECTIONS, Cuts, classify_with_reasons, reason_too_few, t2_probabilities
from fink_t2.scoring.alerts import alert_columns
from fink_t2.scoring.arrow_compat import struct_field
from fink_t2.scoring.lightcurves import REASON_NO_DATA, REASON_NO_DETECTION
from fink_t2.scoring.paths import SHARED_ZTF_ALERTS, alert_files

ROOT = Path(__file__).resolve().parent.parent
ZTF_FILES = SHARED_ZTF_ALERTS
COLUMNS = ("cjd", "cfid", "cmagpsf", "csigmapsf", "cisdiffpos", "cdiffmaglim")
DIFFERENT_LENGTHS = "alert arrays have different lengths"
#: Every reason a hostile alert may get (an "error: ..." reason would mean the vectorised path raised).
TOO_FEW = reason_too_few(MIN_DETECTIONS)
KNOWN_REASONS = {REASON_NO_DATA, REASON_NO_DETECTION, DIFFERENT_LENGTHS, TOO_FEW}

N_EXAMPLES = int(os.environ.get("FINK_T2_HYPOTHESIS_EXAMPLES", "500"))
COUNTS: Counter = Counter()


# --------------------------------------------------------------------------- helpers


def check_rows(probs: pd.DataFrame, reasons: pd.Series) -> None:
    """The output contract: probability rows or all-NaN rows with a known reason, nothing in between."""
    assert list(probs.columns) == list(CLASSES)
    values = probs.to_numpy()
    classified = reasons.isna().to_numpy()
    ok = values[classified]
    assert np.isfinite(ok).all() and (ok >= 0).all() and (ok <= 1).all()
    np.testing.assert_allclose(ok.sum(axis=1), 1.0, atol=1e-9)
    assert np.isnan(values[~classified]).all()
    unknown = set(reasons[~classified]) - KNOWN_REASONS
    assert not unknown, f"unexpected decline reasons {unknown}"


def frame(rows: list[dict]) -> pd.DataFrame:
    """Alert rows (dicts of per-alert sequences) as a classify input; absent keys are null cells."""
    return pd.DataFrame([{c: row.get(c) for c in COLUMNS} for row in rows], columns=list(COLUMNS), dtype=object)


def as_lists(row: dict) -> dict:
    return {c: (list(v) if isinstance(v, np.ndarray) else v) for c, v in row.items()}


def drop_points(row: dict, points) -> dict:
    """The alert without the given point indices (in every array)."""
    gone = set(int(p) for p in points)
    return {c: [x for j, x in enumerate(v) if j not in gone] for c, v in as_lists(row).items()}


def set_points(row: dict, column: str, points, value) -> dict:
    out = as_lists(row)
    out[column] = list(out[column])
    for p in points:
        out[column][int(p)] = value
    return out


def keep_points(row: dict, mask) -> dict:
    return drop_points(row, np.flatnonzero(~np.asarray(mask)))


@pytest.fixture(scope="module")
def alerts(sample_columns) -> list[dict]:
    """Every sample alert as a dict of numpy arrays."""
    return [{c: sample_columns.at[i, c] for c in COLUMNS} for i in range(len(sample_columns))]


def _pick_base(alerts: list[dict]) -> dict:
    """A real alert with >= 2 detections in each of g and r and >= 2 upper limits before them."""
    for row in alerts:
        mag, fid = row["cmagpsf"], row["cfid"]
        det = np.isfinite(mag)
        first = np.argmax(det)
        if ((det & (fid == 1)).sum() >= 2 and (det & (fid == 2)).sum() >= 2 and (~det[:first]).sum() >= 2
                and len(mag) <= 40 and np.all(np.diff(row["cjd"]) > 0)):
            return row
    raise AssertionError("no suitable base alert in the sample")


@pytest.fixture(scope="module")
def base(alerts) -> dict:
    return _pick_base(alerts)


@pytest.fixture(scope="module")
def good(alerts) -> list[dict]:
    """Three real alerts the model judges (>= MIN_DETECTIONS detections), scored next to every hostile one."""
    judged = [a for a in alerts if np.isfinite(np.asarray(a["cmagpsf"], dtype=float)).sum() >= MIN_DETECTIONS]
    return [judged[i] for i in (0, len(judged) // 2, len(judged) - 1)]


@pytest.fixture(scope="module")
def good_alone(good):
    probs, reasons = classify_with_reasons(frame(good))
    assert reasons.isna().all()
    return probs.to_numpy()


# --------------------------------------------------------------------------- the table of named cases


@dataclass(frozen=True)
class Case:
    """A hostile alert built from the base alert, and its defined outcome.

    ``outcome`` is "classified" or the exact decline reason. ``same_as``, if
    given, builds the alert it must score exactly like (its valid remainder).
    ``spark`` False: the values cannot travel in Spark's array<double> columns.
    """

    id: str
    build: Callable[[dict], dict]
    outcome: str
    same_as: Callable[[dict], dict] | None = None
    spark: bool = True


def _n(row: dict) -> int:
    return len(row["cjd"])


def _det(row: dict) -> np.ndarray:
    return np.flatnonzero(np.isfinite(row["cmagpsf"]))


def _lim(row: dict) -> np.ndarray:
    return np.flatnonzero(~np.isfinite(row["cmagpsf"]))


def _mid_det(row: dict) -> list[int]:
    """A detection in the middle of the history (not the latest point)."""
    det = _det(row)
    return [int(det[len(det) // 2])]


def _long_history(row: dict, n: int = 10_000) -> dict:
    """``n`` points over 3,000 days before the base alert's own points, both bands, some limits."""
    rng = np.random.default_rng(7)
    jd = np.sort(rng.uniform(-3000.0, -40.0, n)) + row["cjd"][0]
    mag = rng.uniform(17.0, 20.5, n)
    mag[rng.random(n) < 0.3] = np.nan
    old = {"cjd": jd, "cfid": rng.integers(1, 3, n).astype(float), "cmagpsf": mag,
           "csigmapsf": np.where(np.isfinite(mag), rng.uniform(0.02, 0.2, n), np.nan),
           "cisdiffpos": np.where(np.isfinite(mag), "t", None).astype(object), "cdiffmaglim": rng.uniform(19, 21, n)}
    return {c: list(old[c]) + list(row[c]) for c in COLUMNS}


CASES = [
    # non-finite values and nulls inside the arrays
    Case("nan_time_one_point", lambda r: set_points(r, "cjd", _mid_det(r), math.nan), "classified",
         lambda r: drop_points(r, _mid_det(r))),
    Case("inf_time_one_point", lambda r: set_points(r, "cjd", [0], math.inf), "classified",
         lambda r: drop_points(r, [0])),
    Case("null_fid_one_point", lambda r: set_points(r, "cfid", _mid_det(r), None), "classified",
         lambda r: drop_points(r, _mid_det(r))),
    Case("pos_inf_magnitude_is_missing", lambda r: set_points(r, "cmagpsf", _mid_det(r), math.inf), "classified",
         lambda r: set_points(r, "cmagpsf", _mid_det(r), None)),
    Case("neg_inf_magnitude_is_missing", lambda r: set_points(r, "cmagpsf", _mid_det(r), -math.inf), "classified",
         lambda r: set_points(r, "cmagpsf", _mid_det(r), None)),
    Case("nan_error_one_detection", lambda r: set_points(r, "csigmapsf", _mid_det(r), math.nan), "classified",
         lambda r: drop_points(r, _mid_det(r))),
    Case("neg_inf_error_one_detection", lambda r: set_points(r, "csigmapsf", _mid_det(r), -math.inf), "classified",
         lambda r: drop_points(r, _mid_det(r))),
    Case("nan_every_time", lambda r: {**r, "cjd": [math.nan] * _n(r)}, REASON_NO_DATA),
    Case("null_every_magnitude_with_limits", lambda r: {**r, "cmagpsf": [None] * _n(r)}, REASON_NO_DETECTION),
    Case("null_every_magnitude_no_limits", lambda r: {**r, "cmagpsf": [None] * _n(r), "cdiffmaglim": None},
         REASON_NO_DATA),
    # null or empty arrays, inconsistent lengths
    Case("null_time_array", lambda r: {**r, "cjd": None}, DIFFERENT_LENGTHS),
    Case("null_every_array", lambda r: {}, REASON_NO_DATA),
    Case("empty_every_array", lambda r: {c: [] for c in COLUMNS}, REASON_NO_DATA),
    Case("empty_magnitude_array", lambda r: {**r, "cmagpsf": []}, DIFFERENT_LENGTHS),
    Case("fid_array_one_short", lambda r: {**r, "cfid": list(r["cfid"])[:-1]}, DIFFERENT_LENGTHS),
    Case("diffmaglim_array_one_long", lambda r: {**r, "cdiffmaglim": list(r["cdiffmaglim"]) + [20.0]},
         DIFFERENT_LENGTHS),
    Case("null_optional_arrays_are_unknown", lambda r: {**r, "cisdiffpos": None, "cdiffmaglim": None}, "classified",
         lambda r: {k: v for k, v in r.items() if k not in ("cisdiffpos", "cdiffmaglim")}),
    # filters
    Case("fid_3_one_detection", lambda r: set_points(r, "cfid", _mid_det(r), 3.0), "classified",
         lambda r: drop_points(r, _mid_det(r))),
    Case("fid_3_everywhere", lambda r: {**r, "cfid": [3.0] * _n(r)}, REASON_NO_DATA),
    Case("fid_0_everywhere", lambda r: {**r, "cfid": [0.0] * _n(r)}, REASON_NO_DATA),
    Case("fid_99_everywhere", lambda r: {**r, "cfid": [99.0] * _n(r)}, REASON_NO_DATA),
    Case("g_band_only", lambda r: keep_points(r, np.asarray(r["cfid"]) == 1), "classified"),
    Case("r_band_only", lambda r: keep_points(r, np.asarray(r["cfid"]) == 2), "classified"),
    Case("single_detection", lambda r: keep_points(r, np.arange(_n(r)) == _det(r)[-1]), TOO_FEW),
    Case("single_upper_limit", lambda r: keep_points(r, np.arange(_n(r)) == _lim(r)[0]), REASON_NO_DETECTION),
    # times
    Case("every_point_twice", lambda r: {c: list(r[c]) * 2 for c in COLUMNS}, "classified"),
    Case("all_at_the_same_time", lambda r: {**r, "cjd": [r["cjd"][-1]] * _n(r)}, "classified"),
    Case("reversed_order", lambda r: {c: list(r[c])[::-1] for c in COLUMNS}, "classified", lambda r: r),
    Case("shuffled_order", lambda r: {c: [r[c][j] for j in np.random.default_rng(1).permutation(_n(r))]
                                      for c in COLUMNS}, "classified", lambda r: r),
    Case("mjd_instead_of_jd", lambda r: {**r, "cjd": list(np.asarray(r["cjd"]) - 2400000.5)}, "classified",
         lambda r: r),
    # absurd magnitudes and errors
    Case("magnitude_0_one_point", lambda r: set_points(r, "cmagpsf", _mid_det(r), 0.0), "classified",
         lambda r: drop_points(r, _mid_det(r))),
    Case("magnitude_99_one_point", lambda r: set_points(r, "cmagpsf", _mid_det(r), 99.0), "classified",
         lambda r: drop_points(r, _mid_det(r))),
    Case("negative_magnitude_one_point", lambda r: set_points(r, "cmagpsf", _mid_det(r), -3.0), "classified",
         lambda r: drop_points(r, _mid_det(r))),
    Case("magnitude_0_everywhere", lambda r: {**r, "cmagpsf": [0.0] * _n(r)}, REASON_NO_DATA),
    Case("magnitude_99_everywhere", lambda r: {**r, "cmagpsf": [99.0] * _n(r)}, REASON_NO_DATA),
    Case("error_0_one_detection", lambda r: set_points(r, "csigmapsf", _mid_det(r), 0.0), "classified",
         lambda r: drop_points(r, _mid_det(r))),
    Case("negative_error_one_detection", lambda r: set_points(r, "csigmapsf", _mid_det(r), -0.1), "classified",
         lambda r: drop_points(r, _mid_det(r))),
    Case("huge_error_bright_point", lambda r: set_points(set_points(r, "cmagpsf", _mid_det(r), 12.0),
                                                         "csigmapsf", _mid_det(r), 1e30), "classified",
         lambda r: drop_points(r, _mid_det(r))),
    Case("error_0_everywhere", lambda r: {**r, "csigmapsf": [0.0] * _n(r)}, REASON_NO_DETECTION),
    Case("huge_error_everywhere", lambda r: {**r, "csigmapsf": [1e300] * _n(r)}, REASON_NO_DETECTION),
    Case("tiny_error_everywhere", lambda r: {**r, "csigmapsf": [1e-300] * _n(r)}, "classified"),
    # long histories
    Case("history_of_10000_points", _long_history, "classified"),
    Case("history_of_10000_bad_points", lambda r: {**_long_history(r), "cfid": [7.0] * (10_000 + _n(r))},
         REASON_NO_DATA),
    # wrong dtypes (classify only: a Spark column has one element type)
    Case("times_as_numeric_strings", lambda r: {**r, "cjd": [repr(float(v)) for v in r["cjd"]]}, "classified",
         lambda r: r, spark=False),
    Case("garbage_string_magnitude", lambda r: set_points(r, "cmagpsf", _mid_det(r), "bright"), "classified",
         lambda r: set_points(r, "cmagpsf", _mid_det(r), None), spark=False),
    Case("fids_as_ints", lambda r: {**r, "cfid": np.asarray(r["cfid"]).astype(np.int64)}, "classified",
         lambda r: r, spark=False),
    Case("fids_as_bools_read_as_1", lambda r: {**r, "cfid": [True] * _n(r)}, "classified",
         lambda r: {**r, "cfid": [1.0] * _n(r)}, spark=False),
    Case("nested_list_time", lambda r: set_points(r, "cjd", _mid_det(r), [2459000.5]), "classified",
         lambda r: drop_points(r, _mid_det(r)), spark=False),
    Case("dict_magnitude", lambda r: set_points(r, "cmagpsf", _mid_det(r), {"mag": 18.0}), "classified",
         lambda r: set_points(r, "cmagpsf", _mid_det(r), None), spark=False),
    Case("bytes_error", lambda r: set_points(r, "csigmapsf", _mid_det(r), b"\x00\xff"), "classified",
         lambda r: drop_points(r, _mid_det(r)), spark=False),
    Case("scalar_instead_of_array", lambda r: {**r, "cmagpsf": 18.0}, DIFFERENT_LENGTHS, spark=False),
    Case("string_instead_of_array", lambda r: {**r, "cjd": "2459000.5"}, DIFFERENT_LENGTHS, spark=False),
    Case("dict_instead_of_array", lambda r: {**r, "csigmapsf": {"a": 0.1}}, DIFFERENT_LENGTHS, spark=False),
    Case("isdiffpos_as_ints", lambda r: {**r, "cisdiffpos": [1] * _n(r)}, "classified",
         lambda r: {**r, "cisdiffpos": ["t"] * _n(r)}, spark=False),
    Case("isdiffpos_int_0_is_negative", lambda r: {**r, "cisdiffpos": [0] * _n(r)}, "classified",
         lambda r: {**r, "cisdiffpos": ["f"] * _n(r)}, spark=False),
    Case("diffmaglim_garbage_strings", lambda r: {**r, "cdiffmaglim": ["deep"] * _n(r)}, "classified",
         lambda r: {**r, "cdiffmaglim": [None] * _n(r)}, spark=False),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_named_case(case, base, good, good_alone):
    """The hostile alert between good ones: its defined outcome, and the good ones untouched."""
    hostile = case.build(base)
    probs, reasons = classify_with_reasons(frame([good[0], hostile, *good[1:]]))
    check_rows(probs, reasons)
    np.testing.assert_allclose(probs.drop(index=1).to_numpy(), good_alone, atol=1e-6, rtol=0)
    if case.outcome == "classified":
        assert reasons[1] is None
    else:
        assert reasons[1] == case.outcome
    if case.same_as is not None:
        expected, expected_reason = classify_with_reasons(frame([case.same_as(base)]))
        assert expected_reason[0] is None
        np.testing.assert_allclose(probs.iloc[1].to_numpy(), expected.iloc[0].to_numpy(), atol=1e-6, rtol=0)


def test_all_named_cases_in_one_batch(base, good, good_alone):
    """Every hostile case in one batch scores as it does alone; the good alerts too."""
    rows = [case.build(base) for case in CASES]
    probs, reasons = classify_with_reasons(frame([*good, *rows]))
    check_rows(probs, reasons)
    np.testing.assert_allclose(probs.iloc[:len(good)].to_numpy(), good_alone, atol=1e-6, rtol=0)
    for i, (case, row) in enumerate(zip(CASES, rows)):
        alone_probs, alone_reason = classify_with_reasons(frame([row]))
        assert reasons.iloc[len(good) + i] == alone_reason[0], case.id
        np.testing.assert_allclose(probs.iloc[len(good) + i].to_numpy(), alone_probs.iloc[0].to_numpy(),
                                   atol=1e-6, rtol=0, err_msg=case.id)


def test_missing_optional_columns(judged_columns):
    """Without cisdiffpos/cdiffmaglim columns: classified as if every flux were positive and no limit known."""
    full = judged_columns.iloc[:20].reset_index(drop=True)
    bare = full[["cjd", "cfid", "cmagpsf", "csigmapsf"]]
    probs, reasons = classify_with_reasons(bare)
    check_rows(probs, reasons)
    # Same numbers as the explicit equivalent: all-'t' signs, no limiting magnitudes.
    explicit = bare.copy()
    explicit["cisdiffpos"] = [["t"] * len(j) for j in bare["cjd"]]
    explicit["cdiffmaglim"] = [[None] * len(j) for j in bare["cjd"]]
    expected, expected_reasons = classify_with_reasons(explicit)
    assert reasons.equals(expected_reasons)
    np.testing.assert_allclose(probs.to_numpy(), expected.to_numpy(), atol=1e-6, equal_nan=True)
    assert reasons.isna().all()  # every real alert has a current detection: no limit is needed


def _real_files() -> list[Path]:
    """The original ZTF alert files of the shared data (not the labels beside them, such as vsx_labels.parquet)."""
    return alert_files(ZTF_FILES) if ZTF_FILES.is_dir() else []


@pytest.mark.skipif(not _real_files(), reason="../shared/data/ztf_alerts not present")
def test_both_schema_versions_from_the_original_files(sample_columns, sample_table):
    """Every original file (schemas 3.3 and 4.02, float32 or float64, int32 or int64) classifies as the sample."""
    probs_sample, reasons_sample = classify_with_reasons(sample_columns)
    candids = sample_table.column("candid").to_pylist()
    reference = {c: (probs_sample.iloc[i].to_numpy(), reasons_sample.iloc[i]) for i, c in enumerate(candids)}
    versions = Counter()
    for path in _real_files():
        table = pq.read_table(path, columns=["candid", "schemavsn", "candidate", "prv_candidates"])
        versions.update(table.column("schemavsn").to_pylist())
        probs, reasons = classify_with_reasons(alert_columns(table))
        check_rows(probs, reasons)
        for i, candid in enumerate(table.column("candid").to_pylist()):
            expected, reason = reference[candid]
            assert reasons.iloc[i] == reason, (path.name, candid)
            # The sample holds the same alerts cast to schema 3.3 types (float32 magnitudes).
            np.testing.assert_allclose(probs.iloc[i].to_numpy(), expected, atol=2e-4, err_msg=path.name)
    assert versions["3.3"] > 0 and versions["4.02"] > 0


def test_raw_alerts_without_optional_fields(sample_table, monkeypatch):
    """Raw alerts whose candidate struct lacks diffmaglim/isdiffpos/jdstarthist, and without prv_candidates."""
    import pyarrow as pa

    table = sample_table.slice(0, 30)
    candidate = table.column("candidate").combine_chunks()
    keep = ["jd", "fid", "magpsf", "sigmapsf"]
    slim = pa.StructArray.from_arrays([struct_field(candidate, k) for k in keep], names=keep)
    raw = pa.table({"candid": table.column("candid"), "candidate": slim})
    cols = alert_columns(raw)
    assert cols["cdiffmaglim"].isna().all() and cols["cisdiffpos"].isna().all()
    # Without prv_candidates each alert is its current detection alone: too little for the model.
    assert (classify_with_reasons(cols)[1] == TOO_FEW).all()
    import fink_t2.scoring.classifier

    monkeypatch.setattr(fink_t2.scoring.classifier, "MIN_DETECTIONS", 1)  # the same alerts, judged anyway
    probs, reasons = classify_with_reasons(cols)
    check_rows(probs, reasons)
    assert reasons.isna().all()  # every current alert is a detection
    current_only = frame([{c: [table.column("candidate")[i].as_py()[c[1:]]] for c in COLUMNS[:4]}
                          for i in range(table.num_rows)])
    expected, _ = classify_with_reasons(current_only)
    np.testing.assert_allclose(probs.to_numpy(), expected.to_numpy(), atol=1e-6)
    with pytest.raises(ValueError, match=r"lacks \['magpsf'\]"):
        alert_columns(pa.table({"candidate": pa.StructArray.from_arrays(
            [struct_field(candidate, k) for k in ("jd", "fid", "sigmapsf")], names=["jd", "fid", "sigmapsf"])}))


# --------------------------------------------------------------------------- property tests

#: Values that make a point unusable wherever they appear in cjd or cfid (the point is dropped).
UNUSABLE = [None, math.nan, math.inf, -math.inf, "abc", "", {"jd": 1}, [1.0, 2.0], b"\x00"]
UNUSABLE_FID = UNUSABLE + [0, 3, 99, -1, 1.5, 2.0000001]
#: Values that make a detection's error unusable (the detection is dropped).
UNUSABLE_SIGMA = UNUSABLE + [0.0, -0.1, 1.0, 1e30, 1e308]
#: Anything at all, for invariants-only mutations.
ANYTHING = st.one_of(
    st.sampled_from(UNUSABLE_FID + UNUSABLE_SIGMA + [True, False, "18.5", "t", "f", 0.0, 99.0, -5.0, 2**70]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.text(max_size=4),
)
CELLS = st.one_of(st.sampled_from([None, [], 18.0, "abc", {"a": 1}, b"xy", np.array([]), np.zeros((2, 2))]),
                  st.lists(ANYTHING, max_size=6))

MUTATIONS = ("none", "drop_points", "garbage_values", "garbage_cell", "permute", "shift_time", "random_alert")


def _mutate(data, row: dict, kind: str) -> tuple[dict, dict | None]:
    """A hostile version of ``row`` and, where defined, the alert it must score exactly like."""
    n = _n(row)
    points = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=min(n, 5), unique=True))
    if kind == "drop_points":
        hostile = as_lists(row)
        for p in points:
            det = np.isfinite(row["cmagpsf"][p])
            column = data.draw(st.sampled_from(["cjd", "cfid", "csigmapsf"] if det else ["cjd", "cfid"]))
            pool = {"cjd": UNUSABLE, "cfid": UNUSABLE_FID, "csigmapsf": UNUSABLE_SIGMA}[column]
            hostile[column][p] = data.draw(st.sampled_from(pool))
        return hostile, drop_points(row, points)
    if kind == "garbage_values":
        hostile = as_lists(row)
        for p in points:
            hostile[data.draw(st.sampled_from(COLUMNS))][p] = data.draw(ANYTHING)
        return hostile, None
    if kind == "garbage_cell":
        return {**row, data.draw(st.sampled_from(COLUMNS)): data.draw(CELLS)}, None
    if kind == "permute":
        order = data.draw(st.permutations(range(n)))
        return {c: [row[c][j] for j in order] for c in COLUMNS}, row
    if kind == "shift_time":
        shift = data.draw(st.sampled_from([-2400000.5, -2459000.0, 1e4, 0.5]))
        return {**row, "cjd": list(np.asarray(row["cjd"], dtype=float) + shift)}, row
    if kind == "random_alert":
        size = data.draw(st.integers(0, 12))
        return {c: data.draw(st.lists(ANYTHING, min_size=size, max_size=size)) for c in COLUMNS}, None
    return row, row


@pytest.fixture(scope="module")
def sample_scores(sample_columns):
    """Each sample alert's reference probabilities and reason (scored in a batch of good alerts), from the
    light-curve columns the hostile rows carry (no sky context: tests/test_sky.py attacks that)."""
    probs, reasons = classify_with_reasons(sample_columns[list(COLUMNS)])
    return probs.to_numpy(), reasons.to_numpy()


@pytest.fixture(scope="module")
def hypothesis_counts():
    yield COUNTS
    report = os.environ.get("FINK_T2_HYPOTHESIS_REPORT")
    if report:
        Path(report).write_text(json.dumps(dict(COUNTS), indent=2, sort_keys=True) + "\n", encoding="utf-8")


@settings(max_examples=N_EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_hostile_batches(data, alerts, sample_scores, hypothesis_counts):
    """Random batches mixing real and hostile alerts: the contract holds, good and equivalent rows match."""
    ref_probs, ref_reasons = sample_scores
    size = data.draw(st.integers(1, 8), label="alerts")
    picks = data.draw(st.lists(st.integers(0, len(alerts) - 1), min_size=size, max_size=size), label="sample rows")
    kinds = data.draw(st.lists(st.sampled_from(MUTATIONS), min_size=size, max_size=size), label="mutations")
    rows, expected = [], []
    for pick, kind in zip(picks, kinds):
        hostile, same = _mutate(data, alerts[pick], kind)
        rows.append(hostile)
        expected.append(same)
    probs, reasons = classify_with_reasons(frame(rows))
    check_rows(probs, reasons)
    COUNTS["examples"] += 1
    COUNTS["alerts"] += size
    COUNTS["hostile_alerts"] += sum(kind != "none" for kind in kinds)
    COUNTS.update(f"mutation:{kind}" for kind in kinds)
    COUNTS.update(f"outcome:{'classified' if r is None else r}" for r in reasons)
    for i, (pick, kind) in enumerate(zip(picks, kinds)):
        if kind == "none":  # a good alert next to hostile ones scores as in a clean batch
            assert reasons.iloc[i] == ref_reasons[pick]
            np.testing.assert_allclose(probs.iloc[i].to_numpy(), ref_probs[pick], atol=1e-6, rtol=0,
                                       equal_nan=True)
    checked = [i for i, same in enumerate(expected) if same is not None and kinds[i] != "none"]
    if checked:
        want, want_reasons = classify_with_reasons(frame([expected[i] for i in checked]))
        for j, i in enumerate(checked):
            assert reasons.iloc[i] == want_reasons.iloc[j], kinds[i]
            # An equivalent alert (e.g. its points permuted) reaches the GP solve in another point order
            # and batch: float32 round-off moves probabilities by up to ~2e-5 (seen: 1.5e-5), not more.
            np.testing.assert_allclose(probs.iloc[i].to_numpy(), want.iloc[j].to_numpy(), atol=5e-5, rtol=0,
                                       equal_nan=True, err_msg=kinds[i])


def test_property_runs_were_many(hypothesis_counts):
    """Runs after the property test: it really exercised many hostile alerts (printed for the docs)."""
    if not COUNTS["examples"]:
        pytest.skip("the property test did not run in this session")
    print(f"\nhypothesis: {dict(COUNTS)}")
    assert COUNTS["examples"] >= min(N_EXAMPLES, 100)
    assert COUNTS["hostile_alerts"] >= COUNTS["examples"]


# --------------------------------------------------------------------------- the same through the Spark UDF

SPARK_SCHEMA = ("id long, cjd array<double>, cfid array<double>, cmagpsf array<double>, csigmapsf array<double>, "
                "cdiffmaglim array<double>, cisdiffpos array<string>")


def _spark_row(i: int, row: dict) -> tuple:
    """One alert as a row of SPARK_SCHEMA (numbers as floats, nulls kept)."""
    def numbers(values):
        return None if values is None else [None if v is None else float(v) for v in values]

    def strings(values):
        return None if values is None else [None if v is None else str(v) for v in values]

    return (i, *(numbers(row.get(c)) for c in ("cjd", "cfid", "cmagpsf", "csigmapsf", "cdiffmaglim")),
            strings(row.get("cisdiffpos")))


def _spark_t2(spark, rows: list[dict]) -> pd.DataFrame:
    """The t2 struct of each row, scored by the Spark UDF in one job, in row order."""
    from fink_t2.spark.processor import t2

    df = spark.createDataFrame([_spark_row(i, r) for i, r in enumerate(rows)], SPARK_SCHEMA)
    out = df.select("id", t2("cjd", "cfid", "cmagpsf", "csigmapsf", "cdiffmaglim", "cisdiffpos").alias("t2"))
    return out.toPandas().sort_values("id").set_index("id")


def assert_spark_matches(t2_column: pd.Series, probs: pd.DataFrame, reasons: pd.Series, label: str = "") -> None:
    """Spark's t2 structs carry the same outcome as classify: same reasons, same probabilities (float32)."""
    assert len(t2_column) == len(probs)
    for i, value in enumerate(t2_column):
        where = f"{label} row {i}"
        assert value["reason"] == reasons.iloc[i], where
        if reasons.iloc[i] is None:
            as_map = t2_probabilities(value)
            got = np.array([as_map[c] for c in CLASSES])
            np.testing.assert_allclose(got, probs.iloc[i].to_numpy(), atol=1e-6, rtol=0, err_msg=where)
            assert abs(got.sum() - 1.0) < 1e-5 and value["top_class"] == probs.columns[np.argmax(got)]
        else:
            assert t2_probabilities(value) is None and value["top_class"] is None, where


@pytest.mark.spark
def test_named_cases_through_spark(spark, base, good, good_alone):
    """Every case whose values fit Spark's array<double>/array<string> columns, in one Spark job."""
    cases = [c for c in CASES if c.spark]
    rows = [*good, *(c.build(base) for c in cases)]
    probs, reasons = classify_with_reasons(frame(rows))
    for case, reason in zip(cases, reasons.iloc[len(good):]):
        assert reason == (None if case.outcome == "classified" else case.outcome), case.id
    assert_spark_matches(_spark_t2(spark, rows)["t2"], probs, reasons, "named")
    np.testing.assert_allclose(probs.iloc[:len(good)].to_numpy(), good_alone, atol=1e-6, rtol=0)


@pytest.mark.spark
def test_wrong_element_types_through_spark(spark, base):
    """Columns of other Spark types (strings, ints, longs, bools, nested arrays, structs) reach the UDF as such."""
    from pyspark.sql import functions as F

    from fink_t2.spark.processor import t2

    n = _n(base)
    row = {
        "cjd": [float(v) for v in base["cjd"]], "cfid": [float(v) for v in base["cfid"]],
        "cmagpsf": [None if math.isnan(v) else float(v) for v in base["cmagpsf"]],
        "csigmapsf": [None if math.isnan(v) else float(v) for v in base["csigmapsf"]],
        "cdiffmaglim": [float(v) for v in base["cdiffmaglim"]], "cisdiffpos": list(base["cisdiffpos"]),
    }
    variants = {  # name -> (Spark expression of the cmagpsf/cjd/... replacement, pandas equivalent for classify)
        "cjd_as_strings": ("cjd", F.expr("transform(cjd, x -> CAST(x AS STRING))"), [repr(v) for v in row["cjd"]]),
        "cjd_as_longs": ("cjd", F.expr("transform(cjd, x -> CAST(x AS BIGINT))"), [int(v) for v in row["cjd"]]),
        "cfid_as_ints": ("cfid", F.expr("transform(cfid, x -> CAST(x AS INT))"), [int(v) for v in row["cfid"]]),
        "cfid_as_bools": ("cfid", F.expr("transform(cfid, x -> true)"), [True] * n),
        "cmagpsf_nested": ("cmagpsf", F.expr("transform(cmagpsf, x -> array(x))"), [[v] for v in row["cmagpsf"]]),
        "cmagpsf_structs": ("cmagpsf", F.expr("transform(cmagpsf, x -> named_struct('mag', x))"),
                            [{"mag": v} for v in row["cmagpsf"]]),
        "cisdiffpos_ints": ("cisdiffpos", F.expr("transform(cisdiffpos, x -> CASE WHEN x = 't' THEN 1 ELSE 0 END)"),
                            [1 if v == "t" else 0 for v in row["cisdiffpos"]]),
    }
    df = spark.createDataFrame([_spark_row(0, row)], SPARK_SCHEMA)
    order = ("cjd", "cfid", "cmagpsf", "csigmapsf", "cdiffmaglim", "cisdiffpos")
    selected = []
    for name, (column, expression, _) in variants.items():
        args = [expression if c == column else F.col(c) for c in order]
        selected.append(t2(*args).alias(name))
    out = df.select(*selected).toPandas()
    rows = [{**row, column: values} for column, _, values in variants.values()]
    probs, reasons = classify_with_reasons(frame(rows))
    check_rows(probs, reasons)
    assert_spark_matches(pd.Series([out.at[0, name] for name in variants]), probs, reasons, "dtypes")
    outcome = dict(zip(variants, reasons))
    assert outcome["cjd_as_strings"] is None and outcome["cfid_as_ints"] is None
    assert outcome["cfid_as_bools"] is None and outcome["cisdiffpos_ints"] is None
    assert outcome["cmagpsf_nested"] == outcome["cmagpsf_structs"] == REASON_NO_DETECTION


def _random_hostile_rows(alerts: list[dict], n_rows: int, seed: int) -> tuple[list[dict], list[int | None]]:
    """Sample alerts, most of them damaged with values Spark columns can hold; per row, the sample index of
    an untouched alert (None if damaged)."""
    rng = np.random.default_rng(seed)
    bad_numbers = [None, math.nan, math.inf, -math.inf, 0.0, -1.0, 99.0, 3.0, 1e30, -1e300]
    rows, untouched = [], []
    for _ in range(n_rows):
        pick = int(rng.integers(len(alerts)))
        row = as_lists(alerts[pick])
        kind = int(rng.integers(6))
        n = len(row["cjd"])
        if kind == 1:  # bad values at random points of random columns
            for _ in range(int(rng.integers(1, 6))):
                column = ("cjd", "cfid", "cmagpsf", "csigmapsf", "cdiffmaglim")[int(rng.integers(5))]
                row[column][int(rng.integers(n))] = bad_numbers[int(rng.integers(len(bad_numbers)))]
        elif kind == 2:  # a null, empty or shortened array
            column = COLUMNS[int(rng.integers(len(COLUMNS)))]
            row[column] = (None, [], row[column][:-1])[int(rng.integers(3))]
        elif kind == 3:  # shuffled, with duplicated points
            order = np.concatenate([rng.permutation(n), rng.integers(0, n, 3)])
            row = {c: [row[c][j] for j in order] for c in COLUMNS}
        elif kind == 4:  # one band only, or one point only
            keep = (np.asarray(row["cfid"]) == float(rng.integers(1, 3))) if rng.random() < 0.5 else \
                np.arange(n) == n - 1
            row = keep_points(row, keep)
        elif kind == 5:  # absurd magnitudes and errors everywhere
            row["cmagpsf"] = list(rng.choice([0.0, 99.0, -5.0, 18.0], n))
            row["csigmapsf"] = list(rng.choice([0.0, -0.1, 1e30, 0.1], n))
        rows.append(row)
        untouched.append(pick if kind == 0 else None)
    return rows, untouched


@pytest.mark.spark
def test_random_hostile_frame_through_spark(spark, alerts, sample_scores):
    """400 randomly damaged alerts in one Spark job: same outcome as classify; untouched alerts as alone."""
    rows, untouched = _random_hostile_rows(alerts, 400, seed=5)
    probs, reasons = classify_with_reasons(frame(rows))
    check_rows(probs, reasons)
    assert 0 < reasons.isna().sum() < len(rows)
    assert_spark_matches(_spark_t2(spark, rows)["t2"], probs, reasons, "random")
    # Untouched alerts score as the same alert in a clean batch.
    ref_probs, ref_reasons = sample_scores
    assert sum(j is not None for j in untouched) > 30
    for i, j in enumerate(untouched):
        if j is None:
            continue
        assert reasons.iloc[i] == ref_reasons[j]
        np.testing.assert_allclose(probs.iloc[i].to_numpy(), ref_probs[j], atol=1e-6, rtol=0, equal_nan=True)


@pytest.mark.spark
@pytest.mark.skipif(not _real_files(), reason="../shared/data/ztf_alerts not present")
def test_schema_versions_and_missing_fields_through_spark(spark):
    """apply_t2 on original raw files of schema 3.3 and 4.02, and on alerts lacking every optional field."""
    from pyspark.sql import functions as F

    from fink_t2.spark.processor import apply_t2

    names = ["fink_science_alerts_20190903.parquet", "fink_science_hostless_202404.parquet",
             "fink_science_superluminous.parquet"]
    frames, expected = [], []
    for name in names:
        path = ZTF_FILES / name
        raw = spark.read.parquet(str(path))
        frames.append(apply_t2(raw, cuts=Cuts(enabled=False)).select("candid", F.lit(name).alias("source"), "t2"))
        expected.append((name, pq.read_table(path, columns=["candid", "candidate", "prv_candidates"])))
    # The first file again, stripped to jd/fid/magpsf/sigmapsf: no prv_candidates, no optional fields.
    raw = spark.read.parquet(str(ZTF_FILES / names[0]))
    slim = raw.select("candid", F.struct(*(F.col(f"candidate.{f}").alias(f)
                                           for f in ("jd", "fid", "magpsf", "sigmapsf"))).alias("candidate"))
    frames.append(apply_t2(slim, cuts=Cuts(enabled=False)).select("candid", F.lit("slim").alias("source"), "t2"))
    union = frames[0]
    for other in frames[1:]:
        union = union.unionByName(other)
    out = union.toPandas()
    table = expected[0][1]
    current = table.column("candidate").to_pylist()
    slim_rows = frame([{f"c{k}": [c[k]] for k in ("jd", "fid", "magpsf", "sigmapsf")} for c in current])
    expected.append(("slim", (table.column("candid").to_pylist(), slim_rows)))
    versions = set()
    for name, source in expected:
        got = out[out.source == name].set_index("candid")
        if name == "slim":
            candids, columns = source
        else:
            candids, columns = source.column("candid").to_pylist(), alert_columns(source)
            versions.update(pq.read_table(ZTF_FILES / name, columns=["schemavsn"]).column(0).to_pylist())
        probs, reasons = classify_with_reasons(columns)
        check_rows(probs, reasons)
        assert len(got) == len(candids)
        assert_spark_matches(got.loc[candids, "t2"], probs, reasons, name)
    assert {"3.3", "4.02"} <= versions
