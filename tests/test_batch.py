"""Offline scoring: input discovery, clear input errors, the pandas and Spark engines, the CLI."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fink_t2.scoring import classify_with_reasons, t2_arrow_type, t2_probabilities
from fink_t2.scoring.alerts import alert_columns
from fink_t2.scoring.classes import CLASS_FIELDS, CLASSES
from fink_t2.scoring.inputs import InputError, find_parquet, read_alert_schemas
from fink_t2.tools.batch import read_scored, score_pandas, summarize
from fink_t2.tools.cli import main as cli_main


def _partitioned(table, root):
    """The sample as Fink's lake: year=/month=/day= directories, plus Spark bookkeeping files."""
    half = table.num_rows // 2
    for i, (day, part) in enumerate((("01", table.slice(0, half)), ("02", table.slice(half)))):
        folder = root / "year=2024" / "month=04" / f"day={day}"
        folder.mkdir(parents=True)
        pq.write_table(part, folder / f"part-{i}.parquet")
    (root / "_SUCCESS").write_text("")
    (root / "_spark_metadata").mkdir()
    (root / "_spark_metadata" / "0").write_text("v1")
    return root


def test_find_parquet_files_directories_partitions(sample_path, sample_table, tmp_path):
    assert find_parquet([sample_path]) == [sample_path]
    lake = _partitioned(sample_table, tmp_path / "lake")
    files = find_parquet([lake])
    assert len(files) == 2 and all("day=" in str(f) for f in files)


def test_input_errors_are_clear(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no parquet file found under .*empty"):
        find_parquet([tmp_path / "empty"])
    with pytest.raises(InputError, match="input not found: .*absent"):
        find_parquet([tmp_path / "absent"])
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"this is not parquet" * 10)
    with pytest.raises(InputError, match="cannot read parquet file .*junk.parquet"):
        read_alert_schemas([junk])
    assert cli_main(["score", str(junk), "--engine", "pandas", "--output", str(tmp_path / "o.parquet")]) == 2


def test_alert_columns_history_first_current_last(sample_table):
    cols = alert_columns(sample_table.slice(0, 20))
    for i in range(20):
        candidate = sample_table.column("candidate")[i].as_py()
        history = sample_table.column("prv_candidates")[i].as_py() or []
        assert cols.at[i, "cjd"][-1] == candidate["jd"]
        assert len(cols.at[i, "cjd"]) == len(history) + 1 == len(cols.at[i, "cisdiffpos"])
        assert list(cols.at[i, "cjd"][:-1]) == [h["jd"] for h in history]
        assert cols.at[i, "cfid"][-1] == candidate["fid"]


def test_pandas_engine_keeps_columns_and_adds_t2(sample_path, sample_table, sample_columns, tmp_path):
    out = tmp_path / "scored.parquet"
    table = score_pandas(sample_path, out, progress=False)
    written = pq.read_table(out)
    assert written.column_names == sample_table.column_names + ["t2"]
    assert written.schema.field("t2").type == t2_arrow_type()
    assert written.num_rows == sample_table.num_rows and table.num_rows == written.num_rows
    probs, reasons = classify_with_reasons(sample_columns)
    t2 = written.column("t2").to_pylist()
    for i in range(0, len(t2), 17):
        if reasons.iloc[i] is None:
            values = t2_probabilities(t2[i])
            np.testing.assert_allclose([values[c] for c in CLASSES], probs.iloc[i].to_numpy(), atol=1e-6)
    with pytest.raises(InputError, match="already exists"):
        score_pandas(sample_path, out, progress=False)


def test_existing_t2_column_is_replaced(sample_table, tmp_path):
    old = sample_table.slice(0, 10)
    old = old.append_column("t2", pa.array([[("SNIa", 0.0)]] * 10, type=pa.map_(pa.string(), pa.float32())))
    pq.write_table(old, tmp_path / "old.parquet")
    table = score_pandas(tmp_path / "old.parquet", None, progress=False)
    assert table.schema.field("t2").type == t2_arrow_type()
    assert table.column_names.count("t2") == 1


def test_cli_summary(sample_path, capsys):
    assert cli_main(["score", str(sample_path), "--engine", "pandas", "--summary", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert f"{pq.read_metadata(sample_path).num_rows} alerts:" in text
    assert "Top class" in text and "Examples" in text
    assert cli_main(["score", str(sample_path)]) == 2  # spark needs --output


def test_summary_of_declined():
    import pandas as pd

    pdf = pd.DataFrame({"objectId": ["a", "b"], "candid": [1, 2], "t2": [
        {**{c: 0.0 for c in CLASS_FIELDS}, "SNIa": 0.9, "KN": 0.1, "top_class": "SNIa", "reason": None},
        {**{c: None for c in CLASS_FIELDS}, "top_class": None, "reason": "no observations"}]})
    text = summarize(pdf)
    assert "2 alerts: 1 classified, 1 declined" in text and "no observations" in text and "SNIa" in text


@pytest.mark.spark
def test_spark_engine_partitions_and_mixed_schemas(spark, sample_table, tmp_path):
    from fink_t2.tools.batch import score_spark

    lake = _partitioned(sample_table, tmp_path / "lake")
    # A third partition re-written with wider types, as some Fink files are (float64, int64).
    wide = sample_table.slice(0, 5)
    wide_type = pa.struct([pa.field(f.name, pa.float64() if pa.types.is_floating(f.type) else
                                    (pa.int64() if pa.types.is_integer(f.type) else f.type))
                           for f in wide.schema.field("candidate").type])
    wide = wide.set_column(wide.column_names.index("candidate"), "candidate", wide.column("candidate").cast(wide_type))
    folder = lake / "year=2024" / "month=04" / "day=03"
    folder.mkdir(parents=True)
    pq.write_table(wide, folder / "part-wide.parquet")
    out = tmp_path / "scored"
    score_spark([lake], out, spark=spark)
    result = spark.read.parquet(str(out))
    assert {"year", "month", "day", "t2", "candidate", "prv_candidates"} <= set(result.columns)
    assert (out / "year=2024" / "month=4").exists() or (out / "year=2024" / "month=04").exists()
    candids = sorted(r.candid for r in result.select("candid").collect())
    assert candids == sorted(sample_table.column("candid").to_pylist() + wide.column("candid").to_pylist())
    assert result.where("t2.SNIa IS NULL AND t2.reason IS NULL").count() == 0
    assert result.where("t2.reason IS NOT NULL AND t2.SNIa IS NOT NULL").count() == 0
    assert summarize(read_scored(out, "spark", spark)).startswith(f"{len(candids)} alerts: ")
    with pytest.raises(InputError, match="already exists"):
        score_spark([lake], out, spark=spark)
