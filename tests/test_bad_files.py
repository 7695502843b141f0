"""Bad model files, configuration files and inputs, at every entry point.

Each gives ONE error naming the file and saying how to fix it, at start-up: before any
alert is read (``pyarrow.parquet.read_table`` is never called, no Spark session is
started by the streaming job) and before anything is written (no output, no checkpoint).
Entry points: ``classify(model_path=...)``, ``fink-t2 score`` (pandas and Spark engines)
and ``run_t2_stream.py``. Complements test_runtime.py (the loader itself), test_batch.py
and test_stream.py (a first error of each kind).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import copy_model

from fink_t2 import classify
from fink_t2.scoring.runtime import DEFAULT_MODEL, ModelFileError, metadata_path, sha256_of
from fink_t2.tools.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent
MODEL_FIX = "fink-t2 compress"


@pytest.fixture
def no_reading(monkeypatch):
    """Fails the test if alerts are read (pyarrow) or a Spark session is started by the stream job."""
    import fink_t2.spark.processor
    import fink_t2.tools.batch

    def forbidden(*args, **kwargs):
        raise AssertionError("data were read or Spark started before the error")

    monkeypatch.setattr(fink_t2.tools.batch.pq, "read_table", forbidden)
    monkeypatch.setattr(fink_t2.spark.processor, "spark_session", forbidden)


# --------------------------------------------------------------------------- bad model files


def _model(folder: Path, data: bytes, meta_changes: dict | None = None) -> Path:
    return copy_model(folder, data, meta_changes, name="bad model.tflite")


def _bad_model(kind: str, folder: Path) -> Path:
    good = DEFAULT_MODEL.read_bytes()
    if kind == "missing":
        return folder / "absent.tflite"
    if kind == "truncated":
        return _model(folder, good[: len(good) // 3])
    if kind == "wrong_hash":
        tampered = bytearray(good)
        tampered[len(good) // 2] ^= 0x01
        return _model(folder, bytes(tampered))
    if kind == "wrong_input_shape":  # the flatbuffer takes n_steps, the metadata promises n_steps + 4
        meta = yaml.safe_load(metadata_path(DEFAULT_MODEL).read_text())
        steps = meta["preparation"]["n_steps"] + 4
        return _model(folder, good, {"input_shape": [None, steps, 2],
                                     "preparation": {**meta["preparation"], "n_steps": steps}})
    if kind == "not_a_model":
        junk = b"\x00not a flatbuffer" * 64
        return _model(folder, junk, {"size_bytes": len(junk), "sha256": sha256_of(junk)})
    if kind == "no_metadata":
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "lonely.tflite"
        path.write_bytes(good)
        return path
    raise ValueError(kind)


#: kind -> text the error must contain (besides the file name and a fix).
MODEL_ERRORS = {
    "missing": ("model file not found", "--model"),
    "truncated": ("truncated", MODEL_FIX),
    "wrong_hash": ("sha256", MODEL_FIX),
    "wrong_input_shape": ("takes inputs", MODEL_FIX),
    "not_a_model": ("could not be opened", MODEL_FIX),
    "no_metadata": ("metadata not found", MODEL_FIX),
}


def _one_error(text: str, prefix: str) -> str:
    """The single error line of a command's stderr."""
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@pytest.mark.parametrize("kind", list(MODEL_ERRORS))
def test_bad_model_in_classify(kind, tmp_path, sample_columns):
    path = _bad_model(kind, tmp_path)
    with pytest.raises(ModelFileError) as error:
        classify(sample_columns.iloc[:3], model_path=path)
    message = str(error.value)
    for text in MODEL_ERRORS[kind]:
        assert text in message
    assert path.name in message


