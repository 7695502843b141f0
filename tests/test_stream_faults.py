"""Faults around run_t2_stream.py, run as a real subprocess (its own Spark driver and workers).

* SIGKILL of the whole job (driver, JVM, Python workers) while a micro-batch is inside the
  UDF, then a restart from the same checkpoint: output candids == input candids exactly;
* an input file with no rows (an empty micro-batch) and new files landing while batches run;
* SIGTERM after the restart: a clean stop with exit code 0;
* output or checkpoint paths that cannot be written: one clear error, exit code 2, nothing started.

The kill test slows each Arrow batch from outside the package: ``tests/slow_workers/sitecustomize.py``,
put on the job's PYTHONPATH, wraps the UDF's body in the driver and every Python worker and prints a
line on the worker's stderr when a batch enters it, so the kill is known to land inside it. Every wait
is for an event (a checkpoint file, a log line) with a generous ceiling: a loaded machine only slows it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import SLOW_BATCH_MARKER, job_env, write_parts

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "run_t2_stream.py"
MARKER = SLOW_BATCH_MARKER  # slow_workers/sitecustomize.py's line
#: Ceiling of a wait for an event (seconds): reached only if the job is stuck, never because the machine is busy.
PATIENCE = 900


def _env(delay: float | None = None) -> dict:
    """The job's environment; with ``delay``, every UDF batch waits that long (slow_workers/sitecustomize.py)."""
    return job_env(delay)


