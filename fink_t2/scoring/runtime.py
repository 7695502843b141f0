"""Serving the model: verified loading and batched LiteRT inference.

A model is a TFLite flatbuffer plus a YAML metadata file beside it (same stem)
recording its size, sha256, input shape, band and class order, the survey it
was made for (key ``survey``, ZTF when absent: :mod:`fink_t2.scoring.surveys`)
and the preparation parameters it was trained with. The bytes are checked against the
metadata *before* the interpreter sees them, and the interpreter's tensor
shapes against the metadata after. Loading happens once per process
(:func:`get_model`); Spark workers reuse the interpreter across batches.

Never imports TensorFlow: the interpreter comes from ``ai_edge_litert``, or
from ``tflite_runtime`` where LiteRT is not installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from fink_t2.scoring.calibration import FLAT, calibrate, prior_vector
from fink_t2.scoring.classes import CLASSES
from fink_t2.scoring.lightcurves import PreparationConfig
from fink_t2.scoring.native_log import litert_notices_dropped
from fink_t2.scoring.paths import MODELS
from fink_t2.scoring.safe_yaml import error_text, read_text, short, strict_load
from fink_t2.scoring.surveys import DEFAULT_SURVEY, Survey, UnknownSurveyError, model_survey

#: The model shipped inside the package (``fink_t2/data/t2.tflite``).
DEFAULT_MODEL = MODELS / "t2.tflite"

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


#: The metadata keys that change a model's outputs: the bytes (sha256, size), the tensor shapes, the band
#: and class order and the preparation of the light curves. ``identity_sha256`` is their digest, together
#: with the :data:`OPTIONAL_IDENTITY_KEYS` a model has.
IDENTITY_KEYS = ("size_bytes", "sha256", "input_shape", "output_shape", "bands", "classes", "preparation")

#: Optional keys that change outputs too: the class prior and temperature applied after the interpreter
#: (``calibration``), the fewest detections the model judges (``min_detections``) and the survey whose
#: alerts it reads (``survey``; absent: ZTF). In the identity when present (adding, removing or editing
#: one changes it); a model without them keeps the identity it was written with.
OPTIONAL_IDENTITY_KEYS = ("calibration", "min_detections", "survey")


def metadata_identity(meta: dict) -> str:
    """sha256 of the canonical JSON of the :data:`IDENTITY_KEYS` (and present :data:`OPTIONAL_IDENTITY_KEYS`).

    Recorded by :func:`write_metadata` and checked by :func:`load_model`, so an
    edit of any of them (e.g. one preparation parameter, which moves most top
    classes, or the calibration temperature) is refused, not silently scored with.
    """
    covered = {key: meta.get(key) for key in IDENTITY_KEYS}
    covered.update({key: meta[key] for key in OPTIONAL_IDENTITY_KEYS if key in meta})
    canonical = json.dumps(covered, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return sha256_of(canonical.encode("utf-8"))


def _check_metadata_types(path: Path, meta: dict) -> None:
    """ModelFileError naming ``path`` and the key when a metadata value has the wrong type."""
    def bad(key: str, expected: str) -> ModelFileError:
        return ModelFileError(f"model metadata {path}: key {key!r} must be {expected}, got "
                              f"{type(meta[key]).__name__} {short(meta[key])} ({_FIX})")

    def is_int(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not is_int(meta["size_bytes"]) or meta["size_bytes"] <= 0:
        raise bad("size_bytes", "a positive integer")
    for key in ("sha256", "identity_sha256"):
        if not isinstance(meta[key], str) or not re.fullmatch(r"[0-9a-f]{64}", meta[key]):
            raise bad(key, "64 lower-case hex digits")
    for key in ("input_shape", "output_shape"):
        value = meta.get(key)
        if key in meta and not (isinstance(value, list) and len(value) >= 2 and (value[0] is None or is_int(value[0]))
                                and all(is_int(v) and v > 0 for v in value[1:])):
            raise bad(key, "a list [null, n, ...] of positive integers")
    for key in ("bands", "classes"):
        if not (isinstance(meta[key], list) and all(isinstance(v, str) for v in meta[key])):
            raise bad(key, "a list of strings")
    if not isinstance(meta["preparation"], dict):
        raise bad("preparation", "a mapping of preparation parameters")
    _check_optional_types(path, meta)
    _check_metadata_ranges(path, meta)


def _is_number(value) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


#: Optional informative keys (written by ``fink-t2 compress``; not in the identity): name -> (check, expected).
_INFORMATIVE = {
    "model_file": (lambda v: isinstance(v, str), "a string"),
    "variant": (lambda v: isinstance(v, str), "a string"),
    "trained_on": (lambda v: isinstance(v, str), "a string"),
    "keras_sha256": (lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) is not None,
                     "64 lower-case hex digits"),
    "held_out_flat_log_loss": (_is_number, "a finite number"),
    "held_out_balanced_accuracy": (_is_number, "a finite number"),
    "model": (lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v), "a mapping of model parameters"),
    "saved_model_bytes": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                          "a non-negative integer"),
}

#: The keys of the optional ``calibration`` section and their types (``class_priors`` checked apart).
_CALIBRATION = {"prior": (lambda v: isinstance(v, str), "a string"),
                "temperature": (_is_number, "a finite number"),
                "temperature_fitted_on": (lambda v: isinstance(v, str), "a string")}


def _check_optional_types(path: Path, meta: dict) -> None:
    """Types of the optional keys: ``min_detections``, the ``calibration`` section, the informative keys.

    Keys this package does not know are left alone (a newer writer may add notes).
    """
    def fail(key: str, value, expected: str) -> ModelFileError:
        return ModelFileError(f"model metadata {path}: key {key!r} must be {expected}, got "
                              f"{type(value).__name__} {short(value)} ({_FIX})")

    if "survey" in meta:
        metadata_survey(path, meta)  # a known survey, described as this package describes it
    if "min_detections" in meta:
        value = meta["min_detections"]
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            raise fail("min_detections", value, "a non-negative integer")
    for key, (check, expected) in _INFORMATIVE.items():
        if key in meta and not check(meta[key]):
            raise fail(key, meta[key], expected)
    if "calibration" not in meta:
        return
    section = meta["calibration"]
    if not isinstance(section, dict):
        raise fail("calibration", section, "a mapping (prior, temperature, temperature_fitted_on, class_priors)")
    unknown = sorted(str(key) for key in section if key not in (*_CALIBRATION, "class_priors"))
    if unknown:
        raise ModelFileError(f"model metadata {path}: unknown key(s) {unknown} in 'calibration' (known: "
                             f"{[*_CALIBRATION, 'class_priors']}) ({_FIX})")
    for key, (check, expected) in _CALIBRATION.items():
        if key in section and not check(section[key]):
            raise fail(f"calibration.{key}", section[key], expected)
    priors = section.get("class_priors", {})
    if not isinstance(priors, dict):
        raise fail("calibration.class_priors", priors, "a mapping of prior name -> {class name: probability}")
    for name, prior in priors.items():
        if not (isinstance(name, str) and isinstance(prior, dict)
                and all(isinstance(c, str) and _is_number(p) for c, p in prior.items())):
            raise fail(f"calibration.class_priors.{name}", prior, "a mapping of class name -> finite number")


#: Largest model file read (the shipped models are tens of kB): a bigger ``size_bytes`` is refused, not allocated.
MAX_MODEL_BYTES = 256 * 1024 * 1024

#: Plausible ranges of every number the metadata sets that changes scores: dotted key -> (low, high), inclusive.
#: A hash proves only that the file is what the folder says; values outside these ranges (``step_days: 1e308``,
#: a temperature of 1e-310) would be scored silently.
METADATA_RANGES = {
    "size_bytes": (1, MAX_MODEL_BYTES),
    "input_shape": (1, 4096),
    "output_shape": (1, 4096),
    "min_detections": (0, 1000),
    "preparation.n_steps": (2, 4096),
    "preparation.step_days": (1e-3, 1e4),
    "preparation.time_scale_days": (1e-3, 1e5),
    "preparation.wavelength_scale": (1.0, 1e6),
    "preparation.noise_floor": (1e-6, 10.0),
    "preparation.max_points": (1, 100_000),
    "preparation.limit_noise_factor": (1e-3, 1e3),
    "preparation.coarse_steps": (0, 4096),
    "preparation.coarse_step_days": (0.0, 1e4),
    "calibration.temperature": (1e-2, 1e2),
    "calibration.class_priors": (1e-9, 1.0),
    "held_out_flat_log_loss": (0.0, 1e3),
    "held_out_balanced_accuracy": (0.0, 1.0),
    "saved_model_bytes": (0, 1 << 40),
}


def _check_metadata_ranges(path: Path, meta: dict) -> None:
    """ModelFileError (one line: the file, the key, the range, the fix) for a number outside :data:`METADATA_RANGES`."""
    def check(key: str, value, range_key: str | None = None) -> None:
        low, high = METADATA_RANGES[range_key or key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return  # types are checked elsewhere (a preparation flag, a null batch dimension)
        if not low <= value <= high:  # NaN and infinities fail too; ints of any size compare exactly
            raise ModelFileError(f"model metadata {path}: key {key!r} is {short(value)}, outside the plausible range "
                                 f"[{low:g}, {high:g}]: the file was edited or damaged; {_FIX}")

    for key in ("size_bytes", "min_detections", "held_out_flat_log_loss", "held_out_balanced_accuracy",
                "saved_model_bytes"):
        if key in meta:
            check(key, meta[key])
    for key in ("input_shape", "output_shape"):
        for i, value in enumerate(meta.get(key) or []):
            if i > 0:
                check(f"{key}[{i}]", value, key)
    preparation = meta["preparation"]
    for name in ("n_steps", "step_days", "time_scale_days", "wavelength_scale", "noise_floor", "max_points",
                 "limit_noise_factor", "coarse_steps", "coarse_step_days"):
        if name in preparation:
            check(f"preparation.{name}", preparation[name])
    section = meta.get("calibration")
    if isinstance(section, dict):
        if "temperature" in section:
            check("calibration.temperature", section["temperature"])
        for name, prior in (section.get("class_priors") or {}).items():
            for label, value in prior.items():
                check(f"calibration.class_priors.{name}.{label}", value, "calibration.class_priors")


def read_metadata(model_path: str | Path) -> dict:
    """The model's metadata, checked for the keys the runtime relies on."""
    path = metadata_path(model_path)
    if not path.exists():
        raise ModelFileError(f"model metadata not found: {path}, for the model {model_path} (every .tflite "
                             "needs its .yaml beside it; "
                             "regenerate both with 'fink-t2 compress')")
    try:
        meta = strict_load(read_text(path))
    except yaml.YAMLError as error:
        raise ModelFileError(f"model metadata {path} is not valid YAML: {error_text(error)} ({_FIX})") from error
    except (OSError, ValueError) as error:  # unreadable, not UTF-8, too large
        raise ModelFileError(f"model metadata {path} cannot be read: {error_text(error)} ({_FIX})") from error
    if not isinstance(meta, dict):
        raise ModelFileError(f"model metadata {path} is not a mapping of keys, got {type(meta).__name__} ({_FIX})")
    required = ("size_bytes", "sha256", "input_shape", "bands", "classes", "preparation", "identity_sha256")
    missing = [key for key in required if key not in meta]
    if missing:
        raise ModelFileError(f"model metadata {path} lacks {missing} ({_FIX})")
    _check_metadata_types(path, meta)
    try:
        identity = metadata_identity(meta)
    except (TypeError, ValueError) as error:  # a value JSON cannot hold (NaN, a date, ...)
        raise ModelFileError(f"model metadata {path}: {error} ({_FIX})") from error
    if identity != meta["identity_sha256"]:
        raise ModelFileError(f"model metadata {path} was changed after the model was written: its "
                             f"{', '.join(IDENTITY_KEYS + OPTIONAL_IDENTITY_KEYS)} hash to {identity}, its "
                             f"identity_sha256 says {meta['identity_sha256']}; refusing to score with it ({_FIX})")
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
    survey = metadata_survey(model_path, meta)
    if list(meta["bands"]) != list(survey.bands):
        raise ModelFileError(f"model {model_path} expects bands {meta['bands']}, this package prepares "
                             f"{list(survey.bands)} for survey {survey.name!r} ({_FIX})")
    if list(meta["classes"]) != list(CLASSES):
        raise ModelFileError(f"model {model_path} has classes {meta['classes']}, expected {CLASSES} ({_FIX})")


