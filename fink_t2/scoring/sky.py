"""Sky context of an alert: its host galaxy (Mangrove) and its place on the sky, as model inputs.

The light curve alone says little at the third detection; the broker already
knows more. Fink's science stage cross-matches every alert's position with the
Mangrove galaxy catalogue (nearest galaxy within 60") before any classifier
runs (ZTF: a ``mangrove`` struct of strings, ``"None"`` when nothing matched;
Rubin: ``mangrove_<field>`` columns, null when nothing matched). A host
distance turns the alert's brightness into an absolute magnitude (SNe Ia peak
near -19.3, SNe II fainter). The position itself is not a model input: it
serves the cross-match when Fink's column is absent. (Its Galactic latitude
was tried and dropped: in PLAsTiCC it mostly marks the few deep-drilling
fields, a survey artefact with its own class mix; ``docs/model_search.md``.)

Everything here is optional input. Three states are kept apart, because
they mean different things: *unknown* (no context given: the model judges the
light curve alone), *no galaxy* (the catalogue was searched, nothing within
60": a fact about the alert), and *a galaxy at distance D*. A value that is
not a plausible distance or position (NaN, negative, huge, out of range) is
read as unknown: context is declined, the alert is still classified.

Pure numpy/pandas/pyarrow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fink_t2.scoring.arrow_compat import struct_field

#: Columns that carry sky context beside the light curve, in a pandas frame or a Spark DataFrame.
RA_COLUMN, DEC_COLUMN = "ra", "dec"
#: Fink's ZTF cross-match: a struct (dict) of strings, ``lum_dist`` in Mpc or ``"None"``.
MANGROVE_COLUMN = "mangrove"
#: Fink's Rubin cross-match: the luminosity distance as its own column, null when nothing matched.
MANGROVE_DISTANCE_COLUMN = "mangrove_lum_dist"
SKY_COLUMNS: tuple[str, ...] = (RA_COLUMN, DEC_COLUMN, MANGROVE_COLUMN, MANGROVE_DISTANCE_COLUMN)

#: Fink's cross-match radius (arcsec) and the catalogue's depth (Mpc).
MATCH_RADIUS_ARCSEC = 60.0
#: A host distance outside (0, MAX_DISTANCE_MPC] is not a plausible one: the context is declined.
MAX_DISTANCE_MPC = 1.0e5

#: Model-input channels of the sky context, constant along time (see :func:`sky_channels`).
SKY_CHANNELS: tuple[str, ...] = ("host_known", "host_match", "host_dm", "host_absmag")
#: Scalings of the distance modulus and the absolute peak magnitude: ``(x - centre) / width``, clipped.
DM_CENTRE, DM_WIDTH = 35.0, 2.0
ABSMAG_CENTRE, ABSMAG_WIDTH = -19.0, 2.0
SCALED_LIMIT = 4.0

# Equatorial (J2000) -> Galactic rotation: rows are the Galactic x, y, z axes in equatorial coordinates
# (Galactic north pole at RA 192.85948, Dec 27.12825; centre at RA 266.40500, Dec -28.93617).
_GALACTIC_Z = np.array([-0.8676661490, -0.1980763734, 0.4559837762])


@dataclass
class SkyContext:
    """Per object: whether the host search result is known, and the host's distance."""

    host_known: np.ndarray  # bool (n,): a host search result is known (matched or not)
    host_distance_mpc: np.ndarray  # float64 (n,): luminosity distance of the host; NaN if none or unknown

    def __post_init__(self) -> None:
        self.host_known = np.asarray(self.host_known, dtype=bool)
        self.host_distance_mpc = np.asarray(self.host_distance_mpc, dtype=np.float64)
        if len(self.host_distance_mpc) != len(self.host_known):
            raise ValueError("SkyContext arrays must have one value per object")

    @classmethod
    def unknown(cls, n: int) -> SkyContext:
        """No context for ``n`` objects: the light curve alone."""
        return cls(np.zeros(n, bool), np.full(n, np.nan))

    def __len__(self) -> int:
        return len(self.host_known)

    def take(self, index: np.ndarray) -> SkyContext:
        """The context of the objects at ``index`` (positions or a boolean mask)."""
        return SkyContext(self.host_known[index], self.host_distance_mpc[index])

    @property
    def host_matched(self) -> np.ndarray:
        return self.host_known & np.isfinite(self.host_distance_mpc)


