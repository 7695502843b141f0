"""Redshift augmentation: PLAsTiCC training objects re-observed farther away, as the survey would see them.

PLAsTiCC's training set is what spectroscopic follow-up picks: bright, nearby, well
sampled. The alert stream is the test set's population: farther, fainter, sparser
(host photo-z median 0.58 for SNe Ia against 0.38 in training; a median of 4 detections).
A model trained on the first alone learns "bright and well sampled" as part of each
class. As avocado did to win PLAsTiCC (Boone 2019), every training object can be moved
to a higher redshift z' and observed again:

- a Gaussian process in (time, wavelength) is fitted to the object's forced photometry
  (Matern-3/2 in both, product kernel; the time scale chosen by marginal likelihood on a
  small grid, the wavelength scale fixed): the light curve in every band and between
  them;
- at z' the observer's time t' and band wavelength w' see the source's rest-frame epoch
  and wavelength of observed time ``t_peak + (t' - t_peak') (1+z)/(1+z')`` and wavelength
  ``w' (1+z)/(1+z')``: time dilated by (1+z')/(1+z), bands shifted to the blue of the
  source's;
- fluxes (per unit frequency, as FLUXCAL) scale by ``(d_L(z)/d_L(z'))^2 (1+z')/(1+z)``;
- the observations keep the source's cadence and per-epoch noise (a deep-drilling source
  is thinned to wide-fast-deep's sampling and given its noise, per band); the new flux
  is the GP mean plus its uncertainty and the noise; points under 5 sigma are not
  detected, as in the alert stream; an object left with fewer than ``min_detections``
  detections is dropped (the survey would not have seen it);
- the host photo-z is the new redshift plus an error drawn from the training objects'
  own photo-z errors at a similar redshift.

Galactic objects (host redshift 0) have no redshift to move: they keep their light curves
(thinned like a wide-fast-deep field when they come from a deep-drilling one).

Augmented objects are new objects whose ``source`` is the object they came from: they
belong to their source's split (training copies train, held-out copies are the test-like
held-out set). Training side only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from fink_t2.scoring.lightcurves import Observations
from fink_t2.scoring.sky import luminosity_distance_mpc
from fink_t2.training.plasticc import DETECTION_SNR, HOST_REDSHIFT_COLUMN, PlasticcData, restrict_to_survey

#: LSST's effective wavelengths (Angstrom) of PLAsTiCC's passbands u g r i z y.
PASSBAND_WAVELENGTHS = np.array([3685.0, 4802.0, 6231.0, 7542.0, 8690.0, 9736.0])
#: Median flux error of wide-fast-deep over deep-drilling points, per passband (PLAsTiCC training set).
WFD_OVER_DDF_NOISE = np.array([5.3, 2.2, 3.2, 3.6, 5.4, 5.1])
#: Share of a deep-drilling object's points a wide-fast-deep field would have (median 127 of 327 points).
WFD_POINT_SHARE = 0.39
#: Time scales (days) the GP's time scale is chosen from, by marginal likelihood.
GP_TIME_SCALES = (8.0, 16.0, 32.0, 64.0)
#: Wavelength scale (Angstrom) of the GP: LSST's bands span about one scale.
GP_WAVELENGTH_SCALE = 6000.0
#: The GP sees the points from this many days before to this many after the peak (observer frame), at most
#: ``GP_MAX_POINTS`` of them (every k-th: a deep-drilling object has up to 350).
GP_WINDOW_DAYS = (100.0, 250.0)
GP_MAX_POINTS = 240


@dataclass(frozen=True)
class RedshiftAugmentation:
    """How augmented objects are drawn.

    The new redshift: ``log(1 + z')`` uniform between ``log(1 + z)`` and ``log(1 + z_hi)``,
    ``z_hi = min(max(stretch_factor z, z + min_step), max_redshift)``.
    """

    copies: int = 3
    stretch_factor: float = 2.5
    min_step: float = 0.2
    max_redshift: float = 3.0
    min_detections: int = 2
    #: Shift of the peak in the observer's time (days, uniform +-): the season cuts light curves anywhere.
    peak_shift_days: float = 30.0
    #: Deep-drilling sources become wide-fast-deep-like (thinned, noisier).
    to_wide_fast_deep: bool = True
    #: Galactic objects get copies too (thinned, not moved), so their share does not shrink.
    copy_galactic: bool = True

    def __post_init__(self) -> None:
        if self.copies < 0 or self.stretch_factor < 1 or self.min_step < 0 or self.max_redshift <= 0:
            raise ValueError(f"redshift augmentation: copies >= 0, stretch_factor >= 1, min_step >= 0 and "
                             f"max_redshift > 0, got {self}")
        if self.min_detections < 1:
            raise ValueError("redshift augmentation: min_detections >= 1")


def flux_scale(z_source: np.ndarray, z_new: np.ndarray) -> np.ndarray:
    """Factor of a flux per unit frequency moved from redshift ``z_source`` to ``z_new`` (same rest frame):
    ``(d_L(z)/d_L(z'))^2 (1+z')/(1+z)``. The bandwidth term: a band at z' collects rest-frame frequencies
    (1+z')/(1+z) times wider for the same observed width."""
    z_source, z_new = np.asarray(z_source, np.float64), np.asarray(z_new, np.float64)
    ratio = luminosity_distance_mpc(z_source) / luminosity_distance_mpc(z_new)
    return ratio ** 2 * (1.0 + z_new) / (1.0 + z_source)


def draw_redshifts(z: np.ndarray, rng: np.random.Generator, config: RedshiftAugmentation) -> np.ndarray:
    """New redshifts, one per entry of ``z`` (> 0), never nearer than the source."""
    z = np.asarray(z, np.float64)
    z_hi = np.minimum(np.maximum(config.stretch_factor * z, z + config.min_step), config.max_redshift)
    z_hi = np.maximum(z_hi, z)
    lo, hi = np.log1p(z), np.log1p(z_hi)
    return np.expm1(lo + rng.random(len(z)) * (hi - lo))


def _matern32(distance: np.ndarray) -> np.ndarray:
    scaled = np.sqrt(3.0) * np.abs(distance)
    return (1.0 + scaled) * np.exp(-scaled)


@dataclass
class ObjectGP:
    """A fitted (time, wavelength) Gaussian process of one object's forced photometry."""

    time: np.ndarray
    wavelength: np.ndarray
    alpha: np.ndarray  # K^-1 y
    cholesky: np.ndarray
    amplitude: float
    time_scale: float

    def kernel(self, time: np.ndarray, wavelength: np.ndarray) -> np.ndarray:
        return (self.amplitude ** 2 * _matern32((time[:, None] - self.time[None, :]) / self.time_scale)
                * _matern32((wavelength[:, None] - self.wavelength[None, :]) / GP_WAVELENGTH_SCALE))

    def predict(self, time: np.ndarray, wavelength: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of the flux at (time, wavelength)."""
        cross = self.kernel(np.asarray(time, np.float64), np.asarray(wavelength, np.float64))
        mean = cross @ self.alpha
        v = np.linalg.solve(self.cholesky, cross.T)  # lower-triangular system; sizes are small
        variance = np.maximum(self.amplitude ** 2 - np.sum(v ** 2, axis=0), 0.0)
        return mean, np.sqrt(variance)


def fit_object_gp(time: np.ndarray, wavelength: np.ndarray, flux: np.ndarray, flux_err: np.ndarray,
                  time_scales=GP_TIME_SCALES) -> ObjectGP:
    """The GP of one object (zero mean: a transient's flux is 0 far from its event); amplitude = the largest
    |flux| at more than 3 sigma (else the largest |flux|), time scale by marginal likelihood."""
    time, wavelength = np.asarray(time, np.float64), np.asarray(wavelength, np.float64)
    flux, flux_err = np.asarray(flux, np.float64), np.asarray(flux_err, np.float64)
    significant = np.abs(flux) > 3.0 * flux_err
    amplitude = float(np.max(np.abs(flux[significant]))) if significant.any() else float(np.max(np.abs(flux)))
    amplitude = max(amplitude, 1e-6)
    dw = _matern32((wavelength[:, None] - wavelength[None, :]) / GP_WAVELENGTH_SCALE)
    dt = time[:, None] - time[None, :]
    noise = np.diag(flux_err ** 2 + (1e-6 * amplitude) ** 2)
    best = None
    for scale in time_scales:
        k = amplitude ** 2 * _matern32(dt / scale) * dw + noise
        try:
            chol = np.linalg.cholesky(k)
        except np.linalg.LinAlgError:
            continue
        alpha_half = np.linalg.solve(chol, flux)
        log_likelihood = -0.5 * alpha_half @ alpha_half - np.sum(np.log(np.diag(chol)))
        if best is None or log_likelihood > best[0]:
            best = (log_likelihood, scale, chol, alpha_half)
    if best is None:
        raise np.linalg.LinAlgError("no GP time scale gives a positive-definite kernel")
    _, scale, chol, alpha_half = best
    alpha = np.linalg.solve(chol.T, alpha_half)
    return ObjectGP(time, wavelength, alpha, chol, amplitude, scale)


def source_redshift(metadata: pd.DataFrame) -> np.ndarray:
    """Each object's redshift (the spectroscopic one PLAsTiCC's training set has; 0 = galactic)."""
    for column in ("hostgal_specz", "true_z"):
        if column in metadata:
            z = pd.to_numeric(metadata[column], errors="coerce").to_numpy(np.float64)
            return np.where(np.isfinite(z) & (z > 0), z, 0.0)
    raise ValueError("PLAsTiCC metadata has neither hostgal_specz nor true_z: cannot move objects in redshift")


def photoz_errors(metadata: pd.DataFrame, objects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(spec-z, photo-z error / (1 + spec-z)) of the extragalactic ``objects``: what new photo-z are drawn
    from, by nearest spec-z."""
    z = source_redshift(metadata)[objects]
    photoz = pd.to_numeric(metadata[HOST_REDSHIFT_COLUMN], errors="coerce").to_numpy(np.float64)[objects]
    ok = (z > 0) & np.isfinite(photoz)
    order = np.argsort(z[ok])
    return z[ok][order], ((photoz[ok] - z[ok]) / (1.0 + z[ok]))[order]


def draw_photoz(z_new: np.ndarray, reference: tuple[np.ndarray, np.ndarray], rng: np.random.Generator,
                neighbours: int = 40) -> np.ndarray:
    """Host photo-z of objects at ``z_new``: the error (in units of 1+z) of one of the ``neighbours``
    reference objects nearest in redshift (beyond the reference's range: the farthest ones)."""
    ref_z, ref_err = reference
    if len(ref_z) == 0:
        return z_new.copy()
    k = min(neighbours, len(ref_z))
    centre = np.searchsorted(ref_z, z_new)
    start = np.clip(centre - k // 2, 0, len(ref_z) - k)
    pick = start + rng.integers(0, k, len(z_new))
    return np.maximum(z_new + ref_err[pick] * (1.0 + z_new), 0.0)


@dataclass
class AugmentedObjects:
    """New objects made from PLAsTiCC objects: ``source`` is each one's object index in the data it came from."""

    data: PlasticcData
    source: np.ndarray
    redshift: np.ndarray  # the new redshift (0 for galactic copies)
    stats: dict = field(default_factory=dict)


def _object_segments(obs: Observations) -> tuple[Observations, np.ndarray, np.ndarray]:
    order = np.lexsort((obs.time, obs.object_index))
    src = obs.subset(order)
    counts = np.bincount(src.object_index, minlength=obs.n_objects)
    return src, np.cumsum(counts) - counts, counts


def augment(data: PlasticcData, objects: np.ndarray, rng: np.random.Generator,
            config: RedshiftAugmentation = RedshiftAugmentation(), reference_objects: np.ndarray | None = None,
            wavelengths: np.ndarray | None = None) -> AugmentedObjects:
    """``config.copies`` augmented objects per object of ``objects`` (positions in ``data``), those the survey
    would detect. ``data`` must hold the six PLAsTiCC passbands (``survey="rubin"``); restrict the result
    to a survey's bands afterwards. ``reference_objects``: whose photo-z errors new photo-z are drawn from
    (default ``objects``: never another split's)."""
    if data.survey.n_bands != len(PASSBAND_WAVELENGTHS) and wavelengths is None:
        raise ValueError("augment needs the six PLAsTiCC passbands: load PLAsTiCC with survey='rubin'")
    wavelengths = PASSBAND_WAVELENGTHS if wavelengths is None else np.asarray(wavelengths, np.float64)
    objects = np.asarray(objects, np.int64)
    meta = data.metadata
    z_source = source_redshift(meta)
    ddf = (pd.to_numeric(meta["ddf_bool"], errors="coerce").fillna(0).to_numpy() > 0
           if "ddf_bool" in meta else np.zeros(len(meta), bool))
    peak_time = (pd.to_numeric(meta["true_peakmjd"], errors="coerce").to_numpy(np.float64)
                 if "true_peakmjd" in meta else np.full(len(meta), np.nan))
    reference = photoz_errors(meta, objects if reference_objects is None else np.asarray(reference_objects))
    forced, starts, counts = _object_segments(data.forced)

    parts: dict[str, list] = {k: [] for k in ("index", "time", "band", "flux", "err", "detected")}
    new_source, new_z, new_photoz = [], [], []
    n_tried = n_dropped = 0
    for obj in objects:
        lo, n = starts[obj], counts[obj]
        if n == 0:
            continue
        t, b = forced.time[lo:lo + n], forced.band[lo:lo + n].astype(np.int64)
        f, e = forced.flux[lo:lo + n], forced.flux_err[lo:lo + n]
        z = z_source[obj]
        copies = config.copies if (z > 0 or config.copy_galactic) else 0
        if copies == 0:
            continue
        det = forced.detected[lo:lo + n]
        t_peak = peak_time[obj]
        if not np.isfinite(t_peak) or not (t.min() - 50 <= t_peak <= t.max() + 50):
            t_peak = t[det][np.argmax(np.abs(f[det]))] if det.any() else t[np.argmax(np.abs(f))]
        gp = None
        if z > 0:
            near = np.flatnonzero((t >= t_peak - GP_WINDOW_DAYS[0]) & (t <= t_peak + GP_WINDOW_DAYS[1]))
            if len(near) < 3:
                near = np.arange(n)
            near = near[::int(np.ceil(len(near) / GP_MAX_POINTS))]
            try:
                gp = fit_object_gp(t[near], wavelengths[b[near]], f[near], e[near])
            except np.linalg.LinAlgError:
                continue
        for _ in range(copies):
            n_tried += 1
            keep = np.ones(n, bool)
            err = e.copy()
            if config.to_wide_fast_deep and ddf[obj]:
                keep = rng.random(n) < WFD_POINT_SHARE
                err = err * WFD_OVER_DDF_NOISE[b]
            if gp is not None:
                z_new = float(draw_redshifts(np.array([z]), rng, config)[0])
                stretch = (1.0 + z_new) / (1.0 + z)
                shift = rng.uniform(-config.peak_shift_days, config.peak_shift_days)
                source_time = t_peak + (t - t_peak - shift) / stretch
                mean, _ = gp.predict(source_time, wavelengths[b] / stretch)
                # The GP mean, not a draw: far from the source's points its spread is the prior's, which would
                # make events where the source showed none.
                flux = float(flux_scale(z, z_new)) * mean + rng.normal(size=n) * err
            else:
                z_new = 0.0
                extra = np.sqrt(np.maximum(err ** 2 - e ** 2, 0.0))
                flux = f + rng.normal(size=n) * extra
            detected = np.abs(flux) >= DETECTION_SNR * err
            if (detected & keep).sum() < config.min_detections:
                n_dropped += 1
                continue
            index = len(new_source)
            parts["index"].append(np.full(keep.sum(), index))
            parts["time"].append(t[keep])
            parts["band"].append(b[keep])
            parts["flux"].append(flux[keep])
            parts["err"].append(err[keep])
            parts["detected"].append(detected[keep])
            new_source.append(obj)
            new_z.append(z_new)
            new_photoz.append(z_new)
    new_source = np.asarray(new_source, np.int64)
    new_z = np.asarray(new_z, np.float64)
    photoz = np.where(new_z > 0, draw_photoz(new_z, reference, rng), 0.0) if len(new_z) else new_z
    n_new = len(new_source)

    def cat(key, dtype):
        return np.concatenate(parts[key]).astype(dtype) if parts[key] else np.zeros(0, dtype)

    forced_new = Observations(cat("index", np.int64), cat("time", np.float64), cat("band", np.int8),
                              cat("flux", np.float64), cat("err", np.float64), cat("detected", bool), n_new)
    observations = replace(forced_new, flux=np.where(forced_new.detected, forced_new.flux, 0.0))
    metadata = meta.iloc[new_source].reset_index(drop=True).copy()
    metadata[HOST_REDSHIFT_COLUMN] = photoz
    for column in ("hostgal_specz", "true_z"):
        if column in metadata:
            metadata[column] = new_z
    if "ddf_bool" in metadata and config.to_wide_fast_deep:
        metadata["ddf_bool"] = 0
    if "distmod" in metadata:
        with np.errstate(divide="ignore"):
            metadata["distmod"] = np.where(new_z > 0, 5 * np.log10(luminosity_distance_mpc(np.maximum(new_z, 1e-9)))
                                           + 25, metadata["distmod"])
    object_ids = np.asarray(data.object_ids)[new_source]
    augmented = PlasticcData(observations, forced_new, object_ids, data.labels[new_source], metadata, data.survey)
    stats = {"tried": n_tried, "kept": n_new, "dropped_undetected": n_dropped}
    return AugmentedObjects(augmented, new_source, new_z, stats)


def concatenate_data(parts: list[PlasticcData]) -> PlasticcData:
    """Several PLAsTiCC datasets (same survey) as one; object indices follow the order of ``parts``."""
    from fink_t2.training.plasticc import concatenate_observations

    survey = parts[0].survey
    if any(p.survey.name != survey.name for p in parts):
        raise ValueError("cannot join PLAsTiCC data of different surveys")
    return PlasticcData(concatenate_observations([p.observations for p in parts]),
                        concatenate_observations([p.forced for p in parts]),
                        np.concatenate([np.asarray(p.object_ids) for p in parts]),
                        np.concatenate([p.labels for p in parts]),
                        pd.concat([p.metadata for p in parts], ignore_index=True), survey)


__all__ = ["AugmentedObjects", "ObjectGP", "PASSBAND_WAVELENGTHS", "RedshiftAugmentation", "augment",
           "concatenate_data", "draw_photoz", "draw_redshifts", "fit_object_gp", "flux_scale", "source_redshift"]


def in_survey(data: PlasticcData, survey) -> PlasticcData:
    """Six-band PLAsTiCC data restricted to ``survey``'s bands (re-indexed by band name)."""
    from fink_t2.scoring.surveys import get_survey

    survey = get_survey(survey) if isinstance(survey, str) else survey
    if survey.name == data.survey.name:
        return data
    return PlasticcData(restrict_to_survey(data.observations, data.survey, survey),
                        restrict_to_survey(data.forced, data.survey, survey), data.object_ids, data.labels,
                        data.metadata, survey)


def augmented_split(data: PlasticcData, split: dict, config: RedshiftAugmentation, seed: int,
                    data_dir=None, max_objects: int | None = None) -> tuple[PlasticcData, dict, dict]:
    """``data`` with augmented copies of its training and validation objects appended, and the split with
    them: each copy in its source's split, the test objects untouched (their copies are the test-like set of
    the evaluation). The GP sees all six passbands whatever ``data``'s survey (ZTF: loaded again in six)."""
    from fink_t2.training.plasticc import load_plasticc

    six = data if data.survey.n_bands == len(PASSBAND_WAVELENGTHS) else \
        load_plasticc(data_dir, max_objects=max_objects, seed=seed, survey="rubin")
    if not np.array_equal(np.asarray(six.object_ids), np.asarray(data.object_ids)):
        raise ValueError("the six-band PLAsTiCC objects differ from the training data's")
    rng = np.random.default_rng(seed + 7919)
    parts, new_split, counts = [data], {k: np.asarray(v) for k, v in split.items()}, {}
    offset = data.observations.n_objects
    for name in ("train", "validation"):
        copies = augment(six, split[name], rng, config)
        parts.append(in_survey(copies.data, data.survey))
        counts[name] = len(copies.source)
        new_split[name] = np.concatenate([split[name], offset + np.arange(len(copies.source))])
        offset += len(copies.source)
    return concatenate_data(parts), new_split, counts
