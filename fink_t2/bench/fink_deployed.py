"""The Fink-as-deployed t2 procedure, reimplemented as a baseline ("the before").

Bench / evaluation only: nothing on the scoring path (``fink_t2.scoring``,
``fink_t2.spark.processor``, ``fink_t2.scoring.runtime``) may import this module. It needs
the ``bench`` extra: ``george`` (imported lazily, only when a GP is fitted)
and the TFLite file Fink deployed, shipped in the ``fink-science==7.4.0``
wheel (``pip install --no-deps fink-science==7.4.0``).

What Fink ran per alert (REFERENCE §4, faults 1-5), and what this module does:

* points: detections only (alert entries with a valid ``magpsf``; upper
  limits were dropped), magnitudes -> FLUXCAL; ``isdiffpos`` was ignored.
  Alerts need at least 2 valid magnitudes and both g and r.
* one 2-D Gaussian process per alert over (time, wavelength) with george:
  Matern-3/2, wavelength length scale fixed at 6000 A, time length scale
  starting at 20 d, variance ``(|flux| of the highest-S/N point / 2)^2``
  (S/N with a floor of 1 % of the peak flux), the 1-sigma flux errors on
  the diagonal, zero mean; log-variance (start +- 10) and log(time length^2)
  (between 0 and log(1000^2)) fitted by L-BFGS-B on george's likelihood and
  gradient (tolerance 1e-6); the start values are kept if the fit fails;
* the GP mean on 100 evenly spaced times from the first to the last point,
  per band;
* robust scaling **per object and per band**: each band's 100 values minus
  their median, over their inter-quartile range (an IQR of 0 becomes 1).
  Fink applied a robust scaler fitted on the one-alert table of 100 rows x
  2 band columns, which scales each column on its own; training had fitted it
  per band on the whole training set (fault 3: global vs per-object, not
  per band vs pooled);
* one ``invoke`` per alert, interpreter created inside the UDF body.

``corrected=False`` also reproduces faults 1 and 2: time ran backwards
(``t = jd[0] - jd``; the 100 rows, sorted by that time, run from the latest
to the earliest epoch) and the two columns came out in the iteration order of
a Python ``set`` of band names, which depends on ``PYTHONHASHSEED``
(:func:`process_band_order`, :func:`band_order_for_hash_seed`).
``corrected=True`` uses forward time and [g, r], as the model was trained.
The stationary kernel makes the fit blind to the time direction, so the
uncorrected input is the corrected one reversed in time (and band-swapped for
the order ``("r", "g")``) up to floating-point rounding.

Timing: george factorises small matrices through LAPACK; with OpenBLAS's
default threads and another busy process on the machine a 50-point fit took
40-490 ms instead of about 8 ms. Measure per core with
``OPENBLAS_NUM_THREADS=1`` (set before numpy is imported, e.g. in the Spark
executor environment).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from fink_t2.scoring.classes import N_CLASSES
from fink_t2.scoring.lightcurves import BAND_WAVELENGTHS, BANDS, Observations
from fink_t2.scoring.paths import PACKAGE
from fink_t2.scoring.runtime import interpreter_class

#: File name of the deployed model inside ``fink_science/data/models``.
DEPLOYED_MODEL_NAME = "quantized-model-GR-noZ-28341-1654269564-0.5.1.dev73+g70f85f8-LL0.836.tflite"
#: Size and sha256 of that file (computed from the fink-science 7.4.0 wheel).
DEPLOYED_MODEL_SIZE = 60_320
DEPLOYED_MODEL_SHA256 = "72fa864c36f46479efec6d19dc71dd2e6fe54ee1e1b80efb7bc9d7599b98ceaf"
#: Environment variable that may point to the file.
MODEL_ENV_VAR = "FINK_T2_DEPLOYED_MODEL"
_INSTALL_HINT = ("install it with 'pip install --no-deps fink-science==7.4.0' (the bench extra does), pass its path, "
                 f"or set {MODEL_ENV_VAR} to the .tflite file")

#: Grid length of the deployed model input.
N_STEPS = 100
#: GP hyper-parameters of the reference preparation.
TIME_SCALE_GUESS_DAYS = 20.0
WAVELENGTH_SCALE = 6000.0
#: Bounds of the fitted log-parameters: log-variance within this of its start; log(time length^2) range.
LOG_VARIANCE_HALF_RANGE = 10.0
LOG_TIME_METRIC_BOUNDS = (0.0, float(np.log(1000.0 ** 2)))
OPTIMISER_TOLERANCE = 1e-6
#: S/N used to pick the amplitude adds this fraction of the peak flux to the error.
SNR_FLOOR_FRACTION = 1e-2

#: Fink's band names (keys of its wavelength table) and the ZTF filter ids they came from.
FINK_BAND_NAMES = {"g": "ztfg", "r": "ztfr", "i": "ztfi"}
_WAVELENGTH = dict(zip(BANDS, BAND_WAVELENGTHS))
_BAND_INDEX = {name: i for i, name in enumerate(BANDS)}


class DeployedModelError(FileNotFoundError):
    """The deployed model file is missing or is not the one Fink shipped."""


# --------------------------------------------------------------------------- model file


def _installed_model_path() -> Path | None:
    """The model inside an installed ``fink_science`` package, found without importing it."""
    try:
        spec = importlib.util.find_spec("fink_science")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "data" / "models" / DEPLOYED_MODEL_NAME
        if candidate.exists():
            return candidate
    return None


@lru_cache(maxsize=8)
def _verified(path: Path, mtime_ns: int, size: int) -> Path:
    """Check size and sha256 once per file version (the key includes mtime and size)."""
    del mtime_ns
    if size != DEPLOYED_MODEL_SIZE:
        raise DeployedModelError(f"{path} has {size} bytes, the deployed model has {DEPLOYED_MODEL_SIZE}; "
                                 f"{_INSTALL_HINT}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != DEPLOYED_MODEL_SHA256:
        raise DeployedModelError(f"{path} has sha256 {digest}, the deployed model has {DEPLOYED_MODEL_SHA256}; "
                                 f"{_INSTALL_HINT}")
    return path


def find_deployed_model(path: str | Path | None = None) -> Path:
    """The verified TFLite file Fink deployed: ``path``, else $FINK_T2_DEPLOYED_MODEL, else installed fink_science.

    Raises :class:`DeployedModelError` with install instructions if it is
    missing, or if its size or sha256 differ from the file in the wheel.
    """
    if path is not None:
        candidate, origin = Path(path), "given path"
    elif os.environ.get(MODEL_ENV_VAR):
        candidate, origin = Path(os.environ[MODEL_ENV_VAR]), f"${MODEL_ENV_VAR}"
    else:
        candidate, origin = _installed_model_path(), "installed fink_science"
        if candidate is None:
            raise DeployedModelError(f"the Fink-deployed t2 model ({DEPLOYED_MODEL_NAME}) was not found: "
                                     f"{_INSTALL_HINT}")
    if candidate.is_dir():
        candidate = candidate / DEPLOYED_MODEL_NAME
    if not candidate.is_file():
        raise DeployedModelError(f"{candidate} ({origin}) does not exist; {_INSTALL_HINT}")
    candidate = candidate.resolve()
    stat = candidate.stat()
    return _verified(candidate, stat.st_mtime_ns, stat.st_size)


def open_interpreter(model_path: str | Path | None = None, num_threads: int | None = None, batch: int = 1):
    """A fresh LiteRT interpreter on the deployed model, input resized to ``batch`` light curves."""
    path = find_deployed_model(model_path)
    kwargs = {} if num_threads is None else {"num_threads": int(num_threads)}
    interpreter = interpreter_class()(model_path=str(path), **kwargs)
    if batch != 1:
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, [int(batch), N_STEPS, 2])
    interpreter.allocate_tensors()
    return interpreter


# --------------------------------------------------------------------------- band order


def process_band_order() -> tuple[str, str]:
    """The column order the deployed module would have used in *this* Python process.

    It intersected a set of Fink's band names with the columns of the GP
    table; iterating that set gives an order fixed by the string hashes of
    the process (``PYTHONHASHSEED``). Built the same way here, same sizes and
    insertion order, so the answer matches what the deployed code saw.
    """
    wanted = set([FINK_BAND_NAMES["g"], FINK_BAND_NAMES["r"], FINK_BAND_NAMES["i"]])
    table_columns = set(["mjd", FINK_BAND_NAMES["g"], FINK_BAND_NAMES["r"], "object_id"])
    by_fink_name = {fink: short for short, fink in FINK_BAND_NAMES.items()}
    order = tuple(by_fink_name[name] for name in wanted & table_columns)
    return order  # type: ignore[return-value]


def band_order_for_hash_seed(seed: int) -> tuple[str, str]:
    """The deployed column order under ``PYTHONHASHSEED=seed`` (runs a short subprocess)."""
    env = dict(os.environ, PYTHONHASHSEED=str(int(seed)))
    code = "from fink_t2.bench.fink_deployed import process_band_order; print(','.join(process_band_order()))"
    root = str(PACKAGE.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    first, second = result.stdout.strip().split(",")
    return first, second


def _check_band_order(band_order: Sequence[str] | None, corrected: bool) -> tuple[str, str]:
    if band_order is None:
        return BANDS if corrected else process_band_order()
    order = tuple(band_order)
    if sorted(order) != sorted(BANDS) or len(order) != 2:
        raise ValueError(f"band_order must be ('g', 'r') or ('r', 'g'), got {band_order!r}")
    if corrected and order != BANDS:
        raise ValueError(f"corrected=True always uses the trained order {BANDS}; got band_order={order}")
    return order  # type: ignore[return-value]


# --------------------------------------------------------------------------- one object


def _george():
    try:
        import george
    except ImportError as error:
        raise ImportError("the Fink-deployed preparation needs george: pip install 'george>=0.4.3,<0.5' "
                          "(or the bench extra: pip install -e .[bench])") from error
    return george


def fit_gp_on_grid(time: np.ndarray, wavelength: np.ndarray, flux: np.ndarray, flux_err: np.ndarray,
                   grid_time: np.ndarray, grid_wavelengths: Sequence[float]) -> tuple[np.ndarray, bool]:
    """Fit the reference 2-D GP to one object with L-BFGS-B; its mean on the grid, per wavelength.

    Returns (mean of shape (len(grid_time), len(grid_wavelengths)), whether the
    optimiser converged; when it did not, the starting hyper-parameters are
    used, as in the deployed module).
    """
    from scipy.optimize import minimize

    george = _george()
    time, wavelength = np.asarray(time, np.float64), np.asarray(wavelength, np.float64)
    flux, flux_err = np.asarray(flux, np.float64), np.asarray(flux_err, np.float64)
    snr = np.abs(flux) / np.sqrt(flux_err ** 2 + (SNR_FLOOR_FRACTION * np.max(flux)) ** 2)
    amplitude = np.abs(flux[int(np.argmax(snr))])
    if not (np.isfinite(amplitude) and amplitude > 0):
        raise ValueError("no usable amplitude: the highest-S/N flux is zero or not finite")
    kernel = (0.5 * amplitude) ** 2 * george.kernels.Matern32Kernel(
        [TIME_SCALE_GUESS_DAYS ** 2, WAVELENGTH_SCALE ** 2], ndim=2)
    kernel.freeze_parameter("k2:metric:log_M_1_1")
    gp = george.GP(kernel)
    gp.compute(np.column_stack([time, wavelength]), flux_err)
    start = gp.get_parameter_vector()

    def objective(params: np.ndarray) -> float:
        gp.set_parameter_vector(params)
        value = gp.log_likelihood(flux, quiet=True)
        return -value if np.isfinite(value) else 1e25

    def gradient(params: np.ndarray) -> np.ndarray:
        gp.set_parameter_vector(params)
        return -gp.grad_log_likelihood(flux, quiet=True)

    bounds = [(start[0] - LOG_VARIANCE_HALF_RANGE, start[0] + LOG_VARIANCE_HALF_RANGE), LOG_TIME_METRIC_BOUNDS]
    result = minimize(objective, start, jac=gradient, method="L-BFGS-B", bounds=bounds, tol=OPTIMISER_TOLERANCE)
    gp.set_parameter_vector(result.x if result.success else start)
    columns = []
    for wl in grid_wavelengths:
        points = np.column_stack([grid_time, np.full(len(grid_time), float(wl))])
        # The deployed code asked for the variance too (and dropped it): kept for a faithful cost.
        mean, _variance = gp.predict(flux, points, return_cov=False, return_var=True)
        columns.append(mean)
    return np.column_stack(columns), bool(result.success)


def robust_scale_per_object(values: np.ndarray) -> np.ndarray:
    """Each column minus its median, over its inter-quartile range (a zero range counts as 1)."""
    values = np.asarray(values, dtype=np.float64)
    q25, median, q75 = np.percentile(values, [25.0, 50.0, 75.0], axis=0)
    spread = q75 - q25
    spread = np.where(spread < 10 * np.finfo(np.float64).eps, 1.0, spread)
    return (values - median) / spread


def deployed_input(time: np.ndarray, band: np.ndarray, flux: np.ndarray, flux_err: np.ndarray,
                   corrected: bool = True, band_order: Sequence[str] | None = None,
                   time_origin: float | None = None, require_both_bands: bool = True,
                   scale: bool = True) -> np.ndarray | None:
    """One object's model input (100, 2) as the deployed module made it, or None if it refused.

    ``time``, ``band`` (0 = g, 1 = r), ``flux``, ``flux_err``: its detections
    (FLUXCAL). ``time_origin``: the first time of the alert's arrays (``jd[0]``,
    used only when ``corrected`` is False; defaults to the earliest time).
    Refused: fewer than 2 points, all points at one time, a GP that cannot be
    computed (zero amplitude, singular matrix), or (the deployed rule, unless
    ``require_both_bands`` is False) g or r missing.
    ``scale=False`` returns the raw GP mean (FLUXCAL) instead of the
    per-object scaled values, for comparisons with a global scaling.
    """
    order = _check_band_order(band_order, corrected)
    time = np.asarray(time, np.float64)
    band = np.asarray(band)
    if len(time) < 2 or np.ptp(time) <= 0:
        return None
    if require_both_bands and not (np.any(band == 0) and np.any(band == 1)):
        return None
    if corrected:
        t = time - np.min(time)
    else:
        origin = float(np.min(time)) if time_origin is None or not np.isfinite(time_origin) else float(time_origin)
        t = origin - time
    grid = np.linspace(np.min(t), np.max(t), N_STEPS)
    wavelength = np.asarray(BAND_WAVELENGTHS, np.float64)[band.astype(np.int64)]
    try:
        mean, _ = fit_gp_on_grid(t, wavelength, flux, flux_err, grid, [_WAVELENGTH[name] for name in order])
    except (ValueError, np.linalg.LinAlgError):
        return None  # the deployed module would have failed the whole batch here
    if not np.all(np.isfinite(mean)):
        return None
    return (robust_scale_per_object(mean) if scale else mean).astype(np.float32)


# --------------------------------------------------------------------------- many objects


def prepare_deployed(obs: Observations, corrected: bool = True, band_order: Sequence[str] | None = None,
                     require_both_bands: bool = True, scale: bool = True,
                     progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n_objects, 100, 2) float32 and an ``ok`` mask, one optimiser fit per object in a Python loop.

    Only detections feed the GP (``obs.detected``; upper limits are ignored, as
    Fink dropped null magnitudes). ``corrected=True``: forward time, [g, r].
    ``corrected=False``: reversed time and the column order ``band_order``
    (``None``: this process's set order, see :func:`process_band_order`;
    pass it explicitly for reproducible results). Objects the deployed module
    would have refused (fewer than 2 detections, g or r missing) get zeros and
    ``ok`` False; ``require_both_bands=False`` lets the 2-D GP fill a missing
    band instead (not what Fink did; for wider comparisons only).
    ``scale=False``: raw GP means, no per-object scaling (see :func:`deployed_input`).
    """
    order = _check_band_order(band_order, corrected)
    n = obs.n_objects
    values = np.zeros((n, N_STEPS, 2), dtype=np.float32)
    ok = np.zeros(n, dtype=bool)
    # Alert arrays start with the oldest entry (upper limits included): that is jd[0].
    first_time = np.full(n, np.inf)
    np.minimum.at(first_time, obs.object_index, obs.time)
    keep = obs.detected & np.isfinite(obs.flux) & np.isfinite(obs.flux_err) & (obs.flux_err > 0)
    keep &= (obs.band >= 0) & (obs.band < 2) & np.isfinite(obs.time)
    det = obs.subset(keep)
    sort = np.lexsort((det.time, det.object_index))
    det = det.subset(sort)
    counts = np.bincount(det.object_index, minlength=n)
    starts = np.cumsum(counts) - counts
    for i in range(n):
        if counts[i] == 0:
            continue
        part = slice(starts[i], starts[i] + counts[i])
        result = deployed_input(det.time[part], det.band[part], det.flux[part], det.flux_err[part],
                                corrected=corrected, band_order=order, time_origin=first_time[i],
                                require_both_bands=require_both_bands, scale=scale)
        if result is not None:
            values[i], ok[i] = result, True
        if progress and (i + 1) % 200 == 0:
            print(f"  prepare_deployed: {i + 1}/{n} objects", file=sys.stderr, flush=True)
    return values, ok


