"""Jobs that cannot succeed stop at their start: one line naming the file and the fix, exit 2, nothing written.

Each case used to fail late: Spark's 448-line Java trace for an unwritable
output, a Python traceback for an output under a file, the stream's cut error
after it had created its output and checkpoint folders, the pandas engine
scoring every alert before finding it could not write.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fink_t2.scoring.preflight import PreflightError, check_writable
from fink_t2.tools.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def nothing_scored(monkeypatch):
    """Fails the test if an alert is scored or a Spark session is started."""
    import fink_t2.scoring.classifier
    import fink_t2.tools.batch

    def forbidden(*args, **kwargs):
        raise AssertionError("alerts were scored or Spark started before the error")

    monkeypatch.setattr(fink_t2.scoring.classifier, "score_alerts", forbidden)
    monkeypatch.setattr(fink_t2.tools.batch, "score_alerts", forbidden)
    monkeypatch.setattr(fink_t2.tools.batch, "score_table", forbidden)
    try:
        import fink_t2.spark.processor
    except ImportError:
        return
    monkeypatch.setattr(fink_t2.spark.processor, "spark_session", forbidden)


def _one_error(text: str, prefix: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(prefix), text
    assert "Traceback" not in text and "java" not in text.lower()
    return lines[0]


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("engine", ["spark", "pandas"])
def test_score_to_an_output_under_a_file(engine, tmp_path, sample_path, capsys, nothing_scored):
    if engine == "spark":
        pytest.importorskip("pyspark")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    before = _listing(tmp_path)
    out = blocker / ("scored.parquet" if engine == "pandas" else "scored")
    assert cli_main(["score", str(sample_path), "--engine", engine, "--output", str(out), "--no-progress"]) == 2
    line = _one_error(capsys.readouterr().err, "fink-t2 score: error:")
    assert str(out) in line and f"{blocker} is a file" in line and "--output" in line
    assert _listing(tmp_path) == before


@pytest.mark.parametrize("engine", ["spark", "pandas"])
def test_score_to_an_unwritable_output(engine, tmp_path, sample_path, capsys, nothing_scored):
    if engine == "spark":
        pytest.importorskip("pyspark")
    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc (Linux): a folder nobody may write into, root included")
    out = Path("/proc") / f"fink_t2_out_{os.getpid()}" / ("scored.parquet" if engine == "pandas" else "scored")
    assert cli_main(["score", str(sample_path), "--engine", engine, "--output", str(out), "--no-progress"]) == 2
    line = _one_error(capsys.readouterr().err, "fink-t2 score: error:")
    assert str(out) in line and "not writable" in line and "choose another --output" in line


def test_read_only_folder_is_refused_without_writing(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(PreflightError, match="not writable"):
            check_writable(folder / "out", directory=True)
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_writable_check_leaves_nothing(tmp_path):
    check_writable(tmp_path / "new" / "deeper", directory=True)
    check_writable(tmp_path / "x.parquet", directory=False)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "d").mkdir()
    with pytest.raises(PreflightError, match="is a directory, not a file"):
        check_writable(tmp_path / "d", directory=False)


@pytest.mark.parametrize("engine", ["spark", "pandas"])
def test_score_with_cuts_on_raw_alerts(engine, tmp_path, sample_path, capsys, nothing_scored):
    if engine == "spark":
        pytest.importorskip("pyspark")
    out = tmp_path / ("scored.parquet" if engine == "pandas" else "scored")
    assert cli_main(["score", str(sample_path), "--engine", engine, "--cuts", "--output", str(out)]) == 2
    line = _one_error(capsys.readouterr().err, "fink-t2 score: error:")
    assert "['roid', 'cdsxmatch']" in line and str(sample_path) in line and "cuts.extragalactic_xmatch" in line
    assert not out.exists()


def test_stream_with_cuts_on_raw_alerts_creates_nothing(tmp_path, sample_path, stream_module, capsys,
                                                        nothing_scored):
    pytest.importorskip("pyspark")
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(sample_path, raw / "alerts.parquet")
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    code = stream_module.main(["--input", str(raw), "--output", str(out), "--checkpoint", str(ckpt), "--once",
                               "--cuts"])
    assert code == 2
    line = _one_error(capsys.readouterr().err, "run_t2_stream: error:")
    assert "['roid', 'cdsxmatch']" in line and str(raw / "alerts.parquet") in line
    assert not out.exists() and not ckpt.exists()


def test_stream_as_documented_without_input_names_the_fix(tmp_path, monkeypatch, stream_module, capsys,
                                                          nothing_scored):
    """README's ``python run_t2_stream.py --master "local[2]" --once`` where data/stream/raw does not exist."""
    pytest.importorskip("pyspark")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    shutil.copy(ROOT / "conf" / "stream.yaml", tmp_path / "conf" / "stream.yaml")
    assert stream_module.main(["--master", "local[2]", "--once"]) == 2
    line = _one_error(capsys.readouterr().err, "run_t2_stream: error:")
    assert "data/stream/raw" in line and "cp data/alerts_sample.parquet data/stream/raw/" in line
    assert _listing(tmp_path) == ["conf", "conf/stream.yaml"]


# As if pyspark were not installed: ``import pyspark`` raises ModuleNotFoundError, find_spec gives None.
_HIDE_PYSPARK = """
import sys
sys.modules["pyspark"] = None
"""


def _without_pyspark(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _HIDE_PYSPARK + code], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_scoring_imports_and_runs_without_pyspark(tmp_path, sample_path):
    code = f"""
import fink_t2, fink_t2.scoring, fink_t2.tools.batch, fink_t2.tools.cli, fink_t2.scoring.config
assert sys.modules["pyspark"] is None and not any(m.startswith("pyspark.") for m in sys.modules)
sys.exit(fink_t2.tools.cli.main(["score", {str(sample_path)!r}, "--engine", "pandas", "--summary", "--no-progress"]))
"""
    done = _without_pyspark(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "329 alerts" in done.stdout


def test_spark_commands_without_pyspark_say_how_to_install_it(tmp_path, sample_path):
    code = f"""
import fink_t2.tools.cli
out = {str(tmp_path / "out")!r}
code = fink_t2.tools.cli.main(["score", {str(sample_path)!r}, "--output", out])
assert code == 2, code
code = fink_t2.tools.cli.main(["stream", "--input", {str(tmp_path)!r}, "--output", out, "--checkpoint", out + ".ck"])
assert code == 2, code
try:
    import fink_t2.spark.processor
except ImportError as error:
    print("import:", error, file=sys.stderr)
"""
    done = _without_pyspark(code, tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 3 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("fink-t2 score: error: pyspark is not installed")
    assert lines[1].startswith("fink-t2 stream: error: pyspark is not installed")
    assert all("pip install 'fink-t2[spark]'" in line for line in lines)
    assert list(tmp_path.iterdir()) == []
