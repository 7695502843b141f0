"""Serving the model: verified loading and batched LiteRT inference.

A model is a TFLite flatbuffer plus a YAML metadata file beside it (same stem)
recording its size, sha256, input shape, band and class order and the
preparation parameters it was trained with. The bytes are checked against the
metadata *before* the interpreter sees them, and the interpreter's tensor
shapes against the metadata after. Loading happens once per process
(:func:`get_model`); Spark workers reuse the interpreter across batches.

Never imports TensorFlow: the interpreter comes from ``ai_edge_litert``, or
from ``tflite_runtime`` where LiteRT is not installed.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from fink_t2.calibration import FLAT, calibrate, prior_vector
from fink_t2.classes import CLASSES
from fink_t2.lightcurves import BANDS, PreparationConfig

#: The model shipped inside the package.
DEFAULT_MODEL = Path(__file__).resolve().parent / "data" / "t2.tflite"

#: Largest number of light curves per interpreter call.
DEFAULT_CHUNK = 1024

#: How many times a model file was loaded in this process (tests check reuse).
LOAD_COUNT = 0

_CACHE: dict[tuple[str, int, str | None], "T2Model"] = {}
_CACHE_LOCK = threading.Lock()


class ModelFileError(RuntimeError):
    """The model file or its metadata is missing, damaged or does not match."""


#: How to fix a model file that is damaged or does not match its metadata (ends every such error).
_FIX = "reinstall fink-t2, or write the model and its metadata again with 'fink-t2 compress'"


def interpreter_class():
    """LiteRT's Interpreter, falling back to tflite-runtime's."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as error:
            raise ImportError(
                "No TFLite interpreter: install 'ai-edge-litert' (or 'tflite-runtime')."
            ) from error
    return Interpreter


def metadata_path(model_path: str | Path) -> Path:
    """The metadata file of a model: same folder and stem, ``.yaml``."""
    return Path(model_path).with_suffix(".yaml")


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_metadata(model_path: str | Path) -> dict:
    """The model's metadata, checked for the keys the runtime relies on."""
    path = metadata_path(model_path)
    if not path.exists():
        raise ModelFileError(f"model metadata not found: {path}, for the model {model_path} (every .tflite "
                             "needs its .yaml beside it; "
                             "regenerate both with 'fink-t2 compress')")
    try:
        with open(path, encoding="utf-8") as handle:
            meta = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        raise ModelFileError(f"model metadata {path} is not valid YAML: {error}") from error
    required = ("size_bytes", "sha256", "input_shape", "bands", "classes", "preparation")
    missing = [key for key in required if not isinstance(meta, dict) or key not in meta]
    if missing:
        raise ModelFileError(f"model metadata {path} lacks {missing} ({_FIX})")
    return meta


def verify_model_bytes(model_path: str | Path, data: bytes, meta: dict) -> None:
    """Size and sha256 of the bytes against the metadata; raises ModelFileError on mismatch."""
    if len(data) != int(meta["size_bytes"]):
        raise ModelFileError(f"model file {model_path} has {len(data)} bytes, its metadata says "
                             f"{meta['size_bytes']}: the file is truncated or replaced ({_FIX})")
    digest = sha256_of(data)
    if digest != meta["sha256"]:
        raise ModelFileError(f"model file {model_path} has sha256 {digest}, its metadata says {meta['sha256']}: "
                             f"refusing to load it ({_FIX})")
    if list(meta["bands"]) != list(BANDS):
        raise ModelFileError(f"model {model_path} expects bands {meta['bands']}, this package prepares "
                             f"{list(BANDS)} ({_FIX})")
    if list(meta["classes"]) != list(CLASSES):
        raise ModelFileError(f"model {model_path} has classes {meta['classes']}, expected {CLASSES} ({_FIX})")


@dataclass
class T2Model:
    """A verified TFLite t2 with its preparation parameters; ``predict`` is batched."""

    path: Path
    metadata: dict
    preparation: PreparationConfig
    interpreter: object
    num_threads: int
    prior: str | None = None  # class prior of the output: None, the metadata's default

    def __post_init__(self) -> None:
        self.temperature, self.prior, self._prior = model_calibration(self.path, self.metadata, self.prior)
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._batch = int(self._input["shape"][0])
        self._lock = threading.Lock()

    @property
    def input_shape(self) -> tuple[int, int]:
        """(n_steps, n_bands) of one light curve."""
        return int(self._input["shape"][1]), int(self._input["shape"][2])

    def _resize(self, batch: int) -> None:
        """Make the interpreter take at least ``batch`` light curves.

        Re-allocating tensors costs about as much as scoring a thousand light
        curves, so sizes only grow, in powers of two up to the chunk size, and
        smaller batches are zero-padded.
        """
        if batch > self._batch:
            batch = 1 << (batch - 1).bit_length()
            self.interpreter.resize_tensor_input(self._input["index"], [batch, *self.input_shape])
            self.interpreter.allocate_tensors()
            self._input = self.interpreter.get_input_details()[0]
            self._output = self.interpreter.get_output_details()[0]
            self._batch = batch

    def predict(self, values: np.ndarray, chunk: int = DEFAULT_CHUNK, calibrated: bool = True) -> np.ndarray:
        """Class probabilities (n, 14) for prepared inputs (n, n_steps, n_channels): one invoke per chunk.

        ``calibrated`` applies the model's temperature and class prior (see
        :mod:`fink_t2.calibration`); False gives the network's own softmax.
        """
        values = np.asarray(values, dtype=np.float32)
        if values.ndim != 3 or values.shape[1:] != self.input_shape:
            raise ValueError(f"expected inputs of shape (n, {self.input_shape[0]}, {self.input_shape[1]}), "
                             f"got {values.shape}")
        out = np.empty((len(values), len(CLASSES)), dtype=np.float32)
        with self._lock:
            for start in range(0, len(values), chunk):
                part = values[start:start + chunk]
                self._resize(min(len(part), chunk))
                if len(part) < self._batch:
                    part = np.concatenate([part, np.zeros((self._batch - len(part), *self.input_shape), np.float32)])
                self.interpreter.set_tensor(self._input["index"], np.ascontiguousarray(part))
                self.interpreter.invoke()
                n = min(chunk, len(values) - start)
                out[start:start + n] = self.interpreter.get_tensor(self._output["index"])[:n]
        if calibrated and (self._prior is not None or self.temperature != 1.0):
            out = calibrate(out, self.temperature, self._prior)
        return out


