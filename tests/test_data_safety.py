"""Data safety under hostile files, paths and faults (issue 11): no input is ever modified or deleted,
every case ends in a correct result or ONE error line naming the file and the fix (exit 2).

Sections follow the issue's points: overlapping paths (1), schemas aligned by field name (2),
values that do not fit (3), literal paths (4), partitions (5), outputs written atomically (6),
the pyarrow pickle CVE (7), errors that used to escape as tracebacks (9), decisions (10).
Configuration and model metadata (8) are in test_config_strict.py. docs/reliability.md lists
the outcomes.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import copy_model

from fink_t2.scoring.arrow_compat import pyarrow_version
from fink_t2.scoring.inputs import InputError, check_pyarrow, find_parquet, read_alert_schemas
from fink_t2.scoring.paths import SAMPLE_ALERTS, SHARED_ZTF_ALERTS
from fink_t2.tools.batch import score_pandas
from fink_t2.tools.cli import main as cli_main
from fink_t2.tools.unify import REASON_UNFIT

ROOT = Path(__file__).resolve().parent.parent
HOSTLESS = SHARED_ZTF_ALERTS / "fink_science_hostless_202404.parquet"
needs_shared = pytest.mark.skipif(not HOSTLESS.exists(), reason=f"shared ZTF alerts absent ({HOSTLESS})")


def _one_line(text: str, prefix: str = "fink-t2 score: error:") -> str:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def _digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (or the file itself) -> sha256: proves an input was not touched."""
    paths = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.fixture
def no_spark(monkeypatch):
    """Fails the test if a Spark session is started (the refusal must come first)."""
    import fink_t2.spark.processor

    def forbidden(*args, **kwargs):
        raise AssertionError("Spark started before the error")

    monkeypatch.setattr(fink_t2.spark.processor, "spark_session", forbidden)


def _scored(spark, output: Path):
    """The scored output as Spark reads it, partition values as written (no type inference)."""
    from fink_t2.spark.hadoop import spark_literal

    key = "spark.sql.sources.partitionColumnTypeInference.enabled"
    previous = spark.conf.get(key)
    spark.conf.set(key, "false")
    try:
        df = spark.read.parquet(spark_literal(output))
    finally:
        spark.conf.set(key, previous)
    return df


def _t2_by_candid(rows) -> dict:
    return {r["candid"]: r["t2"].asDict() for r in rows}


def _pandas_t2(path: Path) -> dict:
    table = score_pandas(path, None, progress=False)
    return dict(zip(table.column("candid").to_pylist(), table.column("t2").to_pylist()))


def _assert_same_t2(got: dict, expected: dict, atol: float = 2e-4) -> None:
    assert set(got) == set(expected)
    for candid, value in expected.items():
        other = got[candid]
        assert other["reason"] == value["reason"], candid
        assert other["top_class"] == value["top_class"], candid
        if value["reason"] is None:
            np.testing.assert_allclose([other[c] for c in value if c not in ("top_class", "reason")],
                                       [value[c] for c in value if c not in ("top_class", "reason")], atol=atol)


@pytest.fixture(params=["true", "false"], ids=["ansi_on", "ansi_off"])
def ansi(request, spark):
    """Run a Spark test with ANSI mode on (Spark 4's default) and off (Spark 3.5's)."""
    previous = spark.conf.get("spark.sql.ansi.enabled")
    spark.conf.set("spark.sql.ansi.enabled", request.param)
    yield request.param
    spark.conf.set("spark.sql.ansi.enabled", previous)


# --------------------------------------------------------------------------- 1. overlapping inputs and outputs


def _lake(tmp_path: Path, sample_path: Path) -> Path:
    raw = tmp_path / "L" / "raw"
    raw.mkdir(parents=True)
    (raw / "alerts_sample.parquet").write_bytes(sample_path.read_bytes())
    return raw