def predict_deployed(values: np.ndarray, model_path: str | Path | None = None, per_alert: bool = False,
                     batch_size: int = 1024, num_threads: int | None = None) -> np.ndarray:
    """Probabilities (n, 14) of the deployed model, in ``fink_t2.CLASSES`` order.

    ``per_alert=True`` mimics deployment: input shape (1, 100, 2), one
    ``invoke`` per light curve. Otherwise the input is resized to batches of
    ``batch_size`` (same numbers, far fewer calls).
    """
    values = np.ascontiguousarray(values, dtype=np.float32)
    if values.ndim != 3 or values.shape[1:] != (N_STEPS, 2):
        raise ValueError(f"expected inputs of shape (n, {N_STEPS}, 2), got {values.shape}")
    n = len(values)
    out = np.empty((n, N_CLASSES), dtype=np.float32)
    if n == 0:
        return out
    batch = 1 if per_alert else max(1, min(int(batch_size), n))
    interpreter = open_interpreter(model_path, num_threads=num_threads, batch=batch)
    in_index = interpreter.get_input_details()[0]["index"]
    out_index = interpreter.get_output_details()[0]["index"]
    for start in range(0, n, batch):
        part = values[start:start + batch]
        if len(part) != batch:  # last, shorter batch
            interpreter.resize_tensor_input(in_index, [len(part), N_STEPS, 2])
            interpreter.allocate_tensors()
        interpreter.set_tensor(in_index, part)
        interpreter.invoke()
        out[start:start + len(part)] = interpreter.get_tensor(out_index)
    return out


