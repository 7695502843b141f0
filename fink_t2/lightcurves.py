"""Light-curve preparation shared by training and inference.

Observations of many objects (PLAsTiCC rows or ZTF alert columns) become one
float32 array ``(n_objects, n_steps, 2)`` with bands in the fixed order
``[g, r]`` and time running forward: step ``n_steps - 1`` is the time of the
latest observation, step ``k`` lies ``(n_steps - 1 - k) * step_days`` days
before it.

The values are the mean of a 2-D Gaussian process over (time, wavelength) with
fixed hyper-parameters, evaluated on that grid, in units of the object's peak
absolute detected flux. Fixed hyper-parameters turn the per-object fit of the
original t2 pipeline (an optimiser per alert, 14-120 ms) into one batched
linear solve per group of objects of similar length. Per-object peak scaling
(rather than a global flux scale) is used in training and inference alike, so
that PLAsTiCC's LSST-depth fluxes and ZTF's brighter alerts look the same to
the model.

Upper limits (PLAsTiCC non-detections, ZTF ``diffmaglim`` entries) are treated
identically in both sources: flux 0 with the 1-sigma noise of the limit.

Every function here is pure numpy; no TensorFlow, no Spark.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: Band order of the model input, fixed forever (the original used a Python set).
BANDS: tuple[str, str] = ("g", "r")
#: Effective wavelengths in Angstrom of ZTF g and r, used as the GP's second axis.
BAND_WAVELENGTHS: tuple[float, float] = (4804.79, 6436.92)
#: ZTF filter id -> band index in :data:`BANDS` (fid 3 = ZTF i is not modelled).
ZTF_FID_TO_BAND: dict[int, int] = {1: 0, 2: 1}
#: PLAsTiCC passband -> band index in :data:`BANDS` (1 = g, 2 = r).
PLASTICC_PASSBAND_TO_BAND: dict[int, int] = {1: 0, 2: 1}

#: SNANA FLUXCAL zero point used by PLAsTiCC.
FLUXCAL_ZEROPOINT: float = 27.5
_LN10_OVER_2P5 = np.log(10.0) / 2.5

#: Magnitudes outside this range are treated as corrupt values.
PLAUSIBLE_MAG_RANGE: tuple[float, float] = (5.0, 30.0)
#: A magnitude error at or above this (signal-to-noise below about 1.1) is not a measurement:
#: such a point is dropped rather than allowed to set the object's flux scale. Real ZTF
#: detections stay below 0.5 mag (5-sigma detections: about 0.22).
MAX_SIGMA_MAG: float = 1.0

#: ``isdiffpos`` values (trimmed, lower case) that mark a negative difference flux.
NEGATIVE_ISDIFFPOS: tuple[str, ...] = ("f", "0", "false")

#: The context channels, in input order after g and r (see :func:`_context_channels`).
CONTEXT_CHANNELS: tuple[str, ...] = ("age", "gap_g", "gap_r")
#: Scale (days) of the age channel, ``asinh(age / AGE_SCALE_DAYS)``.
AGE_SCALE_DAYS: float = 20.0
#: The gap channels are clipped at this many GP time scales.
MAX_GAP_SCALES: float = 3.0

# Reasons an object cannot be prepared (kept short: they travel in a Spark column).
REASON_NO_DATA = "no observations"
REASON_NO_DETECTION = "no valid g/r detection"


@dataclass(frozen=True)
class PreparationConfig:
    """Parameters of the preparation; stored with every model so serving matches training."""

    n_steps: int = 32
    step_days: float = 2.0
    time_scale_days: float = 10.0
    wavelength_scale: float = 6000.0
    noise_floor: float = 0.02
    max_points: int = 64
    use_upper_limits: bool = True
    limit_noise_factor: float = 2.0
    method: str = "gp"
    #: Add the context channels (age since the first detection, distance to the nearest g and r
    #: point) after the g, r fluxes. Off for models trained before they existed.
    context_channels: bool = False

    @property
    def n_channels(self) -> int:
        """Values per time step of the model input: g, r, then the context channels if enabled."""
        return len(BANDS) + (len(CONTEXT_CHANNELS) if self.context_channels else 0)

    @property
    def window_days(self) -> float:
        """Span covered by the grid, from its first to its last step."""
        return (self.n_steps - 1) * self.step_days

    @property
    def lookback_days(self) -> float:
        """Observations older than this (before the latest one) cannot affect the grid."""
        return self.window_days + 3.0 * self.time_scale_days

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "preparation parameters") -> "PreparationConfig":
        """Strictly typed: an unknown key or a wrong type is an error naming ``source`` and the key."""
        from fink_t2.config import build

        return build(cls, values, source)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if int(self.n_steps) < 2:
            raise ValueError("n_steps must be >= 2")
        for name in ("step_days", "time_scale_days", "wavelength_scale", "noise_floor", "limit_noise_factor"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0")
        if int(self.max_points) < 1:
            raise ValueError("max_points must be >= 1")
        if self.method not in ("gp", "linear"):
            raise ValueError("method must be 'gp' or 'linear'")


@dataclass
class Observations:
    """Observations of many objects in long format (one entry per measurement).

    ``detected`` False marks an upper limit, already stored as flux 0 with the
    limit's 1-sigma noise in ``flux_err``.
    """

    object_index: np.ndarray
    time: np.ndarray
    band: np.ndarray
    flux: np.ndarray
    flux_err: np.ndarray
    detected: np.ndarray
    n_objects: int

    def __post_init__(self) -> None:
        self.object_index = np.asarray(self.object_index, dtype=np.int64)
        self.time = np.asarray(self.time, dtype=np.float64)
        self.band = np.asarray(self.band, dtype=np.int8)
        self.flux = np.asarray(self.flux, dtype=np.float64)
        self.flux_err = np.asarray(self.flux_err, dtype=np.float64)
        self.detected = np.asarray(self.detected, dtype=bool)
        n = len(self.time)
        for name in ("object_index", "band", "flux", "flux_err", "detected"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Observations.{name} has length {len(getattr(self, name))}, expected {n}")

    def subset(self, mask: np.ndarray) -> "Observations":
        """The observations where ``mask`` is True, same objects."""
        return Observations(
            self.object_index[mask], self.time[mask], self.band[mask], self.flux[mask],
            self.flux_err[mask], self.detected[mask], self.n_objects,
        )


@dataclass
class PreparedBatch:
    """Model input for a batch of objects, and which of them could be prepared."""

    values: np.ndarray  # float32 (n_objects, n_steps, n_channels); zeros where not ok
    ok: np.ndarray  # bool (n_objects,)
    reason: np.ndarray  # object (n_objects,): None where ok, else a short reason
    n_detections: np.ndarray  # int (n_objects,): valid g/r detections used


# --------------------------------------------------------------------------- units


def mag_to_fluxcal(mag, sigma_mag=None):
    """ZTF magnitudes -> SNANA FLUXCAL (zero point 27.5): flux, and its error if sigma given."""
    mag = np.asarray(mag, dtype=np.float64)
    flux = 10.0 ** (-0.4 * (mag - FLUXCAL_ZEROPOINT))
    if sigma_mag is None:
        return flux
    return flux, _LN10_OVER_2P5 * flux * np.asarray(sigma_mag, dtype=np.float64)


def fluxcal_to_mag(flux, flux_err=None):
    """Inverse of :func:`mag_to_fluxcal` for positive fluxes."""
    flux = np.asarray(flux, dtype=np.float64)
    mag = FLUXCAL_ZEROPOINT - 2.5 * np.log10(flux)
    if flux_err is None:
        return mag
    return mag, np.asarray(flux_err, dtype=np.float64) / (_LN10_OVER_2P5 * flux)


# --------------------------------------------------------------------------- sources


def observations_from_plasticc(lightcurves, object_ids=None,
                               keep_nondetection_flux: bool = False) -> tuple[Observations, np.ndarray]:
    """PLAsTiCC light-curve rows (object_id, mjd, passband, flux, flux_err, detected_bool).

    Only g and r are kept. Non-detections become upper limits (flux 0, noise
    ``flux_err``), as ZTF delivers them, unless ``keep_nondetection_flux``
    (the forced photometry, used only to draw resampled training curves).
    Returns the observations and the object ids in object-index order
    (``object_ids`` fixes that order if given).
    """
    band_of = np.full(8, -1, dtype=np.int8)
    for passband, band in PLASTICC_PASSBAND_TO_BAND.items():
        band_of[passband] = band
    passband = np.asarray(lightcurves["passband"], dtype=np.int64)
    keep = band_of[np.clip(passband, 0, 7)] >= 0
    keep &= (passband >= 0) & (passband <= 7)
    ids = np.asarray(lightcurves["object_id"])[keep]
    if object_ids is None:
        object_ids = np.unique(ids)
    object_ids = np.asarray(object_ids)
    order = np.argsort(object_ids, kind="stable")
    pos = np.searchsorted(object_ids[order], ids)
    pos = np.clip(pos, 0, len(object_ids) - 1)
    found = object_ids[order][pos] == ids
    object_index = order[pos]
    detected = np.asarray(lightcurves["detected_bool"])[keep].astype(bool)
    flux = np.asarray(lightcurves["flux"], dtype=np.float64)[keep]
    obs = Observations(
        object_index=object_index[found],
        time=np.asarray(lightcurves["mjd"], dtype=np.float64)[keep][found],
        band=band_of[passband[keep]][found],
        flux=(flux if keep_nondetection_flux else np.where(detected, flux, 0.0))[found],
        flux_err=np.asarray(lightcurves["flux_err"], dtype=np.float64)[keep][found],
        detected=detected[found],
        n_objects=len(object_ids),
    )
    return obs, object_ids


def _arrow_lists(column, value_type, n_rows: int):
    """(Arrow list array of ``value_type``, None) for Arrow input that casts cleanly, else (None, Python rows).

    Spark's Arrow UDFs hand over list arrays: they are used as they are, with
    no per-alert Python object. Anything else becomes a list of rows for the
    pandas path (and, if that fails, the per-alert fallback).
    """
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if isinstance(column, pa.Array):
        if len(column) != n_rows:
            raise ValueError(f"column has {len(column)} rows, expected {n_rows}")
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            try:
                return column.cast(pa.list_(value_type)), None
            except (pa.ArrowException, TypeError, ValueError):
                pass
        return None, column.to_pylist()
    values = list(column)
    if len(values) != n_rows:
        raise ValueError(f"column has {len(values)} rows, expected {n_rows}")
    return None, values


def _flatten_numeric(column, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A column of per-alert sequences -> (flat float64 values, per-alert lengths).

    Null sequences have length 0; null or non-numeric elements become NaN.
    The fast path goes through Arrow; odd inputs (strings, mixed types) fall
    back to a per-alert conversion that never raises.
    """
    import pyarrow as pa

    arr, values = _arrow_lists(column, pa.float64(), n_rows)
    if arr is None:
        concatenated = _concatenate_numeric(values)
        if concatenated is not None:
            return concatenated
    try:
        if arr is None:
            arr = pa.array(values, type=pa.list_(pa.float64()), from_pandas=True)
        lengths = arr.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
        return flat, lengths
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        if values is None:
            values = arr.to_pylist()
    parts, lengths = [], np.zeros(n_rows, dtype=np.int64)
    for i, row in enumerate(values):
        part = _coerce_row(row)
        parts.append(part)
        lengths[i] = len(part)
    flat = np.concatenate(parts) if parts else np.zeros(0)
    return flat.astype(np.float64), lengths


