"""Fink's alert columns -> observations: the serving side's way into the light-curve preparation.

Two steps, both vectorised:

* raw ZTF alerts (``candidate`` and ``prv_candidates`` structs) -> Fink's
  concatenated ``c*`` columns, history first and current alert last, nulls
  for upper limits (what fink-utils ``concat_col`` makes): :func:`alert_columns`,
  with pyarrow;
* those columns (pandas Series of arrays, lists, or the Arrow list arrays
  Spark's Arrow UDF hands over) -> :class:`~fink_t2.scoring.lightcurves.Observations`
  in FLUXCAL, upper limits as flux 0 with the limit's 1-sigma noise, exactly as
  the PLAsTiCC rows of the training side (:mod:`fink_t2.training.plasticc`):
  :func:`observations_from_alerts`.

An odd value never raises here: an unusable point is dropped, an alert whose
arrays do not line up gets a reason. Pure numpy/pandas/pyarrow.
"""

from __future__ import annotations

from operator import attrgetter

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fink_t2.scoring.arrow_compat import struct_field
from fink_t2.scoring.lightcurves import _LN10_OVER_2P5, Observations, mag_to_fluxcal
from fink_t2.scoring.sky import detection_position

#: Columns ``classify`` needs: Fink's concatenated alert columns (history first, current alert last).
REQUIRED_COLUMNS: tuple[str, ...] = ("cjd", "cfid", "cmagpsf", "csigmapsf")
#: Columns used when present: sign of the difference flux, and the limiting magnitude of upper limits.
OPTIONAL_COLUMNS: tuple[str, ...] = ("cisdiffpos", "cdiffmaglim")

#: ZTF filter id -> band index in :data:`~fink_t2.scoring.lightcurves.BANDS` (fid 3 = ZTF i is not modelled).
ZTF_FID_TO_BAND: dict[int, int] = {1: 0, 2: 1}

#: Magnitudes outside this range are treated as corrupt values.
PLAUSIBLE_MAG_RANGE: tuple[float, float] = (5.0, 30.0)
#: A magnitude error at or above this (signal-to-noise below about 1.1) is not a measurement:
#: such a point is dropped rather than allowed to set the object's flux scale. Real ZTF
#: detections stay below 0.5 mag (5-sigma detections: about 0.22).
MAX_SIGMA_MAG: float = 1.0

#: ``isdiffpos`` values (trimmed, lower case) that mark a negative difference flux.
NEGATIVE_ISDIFFPOS: tuple[str, ...] = ("f", "0", "false")

#: Numeric fields of a ZTF detection that become ``c*`` columns (the first four are required).
NUMERIC_HISTORY: tuple[str, ...] = ("jd", "fid", "magpsf", "sigmapsf", "diffmaglim")


# --------------------------------------------------------------------------- c* columns -> observations


def _arrow_lists(column, value_type, n_rows: int):
    """(Arrow list array of ``value_type``, None) for Arrow input that casts cleanly, else (None, Python rows).

    Spark's Arrow UDFs hand over list arrays: they are used as they are, with
    no per-alert Python object. Anything else becomes a list of rows for the
    pandas path (and, if that fails, the per-alert fallback).
    """
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


def _numpy_rows(values: list, kinds: str) -> bool:
    """Whether every row is a 1-D numpy array (not a subclass) whose dtype kind is one of ``kinds``.

    One C-level pass per attribute (``map``) rather than a Python loop over the rows: the check costs
    a fraction of what the per-row loop did, and it runs once per column of every batch.
    """
    if not set(map(type, values)) <= {np.ndarray}:
        return False
    return (all(dtype.kind in kinds for dtype in set(map(attrgetter("dtype"), values)))
            and set(map(attrgetter("ndim"), values)) <= {1})


def _concatenate_numeric(values: list) -> tuple[np.ndarray, np.ndarray] | None:
    """Fast path for what a pandas UDF receives: every row a numeric numpy array (no nulls inside).

    About ten times cheaper per alert than building an Arrow list array;
    None (use the general path) as soon as one row is anything else.
    """
    if not _numpy_rows(values, "fiu"):
        return None
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    flat = np.concatenate(values).astype(np.float64, copy=False) if len(values) else np.zeros(0)
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


