"""PLAsTiCC training data: loading, the object split, and alert-like views.

PLAsTiCC's training set holds whole, well-sampled light curves in LSST's six
bands; Fink sees alerts: a limited history (ZTF: 30 days), often only a few
detections. A *view* is what an alert of a PLAsTiCC object would have looked
like at some epoch: the observations in the survey's bands (ZTF: g/r, Rubin:
u-y; :mod:`fink_t2.scoring.surveys`) in a history window ending at a
detection, optionally thinned, made noisier, or re-observed at the survey's
cadence (:class:`AlertViews` says how, per survey). Views are built for many objects at once and go
through the same :func:`fink_t2.scoring.lightcurves.prepare` as real alerts
(PLAsTiCC rows become observations as ZTF alerts do in
:func:`fink_t2.scoring.alerts.observations_from_alerts`: FLUXCAL, upper limits
as flux 0 with their noise).

The split is by object and happens before any view is made, so no object's
views are in two splits.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from fink_t2.scoring.classes import CLASS_CODES, class_indices
from fink_t2.scoring.lightcurves import Observations
from fink_t2.scoring.surveys import ZTF, Survey, get_survey

#: ZTF alerts carry this many days of previous history (the evaluation epochs use it for every survey).
ALERT_HISTORY_DAYS = 30.0
#: Detection threshold (signal-to-noise) of ZTF and PLAsTiCC difference imaging.
DETECTION_SNR = 5.0

LIGHTCURVES_FILE = "plasticc_train_lightcurves.csv.gz"
METADATA_FILE = "plasticc_train_metadata.csv.gz"
#: PLAsTiCC's passbands 0-5 by name (LSST's bands).
PLASTICC_PASSBANDS: tuple[str, ...] = ("u", "g", "r", "i", "z", "y")
#: Column of the PLAsTiCC metadata holding the host galaxy's photometric redshift.
HOST_REDSHIFT_COLUMN = "hostgal_photoz"


def passband_to_band(survey: Survey) -> dict[int, int]:
    """PLAsTiCC passband -> band index of ``survey``'s model input, matched by band name (ZTF: {1: 0, 2: 1})."""
    return {PLASTICC_PASSBANDS.index(band): i for i, band in enumerate(survey.bands) if band in PLASTICC_PASSBANDS}


#: PLAsTiCC passband -> band index in :data:`fink_t2.scoring.lightcurves.BANDS` (1 = g, 2 = r).
PLASTICC_PASSBAND_TO_BAND: dict[int, int] = passband_to_band(ZTF)


@dataclass
class PlasticcData:
    """All observations (in the survey's bands) of the labelled objects, with labels in model-output order."""

    observations: Observations
    forced: Observations  # same points, non-detections keeping their measured flux
    object_ids: np.ndarray
    labels: np.ndarray  # class index per object (see fink_t2.scoring.classes)
    metadata: pd.DataFrame
    survey: Survey = ZTF

    @property
    def host_z(self) -> np.ndarray:
        """Host photometric redshift per object (NaN where the metadata has none)."""
        if HOST_REDSHIFT_COLUMN not in self.metadata:
            return np.full(len(self.labels), np.nan)
        return pd.to_numeric(self.metadata[HOST_REDSHIFT_COLUMN], errors="coerce").to_numpy(np.float64)


def observations_from_plasticc(lightcurves, object_ids=None, keep_nondetection_flux: bool = False,
                               survey: Survey = ZTF) -> tuple[Observations, np.ndarray]:
    """PLAsTiCC light-curve rows (object_id, mjd, passband, flux, flux_err, detected_bool).

    Only the survey's bands are kept (ZTF: g and r). Non-detections become
    upper limits (flux 0, noise ``flux_err``), as ZTF delivers them, unless
    ``keep_nondetection_flux`` (the forced photometry, used only to draw
    resampled training curves). Returns the observations and the object ids
    in object-index order (``object_ids`` fixes that order if given).
    """
    band_of = np.full(8, -1, dtype=np.int8)
    for passband, band in passband_to_band(survey).items():
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


def default_data_dir() -> Path:
    """``data/plasticc`` in the shared-data folder (``$FINK_T2_SHARED``, else ``../shared`` beside a checkout)."""
    from fink_t2.scoring.paths import shared_path

    return shared_path("data", "plasticc")


