"""Each survey's alert reader, and which survey a file or DataFrame holds.

A survey's description (:mod:`fink_t2.scoring.surveys`) says which columns
carry its light curves; its reader is the code that turns them into
observations: ZTF's :mod:`fink_t2.scoring.alerts` (magnitudes, ``candidate`` /
``prv_candidates``), Rubin's :mod:`fink_t2.scoring.rubin_alerts` (nJy fluxes,
``diaSource`` / ``prvDiaSources``). Everything downstream (preparation,
scoring, the ``t2`` column) is shared; the serving side looks the reader up
here by the survey's name and never branches on it. Pure numpy/pandas/pyarrow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from fink_t2.scoring import alerts, rubin_alerts
from fink_t2.scoring.lightcurves import Observations
from fink_t2.scoring.sky import RA_COLUMN, SKY_COLUMNS, detection_position
from fink_t2.scoring.surveys import get_survey


@dataclass(frozen=True)
class AlertReader:
    """How one survey's alerts become observations (what its :class:`~fink_t2.scoring.surveys.Survey` names)."""

    survey: str
    #: The raw alert columns: the current detection (a struct) and the history (a list of structs).
    current_column: str
    history_column: str
    #: (c* columns, positionally; optional c* columns by name) -> (Observations, reason per alert).
    observations: Callable[..., tuple[Observations, np.ndarray]]
    #: Raw alerts (pyarrow Table) -> a DataFrame of the c* columns (and ``host_z`` for Rubin).
    columns_from_raw: Callable[[pa.Table], pd.DataFrame]
    #: Per-alert scalar columns read beside the light curve (the host redshift), None where there are none.
    host_redshift_column: str | None
    #: What names an alert in summaries, its object then its detection: top-level columns, or fields of
    #: the current detection's struct.
    id_columns: tuple[str, str]

    @property
    def columns(self) -> tuple[str, ...]:
        """The c* columns the reader needs, in its argument order (the survey description's)."""
        return get_survey(self.survey).columns

    @property
    def optional_columns(self) -> tuple[str, ...]:
        return get_survey(self.survey).optional_columns


READERS: dict[str, AlertReader] = {
    "ztf": AlertReader("ztf", "candidate", "prv_candidates", alerts.observations_from_alerts, alerts.alert_columns,
                       None, ("objectId", "candid")),
    "rubin": AlertReader("rubin", rubin_alerts.CURRENT, rubin_alerts.HISTORY, rubin_alerts.observations_from_rubin,
                         rubin_alerts.rubin_alert_columns, rubin_alerts.HOST_Z_COLUMN, ("diaObjectId", "diaSourceId")),
}


def get_reader(survey: str) -> AlertReader:
    """The reader of ``survey`` (an unknown name lists the known ones)."""
    get_survey(survey)
    return READERS[survey]


def survey_of_columns(names: Iterable[str]) -> str | None:
    """The survey whose alerts columns ``names`` hold (raw alerts or Fink's c* columns), None if none.

    Rubin's raw ``diaSource`` or its c* columns (ELAsTiCC-named ones too) say Rubin;
    ZTF's ``candidate`` or c* columns say ZTF. A frame with both is ambiguous: None.
    """
    names = set(names)
    found = []
    for name, reader in READERS.items():
        if reader.current_column in names or set(reader.columns) <= names:
            found.append(name)
    if "rubin" not in found and set(rubin_alerts.ELASTICC_COLUMNS) <= names:
        found.append("rubin")
    return found[0] if len(found) == 1 else None


def light_curve_columns(frame: pd.DataFrame, survey: str) -> pd.DataFrame:
    """The c* columns of ``survey`` (and its host redshift column) for ``frame``: its own when it has them all,
    else built from its raw alerts. A host redshift column ``frame`` carries (a cross-match's) is kept."""
    reader = get_reader(survey)
    frame = plain_alert_columns(frame, reader)
    if survey == "rubin":
        frame = rubin_alerts.rename_elasticc_columns(frame)
    if set(reader.columns) <= set(frame.columns):
        return frame
    if reader.current_column not in frame.columns:
        raise ValueError(f"the alerts have neither Fink's {list(reader.columns)} columns nor a raw "
                         f"'{reader.current_column}' column to build them from (columns: {list(frame.columns)[:12]})")
    raw = [c for c in (reader.current_column, reader.history_column, "diaObject") if c in frame.columns]
    built = reader.columns_from_raw(pa.Table.from_pandas(frame[raw], preserve_index=False))
    built.index = frame.index
    extra = reader.host_redshift_column
    if extra is not None and extra in frame.columns:
        built[extra] = frame[extra]
    for name in SKY_COLUMNS:  # a cross-match the frame carries (Fink's mangrove, a position)
        if name in frame.columns:
            built[name] = frame[name]
    if RA_COLUMN not in built.columns:
        built = built.join(raw_position(frame[reader.current_column]).set_axis(built.index), how="left")
    return built


def raw_position(current: pd.Series) -> pd.DataFrame:
    """``ra``, ``dec`` of each alert's current detection (a struct column: ``candidate``, ``diaSource``);
    empty (no columns) when the struct has no position fields."""
    table = pa.Table.from_pandas(current.to_frame("current"), preserve_index=False)
    position = detection_position(table.column("current"))
    return pd.DataFrame({name: column.to_numpy(zero_copy_only=False) for name, column in position.items()},
                        index=range(len(current)))


def plain_alert_columns(frame: pd.DataFrame, reader: AlertReader) -> pd.DataFrame:
    """``frame`` with the columns ``reader`` reads checked: a name given twice is a ValueError naming it (the
    caller's mistake: which column holds the alerts cannot be told), and cells that are pandas Series are read
    as the arrays of their values (a Series' own index would otherwise be taken for positions)."""
    wanted = {*reader.columns, *reader.optional_columns, reader.current_column, reader.history_column,
              reader.host_redshift_column, *rubin_alerts.ELASTICC_COLUMNS}
    twice = sorted({str(name) for name in frame.columns[frame.columns.duplicated()] if name in wanted})
    if twice:
        raise ValueError(f"the alerts frame has two columns named {twice[0]!r}: which one holds the alerts cannot "
                         "be told; keep one of them (e.g. frame.loc[:, ~frame.columns.duplicated()])")
    converted = {}
    for name in wanted & set(frame.columns):
        column = frame[name]
        if column.dtype == object and any(isinstance(cell, pd.Series) for cell in column):
            converted[name] = [cell.to_numpy() if isinstance(cell, pd.Series) else cell for cell in column]
    return frame.assign(**converted) if converted else frame
