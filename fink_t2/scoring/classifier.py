"""Scoring alerts: Fink's alert columns -> 14 class probabilities, batched and fault-isolated.

This is the contract every entry point uses (``fink_t2.classify``, the Spark
UDF, the batch and streaming jobs): the columns go through
``alerts.observations_from_alerts`` -> ``lightcurves.prepare`` ->
``T2Model.predict`` (one interpreter call per chunk), and come back as one row
of probabilities per alert, or a row of NaN and a short *reason* for an alert
the model declines. One odd alert never fails a batch: if the vectorised path
raises, the batch is bisected until the offending alert is isolated and
declined with the error as its reason. The ``t2`` column made of these scores
is :mod:`fink_t2.scoring.column`.

Pure numpy/pandas/pyarrow: no Spark, no TensorFlow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from fink_t2.scoring.alerts import REQUIRED_COLUMNS
from fink_t2.scoring.classes import CLASSES, N_CLASSES
from fink_t2.scoring.cuts import Selector
from fink_t2.scoring.lightcurves import prepare
from fink_t2.scoring.paths import default_model
from fink_t2.scoring.readers import get_reader, light_curve_columns, survey_of_columns
from fink_t2.scoring.runtime import T2Model, get_model
from fink_t2.scoring.sky import SKY_COLUMNS, sky_context

LOGGER = logging.getLogger(__name__)

#: Alerts prepared and scored together. A whole Spark Arrow batch (100,000 alerts with Fink's settings)
#: at once is about 20 % slower per alert and holds 3x the memory: its temporaries outgrow the caches.
SCORING_CHUNK = 10_000

#: Fewest valid g/r detections the model judges. A lone detection without history gives the model
#: nothing but a colour-less magnitude: on the 329 sample alerts cut to their last point its
#: probabilities are near uniform (median normalised entropy 0.97, median top probability 0.15,
#: against 0.64 and 0.42 on the full alerts), so such an alert is declined rather than given them.
#: A model may set its own value with a top-level ``min_detections`` key in its metadata YAML.
MIN_DETECTIONS = 2

REASON_NOT_FINITE_INPUT = "non-finite model input"
REASON_BAD_OUTPUT = "model output not a probability vector"


@dataclass
class Scores:
    """Result of scoring a batch: probabilities (NaN rows where declined) and reasons."""

    probabilities: np.ndarray  # float64 (n, 14), rows sum to 1 or are all NaN
    reason: np.ndarray  # object (n,): None where classified

    @classmethod
    def empty(cls) -> "Scores":
        """The scores of no alerts."""
        return cls(np.zeros((0, N_CLASSES)), np.zeros(0, dtype=object))

    @classmethod
    def concatenate(cls, parts: Sequence["Scores"]) -> "Scores":
        """The scores of consecutive row ranges, as one."""
        return cls(np.vstack([p.probabilities for p in parts]), np.concatenate([p.reason for p in parts]))

    @property
    def classified(self) -> np.ndarray:
        return np.equal(self.reason, None)

    def top_class(self) -> np.ndarray:
        """Most probable class name per alert, None where declined."""
        out = np.full(len(self.reason), None, dtype=object)
        ok = self.classified
        if ok.any():
            out[ok] = np.asarray(CLASSES, dtype=object)[np.argmax(self.probabilities[ok], axis=1)]
        return out


def _rows(column) -> list:
    """Per-alert Python rows of a column (Arrow arrays: plain lists, None for null rows)."""
    if isinstance(column, (pa.Array, pa.ChunkedArray)):
        return column.to_pylist()
    return list(column)


def _optional(column, reference) -> object:
    """An optional column as given, None if absent or all null; null rows become all-null arrays.

    A null row of ``cisdiffpos``/``cdiffmaglim`` means "unknown", not "no
    observations": it must not make the alert's arrays look inconsistent.
    """
    if column is None:
        return None
    if isinstance(column, (pa.Array, pa.ChunkedArray)):  # Spark's Arrow UDF: no per-alert objects
        if column.null_count == 0:
            return column
        if column.null_count == len(column):
            return None
        column = _rows(column)  # some null rows: rare, take the general path
    values = pd.Series(list(column), dtype=object)
    missing = values.isna().to_numpy()
    if missing.all():
        return None
    if missing.any():
        ref = _rows(reference)
        for i in np.flatnonzero(missing):  # only the null rows, usually none
            row = ref[i]
            size = len(row) if hasattr(row, "__len__") and not isinstance(row, (str, bytes)) else 0
            values.iat[i] = [None] * size
    return values


def score_stages(model: T2Model, columns: Sequence, optional: dict, select: Selector | None = None,
                 start: int = 0, lap: Callable[[str], None] | None = None) -> Scores:
    """Score one batch in one vectorised pass: alert arrays -> observations -> model input -> probabilities.

    ``columns`` are the c* columns of the model's survey, in its order (ZTF: cjd,
    cfid, cmagpsf, csigmapsf; Rubin: cmidpointMjdTai, cband, cpsfFlux,
    cpsfFluxErr); ``optional`` the keyword columns of its reader
    (:mod:`fink_t2.scoring.readers`) and, for a survey with one, the host
    redshift column (one float per alert, NaN = unknown). ``lap(stage)``, if
    given, is called as each stage ends ("observations", "preparation",
    "interpreter"): the benchmark times this very path rather than a copy of it.
    """
    reader = get_reader(model.survey.name)
    n = len(columns[0])
    optional = dict(optional)
    host_z = optional.pop(reader.host_redshift_column, None) if reader.host_redshift_column else None
    sky_columns = {name: optional.pop(name) for name in SKY_COLUMNS if name in optional}
    obs, reason = reader.observations(*columns, **optional)
    reason = np.array(reason, dtype=object)
    if select is not None:
        cut = np.asarray(select(obs, start, start + n), dtype=object)
        rejected = np.equal(reason, None) & ~np.equal(cut, None)
        reason[rejected] = cut[rejected]
    minimum = min_detections(model)
    if minimum > 1:
        n_det = np.bincount(obs.object_index[obs.detected], minlength=n)
        # Alerts with no detection at all keep the preparation's own reason ("no observations", ...).
        too_few = np.equal(reason, None) & (n_det > 0) & (n_det < minimum)
        reason[too_few] = reason_too_few(minimum, model.survey.bands)
    keep = np.equal(reason, None)
    if lap is not None:
        lap("observations")
    obs = obs.subset(keep[obs.object_index])  # rejected alerts cost nothing below
    sky = sky_context(n, **sky_columns) if model.preparation.reads_sky else None
    batch = prepare(obs, model.preparation, host_z=None if host_z is None else _floats(host_z, n), sky=sky)
    if lap is not None:
        lap("preparation")
    finite = np.isfinite(batch.values).all(axis=(1, 2))
    not_prepared = keep & ~batch.ok
    reason[not_prepared] = batch.reason[not_prepared]
    reason[keep & batch.ok & ~finite] = REASON_NOT_FINITE_INPUT
    probabilities = np.full((n, N_CLASSES), np.nan)
    rows = np.flatnonzero(keep & batch.ok & finite)
    if len(rows):
        out = model.predict(batch.values[rows]).astype(np.float64)
        total = out.sum(axis=1)
        good = np.isfinite(out).all(axis=1) & (out >= 0).all(axis=1) & (total > 0)
        # float32 softmax rounding: renormalise so each row sums to 1 in float64.
        probabilities[rows[good]] = out[good] / total[good, None]
        reason[rows[~good]] = REASON_BAD_OUTPUT
    if lap is not None:
        lap("interpreter")
    return Scores(probabilities, reason)


def min_detections(model: T2Model) -> int:
    """Fewest valid g/r detections ``model`` judges: its metadata's ``min_detections``, else :data:`MIN_DETECTIONS`."""
    value = model.metadata.get("min_detections", MIN_DETECTIONS) if isinstance(model.metadata, dict) else None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else MIN_DETECTIONS


