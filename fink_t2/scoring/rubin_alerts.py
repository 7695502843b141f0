"""Fink's Rubin (LSST) alert columns -> observations: the ZTF reader's idea for six bands in nJy.

Rubin alerts as Fink stores them carry the triggering detection in the
``diaSource`` struct and the earlier ones in the ``prvDiaSources`` list (also
``prvDiaForcedSources`` and the ``diaObject`` summary). Two vectorised steps,
as :mod:`fink_t2.scoring.alerts` does for ZTF:

* raw alerts -> Fink-style concatenated columns, history first and current
  alert last (:data:`RUBIN_COLUMNS`: ``cmidpointMjdTai, cband, cpsfFlux,
  cpsfFluxErr``) and the host redshift ``host_z`` (NaN when unknown):
  :func:`rubin_alert_columns`. Every schema version in Fink's test data is read
  under these names: lsst v7.1 and v10.0 (``midpointMjdTai, band, psfFlux,
  psfFluxErr``) and ELAsTiCC's v0.9 (``midPointTai, filterName, psFlux,
  psFluxErr``); see :data:`FIELD_NAMES`.
* those columns -> :class:`~fink_t2.scoring.lightcurves.Observations` in
  FLUXCAL (zero point 27.5; Rubin fluxes are nJy, AB zero point 31.4), band
  index u=0 ... y=5 (PLAsTiCC's passbands): :func:`observations_from_rubin`.

Every diaSource is a detection: a negative difference flux is a real
measurement (a source fainter than in the template) and is kept as one, never
read as an upper limit. Points in an unknown band, or with a non-finite time,
flux or error, are dropped; an alert left without any usable point gets a
reason. Forced photometry (``prvDiaForcedSources``) is not part of the
columns: it repeats the diaSources' visits and mostly holds sub-threshold
measurements, and the six-band model is trained on detections only
(``conf/train_rubin.yaml``). Pure numpy/pandas/pyarrow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fink_t2.scoring.alerts import (
    REASON_LENGTHS,
    _flatten_numeric,
    align_alert_arrays,
    history_array,
    string_lists,
    struct_of,
)
from fink_t2.scoring.arrow_compat import struct_field
from fink_t2.scoring.lightcurves import Observations, njy_to_fluxcal
from fink_t2.scoring.surveys import RUBIN

#: Fink-style concatenated Rubin columns the scorer needs (history first, current alert last): the survey
#: description's, in its order (time, band, flux, flux error).
RUBIN_COLUMNS: tuple[str, ...] = RUBIN.columns
#: Per-alert host-galaxy redshift column (float, NaN when unknown).
HOST_Z_COLUMN = "host_z"
#: The current detection and the history, as Fink stores Rubin alerts.
CURRENT, HISTORY = "diaSource", "prvDiaSources"

#: Meaning -> its field name in each schema version: lsst v7.1/v10.0 first, ELAsTiCC (v0.9) second.
FIELD_NAMES: dict[str, tuple[str, ...]] = {
    "time": ("midpointMjdTai", "midPointTai"),
    "band": ("band", "filterName"),
    "flux": ("psfFlux", "psFlux"),
    "flux_err": ("psfFluxErr", "psFluxErr"),
}
#: The c* column holding each meaning (the names follow the current lsst schema).
COLUMN_OF: dict[str, str] = dict(zip(FIELD_NAMES, RUBIN_COLUMNS))
#: Concatenated columns an ELAsTiCC-era Fink stage wrote, read as the same columns.
ELASTICC_COLUMNS: dict[str, str] = {f"c{FIELD_NAMES[m][1]}": COLUMN_OF[m] for m in FIELD_NAMES}

#: Rubin band name -> band index, the survey description's order (u g r i z y = PLAsTiCC passbands 0-5).
#: Names are compared trimmed and in lower case: ELAsTiCC writes ``Y``.
RUBIN_BAND_INDEX: dict[str, int] = RUBIN.band_index

#: ``diaObject`` fields holding the host's photometric redshift (ELAsTiCC; real v10 alerts have none), in order
#: of preference. Negative values (ELAsTiCC writes -9) mean unknown.
HOST_Z_FIELDS: tuple[str, ...] = ("hostgal_zphot",)

REASON_NO_RUBIN_BAND = "no point in a Rubin band (u g r i z y)"


# --------------------------------------------------------------------------- raw alerts -> c* columns


def field_name(struct: pa.StructType | None, meaning: str) -> str | None:
    """The name ``struct`` uses for ``meaning`` (:data:`FIELD_NAMES`), None if it has none of them."""
    if struct is None:
        return None
    return next((name for name in FIELD_NAMES[meaning] if struct.get_field_index(name) >= 0), None)


def missing_fields(schema: pa.Schema) -> list[str]:
    """Meanings the ``diaSource`` struct of ``schema`` lacks (all of them if it is not a struct)."""
    if CURRENT not in schema.names:
        return list(FIELD_NAMES)
    struct = schema.field(CURRENT).type
    struct = struct if pa.types.is_struct(struct) else None
    return [meaning for meaning in FIELD_NAMES if field_name(struct, meaning) is None]


def _history_struct(table: pa.Table) -> pa.StructType | None:
    return struct_of(table.schema.field(HISTORY).type) if HISTORY in table.column_names else None


def host_redshift(table: pa.Table) -> np.ndarray:
    """Host redshift per alert from ``diaObject`` (:data:`HOST_Z_FIELDS`): NaN where unknown or absent."""
    z = np.full(table.num_rows, np.nan)
    if "diaObject" not in table.column_names:
        return z
    struct = table.schema.field("diaObject").type
    if not pa.types.is_struct(struct):
        return z
    column = table.column("diaObject").combine_chunks()
    for name in reversed(HOST_Z_FIELDS):  # the preferred field is written last
        if struct.get_field_index(name) < 0:
            continue
        try:
            values = struct_field(column, name).cast(pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowException, TypeError, ValueError):
            continue  # a non-numeric field: unknown
        with np.errstate(invalid="ignore"):
            known = np.isfinite(values) & (values >= 0)
        z = np.where(known, values, z)
    return z


def rubin_alert_columns(table: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """Fink-style ``c*`` columns (:data:`RUBIN_COLUMNS`) and ``host_z`` from raw Rubin alerts.

    ``table`` has ``diaSource`` (a struct) and usually ``prvDiaSources`` (a list
    of structs, null for an alert without history) in any schema version of
    :data:`FIELD_NAMES`; a history field missing from ``prvDiaSources`` (lsst
    v7.1 may carry ``band`` in ``diaSource`` only) is null there, and such
    points are dropped when scored. One row per alert, each cell a numpy array.
    ValueError (naming the fields) if ``diaSource`` lacks one of the four.
    """
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    if CURRENT not in table.column_names:
        raise ValueError(f"Rubin alerts need a '{CURRENT}' column (columns: {table.column_names[:12]})")
    missing = missing_fields(table.schema)
    if missing:
        wanted = [" or ".join(FIELD_NAMES[m]) for m in missing]
        raise ValueError(f"the Rubin alerts' '{CURRENT}' struct lacks {wanted}: not a Rubin alert schema "
                         "fink-t2 reads (lsst v7.1, v10.0 or ELAsTiCC)")
    current = table.schema.field(CURRENT).type
    history = _history_struct(table)
    out = {}
    for meaning, column in COLUMN_OF.items():
        dtype = pa.string() if meaning == "band" else pa.float64()
        name = field_name(current, meaning)
        out[column] = history_array(table, name, dtype, CURRENT, HISTORY,
                                    history_field=field_name(history, meaning) or name)
    frame = pd.DataFrame({name: column.to_pandas() for name, column in out.items()})
    frame[HOST_Z_COLUMN] = host_redshift(table)
    return frame


def rename_elasticc_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ELAsTiCC-named c* columns (``cmidPointTai`` ...) under :data:`RUBIN_COLUMNS` names."""
    renames = {old: new for old, new in ELASTICC_COLUMNS.items() if old in frame.columns and new not in frame.columns}
    return frame.rename(columns=renames) if renames else frame


