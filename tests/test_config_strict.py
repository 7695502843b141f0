"""Configuration and model metadata that validate but mean nothing are refused (issue 11, point 8 and 9).

Non-finite numbers, YAML alias bombs, duplicate keys, malformed model metadata and an
edited preparation section: each is one error naming the file (exit 2 at the command
line), raised before anything is read or created.
"""

from __future__ import annotations

import os
import re

import pytest
import yaml
from conftest import copy_model

from fink_t2.scoring.config import ConfigError
from fink_t2.scoring.cuts import load_cuts
from fink_t2.scoring.runtime import DEFAULT_MODEL, ModelFileError, load_model, metadata_identity, metadata_path
from fink_t2.spark.stream_config import load_stream_config
from fink_t2.tools.cli import main as cli_main

BASE = "input: a\noutput: b\ncheckpoint: c\n"

#: 437 bytes of YAML that safe_load expands into millions of nodes.
ALIAS_BOMB = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
              + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)))


def _one_line(text: str, prefix: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


@pytest.mark.parametrize("text, key", [
    (BASE + "trigger_seconds: .nan\n", "trigger_seconds"),
    (BASE + "trigger_seconds: .inf\n", "trigger_seconds"),
    (BASE + "cuts:\n  max_history_days: .nan\n", "cuts.max_history_days"),
    (BASE + "cuts:\n  max_history_days: -.inf\n", "cuts.max_history_days"),
])
def test_non_finite_numbers_are_refused(tmp_path, stream_module, capsys, text, key):
    config = tmp_path / "stream.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=f"'{key}' must be a finite number"):
        load_stream_config(config)
    assert stream_module.main(["--config", str(config), "--once"]) == 2
    line = _one_line(capsys.readouterr().err, "run_t2_stream: error:")
    assert "stream.yaml" in line and key in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stream.yaml"]  # no directory created


def test_nan_trigger_flag_is_refused_before_directories_are_made(tmp_path, sample_path, stream_module, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.parquet").write_bytes(sample_path.read_bytes())
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    assert stream_module.main(["--input", str(raw), "--output", str(out), "--checkpoint", str(ckpt),
                               "--trigger-seconds", "nan"]) == 2
    assert "trigger_seconds" in _one_line(capsys.readouterr().err, "run_t2_stream: error:")
    assert not out.exists() and not ckpt.exists()


def test_nan_cut_in_code_is_refused():
    from fink_t2.scoring import Cuts

    with pytest.raises(ValueError, match="max_history_days"):
        Cuts(max_history_days=float("nan"))


def test_alias_bomb_gives_a_short_error(tmp_path, sample_path, capsys):
    assert len(ALIAS_BOMB) < 600
    config = tmp_path / "cuts.yaml"
    config.write_text("cuts:\n  xmatch_allowed: *i\n" + ALIAS_BOMB.replace("a: &a", "z: &a"))
    assert cli_main(["score", str(sample_path), "--engine", "pandas", "--cuts-config", str(config)]) == 2
    err = capsys.readouterr().err
    line = _one_line(err, "fink-t2 score: error:")
    assert "cuts.yaml" in line and "aliases" in line and len(err) < 1000
    stream = tmp_path / "stream.yaml"
    stream.write_text(BASE + ALIAS_BOMB)
    with pytest.raises(ConfigError, match="aliases") as error:
        load_stream_config(stream)
    assert len(str(error.value)) < 1000


@pytest.mark.parametrize("text", [BASE + "once: true\nonce: false\n", "cuts:\n  enabled: true\n  enabled: false\n"])
def test_duplicate_keys_are_refused(tmp_path, text):
    config = tmp_path / "dup.yaml"
    config.write_text(text)
    loader = load_cuts if text.startswith("cuts") else load_stream_config
    with pytest.raises(ConfigError, match="duplicate key 'enabled'|duplicate key 'once'") as error:
        loader(config)
    assert "dup.yaml" in str(error.value) and "line" in str(error.value)


def test_huge_values_are_cut_in_messages(tmp_path):
    config = tmp_path / "stream.yaml"
    config.write_text(BASE + "query_name: [" + ", ".join(["x" * 50] * 2000) + "]\n")
    with pytest.raises(ConfigError, match="query_name") as error:
        load_stream_config(config)
    assert len(str(error.value)) < 400


# --------------------------------------------------------------------------- model metadata

def _edited(tmp_path, **changes):
    """A copy of the shipped model whose metadata YAML was edited by hand (identity not recomputed)."""
    path = copy_model(tmp_path)
    meta = yaml.safe_load(metadata_path(path).read_text())
    meta.update(changes)
    metadata_path(path).write_text(yaml.safe_dump(meta, sort_keys=False))
    return path


@pytest.mark.parametrize("changes, text", [
    ({"size_bytes": "abc"}, "'size_bytes' must be a positive integer"),
    ({"input_shape": 16}, "'input_shape' must be a list"),
    ({"classes": None}, "'classes' must be a list of strings"),
    ({"preparation": [1, 2]}, "'preparation' must be a mapping"),
    ({"sha256": 12}, "'sha256' must be 64 lower-case hex digits"),
])
def test_malformed_model_metadata_names_the_file(tmp_path, sample_path, capsys, changes, text):
    path = _edited(tmp_path / "m", **changes)
    with pytest.raises(ModelFileError, match=text) as error:
        load_model(path)
    assert str(metadata_path(path)) in str(error.value)
    assert cli_main(["score", str(sample_path), "--engine", "pandas", "--model", str(path), "--summary"]) == 2
    line = _one_line(capsys.readouterr().err, "fink-t2 score: error:")
    assert "model.yaml" in line and text in line


def test_edited_preparation_is_refused(tmp_path):
    """One preparation parameter changes most top classes: the identity covers it."""
    meta = yaml.safe_load(metadata_path(DEFAULT_MODEL).read_text())
    path = _edited(tmp_path, preparation={**meta["preparation"], "time_scale_days": 20.0})
    with pytest.raises(ModelFileError, match="was changed after the model was written"):
        load_model(path)
    for key, value in (("bands", ["g", "r", "i"]), ("output_shape", [None, 15])):
        with pytest.raises(ModelFileError, match="was changed"):
            load_model(_edited(tmp_path / key, **{key: value}))
    # A descriptive key is not part of the identity.
    load_model(_edited(tmp_path / "note", trained_on="a note"))


CALIBRATION = {"prior": "ztf_alerts", "temperature": 1.25, "temperature_fitted_on": "BTS, out of fold",
               "class_priors": {"ztf_alerts": {"SNIa": 0.5, "SNII": 0.2, "SNIbc": 0.03, "SLSN-I": 0.01, "TDE": 0.005,
                                               "SNIa-91bg": 0.01, "SNIax": 0.01, "KN": 0.001, "AGN": 0.1, "EB": 0.05,
                                               "RRL": 0.03, "Mira": 0.02, "M-dwarf": 0.03, "mu-Lens-Single": 0.004}}}


def test_optional_metadata_is_accepted_and_in_the_identity(tmp_path):
    """calibration, min_detections and context_channels (written by fink-t2 compress) load; the first two
    change outputs, so an edit of either, or removing one, is refused like an edit of the preparation."""
    from fink_t2.scoring import min_detections

    meta = yaml.safe_load(metadata_path(DEFAULT_MODEL).read_text())
    good = copy_model(tmp_path / "good", meta_changes={
        "calibration": CALIBRATION, "min_detections": 3,
        "preparation": meta["preparation"]})
    model = load_model(good)
    assert model.prior == "ztf_alerts" and model.temperature == 1.25 and min_detections(model) == 3
    for folder, changes in (("temperature", {"calibration": {**CALIBRATION, "temperature": 1.0}}),
                            ("minimum", {"min_detections": 1})):
        with pytest.raises(ModelFileError, match="was changed after the model was written"):
            load_model(_edited_copy(good, tmp_path / folder, changes))
    for folder, key in (("no_calibration", "calibration"), ("no_minimum", "min_detections")):
        with pytest.raises(ModelFileError, match="was changed"):
            load_model(_edited_copy(good, tmp_path / folder, {}, drop=key))


def _edited_copy(model, folder, changes: dict, drop: str | None = None):
    """``model`` and its metadata copied to ``folder``, the metadata edited by hand (identity kept)."""
    folder.mkdir(parents=True)
    path = folder / model.name
    path.write_bytes(model.read_bytes())
    meta = yaml.safe_load(metadata_path(model).read_text())
    meta.update(changes)
    if drop:
        del meta[drop]
    metadata_path(path).write_text(yaml.safe_dump(meta, sort_keys=False))
    return path


@pytest.mark.parametrize("changes, text", [
    ({"min_detections": "two"}, "'min_detections' must be a non-negative integer"),
    ({"min_detections": True}, "'min_detections' must be a non-negative integer"),
    ({"calibration": [1]}, "'calibration' must be a mapping"),
    ({"calibration": {**CALIBRATION, "temperature": "hot"}}, "'calibration.temperature' must be a finite number"),
    ({"calibration": {**CALIBRATION, "prior": 3}}, "'calibration.prior' must be a string"),
    ({"calibration": {**CALIBRATION, "scale": 2.0}}, "unknown key(s) ['scale'] in 'calibration'"),
    ({"calibration": {**CALIBRATION, "class_priors": {"ztf_alerts": {"SNIa": "most"}}}},
     "'calibration.class_priors.ztf_alerts' must be a mapping of class name -> finite number"),
    ({"held_out_flat_log_loss": "low"}, "'held_out_flat_log_loss' must be a finite number"),
    ({"model": [16, 2]}, "'model' must be a mapping"),
    ({"saved_model_bytes": -1}, "'saved_model_bytes' must be a non-negative integer"),
])
def test_mistyped_optional_metadata_is_refused(tmp_path, changes, text):
    """Written with a matching identity (as a buggy writer would): refused by type, naming the key."""
    path = copy_model(tmp_path, meta_changes=changes)
    with pytest.raises(ModelFileError, match=re.escape(text)) as error:
        load_model(path)
    assert str(metadata_path(path)) in str(error.value)


def test_write_metadata_covers_calibration(tmp_path):
    """write_metadata (fink-t2 compress's path) writes an identity covering the calibration it is given."""
    from fink_t2.scoring.lightcurves import PreparationConfig
    from fink_t2.training.compression import save_tflite

    shipped = yaml.safe_load(metadata_path(DEFAULT_MODEL).read_text())
    prep = PreparationConfig.from_dict(shipped["preparation"])
    path = save_tflite(DEFAULT_MODEL.read_bytes(), tmp_path / "cal.tflite", prep,
                       {"variant": "test", "calibration": CALIBRATION, "min_detections": 2})
    written = yaml.safe_load(metadata_path(path).read_text())
    assert written["identity_sha256"] != shipped["identity_sha256"]
    assert load_model(path).temperature == 1.25


def test_metadata_without_identity_is_refused(tmp_path):
    path = copy_model(tmp_path)
    meta = yaml.safe_load(metadata_path(path).read_text())
    del meta["identity_sha256"]
    metadata_path(path).write_text(yaml.safe_dump(meta))
    with pytest.raises(ModelFileError, match="lacks.*identity_sha256"):
        load_model(path)


def test_identity_is_written_by_write_metadata(tmp_path):
    """The identity comes from runtime.write_metadata (compression.save_tflite's path), not by hand."""
    from fink_t2.scoring.lightcurves import PreparationConfig
    from fink_t2.training.compression import save_tflite

    shipped = yaml.safe_load(metadata_path(DEFAULT_MODEL).read_text())
    assert shipped["identity_sha256"] == metadata_identity(shipped)
    kept = {k: shipped[k] for k in ("calibration", "min_detections") if k in shipped}  # in the identity
    path = save_tflite(DEFAULT_MODEL.read_bytes(), tmp_path / "saved.tflite",
                       PreparationConfig.from_dict(shipped["preparation"]), {"variant": "test", **kept})
    written = yaml.safe_load(metadata_path(path).read_text())
    assert written["identity_sha256"] == shipped["identity_sha256"]
    load_model(path)


def test_duplicate_key_in_model_metadata(tmp_path):
    path = copy_model(tmp_path)
    text = metadata_path(path).read_text()
    metadata_path(path).write_text(text + "sha256: " + "0" * 64 + "\n")
    with pytest.raises(ModelFileError, match="duplicate key 'sha256'"):
        load_model(path)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero on this system")
def test_model_linked_to_dev_zero_is_not_read(tmp_path):
    """A model path that is a device is refused; the loader never reads more than the recorded size."""
    folder = tmp_path / "m"
    copy_model(folder)
    path = folder / "model.tflite"
    path.unlink()
    path.symlink_to("/dev/zero")
    with pytest.raises(ModelFileError, match="not a regular file"):
        load_model(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_model_fifo_is_not_opened(tmp_path):
    folder = tmp_path / "m"
    copy_model(folder)
    path = folder / "model.tflite"
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(ModelFileError, match="not a regular file"):
        load_model(path)
