"""The Mangrove galaxy catalogue, shipped compact, and Fink's host cross-match reproduced without Spark.

Fink's science stage gives every alert the nearest Mangrove galaxy within 60"
(``mangrove``). Offline scoring of raw alerts, ``fink-t2 score`` and the stream
have positions but not that column; this module computes the same match from
a copy of the catalogue shipped in the package (positions to a micro-degree,
0.004", and the luminosity distance: the only field the model reads), so the
README's first command classifies the sample alerts with their host context
and nothing to download. The file's size and sha256 are recorded beside it
(``mangrove_positions.yaml``) and checked before it is read.

The search is exact (nearest galaxy by great-circle distance, kept if closer
than the radius), vectorised over declination zones one radius high: every
galaxy within the radius of a position lies in its zone or a neighbouring one,
within a right-ascension window of ``radius / cos(dec)``.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from fink_t2.scoring.paths import MODELS

#: The compact catalogue and its record (source, row count, size, sha256).
CATALOGUE_FILE = MODELS / "mangrove_positions.parquet"
CATALOGUE_RECORD = MODELS / "mangrove_positions.yaml"
#: Positions are stored as integers of this many degrees.
POSITION_UNIT_DEG = 1.0e-6
#: Fink's radius.
DEFAULT_RADIUS_ARCSEC = 60.0


class CatalogueError(ValueError):
    """The shipped catalogue copy is missing, altered or unreadable."""


class GalaxyCatalogue:
    """Galaxy positions (degrees) and luminosity distances (Mpc), indexed by declination zone."""

    def __init__(self, ra_deg: np.ndarray, dec_deg: np.ndarray, distance_mpc: np.ndarray,
                 zone_arcsec: float = DEFAULT_RADIUS_ARCSEC) -> None:
        ra = np.mod(np.asarray(ra_deg, dtype=np.float64), 360.0)
        dec = np.asarray(dec_deg, dtype=np.float64)
        self.zone_deg = zone_arcsec / 3600.0
        zone = self._zone(dec)
        order = np.lexsort((ra, zone))
        self.ra, self.dec = ra[order], dec[order]
        self.distance_mpc = np.asarray(distance_mpc, dtype=np.float64)[order]
        # One sorted key: zone * 1000 + ra (ra < 360), searched per zone and RA window.
        self._key = zone[order] * 1000.0 + self.ra

    def __len__(self) -> int:
        return len(self.ra)

    def _zone(self, dec: np.ndarray) -> np.ndarray:
        return np.floor((dec + 90.0) / self.zone_deg).astype(np.int64)

    def nearest(self, ra_deg, dec_deg, radius_arcsec: float = DEFAULT_RADIUS_ARCSEC
                ) -> tuple[np.ndarray, np.ndarray]:
        """Per position: index of the nearest galaxy closer than ``radius_arcsec`` (-1 if none) and its
        separation in arcsec (inf if none). Positions must be valid (finite, on the sphere)."""
        if radius_arcsec > self.zone_deg * 3600.0 + 1e-9:
            raise ValueError(f"radius {radius_arcsec}\" exceeds the catalogue's zone height {self.zone_deg * 3600}\"")
        ra = np.mod(np.asarray(ra_deg, dtype=np.float64), 360.0)
        dec = np.asarray(dec_deg, dtype=np.float64)
        n = len(ra)
        best = np.full(n, -1, dtype=np.int64)
        best_sep = np.full(n, np.inf)
        if n == 0 or len(self) == 0:
            return best, best_sep
        radius = radius_arcsec / 3600.0
        zone = self._zone(dec)
        # RA half-width of the search window: radius / cos(dec) at the zone's pole-most edge; whole circle near poles.
        edge = np.minimum(np.abs(dec) + 2 * self.zone_deg, 90.0)
        cos_edge = np.cos(np.radians(edge))
        half = np.where(cos_edge > radius / 180.0, np.minimum(radius / np.maximum(cos_edge, 1e-12), 180.0), 180.0)
        queries, lows, highs = [], [], []
        for dz in (-1, 0, 1):
            z = zone + dz
            for lo_ra, hi_ra in ((ra - half, ra + half), (ra - half + 360.0, ra + half + 360.0),
                                 (ra - half - 360.0, ra + half - 360.0)):
                lo = np.clip(lo_ra, 0.0, 360.0)
                hi = np.clip(hi_ra, 0.0, 360.0)
                use = hi > lo
                if not use.any():
                    continue
                q = np.flatnonzero(use)
                queries.append(q)
                lows.append(np.searchsorted(self._key, z[q] * 1000.0 + lo[q], "left"))
                highs.append(np.searchsorted(self._key, z[q] * 1000.0 + hi[q], "right"))
        query = np.concatenate(queries)
        low, high = np.concatenate(lows), np.concatenate(highs)
        counts = np.maximum(high - low, 0)
        total = int(counts.sum())
        if total == 0:
            return best, best_sep
        owner = np.repeat(query, counts)
        candidate = np.repeat(low, counts) + (np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts))
        sep = angular_separation_arcsec(ra[owner], dec[owner], self.ra[candidate], self.dec[candidate])
        close = sep < radius_arcsec
        owner, candidate, sep = owner[close], candidate[close], sep[close]
        if len(owner):
            order = np.lexsort((candidate, sep, owner))  # per position, nearest first (ties: lowest index)
            first = np.ones(len(order), dtype=bool)
            first[1:] = owner[order][1:] != owner[order][:-1]
            pick = order[first]
            best[owner[pick]] = candidate[pick]
            best_sep[owner[pick]] = sep[pick]
        return best, best_sep


def angular_separation_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle distance in arcsec (Vincenty's formula: accurate at every separation)."""
    l1, b1, l2, b2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (ra1, dec1, ra2, dec2))
    dl = l2 - l1
    sin_dl, cos_dl = np.sin(dl), np.cos(dl)
    sin_b1, cos_b1, sin_b2, cos_b2 = np.sin(b1), np.cos(b1), np.sin(b2), np.cos(b2)
    num = np.hypot(cos_b2 * sin_dl, cos_b1 * sin_b2 - sin_b1 * cos_b2 * cos_dl)
    den = sin_b1 * sin_b2 + cos_b1 * cos_b2 * cos_dl
    return np.degrees(np.arctan2(num, den)) * 3600.0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_record(record: Path = CATALOGUE_RECORD) -> dict:
    """The catalogue copy's record (strict YAML): ``rows``, ``size_bytes``, ``sha256``, ``source``."""
    from fink_t2.scoring.config import ConfigError, load_yaml

    try:
        values = load_yaml(record)
    except ConfigError as error:
        raise CatalogueError(f"{error} (reinstall fink-t2, or rebuild with data/make_mangrove_positions.py)") from error
    for key, kind in (("rows", int), ("size_bytes", int), ("sha256", str)):
        if not isinstance(values.get(key), kind) or isinstance(values.get(key), bool):
            raise CatalogueError(f"{record}: '{key}' missing or not {kind.__name__} (rebuild with "
                                 "data/make_mangrove_positions.py)")
    if not 0 < values["size_bytes"] <= 64 * 2**20 or not 0 < values["rows"] <= 10**7:
        raise CatalogueError(f"{record}: size_bytes / rows out of range (rebuild with data/make_mangrove_positions.py)")
    return values