# --------------------------------------------------------------------------- c* columns -> observations


def _band_indices(column, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-alert band names -> (flat band index, -1 where unknown or null; per-alert lengths)."""
    table = np.asarray(list(RUBIN_BAND_INDEX.values()) + [-1], dtype=np.int8)

    def indices(names: pa.Array) -> np.ndarray:
        position = pc.index_in(names, value_set=pa.array(list(RUBIN_BAND_INDEX))).fill_null(-1)
        return table[position.to_numpy(zero_copy_only=False)]

    return string_lists(column, n_rows, indices, _band_of, np.int8)


def _band_of(value) -> int:
    if isinstance(value, bytes):
        value = value.decode(errors="ignore")
    return RUBIN_BAND_INDEX.get(value.strip().lower(), -1) if isinstance(value, str) else -1


def observations_from_rubin(cmidpointMjdTai, cband, cpsfFlux, cpsfFluxErr) -> tuple[Observations, np.ndarray]:  # noqa: N803
    """Fink-style Rubin columns (one sequence per alert) -> observations (time in MJD, FLUXCAL, u..y = 0..5).

    Accepts what :func:`fink_t2.scoring.alerts.observations_from_alerts`
    accepts (pandas Series of arrays or lists, Arrow list arrays). Every point
    is a detection; points with an unknown band or a non-finite time, flux or
    error (or an error <= 0) are dropped. Returns the observations and, per
    alert, a reason where its arrays do not line up or none of its points is in
    a Rubin band, else None.
    """
    n_rows = len(cmidpointMjdTai)
    time, len_time = _flatten_numeric(cmidpointMjdTai, n_rows)
    band, len_band = _band_indices(cband, n_rows)
    flux, len_flux = _flatten_numeric(cpsfFlux, n_rows)
    err, len_err = _flatten_numeric(cpsfFluxErr, n_rows)
    object_index, aligned, reason = align_alert_arrays([len_time, len_band, len_flux, len_err])
    time, band = aligned(time, len_time), aligned(band, len_band)
    flux, err = njy_to_fluxcal(aligned(flux, len_flux), aligned(err, len_err))
    with np.errstate(invalid="ignore"):
        measured = np.isfinite(time) & np.isfinite(flux) & np.isfinite(err) & (err > 0)
    keep = measured & (band >= 0)
    # Measurements, but none in a Rubin band: say so (an alert without any measurement is the preparation's
    # "no observations").
    has_point = np.bincount(object_index[measured], minlength=n_rows) > 0
    has_band = np.bincount(object_index[keep], minlength=n_rows) > 0
    consistent = reason != REASON_LENGTHS  # every reason so far is that one
    reason[consistent & has_point & ~has_band] = REASON_NO_RUBIN_BAND
    obs = Observations(object_index[keep], time[keep], band[keep], flux[keep], err[keep],
                       np.ones(int(keep.sum()), dtype=bool), n_rows)
    return obs, reason
