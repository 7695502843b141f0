"""Sky context for training views: Fink's host cross-match simulated for PLAsTiCC, read for BTS, withheld at random.

A model input that the simulation lacks but the real objects carry would be
learnt as "real, hence a supernova". So every training view, simulated or
real, carries the same kind of context, and the same share of views carries
none (:func:`training_sky`):

- **PLAsTiCC objects** get a Mangrove-like match drawn from their true
  redshift, with the catalogue's completeness measured on the BTS objects
  (:data:`HOST_MATCH_BY_REDSHIFT`: 70-77 % of objects below z = 0.04 have
  their host in Mangrove, 20 % at 0.05-0.06, none beyond 0.07, where the
  catalogue ends at 230 Mpc), the matched host at the object's luminosity
  distance with Mangrove's scatter, and the unrelated matches seen on both:
  a foreground galaxy for 3 % of distant extragalactic objects, a chance
  galaxy for stars at the rate measured on random sky positions
  (:data:`CHANCE_MATCH_BY_LATITUDE`, at the object's own latitude).
- **BTS objects** carry Fink's real ``mangrove`` column.

A real object's host distance is the same in all its views: training views
get it jittered (:data:`VIEW_DISTANCE_JITTER`) so that it cannot serve to
recognise the object rather than to judge it.

The tables are measured, not tuned: ``tests/test_sky.py`` recomputes them
from the BTS file and the catalogue.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fink_t2.scoring.sky import SkyContext, galactic_latitude, luminosity_distance_mpc, sky_context

#: (redshift, share of objects whose host Mangrove holds), BTS development objects with a redshift, bins of
#: 0.01 (z < 0.02: 0.77, 0.02-0.03: 0.65, 0.03-0.04: 0.68, 0.04-0.05: 0.47, 0.05-0.06: 0.20 of which the
#: distances agree with the redshift's; 0.06-0.08: the 4.5 % that match are foreground galaxies).
HOST_MATCH_BY_REDSHIFT: tuple[tuple[float, float], ...] = (
    (0.0, 0.77), (0.025, 0.66), (0.035, 0.68), (0.045, 0.47), (0.055, 0.20), (0.07, 0.0))
#: Scatter of log(Mangrove distance / distance of the redshift) for true hosts (BTS: about 0.1-0.2).
HOST_DISTANCE_SCATTER = 0.15
#: Share of extragalactic objects beyond the catalogue matched to an unrelated, nearer galaxy (BTS at
#: z 0.06-0.15: 2-4.5 %), whose distance is a fraction of the object's (BTS: 0.17-0.82).
FOREGROUND_MATCH = 0.03
FOREGROUND_DISTANCE_FRACTION = (0.15, 0.95)
#: (|Galactic latitude| in degrees, share of random positions with a Mangrove galaxy within 60"):
#: 0-10: 0.35 %, 10-20: 0.44 %, 20-40: 0.50 %, 40-90: 0.83 % (200,000 random positions).
CHANCE_MATCH_BY_LATITUDE: tuple[tuple[float, float], ...] = ((5.0, 0.0035), (15.0, 0.0044), (30.0, 0.0050),
                                                            (65.0, 0.0083))
#: The catalogue's depth: no host beyond it.
CATALOGUE_DEPTH_MPC = 230.0


def _interpolate(table, x) -> np.ndarray:
    points = np.asarray(table, dtype=np.float64)
    return np.interp(x, points[:, 0], points[:, 1])


def simulate_sky(redshift: np.ndarray, latitude: np.ndarray, rng: np.random.Generator) -> SkyContext:
    """One draw of Fink's host cross-match for objects at ``redshift`` (0 for Galactic objects) and Galactic
    ``latitude`` (degrees)."""
    z = np.nan_to_num(np.asarray(redshift, dtype=np.float64), nan=0.0)
    lat = np.asarray(latitude, dtype=np.float64)
    n = len(z)
    extragalactic = z > 0
    true_distance = luminosity_distance_mpc(z)
    host = extragalactic & (rng.random(n) < _interpolate(HOST_MATCH_BY_REDSHIFT, z))
    foreground = extragalactic & ~host & (true_distance > CATALOGUE_DEPTH_MPC) & (rng.random(n) < FOREGROUND_MATCH)
    chance = ~extragalactic & (rng.random(n) < _interpolate(CHANCE_MATCH_BY_LATITUDE, np.abs(np.nan_to_num(lat))))
    distance = np.full(n, np.nan)
    scatter = np.exp(rng.normal(0.0, HOST_DISTANCE_SCATTER, n))
    distance[host] = np.minimum(true_distance[host] * scatter[host], CATALOGUE_DEPTH_MPC)
    low, high = FOREGROUND_DISTANCE_FRACTION
    fraction = rng.uniform(low, high, n)
    distance[foreground] = np.minimum(true_distance[foreground] * fraction[foreground], CATALOGUE_DEPTH_MPC)
    # A chance galaxy in front of a star: any distance the catalogue holds (its median is ~160 Mpc).
    distance[chance] = rng.uniform(20.0, CATALOGUE_DEPTH_MPC, int(chance.sum()))
    return SkyContext(np.ones(n, dtype=bool), distance)


def plasticc_sky_inputs(metadata: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(true redshift, Galactic latitude) per PLAsTiCC object, from its metadata (0 / NaN where absent)."""
    def column(name: str, default: float) -> np.ndarray:
        if name not in metadata:
            return np.full(len(metadata), default)
        return pd.to_numeric(metadata[name], errors="coerce").to_numpy(np.float64)

    redshift = column("true_z", np.nan)
    if np.isnan(redshift).all():
        redshift = column("hostgal_specz", 0.0)
    latitude = column("gal_b", np.nan)
    if np.isnan(latitude).all():
        latitude = galactic_latitude(column("ra", np.nan), column("decl", np.nan))
    return np.nan_to_num(redshift, nan=0.0), latitude


def real_sky(metadata: pd.DataFrame) -> SkyContext:
    """The sky context of real objects (BTS) from Fink's ``mangrove`` column (else their ``ra``, ``dec``, matched
    with the package's catalogue); unknown for every object of a file without them."""
    n = len(metadata)
    columns = {name: metadata[name] for name in ("ra", "dec", "mangrove") if name in metadata}
    if "ra" not in columns or "dec" not in columns:
        columns.pop("ra", None)
        columns.pop("dec", None)
    return sky_context(n, **columns, cross_match=True)


#: Log-normal scatter given to host distances in training views (0.07: 0.15 mag in distance modulus).
VIEW_DISTANCE_JITTER = 0.07


def training_sky(sky: SkyContext, rng: np.random.Generator, withheld_share: float) -> SkyContext:
    """The context of training views: withheld (unknown) for ``withheld_share`` of them, the host distance of
    the others jittered by :data:`VIEW_DISTANCE_JITTER`. The model must judge alerts with or without it."""
    n = len(sky)
    known = sky.host_known & (rng.random(n) >= withheld_share)
    distance = np.where(known, sky.host_distance_mpc * np.exp(rng.normal(0.0, VIEW_DISTANCE_JITTER, n)), np.nan)
    return SkyContext(known, distance)