def load_catalogue(path: Path = CATALOGUE_FILE, record: Path = CATALOGUE_RECORD) -> GalaxyCatalogue:
    """The shipped catalogue copy, verified against its record (size, sha256, rows) before it is read."""
    import pyarrow.parquet as pq

    expected = read_record(record)
    path = Path(path)
    if not path.is_file():
        raise CatalogueError(f"galaxy catalogue not found: {path} (reinstall fink-t2)")
    size = path.stat().st_size
    if size != expected["size_bytes"] or _sha256(path) != expected["sha256"]:
        raise CatalogueError(f"{path} is not the catalogue recorded in {record} (size or sha256 differ): reinstall "
                             "fink-t2 or rebuild both with data/make_mangrove_positions.py")
    table = pq.read_table(path)
    if table.num_rows != expected["rows"] or set(table.column_names) != {"ra_udeg", "dec_udeg", "lum_dist"}:
        raise CatalogueError(f"{path}: unexpected rows or columns (rebuild with data/make_mangrove_positions.py)")
    ra = table.column("ra_udeg").to_numpy().astype(np.float64) * POSITION_UNIT_DEG
    dec = table.column("dec_udeg").to_numpy().astype(np.float64) * POSITION_UNIT_DEG
    return GalaxyCatalogue(ra, dec, table.column("lum_dist").to_numpy().astype(np.float64))


@lru_cache(maxsize=1)
def shipped_catalogue() -> GalaxyCatalogue:
    """The package's catalogue, loaded once per process."""
    return load_catalogue()


def nearest_galaxy_distance(ra_deg, dec_deg, radius_arcsec: float = DEFAULT_RADIUS_ARCSEC,
                            catalogue: GalaxyCatalogue | None = None) -> np.ndarray:
    """Luminosity distance (Mpc) of the nearest Mangrove galaxy within ``radius_arcsec``; NaN where none."""
    catalogue = catalogue or shipped_catalogue()
    index, _ = catalogue.nearest(ra_deg, dec_deg, radius_arcsec)
    return np.where(index >= 0, catalogue.distance_mpc[np.maximum(index, 0)], np.nan)
