"""The Spark science module on real alerts: one column, same numbers as classify, model loaded once per worker."""

from __future__ import annotations

import numpy as np
import pytest

from fink_t2 import CLASSES
from fink_t2.scoring import MIN_DETECTIONS, Cuts, classify_with_reasons, reason_too_few, t2_probabilities
from fink_t2.scoring.classes import CLASS_FIELDS

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def raw(spark, sample_path):
    return spark.read.parquet(str(sample_path))


def test_apply_t2_adds_one_column_matching_classify(raw, sample_columns, sample_table):
    from fink_t2.spark.processor import T2_TYPE, apply_t2

    scored = apply_t2(raw, cuts=Cuts(enabled=False))
    assert scored.columns == raw.columns + ["t2"]
    assert scored.schema["t2"].dataType == T2_TYPE
    rows = scored.select("candid", "t2").toPandas().set_index("candid")
    assert len(rows) == sample_table.num_rows
    probs, reasons = classify_with_reasons(sample_columns)
    probs.index = reasons.index = sample_table.column("candid").to_pylist()
    rows = rows.loc[probs.index]
    for candid, t2 in rows["t2"].items():
        if reasons[candid] is None:
            as_map = t2_probabilities(t2)
            fields = list(t2.asDict() if hasattr(t2, "asDict") else t2)  # Spark 3.5 gives Rows, 4.x dicts
            assert fields[:len(CLASSES)] == list(CLASS_FIELDS)  # one field per class, in CLASSES order
            np.testing.assert_allclose([as_map[c] for c in CLASSES], probs.loc[candid].to_numpy(), atol=1e-6)
            assert t2["top_class"] == probs.loc[candid].idxmax() and t2["reason"] is None
        else:
            assert t2_probabilities(t2) is None and t2["reason"] == reasons[candid]
            assert all(t2[c] is None for c in CLASS_FIELDS)  # null, not NaN: no made-up numbers


def test_t2_on_fink_concatenated_columns_and_declines(spark, raw):
    from pyspark.sql import functions as F

    from fink_t2.spark.processor import history_column, t2

    df = raw.select(
        "candid",
        history_column(raw, "jd").alias("cjd"),
        history_column(raw, "fid").alias("cfid"),
        history_column(raw, "magpsf").alias("cmagpsf"),
        history_column(raw, "sigmapsf").alias("csigmapsf"),
    ).limit(20)
    # Some alerts lose every magnitude: declined with a reason, the others still classified.
    no_mags = F.expr("transform(cmagpsf, x -> CAST(NULL AS DOUBLE))")
    df = df.withColumn("cmagpsf", F.when(F.col("candid") % 3 == 0, no_mags).otherwise(F.col("cmagpsf")))
    out = df.withColumn("t2", t2("cjd", "cfid", "cmagpsf", "csigmapsf")).select("candid", "t2").toPandas()
    assert len(out) == 20 and 0 < (out.candid % 3 == 0).sum() < 20
    classified = 0
    for candid, value in zip(out["candid"], out["t2"]):
        if candid % 3 == 0:
            assert t2_probabilities(value) is None and value["reason"]
        elif value["reason"] == reason_too_few(MIN_DETECTIONS):  # a lone detection: declined too
            assert t2_probabilities(value) is None
        else:
            total = sum(t2_probabilities(value).values())
            assert abs(total - 1) < 1e-5 and value["reason"] is None
            classified += 1
    assert classified > 0


def test_history_without_prv_candidates_keeps_the_current_alert(spark, raw):
    from pyspark.sql import functions as F

    from fink_t2.spark.processor import history_column

    row = (raw.limit(1).withColumn("prv_candidates", F.lit(None).cast(raw.schema["prv_candidates"].dataType))
           .select(history_column(raw, "jd").alias("cjd"), F.col("candidate.jd").alias("jd")).first())
    assert row["cjd"] == [row["jd"]]