def metadata_survey(model_path: str | Path, meta: dict) -> Survey:
    """The survey of a model's metadata (ZTF without a ``survey`` key); ModelFileError if it is unknown."""
    try:
        return model_survey(meta, f"model metadata {metadata_path(model_path)}")
    except UnknownSurveyError as error:
        raise ModelFileError(f"{error} ({_FIX})") from error


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
    def survey(self) -> Survey:
        """The survey whose alerts this model reads (its preparation's)."""
        return self.preparation.survey_description

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
            with litert_notices_dropped():
                self.interpreter.allocate_tensors()
            self._input = self.interpreter.get_input_details()[0]
            self._output = self.interpreter.get_output_details()[0]
            self._batch = batch

    def predict(self, values: np.ndarray, chunk: int = DEFAULT_CHUNK, calibrated: bool = True) -> np.ndarray:
        """Class probabilities (n, 14) for prepared inputs (n, n_steps, n_channels): one invoke per chunk.

        ``calibrated`` applies the model's temperature and class prior (see
        :mod:`fink_t2.scoring.calibration`); False gives the network's own softmax.
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


def _read_bounded(path: Path, size: int) -> bytes:
    """At most ``size + 1`` bytes of a regular file (a link to /dev/zero or a FIFO is refused, not read forever)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ModelFileError(f"model file {path} is not a regular file (a device, FIFO or socket): point "
                                 f"--model or 'model_path' at the .tflite file ({_FIX})")
        with open(path, "rb") as handle:
            return handle.read(size + 1)
    except OSError as error:
        raise ModelFileError(f"model file {path} cannot be read: {error} ({_FIX})") from error


