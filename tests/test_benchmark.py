"""Smoke test of ``fink-t2 bench``: a few thousand alerts, one repeat, t2 + no-op + classify.

Keeps the benchmark working in the plain environment (no fink-science, no
george): the run must produce a complete JSON report with positive rates
and ratios that agree with the seconds. The real measurement is
``docs/performance.md``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fink_t2.bench.harness import ARROW_BATCH_FINK_PERF, run_benchmark
from fink_t2.bench.inputs import build_input, load_real_alerts, replicate
from fink_t2.bench.modules import MODULES as BENCH_MODULES
from fink_t2.bench.report import results_table, write_report

ALERTS = 3_000
MODULES = ("noop", "t2", "t2_onsky", "t2_io_only", "classify")


def test_replicated_input_has_unique_candid_and_fink_columns(tmp_path: Path) -> None:
    real, facts = load_real_alerts()
    assert facts["real_alerts"] == real.num_rows > 300
    table = replicate(real, 1_000)
    assert table.num_rows == 1_000
    assert len(set(table.column("candid").to_pylist())) == 1_000
    for name in ("cjd", "cfid", "cmagpsf", "csigmapsf", "cdiffmaglim", "cisdiffpos", "jdstarthist", "roid",
                 "cdsxmatch"):
        assert name in table.column_names
    assert table.column("cdsxmatch").null_count == 0
    # History first, current detection last (fink-utils concat_col).
    row = table.slice(0, 1).to_pylist()[0]
    assert row["cjd"][-1] == pytest.approx(row["jd"])
    assert row["cmagpsf"][-1] == pytest.approx(row["magpsf"])
    path, _ = build_input(1_000, tmp_path)
    again, _ = build_input(1_000, tmp_path)
    assert path == again and path.exists()


def test_unknown_module_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown module"):
        run_benchmark(alerts=10, modules=("t2", "nope"))


@pytest.mark.spark
def test_smoke_run_report_is_complete_and_consistent(spark, tmp_path: Path) -> None:
    report = run_benchmark(alerts=ALERTS, slow_alerts=200, repeats=1, modules=MODULES, spark=spark,
                                 workdir=tmp_path, profile_alerts=1_000, log=lambda message: None)
    # The report survives JSON, as --json writes it.
    report = json.loads(json.dumps(report, default=float))
    assert set(report["modules"]) == set(MODULES)
    cores = report["config"]["cores"]
    assert cores >= 1
    for name, module in report["modules"].items():
        assert module["alerts"] == ALERTS, name
        seconds = module["seconds"]
        assert 0 < seconds["min"] <= seconds["median"] <= seconds["max"], name
        module_cores = 1 if name == "classify" else cores
        rate = module["alerts_per_s_per_core"]
        assert rate > 0 and math.isclose(rate, ALERTS / seconds["median"] / module_cores, rel_tol=1e-9), name
        if module["alerts_per_cpu_s"] is not None:  # Linux: CPU time of the driver, JVM and workers
            assert module["alerts_per_cpu_s"] > 0 and len(module["cpu_seconds"]) == 1, name
        # Ratio to the no-op ceiling is the ratio of the rates, hence of the per-core seconds.
        noop = report["modules"]["noop"]
        expected = (noop["seconds"]["median"] * noop["cores"]) / (seconds["median"] * module_cores)
        assert math.isclose(module["ratio_to"]["noop"], expected, rel_tol=1e-9), name
    assert report["modules"]["noop"]["ratio_to"]["noop"] == pytest.approx(1.0)
    # Every replicated real alert the model judges (>= MIN_DETECTIONS detections) is classified, as by classify.
    import pyarrow.parquet as pq

    from fink_t2.scoring import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, classify_with_reasons

    path, _ = build_input(ALERTS, tmp_path)  # the cached input the run scored
    columns = pq.read_table(path, columns=[*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]).to_pandas()
    judged = int(classify_with_reasons(columns)[1].isna().sum())
    assert report["modules"]["t2"]["classified"] == judged > ALERTS // 2
    assert 0 < report["modules"]["t2_onsky"]["classified"] < ALERTS  # the cuts reject some
    split = report["modules"]["classify"]["split"]
    assert split["preparation_s"] > 0 and split["model_s"] > 0
    # No Fink-deployed module in this run: no ratio to it, and its target is "not measured".
    assert "fink_deployed" not in report["modules"]["t2"]["ratio_to"]
    targets = {t["target"]: t for t in report["targets"]}
    assert any(t["met"] is None for t in targets.values())
    worker = report["worker"]
    assert worker["first_alert_classified"] and worker["tensorflow_imported"] is False
    assert 0 < worker["maxrss_mb_first_alert"] < 2_000 and worker["first_alert_s"] > 0
    assert report["profile"]["alerts"] == 1_000 and report["profile"]["alerts_per_s"] > 0
    assert report["lsst"]["modules"]["t2"]["core_hours_per_night"] > 0
    assert report["machine"]["versions"]["pyspark"]
    assert report["model"]["sha256"] and len(report["model"]["input_shape"]) == 2
    # The table and the markdown report render from the JSON alone.
    assert "t2, every alert" in results_table(report)
    out = write_report(report, tmp_path / "performance.md")
    text = out.read_text(encoding="utf-8")
    assert "## Results" in text
    bound = report["modules"]["t2_io_only"]["ratio_to"]["noop"]
    assert report["modules"]["t2_io_only"]["classified"] == ALERTS
    assert f"reaches {bound:.2f} of the no-op ceiling" in text  # the I/O bound is stated with its number
    # The caller's session keeps its own settings.
    assert spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch") != str(ARROW_BATCH_FINK_PERF)


def test_cli_lists_modules(capsys) -> None:
    from fink_t2.tools.cli import main

    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    for name in BENCH_MODULES:
        assert name in out
    assert "not on PyPI" in out


@pytest.mark.spark
def test_ceiling_bound_variants_carry_what_they_claim(spark, tmp_path: Path) -> None:
    """``benchmarks/ceiling_bound.py``: its zero-work UDFs return the types they price, and its
    ``t2_array`` carries exactly t2's probabilities (same order, null where t2 declines), so
    the array-vs-struct comparison it reports is like for like."""
    import importlib.util

    import numpy as np
    from pyspark.sql import functions as F

    from fink_t2.scoring.classes import CLASS_FIELDS
    from fink_t2.spark.processor import arrow_udfs_available

    if not arrow_udfs_available():
        pytest.skip("the ceiling-bound script needs Spark >= 4.1 (arrow_udf)")
    spec = importlib.util.spec_from_file_location(
        "ceiling_bound", Path(__file__).resolve().parents[1] / "benchmarks" / "ceiling_bound.py")
    ceiling = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ceiling)
    path, _ = build_input(800, tmp_path)
    df = spark.read.parquet(str(path)).select(*ceiling.LIGHT_CURVE_COLUMNS)
    # Declined alerts too: one alert with no magnitudes at all.
    df = df.union(df.limit(1).withColumn("cmagpsf", F.array_repeat(F.lit(None).cast("double"), 3)))
    columns = ceiling._columns(df, None)
    assert set(columns) >= {"noop", "io_6_t2", "io_6_array", "t2_array", "t2"}
    out = df.select(*[column.alias(name) for name, column in columns.items()]).collect()
    assert len(out) == 801
    declined = 0
    for row in out:
        assert row["noop"] == 0.0 and row["io_4_double"] == 0.0 and row["io_6_double"] == 0.0
        assert row["io_6_array"] == pytest.approx([1 / 14] * 14)
        assert [row["io_6_t2"][name] for name in CLASS_FIELDS] == pytest.approx([1 / 14] * 14)
        t2 = row["t2"]
        if t2["top_class"] is None:
            declined += 1
            assert row["t2_array"] is None
        else:
            assert np.allclose(row["t2_array"], [t2[name] for name in CLASS_FIELDS], atol=1e-7)
    assert declined >= 1
