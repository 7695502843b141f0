"""``fink-t2 stream``: the installed command runs the same stream as ``run_t2_stream.py``."""

from __future__ import annotations

import pytest
from conftest import write_parts

pytestmark = pytest.mark.spark


def test_fink_t2_stream_scores_every_alert_once(spark, sample_table, tmp_path, capsys):
    from fink_t2.tools.cli import main as cli_main

    raw, out, ckpt = tmp_path / "raw", tmp_path / "science", tmp_path / "checkpoint"
    write_parts(sample_table, raw, [200, sample_table.num_rows - 200])
    # spark_session's getOrCreate hands the command the tests' running session.
    assert cli_main(["stream", "--input", str(raw), "--output", str(out), "--checkpoint", str(ckpt), "--once"]) == 0
    result = spark.read.parquet(str(out)).select("candid", "t2.top_class", "t2.reason").toPandas()
    expected = sample_table.column("candid").to_pylist()
    assert sorted(result.candid) == sorted(expected)
    assert (result.top_class.notna() | result.reason.notna()).all()
    assert "error" not in capsys.readouterr().err


def test_fink_t2_stream_help_lists_the_stream_flags(capsys):
    from fink_t2.tools.cli import main as cli_main

    with pytest.raises(SystemExit):
        cli_main(["stream", "--help"])
    text = capsys.readouterr().out
    assert all(flag in text for flag in ("--input", "--output", "--checkpoint", "--once", "--cuts", "--config"))