# --------------------------------------------------------------------------- the deployed UDF body


def deployed_predictor(corrected: bool = True) -> Callable[[Observations], tuple[np.ndarray, np.ndarray]]:
    """The deployed model as ``fink-t2 evaluate --fink-deployed`` scores it: observations -> (probabilities, ok).

    Its own preparation (:func:`prepare_deployed`, ``corrected``: the band order
    and time direction fixed), then :func:`predict_deployed`.
    """
    def predict(obs: Observations) -> tuple[np.ndarray, np.ndarray]:
        values, ok = prepare_deployed(obs, corrected=corrected)
        return predict_deployed(values), ok

    return predict


def _fluxcal_from_magnitudes(mag: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """REFERENCE §4 conversion, with the constants Fink used (zero point 27.5)."""
    flux = 10.0 ** (-0.4 * mag) * 1e11
    flux_err = 9.21034e10 * np.exp(-0.921034 * mag) * sigma
    return flux, flux_err


def _as_floats(row) -> np.ndarray:
    """One alert's sequence as float64 (None -> NaN); an empty array for a null row."""
    if row is None:
        return np.zeros(0)
    return np.array([np.nan if v is None else v for v in row], dtype=np.float64)


def deployed_pandas_udf_body(cjd, cfid, cmagpsf, csigmapsf, model_path: str | Path | None = None,
                             corrected: bool = False, band_order: Sequence[str] | None = None,
                             mask: Iterable[bool] | None = None, num_threads: int | None = None):
    """What Fink's t2 UDF did with one Arrow batch; returns a pandas Series of 14-float lists or None.

    Per call: a new interpreter on the deployed model (the module loaded it in
    the UDF body); then, alert by alert, in a Python loop: magnitudes ->
    FLUXCAL, detections only, the Fink cuts computable from these columns (at
    least 2 valid magnitudes, both g and r), one george GP fit with the
    optimiser, per-object robust scaling, one ``invoke``. ``mask`` (optional,
    one bool per alert) marks the alerts that passed Fink's other cuts (roid,
    cdsxmatch, jdstarthist); the rest get None. Default ``corrected=False``
    reproduces the deployed input (reversed time, this process's set order).

    Not reproduced: the pandas/astropy table shuffling around each fit
    (explode, per-alert boolean filter over the batch, pivot table) and the
    TensorFlow import; so this "before" is, if anything, faster than the
    original. An alert whose filters are exactly {g, i} or {r, i} (ZTF's
    private i band, absent from the public stream) gets None here.
    """
    import pandas as pd

    order = _check_band_order(band_order, corrected)
    interpreter = open_interpreter(model_path, num_threads=num_threads, batch=1)
    in_index = interpreter.get_input_details()[0]["index"]
    out_index = interpreter.get_output_details()[0]["index"]
    n = len(cjd)
    selected = np.ones(n, dtype=bool) if mask is None else np.asarray(list(mask), dtype=bool)
    results: list = [None] * n
    for i, (jd_row, fid_row, mag_row, sig_row) in enumerate(zip(cjd, cfid, cmagpsf, csigmapsf)):
        if not selected[i]:
            continue
        jd, fid = _as_floats(jd_row), _as_floats(fid_row)
        mag, sig = _as_floats(mag_row), _as_floats(sig_row)
        if not (len(jd) == len(fid) == len(mag) == len(sig)) or np.sum(np.isfinite(mag)) < 2:
            continue
        with np.errstate(over="ignore", invalid="ignore"):
            flux, flux_err = _fluxcal_from_magnitudes(mag, sig)
        valid = np.isfinite(jd) & np.isfinite(fid) & np.isfinite(flux) & np.isfinite(flux_err)
        if set(np.unique(fid[valid]).astype(int)) != {1, 2}:
            continue
        band = np.where(fid[valid] == 1, _BAND_INDEX["g"], _BAND_INDEX["r"])
        x = deployed_input(jd[valid], band, flux[valid], flux_err[valid], corrected=corrected,
                           band_order=order, time_origin=jd[0])
        if x is None:
            continue
        interpreter.set_tensor(in_index, x[None])
        interpreter.invoke()
        results[i] = interpreter.get_tensor(out_index)[0].astype(float).tolist()
    return pd.Series(results, index=getattr(cjd, "index", None), dtype=object)