def galactic_latitude(ra_deg, dec_deg) -> np.ndarray:
    """Galactic latitude (degrees) of J2000 positions; NaN where a position is not finite or out of range."""
    ra = np.asarray(ra_deg, dtype=np.float64)
    dec = np.asarray(dec_deg, dtype=np.float64)
    valid = valid_position(ra, dec)
    ra_r, dec_r = np.radians(np.where(valid, ra, 0.0)), np.radians(np.where(valid, dec, 0.0))
    cos_dec = np.cos(dec_r)
    sin_b = (_GALACTIC_Z[0] * cos_dec * np.cos(ra_r) + _GALACTIC_Z[1] * cos_dec * np.sin(ra_r)
             + _GALACTIC_Z[2] * np.sin(dec_r))
    return np.where(valid, np.degrees(np.arcsin(np.clip(sin_b, -1.0, 1.0))), np.nan)


def valid_position(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Finite RA in [0, 360] and Dec in [-90, 90] degrees (anything else is not a sky position)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(ra) & np.isfinite(dec) & (ra >= 0) & (ra <= 360) & (dec >= -90) & (dec <= 90)


#: Flat LambdaCDM for the distance of a redshift (a host photo-z, a simulated object's redshift).
HUBBLE_CONSTANT = 70.0
OMEGA_MATTER = 0.3
SPEED_OF_LIGHT_KM_S = 299792.458


def luminosity_distance_mpc(z) -> np.ndarray:
    """Luminosity distance (Mpc) of redshifts in a flat LambdaCDM universe (H0 70, Omega_m 0.3)."""
    z = np.asarray(z, dtype=np.float64)
    grid = np.linspace(0.0, max(float(np.nanmax(z, initial=0.0)), 1e-3) * 1.001, 2001)
    inverse_e = 1.0 / np.sqrt(OMEGA_MATTER * (1 + grid) ** 3 + 1 - OMEGA_MATTER)
    comoving = np.concatenate([[0.0], np.cumsum((inverse_e[1:] + inverse_e[:-1]) / 2 * np.diff(grid))])
    return (1 + z) * SPEED_OF_LIGHT_KM_S / HUBBLE_CONSTANT * np.interp(z, grid, comoving)


def distance_modulus(distance_mpc) -> np.ndarray:
    """``5 log10(D / 10 pc)`` of luminosity distances in Mpc."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 5.0 * np.log10(np.asarray(distance_mpc, dtype=np.float64)) + 25.0


def _number(value) -> float:
    """A float from a cell (a number, a numeric string, ``"None"``, None); NaN where it is not one."""
    if value is None:
        return math.nan
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "None", "none", "null", "nan", "NaN"):
            return math.nan
        try:
            return float(text)
        except ValueError:
            return math.nan
    if isinstance(value, (bool, np.bool_)):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _cells(column, n: int) -> list:
    """Per-object Python cells of a column (Arrow arrays, pandas Series or frames, lists)."""
    if isinstance(column, (pa.Array, pa.ChunkedArray)):
        cells = column.to_pylist()
    elif isinstance(column, pd.DataFrame):  # a struct column inside a pandas UDF
        cells = column.to_dict("records")
    else:
        cells = list(column)
    if len(cells) != n:
        raise ValueError(f"a sky-context column has {len(cells)} rows, expected {n}")
    return cells


def _is_missing(cell) -> bool:
    if cell is None:
        return True
    if isinstance(cell, float) and math.isnan(cell):
        return True
    return cell is pd.NA


def mangrove_distance(cell) -> tuple[bool, float]:
    """(known, distance in Mpc or NaN) of one ``mangrove`` cell, Fink's ZTF format.

    A struct (dict, Spark Row, Arrow map as key/value pairs) whose ``lum_dist``
    is ``"None"`` means "searched, no galaxy"; a plausible number is the host's
    distance; a missing cell, a missing field or an implausible value (NaN,
    <= 0, huge, not a number) is unknown.
    """
    if _is_missing(cell):
        return False, math.nan
    known, distance = _distances([_raw_distance(cell)], np.zeros(1, dtype=bool))
    return bool(known[0]), float(distance[0])


_NO_FIELD = object()  # a struct without lum_dist: unknown context (not "nothing matched")


def _raw_distance(cell):
    """The ``lum_dist`` value of one ``mangrove`` cell as given (a string, a number, None), :data:`_NO_FIELD`
    if the cell has no such field; None for a missing cell is told apart by the caller."""
    if isinstance(cell, dict):
        return cell.get("lum_dist", _NO_FIELD)
    if isinstance(cell, (list, tuple)):  # an Arrow/Spark map as (key, value) pairs
        for pair in cell:
            if isinstance(pair, (list, tuple)) and len(pair) == 2 and pair[0] == "lum_dist":
                return pair[1]
        return _NO_FIELD
    if hasattr(cell, "asDict"):  # pyspark Row
        return cell.asDict().get("lum_dist", _NO_FIELD)
    return _NO_FIELD


def _raw_distances(column, n: int) -> tuple[list, np.ndarray]:
    """(``lum_dist`` values, missing-cell mask) of a ``mangrove`` column, read without a Python object per field
    where the column is Arrow (a struct or a map) or a pandas frame (a struct inside a pandas UDF)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if isinstance(column, pa.Array) and len(column) == n:
        missing = column.is_null().to_numpy(zero_copy_only=False)
        if pa.types.is_struct(column.type):
            if column.type.get_field_index("lum_dist") < 0:
                return [_NO_FIELD] * n, missing
            return struct_field(column, "lum_dist"), missing
        if pa.types.is_map(column.type) and hasattr(pc, "map_lookup"):
            found = pc.map_lookup(column, pa.scalar("lum_dist", column.type.key_type), "first")
            absent = np.flatnonzero(found.is_null().to_numpy(zero_copy_only=False) & ~missing)
            if not len(absent):
                return found, missing
            values = found.to_pylist()  # a key missing or a null value: the per-cell reading tells them apart
            for i, row in zip(absent, column.take(pa.array(absent)).to_pylist()):
                values[i] = _raw_distance(row)
            return values, missing
    if isinstance(column, pd.DataFrame) and len(column) == n:
        missing = column.isna().all(axis=1).to_numpy()
        if "lum_dist" not in column.columns:
            return [_NO_FIELD] * n, missing
        values = column["lum_dist"].astype(object)
        return values.where(values.notna(), None).tolist(), missing  # NA (pandas' null): a null field
    cells = _cells(column, n)
    missing = np.array([_is_missing(c) for c in cells], dtype=bool)
    return [None if m else _raw_distance(c) for c, m in zip(cells, missing)], missing


def _distances(values: list, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(known, distance) from raw ``lum_dist`` values, as :func:`mangrove_distance` reads one cell: "None" or
    null is "searched, nothing matched"; a plausible number is the distance; anything else is unknown."""
    n = len(values)
    known = np.zeros(n, dtype=bool)
    distance = np.full(n, np.nan)
    if isinstance(values, pa.Array) and pa.types.is_string(values.type):  # Fink's strings: no per-cell Python
        stripped = pc.utf8_trim_whitespace(values)
        nothing = pc.fill_null(pc.equal(stripped, "None"), True).to_numpy(zero_copy_only=False)
        numbers = pd.to_numeric(stripped.to_pandas(), errors="coerce").to_numpy(np.float64)
        with np.errstate(invalid="ignore"):
            plausible = (numbers > 0.0) & (numbers <= MAX_DISTANCE_MPC)
        known[:] = (nothing | plausible) & ~missing
        distance[plausible & ~missing] = numbers[plausible & ~missing]
        return known, distance
    if isinstance(values, pa.Array):
        values = values.to_pylist()
    text = pd.Series(values, dtype=object)
    nothing = text.map(lambda v: v is None or (isinstance(v, str) and v.strip() == "None")).to_numpy(bool)
    numbers = np.array([_number(v) if v is not _NO_FIELD and not isinstance(v, (bool, np.bool_)) else np.nan
                        for v in values], dtype=np.float64) if n else np.zeros(0)
    with np.errstate(invalid="ignore"):
        plausible = (numbers > 0.0) & (numbers <= MAX_DISTANCE_MPC)
    known[:] = (nothing | plausible) & ~missing
    distance[plausible & ~missing] = numbers[plausible & ~missing]
    return known, distance


def _rubin_distance(cell) -> tuple[bool, float]:
    """(known, distance) of a ``mangrove_lum_dist`` cell: null means "searched, no galaxy"."""
    if _is_missing(cell):
        return True, math.nan
    distance = _number(cell)
    if not (0.0 < distance <= MAX_DISTANCE_MPC):
        return False, math.nan
    return True, distance


def _positions(column, n: int) -> np.ndarray:
    """A per-alert coordinate column as float64 (NaN where a cell is not a number): numeric Arrow arrays and
    pandas columns directly, anything else cell by cell."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    numeric = None
    if isinstance(column, pa.Array) and (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        numeric = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    elif isinstance(column, (pd.Series, np.ndarray)) and np.asarray(column).dtype.kind in "fiu":
        numeric = np.asarray(column, dtype=np.float64)
    if numeric is not None:
        if len(numeric) != n:
            raise ValueError(f"a sky-context column has {len(numeric)} rows, expected {n}")
        return numeric
    return np.array([_number(c) for c in _cells(column, n)], dtype=np.float64)


def sky_context(n: int, ra=None, dec=None, mangrove=None, mangrove_lum_dist=None,
                cross_match: bool = True) -> SkyContext:
    """The sky context of ``n`` alerts from whatever columns are given (each optional, one cell per alert).

    The host comes from ``mangrove`` (ZTF), else ``mangrove_lum_dist`` (Rubin,
    where null means "nothing matched"); where neither gives it (no column, or a
    null ``mangrove`` cell: not cross-matched yet) but the position does, and
    ``cross_match``, from the package's copy of the Mangrove catalogue
    (:mod:`fink_t2.scoring.mangrove`), matched as Fink does. Every engine and
    file layout thus gives an alert the same context. A value that cannot be
    read (not a plausible distance or position) is unknown context.
    """
    ra_values = dec_values = None
    if ra is not None and dec is not None:
        ra_values, dec_values = _positions(ra, n), _positions(dec, n)
    known = np.zeros(n, dtype=bool)
    distance = np.full(n, np.nan)
    to_match = np.ones(n, dtype=bool)  # rows whose host is not given: matched from the position, if any
    if mangrove is not None:
        values, to_match = _raw_distances(mangrove, n)  # a null cell: not cross-matched yet
        known, distance = _distances(values, to_match)
    elif mangrove_lum_dist is not None:
        pairs = [_rubin_distance(c) for c in _cells(mangrove_lum_dist, n)]  # null: searched, nothing matched
        to_match[:] = False
        if pairs:
            known[:] = [p[0] for p in pairs]
            distance[:] = [p[1] for p in pairs]
    if ra_values is not None and cross_match:
        searched = to_match & valid_position(ra_values, dec_values)
        if searched.any():
            from fink_t2.scoring.mangrove import nearest_galaxy_distance

            distance[searched] = nearest_galaxy_distance(ra_values[searched], dec_values[searched])
            known[searched] = True
    return SkyContext(known, distance)


def sky_channels(sky: SkyContext, peak_mag: np.ndarray) -> np.ndarray:
    """(n, len(SKY_CHANNELS)) float32 model inputs: flags, then scaled values (0 where unknown).

    - host_known: the host search result is known; host_match: a galaxy within the radius;
    - host_dm: the host's distance modulus, ``(DM - 35) / 2``;
    - host_absmag: the alert's peak magnitude (``peak_mag``, brightest detection in the history
      delivered) at the host's distance, ``(M + 19) / 2``.
    Scaled values are clipped to +-4.
    """
    n = len(sky)
    out = np.zeros((n, len(SKY_CHANNELS)), dtype=np.float32)
    matched = sky.host_matched
    out[:, 0] = sky.host_known
    out[:, 1] = matched
    dm = distance_modulus(np.where(matched, sky.host_distance_mpc, 1.0))
    peak_mag = np.asarray(peak_mag, dtype=np.float64)
    absmag_ok = matched & np.isfinite(peak_mag)
    out[:, 2] = np.where(matched, np.clip((dm - DM_CENTRE) / DM_WIDTH, -SCALED_LIMIT, SCALED_LIMIT), 0.0)
    absmag = np.where(absmag_ok, peak_mag - dm, ABSMAG_CENTRE)
    out[:, 3] = np.where(absmag_ok, np.clip((absmag - ABSMAG_CENTRE) / ABSMAG_WIDTH, -SCALED_LIMIT, SCALED_LIMIT),
                         0.0)
    return out


#: The raw alert struct whose ``ra``/``dec`` fields give the position, per survey layout.
CURRENT_DETECTION_COLUMNS: tuple[str, ...] = ("candidate", "diaSource")


def sky_columns_of_table(table: pa.Table) -> dict:
    """The sky-context columns a pyarrow Table of alerts carries, by name (for :func:`sky_context`).

    Top-level ``ra``, ``dec``, ``mangrove``, ``mangrove_lum_dist`` when present;
    otherwise the position of the current detection (``candidate.ra/dec`` in raw
    ZTF alerts, ``diaSource.ra/dec`` in Rubin's). A field of the wrong type is left out.
    """
    names = table.column_names
    out = {name: table.column(name) for name in SKY_COLUMNS if name in names}
    if RA_COLUMN in out and DEC_COLUMN in out:
        return out
    out.pop(RA_COLUMN, None)
    out.pop(DEC_COLUMN, None)
    for current in CURRENT_DETECTION_COLUMNS:
        if current in names:
            out.update(detection_position(table.column(current)))
            break
    return out


def detection_position(current: pa.Array | pa.ChunkedArray) -> dict:
    """``ra``, ``dec`` (float64 Arrow arrays) of a current-detection struct column (``candidate``, ``diaSource``);
    empty when it is no struct or lacks numeric position fields."""
    struct = current.combine_chunks() if isinstance(current, pa.ChunkedArray) else current
    if not pa.types.is_struct(struct.type):
        return {}
    if struct.type.get_field_index(RA_COLUMN) < 0 or struct.type.get_field_index(DEC_COLUMN) < 0:
        return {}
    fields = {name: struct_field(struct, name) for name in (RA_COLUMN, DEC_COLUMN)}
    if not all(pa.types.is_floating(f.type) or pa.types.is_integer(f.type) for f in fields.values()):
        return {}
    return {name: f.cast(pa.float64()) for name, f in fields.items()}