#: The columns this package reads from each PLAsTiCC file.
METADATA_COLUMNS = ("object_id", "target")
LIGHTCURVE_COLUMNS = ("object_id", "mjd", "passband", "flux", "flux_err", "detected_bool")


def read_plasticc_csv(path: Path, columns: tuple[str, ...], **options) -> pd.DataFrame:
    """A PLAsTiCC gzipped CSV with at least ``columns``; ValueError (one line: the file, what it lacks) otherwise."""
    try:
        frame = pd.read_csv(path, **options)
    except (OSError, EOFError, UnicodeDecodeError, zlib.error, pd.errors.ParserError, pd.errors.EmptyDataError) \
            as error:  # BadGzipFile (not gzip), truncated, not text, not CSV
        text = " ".join(str(error).split())[:200] or type(error).__name__
        raise ValueError(f"PLAsTiCC file {path} cannot be read as a gzipped CSV ({text}): replace it with the "
                         "PLAsTiCC training set's file, or pass --data-dir pointing to its folder") from error
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"PLAsTiCC file {path} lacks the column(s) {missing} (it has {list(frame.columns)[:10]}): "
                         "replace it with the PLAsTiCC training set's file, or pass --data-dir pointing to its folder")
    return frame


def load_plasticc(data_dir: str | Path | None = None, max_objects: int | None = None, seed: int = 0,
                  survey: Survey | str = ZTF) -> PlasticcData:
    """Read the PLAsTiCC training set (gzipped CSV) and keep objects of the 14 modelled classes,
    observed in ``survey``'s bands.

    ``max_objects`` takes a stratified random subset (for tests and quick runs).
    """
    survey = get_survey(survey) if isinstance(survey, str) else survey
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    lc_path, meta_path = data_dir / LIGHTCURVES_FILE, data_dir / METADATA_FILE
    for path in (lc_path, meta_path):
        if not path.exists():
            raise FileNotFoundError(f"PLAsTiCC file not found: {path} (pass --data-dir pointing to its folder)")
    meta = read_plasticc_csv(meta_path, METADATA_COLUMNS, skipinitialspace=True)
    meta = meta[meta["target"].isin(CLASS_CODES)].reset_index(drop=True)
    if max_objects is not None and max_objects < len(meta):
        rng = np.random.default_rng(seed)
        fraction = max_objects / len(meta)
        picked = []
        for _, group in meta.groupby("target"):
            k = max(2, int(round(fraction * len(group))))
            picked.extend(rng.choice(group.index.to_numpy(), size=min(k, len(group)), replace=False))
        meta = meta.loc[sorted(picked)].reset_index(drop=True)
    lightcurves = read_plasticc_csv(lc_path, LIGHTCURVE_COLUMNS)
    lightcurves = lightcurves[lightcurves["object_id"].isin(meta["object_id"])]
    object_ids = meta["object_id"].to_numpy()
    forced, _ = observations_from_plasticc(lightcurves, object_ids=object_ids, keep_nondetection_flux=True,
                                           survey=survey)
    # What ZTF would deliver: the same points, non-detections as upper limits (flux 0).
    observations = replace(forced, flux=np.where(forced.detected, forced.flux, 0.0))
    labels = np.asarray(class_indices(meta["target"]), dtype=np.int64)
    return PlasticcData(observations, forced, object_ids, labels, meta, survey)


def split_objects(labels: np.ndarray, fractions=(0.7, 0.15, 0.15), seed: int = 42) -> dict[str, np.ndarray]:
    """Stratified split of object positions into train / validation / test."""
    if abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError("split fractions must sum to 1")
    rng = np.random.default_rng(seed)
    parts: dict[str, list] = {"train": [], "validation": [], "test": []}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_val = int(round(fractions[1] * len(members)))
        n_test = int(round(fractions[2] * len(members)))
        parts["test"].extend(members[:n_test])
        parts["validation"].extend(members[n_test:n_test + n_val])
        parts["train"].extend(members[n_test + n_val:])
    return {name: np.sort(np.asarray(idx, dtype=np.int64)) for name, idx in parts.items()}


# --------------------------------------------------------------------------- views