@pytest.mark.parametrize("engine", ["spark", "pandas"])
def test_output_containing_the_input_is_refused(engine, tmp_path, sample_path, capsys, no_spark):
    raw = _lake(tmp_path, sample_path)
    before = _digest(tmp_path / "L")
    target = raw / "alerts_sample.parquet" if engine == "pandas" else raw
    assert cli_main(["score", str(target), "--output", str(tmp_path / "L"), "--overwrite", "--engine", engine,
                     "--no-progress"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "contains the input" in line and "outside every input" in line
    assert _digest(tmp_path / "L") == before


def test_output_equal_to_the_input_is_refused(tmp_path, sample_path, capsys):
    raw = _lake(tmp_path, sample_path)
    path = raw / "alerts_sample.parquet"
    before = _digest(path)
    assert cli_main(["score", str(path), "--output", str(path), "--overwrite", "--engine", "pandas"]) == 2
    assert "is the input" in _one_line(capsys.readouterr().err)
    assert _digest(path) == before


def test_output_inside_the_input_is_refused(tmp_path, sample_path, capsys, no_spark):
    raw = _lake(tmp_path, sample_path)
    before = _digest(raw)
    assert cli_main(["score", str(raw), "--output", str(raw / "scored")]) == 2
    assert "is inside the input" in _one_line(capsys.readouterr().err)
    assert _digest(raw) == before and not (raw / "scored").exists()
    # Through a symbolic link too.
    link = tmp_path / "link"
    link.symlink_to(raw)
    assert cli_main(["score", str(link), "--output", str(raw / "scored")]) == 2
    assert "is inside the input" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("what", ["output", "checkpoint"])
def test_stream_paths_inside_the_lake_are_refused(what, tmp_path, sample_path, stream_module, capsys):
    raw = _lake(tmp_path, sample_path)
    before = _digest(raw)
    paths = {"output": tmp_path / "out", "checkpoint": tmp_path / "ckpt"}
    paths[what] = raw / what
    assert stream_module.main(["--input", str(raw), "--output", str(paths["output"]), "--checkpoint",
                               str(paths["checkpoint"]), "--once"]) == 2
    line = _one_line(capsys.readouterr().err, "run_t2_stream: error:")
    assert f"{what} {paths[what]} is inside the input" in line
    assert _digest(raw) == before
    assert not (tmp_path / "out").exists() and not (tmp_path / "ckpt").exists()


def test_stream_lake_inside_the_output_is_refused(tmp_path, sample_path, stream_module, capsys):
    raw = _lake(tmp_path, sample_path)
    assert stream_module.main(["--input", str(raw), "--output", str(tmp_path / "L"), "--checkpoint",
                               str(tmp_path / "ckpt"), "--once"]) == 2
    assert "contains the input" in _one_line(capsys.readouterr().err, "run_t2_stream: error:")


def test_overwrite_refuses_a_directory_of_other_files(tmp_path, sample_path, capsys, no_spark):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    assert cli_main(["score", str(sample_path), "--output", str(home), "--overwrite"]) == 2
    assert "thesis.tex" in _one_line(capsys.readouterr().err)
    assert (home / "thesis.tex").read_text() == "years of work"


# --------------------------------------------------------------------------- 2./3. schemas aligned by name


def _reorder(table: pa.Table, order) -> pa.Table:
    """``table`` with the candidate / prv_candidates struct fields in another order (same values)."""
    def struct(dtype: pa.StructType) -> pa.StructType:
        fields = list(dtype)
        return pa.struct(order(fields))

    cand = struct(table.schema.field("candidate").type)
    prv = pa.list_(struct(table.schema.field("prv_candidates").type.value_type))
    schema = pa.schema([pa.field(f.name, cand if f.name == "candidate" else prv if f.name == "prv_candidates"
                                 else f.type) for f in table.schema])
    return pa.Table.from_pylist(table.to_pylist(), schema=schema)


def _swap_magpsf_magap(fields):
    names = [f.name for f in fields]
    i, j = names.index("magpsf"), names.index("magap")
    fields[i], fields[j] = fields[j], fields[i]
    return fields


def _shift_candid(table: pa.Table, offset: int) -> pa.Table:
    index = table.column_names.index("candid")
    return table.set_column(index, "candid", pa.compute.add(table.column("candid"), offset))


@pytest.mark.spark
def test_struct_fields_in_another_order_are_aligned_by_name(spark, ansi, tmp_path, sample_table):
    """magpsf and magap swapped in position: every alert scores exactly as in the original file."""
    lake = tmp_path / "lake"
    lake.mkdir()
    original = sample_table.slice(0, 40)
    pq.write_table(original, lake / "a.parquet")
    pq.write_table(_shift_candid(_reorder(original, _swap_magpsf_magap), 10**12), lake / "b.parquet")
    out = tmp_path / "out"
    assert cli_main(["score", str(lake), "--output", str(out), "--no-progress"]) == 0
    got = _t2_by_candid(_scored(spark, out).select("candid", "t2").collect())
    assert len(got) == 80
    for candid in original.column("candid").to_pylist():
        assert got[candid + 10**12] == got[candid]


@pytest.mark.spark
@needs_shared
def test_real_files_of_both_field_orders_in_one_input(spark, ansi, tmp_path, sample_path):
    """The sample (ZTF field order) and a Fink 4.02 file (alphabetical) in one directory, on both Spark stacks."""
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "a_sample.parquet").symlink_to(sample_path)
    (lake / "b_hostless.parquet").symlink_to(HOSTLESS)
    out = tmp_path / "out"
    assert cli_main(["score", str(lake), "--output", str(out), "--no-progress"]) == 0
    got = _t2_by_candid(_scored(spark, out).select("candid", "t2").collect())
    hostless = _pandas_t2(HOSTLESS)
    assert sum(v["reason"] is None for v in hostless.values()) == 72  # the pandas engine classifies them all
    _assert_same_t2({c: got[c] for c in hostless}, hostless)
    _assert_same_t2({c: got[c] for c in _pandas_t2(sample_path)}, _pandas_t2(sample_path), atol=1e-6)


@pytest.mark.spark
@pytest.mark.skipif(not (SHARED_ZTF_ALERTS / "fink_science_superluminous.parquet").exists(),
                    reason="shared ZTF alerts absent")
def test_all_null_fields_take_the_type_of_the_files_with_values(spark, tmp_path, sample_path):
    """Fink's superluminous file stores prv_candidates.ssnamenr as all-null (arrow null, read by Spark as int);
    first in the input, it must not make the sample's ssnamenr strings "out of range"."""
    superluminous = SHARED_ZTF_ALERTS / "fink_science_superluminous.parquet"
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "a_superluminous.parquet").symlink_to(superluminous)
    (lake / "b_sample.parquet").symlink_to(sample_path)
    out = tmp_path / "out"
    assert cli_main(["score", str(lake), "--output", str(out), "--no-progress"]) == 0
    scored = _scored(spark, out)
    got = _t2_by_candid(scored.select("candid", "t2").collect())
    assert not [v for v in got.values() if (v["reason"] or "").startswith(REASON_UNFIT)]
    _assert_same_t2({c: got[c] for c in _pandas_t2(sample_path)}, _pandas_t2(sample_path), atol=1e-6)
    names = scored.where("size(filter(prv_candidates, p -> p.ssnamenr IS NOT NULL)) > 0").count()
    assert names > 0  # the sample's solar-system names were kept