def reason_too_few(minimum: int, bands: Sequence[str] = ("g", "r")) -> str:
    """The reason given to an alert with fewer than ``minimum`` valid detections in the model's ``bands``."""
    return f"fewer than {minimum} valid {'/'.join(bands)} detections: too little for the model"


def _floats(column, n: int) -> np.ndarray:
    """A per-alert scalar column (the host redshift) as float64; anything not a number is NaN (unknown)."""
    if isinstance(column, (pa.Array, pa.ChunkedArray)):
        column = column.to_pylist()
    values = pd.to_numeric(pd.Series(list(column), dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    if len(values) != n:
        raise ValueError(f"host redshift column has {len(values)} rows, expected {n}")
    return values


def _score_isolating(model: T2Model, columns: list[list], optional: dict, select: Selector | None,
                     start: int, stop: int, offset: int = 0) -> Scores:
    """Score rows [start, stop); on an exception, bisect until the failing alert is declined alone.

    ``offset``: position of row 0 of ``columns`` in the caller's batch (what ``select`` indexes).
    """
    part = [c[start:stop] for c in columns]
    opt = {k: (v[start:stop] if v is not None else None) for k, v in optional.items()}
    try:
        return score_stages(model, part, opt, select, offset + start)
    except Exception as error:  # noqa: BLE001 -- isolate, never fail the batch for one alert
        if stop - start == 1:
            text = f"error: {type(error).__name__}: {error}"[:200]
            LOGGER.warning("declining one alert after an error in scoring: %s", text)
            return Scores(np.full((1, N_CLASSES), np.nan), np.array([text], dtype=object))
        mid = (start + stop) // 2
        return Scores.concatenate([_score_isolating(model, columns, optional, select, start, mid, offset),
                                   _score_isolating(model, columns, optional, select, mid, stop, offset)])


def score_alerts(cjd, cfid, cmagpsf, csigmapsf, cisdiffpos=None, cdiffmaglim=None, *,
                 model: T2Model | None = None, model_path=None,
                 select: Selector | None = None, sky: dict | None = None) -> Scores:
    """Score ZTF per-alert sequences (pandas Series or lists, one entry per alert).

    Batches larger than :data:`SCORING_CHUNK` are scored a chunk at a time.
    ``select`` (see :data:`Selector`) declines alerts before preparation; it
    sees each chunk's rows, and smaller sub-ranges when a chunk has to be
    bisected to isolate an alert that makes the vectorised path raise.
    ``sky``: sky-context columns by name (:data:`fink_t2.scoring.sky.SKY_COLUMNS`), for a model that reads them.
    Any survey's columns: :func:`score_columns`.
    """
    return score_columns([cjd, cfid, cmagpsf, csigmapsf],
                         {"cisdiffpos": cisdiffpos, "cdiffmaglim": cdiffmaglim, **(sky or {})},
                         survey="ztf", model=model, model_path=model_path, select=select)


def model_for(survey: str | None, model: T2Model | None = None, model_path=None) -> T2Model:
    """The model scoring ``survey``'s alerts: ``model``, else ``model_path``, else the survey's shipped model.

    ValueError if the model was made for another survey (its bands are not these alerts' bands).
    """
    if model is None:
        model = get_model(model_path if model_path is not None or survey is None else default_model(survey))
    if survey is not None and model.survey.name != survey:
        raise ValueError(f"the model reads {model.survey.name} alerts ({'/'.join(model.survey.bands)}), these are "
                         f"{survey} alerts: use the {survey} model (the default for --survey {survey}) or one "
                         f"trained for {survey}")
    return model


def score_columns(columns: Sequence, optional: dict | None = None, *, survey: str | None = None,
                  model: T2Model | None = None, model_path=None, select: Selector | None = None) -> Scores:
    """Score one survey's per-alert sequences: ``columns`` its c* columns in its order, ``optional`` by name.

    ``survey`` None: the model's (the shipped ZTF model unless ``model``/``model_path`` say otherwise).
    ``optional`` may hold the reader's optional c* columns, the survey's host
    redshift column (:mod:`fink_t2.scoring.readers`) and the sky-context columns
    (:data:`fink_t2.scoring.sky.SKY_COLUMNS`: ``ra``, ``dec``, ``mangrove``,
    ``mangrove_lum_dist``); absent or None entries are unknown.
    """
    model = model_for(survey, model, model_path)
    reader = get_reader(model.survey.name)
    names = reader.columns
    if len(columns) != len(names):
        raise ValueError(f"{reader.survey} alerts need {len(names)} columns {list(names)}, got {len(columns)}")
    n = len(columns[0])
    for name, column in zip(names[1:], columns[1:]):
        if len(column) != n:
            raise ValueError(f"column {name} has {len(column)} rows, {names[0]} has {n}")
    if n == 0:
        return Scores.empty()
    columns = list(columns)
    given = optional or {}
    optional = {name: _optional(given.get(name), columns[0]) for name in reader.optional_columns}
    if reader.host_redshift_column is not None and given.get(reader.host_redshift_column) is not None:
        optional[reader.host_redshift_column] = given[reader.host_redshift_column]
    for name in SKY_COLUMNS:  # sky context (host galaxy, position): read only by a model that uses it
        if given.get(name) is not None and model.preparation.reads_sky:
            optional[name] = given[name]
    if n <= SCORING_CHUNK:
        return _score_chunk(model, columns, optional, select, 0)
    return Scores.concatenate([
        _score_chunk(model, [_slice(c, start, SCORING_CHUNK) for c in columns],
                     {k: _slice(v, start, SCORING_CHUNK) for k, v in optional.items()}, select, start)
        for start in range(0, n, SCORING_CHUNK)])


def _slice(column, start: int, length: int):
    """Rows [start, start + length) of a column, without copying where the type allows."""
    if column is None:
        return None
    if isinstance(column, (pa.Array, pa.ChunkedArray)):
        return column.slice(start, length)
    if isinstance(column, pd.Series):
        return column.iloc[start:start + length].reset_index(drop=True)
    return column[start:start + length]


def _score_chunk(model: T2Model, columns: list, optional: dict, select: Selector | None, offset: int) -> Scores:
    """Vectorised scoring of one chunk; if it raises, the alert(s) at fault are isolated and declined."""
    try:
        return score_stages(model, columns, optional, select, offset)
    except Exception as error:  # noqa: BLE001 -- fall back to isolating the alert(s) at fault
        LOGGER.warning("vectorised scoring of %d alerts failed (%s: %s); isolating the faulty alert(s)",
                       len(columns[0]), type(error).__name__, error)
    rows = [_rows(c) for c in columns]
    optional = {k: (_rows(v) if v is not None else None) for k, v in optional.items()}
    return _score_isolating(model, rows, optional, select, 0, len(rows[0]), offset)


def _check_frame(pdf) -> None:
    if not isinstance(pdf, pd.DataFrame):
        raise TypeError(f"classify expects a pandas.DataFrame, got {type(pdf).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in pdf.columns]
    if missing:
        raise ValueError(
            f"classify: missing required column(s) {missing}; the input needs Fink's concatenated alert "
            f"columns {list(REQUIRED_COLUMNS)} (history first, current alert last, as fink-utils concat_col "
            "makes them; fink_t2.scoring.alerts.alert_columns builds them from raw alerts)"
        )


def classify_with_reasons(pdf: pd.DataFrame, model_path=None, prior: str | None = None,
                          survey: str | None = None) -> tuple[pd.DataFrame, pd.Series]:
    """Probabilities (as :func:`classify`) and, per alert, why it was declined (None if classified)."""
    survey = survey if survey is not None else _frame_survey(pdf)
    if survey == "ztf":
        _check_frame(pdf)  # ZTF's c* columns are required as they are (their absence named, as ever)
    reader = get_reader(survey)
    frame = light_curve_columns(pdf, survey)
    extra = reader.host_redshift_column
    optional = {name: frame[name] for name in (*reader.optional_columns, extra, *SKY_COLUMNS) if name and name in frame}
    path = model_path if model_path is not None else default_model(survey)
    scores = score_columns([frame[c] for c in reader.columns], optional, survey=survey,
                           model=get_model(path, prior=prior))
    probabilities = pd.DataFrame(scores.probabilities, index=pdf.index, columns=list(CLASSES))
    reasons = pd.Series(scores.reason, index=pdf.index, name="reason", dtype=object)
    return probabilities, reasons


def _frame_survey(pdf) -> str:
    """The survey of a frame's alerts: Rubin when it holds Rubin's columns (raw or c*), else ZTF (whose
    missing columns :func:`_check_frame` then names)."""
    if isinstance(pdf, pd.DataFrame) and survey_of_columns(pdf.columns) == "rubin":
        return "rubin"
    return "ztf"


def classify(pdf: pd.DataFrame, model_path=None, prior: str | None = None, survey: str | None = None) -> pd.DataFrame:
    """Class probabilities of alerts: same index, one float column per class in ``CLASSES`` order.

    Rows sum to 1; a declined alert (too little data, bad values) gets a row
    of NaN. ``survey`` ("ztf", "rubin"; None: read off the columns) says whose
    alerts these are: ZTF's Fink columns (cjd, cfid, cmagpsf, csigmapsf), or
    Rubin's (raw ``diaSource``/``prvDiaSources``, or cmidpointMjdTai, cband,
    cpsfFlux, cpsfFluxErr and an optional ``host_z``). ``model_path`` defaults
    to the survey's model shipped in the package; ``prior`` names the class
    prior of the probabilities (None: the model's default, ``"flat"``: every
    class alike, as in training; see the model's YAML).
    """
    return classify_with_reasons(pdf, model_path, prior, survey)[0]
