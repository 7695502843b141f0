"""Offline scoring of archived alerts: ``fink-t2 score INPUT... --output OUT``.

Inputs are parquet files, directories of them, or Fink's partitioned lake
(``year=/month=/day=``). The output keeps every input column and adds ``t2``
(same type as the Spark science module). Two engines:

* ``spark`` (default): any number of files, written as a parquet directory;
  Fink's partition columns are kept and the output is partitioned like the input.
* ``pandas``: one file, no Spark (quick jobs, laptops): pyarrow + ``scoring``.

Every input file's footer is checked before anything is scored, so a missing,
empty or corrupt input fails at once with the file named.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fink_t2.classes import CLASS_FIELDS, CLASSES
from fink_t2.lightcurves import Observations, observations_from_alerts
from fink_t2.paths import resource, shared_path
from fink_t2.scoring import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, Cuts, Scores, make_selector, score_alerts, t2_arrow

LOGGER = logging.getLogger(__name__)

#: The 329 real alerts of ``data/alerts_sample.parquet``, shipped as package data (installed or not).
SAMPLE_ALERTS = resource("alerts_sample.parquet")
#: The project's real ZTF alerts: ``data/ztf_alerts`` in the shared-data folder (``$FINK_T2_SHARED``,
#: else ``../shared`` beside a checkout; see :mod:`fink_t2.paths`). It may not exist (a user's clone).
SHARED_ZTF_ALERTS = shared_path("data", "ztf_alerts")

#: Alerts scored per chunk by the pandas engine (one progress update per chunk).
PANDAS_CHUNK = 2000

_NUMERIC_HISTORY = ("jd", "fid", "magpsf", "sigmapsf", "diffmaglim")


class InputError(ValueError):
    """An input path holds no parquet, or a parquet file cannot be read."""


# --------------------------------------------------------------------------- inputs


#: Names of Spark/Hadoop bookkeeping (``_SUCCESS``, ``_spark_metadata``, ``.crc``, hidden files): not data.
IGNORE_PREFIXES = ("_", ".")


def _discover(folder: Path) -> list[Path]:
    """The ``*.parquet`` files under ``folder``, found by pyarrow's dataset discovery.

    Recursive, ``year=/month=/day=`` directories read as hive partitions, and
    any file or directory whose name starts with :data:`IGNORE_PREFIXES`
    skipped (pyarrow applies the prefixes to every path component).
    """
    import pyarrow.dataset as ds

    # An empty schema: list the files without opening any (the footers are read, and checked, later).
    dataset = ds.dataset(str(folder), schema=pa.schema([]), format="parquet", partitioning="hive",
                         ignore_prefixes=list(IGNORE_PREFIXES), exclude_invalid_files=False)
    return sorted(Path(f) for f in dataset.files if f.endswith(".parquet"))


def find_parquet(inputs: list[str | Path]) -> list[Path]:
    """The parquet files named by ``inputs`` (files, or directories searched recursively)."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            found = _discover(path)
            if not found:
                raise InputError(f"no parquet file found under {path} (expected *.parquet files, possibly in "
                                 "year=/month=/day= sub-directories)")
            files.extend(found)
        else:
            raise InputError(f"input not found: {path}")
    if not files:
        raise InputError("no input given")
    return files


def read_alert_schemas(files: list[Path]) -> list[pa.Schema]:
    """Each file's schema, read from its footer, checked to hold alerts (:func:`check_alert_schema`).

    InputError naming the first corrupt or non-parquet file, else the first file without alerts.
    """
    schemas = []
    for path in files:
        try:
            schemas.append(pq.read_schema(path))
        except (pa.ArrowException, OSError) as error:
            raise InputError(f"cannot read parquet file {path}: {error} (corrupt or not parquet: remove or "
                             "replace it)") from error
    for schema, path in zip(schemas, files):
        check_alert_schema(schema, path)
    return schemas


def check_alert_schema(schema: pa.Schema, path: Path) -> None:
    """InputError unless the file holds raw alerts (candidate struct) or Fink's c* columns."""
    names = set(schema.names)
    if "candidate" in names or set(REQUIRED_COLUMNS) <= names:
        return
    raise InputError(f"{path} does not hold ZTF alerts: it has neither a 'candidate' column nor Fink's "
                     f"'cjd, cfid, cmagpsf, csigmapsf' columns (columns: {schema.names[:12]}...)")