def test_merged_type_by_name():
    """The unified type: the first file's fields and leaf types (numbers widened: issue 26, item 10), then fields
    only later files have."""
    pytest.importorskip("pyspark")
    from pyspark.sql.types import ArrayType, DoubleType, FloatType, IntegerType, LongType, NullType, StringType
    from pyspark.sql.types import StructField as F
    from pyspark.sql.types import StructType as S

    from fink_t2.tools.unify import _Mismatch, merged_type

    first = S([F("jd", DoubleType()), F("fid", IntegerType()), F("magpsf", FloatType())])
    other = S([F("fid", LongType()), F("isdiffpos", StringType()), F("jd", DoubleType()), F("magpsf", DoubleType())])
    merged = merged_type(ArrayType(first), ArrayType(other))
    assert [(f.name, f.dataType) for f in merged.elementType.fields] == [
        ("jd", DoubleType()), ("fid", LongType()), ("magpsf", DoubleType()), ("isdiffpos", StringType())]
    assert merged_type(IntegerType(), LongType()) == LongType() == merged_type(LongType(), IntegerType())
    assert merged_type(DoubleType(), LongType()) == DoubleType()  # another family: the first file's type
    assert merged_type(NullType(), StringType()) == StringType() == merged_type(StringType(), NullType())
    with pytest.raises(_Mismatch, match="candidate"):
        merged_type(S([F("candidate", first)]), S([F("candidate", LongType())]))