def load_model(model_path: str | Path | None = None, num_threads: int = 1, prior: str | None = None) -> T2Model:
    """Read, verify and open a model (always from disk; prefer :func:`get_model`).

    ``prior`` names the class prior of the output (None: the model's default, see its YAML).
    """
    global LOAD_COUNT
    path = Path(model_path) if model_path is not None else DEFAULT_MODEL
    if not path.exists():
        shipped = ", ".join(f"fink_t2/data/{p.name}" for p in sorted(MODELS.glob("*.tflite"))) or "no model"
        raise ModelFileError(f"model file not found: {path} (set 'model_path' in the configuration or pass "
                             f"--model; the package ships {shipped})")
    meta = read_metadata(path)
    data = _read_bounded(path, meta["size_bytes"])
    verify_model_bytes(path, data, meta)
    try:
        preparation = PreparationConfig.from_dict(meta["preparation"])
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"model metadata {metadata_path(path)}: bad preparation parameters: {error}") from error
    survey = metadata_survey(path, meta)
    if preparation.survey != survey.name:
        raise ModelFileError(f"model metadata {metadata_path(path)}: its preparation is for survey "
                             f"{preparation.survey!r}, its survey is {survey.name!r} ({_FIX})")
    try:
        interpreter = interpreter_class()(model_content=data, num_threads=num_threads)
        with litert_notices_dropped():  # LiteRT's "Created ... XNNPACK delegate" notice, once per worker
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
    """Write the metadata YAML for the model bytes ``data`` saved at ``model_path``.

    The survey is the preparation's; it is recorded (key ``survey``) unless it is ZTF, whose
    models have always been written without it.
    """
    survey = preparation.survey_description
    meta = {
        "model_file": Path(model_path).name,
        "size_bytes": len(data),
        "sha256": sha256_of(data),
        "input_shape": [None, int(preparation.n_steps), preparation.n_channels],
        "output_shape": [None, len(CLASSES)],
        "bands": list(survey.bands),
        "classes": list(CLASSES),
        "preparation": preparation.to_dict(),
    }
    if survey.name != DEFAULT_SURVEY:
        meta["survey"] = survey.to_dict()
    meta.update(extra or {})
    meta.pop("identity_sha256", None)
    meta["identity_sha256"] = metadata_identity(meta)  # last: over the values actually written
    path = metadata_path(model_path)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(meta, handle, sort_keys=False)
    return path