# --------------------------------------------------------------------------- raw alerts -> c* columns (pyarrow)


def history_array(table: pa.Table, field: str, dtype: pa.DataType) -> pa.Array:
    """``prv_candidates.<field>`` + [``candidate.<field>``] per alert, as a list array (vectorised)."""
    current = pc.struct_field(table.column("candidate").combine_chunks(), field).cast(dtype)
    n = len(current)
    if "prv_candidates" in table.column_names:
        prv = table.column("prv_candidates").combine_chunks()
        lengths = prv.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        past = pc.struct_field(prv.flatten(), field).cast(dtype)
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


def _candidate_fields(table: pa.Table) -> set[str]:
    """Field names of the raw ``candidate`` struct (empty if it is not a struct)."""
    dtype = table.schema.field("candidate").type
    return {f.name for f in dtype} if pa.types.is_struct(dtype) else set()


def alert_columns(table: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """Fink's ``c*`` columns (cjd, cfid, cmagpsf, csigmapsf, cdiffmaglim, cisdiffpos) from raw alerts.

    Accepts a pyarrow Table or a pandas DataFrame with ``candidate`` (and
    usually ``prv_candidates``); the result has one row per alert, each cell
    a numpy array, ready for :func:`fink_t2.classify`.
    """
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    if "candidate" not in table.column_names:
        raise ValueError("raw alerts need a 'candidate' column")
    fields = _candidate_fields(table)
    missing = [f for f in _NUMERIC_HISTORY[:4] if f not in fields]
    if missing:
        raise ValueError(f"the raw alerts' 'candidate' struct lacks {missing} (fields: {sorted(fields)})")
    # diffmaglim and isdiffpos are optional: without them, columns of nulls (scored as absent).
    out = {f"c{field}": history_array(table, field, pa.float64()) for field in _NUMERIC_HISTORY if field in fields}
    if "isdiffpos" in fields:
        out["cisdiffpos"] = history_array(table, "isdiffpos", pa.string())
    frame = pd.DataFrame({name: column.to_pandas() for name, column in out.items()})
    for name in ("cdiffmaglim", "cisdiffpos"):
        if name not in frame.columns:
            frame[name] = pd.Series([None] * table.num_rows, dtype=object)
    return frame[[*REQUIRED_COLUMNS, "cdiffmaglim", "cisdiffpos"]]


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


def _extra(table: pa.Table, name: str):
    if name == "jdstarthist" and "candidate" in table.column_names:
        if name not in _candidate_fields(table):
            return None
        return pc.struct_field(table.column("candidate").combine_chunks(), "jdstarthist").to_pandas()
    return table.column(name).to_pandas() if name in table.column_names else None


def score_table(table: pa.Table, model_path=None, cuts: Cuts | None = None) -> Scores:
    """Scores of the alerts in a pyarrow Table (raw alerts or with Fink's c* columns)."""
    cuts = cuts if cuts is not None else Cuts()
    if set(REQUIRED_COLUMNS) <= set(table.column_names):
        cols = {name: table.column(name).to_pandas() for name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS
                if name in table.column_names}
        if "candidate" in table.column_names and not set(OPTIONAL_COLUMNS) <= set(cols):
            built = alert_columns(table)  # as the Spark module does: missing optional c* from the raw alert
            for name in OPTIONAL_COLUMNS:
                cols.setdefault(name, built[name])
    else:
        cols = alert_columns(table)
    select = make_selector(cuts, _extra(table, "jdstarthist"), _extra(table, "roid"), _extra(table, "cdsxmatch"))
    return score_alerts(cols["cjd"], cols["cfid"], cols["cmagpsf"], cols["csigmapsf"],
                        cisdiffpos=cols.get("cisdiffpos"), cdiffmaglim=cols.get("cdiffmaglim"),
                        model_path=model_path, select=select)


# --------------------------------------------------------------------------- progress


def progress_bar(total: int, enabled: bool = True):
    """A tqdm progress bar of alerts on stderr (a no-op when disabled)."""
    from tqdm import tqdm

    return tqdm(total=total, unit=" alerts", file=sys.stderr, disable=not enabled, dynamic_ncols=True)


# --------------------------------------------------------------------------- engines


def _output_file(output: Path) -> Path:
    return output if output.suffix == ".parquet" else output / "part-00000.parquet"


def _check_output(output: Path, overwrite: bool) -> None:
    if output.exists() and not overwrite:
        raise InputError(f"output {output} already exists: choose another path or pass --overwrite")


def score_pandas(input_file: str | Path, output: str | Path | None, model_path=None, cuts: Cuts | None = None,
                 overwrite: bool = False, progress: bool = True) -> pa.Table:
    """Score one parquet file without Spark; write it with ``t2`` added to ``output`` (if given); return it."""
    files = find_parquet([input_file])
    if len(files) != 1:
        raise InputError(f"the pandas engine scores one file; {input_file} holds {len(files)} "
                         "(use --engine spark)")
    path = files[0]
    read_alert_schemas(files)
    if output is not None:
        output = Path(output)
        _check_output(output, overwrite)
    from fink_t2.preflight import check_score_job
    from fink_t2.runtime import get_model

    check_score_job(files, [pq.read_schema(path)], output, cuts, "pandas",
                    _output_file(output) if output is not None else None)

    get_model(model_path)  # a bad model file fails before anything is read
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise InputError(f"cannot read parquet file {path}: {error}") from error
    parts = []
    with progress_bar(table.num_rows, progress) as bar:
        for start in range(0, table.num_rows, PANDAS_CHUNK):
            chunk = table.slice(start, PANDAS_CHUNK)
            parts.append(t2_arrow(score_table(chunk, model_path, cuts)))
            bar.update(chunk.num_rows)
    t2 = pa.concat_arrays(parts) if parts else t2_arrow(Scores.empty())
    if "t2" in table.column_names:
        LOGGER.info("replacing the existing 't2' column of %s", path)
        table = table.drop(["t2"])
    table = table.append_column("t2", t2)
    if output is not None:
        target = _output_file(output)
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target)
    return table