def _wide_with_fid(table: pa.Table, row: int, fid: int) -> pa.Table:
    """``table`` with int64 integers in candidate, and one alert's candidate.fid set to ``fid``."""
    cand = table.schema.field("candidate").type
    wide = pa.struct([pa.field(f.name, pa.int64() if pa.types.is_integer(f.type) else f.type)
                      for f in cand])
    rows = table.to_pylist()
    rows[row]["candidate"]["fid"] = fid
    schema = pa.schema([pa.field(f.name, wide if f.name == "candidate" else f.type) for f in table.schema])
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.mark.spark
def test_value_that_does_not_fit_the_first_type_is_read_as_written(spark, ansi, tmp_path, sample_table):
    """int64 where the first file has int32, one fid = 2**32 + 1: read as int64 (issue 26, item 10: numbers take
    the widest type), so no overflow, no wrapped fid 1, and the alert scored as the pandas engine scores it."""
    lake = tmp_path / "lake"
    lake.mkdir()
    pq.write_table(sample_table.slice(0, 10), lake / "a.parquet")
    wide = _wide_with_fid(sample_table.slice(10, 10), 3, 2**32 + 1)
    pq.write_table(wide, lake / "b.parquet")
    out = tmp_path / "out"
    assert cli_main(["score", str(lake), "--output", str(out), "--no-progress"]) == 0
    rows = _scored(spark, out).select("candid", "candidate.fid", "t2").collect()
    assert len(rows) == 20
    bad = wide.column("candid")[3].as_py()
    by_candid = {r["candid"]: r for r in rows}
    assert by_candid[bad]["fid"] == 2**32 + 1
    expected = {**_pandas_t2_of(sample_table.slice(0, 10), tmp_path), **_pandas_t2_of(wide, tmp_path)}
    _assert_same_t2({c: v["t2"].asDict() for c, v in by_candid.items()}, expected, atol=1e-6)


def _pandas_t2_of(table: pa.Table, tmp_path: Path) -> dict:
    path = tmp_path / "reference.parquet"
    pq.write_table(table, path)
    return _pandas_t2(path)


# --------------------------------------------------------------------------- 4. literal paths


@pytest.mark.spark
def test_input_paths_are_literal_not_patterns(spark, tmp_path, sample_table, capsys):
    for name, rows in (("run[1]", 10), ("run1", 5), ("night{1,2}", 7), ("night1", 3)):
        (tmp_path / name).mkdir()
        pq.write_table(sample_table.slice(0, rows), tmp_path / name / "alerts.parquet")
    for name, rows in (("run[1]/alerts.parquet", 10), ("night{1,2}", 7)):
        out = tmp_path / f"out[{rows}]*"
        assert cli_main(["score", str(tmp_path / name), "--output", str(out), "--no-progress", "--summary"]) == 0
        assert capsys.readouterr().out.startswith(f"{rows} alerts: ")
        assert _scored(spark, out).count() == rows