def model_calibration(path: Path, meta: dict, prior: str | None) -> tuple[float, str, np.ndarray | None]:
    """(temperature, prior name, prior vector or None for flat) from the metadata's ``calibration`` section.

    A model without the section (trained before it existed) has temperature 1
    and the flat prior it was trained with. ``prior`` overrides the default;
    ``"flat"`` is always available and is the network's own output (flat
    prior, temperature 1: the temperature was fitted with the named prior).
    """
    section = meta.get("calibration") or {}
    where = f"model metadata {metadata_path(path)}"
    if not isinstance(section, dict):
        raise ModelFileError(f"{where}: 'calibration' must be a mapping ({_FIX})")
    priors = section.get("class_priors") or {}
    name = prior if prior is not None else section.get("prior", FLAT)
    if name != FLAT and name not in priors:
        raise ModelFileError(f"{where}: unknown class prior {name!r}; this model offers "
                             f"{[FLAT, *priors]} (pass one of them)")
    try:
        temperature = 1.0 if name == FLAT else float(section.get("temperature", 1.0))
        vector = None if name == FLAT else prior_vector(priors[name])
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{where}: bad calibration: {error} ({_FIX})") from error
    if not (np.isfinite(temperature) and temperature > 0):
        raise ModelFileError(f"{where}: calibration temperature must be a number > 0 ({_FIX})")
    return temperature, name, vector


def load_model(model_path: str | Path | None = None, num_threads: int = 1, prior: str | None = None) -> T2Model:
    """Read, verify and open a model (always from disk; prefer :func:`get_model`).

    ``prior`` names the class prior of the output (None: the model's default, see its YAML).
    """
    global LOAD_COUNT
    path = Path(model_path) if model_path is not None else DEFAULT_MODEL
    if not path.exists():
        raise ModelFileError(f"model file not found: {path} (set 'model_path' in the configuration or pass "
                             "--model; the package ships fink_t2/data/t2.tflite)")
    meta = read_metadata(path)
    data = path.read_bytes()
    verify_model_bytes(path, data, meta)
    try:
        preparation = PreparationConfig.from_dict(meta["preparation"])
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"model metadata {metadata_path(path)}: bad preparation parameters: {error}") from error
    try:
        interpreter = interpreter_class()(model_content=data, num_threads=num_threads)
        interpreter.allocate_tensors()
    except ImportError:
        raise
    except Exception as error:  # the interpreter raises ValueError/RuntimeError on a bad flatbuffer
        raise ModelFileError(f"model file {path} could not be opened by the TFLite interpreter: {error} "
                             f"({_FIX})") from error
    model = T2Model(path, meta, preparation, interpreter, num_threads, prior)
    expected = [int(preparation.n_steps), preparation.n_channels]
    declared = [int(v) for v in meta["input_shape"][1:]]
    if list(model.input_shape) != expected or declared != expected:
        raise ModelFileError(f"model {path} takes inputs {list(model.input_shape)} (metadata says {declared}), "
                             f"but its preparation makes {expected} ({_FIX})")
    n_out = int(model._output["shape"][-1])
    if n_out != len(CLASSES):
        raise ModelFileError(f"model {path} outputs {n_out} values, expected {len(CLASSES)} classes ({_FIX})")
    LOAD_COUNT += 1
    return model


def get_model(model_path: str | Path | None = None, num_threads: int = 1, prior: str | None = None) -> T2Model:
    """The process-wide model for ``model_path`` (and ``prior``): loaded on first use, then reused."""
    path = Path(model_path) if model_path is not None else DEFAULT_MODEL
    key = (str(path.resolve()), int(num_threads), prior)
    with _CACHE_LOCK:
        model = _CACHE.get(key)
        if model is None:
            model = load_model(path, num_threads, prior)
            _CACHE[key] = model
        return model


def write_metadata(model_path: str | Path, data: bytes, preparation: PreparationConfig,
                   extra: dict | None = None) -> Path:
    """Write the metadata YAML for the model bytes ``data`` saved at ``model_path``."""
    meta = {
        "model_file": Path(model_path).name,
        "size_bytes": len(data),
        "sha256": sha256_of(data),
        "input_shape": [None, int(preparation.n_steps), preparation.n_channels],
        "output_shape": [None, len(CLASSES)],
        "bands": list(BANDS),
        "classes": list(CLASSES),
        "preparation": preparation.to_dict(),
    }
    meta.update(extra or {})
    path = metadata_path(model_path)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(meta, handle, sort_keys=False)
    return path