@pytest.mark.parametrize("kind", list(MODEL_ERRORS))
def test_bad_model_in_score_pandas(kind, tmp_path, sample_path, capsys, no_reading):
    path = _bad_model(kind, tmp_path / "model")
    out = tmp_path / "out.parquet"
    assert cli_main(["score", str(sample_path), "--engine", "pandas", "--model", str(path), "--output", str(out),
                     "--no-progress"]) == 2
    line = _one_error(capsys.readouterr().err, "fink-t2 score: error:")
    assert path.name in line and all(text in line for text in MODEL_ERRORS[kind])
    assert not out.exists()


@pytest.mark.parametrize("kind", list(MODEL_ERRORS))
def test_bad_model_in_stream(kind, tmp_path, sample_path, stream_module, capsys, no_reading):
    path = _bad_model(kind, tmp_path / "model")
    raw, out, ckpt = tmp_path / "raw", tmp_path / "out", tmp_path / "ckpt"
    raw.mkdir()
    (raw / "a.parquet").write_bytes(sample_path.read_bytes())
    assert stream_module.main(["--input", str(raw), "--output", str(out), "--checkpoint", str(ckpt),
                               "--model", str(path), "--once"]) == 2
    line = _one_error(capsys.readouterr().err, "run_t2_stream: error:")
    assert path.name in line and all(text in line for text in MODEL_ERRORS[kind])
    assert not out.exists() and not ckpt.exists()


@pytest.mark.spark
def test_bad_models_in_score_spark(spark, tmp_path, sample_path, capsys):
    """The Spark engine (session already up) refuses each bad model before Spark reads the input."""
    for kind, texts in MODEL_ERRORS.items():
        path = _bad_model(kind, tmp_path / kind)
        out = tmp_path / f"out-{kind}"
        assert cli_main(["score", str(sample_path), "--model", str(path), "--output", str(out)]) == 2
        line = _one_error(capsys.readouterr().err, "fink-t2 score: error:")
        assert path.name in line and all(text in line for text in texts), kind
        assert not out.exists()


# --------------------------------------------------------------------------- bad configuration files

#: name -> (YAML text, texts the error must contain). "{file}" stands for the file's name.
STREAM_YAML = {
    "unknown_key": ("input: a\noutput: b\ncheckpoint: c\nmax_file_per_trigger: 3\n",
                    ["unknown key 'max_file_per_trigger'", "known keys"]),
    "unknown_nested_key": ("input: a\noutput: b\ncheckpoint: c\ncuts:\n  enable: true\n",
                           ["unknown key 'cuts.enable'"]),
    "int_as_string": ("input: a\noutput: b\ncheckpoint: c\nmax_files_per_trigger: '3'\n",
                      ["'max_files_per_trigger' must be an integer"]),
    "bool_as_string": ("input: a\noutput: b\ncheckpoint: c\nonce: 'yes'\n", ["'once' must be true or false"]),
    "float_as_list": ("input: a\noutput: b\ncheckpoint: c\ntrigger_seconds: [1, 2]\n",
                      ["'trigger_seconds' must be a number"]),
    "path_as_number": ("input: 12\noutput: b\ncheckpoint: c\n", ["'input' must be a string"]),
    "cuts_not_a_mapping": ("input: a\noutput: b\ncheckpoint: c\ncuts: true\n", ["'cuts' must be a mapping"]),
    "top_level_list": ("- input\n- output\n", ["the top level must be a mapping"]),
    "not_yaml": ("input: [a\noutput: b\n", ["not valid YAML"]),
    "python_tag": ("input: !!python/object/apply:os.getcwd []\noutput: b\ncheckpoint: c\n", ["not valid YAML"]),
    "missing_required": ("input: a\noutput: b\n", ["'checkpoint' is required"]),
    "negative_files": ("input: a\noutput: b\ncheckpoint: c\nmax_files_per_trigger: 0\n",
                       ["'max_files_per_trigger' must be >= 1"]),
    "negative_min_detections": ("input: a\noutput: b\ncheckpoint: c\ncuts:\n  min_detections: -1\n",
                                ["cuts.min_detections must be >= 0, got -1"]),
}