def test_colon_in_a_file_name(tmp_path, sample_table, capsys, no_spark):
    """Hadoop cannot open 'T00:00:00.parquet': one line naming it (Spark); the pandas engine reads it."""
    folder = tmp_path / "night"
    folder.mkdir()
    path = folder / "alerts_2024-04-01T00:00:00.parquet"
    pq.write_table(sample_table.slice(0, 5), path)
    assert cli_main(["score", str(folder), "--output", str(tmp_path / "out")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert path.name in line and "rename" in line
    assert cli_main(["score", str(path), "--engine", "pandas", "--output", str(tmp_path / "o.parquet"),
                     "--no-progress"]) == 0
    assert pq.read_table(tmp_path / "o.parquet").num_rows == 5


def test_colon_in_the_stream_lake(tmp_path, sample_table, stream_module, capsys):
    lake = tmp_path / "lake"
    lake.mkdir()
    pq.write_table(sample_table.slice(0, 5), lake / "alerts_T00:00:00.parquet")
    assert stream_module.main(["--input", str(lake), "--output", str(tmp_path / "o"), "--checkpoint",
                               str(tmp_path / "c"), "--once"]) == 2
    line = _one_line(capsys.readouterr().err, "run_t2_stream: error:")
    assert "alerts_T00:00:00.parquet" in line and "rename" in line
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- 5. partitions


def _partition(lake: Path, values: dict, table: pa.Table) -> None:
    folder = lake.joinpath(*(f"{k}={v}" for k, v in values.items()))
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "part-0.parquet")


@pytest.mark.spark
def test_partition_columns_and_values_are_kept(spark, tmp_path, sample_table):
    lake = tmp_path / "LAKE"
    _partition(lake, {"year": "2024", "month": "04", "day": "01"}, sample_table.slice(0, 6))
    _partition(lake, {"year": "2024", "month": "04", "day": "02"}, sample_table.slice(6, 4))
    more = tmp_path / "more"
    more.mkdir()
    pq.write_table(sample_table.slice(10, 3), more / "alerts.parquet")
    out = tmp_path / "out"
    assert cli_main(["score", str(lake), str(more / "alerts.parquet"), "--output", str(out), "--no-progress"]) == 0
    rows = _scored(spark, out).select("candid", "year", "month", "day").collect()
    values = sorted((r["year"], r["month"], r["day"]) for r in rows if r["year"] is not None)
    assert values == [("2024", "04", "01")] * 6 + [("2024", "04", "02")] * 4
    assert sum(r["year"] is None for r in rows) == 3
    assert (out / "year=2024" / "month=04" / "day=01").is_dir()
    # A partition directory given as input keeps the columns above it.
    out2 = tmp_path / "out2"
    assert cli_main(["score", str(lake / "year=2024" / "month=04"), "--output", str(out2), "--no-progress"]) == 0
    rows = _scored(spark, out2).select("year", "month", "day").collect()
    assert sorted(tuple(r) for r in rows) == [("2024", "04", "01")] * 6 + [("2024", "04", "02")] * 4
    assert (out2 / "year=2024" / "month=04" / "day=02").is_dir()


# --------------------------------------------------------------------------- 6. outputs that look complete


KILL_DURING_WRITE = r"""
import os, signal, sys
import pyarrow.parquet as pq
from fink_t2.tools.cli import main

def half_then_die(table, where, **kwargs):
    with open(where, "wb") as handle:
        handle.write(b"PAR1" + b"\0" * 1000)
        handle.flush()
    os.kill(os.getpid(), signal.SIGKILL)

pq.write_table = half_then_die
main(sys.argv[1:])
"""


def test_pandas_output_killed_during_the_write_leaves_no_file(tmp_path, sample_path):
    out = tmp_path / "scored.parquet"
    args = ["score", str(sample_path), "--engine", "pandas", "--output", str(out), "--no-progress"]
    done = subprocess.run([sys.executable, "-c", KILL_DURING_WRITE, *args], cwd=ROOT, capture_output=True)
    assert done.returncode == -9, done.stderr
    assert not out.exists()
    assert cli_main(args) == 0  # the rerun is not blocked
    assert pq.read_table(out).num_rows == 329


def test_pandas_full_disk_is_one_line(tmp_path, sample_path, capsys, monkeypatch):
    import fink_t2.tools.batch

    def full(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fink_t2.tools.batch.pq, "write_table", full)
    out = tmp_path / "o" / "scored.parquet"
    assert cli_main(["score", str(sample_path), "--engine", "pandas", "--output", str(out), "--no-progress"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "No space left on device" in line and "scored.parquet" in line
    assert list(out.parent.iterdir()) == []


@pytest.mark.spark
def test_spark_overwrite_replaces_the_whole_output(spark, tmp_path, sample_path, sample_table):
    old = tmp_path / "old-input.parquet"
    pq.write_table(sample_table.slice(0, 100), old)
    out = tmp_path / "out"
    assert cli_main(["score", str(old), "--output", str(out), "--no-progress"]) == 0
    (out / "part-99999-stale.parquet").write_bytes((next(out.glob("part-*.parquet"))).read_bytes())
    assert cli_main(["score", str(sample_path), "--output", str(out), "--overwrite", "--no-progress"]) == 0
    assert _scored(spark, out).count() == 329
    assert not [p for p in tmp_path.iterdir() if ".fink-t2-" in p.name]


def _corrupt_pages(sample_path: Path, path: Path) -> None:
    """The sample with bytes of its data pages overwritten; the footer is intact."""
    data = bytearray(sample_path.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    for start in range(4 + 64, len(data) - footer - 64, 4096):
        data[start:start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    pq.read_schema(path)  # the footer still reads


@pytest.mark.spark
def test_spark_corrupt_data_page_is_one_line_and_leaves_nothing(spark, tmp_path, sample_path, capsys):
    lake = tmp_path / "lake"
    lake.mkdir()
    _corrupt_pages(sample_path, lake / "broken.parquet")
    out = tmp_path / "out"
    assert cli_main(["score", str(lake), "--output", str(out), "--no-progress"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "broken.parquet" in line and "remove or replace it" in line
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".fink-t2-" in p.name]
    (lake / "broken.parquet").write_bytes(sample_path.read_bytes())  # the fix: the rerun is not blocked
    assert cli_main(["score", str(lake), "--output", str(out), "--no-progress"]) == 0


@pytest.mark.skipif(pyarrow_version() < (10,), reason="pyarrow 9 (Fink's ZTF image) may crash the process on a "
                    "corrupt data page (a native fault, no exception to report): not testable in-process there")
def test_pandas_corrupt_data_page_is_one_line(tmp_path, sample_path, capsys):
    path = tmp_path / "broken.parquet"
    _corrupt_pages(sample_path, path)
    out = tmp_path / "out.parquet"
    assert cli_main(["score", str(path), "--engine", "pandas", "--output", str(out), "--no-progress"]) == 2
    assert "broken.parquet" in _one_line(capsys.readouterr().err)
    assert not out.exists()


# --------------------------------------------------------------------------- 7. pyarrow's pickle CVE


def test_an_exposed_pyarrow_is_refused_unless_hotfixed():
    text = (ROOT / "setup.py").read_text()
    assert re.search(r'"pyarrow-hotfix[^"]*"', text)  # Fink's ZTF image keeps pyarrow 9: the hotfix closes it
    with pytest.raises(InputError, match="CVE-2023-47248"):
        check_pyarrow("14.0.0", hotfixed=False)
    check_pyarrow("9.0.0", hotfixed=True)
    check_pyarrow("14.0.1", hotfixed=False)
    check_pyarrow(pa.__version__)


def test_py_extension_type_payload_is_never_run(tmp_path, sample_table, capsys):
    """A column declared arrow.py_extension_type with a pickled payload: the payload does not run."""
    import pickle

    canary = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (canary,))

    field = pa.field("evil", pa.int64(), metadata={b"ARROW:extension:name": b"arrow.py_extension_type",
                                                   b"ARROW:extension:metadata": pickle.dumps(Payload())})
    table = sample_table.slice(0, 5)
    table = table.append_column(field, pa.array(range(5), pa.int64()))
    path = tmp_path / "evil.parquet"
    pq.write_table(table, path)
    code = cli_main(["score", str(path), "--engine", "pandas", "--summary", "--no-progress"])
    err = capsys.readouterr().err
    assert not canary.exists()
    assert code in (0, 2) and "Traceback" not in err
    if code == 2:
        assert "evil.parquet" in _one_line(err)


# --------------------------------------------------------------------------- 9. errors that escaped


def _without_history_field(table: pa.Table, field: str) -> pa.Table:
    element = table.schema.field("prv_candidates").type.value_type
    kept = pa.list_(pa.struct([f for f in element if f.name != field]))
    rows = table.to_pylist()
    for row in rows:
        for point in row["prv_candidates"] or []:
            point.pop(field)
    schema = pa.schema([pa.field(f.name, kept if f.name == "prv_candidates" else f.type) for f in table.schema])
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.mark.spark
def test_history_without_an_optional_field_both_engines(spark, tmp_path, sample_table):
    path = tmp_path / "in" / "alerts.parquet"
    path.parent.mkdir()
    # 30 alerts the model judges: most of the sample's first alerts are lone detections, which the minimum of
    # detections (issue 12) declines whatever their fields; these have >= 2 valid detections.
    judged = [i for i, t2 in enumerate(score_pandas(SAMPLE_ALERTS, None, progress=False).column("t2").to_pylist())
              if t2["reason"] is None][:30]
    pq.write_table(_without_history_field(sample_table.take(judged), "isdiffpos"), path)
    expected = _pandas_t2(path)
    assert sum(v["reason"] is None for v in expected.values()) == 30
    out = tmp_path / "out"
    assert cli_main(["score", str(path.parent), "--output", str(out), "--no-progress"]) == 0
    _assert_same_t2(_t2_by_candid(_scored(spark, out).select("candid", "t2").collect()), expected, atol=1e-6)


def test_history_without_a_required_field_is_one_line(tmp_path, sample_table, capsys, no_spark):
    path = tmp_path / "nojd.parquet"
    pq.write_table(_without_history_field(sample_table.slice(0, 5), "jd"), path)
    for engine in ("pandas", "spark"):
        assert cli_main(["score", str(path), "--engine", engine, "--output", str(tmp_path / f"o-{engine}")]) == 2
        line = _one_line(capsys.readouterr().err)
        assert "nojd.parquet" in line and "'prv_candidates' struct lacks ['jd']" in line


@pytest.mark.parametrize("engine", ["spark", "pandas"])
def test_output_under_a_regular_file(engine, tmp_path, sample_path, capsys, no_spark):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = blocker / "scored.parquet"
    assert cli_main(["score", str(sample_path), "--engine", engine, "--output", str(out), "--no-progress"]) == 2
    assert "a regular file" in _one_line(capsys.readouterr().err)
    assert blocker.read_text() == "x"


def test_directory_named_parquet_is_searched(tmp_path, sample_table):
    """Spark's own output naming (x.parquet/part-*.parquet) is a directory of data, not a corrupt file."""
    folder = tmp_path / "lake" / "x.parquet"
    folder.mkdir(parents=True)
    pq.write_table(sample_table.slice(0, 4), folder / "part-00000.parquet")
    (folder / "_SUCCESS").write_text("")
    assert find_parquet([tmp_path / "lake"]) == [folder / "part-00000.parquet"]
    assert find_parquet([folder]) == [folder / "part-00000.parquet"]
    read_alert_schemas(find_parquet([tmp_path / "lake"]))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_named_parquet_is_refused_not_opened(tmp_path, sample_path, capsys, stream_module):
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "good.parquet").write_bytes(sample_path.read_bytes())
    os.mkfifo(lake / "pipe.parquet")
    with pytest.raises(InputError, match="pipe.parquet is not a regular file"):
        find_parquet([lake])
    with pytest.raises(InputError, match="not a regular file"):
        find_parquet([lake / "pipe.parquet"])
    assert stream_module.main(["--input", str(lake), "--output", str(tmp_path / "o"), "--checkpoint",
                               str(tmp_path / "c"), "--once"]) == 2
    assert "pipe.parquet" in _one_line(capsys.readouterr().err, "run_t2_stream: error:")


@pytest.mark.spark
def test_stream_literal_lake_with_a_readme_and_partitions(spark, tmp_path, sample_table, stream_module):
    """--input 'lake[1]' streams lake[1] (not lake1), skips its README.md, keeps day=01 as '01'."""
    lake, decoy = tmp_path / "lake[1]", tmp_path / "lake1"
    _partition(lake, {"year": "2024", "month": "04", "day": "01"}, sample_table.slice(0, 12))
    (lake / "README.md").write_text("# the raw lake\n")
    _partition(decoy, {"year": "2024", "month": "04", "day": "01"}, sample_table.slice(12, 30))
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    import pyspark

    if tuple(int(v) for v in pyspark.__version__.split(".")[:2]) < (3, 5):
        # Spark 3.4's streaming source globs even an escaped path: refused in one line, nothing written.
        assert stream_module.main(["--input", str(lake), "--output", str(out), "--checkpoint", str(ckpt),
                                   "--once"], spark=spark) == 2
        assert not out.exists() and not ckpt.exists()
        return
    assert stream_module.main(["--input", str(lake), "--output", str(out), "--checkpoint", str(ckpt),
                               "--once"], spark=spark) == 0
    rows = _scored(spark, out).select("candid", "year", "month", "day", "t2").collect()
    assert sorted(r["candid"] for r in rows) == sorted(sample_table.slice(0, 12).column("candid").to_pylist())
    assert {(r["year"], r["month"], r["day"]) for r in rows} == {("2024", "04", "01")}
    assert (lake / "README.md").read_text() == "# the raw lake\n"


# --------------------------------------------------------------------------- 10. decisions


def test_udf_body_writes_nothing_to_stdout_or_stderr(sample_columns, capsys):
    """The serving path logs through ``logging`` only: a Spark worker's streams stay clean."""
    from fink_t2.scoring import Cuts
    from fink_t2.spark import processor

    columns = tuple(sample_columns[c].iloc[:40] for c in ("cjd", "cfid", "cmagpsf", "csigmapsf"))
    scores = processor.score_batch(columns, None, Cuts())
    assert scores.classified.any() and (~scores.classified).any()
    assert capsys.readouterr() == ("", "")


def test_float32_times_are_scored_with_a_warning(tmp_path, sample_table, caplog):
    cand = sample_table.schema.field("candidate").type
    narrow = pa.struct([pa.field(f.name, pa.float32() if f.name == "jd" else f.type)
                        for f in cand])
    table = sample_table.slice(0, 5)
    table = table.set_column(table.column_names.index("candidate"), "candidate",
                             table.column("candidate").cast(narrow))
    path = tmp_path / "f32.parquet"
    pq.write_table(table, path)
    with caplog.at_level("WARNING"):
        read_alert_schemas([path])
    assert any("f32.parquet" in r.message and "32-bit float" in r.message for r in caplog.records)
    assert score_pandas(path, None, progress=False).num_rows == 5


def test_far_future_point_takes_over_the_window(base_alert, tmp_path):
    """Decided (docs/reliability.md): t2 has no clock; a point at a far-future jd is the alert's latest point,
    the real history falls outside the window, and the alert is scored as that point alone, except for the
    age channel: the time since the history's first detection (100 years here).

    The minimum of detections (issue 12) counts the whole history, so the far-future alert is judged while
    that point alone, a lone detection, is declined; a model whose metadata sets ``min_detections: 1``
    scores the lone point.
    """
    import pandas as pd

    from fink_t2.scoring import classify_with_reasons, reason_too_few
    from fink_t2.scoring.alerts import observations_from_alerts
    from fink_t2.scoring.lightcurves import CONTEXT_CHANNELS, prepare
    from fink_t2.scoring.runtime import get_model

    future = {c: np.append(v, v[-1]) for c, v in base_alert.items()}
    future["cjd"][-1] = base_alert["cjd"][-1] + 36500.0
    alone = {c: v[-1:] for c, v in future.items()}
    frame = pd.DataFrame([future, alone], dtype=object)
    probs, reasons = classify_with_reasons(frame)
    assert reasons.iloc[0] is None and reasons.iloc[1] == reason_too_few(2)
    lenient = copy_model(tmp_path, meta_changes={"min_detections": 1})
    probs_one, reasons_one = classify_with_reasons(frame, model_path=lenient)
    assert reasons_one.isna().all()
    np.testing.assert_allclose(probs.iloc[0].to_numpy(), probs_one.iloc[0].to_numpy(), atol=1e-6)
    prep = get_model().preparation
    obs, _ = observations_from_alerts(frame["cjd"], frame["cfid"], frame["cmagpsf"], frame["csigmapsf"])
    values = prepare(obs, prep).values
    age = 2 if prep.context_channels else None
    same = [c for c in range(prep.n_channels) if c != age]
    np.testing.assert_allclose(values[0][:, same], values[1][:, same], atol=1e-6)  # the window: that point alone
    if prep.context_channels:
        assert CONTEXT_CHANNELS[0] == "age" and values[0][-1, age] > values[1][-1, age] + 5



@pytest.fixture
def base_alert(sample_columns) -> dict:
    """A sample alert whose latest point is a detection."""
    for i in range(len(sample_columns)):
        row = {c: np.asarray(sample_columns.at[i, c]) for c in ("cjd", "cfid", "cmagpsf", "csigmapsf")}
        if len(row["cjd"]) > 5 and np.isfinite(row["cmagpsf"][-1].astype(float)):
            return row
    raise AssertionError("no alert ends with a detection")