def test_cuts_in_spark(raw):
    from pyspark.sql import functions as F

    from fink_t2.spark.processor import apply_t2

    enriched = (raw.withColumn("roid", F.when(F.col("candid") % 5 == 0, 3).otherwise(0))
                .withColumn("cdsxmatch", F.when(F.col("candid") % 5 == 1, F.lit("RRLyr")).otherwise(F.lit("Unknown"))))
    out = apply_t2(enriched, cuts=Cuts(enabled=True)).select("candid", "t2.*").toPandas()
    asteroid = out[out.candid % 5 == 0]
    star = out[out.candid % 5 == 1]
    assert (asteroid.reason == "cut: known solar-system object (roid=3)").all()
    assert (star.reason == "cut: cdsxmatch not compatible with an extragalactic host").all()
    assert asteroid.SNIa.isna().all() and star.SNIa.isna().all()
    assert out.top_class[out.reason.isna()].notna().all()
    cut = out.reason.fillna("").str.startswith("cut: ")
    probabilities = out[list(CLASS_FIELDS)]
    assert probabilities[cut].isna().all().all() and probabilities[~cut].notna().all().all()
    # apply_t2's default is Fink's selection (FINK_CUTS): the same outcome without naming the cuts.
    default = apply_t2(enriched).select("candid", "t2.reason").toPandas()
    assert default.set_index("candid").reason.equals(out.set_index("candid").reason)


def test_cuts_need_their_columns_before_reading(raw):
    from fink_t2.spark.processor import apply_t2

    with pytest.raises(ValueError, match=r"\['roid', 'cdsxmatch'\]"):
        apply_t2(raw, cuts=Cuts(enabled=True))
    with pytest.raises(ValueError, match=r"\['roid', 'cdsxmatch'\]") as error:  # the default is Fink's cuts
        apply_t2(raw)
    # It speaks to a Python caller: the argument to pass, not a configuration file to edit.
    assert "cuts=Cuts(" in str(error.value) and "configuration" not in str(error.value)
    # Without the cross-match cuts, raw alerts are enough.
    apply_t2(raw, cuts=Cuts(enabled=True, exclude_solar_system=False, extragalactic_xmatch=False))


def test_model_loaded_once_per_worker_across_batches(spark, raw):
    from pyspark.sql import functions as F

    from fink_t2.spark.processor import apply_t2, worker_stats

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "16")
    try:
        scored = apply_t2(raw.repartition(3), cuts=Cuts(enabled=False)).select("candid", "t2")
        assert scored.count() == raw.count()
        assert scored.where(F.col("t2").isNull()).count() == 0
        scored.collect()
        stats = raw.limit(5).select(worker_stats(F.col("candid")).alias("s")).toPandas()["s"]
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    loads = {}
    for text in stats:
        pid, count = (int(v) for v in text.split(":"))
        loads[pid] = count
    # 329 alerts in Arrow batches of 16 (at least 21 batches) went through these worker processes (reused,
    # fewer than the batches): each loaded the model once.
    assert loads and len(loads) < 21
    assert set(loads.values()) == {1}, loads


def test_arrow_and_pandas_flavours_give_the_same_column(raw):
    from fink_t2.spark.processor import arrow_udfs_available, make_t2_udf, t2_input_columns

    if not arrow_udfs_available():
        pytest.skip("this Spark has no arrow_udf (Spark < 4.1): only the pandas flavour exists")
    columns = t2_input_columns(raw)
    arrow = raw.select(make_t2_udf(engine="arrow")(*columns).alias("t2")).toPandas()["t2"]
    pandas = raw.select(make_t2_udf(engine="pandas")(*columns).alias("t2")).toPandas()["t2"]
    assert len(arrow) == len(pandas) > 300
    for a, p in zip(arrow, pandas):
        assert a["top_class"] == p["top_class"] and a["reason"] == p["reason"]
        if t2_probabilities(p) is None:
            assert t2_probabilities(a) is None and all(a[c] is None and p[c] is None for c in CLASS_FIELDS)
        else:
            a_probs, p_probs = t2_probabilities(a), t2_probabilities(p)
            assert a_probs.keys() == p_probs.keys()
            assert max(abs(a_probs[k] - p_probs[k]) for k in a_probs) < 1e-6