@dataclass
class ViewSpec:
    """Per view: source object, alert time, history length, thinning and noise inflation."""

    source: np.ndarray  # object index in the observations
    alert_time: np.ndarray
    history_days: np.ndarray
    keep_fraction: np.ndarray
    noise_factor: np.ndarray

    def __len__(self) -> int:
        return len(self.source)


def make_views(obs: Observations, spec: ViewSpec, rng: np.random.Generator | None = None) -> Observations:
    """Observations of each view (object index = view index), built for all views at once.

    A view keeps its source's observations in ``[alert_time - history_days,
    alert_time]``. With ``noise_factor`` f > 1 the noise grows by f (flux gets
    the extra scatter) and detections that fall below 5 sigma become upper
    limits; with ``keep_fraction`` < 1 points are dropped at random, except the
    alert's own detection.
    """
    order = np.lexsort((obs.time, obs.object_index))
    src = obs.subset(order)
    counts = np.bincount(src.object_index, minlength=obs.n_objects)
    starts = np.cumsum(counts) - counts
    lo = np.empty(len(spec), dtype=np.int64)
    hi = np.empty(len(spec), dtype=np.int64)
    # Search each view's window inside its source's (time-sorted) segment.
    for obj in np.unique(spec.source):
        views = np.flatnonzero(spec.source == obj)
        seg = src.time[starts[obj]:starts[obj] + counts[obj]]
        lo[views] = starts[obj] + np.searchsorted(seg, spec.alert_time[views] - spec.history_days[views], "left")
        hi[views] = starts[obj] + np.searchsorted(seg, spec.alert_time[views], "right")
    lengths = np.maximum(hi - lo, 0)
    view_index = np.repeat(np.arange(len(spec)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    take = np.repeat(lo, lengths) + offsets
    time, band = src.time[take], src.band[take]
    flux, err, detected = src.flux[take].copy(), src.flux_err[take].copy(), src.detected[take].copy()
    keep = np.ones(len(take), dtype=bool)
    if rng is not None:
        factor = spec.noise_factor[view_index]
        extra = err * np.sqrt(np.maximum(factor ** 2 - 1.0, 0.0))
        flux = np.where(detected, flux + rng.normal(size=len(flux)) * extra, 0.0)
        err = err * factor
        detected &= np.abs(flux) >= DETECTION_SNR * err
        flux = np.where(detected, flux, 0.0)
        is_alert_point = time == spec.alert_time[view_index]
        keep = (rng.random(len(take)) < spec.keep_fraction[view_index]) | is_alert_point
    return Observations(view_index[keep], time[keep], band[keep], flux[keep], err[keep], detected[keep], len(spec))


def detection_epochs(obs: Observations) -> tuple[np.ndarray, np.ndarray]:
    """Times of detections (in the survey's bands) sorted by (object, time), and their object indices."""
    det = obs.detected
    order = np.lexsort((obs.time[det], obs.object_index[det]))
    return obs.time[det][order], obs.object_index[det][order]


def sample_training_views(obs: Observations, objects: np.ndarray, views_per_object: int,
                          rng: np.random.Generator, long_history_fraction: float = 0.25,
                          early_fraction: float = 0.6, early_days: float = 60.0,
                          history_days: float = ALERT_HISTORY_DAYS, clean_fraction: float = 0.0) -> ViewSpec:
    """Random alert-like views of ``objects`` (only those with a detection).

    The alert epoch is a detection: with probability ``early_fraction`` one of
    the first ``early_days`` days after the first detection (where Fink
    classifies most), otherwise any.
    History is ``history_days`` (the survey's alerts: ZTF 30 days) or, for
    ``long_history_fraction`` of views, unlimited. Thinning keeps 30-100 % of
    points; noise grows by 1-3x. ``clean_fraction`` of the views are neither thinned nor made noisier
    (an alert as delivered: what the evaluation epochs and the served alerts are).
    """
    times, owner = detection_epochs(obs)
    wanted = np.isin(owner, objects)
    times, owner = times[wanted], owner[wanted]
    counts = np.bincount(owner, minlength=obs.n_objects)
    starts = np.cumsum(counts) - counts
    usable = objects[counts[objects] > 0]
    source = np.repeat(usable, views_per_object)
    n = len(source)
    # Detections within early_days of the first: how many per object.
    n_early = np.array([np.searchsorted(times[starts[o]:starts[o] + counts[o]], first_o + early_days, "right")
                        for o, first_o in zip(usable, times[starts[usable]])])
    n_early = np.repeat(n_early, views_per_object)
    early = rng.random(n) < early_fraction
    upper = np.where(early, n_early, counts[source])
    pick = (rng.random(n) * upper).astype(np.int64)
    alert_time = times[starts[source] + np.minimum(pick, counts[source] - 1)]
    history = np.where(rng.random(n) < long_history_fraction, 1e5, history_days)
    keep_fraction = rng.uniform(0.3, 1.0, n)
    keep_fraction[rng.random(n) < 0.3] = 1.0
    noise_factor = np.where(rng.random(n) < 0.5, 1.0, rng.uniform(1.0, 3.0, n))
    if clean_fraction > 0:  # drawn only when asked: runs without it keep their random stream
        clean = rng.random(n) < clean_fraction
        keep_fraction[clean], noise_factor[clean] = 1.0, 1.0
    return ViewSpec(source, alert_time, history, keep_fraction, noise_factor)


#: Evaluation epochs: name -> description (see :func:`evaluation_views`).
EVALUATION_EPOCHS: dict[str, str] = {
    "full": "all observations up to the last detection",
    "det3": "3rd detection, 30-day history",
    "first+10d": "last detection within 10 d of the first, 30-day history",
    "first+30d": "last detection within 30 d of the first, 30-day history",
}


def evaluation_views(obs: Observations, objects: np.ndarray, epoch: str,
                     history_days: float = ALERT_HISTORY_DAYS) -> tuple[ViewSpec, np.ndarray]:
    """Deterministic views of ``objects`` at a named epoch (no thinning, no extra noise), alert epochs with
    ``history_days`` of history (ZTF's 30 days by default; Rubin's alerts carry 365).

    Returns the spec and the positions in ``objects`` that have such a view
    (an object with fewer than 3 detections has no ``det3`` view).
    """
    if epoch not in EVALUATION_EPOCHS:
        raise ValueError(f"unknown epoch {epoch!r}; known: {list(EVALUATION_EPOCHS)}")
    times, owner = detection_epochs(obs)
    counts = np.bincount(owner, minlength=obs.n_objects)
    starts = np.cumsum(counts) - counts
    positions, alert_time = [], []
    for pos, obj in enumerate(objects):
        n_det = counts[obj]
        if n_det == 0:
            continue
        seg = times[starts[obj]:starts[obj] + n_det]
        if epoch == "full":
            t = seg[-1]
        elif epoch == "det3":
            if n_det < 3:
                continue
            t = seg[2]
        else:
            days = 10.0 if epoch == "first+10d" else 30.0
            t = seg[np.searchsorted(seg, seg[0] + days, "right") - 1]
        positions.append(pos)
        alert_time.append(t)
    positions = np.asarray(positions, dtype=np.int64)
    m = len(positions)
    history = np.full(m, 1e5 if epoch == "full" else history_days)
    spec = ViewSpec(objects[positions], np.asarray(alert_time, dtype=np.float64), history, np.ones(m), np.ones(m))
    return spec, positions


# --------------------------------------------------------------------------- survey-like resampling

#: Gaps in days between successive ZTF visits of a field, and their frequencies.
ZTF_NIGHT_GAPS = np.array([1.0, 2.0, 3.0, 4.0, 6.0])
ZTF_NIGHT_GAP_WEIGHTS = np.array([0.3, 0.3, 0.2, 0.1, 0.1])
#: Probability that a visit night has a g (resp. r) exposure.
ZTF_BAND_PROBABILITY = 0.7


@dataclass(frozen=True)
class AlertViews:
    """How a survey's alerts see a light curve: what training views imitate (one per survey).

    ``history_days`` is the history an alert carries; the rest is the cadence and depth of
    :func:`resample_views`: gaps between the visit nights of a field, the probability that a
    visit night has an exposure in each band (a night with none gets one band, drawn in
    proportion), and the range of the peak signal-to-noise (drawn log-uniformly).
    """

    history_days: float
    night_gaps: tuple[float, ...]
    night_gap_weights: tuple[float, ...]
    band_probability: tuple[float, ...]
    peak_snr: tuple[float, float] = (5.0, 100.0)


#: Per survey name. ZTF: 30 days of history, a field every 1-6 nights, g and r each on 70 % of them.
#: Rubin: prvDiaSources reach back 12 months; the wide-fast-deep survey revisits a field every few
#: nights, mostly in two bands per night, r and i most often and u least (PLAsTiCC's own cadence is
#: LSST's: most Rubin views keep it, see ``resampled_fraction``).
ALERT_VIEWS: dict[str, AlertViews] = {
    "ztf": AlertViews(ALERT_HISTORY_DAYS, tuple(ZTF_NIGHT_GAPS), tuple(ZTF_NIGHT_GAP_WEIGHTS),
                      (ZTF_BAND_PROBABILITY, ZTF_BAND_PROBABILITY)),
    "rubin": AlertViews(365.0, (1.0, 2.0, 3.0, 4.0, 6.0, 10.0), (0.2, 0.25, 0.2, 0.15, 0.1, 0.1),
                        (0.1, 0.25, 0.45, 0.45, 0.4, 0.35)),
}


def alert_views(survey: Survey | str) -> AlertViews:
    """The :class:`AlertViews` of a survey (by name or description)."""
    name = survey if isinstance(survey, str) else survey.name
    if name not in ALERT_VIEWS:
        raise ValueError(f"no training views are defined for survey {name!r} (known: {sorted(ALERT_VIEWS)})")
    return ALERT_VIEWS[name]


def _subset_views(spec: ViewSpec, which: np.ndarray) -> ViewSpec:
    return ViewSpec(spec.source[which], spec.alert_time[which], spec.history_days[which],
                    spec.keep_fraction[which], spec.noise_factor[which])


def resample_views(forced: Observations, spec: ViewSpec, rng: np.random.Generator, max_history: float = 90.0,
                   truth_time_scale: float = 15.0, max_truth_points: int = 64,
                   survey: Survey | str = ZTF) -> Observations:
    """Survey-like light curves of the views: the source's curve re-observed at the survey's cadence.

    PLAsTiCC's LSST cadence gives a median of 1-3 g/r points in a 30-day
    window; a ZTF alert has about 15. Each view gets visit nights back from
    its alert time (gaps and bands per night from the survey's
    :class:`AlertViews`; the alert's own night has one band); the "true" flux
    there is a GP through the source's forced photometry around that epoch
    (fixed hyper-parameters, time scale ``truth_time_scale`` days, the
    survey's band correlation); the noise follows a peak signal-to-noise drawn
    log-uniformly in the survey's range; points under 5 sigma become upper
    limits, as in ZTF. Fluxes are in the source's units (FLUXCAL), so a view keeps
    its source's peak brightness. ``forced`` is in the survey's bands.
    """
    from fink_t2.scoring.lightcurves import PreparationConfig, gp_mean_at

    survey = get_survey(survey) if isinstance(survey, str) else survey
    views = alert_views(survey)
    n = len(spec)
    history = np.minimum(spec.history_days, max_history)
    # Truth: forced photometry within 20 d of the window, at most max_truth_points per view.
    window = ViewSpec(spec.source, spec.alert_time + 20.0, history + 40.0, np.ones(n), np.ones(n))
    truth_obs = make_views(forced, window)
    counts = np.bincount(truth_obs.object_index, minlength=n)
    rank = np.arange(len(truth_obs.time)) - np.repeat(np.cumsum(counts) - counts, counts)
    stride = np.maximum(np.ceil(counts / max_truth_points), 1).astype(np.int64)
    truth_obs = truth_obs.subset(rank % stride[truth_obs.object_index] == 0)
    peak = np.zeros(n)
    det = truth_obs.detected
    np.maximum.at(peak, truth_obs.object_index[det], np.abs(truth_obs.flux[det]))
    usable = peak > 0
    scale = np.where(usable, peak, 1.0)[truth_obs.object_index]
    y = truth_obs.flux / scale
    noise = np.hypot(truth_obs.flux_err / scale, 0.02)

    # Visit nights back from the alert time; the first is the alert itself.
    n_nights = int(np.ceil(max_history)) + 1
    weights = np.asarray(views.night_gap_weights) / np.sum(views.night_gap_weights)
    gaps = rng.choice(np.asarray(views.night_gaps), p=weights, size=(n, n_nights))
    gaps[:, 0] = 0.0
    night = spec.alert_time[:, None] - np.cumsum(gaps, axis=1)
    night[:, 1:] += rng.uniform(-0.1, 0.1, size=(n, n_nights - 1))
    in_window = (night >= (spec.alert_time - history)[:, None]) & usable[:, None]
    probability = np.asarray(views.band_probability, dtype=np.float64)
    n_bands = len(probability)
    has = rng.random((n_bands, n, n_nights)) < probability[:, None, None]
    # A night with no band gets one, drawn in proportion to the bands' probabilities; so does the alert.
    coin = rng.random((n, n_nights))
    fallback = np.minimum(np.searchsorted(np.cumsum(probability) / probability.sum(), coin, side="right"),
                          n_bands - 1)
    neither = ~has.any(axis=0)
    for b in range(n_bands):
        has[b] |= neither & (fallback == b)
        has[b, :, 0] = fallback[:, 0] == b
    chosen = [in_window & has[b] for b in range(n_bands)]
    view = np.concatenate([np.nonzero(c)[0] for c in chosen])
    time = np.concatenate([night[c] for c in chosen])
    band = np.concatenate([np.full(c.sum(), b, np.int8) for b, c in enumerate(chosen)])
    truth = gp_mean_at(truth_obs, y, noise, view, time, band, truth_time_scale,
                       PreparationConfig(survey=survey.name))

    low, high = views.peak_snr
    peak_snr = np.exp(rng.uniform(np.log(low), np.log(high), n))
    sigma = rng.uniform(0.7, 1.4, len(time)) / peak_snr[view]
    flux = truth + rng.normal(size=len(time)) * sigma
    detected = np.abs(flux) >= DETECTION_SNR * sigma
    # Back to the source's FLUXCAL (the noise was drawn in units of its peak): the peak-scaled channels are
    # unchanged, and the peak magnitude (absolute, with a host distance) stays the source's.
    unit = np.where(usable, peak, 1.0)[view]
    return Observations(view, time, band, np.where(detected, flux * unit, 0.0), sigma * unit, detected, n)


def restrict_to_survey(obs: Observations, source: Survey, target: Survey) -> Observations:
    """``obs`` (band indices of ``source``) keeping only the bands ``target`` has, re-indexed by name."""
    mapping = np.full(source.n_bands, -1, dtype=np.int64)
    for i, band in enumerate(source.bands):
        mapping[i] = target.band_index.get(band, -1)
    band = mapping[obs.band.astype(np.int64)]
    kept = obs.subset(band >= 0)
    kept.band = band[band >= 0].astype(np.int8)
    return kept


def concatenate_observations(parts: list[Observations]) -> Observations:
    """Observations of several batches as one (object indices offset batch by batch)."""
    offsets = np.cumsum([0] + [p.n_objects for p in parts[:-1]])
    return Observations(
        np.concatenate([p.object_index + o for p, o in zip(parts, offsets)]),
        np.concatenate([p.time for p in parts]), np.concatenate([p.band for p in parts]),
        np.concatenate([p.flux for p in parts]), np.concatenate([p.flux_err for p in parts]),
        np.concatenate([p.detected for p in parts]), int(sum(p.n_objects for p in parts)),
    )


def training_view_observations(data: PlasticcData, spec: ViewSpec, rng: np.random.Generator,
                               resampled_fraction: float) -> tuple[Observations, np.ndarray]:
    """Observations of training views, ``resampled_fraction`` of them at the data's survey's cadence.

    Returns the observations and, per view in that output order, its position in ``spec``.
    """
    resampled = rng.random(len(spec)) < resampled_fraction
    original_idx, resampled_idx = np.flatnonzero(~resampled), np.flatnonzero(resampled)
    parts = [make_views(data.observations, _subset_views(spec, original_idx), rng)]
    if len(resampled_idx):
        parts.append(resample_views(data.forced, _subset_views(spec, resampled_idx), rng, survey=data.survey))
    return concatenate_observations(parts), np.concatenate([original_idx, resampled_idx])