def _concatenate_numeric(values: list) -> tuple[np.ndarray, np.ndarray] | None:
    """Fast path for what a pandas UDF receives: every row a numeric numpy array (no nulls inside).

    About ten times cheaper per alert than building an Arrow list array;
    None (use the general path) as soon as one row is anything else.
    """
    numeric = "fiu"
    for row in values:
        if type(row) is not np.ndarray or row.dtype.kind not in numeric or row.ndim != 1:
            return None
    lengths = np.fromiter((len(row) for row in values), dtype=np.int64, count=len(values))
    flat = np.concatenate(values).astype(np.float64) if len(values) else np.zeros(0)
    return flat, lengths


def _is_row_sequence(row) -> bool:
    """Whether one alert's cell is a sequence of values (None, a string or a scalar is not)."""
    return not (row is None or isinstance(row, (str, bytes)) or np.isscalar(row))


def _coerce_row(row) -> np.ndarray:
    """One alert's sequence as float64, NaN for anything that is not a finite number."""
    if not _is_row_sequence(row):
        return np.zeros(0)
    out = np.full(len(row), np.nan)
    for j, value in enumerate(row):
        if np.ndim(value) != 0:  # a nested sequence is not a number (numpy < 2 would unwrap [x] into x)
            continue
        try:
            out[j] = float(value)
        except (TypeError, ValueError, OverflowError):
            pass
    return out


