"""Model loading: verification before use, shapes, caching, batching, no TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import copy_model

from fink_t2.scoring import runtime
from fink_t2.scoring.classes import CLASSES
from fink_t2.scoring.lightcurves import BANDS
from fink_t2.scoring.runtime import DEFAULT_MODEL, ModelFileError, load_model, metadata_path, sha256_of


def test_shipped_model_matches_its_metadata():
    meta = yaml.safe_load(metadata_path(DEFAULT_MODEL).read_text())
    data = DEFAULT_MODEL.read_bytes()
    assert len(data) == meta["size_bytes"] and sha256_of(data) == meta["sha256"]
    assert meta["classes"] == CLASSES and meta["bands"] == list(BANDS)
    model = load_model()
    assert model.input_shape == (meta["preparation"]["n_steps"], model.preparation.n_channels)
    assert meta["input_shape"][1:] == list(model.input_shape)


def test_predictions_are_probabilities_and_independent_of_batching():
    model = load_model()
    x = np.random.default_rng(0).normal(0, 0.5, (70, *model.input_shape)).astype(np.float32)
    full = model.predict(x)
    assert full.shape == (70, 14)
    np.testing.assert_allclose(full.sum(axis=1), 1.0, atol=1e-4)
    parts = np.concatenate([model.predict(x[:3]), model.predict(x[3:40], chunk=16), model.predict(x[40:])])
    np.testing.assert_allclose(parts, full, atol=1e-5)
    assert model.predict(np.zeros((0, *model.input_shape), np.float32)).shape == (0, 14)
    with pytest.raises(ValueError, match="shape"):
        model.predict(np.zeros((2, 5, 2), np.float32))


def test_tampered_model_is_refused_before_use(tmp_path):
    data = bytearray(DEFAULT_MODEL.read_bytes())
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(ModelFileError, match="sha256"):
        load_model(copy_model(tmp_path, bytes(data)))


def test_truncated_model_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="truncated"):
        load_model(copy_model(tmp_path, DEFAULT_MODEL.read_bytes()[:1000]))


def test_missing_files_give_clear_errors(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "absent.tflite")
    lone = tmp_path / "lone.tflite"
    lone.write_bytes(DEFAULT_MODEL.read_bytes())
    with pytest.raises(ModelFileError, match="metadata not found"):
        load_model(lone)


def test_metadata_that_disagrees_with_the_file_is_refused(tmp_path):
    meta = yaml.safe_load(metadata_path(DEFAULT_MODEL).read_text())
    wrong_steps = {**meta["preparation"], "n_steps": meta["preparation"]["n_steps"] + 4}
    with pytest.raises(ModelFileError, match="inputs"):
        load_model(copy_model(tmp_path, meta_changes={"preparation": wrong_steps}))
    with pytest.raises(ModelFileError, match="classes"):
        load_model(copy_model(tmp_path, meta_changes={"classes": list(reversed(CLASSES))}))
    with pytest.raises(ModelFileError, match="bands"):
        load_model(copy_model(tmp_path, meta_changes={"bands": ["r", "g"]}))
    with pytest.raises(ModelFileError, match="lacks"):
        load_model(_drop_key(tmp_path))


def _drop_key(tmp_path: Path) -> Path:
    path = copy_model(tmp_path)
    meta = yaml.safe_load(metadata_path(path).read_text())
    del meta["sha256"]
    metadata_path(path).write_text(yaml.safe_dump(meta))
    return path


def test_not_a_flatbuffer_is_refused_with_the_file_name(tmp_path):
    junk = b"not a tflite model" * 100
    path = copy_model(tmp_path, junk, {"size_bytes": len(junk), "sha256": sha256_of(junk)})
    with pytest.raises(ModelFileError, match="model.tflite"):
        load_model(path)


def test_get_model_loads_once_per_process(tmp_path):
    path = copy_model(tmp_path)
    before = runtime.LOAD_COUNT
    first = runtime.get_model(path)
    for _ in range(5):
        assert runtime.get_model(path) is first
    assert runtime.LOAD_COUNT == before + 1


def test_serving_path_never_imports_tensorflow():
    code = ("import sys, numpy as np; from fink_t2.scoring.runtime import get_model; m = get_model(); "
            "m.predict(np.zeros((4, *m.input_shape), np.float32)); "
            "print('tensorflow' in sys.modules, 'tf_keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.split() == ["False", "False"]