def _start(args: list[str], log: Path, delay: float | None = None) -> subprocess.Popen:
    handle = open(log, "wb")
    try:
        return subprocess.Popen([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=_env(delay),
                                stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        handle.close()


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (read from /proc), children before their own children."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _kill_job(proc: subprocess.Popen) -> list[int]:
    """SIGKILL the job and every process it started (JVM, Python daemon and workers), by pid, all at once."""
    pids = [proc.pid, *_descendants(proc.pid)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)
    return pids


def _wait_for(condition, timeout: float, proc: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"job exited ({proc.returncode}) while waiting for {what}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            _kill_job(proc)
            raise AssertionError(f"timed out waiting for {what}:\n{_tail(log)}")
        time.sleep(0.1)


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _count(log: Path, text: str) -> int:
    return log.read_text(errors="replace").count(text) if log.exists() else 0


def _land(path: Path, folder: Path) -> Path:
    """Move a finished file into the input folder in one rename, as a lake writer should."""
    target = folder / path.name
    os.replace(path, target)
    return target


def _candids(paths) -> list[int]:
    return [c for p in paths for c in pq.read_table(p, columns=["candid"]).column("candid").to_pylist()]


def _committed_files(output: Path) -> set[str]:
    """Data files listed in the file sink's log (what a reader of the output sees)."""
    names = set()
    for entry in (output / "_spark_metadata").iterdir():
        if entry.name.startswith(".") or entry.name.endswith(".crc"):
            continue
        for line in entry.read_text().splitlines()[1:]:
            record = json.loads(line)
            if record.get("action", "add") == "add":
                names.add(Path(record["path"]).name)
    return names


@pytest.mark.spark
def test_sigkill_mid_batch_then_restart_neither_loses_nor_duplicates(spark, sample_table, tmp_path):
    raw, out, ckpt = tmp_path / "raw", tmp_path / "science", tmp_path / "checkpoint"
    staging = tmp_path / "staging"
    # Six input files, one of them with no rows (an empty micro-batch), and two that land later.
    sizes = [60, 60, 60, 0, 60, 40, 20, 29]
    assert sum(sizes) == sample_table.num_rows
    parts = write_parts(sample_table, staging, sizes)
    raw.mkdir()
    for path in parts[:6]:
        _land(path, raw)
    common = ["--input", str(raw), "--output", str(out), "--checkpoint", str(ckpt), "--max-files-per-trigger", "1",
              "--master", "local[1]"]

    # Run 1: slow batches; SIGKILL everything while micro-batch 1 is inside the UDF.
    log1 = tmp_path / "run1.log"
    proc = _start([*common, "--once"], log1, delay=4.0)
    _wait_for(lambda: (ckpt / "commits" / "0").exists(), PATIENCE, proc, log1, "the first commit")
    entered = _count(log1, MARKER)
    assert entered >= 1  # batch 0 went through the (slowed) UDF
    _wait_for(lambda: (ckpt / "offsets" / "1").exists() and _count(log1, MARKER) > entered, PATIENCE, proc, log1,
              "micro-batch 1 to enter the UDF")
    new_during_run1 = _land(parts[6], raw)  # a file lands while batch 1 runs
    time.sleep(0.5)
    killed = _kill_job(proc)
    assert proc.returncode == -signal.SIGKILL
    assert len(killed) >= 3  # the Python driver, the JVM and at least the Python worker daemon
    assert not (ckpt / "commits" / "1").exists()  # batch 1 was planned but never committed

    # Run 2: restart from the checkpoint with a processing-time trigger; another file lands meanwhile.
    log2 = tmp_path / "run2.log"
    proc = _start([*common, "--trigger-seconds", "0.5"], log2, delay=0.5)
    try:
        _wait_for(lambda: (ckpt / "commits" / "1").exists(), PATIENCE, proc, log2, "the replayed batch 1 to commit")
        _wait_for(lambda: _count(log2, MARKER) >= 2, PATIENCE, proc, log2, "a later batch to enter the UDF")
        _land(parts[7], raw)  # lands while a batch runs
        expected_batches = 8  # one per file, the empty one included
        _wait_for(lambda: (ckpt / "commits" / str(expected_batches - 1)).exists(), PATIENCE, proc, log2,
                  "every file to be committed")
        proc.send_signal(signal.SIGTERM)  # a clean stop
        assert proc.wait(timeout=PATIENCE) == 0, _tail(log2)
    finally:
        if proc.poll() is None:
            _kill_job(proc)
    assert not (ckpt / "commits" / str(expected_batches)).exists()

    text = log2.read_text(errors="replace")
    assert "batch 1: " in text  # the killed batch was replayed, not skipped
    assert "batch 0: " not in text  # the committed one was not
    assert "batch 3: 0 alerts in" in text  # the file without rows went through as an empty micro-batch

    expected = _candids(sorted(raw.glob("*.parquet")))
    assert new_during_run1.exists() and len(expected) == sample_table.num_rows
    got = [r.candid for r in spark.read.parquet(str(out)).select("candid").collect()]
    assert len(got) == len(expected)  # no duplicates
    assert set(got) == set(expected)  # no loss
    scored = spark.read.parquet(str(out)).where("t2 IS NULL OR (t2.SNIa IS NULL AND t2.reason IS NULL)")
    assert scored.count() == 0
    # Files written by the killed batch, if any, are not in the sink's log: readers never see them.
    orphans = {p.name for p in out.glob("*.parquet")} - _committed_files(out)
    print(f"\norphan part files left by the killed batch (ignored by readers): {len(orphans)}")


@pytest.mark.parametrize("where", ["output_under_a_file", "output_is_a_file", "checkpoint_under_a_file"])
def test_unwritable_paths_fail_at_start(tmp_path, sample_path, where):
    """Root ignores permissions, so the paths are made impossible: under or onto a regular file."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.parquet").write_bytes(sample_path.read_bytes())
    blocker = tmp_path / "a_regular_file"
    blocker.write_text("not a directory")
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    bad = {"output_under_a_file": ("output", blocker / "out"), "output_is_a_file": ("output", blocker),
           "checkpoint_under_a_file": ("checkpoint", blocker / "ckpt")}[where]
    paths = {"output": out, "checkpoint": ckpt, bad[0]: bad[1]}
    result = subprocess.run([sys.executable, str(SCRIPT), "--input", str(raw), "--output", str(paths["output"]),
                             "--checkpoint", str(paths["checkpoint"]), "--once"],
                            cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=PATIENCE)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.stderr
    assert f"{bad[0]} directory {bad[1]} is not writable" in errors[0]
    assert f"choose another --{bad[0]}" in errors[0]
    assert "Traceback" not in result.stderr and "SparkContext" not in result.stderr
    assert not (ckpt / "offsets").exists() and not (out / "_spark_metadata").exists()  # nothing started