def string_lists(column, n_rows: int, arrow_map, value_map, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Per-alert lists of strings -> (one flat array of mapped values, per-alert lengths).

    Arrow does the work: ``arrow_map`` gets the flat values trimmed and in lower case (an Arrow
    string array) and returns a numpy array. Rows Arrow cannot read fall back to Python,
    ``value_map`` taking each raw value. Shared by ZTF's ``isdiffpos`` and Rubin's band names.
    """
    arr, values = _arrow_lists(column, pa.string(), n_rows)
    try:
        if arr is None:
            arr = pa.array(values, type=pa.list_(pa.string()), from_pandas=True)
        lengths = arr.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        return arrow_map(pc.utf8_lower(pc.utf8_trim_whitespace(arr.flatten()))), lengths
    except (pa.ArrowException, TypeError, ValueError):
        if values is None:
            values = arr.to_pylist()
    lengths = np.zeros(n_rows, dtype=np.int64)
    mapped: list = []
    for i, row in enumerate(values):
        if not _is_row_sequence(row):
            continue
        row = list(row)
        lengths[i] = len(row)
        mapped.extend(value_map(value) for value in row)
    return np.asarray(mapped, dtype=dtype), lengths


def _negative_flags(column, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """ZTF ``isdiffpos`` per alert -> (flat bool: difference flux is negative, per-alert lengths).

    'f', '0' or 'false' (any case) mean negative; anything else, null included,
    is taken as positive.
    """
    def negative(flat: pa.Array) -> np.ndarray:
        flags = pc.is_in(flat, value_set=pa.array(list(NEGATIVE_ISDIFFPOS))).fill_null(False)
        return flags.to_numpy(zero_copy_only=False).astype(bool)

    return string_lists(column, n_rows, negative, _is_negative, bool)


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


REASON_LENGTHS = "alert arrays have different lengths"


def align_alert_arrays(lengths: list[np.ndarray]):
    """Per-alert lengths of each flattened column -> (object index per point, ``aligned``, reason per alert).

    Only alerts whose arrays all have the same length are kept (the others get
    :data:`REASON_LENGTHS`); ``aligned(flat, its_lengths)`` returns a flattened
    column's entries of the kept alerts, aligned by position with ``object index``.
    """
    stacked = np.vstack(lengths)
    consistent = (stacked == stacked[0]).all(axis=0)
    n_rows = stacked.shape[1]
    reason = np.full(n_rows, None, dtype=object)
    reason[~consistent] = REASON_LENGTHS

    every = bool(consistent.all())

    def aligned(flat: np.ndarray, row_lengths: np.ndarray) -> np.ndarray:
        if every:  # the usual case: nothing to drop, no copy
            return flat
        return flat[np.repeat(consistent, row_lengths)]

    object_index = np.repeat(np.arange(n_rows), np.where(consistent, stacked[0], 0))
    return object_index, aligned, reason


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
    object_index, aligned, reason = align_alert_arrays(lengths)
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
        # A range test is False for NaN and infinities: it is the finiteness test as well.
        usable = np.isfinite(jd) & (band >= 0)
        detection = usable & (mag > lo) & (mag < hi) & (sig > 0) & (sig < MAX_SIGMA_MAG)
        limit = usable & ~np.isfinite(mag) & (lim > lo) & (lim < hi)
        keep = detection | limit
        detected = detection[keep]
        # One conversion for the points kept, of a detection's magnitude or of a limit's.
        level = mag_to_fluxcal(np.where(detected, mag[keep], lim[keep]))
        flux = np.where(detected, level, 0.0)
        if negative is not None:
            np.negative(flux, out=flux, where=negative[keep] & detected)
        flux_err = np.where(detected, _LN10_OVER_2P5 * level * sig[keep], level / 5.0)
        usable_error = np.isfinite(flux_err) & (flux_err > 0)
    index, time, bands = object_index[keep], jd[keep], band[keep]
    if not usable_error.all():
        index, time, bands, flux, flux_err, detected = (
            a[usable_error] for a in (index, time, bands, flux, flux_err, detected))
    obs = Observations(index, time, bands, flux, flux_err, detected, n_rows)
    return obs, reason


# --------------------------------------------------------------------------- raw alerts -> c* columns (pyarrow)


def struct_of(dtype: pa.DataType) -> pa.StructType | None:
    """The struct type of a ``candidate`` (struct) or ``prv_candidates`` (list of struct) column."""
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        dtype = dtype.value_type
    return dtype if pa.types.is_struct(dtype) else None


def history_array(table: pa.Table, field: str, dtype: pa.DataType, current_column: str = "candidate",
                  history_column: str = "prv_candidates", history_field: str | None = None) -> pa.Array:
    """``<history>.<field>`` + [``<current>.<field>``] per alert, as a list array (vectorised).

    ZTF by default (``prv_candidates`` then ``candidate``); Rubin's readers pass
    ``prvDiaSources``/``diaSource``. ``history_field`` names the field in the
    history when it differs (default: ``field``). A field the history lacks gives nulls there
    with the history's lengths (so the alert's arrays stay aligned); an absent
    history column, or one that is not a list (all null: pandas gives it the null type), means no history.
    """
    current = struct_field(table.column(current_column).combine_chunks(), field).cast(dtype)
    n = len(current)
    history_field = field if history_field is None else history_field
    history_type = table.schema.field(history_column).type if history_column in table.column_names else None
    if history_type is not None and (pa.types.is_list(history_type) or pa.types.is_large_list(history_type)):
        prv = table.column(history_column).combine_chunks()
        lengths = prv.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        elements = prv.flatten()
        struct = struct_of(prv.type)
        if struct is not None and struct.get_field_index(history_field) >= 0:
            past = struct_field(elements, history_field).cast(dtype)
        else:  # an optional field the history lacks (e.g. isdiffpos): unknown there, same lengths
            past = pa.nulls(len(elements), dtype)
    else:
        lengths = np.zeros(n, dtype=np.int64)
        past = pa.array([], type=dtype)
    ends = np.cumsum(lengths + 1)
    offsets = np.concatenate([[0], ends])
    # Positions in [past..., current...] for each slot of the output.
    source = np.empty(int(ends[-1]) if n else 0, dtype=np.int64)
    is_current = np.zeros(len(source), dtype=bool)
    is_current[ends - 1] = True
    source[is_current] = len(past) + np.arange(n)
    source[~is_current] = np.arange(len(past))
    values = pa.concat_arrays([past, current]).take(pa.array(source))
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values)


def candidate_fields(table: pa.Table) -> set[str]:
    """Field names of the raw ``candidate`` struct (empty if it is not a struct)."""
    dtype = table.schema.field("candidate").type
    return {f.name for f in dtype} if pa.types.is_struct(dtype) else set()


def alert_columns(table: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """Fink's ``c*`` columns (cjd, cfid, cmagpsf, csigmapsf, cdiffmaglim, cisdiffpos) from raw alerts.

    Accepts a pyarrow Table or a pandas DataFrame with ``candidate`` (and
    usually ``prv_candidates``); the result has one row per alert, each cell
    a numpy array, ready for :func:`fink_t2.classify`, and the alert's ``ra``,
    ``dec`` (for the host-galaxy cross-match) when the candidate carries them.
    """
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    if "candidate" not in table.column_names:
        raise ValueError("raw alerts need a 'candidate' column")
    dtype = table.schema.field("candidate").type
    if not pa.types.is_struct(dtype):
        raise ValueError(f"the raw alerts' 'candidate' column is {str(dtype)[:80]}, not a struct (one current "
                         "detection per alert)")
    fields = candidate_fields(table)
    missing = [f for f in NUMERIC_HISTORY[:4] if f not in fields]
    if missing:
        raise ValueError(f"the raw alerts' 'candidate' struct lacks {missing} (fields: {sorted(fields)})")
    # diffmaglim and isdiffpos are optional: without them, columns of nulls (scored as absent).
    out = {f"c{field}": history_array(table, field, pa.float64()) for field in NUMERIC_HISTORY if field in fields}
    if "isdiffpos" in fields:
        out["cisdiffpos"] = history_array(table, "isdiffpos", pa.string())
    frame = pd.DataFrame({name: column.to_pandas() for name, column in out.items()})
    for name in ("cdiffmaglim", "cisdiffpos"):
        if name not in frame.columns:
            frame[name] = pd.Series([None] * table.num_rows, dtype=object)
    frame = frame[[*REQUIRED_COLUMNS, "cdiffmaglim", "cisdiffpos"]]
    for name, column in detection_position(table.column("candidate")).items():  # for the host cross-match
        frame[name] = column.to_numpy(zero_copy_only=False)
    return frame




def observations_from_columns(frame: pd.DataFrame) -> tuple[Observations, np.ndarray]:
    """(Observations, reason per alert) of a frame of Fink's ``c*`` columns, as :func:`alert_columns` makes it."""
    return observations_from_alerts(*(frame[c] for c in REQUIRED_COLUMNS),
                                    **{c: frame[c] for c in OPTIONAL_COLUMNS if c in frame})


def alert_columns_from_files(paths, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """Raw ZTF alert parquet files -> ``objectId``, ``candid``, the ``extra`` columns and Fink's ``c*`` columns.

    The ``c*`` columns come from :func:`alert_columns`; files with different
    schemas are read one by one. An ``extra`` column a file lacks is None there.
    """
    frames = []
    for path in paths:
        names = pq.read_schema(path).names
        wanted = ["objectId", "candid", "candidate", "prv_candidates", *(c for c in extra if c in names)]
        table = pq.read_table(path, columns=wanted)
        frame = alert_columns(table)
        for name in reversed(("objectId", "candid", *extra)):
            frame.insert(0, name, table.column(name).to_pylist() if name in table.column_names else None)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
