"""Light-curve preparation shared by training and inference.

Observations of many objects (:class:`Observations`, made from ZTF alert
columns by :mod:`fink_t2.scoring.alerts` and from PLAsTiCC rows by
:mod:`fink_t2.training.plasticc`) become one
float32 array ``(n_objects, n_steps, n_channels)``: one flux channel per band
of the preparation's survey (:mod:`fink_t2.scoring.surveys`; ZTF ``[g, r]``,
Rubin ``[u, g, r, i, z, y]``), then the optional context and host-redshift
channels, with time running forward: step ``n_steps - 1`` is the time of the
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

The survey enters only through its band list and wavelengths (the GP's band
correlation, one gap channel per band): ZTF and Rubin share every line below.

Upper limits (PLAsTiCC non-detections, ZTF ``diffmaglim`` entries) are treated
identically in both sources: flux 0 with the 1-sigma noise of the limit.

Every function here is pure numpy; no TensorFlow, no Spark.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from fink_t2.scoring.config import build
from fink_t2.scoring.sky import (
    SCALED_LIMIT,
    SKY_CHANNELS,
    SkyContext,
    distance_modulus,
    luminosity_distance_mpc,
    sky_channels,
)
from fink_t2.scoring.surveys import DEFAULT_SURVEY, ZTF, Survey, get_survey

#: Band order of a ZTF model's input, fixed forever (the original used a Python set); other surveys:
#: ``PreparationConfig.bands``.
BANDS: tuple[str, ...] = ZTF.bands
#: Effective wavelengths in Angstrom of ZTF g and r, used as the GP's second axis.
BAND_WAVELENGTHS: tuple[float, ...] = ZTF.wavelengths

#: SNANA FLUXCAL zero point used by PLAsTiCC.
FLUXCAL_ZEROPOINT: float = 27.5
#: AB zero point of fluxes in nJy (Rubin's difference fluxes): 2.5 log10(3631e9).
NJY_ZEROPOINT: float = 31.4
_LN10_OVER_2P5 = np.log(10.0) / 2.5

#: The context channels of a ZTF model, in input order after g and r (see :func:`_context_channels`;
#: other surveys: ``PreparationConfig.channel_names``).
CONTEXT_CHANNELS: tuple[str, ...] = ("age", "gap_g", "gap_r")
#: The host-redshift channels (``PreparationConfig.host_redshift``), last: ``log(1 + z)`` (0 when
#: unknown) and 1 where the redshift is known, 0 where not. Constant along time.
REDSHIFT_CHANNELS: tuple[str, ...] = ("host_z", "host_z_known")
#: The brightness channels (``PreparationConfig.brightness``), last: the apparent peak magnitude
#: ``(m - 22) / 2`` (per-object peak scaling removes it from the band channels, and a faint alert is a far
#: one), the absolute peak magnitude ``(M + 19) / 2`` at the host's distance (from the host photo-z, else
#: from a Mangrove match; 0 when neither is known) and a "distance known" flag. Clipped to +-4.
BRIGHTNESS_CHANNELS: tuple[str, ...] = ("peak_mag", "peak_absmag", "peak_absmag_known")
APPARENT_MAG_CENTRE, ABSOLUTE_MAG_CENTRE, MAG_WIDTH = 22.0, -19.0, 2.0
#: Host photo-z at or below this gives no distance (PLAsTiCC's 0 = Galactic; a photo-z of 0.001 is 4 Mpc).
MIN_DISTANCE_REDSHIFT = 1e-3
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
    #: Add the context channels (age since the first detection, distance to the nearest point of
    #: each band) after the band fluxes. Off for models trained before they existed.
    context_channels: bool = False
    #: The survey whose bands are prepared (:mod:`fink_t2.scoring.surveys`).
    survey: str = DEFAULT_SURVEY
    #: Add the two host-redshift channels (:data:`REDSHIFT_CHANNELS`) after the context channels.
    host_redshift: bool = False
    #: The oldest ``coarse_steps`` of the ``n_steps`` are ``coarse_step_days`` apart instead of ``step_days``:
    #: a long history seen at the same model cost (a whole light curve's rise and peak, not only its tail).
    coarse_steps: int = 0
    coarse_step_days: float = 0.0
    #: Add the sky-context channels (:data:`fink_t2.scoring.sky.SKY_CHANNELS`: host galaxy, Galactic
    #: latitude) last, constant along time.
    sky_context: bool = False
    #: Add the brightness channels (:data:`BRIGHTNESS_CHANNELS`: apparent and absolute peak magnitude) last.
    brightness: bool = False

    @property
    def reads_sky(self) -> bool:
        """Whether the preparation uses the sky context (the sky channels, or a Mangrove distance for the
        absolute brightness)."""
        return bool(self.sky_context or self.brightness)

    @property
    def survey_description(self) -> Survey:
        return get_survey(self.survey)

    @property
    def bands(self) -> tuple[str, ...]:
        """Band names in model-input order."""
        return self.survey_description.bands

    @property
    def channel_names(self) -> tuple[str, ...]:
        """What each value of a time step is: band fluxes, then context, then host-redshift channels."""
        names = self.bands
        if self.context_channels:
            names += ("age", *(f"gap_{band}" for band in self.bands))
        if self.host_redshift:
            names += REDSHIFT_CHANNELS
        if self.sky_context:
            names += SKY_CHANNELS
        if self.brightness:
            names += BRIGHTNESS_CHANNELS
        return names

    @property
    def n_channels(self) -> int:
        """Values per time step of the model input (ZTF: g, r, then the 3 context channels if enabled)."""
        return len(self.channel_names)

    @property
    def reason_no_detection(self) -> str:
        """Why an object with no usable detection is not prepared (ZTF: :data:`REASON_NO_DETECTION`)."""
        return f"no valid {'/'.join(self.bands)} detection"

    @property
    def grid_offsets_days(self) -> np.ndarray:
        """Time of each step relative to the latest observation (days, <= 0, increasing to 0)."""
        fine = self.n_steps - self.coarse_steps
        offsets = -(fine - 1 - np.arange(fine)) * self.step_days
        if self.coarse_steps:
            coarse = offsets[0] - (self.coarse_steps - np.arange(self.coarse_steps)) * self.coarse_step_days
            offsets = np.concatenate([coarse, offsets])
        return offsets.astype(np.float64)

    @property
    def window_days(self) -> float:
        """Span covered by the grid, from its first to its last step."""
        return float(-self.grid_offsets_days[0])

    @property
    def lookback_days(self) -> float:
        """Observations older than this (before the latest one) cannot affect the grid."""
        return self.window_days + 3.0 * self.time_scale_days

    def to_dict(self) -> dict:
        """The parameters as a model's YAML stores them. ``survey`` and ``host_redshift`` only when not
        the default, so a ZTF preparation is written exactly as before they existed."""
        values = asdict(self)
        if self.survey == DEFAULT_SURVEY:
            del values["survey"]
        for name in ("host_redshift", "coarse_steps", "coarse_step_days", "sky_context", "brightness"):
            if not values[name]:
                del values[name]
        return values

    @classmethod
    def from_dict(cls, values: dict, source: str = "preparation parameters") -> "PreparationConfig":
        """Strictly typed: an unknown key or a wrong type is an error naming ``source`` and the key."""
        return build(cls, values, source)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if int(self.n_steps) < 2:
            raise ValueError("n_steps must be >= 2")
        for name in ("step_days", "time_scale_days", "wavelength_scale", "noise_floor", "limit_noise_factor"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0")
        if not 0 <= int(self.coarse_steps) < int(self.n_steps):
            raise ValueError("coarse_steps must be in [0, n_steps)")
        if int(self.coarse_steps) and not float(self.coarse_step_days) >= float(self.step_days):
            raise ValueError("coarse_step_days must be >= step_days when coarse_steps > 0")
        if int(self.max_points) < 1:
            raise ValueError("max_points must be >= 1")
        if self.method not in ("gp", "linear"):
            raise ValueError("method must be 'gp' or 'linear'")
        get_survey(self.survey)  # an unknown survey names the known ones


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
    n_detections: np.ndarray  # int (n_objects,): valid detections (in the survey's bands) used


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


#: nJy -> FLUXCAL: the same source in both units (zero points 31.4 and 27.5).
NJY_TO_FLUXCAL: float = 10.0 ** (-0.4 * (NJY_ZEROPOINT - FLUXCAL_ZEROPOINT))


def njy_to_fluxcal(flux, flux_err=None):
    """Rubin fluxes in nJy -> SNANA FLUXCAL (negative fluxes stay negative: they are measurements)."""
    flux = np.asarray(flux, dtype=np.float64) * NJY_TO_FLUXCAL
    if flux_err is None:
        return flux
    return flux, np.asarray(flux_err, dtype=np.float64) * NJY_TO_FLUXCAL


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
        & (obs.band >= 0) & (obs.band < len(config.bands))
        & (obs.object_index >= 0) & (obs.object_index < obs.n_objects)
    )
    if not config.use_upper_limits:
        valid &= obs.detected
    obs = obs.subset(valid)
    if not _sorted_by_object_and_time(obs):  # alert histories usually arrive sorted: skip the sort then
        obs = obs.subset(np.lexsort((obs.time, obs.object_index)))
    n = obs.n_objects
    # The steps below narrow one mask and copy the observations once, at the end.
    first_detection = np.full(n, np.inf)
    np.minimum.at(first_detection, obs.object_index[obs.detected], obs.time[obs.detected])
    keep = obs.detected | (obs.time < first_detection[obs.object_index])
    t_ref = np.full(n, -np.inf)
    np.maximum.at(t_ref, obs.object_index[keep], obs.time[keep])
    keep &= obs.time >= t_ref[obs.object_index] - config.lookback_days
    # Rank from the end within each object among the points kept so far; keep the most recent max_points.
    ends = np.cumsum(np.bincount(obs.object_index[keep], minlength=n))
    rank_from_end = ends[obs.object_index] - np.cumsum(keep)
    keep &= rank_from_end < config.max_points
    obs = obs.subset(keep)
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
    """Correlation between the survey's bands (n_bands x n_bands): Matern-3/2 of their wavelength distance."""
    w = np.asarray(config.survey_description.wavelengths, dtype=np.float64) / config.wavelength_scale
    return _matern32(w[:, None] - w[None, :])