CUTS_YAML = {
    "unknown_key": ("cuts:\n  enabled: true\n  max_history: 90\n", ["unknown key 'cuts.max_history'"]),
    "unknown_top_key": ("cut:\n  enabled: true\n", ["unknown key 'cut'"]),
    "wrong_type": ("cuts:\n  min_detections: two\n", ["'cuts.min_detections' must be an integer"]),
    "bool_as_int": ("cuts:\n  enabled: 1\n", ["'cuts.enabled' must be true or false"]),
    "list_of_numbers": ("cuts:\n  xmatch_allowed: [1, 2]\n", ["'cuts.xmatch_allowed[0]' must be a string"]),
    "python_tag": ("cuts: !!python/object/new:dict {}\n", ["not valid YAML"]),
    "missing_file": (None, ["configuration file not found"]),
    "negative_min_detections": ("cuts:\n  min_detections: -3\n", ["cuts.min_detections must be >= 0, got -3"]),
    "zero_history": ("cuts:\n  max_history_days: 0\n", ["cuts.max_history_days must be > 0, got 0"]),
}


@pytest.mark.parametrize("name", list(STREAM_YAML))
def test_bad_stream_config(name, tmp_path, stream_module, capsys, no_reading):
    text, expected = STREAM_YAML[name]
    config = tmp_path / f"stream-{name}.yaml"
    config.write_text(text)
    assert stream_module.main(["--config", str(config), "--once"]) == 2
    line = _one_error(capsys.readouterr().err, "run_t2_stream: error:")
    assert config.name in line
    for part in expected:
        assert part in line
    assert sorted(p.name for p in tmp_path.iterdir()) == [config.name]  # nothing created


@pytest.mark.parametrize("name", list(CUTS_YAML))
def test_bad_cuts_config(name, tmp_path, sample_path, capsys, no_reading):
    text, expected = CUTS_YAML[name]
    config = tmp_path / f"cuts-{name}.yaml"
    if text is not None:
        config.write_text(text)
    out = tmp_path / "out.parquet"
    assert cli_main(["score", str(sample_path), "--engine", "pandas", "--cuts-config", str(config), "--output",
                     str(out)]) == 2
    line = _one_error(capsys.readouterr().err, "fink-t2 score: error:")
    assert config.name in line
    for part in expected:
        assert part in line
    assert not out.exists()


def test_repository_cuts_config_is_valid():
    from fink_t2.scoring.cuts import load_cuts

    cuts = load_cuts(ROOT / "conf" / "cuts.yaml")
    assert cuts.enabled and cuts.min_detections == 2


# --------------------------------------------------------------------------- bad inputs


