"""Fink's selection cuts for t2: which alerts are worth classifying at all.

:class:`Cuts` (each part switchable; :data:`FINK_CUTS` is Fink's selection)
turn into a :data:`Selector` that declines alerts cheaply, before any
preparation, with a reason starting with ``"cut: "``. Pure numpy/pandas.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fink_t2.scoring.config import ConfigError, build, load_yaml
from fink_t2.scoring.lightcurves import Observations

#: SIMBAD object types (``cdsxmatch`` values) that do not rule out an extragalactic transient:
#: no counterpart or a failed cross-match, galaxies and their groupings, active nuclei and
#: quasars, and supernovae already catalogued at the position. Written for this project
#: from the SIMBAD object-type nomenclature; REFERENCE.md section 5 states the rule
#: (Fink keeps t2 to alerts whose cross-match is compatible with an extragalactic host).
EXTRAGALACTIC_XMATCH: tuple[str, ...] = (
    # no SIMBAD counterpart, or the cross-match service failed: cannot exclude anything
    "Unknown", "Fail", "Fail 504",
    # galaxies
    "galaxy", "Galaxy", "G", "EmG", "StarburstG", "BlueCompG", "LSB_G", "HII_G", "High_z_G",
    "RadioG", "PartofG", "GinPair", "GinGroup", "GinCl", "GroupG", "ClG", "BClG", "Compact_Gr_G",
    "IG", "PairG", "LensedG", "LensedImage", "GravLens", "GravLensSystem",
    # active galactic nuclei
    "AGN", "AGN_Candidate", "LINER", "Seyfert", "Seyfert_1", "Seyfert_2", "QSO", "QSO_Candidate",
    "Blazar", "Blazar_Candidate", "BLLac", "BLLac_Candidate", "LensedQ",
    # catalogued supernovae (the host is extragalactic by definition)
    "SN", "SN*", "Candidate_SN*", "SNCandidate",
)


@dataclass(frozen=True)
class Cuts:
    """Fink's selection for t2 (REFERENCE.md section 5), each part switchable.

    Alerts that fail are declined cheaply, before any preparation, with a
    reason starting with ``"cut: "``. ``enabled`` False (the dataclass default)
    scores every alert; :data:`FINK_CUTS` is the selection Fink applies, and
    the default of :func:`fink_t2.spark.processor.apply_t2`.
    """

    enabled: bool = False
    min_detections: int = 2  # valid g/r detections (magpsf and sigmapsf usable)
    max_history_days: float = 90.0  # jd of the alert - jdstarthist
    exclude_solar_system: bool = True  # roid == 3: known solar-system object
    extragalactic_xmatch: bool = True  # cdsxmatch in xmatch_allowed (null counts as "Unknown")
    require_g_and_r: bool = False  # the deployed t2 also required both bands
    xmatch_allowed: tuple[str, ...] = field(default=EXTRAGALACTIC_XMATCH)

    def __post_init__(self) -> None:
        # Checked here, not by each loader: a cuts file, the stream configuration and code all build Cuts.
        if self.min_detections < 0:
            raise ValueError(f"cuts.min_detections must be >= 0, got {self.min_detections}")
        if not math.isfinite(self.max_history_days) or self.max_history_days <= 0:  # NaN passes "<= 0"
            raise ValueError(f"cuts.max_history_days must be > 0, got {self.max_history_days}")

    def needed_columns(self) -> list[str]:
        """Extra alert columns the enabled cuts read (beyond the light curve)."""
        if not self.enabled:
            return []
        needed = ["jdstarthist"]
        if self.exclude_solar_system:
            needed.append("roid")
        if self.extragalactic_xmatch:
            needed.append("cdsxmatch")
        return needed


#: Fink's t2 selection as Fink runs it (the default of ``fink_t2.spark.processor.apply_t2``): every cut on, with
#: the values above. ``Cuts()`` (enabled False) classifies every alert.
FINK_CUTS = Cuts(enabled=True)

#: Optional selection (the cuts): ``select(obs, start, stop)`` gets the observations of the
#: alerts in rows ``[start, stop)`` of the batch and returns a reason per alert (None = keep).
Selector = Callable[[Observations, int, int], np.ndarray]


def cut_reasons(obs: Observations, cuts: Cuts, jdstarthist=None, roid=None, cdsxmatch=None) -> np.ndarray:
    """Per alert, ``None`` if it passes ``cuts``, else ``"cut: ..."`` (the first failed cut).

    Vectorised over the batch; a null ``jdstarthist``/``roid``/``cdsxmatch``
    does not reject an alert (the information is missing, not bad).
    """
    n = obs.n_objects
    reason = np.full(n, None, dtype=object)
    if not cuts.enabled:
        return reason

    def reject(mask: np.ndarray, text: str) -> None:
        reason[mask & np.equal(reason, None)] = text

    if cuts.exclude_solar_system and roid is not None:
        values = pd.to_numeric(pd.Series(list(roid), dtype=object), errors="coerce").to_numpy(dtype=float)
        reject(values == 3, "cut: known solar-system object (roid=3)")
    if cuts.extragalactic_xmatch and cdsxmatch is not None:
        names = pd.Series(list(cdsxmatch), dtype=object)
        allowed = names.isin(list(cuts.xmatch_allowed)).to_numpy() | names.isna().to_numpy()
        reject(~allowed, "cut: cdsxmatch not compatible with an extragalactic host")
    detected = obs.detected
    n_det = np.bincount(obs.object_index[detected], minlength=n)
    reject(n_det < int(cuts.min_detections), f"cut: fewer than {int(cuts.min_detections)} valid g/r detections")
    if jdstarthist is not None:
        start = pd.to_numeric(pd.Series(list(jdstarthist), dtype=object), errors="coerce").to_numpy(dtype=float)
        latest = np.full(n, -np.inf)
        np.maximum.at(latest, obs.object_index, obs.time)
        with np.errstate(invalid="ignore"):
            too_long = (latest - start) > float(cuts.max_history_days)
        reject(too_long, f"cut: history longer than {float(cuts.max_history_days):g} days")
    if cuts.require_g_and_r:
        has_g = np.bincount(obs.object_index[detected & (obs.band == 0)], minlength=n) > 0
        has_r = np.bincount(obs.object_index[detected & (obs.band == 1)], minlength=n) > 0
        reject(~(has_g & has_r), "cut: needs detections in both g and r")
    return reason


def make_selector(cuts: Cuts, jdstarthist=None, roid=None, cdsxmatch=None) -> "Selector | None":
    """The cuts as a :data:`Selector` over a batch whose extra columns are given (None if disabled)."""
    if not cuts.enabled:
        return None
    extras = {name: (list(values) if values is not None else None)
              for name, values in (("jdstarthist", jdstarthist), ("roid", roid), ("cdsxmatch", cdsxmatch))}

    def select(obs: Observations, start: int, stop: int) -> np.ndarray:
        return cut_reasons(obs, cuts, **{k: (v[start:stop] if v is not None else None) for k, v in extras.items()})

    return select


def load_cuts(path: str | Path) -> Cuts:
    """Selection cuts from a YAML file holding a ``cuts:`` mapping (as in conf/stream.yaml)."""
    values = load_yaml(path)
    unknown = [k for k in values if k != "cuts"]
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} (a cuts file holds only 'cuts')")
    return build(Cuts, values.get("cuts") or {}, str(path), prefix="cuts.")