def _negative_flags(column, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """ZTF ``isdiffpos`` per alert -> (flat bool: difference flux is negative, per-alert lengths).

    'f', '0' or 'false' (any case) mean negative; anything else, null included,
    is taken as positive. Arrow does the work; odd rows fall back to Python.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr, values = _arrow_lists(column, pa.string(), n_rows)
    try:
        if arr is None:
            arr = pa.array(values, type=pa.list_(pa.string()), from_pandas=True)
        lengths = arr.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        flat = pc.utf8_lower(pc.utf8_trim_whitespace(arr.flatten()))
        negative = pc.is_in(flat, value_set=pa.array(list(NEGATIVE_ISDIFFPOS))).fill_null(False)
        return negative.to_numpy(zero_copy_only=False).astype(bool), lengths
    except (pa.ArrowException, TypeError, ValueError):
        if values is None:
            values = arr.to_pylist()
    lengths = np.zeros(n_rows, dtype=np.int64)
    flags: list[bool] = []
    for i, row in enumerate(values):
        if not _is_row_sequence(row):
            continue
        row = list(row)
        lengths[i] = len(row)
        flags.extend(_is_negative(value) for value in row)
    return np.asarray(flags, dtype=bool), lengths


def _is_negative(value) -> bool:
    if isinstance(value, bytes):
        value = value.decode(errors="ignore")
    if isinstance(value, str):
        return value.strip().lower() in NEGATIVE_ISDIFFPOS
    if isinstance(value, (bool, np.bool_)):
        return not value
    if isinstance(value, (int, np.integer)):
        return value == 0  # as Spark's cast of an integer to string reads: '0' is negative
    return False


def observations_from_alerts(
    cjd, cfid, cmagpsf, csigmapsf, cisdiffpos=None, cdiffmaglim=None
) -> tuple[Observations, np.ndarray]:
    """Fink's concatenated alert columns (one sequence per alert) -> observations.

    Points with an unusable time, band, magnitude or error are dropped; an
    entry with a null ``magpsf`` and a valid ``diffmaglim`` is an upper limit.
    Returns the observations and, per alert, a reason string where the alert's
    arrays are inconsistent (differing lengths), else None.
    """
    n_rows = len(cjd)
    jd, len_jd = _flatten_numeric(cjd, n_rows)
    fid, len_fid = _flatten_numeric(cfid, n_rows)
    mag, len_mag = _flatten_numeric(cmagpsf, n_rows)
    sig, len_sig = _flatten_numeric(csigmapsf, n_rows)
    lengths = [len_jd, len_fid, len_mag, len_sig]
    negative = None
    if cisdiffpos is not None:
        diffpos, len_pos = _negative_flags(cisdiffpos, n_rows)
        lengths.append(len_pos)
    if cdiffmaglim is not None:
        lim, len_lim = _flatten_numeric(cdiffmaglim, n_rows)
        lengths.append(len_lim)
    stacked = np.vstack(lengths)
    consistent = (stacked == stacked[0]).all(axis=0)
    reason = np.full(n_rows, None, dtype=object)
    reason[~consistent] = "alert arrays have different lengths"

    # Keep only alerts whose arrays line up; their entries are aligned by position.
    def aligned(flat: np.ndarray, row_lengths: np.ndarray) -> np.ndarray:
        keep = np.repeat(consistent, row_lengths)
        return flat[keep]

    n_points = np.where(consistent, len_jd, 0)
    object_index = np.repeat(np.arange(n_rows), n_points)
    jd, fid = aligned(jd, len_jd), aligned(fid, len_fid)
    mag, sig = aligned(mag, len_mag), aligned(sig, len_sig)
    if cisdiffpos is not None:
        negative = aligned(diffpos, len_pos)
    lim = aligned(lim, len_lim) if cdiffmaglim is not None else np.full(len(jd), np.nan)

    band = np.full(len(jd), -1, dtype=np.int8)
    for ztf_fid, band_index in ZTF_FID_TO_BAND.items():
        band[fid == ztf_fid] = band_index
    lo, hi = PLAUSIBLE_MAG_RANGE
    with np.errstate(invalid="ignore", over="ignore"):
        usable = np.isfinite(jd) & (band >= 0)
        detection = (usable & np.isfinite(mag) & (mag > lo) & (mag < hi)
                     & np.isfinite(sig) & (sig > 0) & (sig < MAX_SIGMA_MAG))
        limit = usable & ~np.isfinite(mag) & np.isfinite(lim) & (lim > lo) & (lim < hi)
        flux, flux_err = mag_to_fluxcal(np.where(detection, mag, 20.0), np.where(detection, sig, 0.1))
        if negative is not None:
            flux = np.where(negative, -flux, flux)
        limit_sigma = mag_to_fluxcal(np.where(limit, lim, 20.0)) / 5.0
    keep = detection | limit
    flux = np.where(detection, flux, 0.0)
    flux_err = np.where(detection, flux_err, limit_sigma)
    keep &= np.isfinite(flux_err) & (flux_err > 0)
    obs = Observations(object_index[keep], jd[keep], band[keep], flux[keep], flux_err[keep], detection[keep], n_rows)
    return obs, reason


# --------------------------------------------------------------------------- preparation


def _sorted_by_object_and_time(obs: Observations) -> bool:
    """True if points are already ordered by (object, time): the order a stable lexsort would give."""
    step_object = np.diff(obs.object_index)
    step_time = np.diff(obs.time)
    return bool(np.all((step_object > 0) | ((step_object == 0) & (step_time >= 0))))


def _select_points(obs: Observations, config: PreparationConfig
                   ) -> tuple[Observations, np.ndarray, np.ndarray, np.ndarray]:
    """Finite points, recent enough to matter, at most ``max_points`` per object.

    Upper limits are kept only before an object's first detection: there they
    say "not there yet"; between detections they mostly come from bad nights
    (shallow, and the source was often just below them), and reading them as
    zero flux carved false dips into real ZTF light curves.

    Returns the kept observations sorted by (object, time), the reference time
    (latest kept observation) per object, the peak |detected flux| per object and the time of
    each object's first detection in the whole history delivered (inf if none).
    """
    valid = (
        np.isfinite(obs.time) & np.isfinite(obs.flux) & np.isfinite(obs.flux_err) & (obs.flux_err > 0)
        & (obs.band >= 0) & (obs.band < len(BANDS))
        & (obs.object_index >= 0) & (obs.object_index < obs.n_objects)
    )
    if not config.use_upper_limits:
        valid &= obs.detected
    obs = obs.subset(valid)
    if not _sorted_by_object_and_time(obs):  # alert histories usually arrive sorted: skip the sort then
        obs = obs.subset(np.lexsort((obs.time, obs.object_index)))
    n = obs.n_objects
    first_detection = np.full(n, np.inf)
    np.minimum.at(first_detection, obs.object_index[obs.detected], obs.time[obs.detected])
    obs = obs.subset(obs.detected | (obs.time < first_detection[obs.object_index]))
    t_ref = np.full(n, -np.inf)
    np.maximum.at(t_ref, obs.object_index, obs.time)
    recent = obs.time >= t_ref[obs.object_index] - config.lookback_days
    obs = obs.subset(recent)
    # Rank from the end within each object; keep the most recent max_points.
    counts = np.bincount(obs.object_index, minlength=n)
    ends = np.cumsum(counts)
    rank_from_end = ends[obs.object_index] - 1 - np.arange(len(obs.time))
    obs = obs.subset(rank_from_end < config.max_points)
    peak = np.zeros(n)
    det = obs.detected
    np.maximum.at(peak, obs.object_index[det], np.abs(obs.flux[det]))
    return obs, t_ref, peak, first_detection


_SQRT3 = 3.0 ** 0.5


def _matern32(d: np.ndarray) -> np.ndarray:
    """Matern-3/2 of the differences ``d``, overwriting ``d`` (no temporaries the size of a batch of
    covariance matrices; Python-float constants keep float32 inputs in float32)."""
    np.abs(d, out=d)
    d *= _SQRT3
    e = np.negative(d)
    np.exp(e, out=e)
    d += 1.0
    d *= e
    return d


def _band_correlation(config: PreparationConfig) -> np.ndarray:
    """2x2 correlation between the g and r bands: Matern-3/2 of their wavelength distance."""
    w = np.asarray(BAND_WAVELENGTHS) / config.wavelength_scale
    return _matern32(w[:, None] - w[None, :])


#: Objects per batched solve: keeps the temporaries in cache.
_GP_CHUNK = 256
#: Point counts are padded up to a multiple of this: fewer, larger groups vs. less padding work.
_PAD_MULTIPLE = 4
#: Scaled time of the first padding slot and the gap between slots (in GP time scales).
_PAD_TIME, _PAD_STEP = 1.0e4, 1.0e3


def _gp_chunks(obs: Observations, objects: np.ndarray, t_ref: np.ndarray, y: np.ndarray, noise: np.ndarray,
               time_scale: float, band_corr: np.ndarray):
    """Batched GP solves: yields (objects, scaled times, bands, alpha, mask) per chunk.

    ``obs`` must be sorted by (object, time). Objects are grouped by their
    number of points (padded to a multiple of _PAD_MULTIPLE) and solved in chunks, one
    batched ``numpy.linalg.solve`` per chunk; padding rows are inert.
    Times are relative to ``t_ref`` and divided by ``time_scale``.
    """
    counts = np.bincount(obs.object_index, minlength=obs.n_objects)
    starts = np.cumsum(counts) - counts
    padded = ((counts[objects] + _PAD_MULTIPLE - 1) // _PAD_MULTIPLE) * _PAD_MULTIPLE
    for size in np.unique(padded):
        col = np.arange(size)
        members = objects[padded == size]
        for c0 in range(0, len(members), _GP_CHUNK):
            group = members[c0:c0 + _GP_CHUNK]
            has = col[None, :] < counts[group][:, None]
            idx = np.where(has, starts[group][:, None] + col[None, :], 0)
            # Padding slots sit far away in time (and from each other): their covariance with
            # anything underflows to 0, so no mask is needed, and their right-hand side is 0.
            t = np.where(has, (obs.time[idx] - t_ref[group][:, None]) / time_scale, _PAD_TIME + _PAD_STEP * col)
            band = obs.band[idx]
            k = _matern32(np.subtract(t[:, :, None], t[:, None, :]))
            # Cross-band pairs are scaled by the g/r correlation (band is 0 or 1: a pair differs when b_i != b_j).
            k *= np.where(band[:, :, None] == band[:, None, :], 1.0, band_corr[0, 1])
            k[:, col, col] += np.where(has, noise[idx] ** 2, 1.0)
            rhs = np.where(has, y[idx], 0.0)
            alpha = np.linalg.solve(k, rhs[:, :, None])[:, :, 0]
            yield group, t, band, alpha, has


def _gp_grid(obs: Observations, objects: np.ndarray, t_ref: np.ndarray, y: np.ndarray, noise: np.ndarray,
             config: PreparationConfig, out: np.ndarray) -> None:
    """GP posterior mean on the grid for ``objects`` (all with >= 1 point), written into ``out``.

    The kernel is Matern-3/2 in time times a fixed g/r correlation (the
    Matern-3/2 of the bands' wavelength distance), so a band missing from an
    alert is inferred from the other.
    """
    band_corr = _band_correlation(config)
    grid_t = (-(config.n_steps - 1 - np.arange(config.n_steps)) * config.step_days
              / config.time_scale_days).astype(np.float32)
    for group, t, band, alpha, _ in _gp_chunks(obs, objects, t_ref, y, noise, config.time_scale_days, band_corr):
        k_time = _matern32(np.subtract(grid_t[None, :, None], t.astype(np.float32)[:, None, :]))
        # mean[band b] = sum_p k_time * corr[b, band_p] * alpha_p
        weighted = alpha[:, None, :] * band_corr[:, band].transpose(1, 0, 2)  # (m, 2, size)
        out[group] = np.matmul(k_time, weighted.astype(np.float32).transpose(0, 2, 1))


def gp_mean_at(obs: Observations, y: np.ndarray, noise: np.ndarray, query_object: np.ndarray,
               query_time: np.ndarray, query_band: np.ndarray, time_scale: float,
               config: PreparationConfig | None = None) -> np.ndarray:
    """GP posterior mean of ``y`` at arbitrary (object, time, band) queries.

    Used to draw ZTF-like resampled training light curves from PLAsTiCC ones;
    ``obs`` must be sorted by (object, time). Objects without points give 0.
    """
    config = config or PreparationConfig()
    band_corr = _band_correlation(config)
    t_ref = np.zeros(obs.n_objects)
    objects = np.unique(obs.object_index)
    out = np.zeros(len(query_time))
    q_order = np.argsort(query_object, kind="stable")
    q_counts = np.bincount(query_object, minlength=obs.n_objects)
    q_starts = np.cumsum(q_counts) - q_counts
    for group, t, band, alpha, _ in _gp_chunks(obs, objects, t_ref, y, noise, time_scale, band_corr):
        q_max = int(q_counts[group].max()) if len(group) else 0
        if q_max == 0:
            continue
        col = np.arange(q_max)
        q_has = col[None, :] < q_counts[group][:, None]
        q_idx = q_order[np.where(q_has, q_starts[group][:, None] + col[None, :], 0)]
        qt = query_time[q_idx] / time_scale
        qb = query_band[q_idx]
        k_star = _matern32(qt[:, :, None] - t[:, None, :]) * band_corr[qb[:, :, None], band[:, None, :]]
        mean = np.einsum("mqp,mp->mq", k_star, alpha)
        out[q_idx[q_has]] = mean[q_has]
    return out


def _linear_grid(obs: Observations, objects: np.ndarray, t_ref: np.ndarray, y: np.ndarray,
                 config: PreparationConfig, out: np.ndarray) -> None:
    """Alternative representation: per-band linear interpolation, 0 outside a band's data.

    Kept to measure the GP against a cheaper, simpler choice.
    """
    grid = -(config.n_steps - 1 - np.arange(config.n_steps)) * config.step_days
    wanted = np.zeros(obs.n_objects, dtype=bool)
    wanted[objects] = True
    for band in range(len(BANDS)):
        sel = (obs.band == band) & wanted[obs.object_index]
        obj, t, v = obs.object_index[sel], obs.time[sel] - t_ref[obs.object_index[sel]], y[sel]
        if len(t) == 0:
            continue
        # Composite key keeps objects apart in one searchsorted (times span < 1e5 days).
        offset = 1e6
        key = obj * offset + t
        order = np.argsort(key, kind="stable")
        key, obj, v = key[order], obj[order], v[order]
        q_obj = np.repeat(objects, config.n_steps)
        q_key = q_obj * offset + np.tile(grid, len(objects))
        right = np.searchsorted(key, q_key, side="left")
        left = right - 1
        r_ok = (right < len(key)) & (obj[np.minimum(right, len(key) - 1)] == q_obj)
        l_ok = (left >= 0) & (obj[np.maximum(left, 0)] == q_obj)
        rk, lk = key[np.minimum(right, len(key) - 1)], key[np.maximum(left, 0)]
        rv, lv = v[np.minimum(right, len(key) - 1)], v[np.maximum(left, 0)]
        span = np.where(rk - lk > 0, rk - lk, 1.0)
        frac = np.clip((q_key - lk) / span, 0.0, 1.0)
        value = np.where(l_ok & r_ok, lv + frac * (rv - lv), 0.0)
        exact = r_ok & (rk == q_key)
        value = np.where(exact, rv, value)
        out[objects, :, band] = value.reshape(len(objects), config.n_steps)


def _context_channels(kept: Observations, objects: np.ndarray, t_ref: np.ndarray, first_detection: np.ndarray,
                      config: PreparationConfig) -> np.ndarray:
    """What the peak-scaled GP mean cannot say, per grid step: (len(objects), n_steps, 3).

    - age: ``asinh((t_step - first detection) / AGE_SCALE_DAYS)``, the time since the first
      detection in the history delivered (negative before it). Peak scaling and a fixed window
      hide how long an object has been bright; a light curve's duration separates SNe II from Ia.
    - gap_g, gap_r: distance from the step to the nearest kept point of that band, in GP time
      scales, clipped at MAX_GAP_SCALES: where the GP mean is data and where it is only the prior.

    ``kept`` is sorted by (object, time) (as :func:`_select_points` returns it).
    """
    steps = -(config.n_steps - 1 - np.arange(config.n_steps)) * config.step_days
    grid_time = t_ref[objects][:, None] + steps[None, :]
    out = np.empty((len(objects), config.n_steps, len(CONTEXT_CHANNELS)), dtype=np.float32)
    out[:, :, 0] = np.arcsinh((grid_time - first_detection[objects][:, None]) / AGE_SCALE_DAYS)
    position = np.full(kept.n_objects, -1, dtype=np.int64)
    position[objects] = np.arange(len(objects))
    span = 1e6  # composite key (object, time): times span far less than this
    query = (np.arange(len(objects))[:, None] * span + (grid_time - t_ref[objects][:, None])).ravel()
    for band in range(len(BANDS)):
        sel = (kept.band == band) & (position[kept.object_index] >= 0)
        owner = position[kept.object_index[sel]]
        key = owner * span + (kept.time[sel] - t_ref[kept.object_index[sel]])  # sorted: kept is (object, time)
        gap = np.full(len(query), np.inf)
        if len(key):
            right = np.searchsorted(key, query)
            for side in (np.minimum(right, len(key) - 1), np.maximum(right - 1, 0)):
                same = owner[side] == np.repeat(np.arange(len(objects)), config.n_steps)
                gap = np.minimum(gap, np.where(same, np.abs(key[side] - query), np.inf))
        out[:, :, 1 + band] = np.minimum(gap / config.time_scale_days, MAX_GAP_SCALES).reshape(len(objects), -1)
    return out


def prepare(obs: Observations, config: PreparationConfig | None = None) -> PreparedBatch:
    """Observations of many objects -> model input ``(n_objects, n_steps, n_channels)``: [g, r]
    fluxes, then the context channels if ``config.context_channels``.

    An object with no usable g/r detection is not prepared (``ok`` False, with a
    reason); its row of ``values`` is zeros and must not be scored.
    """
    config = config or PreparationConfig()
    n = obs.n_objects
    values = np.zeros((n, config.n_steps, config.n_channels), dtype=np.float32)
    kept, t_ref, peak, first_detection = _select_points(obs, config)
    n_det = np.bincount(kept.object_index[kept.detected], minlength=n)
    ok = (n_det > 0) & (peak > 0) & np.isfinite(peak)
    reason = np.full(n, None, dtype=object)
    has_any = np.bincount(kept.object_index, minlength=n) > 0
    reason[~ok] = REASON_NO_DETECTION
    reason[~has_any] = REASON_NO_DATA
    objects = np.flatnonzero(ok)
    if len(objects):
        kept = kept.subset(ok[kept.object_index])
        scale = peak[kept.object_index]
        y = kept.flux / scale
        error = np.where(kept.detected, kept.flux_err, kept.flux_err * config.limit_noise_factor)
        noise = np.hypot(error / scale, config.noise_floor)
        grid = np.zeros((n, config.n_steps, len(BANDS)), dtype=np.float64)
        if config.method == "gp":
            _gp_grid(kept, objects, t_ref, y, noise, config, grid)
        else:
            _linear_grid(kept, objects, t_ref, y, config, grid)
        values[objects, :, :len(BANDS)] = grid[objects]
        if config.context_channels:
            values[objects, :, len(BANDS):] = _context_channels(kept, objects, t_ref, first_detection, config)
    return PreparedBatch(values=values, ok=ok, reason=reason, n_detections=n_det)
