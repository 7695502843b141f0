"""Data safety, round 3 (issue 26): concurrent writers, stale output, and the last tracebacks.

Each test names the issue's item it covers. Concurrent publishing is tested with real
concurrent processes (``fink-t2 score`` with both engines, and the stream).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import SLOW_BATCH_MARKER, copy_model, job_env

from fink_t2.scoring.runtime import DEFAULT_MODEL, ModelFileError, load_model, metadata_path
from fink_t2.tools.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent


def _one_line(text: str, prefix: str = "fink-t2 score: error:") -> str:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


# --------------------------------------------------------------------------- 3. model metadata ranges


def _shipped_metadata() -> dict:
    return yaml.safe_load(metadata_path(DEFAULT_MODEL).read_text())


def _set(meta: dict, dotted: str, value) -> dict:
    meta = copy.deepcopy(meta)
    *parents, last = dotted.split(".")
    node = meta
    for key in parents:
        node = node[key]
    node[last] = value
    return meta


@pytest.mark.parametrize("key, value", [
    ("size_bytes", 2**70), ("size_bytes", 2**40),
    ("min_detections", 10**9),
    ("preparation.n_steps", 10**7),
    ("preparation.step_days", 1e308), ("preparation.step_days", 1e-300),
    ("preparation.time_scale_days", 1e300),
    ("preparation.wavelength_scale", 1e-300),
    ("preparation.noise_floor", 1e300),
    ("preparation.max_points", 10**12),
    ("preparation.limit_noise_factor", 1e-310),
    ("calibration.temperature", 1e-310), ("calibration.temperature", 1e300),
    ("calibration.class_priors.ztf_alerts.SNIa", 1e300),
    ("calibration.class_priors.ztf_alerts.KN", 1e-320),
    ("held_out_balanced_accuracy", 7.0),
    ("saved_model_bytes", 2**70),
])
def test_metadata_values_outside_their_range_are_one_line(tmp_path, sample_path, capsys, key, value):
    """Item 3: every number the metadata sets is range-checked, even when the identity hash was recomputed."""
    meta = _set(_shipped_metadata(), key, value)
    changes = {top: meta[top] for top in meta if top != "identity_sha256"}
    model = copy_model(tmp_path / "m", meta_changes=changes)
    with pytest.raises(ModelFileError, match="outside the plausible range") as raised:
        load_model(model)
    text = str(raised.value)
    assert str(metadata_path(model)) in text and key in text and "reinstall fink-t2" in text
    out = tmp_path / "out.parquet"
    assert cli_main(["score", str(sample_path), "--engine", "pandas", "--model", str(model), "--output", str(out),
                     "--no-progress"]) == 2
    assert "outside the plausible range" in _one_line(capsys.readouterr().err)
    assert not out.exists()


def test_shipped_models_are_within_the_ranges():
    from fink_t2.scoring.paths import MODELS

    for path in sorted(MODELS.glob("*.tflite")):
        load_model(path)


# --------------------------------------------------------------------------- 4, 8. odd schemas, one line


def _with_column_twice(table: pa.Table, name: str) -> pa.Table:
    return pa.Table.from_arrays([*table.columns, table.column(name)], names=[*table.column_names, name])


def _with_struct_field_twice(table: pa.Table, column: str, field: str) -> pa.Table:
    struct = table.column(column).combine_chunks()
    children = [struct.field(i) for i in range(struct.type.num_fields)]
    names = [f.name for f in struct.type]  # (StructType.field() is pyarrow >= 13)
    doubled = pa.StructArray.from_arrays([*children, struct.field(struct.type.get_field_index(field))],
                                         names=[*names, field])
    return table.set_column(table.column_names.index(column), column, doubled)


def _candidate_as_list(table: pa.Table) -> pa.Table:
    struct = table.column("candidate").combine_chunks()
    listed = pa.ListArray.from_arrays(pa.array(np.arange(len(struct) + 1, dtype=np.int32)), struct)
    return table.set_column(table.column_names.index("candidate"), "candidate", listed)


@pytest.mark.parametrize("damage, said", [
    (lambda t: _with_column_twice(t, "candidate"), "two columns named 'candidate'"),
    (lambda t: _with_column_twice(t, "prv_candidates"), "two columns named 'prv_candidates'"),
    (lambda t: _with_struct_field_twice(t, "candidate", "magpsf"), "two fields named 'magpsf'"),
    (_candidate_as_list, "'candidate' column is a list"),
], ids=["candidate_twice", "history_twice", "field_twice", "candidate_list_of_structs"])
@pytest.mark.parametrize("engine", ["pandas", "spark"])
def test_odd_schemas_are_one_line_naming_the_file(tmp_path, sample_table, capsys, monkeypatch, engine, damage, said):
    """Items 4 and 8: duplicate columns or fields, a list where the current detection's struct is."""
    import fink_t2.spark.processor

    monkeypatch.setattr(fink_t2.spark.processor, "spark_session", lambda *a, **k: pytest.fail("Spark started"))
    path = tmp_path / "odd.parquet"
    pq.write_table(damage(sample_table.slice(0, 5)), path)
    out = tmp_path / "out"
    assert cli_main(["score", str(path), "--engine", engine, "--output", str(out), "--no-progress"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(path) in line and said in line and "struct lacks" not in line
    assert not out.exists()


def test_stream_refuses_a_duplicate_column(tmp_path, sample_table, stream_module, capsys):
    """Item 4, the stream's preflight: the same one line."""
    lake = tmp_path / "lake"
    lake.mkdir()
    pq.write_table(_with_column_twice(sample_table.slice(0, 5), "candidate"), lake / "a.parquet")
    assert stream_module.main(["--input", str(lake), "--output", str(tmp_path / "o"), "--checkpoint",
                               str(tmp_path / "c"), "--once"]) == 2
    assert "two columns named 'candidate'" in _one_line(capsys.readouterr().err, "run_t2_stream: error:")


def test_alert_columns_names_a_list_as_a_list(sample_table):
    """Item 8 through the Python API: a list of structs is not called a struct without fields."""
    from fink_t2.scoring.alerts import alert_columns

    with pytest.raises(ValueError, match=r"'candidate' column is list<.*not a struct"):
        alert_columns(_candidate_as_list(sample_table.slice(0, 3)))


# --------------------------------------------------------------------------- 11. frames given to classify


def test_classify_refuses_a_duplicate_light_curve_column(sample_columns):
    """Item 11: two ``cmagpsf`` columns are the caller's mistake, named, not every alert declined."""
    from fink_t2 import classify

    frame = sample_columns.iloc[:5]
    doubled = pd.concat([frame, frame[["cmagpsf"]]], axis=1)
    with pytest.raises(ValueError, match="two columns named 'cmagpsf'"):
        classify(doubled)


def test_classify_reads_series_cells_like_lists(judged_columns):
    """Item 11: a pandas Series in each cell (any index) scores as the list of its values."""
    from fink_t2 import classify

    frame = judged_columns.iloc[:20].reset_index(drop=True)
    as_series = frame.copy()
    for name in [c for c in frame.columns if c.startswith("c")]:  # the per-alert arrays (not ra, dec)
        as_series[name] = [pd.Series(np.asarray(cell), index=np.arange(len(cell)) + 7) for cell in frame[name]]
    expected = classify(frame)
    got = classify(as_series)
    assert expected.notna().all(axis=1).sum() > 10
    pd.testing.assert_frame_equal(got, expected)


# --------------------------------------------------------------------------- 5, 6. training-side commands


def test_train_without_the_train_extra_is_one_line(tmp_path, monkeypatch, capsys):
    """Item 5: TensorFlow missing is one line saying which extra to install, as for pyspark."""
    for name in ("tensorflow", "tf_keras"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as when not installed
    assert cli_main(["train", "--output", str(tmp_path / "run"), "--data-dir", str(tmp_path), "--quiet"]) == 2
    line = _one_line(capsys.readouterr().err, "fink-t2 train: error:")
    assert "tensorflow is not installed" in line and "pip install 'fink-t2[train]'" in line


def _plasticc_folder(folder: Path, metadata: bytes, lightcurves: bytes) -> Path:
    from fink_t2.training.plasticc import LIGHTCURVES_FILE, METADATA_FILE

    folder.mkdir()
    (folder / METADATA_FILE).write_bytes(metadata)
    (folder / LIGHTCURVES_FILE).write_bytes(lightcurves)
    return folder


@pytest.mark.parametrize("which, said", [("not_gzip", "cannot be read as a gzipped CSV"),
                                         ("no_target", "lacks the column(s) ['target']"),
                                         ("lightcurves_without_flux", "lacks the column(s) ['flux']")])
def test_evaluate_rubin_on_bad_plasticc_files_is_one_line(tmp_path, capsys, which, said):
    """Item 6: files that are not gzip, or CSVs without the columns read, are one line naming the file."""
    import gzip

    from fink_t2.training.plasticc import LIGHTCURVES_FILE, METADATA_FILE

    metadata = gzip.compress(b"object_id,target\n615,92\n")
    lightcurves = gzip.compress(b"object_id,mjd,passband,flux,flux_err,detected_bool\n615,59750.4,2,-544.8,3.6,1\n")
    named = METADATA_FILE
    if which == "not_gzip":
        metadata = b"object_id,target\n615,92\n"
    elif which == "no_target":
        metadata = gzip.compress(b"object_id,class\n615,92\n")
    else:
        lightcurves, named = gzip.compress(b"object_id,mjd,passband,flux_err,detected_bool\n615,1,2,3,1\n"), \
            LIGHTCURVES_FILE
    folder = _plasticc_folder(tmp_path / "D", metadata, lightcurves)
    assert cli_main(["evaluate", "--rubin", "--data-dir", str(folder), "--output", str(tmp_path / "report")]) == 2
    line = _one_line(capsys.readouterr().err, "fink-t2 evaluate: error:")
    assert str(folder / named) in line and said in line


# --------------------------------------------------------------------------- 1. concurrent jobs on one output

#: ``fink-t2`` with each input read ``SECONDS`` late (argv[1]): jobs started together are surely running together.
SLOW_READ = r"""
import sys, time
import pyarrow.parquet as pq
from fink_t2.tools.cli import main

read = pq.read_table
def slow(*args, **kwargs):
    time.sleep(float(sys.argv[1]))
    return read(*args, **kwargs)

pq.read_table = slow
sys.exit(main(sys.argv[2:]))
"""


def _env(delay: float | None = None) -> dict:
    return job_env(delay)


def _start(command: list[str], delay: float | None = None) -> subprocess.Popen:
    """A job in its own process group (so that a test can signal it as a terminal would), stderr captured."""
    return subprocess.Popen(command, cwd=ROOT, env=_env(delay), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    """Exit code and stderr of a job; the whole group killed if it overruns (the test then fails)."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        _, err = proc.communicate()
        text = (err or b"").decode(errors="replace")
        pytest.fail(f"job {proc.args} did not end within {timeout} s: {text[-2000:]}")
    return proc.returncode, (err or b"").decode(errors="replace")


def _two_inputs(tmp_path: Path, table: pa.Table) -> list[Path]:
    paths = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    pq.write_table(table.slice(0, 100), paths[0])
    pq.write_table(table.slice(100), paths[1])
    return paths


def _candids(path: Path) -> list[int]:
    return sorted(pq.read_table(path, columns=["candid"]).column("candid").to_pylist())


BUSY = ("is being written by another fink-t2 job", "appeared while this job ran", "already exists")


def _check_one_winner(results: list[tuple[int, str]], inputs: list[Path], output: Path, prefix: str) -> None:
    """Exactly one job published (exit 0); the other exited 2 with one line; the output is the winner's, whole."""
    codes = [code for code, _ in results]
    assert sorted(codes) == [0, 2], results
    winner, loser = codes.index(0), codes.index(2)
    line = _one_line(results[loser][1], prefix)
    assert str(output) in line and any(text in line for text in BUSY), line
    assert _candids(output) == _candids(inputs[winner])
    assert not [p for p in output.parent.iterdir() if ".fink-t2-" in p.name]


@pytest.mark.parametrize("overwrite, name", [(False, "scored.parquet"), (True, "scored")])
def test_pandas_jobs_on_one_output_publish_once(tmp_path, sample_table, overwrite, name):
    """Item 1, pandas engine: two real processes started together, same output; one publishes, one line for
    the other. With --overwrite too (onto an existing output): never two results mixed or one silently lost."""
    inputs = _two_inputs(tmp_path, sample_table)
    out = tmp_path / name
    flags = ["--overwrite"] if overwrite else []
    if overwrite:
        assert cli_main(["score", str(inputs[0]), "--engine", "pandas", "--output", str(out), "--no-progress"]) == 0
    jobs = [_start([sys.executable, "-c", SLOW_READ, "6", "score", str(path), "--engine", "pandas", "--output",
                    str(out), "--no-progress", *flags]) for path in inputs]
    _check_one_winner([_finish(job) for job in jobs], inputs, out, "fink-t2 score: error:")


@pytest.mark.spark
def test_spark_jobs_on_one_output_publish_once(tmp_path, sample_table):
    """Item 1, Spark engine: two real ``fink-t2 score`` processes started together on different inputs, same
    output. Each Arrow batch is slowed (test hook) so that both would be running at once."""
    inputs = _two_inputs(tmp_path, sample_table)
    out = tmp_path / "scored"
    jobs = [_start([sys.executable, "-m", "fink_t2.tools.cli", "score", str(path), "--output", str(out),
                    "--no-progress", "--master", "local[1]"], delay=3) for path in inputs]
    _check_one_winner([_finish(job) for job in jobs], inputs, out, "fink-t2 score: error:")


def test_output_that_appears_while_the_job_runs_is_kept(tmp_path, sample_path, monkeypatch, capsys):
    """Item 1, the publish step itself: an output another writer made meanwhile is never replaced."""
    import fink_t2.tools.batch

    out = tmp_path / "scored.parquet"
    write = pq.write_table

    def someone_else_first(table, where, **kwargs):
        out.write_bytes(b"the other job's output")
        write(table, where, **kwargs)

    monkeypatch.setattr(fink_t2.tools.batch.pq, "write_table", someone_else_first)
    assert cli_main(["score", str(sample_path), "--engine", "pandas", "--output", str(out), "--no-progress"]) == 2
    assert "appeared while this job ran" in _one_line(capsys.readouterr().err)
    assert out.read_bytes() == b"the other job's output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scored.parquet"]


def test_a_held_output_is_one_line_before_anything_is_read(tmp_path, sample_path, monkeypatch, capsys):
    """Item 1: the lock is taken before any alert is read; its holder is named."""
    import fink_t2.tools.batch
    from fink_t2.scoring.outputs import lock_output

    out = tmp_path / "scored.parquet"
    monkeypatch.setattr(fink_t2.tools.batch, "_read_table", lambda path: pytest.fail("read while the output is held"))
    with lock_output(out):
        assert cli_main(["score", str(sample_path), "--engine", "pandas", "--output", str(out), "--no-progress"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"pid {os.getpid()}" in line and "another fink-t2 job" in line
    assert not out.exists() and not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- 2. --overwrite replaces the whole output


@pytest.mark.parametrize("name, old_kind", [("scored", "folder"), ("scored.parquet", "file")])
def test_pandas_overwrite_replaces_the_whole_output(tmp_path, sample_path, sample_table, name, old_kind):
    """Item 2: a stale part file does not survive --overwrite (nor Spark's bookkeeping); a file output is replaced."""
    out = tmp_path / name
    if old_kind == "folder":
        out.mkdir()
        pq.write_table(sample_table.slice(0, 100), out / "part-00000-old.snappy.parquet")
        (out / "_SUCCESS").write_bytes(b"")
    else:
        pq.write_table(sample_table.slice(0, 100), out)
    assert cli_main(["score", str(sample_path), "--engine", "pandas", "--output", str(out), "--overwrite",
                     "--no-progress"]) == 0
    assert pq.read_table(out).num_rows == 329
    if out.is_dir():
        assert [p.name for p in out.iterdir()] == ["part-00000.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


SCRIPT = ROOT / "run_t2_stream.py"


def _start_logged(command: list[str], log: Path, delay: float | None = None) -> subprocess.Popen:
    """A job in its own process group, stdout and stderr to ``log`` (read while it runs)."""
    with open(log, "wb") as handle:
        return subprocess.Popen(command, cwd=ROOT, env=_env(delay), stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _wait_for_udf(proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    """Until a batch of ``proc`` has entered the UDF (slow_workers' line in its log)."""
    deadline = time.monotonic() + timeout
    while SLOW_BATCH_MARKER not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, 9)
            pytest.fail(f"the job never entered the UDF: {log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


def _sink_candids(output: Path) -> list[int]:
    """The candids of a stream's output, read through its sink log (the files it committed)."""
    import json
    from urllib.parse import unquote, urlparse

    files = [json.loads(line)["path"] for log in sorted((output / "_spark_metadata").iterdir())
             if not log.name.startswith(".") for line in log.read_text().splitlines()[1:]]
    return sorted(c for f in files for c in _candids(Path(unquote(urlparse(f).path))))


@pytest.mark.spark
def test_stream_output_and_checkpoint_are_held_by_one_job(tmp_path, sample_table):
    """Item 1, the stream: while a stream runs, a second stream on its output (other checkpoint) and a third on
    its checkpoint (other output), real processes, each exit 2 with one line; the first one's output is whole."""
    from conftest import write_parts

    lake = tmp_path / "lake"
    write_parts(sample_table, lake, [100, 229])
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"

    def stream(output: Path, checkpoint: Path) -> list[str]:
        return [sys.executable, str(SCRIPT), "--input", str(lake), "--output", str(output), "--checkpoint",
                str(checkpoint), "--once", "--max-files-per-trigger", "1", "--master", "local[1]"]

    log = tmp_path / "first.log"
    first = _start_logged(stream(out, ckpt), log, delay=4)
    _wait_for_udf(first, log)
    others = [_start(stream(out, tmp_path / "ckpt2")), _start(stream(tmp_path / "out2", ckpt))]
    results = [_finish(job, timeout=240) for job in others]
    for (code, err), (what, path) in zip(results, [("output", out), ("checkpoint", ckpt)]):
        assert code == 2, err
        line = _one_line(err, "run_t2_stream: error:")
        assert f"{what} {path} is being written by another fink-t2 job" in line
    assert not (tmp_path / "ckpt2").exists() and not (tmp_path / "out2").exists()
    code, _ = _finish(first)
    assert code == 0, log.read_text(errors="replace")[-3000:]
    assert _sink_candids(out) == sorted(sample_table.column("candid").to_pylist())
    assert not [p for p in tmp_path.iterdir() if ".fink-t2-" in p.name]


# --------------------------------------------------------------------------- 7. Ctrl-C


@pytest.mark.spark
def test_ctrl_c_during_a_spark_job_is_one_line_and_leaves_nothing(tmp_path, sample_path):
    """Item 7: SIGINT to the job's process group (what a terminal's Ctrl-C does) while a batch is scored."""
    out = tmp_path / "scored"
    log = tmp_path / "job.log"
    job = _start_logged([sys.executable, "-m", "fink_t2.tools.cli", "score", str(sample_path), "--output", str(out),
                         "--no-progress", "--master", "local[1]"], log, delay=4)
    _wait_for_udf(job, log)
    os.killpg(job.pid, 2)
    code, _ = _finish(job, timeout=120)
    text = log.read_text(errors="replace")
    assert code == 130, text[-3000:]
    assert "nothing was written" in _one_line(text, "fink-t2 score: interrupted")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".fink-t2-" in p.name]


# --------------------------------------------------------------------------- 12. the stream on a full disk


class _FailedQuery:
    """A streaming query that fails as Spark's does when the sink's disk is full (a page of Java and py4j)."""

    def __init__(self, output: Path) -> None:
        self.isActive = True
        self.error = RuntimeError(
            f"[STREAM_FAILED] Query [id = 1] terminated with exception: Job aborted.\n"
            f"org.apache.spark.SparkException: Task failed while writing rows to file:{output}/part-00000.parquet\n"
            "\tat org.apache.spark.sql.errors.QueryExecutionErrors$.taskFailedWhileWritingRowsError\n"
            "Caused by: java.io.IOException: No space left on device\n\tat java.io.FileOutputStream.writeBytes")

    def awaitTermination(self, timeout=None):
        self.isActive = False
        raise self.error

    def exception(self):
        return self.error

    @property
    def recentProgress(self):
        return []


class _Conf(dict):
    def get(self, key, default=None):
        return super().get(key, default)

    def set(self, key, value):
        self[key] = value

    def unset(self, key):
        self.pop(key, None)


def test_stream_on_a_full_disk_is_one_line(tmp_path, sample_path, stream_module, monkeypatch, capsys):
    """Item 12: the disk named, where, and that a restart resumes; not py4j's page (or nothing at all)."""
    import types

    import fink_t2.spark.stream

    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "a.parquet").write_bytes(sample_path.read_bytes())
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    monkeypatch.setattr(fink_t2.spark.stream, "start_query", lambda spark, config: _FailedQuery(out))
    spark = types.SimpleNamespace(conf=_Conf())
    code = stream_module.main(["--input", str(lake), "--output", str(out), "--checkpoint", str(ckpt), "--once"],
                              spark=spark)
    line = _one_line(capsys.readouterr().err, "run_t2_stream: error:")
    assert code == 1
    assert f"the disk holding {out} is full" in line and "restart with the same command resumes" in line
    assert "\tat " not in line and len(line) < 400


# --------------------------------------------------------------------------- 9. a damaged page, Spark engine


def _damage_pages(source: Path, target: Path) -> None:
    """``source`` with bytes of its data pages overwritten; the footer intact (it still opens)."""
    data = bytearray(source.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    for start in range(4 + 64, len(data) - footer - 64, 4096):
        data[start:start + 64] = b"\xff" * 64
    target.write_bytes(bytes(data))
    pq.read_schema(target)


@pytest.mark.spark
def test_spark_names_the_damaged_file_whatever_its_name(spark, tmp_path, sample_path, capsys):
    """Item 9: the damaged file is named even where Spark's error spells it otherwise (percent-encoded) or not
    at all; a good file beside it is not blamed."""
    lake = tmp_path / "night 1 %41 é"
    lake.mkdir()
    (lake / "a good one.parquet").write_bytes(sample_path.read_bytes())
    damaged = lake / "b damaged #2.parquet"
    _damage_pages(sample_path, damaged)
    out = tmp_path / "out"
    assert cli_main(["score", str(lake), "--output", str(out), "--no-progress"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"the Spark job failed reading {damaged}:" in line and "remove or replace it" in line
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".fink-t2-" in p.name]


def test_damaged_file_is_found_when_spark_names_none(tmp_path, sample_path):
    """Item 9, the rule itself: "Job aborted" without a path still names the file pyarrow cannot read."""
    from fink_t2.tools.batch import spark_failure

    good, damaged = tmp_path / "a.parquet", tmp_path / "b.parquet"
    good.write_bytes(sample_path.read_bytes())
    _damage_pages(sample_path, damaged)
    line = spark_failure(RuntimeError("org.apache.spark.SparkException: Job aborted.\n\tat org.apache..."),
                         [good, damaged])
    assert line.startswith(f"the Spark job failed reading {damaged}:")
    assert "the Spark job failed:" in spark_failure(RuntimeError("Job aborted."), [good])


# --------------------------------------------------------------------------- 10. one rule for mixed schemas


def _widened(table: pa.Table, changes: dict) -> pa.Table:
    """``table`` with every integer of candidate/prv_candidates int64 and every float double, and values set:
    ``changes`` maps (row, column, field, history index or None) -> value."""
    def wide(dtype):
        if pa.types.is_struct(dtype):
            return pa.struct([pa.field(f.name, wide(f.type)) for f in dtype])
        if pa.types.is_list(dtype):
            return pa.list_(wide(dtype.value_type))
        if pa.types.is_integer(dtype):
            return pa.int64()
        return pa.float64() if pa.types.is_floating(dtype) else dtype

    rows = table.to_pylist()
    for (row, column, field, index), value in changes.items():
        (rows[row][column] if index is None else rows[row][column][index])[field] = value
    schema = pa.schema([pa.field(f.name, wide(f.type) if f.name in ("candidate", "prv_candidates") else f.type)
                        for f in table.schema])
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.mark.spark
def test_both_engines_score_a_mixed_schema_folder_alike(spark, tmp_path, sample_table):
    """Item 10: values that do not fit the first file's type (fid 2**32 + 1, magpsf 1e39 in the alert and in its
    history) are read as written by Spark too: every alert gets the pandas engine's reason and probabilities."""
    alone = score_pandas_table(sample_table, tmp_path / "all.parquet")
    judged = sample_table.take([i for i, c in enumerate(sample_table.column("candid").to_pylist())
                                if alone[c]["reason"] is None][:20])
    first = judged.slice(0, 10)
    history = next(i for i, h in enumerate(judged.slice(10, 10).column("prv_candidates").to_pylist())
                   if h and len(h) > 2)
    second = _widened(judged.slice(10, 10), {
        (3, "candidate", "fid", None): 2**32 + 1,
        (5, "candidate", "magpsf", None): 1e39,
        (history, "prv_candidates", "magpsf", 1): 1e39,
    })
    lake = tmp_path / "lake"
    lake.mkdir()
    pq.write_table(first, lake / "a.parquet")
    pq.write_table(second, lake / "b.parquet")
    out = tmp_path / "out"
    assert cli_main(["score", str(lake), "--output", str(out), "--no-progress"]) == 0
    from fink_t2.spark.hadoop import spark_literal

    got = {r["candid"]: r["t2"].asDict() for r in spark.read.parquet(spark_literal(out)).collect()}
    expected = {}
    for name, table in (("a", first), ("b", second)):
        scored = score_pandas_table(table, tmp_path / f"{name}-alone.parquet")
        expected.update(scored)
    assert set(got) == set(expected) and len(got) == 20
    for candid, value in expected.items():
        assert got[candid]["reason"] == value["reason"], candid
        assert got[candid]["top_class"] == value["top_class"], candid
        if value["reason"] is None:
            keys = [k for k in value if k not in ("top_class", "reason")]
            np.testing.assert_allclose([got[candid][k] for k in keys], [value[k] for k in keys], atol=1e-6)
    assert sum(v["reason"] is None for v in expected.values()) >= 15


def score_pandas_table(table: pa.Table, path: Path) -> dict:
    """candid -> t2 of ``table`` scored alone by the pandas engine."""
    from fink_t2.tools.batch import score_pandas

    pq.write_table(table, path)
    scored = score_pandas(path, None, progress=False)
    return dict(zip(scored.column("candid").to_pylist(), scored.column("t2").to_pylist()))


@pytest.mark.spark
def test_ctrl_c_during_the_stream_is_one_line_and_a_restart_resumes(tmp_path, sample_table):
    """Item 7, the stream: Ctrl-C while a micro-batch is scored is one line and exit 130; the same command then
    completes the output (every alert once)."""
    from conftest import write_parts

    lake = tmp_path / "lake"
    write_parts(sample_table, lake, [100, 229])
    out = tmp_path / "out"
    command = [sys.executable, str(SCRIPT), "--input", str(lake), "--output", str(out), "--checkpoint",
               str(tmp_path / "ckpt"), "--once", "--max-files-per-trigger", "1", "--master", "local[1]"]
    log = tmp_path / "stream.log"
    job = _start_logged(command, log, delay=4)
    _wait_for_udf(job, log)
    os.killpg(job.pid, 2)
    code, _ = _finish(job, timeout=120)
    text = log.read_text(errors="replace")
    assert code == 130, text[-3000:]
    assert "resumes from the checkpoint" in _one_line(text, "run_t2_stream: interrupted")
    code, err = _finish(_start(command))
    assert code == 0, err[-3000:]
    assert _sink_candids(out) == sorted(sample_table.column("candid").to_pylist())