#: Most objects per batched solve, and most covariance entries (objects x size^2) per solve: a batch's
#: temporaries stay in cache whatever the size (a fixed count of objects ran out of cache for long light
#: curves and spent its time in Python for short ones). The values do not depend on either: each matrix is
#: solved on its own.
_GP_CHUNK = 512
_GP_BATCH_ENTRIES = 65536
#: Point counts are padded up to a multiple of this: fewer, larger groups vs. less padding work (1 measured
#: ~7 % faster than 2 once groups are solved in cache-sized batches: the solve is cubic in the padded size;
#: padding rows are inert, so the values do not change).
_PAD_MULTIPLE = 1
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
        chunk = max(1, min(_GP_CHUNK, _GP_BATCH_ENTRIES // (size * size)))
        for c0 in range(0, len(members), chunk):
            group = members[c0:c0 + chunk]
            has = col[None, :] < counts[group][:, None]
            idx = np.where(has, starts[group][:, None] + col[None, :], 0)
            # Padding slots sit far away in time (and from each other): their covariance with
            # anything underflows to 0, so no mask is needed, and their right-hand side is 0.
            t = np.where(has, (obs.time[idx] - t_ref[group][:, None]) / time_scale, _PAD_TIME + _PAD_STEP * col)
            band = obs.band[idx]
            k = _matern32(np.subtract(t[:, :, None], t[:, None, :]))
            if len(band_corr) == 2:  # two bands (ZTF): pairs of different bands are scaled by their correlation
                # 1 + (rho - 1) * [b_i != b_j]: 1 or rho exactly (rho - 1 is exact for rho >= 0.5; ZTF's is 0.92),
                # in contiguous passes ~3x faster than a masked multiply or a np.where.
                factor = np.not_equal(band[:, :, None], band[:, None, :]) * (band_corr[0, 1] - 1.0)
                factor += 1.0
                k *= factor
            else:
                k *= band_corr[band[:, :, None], band[:, None, :]]
            diagonal = k.reshape(len(group), size * size)[:, ::size + 1]  # a view: no fancy-index round trip
            diagonal += np.where(has, noise[idx] ** 2, 1.0)
            rhs = np.where(has, y[idx], 0.0)
            alpha = np.linalg.solve(k, rhs[:, :, None])[:, :, 0]
            yield group, t, band, alpha, has


def _gp_grid(obs: Observations, objects: np.ndarray, t_ref: np.ndarray, y: np.ndarray, noise: np.ndarray,
             config: PreparationConfig, out: np.ndarray) -> None:
    """GP posterior mean on the grid for ``objects`` (all with >= 1 point), written into ``out``.

    The kernel is Matern-3/2 in time times a fixed band correlation (the
    Matern-3/2 of the bands' wavelength distance), so a band missing from an
    alert is inferred from the others.
    """
    band_corr = _band_correlation(config)
    grid_t = (config.grid_offsets_days / config.time_scale_days).astype(np.float32)
    for group, t, band, alpha, _ in _gp_chunks(obs, objects, t_ref, y, noise, config.time_scale_days, band_corr):
        k_time = _matern32(np.subtract(grid_t[None, :, None], t.astype(np.float32)[:, None, :]))
        # mean[band b] = sum_p k_time * corr[b, band_p] * alpha_p
        weighted = alpha[:, None, :] * band_corr[:, band].transpose(1, 0, 2)  # (m, n_bands, size)
        out[group] = np.matmul(k_time, weighted.astype(np.float32).transpose(0, 2, 1))


def gp_mean_at(obs: Observations, y: np.ndarray, noise: np.ndarray, query_object: np.ndarray,
               query_time: np.ndarray, query_band: np.ndarray, time_scale: float,
               config: PreparationConfig | None = None) -> np.ndarray:
    """GP posterior mean of ``y`` at arbitrary (object, time, band) queries.

    Used to draw survey-like resampled training light curves from PLAsTiCC ones
    (bands of ``config``'s survey); ``obs`` must be sorted by (object, time).
    Objects without points give 0.
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
    grid = config.grid_offsets_days
    wanted = np.zeros(obs.n_objects, dtype=bool)
    wanted[objects] = True
    for band in range(len(config.bands)):
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
    """What the peak-scaled GP mean cannot say, per grid step: (len(objects), n_steps, 1 + n_bands).

    - age: ``asinh((t_step - first detection) / AGE_SCALE_DAYS)``, the time since the first
      detection in the history delivered (negative before it). Peak scaling and a fixed window
      hide how long an object has been bright; a light curve's duration separates SNe II from Ia.
    - gap_<band> for each band of the survey (ZTF: gap_g, gap_r): distance from the step to the
      nearest kept point of that band, in GP time scales, clipped at MAX_GAP_SCALES: where the GP
      mean is data and where it is only the prior.

    ``kept`` is sorted by (object, time) (as :func:`_select_points` returns it). Steps and points
    are placed on one axis, ``object position * span + time since t_ref``, and one search places
    every step among the points of all bands; a running count of each band's points then says where
    the step falls among that band's points, and the two around it are the candidates. A point of
    another object lies ~``span`` away: its gap is clipped like no point's.
    """
    steps = config.grid_offsets_days
    grid_time = t_ref[objects][:, None] + steps[None, :]
    n_bands = len(config.bands)
    out = np.empty((len(objects), config.n_steps, 1 + n_bands), dtype=np.float32)
    out[:, :, 0] = np.arcsinh((grid_time - first_detection[objects][:, None]) / AGE_SCALE_DAYS)
    position = np.full(kept.n_objects, -1, dtype=np.int64)
    position[objects] = np.arange(len(objects))
    kept_position = position[kept.object_index]
    mine = kept_position >= 0
    if not mine.all():
        kept, kept_position = kept.subset(mine), kept_position[mine]
    span = 1e6  # composite key (object, time): times span far less than this
    query = (np.arange(len(objects))[:, None] * span + (grid_time - t_ref[objects][:, None])).ravel()
    key = kept_position * span + (kept.time - t_ref[kept.object_index])  # sorted: kept is (object, time)
    right = np.searchsorted(key, query)  # how many points of any band lie before each step
    count = np.zeros(len(key) + 1, dtype=np.int64)
    for band in range(n_bands):
        of_band = kept.band == band
        np.cumsum(of_band, out=count[1:])
        at = count[right]  # how many points of the band lie before each step: the next one's index
        band_key = np.append(key[of_band], np.inf)  # an inf sentinel after the last one, also read as [-1]
        gap = np.minimum(np.abs(band_key[at - 1] - query), np.abs(band_key[at] - query))
        out[:, :, 1 + band] = np.minimum(gap / config.time_scale_days, MAX_GAP_SCALES).reshape(len(objects), -1)
    return out


def redshift_channels(host_z: np.ndarray | None, n_objects: int) -> np.ndarray:
    """(n_objects, 2) float32: ``log(1 + z)`` and a known flag; NaN, negative or absent redshifts are unknown
    (0, 0): a host redshift is optional input, its absence must not read as z = 0."""
    out = np.zeros((n_objects, len(REDSHIFT_CHANNELS)), dtype=np.float32)
    if host_z is None:
        return out
    z = np.asarray(host_z, dtype=np.float64).reshape(-1)
    if len(z) != n_objects:
        raise ValueError(f"host_z has {len(z)} values, expected one per object ({n_objects})")
    known = np.isfinite(z) & (z >= 0)
    out[known, 0] = np.log1p(z[known])
    out[known, 1] = 1.0
    return out


def sky_input(sky: SkyContext | None, peak_flux: np.ndarray, n_objects: int) -> np.ndarray:
    """(n_objects, len(SKY_CHANNELS)) sky-context inputs; ``peak_flux`` (FLUXCAL, per object) gives the peak
    magnitude that a host distance turns into an absolute one. None: no context for any object."""
    if sky is None:
        sky = SkyContext.unknown(n_objects)
    if len(sky) != n_objects:
        raise ValueError(f"sky context has {len(sky)} entries, expected one per object ({n_objects})")
    with np.errstate(divide="ignore", invalid="ignore"):
        peak_mag = np.where(peak_flux > 0, FLUXCAL_ZEROPOINT - 2.5 * np.log10(np.maximum(peak_flux, 1e-300)), np.nan)
    return sky_channels(sky, peak_mag)


def brightness_input(peak_flux: np.ndarray, host_z: np.ndarray | None, sky: SkyContext | None,
                     n_objects: int) -> np.ndarray:
    """(n_objects, len(BRIGHTNESS_CHANNELS)): apparent peak magnitude, absolute peak magnitude at the host's
    distance (host photo-z first, else a Mangrove match) and whether that distance is known."""
    out = np.zeros((n_objects, len(BRIGHTNESS_CHANNELS)), dtype=np.float32)
    peak_flux = np.asarray(peak_flux, dtype=np.float64)
    bright = np.isfinite(peak_flux) & (peak_flux > 0)
    mag = np.where(bright, FLUXCAL_ZEROPOINT - 2.5 * np.log10(np.where(bright, peak_flux, 1.0)), np.nan)
    out[:, 0] = np.where(bright, np.clip((mag - APPARENT_MAG_CENTRE) / MAG_WIDTH, -SCALED_LIMIT, SCALED_LIMIT), 0.0)
    distance = np.full(n_objects, np.nan)
    if host_z is not None:
        z = np.asarray(host_z, dtype=np.float64).reshape(-1)
        if len(z) != n_objects:
            raise ValueError(f"host_z has {len(z)} values, expected one per object ({n_objects})")
        with_z = np.isfinite(z) & (z > MIN_DISTANCE_REDSHIFT) & (z < 20.0)
        distance[with_z] = luminosity_distance_mpc(z[with_z])
    if sky is not None:
        if len(sky) != n_objects:
            raise ValueError(f"sky context has {len(sky)} entries, expected one per object ({n_objects})")
        from_host = ~np.isfinite(distance) & sky.host_matched
        distance[from_host] = sky.host_distance_mpc[from_host]
    known = bright & np.isfinite(distance) & (distance > 0)
    absolute = mag - distance_modulus(np.where(known, distance, 1.0))
    out[:, 1] = np.where(known, np.clip((absolute - ABSOLUTE_MAG_CENTRE) / MAG_WIDTH, -SCALED_LIMIT, SCALED_LIMIT),
                         0.0)
    out[:, 2] = known
    return out


def prepare(obs: Observations, config: PreparationConfig | None = None,
            host_z: np.ndarray | None = None, sky: SkyContext | None = None) -> PreparedBatch:
    """Observations of many objects -> model input ``(n_objects, n_steps, n_channels)``: one flux channel
    per band of ``config.survey``, then the context channels if ``config.context_channels``, then the
    host-redshift channels if ``config.host_redshift`` (from ``host_z``, one per object, NaN = unknown;
    ignored by a preparation without them), then the sky-context channels if ``config.sky_context``
    (from ``sky``, one entry per object; None: unknown for every object).

    An object with no usable detection is not prepared (``ok`` False, with a
    reason); its row of ``values`` is zeros and must not be scored.
    """
    config = config or PreparationConfig()
    n = obs.n_objects
    n_bands = len(config.bands)
    values = np.zeros((n, config.n_steps, config.n_channels), dtype=np.float32)
    kept, t_ref, peak, first_detection = _select_points(obs, config)
    n_det = np.bincount(kept.object_index[kept.detected], minlength=n)
    ok = (n_det > 0) & (peak > 0) & np.isfinite(peak)
    reason = np.full(n, None, dtype=object)
    has_any = np.bincount(kept.object_index, minlength=n) > 0
    reason[~ok] = config.reason_no_detection
    reason[~has_any] = REASON_NO_DATA
    objects = np.flatnonzero(ok)
    redshift = redshift_channels(host_z, n) if config.host_redshift else None
    if len(objects):
        kept = kept.subset(ok[kept.object_index])
        scale = peak[kept.object_index]
        y = kept.flux / scale
        error = np.where(kept.detected, kept.flux_err, kept.flux_err * config.limit_noise_factor)
        noise = np.hypot(error / scale, config.noise_floor)
        fluxes = values[:, :, :n_bands]  # a view: the interpolation writes the band channels in place
        if config.method == "gp":
            _gp_grid(kept, objects, t_ref, y, noise, config, fluxes)
        else:
            _linear_grid(kept, objects, t_ref, y, config, fluxes)
        if config.context_channels:
            values[objects, :, n_bands:2 * n_bands + 1] = _context_channels(kept, objects, t_ref, first_detection,
                                                                            config)
        names = config.channel_names
        if redshift is not None:
            start = names.index(REDSHIFT_CHANNELS[0])
            values[objects, :, start:start + len(REDSHIFT_CHANNELS)] = redshift[objects][:, None, :]
        if config.sky_context:
            start = names.index(SKY_CHANNELS[0])
            values[objects, :, start:start + len(SKY_CHANNELS)] = sky_input(sky, peak, n)[objects][:, None, :]
        if config.brightness:
            start = names.index(BRIGHTNESS_CHANNELS[0])
            values[objects, :, start:start + len(BRIGHTNESS_CHANNELS)] = \
                brightness_input(peak, host_z, sky, n)[objects][:, None, :]
    return PreparedBatch(values=values, ok=ok, reason=reason, n_detections=n_det)
