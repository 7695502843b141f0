"""run_t2_stream.py: available-now runs, restart from the checkpoint, configuration errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import write_parts

ROOT = Path(__file__).resolve().parent.parent


def _write_config(path: Path, **values) -> Path:
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


@pytest.mark.spark
def test_restart_from_checkpoint_neither_loses_nor_duplicates(spark, stream_module, sample_table, tmp_path, caplog):
    staging = write_parts(sample_table, tmp_path / "staging", [-(-sample_table.num_rows // 4)] * 4)
    raw, out, ckpt = tmp_path / "raw", tmp_path / "science", tmp_path / "checkpoint"
    raw.mkdir()
    config = _write_config(tmp_path / "stream.yaml", input=str(raw), output=str(out), checkpoint=str(ckpt),
                           max_files_per_trigger=1, trigger_seconds=1.0)
    for path in staging[:2]:
        path.rename(raw / path.name)
    caplog.set_level(logging.INFO, logger="fink_t2.spark.stream")
    assert stream_module.main(["--config", str(config), "--once"], spark=spark) == 0
    first = spark.read.parquet(str(out)).select("candid", "t2").toPandas()
    in_first = {c for p in raw.glob("*.parquet") for c in pq.read_table(p, columns=["candid"])["candid"].to_pylist()}
    assert set(first.candid) == in_first and len(first) == len(in_first)
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("batch ")]
    assert len(logged) == 2 and all("alerts in" in m and "classified" in m and "alerts/s" in m for m in logged)

    # Stop, new files land, restart from the same checkpoint.
    for path in staging[2:]:
        path.rename(raw / path.name)
    assert stream_module.main(["--config", str(config), "--once"], spark=spark) == 0
    # A third run with nothing new changes nothing.
    assert stream_module.main(["--config", str(config), "--once"], spark=spark) == 0
    result = spark.read.parquet(str(out)).select("candid", "objectId", "candidate", "t2")
    candids = [r.candid for r in result.select("candid").collect()]
    expected = sample_table.column("candid").to_pylist()
    assert len(candids) == len(expected)  # no duplicates
    assert set(candids) == set(expected)  # no loss
    assert result.where("t2 IS NULL").count() == 0
    assert set(result.columns) >= {"candid", "objectId", "candidate", "t2"}


def test_config_errors_name_file_and_key_before_reading(stream_module, tmp_path, capsys):
    out = tmp_path / "science"
    bad_key = _write_config(tmp_path / "bad_key.yaml", input=str(tmp_path), output=str(out),
                            checkpoint=str(tmp_path / "c"), max_file_per_trigger=3)
    assert stream_module.main(["--config", str(bad_key)]) == 2
    err = capsys.readouterr().err
    assert "bad_key.yaml" in err and "unknown key 'max_file_per_trigger'" in err
    bad_type = _write_config(tmp_path / "bad_type.yaml", input=str(tmp_path), output=str(out),
                             checkpoint=str(tmp_path / "c"), cuts={"enabled": "yes please"})
    assert stream_module.main(["--config", str(bad_type)]) == 2
    err = capsys.readouterr().err
    assert "bad_type.yaml" in err and "'cuts.enabled' must be true or false" in err
    assert not out.exists()


def test_flags_override_the_file(stream_module, tmp_path):
    config = _write_config(tmp_path / "s.yaml", input="a", output="b", checkpoint="c", max_files_per_trigger=5)
    args = stream_module.build_parser().parse_args(["--config", str(config), "--max-files-per-trigger", "2",
                                                    "--once", "--cuts", "--output", "elsewhere"])
    loaded = stream_module.load_config(args)
    assert (loaded.max_files_per_trigger, loaded.once, loaded.cuts.enabled, loaded.output) == (2, True, True,
                                                                                               "elsewhere")
    assert loaded.input == "a" and loaded.trigger_seconds == 10.0


def test_repository_config_is_valid(stream_module):
    args = stream_module.build_parser().parse_args(["--config", str(ROOT / "conf" / "stream.yaml")])
    assert stream_module.load_config(args).query_name


def test_input_without_parquet_fails_before_spark(stream_module, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    config = _write_config(tmp_path / "s.yaml", input=str(empty), output=str(tmp_path / "o"),
                           checkpoint=str(tmp_path / "c"))
    assert stream_module.main(["--config", str(config), "--once"]) == 2
    assert "no parquet file found under" in capsys.readouterr().err


def test_bad_model_and_unwritable_output_fail_at_start(stream_module, sample_path, tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.parquet").write_bytes(sample_path.read_bytes())
    config = _write_config(tmp_path / "s.yaml", input=str(raw), output=str(tmp_path / "o"),
                           checkpoint=str(tmp_path / "c"), model_path=str(tmp_path / "absent.tflite"))
    assert stream_module.main(["--config", str(config), "--once"]) == 2
    assert "model file not found" in capsys.readouterr().err
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert stream_module.main(["--config", str(config), "--once", "--model", str(ROOT / "fink_t2" / "data" /
                               "t2.tflite"), "--output", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert "output directory" in err and "not writable" in err