def score_spark(inputs: list[str | Path], output: str | Path, model_path=None, cuts: Cuts | None = None,
                overwrite: bool = False, spark=None, master: str | None = None, progress: bool = True) -> Path:
    """Score parquet files/directories/partitions with Spark; write a parquet directory; return the path.

    Inputs, output and model are checked before a Spark session is started
    (``spark`` None: one is made with ``master`` once the checks pass).
    """
    from fink_t2.processor import apply_t2, spark_session
    from fink_t2.runtime import get_model

    files = find_parquet(inputs)
    schemas = read_alert_schemas(files)
    output = Path(output)
    _check_output(output, overwrite)
    from fink_t2.preflight import check_score_job

    check_score_job(files, schemas, output, cuts, "spark")  # unwritable output, cuts' columns: before Spark
    get_model(model_path)  # a bad model file fails here, before Spark reads anything
    spark = spark or spark_session("fink-t2-score", master=master,
                                   conf={"spark.ui.showConsoleProgress": str(progress).lower()})
    groups: dict[pa.Schema, list[Path]] = {}
    for schema, path in zip(schemas, files):
        groups.setdefault(schema, []).append(path)
    frames = []
    for paths in groups.values():
        reader = spark.read
        base = _common_base(inputs, paths)
        if base is not None:
            reader = reader.option("basePath", str(base))
        frames.append(reader.parquet(*[str(p) for p in paths]))
        LOGGER.info("%d file(s) with schema #%d", len(paths), len(frames))
    df = _union_cast(frames, [str(p[0]) for p in groups.values()])
    partition_columns = [c for c in df.columns if c in ("year", "month", "day") and c not in schemas[0].names]
    result = apply_t2(df, model_path=model_path, cuts=cuts if cuts is not None else Cuts())  # None: no cuts
    writer = result.write.mode("overwrite" if overwrite else "errorifexists")
    if partition_columns:
        writer = writer.partitionBy(*partition_columns)
    writer.parquet(str(output))
    return output


def _common_base(inputs: list[str | Path], paths: list[Path]) -> Path | None:
    """The input directory the files came from (Spark's basePath, so year=/month=/day= become columns)."""
    for item in inputs:
        root = Path(item)
        if root.is_dir() and all(root in p.parents for p in paths):
            return root
    return None