def _inputs(kind: str, folder: Path, sample_path: Path) -> tuple[Path, str]:
    """An input directory with a problem, and the file the error must name."""
    folder.mkdir(parents=True)
    data = sample_path.read_bytes()
    (folder / "good.parquet").write_bytes(data)
    if kind == "no_parquet":
        (folder / "good.parquet").unlink()
        (folder / "alerts.avro").write_bytes(b"Obj\x01")
        return folder, folder.name
    if kind == "empty_file":
        (folder / "zero.parquet").write_bytes(b"")
        return folder, "zero.parquet"
    if kind == "truncated_parquet":  # a writer died half-way: no footer
        (folder / "half.parquet").write_bytes(data[: len(data) // 2])
        return folder, "half.parquet"
    if kind == "not_parquet":
        (folder / "notes.parquet").write_text("objectId,candid\nZTF1,1\n" * 50)
        return folder, "notes.parquet"
    if kind == "not_alerts":
        pq.write_table(pa.table({"objectId": ["ZTF1"], "ra": [1.0]}), folder / "catalogue.parquet")
        return folder, "catalogue.parquet"
    raise ValueError(kind)


INPUT_ERRORS = {
    "no_parquet": "no parquet file found under",
    "empty_file": "cannot read parquet file",
    "truncated_parquet": "cannot read parquet file",
    "not_parquet": "cannot read parquet file",
    "not_alerts": "does not hold ZTF alerts",
}


@pytest.mark.parametrize("kind", list(INPUT_ERRORS))
def test_bad_inputs_in_stream(kind, tmp_path, sample_path, stream_module, capsys, no_reading):
    raw, named = _inputs(kind, tmp_path / "raw", sample_path)
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    assert stream_module.main(["--input", str(raw), "--output", str(out), "--checkpoint", str(ckpt), "--once"]) == 2
    line = _one_error(capsys.readouterr().err, "run_t2_stream: error:")
    assert INPUT_ERRORS[kind] in line and named in line
    assert not out.exists() and not ckpt.exists()


@pytest.mark.parametrize("kind", [k for k in INPUT_ERRORS if k != "no_parquet"])
def test_bad_input_file_in_score_pandas(kind, tmp_path, sample_path, capsys, no_reading):
    folder, named = _inputs(kind, tmp_path / "in", sample_path)
    (folder / "good.parquet").unlink()
    target = folder / named
    out = tmp_path / "out.parquet"
    assert cli_main(["score", str(target), "--engine", "pandas", "--output", str(out), "--no-progress"]) == 2
    line = _one_error(capsys.readouterr().err, "fink-t2 score: error:")
    assert INPUT_ERRORS[kind] in line and named in line
    assert not out.exists()


@pytest.mark.spark
def test_bad_inputs_in_score_spark(spark, tmp_path, sample_path, capsys):
    for kind, text in INPUT_ERRORS.items():
        folder, named = _inputs(kind, tmp_path / kind, sample_path)
        out = tmp_path / f"out-{kind}"
        assert cli_main(["score", str(folder), "--output", str(out)]) == 2
        line = _one_error(capsys.readouterr().err, "fink-t2 score: error:")
        assert text in line and named in line, kind
        assert not out.exists()


def test_mixed_schemas_in_stream(tmp_path, sample_table, stream_module, capsys, no_reading):
    """A stream reads one schema: a file with other types is named, with the fix."""
    raw = tmp_path / "raw"
    raw.mkdir()
    pq.write_table(sample_table.slice(0, 10), raw / "a.parquet")
    wide = sample_table.slice(10, 10)
    column = wide.column_names.index("objectId")
    wide = wide.set_column(column, "objectId", wide.column("objectId").cast(pa.large_string()))
    pq.write_table(wide, raw / "b.parquet")
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    assert stream_module.main(["--input", str(raw), "--output", str(out), "--checkpoint", str(ckpt), "--once"]) == 2
    line = _one_error(capsys.readouterr().err, "run_t2_stream: error:")
    assert "different schemas" in line and "b.parquet" in line and "a.parquet" in line and "unify" in line
    assert not out.exists() and not ckpt.exists()


@pytest.mark.spark
def test_irreconcilable_schemas_in_score_spark(spark, tmp_path, sample_table, capsys):
    """The Spark engine unifies compatible schemas (test_batch); a 'candidate' that is not a struct is refused
    (since issue 26, by the footer check, before Spark reads anything)."""
    lake = tmp_path / "lake"
    lake.mkdir()
    pq.write_table(sample_table.slice(0, 10), lake / "a.parquet")
    odd = sample_table.slice(10, 5)
    odd = odd.set_column(odd.column_names.index("candidate"), "candidate", pa.array(range(5), type=pa.int64()))
    pq.write_table(odd, lake / "b.parquet")
    out = tmp_path / "out"
    assert cli_main(["score", str(lake), "--output", str(out)]) == 2
    line = _one_error(capsys.readouterr().err, "fink-t2 score: error:")
    assert "b.parquet" in line and "'candidate' column is not a struct (int64)" in line
    assert not out.exists()