def _union_cast(frames: list, first_files: list[str]):
    """One DataFrame from groups of files with different schemas: cast to the first group's types."""
    df = frames[0]
    for frame, name in zip(frames[1:], first_files[1:]):
        types = dict(df.dtypes)
        try:
            from pyspark.sql import functions as F

            cast = frame.select([F.col(f"`{c}`").cast(types[c]).alias(c) if c in types else F.col(f"`{c}`")
                                 for c in frame.columns])
            df = df.unionByName(cast, allowMissingColumns=True)
        except Exception as error:  # AnalysisException: the schemas cannot be reconciled
            detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]  # not the plan dump
            raise InputError(f"{name} has a schema that cannot be unified with {first_files[0]} ({detail}); "
                             "score these files separately") from error
    return df


# --------------------------------------------------------------------------- summary


def summarize(pdf: pd.DataFrame, examples: int = 5) -> str:
    """A readable summary of scored alerts: counts per top class, declines by reason, a few examples.

    ``pdf`` has ``objectId``, ``candid`` and the ``t2`` struct as dicts (or its
    fields as columns: one per class field of ``CLASS_FIELDS``, ``top_class``, ``reason``).
    """
    if "t2" in pdf.columns:
        t2 = pdf["t2"]
        top = t2.map(lambda s: s.get("top_class") if s else None)
        reason = t2.map(lambda s: s.get("reason") if s else None)
        probs = t2.map(lambda s: {c: s[f] for c, f in zip(CLASSES, CLASS_FIELDS) if s.get(f) is not None}
                       if s else {})
    else:
        top, reason = pdf["top_class"], pdf["reason"]
        values = pdf[list(CLASS_FIELDS)].to_numpy(dtype=float)
        probs = pd.Series([dict(zip(CLASSES, row)) if np.isfinite(row).all() else {} for row in values],
                          index=pdf.index)
    n = len(pdf)
    classified = top.notna()
    lines = [f"{n} alerts: {int(classified.sum())} classified, {int((~classified).sum())} declined", "",
             "Top class             alerts"]
    for name, count in Counter(top[classified]).most_common():
        lines.append(f"  {name:<18} {count:>6}")
    declined = Counter(reason[~classified])
    if declined:
        lines += ["", "Declined (reason)     alerts"]
        for text, count in declined.most_common():
            lines.append(f"  {text:<40} {count:>6}")
    ids = pdf["objectId"] if "objectId" in pdf.columns else pd.Series(["?"] * n, index=pdf.index)
    candid = pdf["candid"] if "candid" in pdf.columns else pd.Series(["?"] * n, index=pdf.index)
    lines += ["", "Examples (the most confident alert of each frequent class)",
              f"  {'objectId':<14} {'candid':<20} {'top class':<16} p(top)  runner-up"]
    p_top = pd.Series([max(p.values()) if p else np.nan for p in probs], index=pdf.index)
    for name, _ in Counter(top[classified]).most_common(examples):
        i = int(np.nanargmax(np.where((top == name).to_numpy(), p_top.to_numpy(), np.nan)))
        ranked = sorted(probs.iloc[i].items(), key=lambda kv: -kv[1])
        (best, p_best), (second, p_second) = ranked[0], ranked[1]
        lines.append(f"  {ids.iloc[i]!s:<14} {candid.iloc[i]!s:<20} {best:<16} {p_best:.3f}   "
                     f"{second} {p_second:.3f}")
    for i in np.flatnonzero(~classified.to_numpy())[:2]:
        lines.append(f"  {ids.iloc[i]!s:<14} {candid.iloc[i]!s:<20} declined: {reason.iloc[i]}")
    return "\n".join(lines)


def read_scored(output: str | Path, engine: str, spark=None) -> pd.DataFrame:
    """objectId, candid and t2 of a scored output, as pandas (for the summary)."""
    output = Path(output)
    if engine == "pandas":
        table = pq.read_table(_output_file(output), columns=["objectId", "candid", "t2"])
        return table.to_pandas()
    return spark.read.parquet(str(output)).select("objectId", "candid", "t2.*").toPandas()
