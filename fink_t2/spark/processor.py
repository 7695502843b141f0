"""The Fink science module: a Spark UDF adding ONE column, ``t2``.

On Spark >= 4.1 the UDF is an ``arrow_udf`` (alert arrays reach the
preparation as Arrow buffers, the column leaves as one: about 25 % more
alerts per second than the pandas flavour); on older Spark (Fink's 3.4 and 3.5) it is
a ``pandas_udf``. Both produce the same column (tests compare them).

Registration in fink-broker's ``apply_science_modules``, like every Fink module, on the ``c*``
columns Fink has built (docs/fink_integration.md has both stages' lines)::

    from fink_t2.spark.processor import t2_fink, t2_rubin
    df = df.withColumn("t2", t2_fink(*T2_FINK_ZTF_ARGS))        # ZTF, Fink's selection cuts on
    df = df.withColumn("t2", t2_rubin(*T2_FINK_RUBIN_ARGS))     # Rubin, among the ``clf`` classifiers

Outside Fink (raw alerts or ``concat_col``-ed columns), one call builds the ``c*`` columns too::

    from fink_t2.spark.processor import apply_t2
    df = apply_t2(df)                       # adds the column "t2" (Fink's selection cuts on)

Rubin alerts (``diaSource`` / ``prvDiaSources`` of lsst v7.1, v10.0 or ELAsTiCC, or the
Fink-style ``cmidpointMjdTai, cband, cpsfFlux, cpsfFluxErr`` columns and ``host_z``), with the
shipped six-band model and the same ``t2`` column::

    df = apply_t2(df, survey="rubin")       # Fink's selection cuts are ZTF's: none for Rubin

or, on a DataFrame that already has Fink's ``c*`` columns::

    from fink_t2.spark.processor import t2
    df = df.withColumn("t2", t2("cjd", "cfid", "cmagpsf", "csigmapsf"))

The column's type is :data:`fink_t2.scoring.T2_TYPE_DDL`::

    struct<mu_Lens_Single: double, TDE: double, ..., SNIa: double, ...,  -- the 14 class probabilities
                                                                    -- (fink_t2.scoring.classes.CLASS_FIELDS:
                                                                    -- Avro-legal), null if declined
           top_class: string,                   -- most probable class, null if declined
           reason: string>                      -- why the alert was declined, null if classified

One double field per class keeps the class -> probability access of Fink's
historical ``t2`` map (``t2.SNIa`` or ``t2['SNIa']``) and costs Spark half as
much per alert; a declined alert gets no probabilities at all rather than
made-up ones.

Arguments of ``t2``, in this order; the first four are required, the others
may be left out from the right or passed as null columns:
``cjd, cfid, cmagpsf, csigmapsf, cdiffmaglim, cisdiffpos, jdstarthist, roid, cdsxmatch``.

The model is loaded once per Python worker process (``runtime.get_model``
caches it) and reused by every Arrow batch that worker scores.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd

try:
    from pyspark.sql import Column, DataFrame, SparkSession
except ModuleNotFoundError as error:  # one line naming the Spark extra, not a bare "No module named pyspark"
    from fink_t2.spark import SPARK_MISSING, SparkMissingError

    raise SparkMissingError(SPARK_MISSING) from error
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

from fink_t2.scoring import runtime
from fink_t2.scoring.classes import CLASS_FIELDS
from fink_t2.scoring.classifier import Scores, score_alerts, score_columns
from fink_t2.scoring.column import T2_EXTRA_FIELDS, t2_arrow, t2_frame
from fink_t2.scoring.cuts import FINK_CUTS, Cuts, make_selector
from fink_t2.scoring.paths import default_model
from fink_t2.scoring.readers import get_reader, survey_of_columns
from fink_t2.scoring.rubin_alerts import ELASTICC_COLUMNS, FIELD_NAMES, HOST_Z_FIELDS
from fink_t2.scoring.sky import MANGROVE_DISTANCE_COLUMN

#: Arguments of the UDF, in order (the first four are required). The last three are the sky context a model
#: with sky channels reads (the alert's position and Fink's Mangrove cross-match, :mod:`fink_t2.scoring.sky`).
T2_INPUTS: tuple[str, ...] = (
    "cjd", "cfid", "cmagpsf", "csigmapsf", "cdiffmaglim", "cisdiffpos", "jdstarthist", "roid", "cdsxmatch",
    "ra", "dec", "mangrove",
)
#: The sky-context arguments (the last of :data:`T2_INPUTS`).
T2_SKY_INPUTS: tuple[str, ...] = T2_INPUTS[9:]
_N_REQUIRED = 4
#: The light-curve arguments, in order (the required four, ``cdiffmaglim``, ``cisdiffpos``); the rest feed the cuts.
T2_LIGHT_CURVE_INPUTS: tuple[str, ...] = T2_INPUTS[:6]

#: Spark type of the ``t2`` column (same as :data:`fink_t2.scoring.T2_TYPE_DDL`; built as an
#: object because parsing DDL needs an active SparkContext, and the UDF is created at import).
T2_TYPE = StructType([StructField(name, DoubleType(), True) for name in CLASS_FIELDS]
                     + [StructField(name, StringType(), True) for name in T2_EXTRA_FIELDS])

def score_batch(columns: tuple, model_path: str | None, cuts: Cuts, survey: str = "ztf") -> Scores:
    """Body of the UDF: one Arrow batch -> scores, model taken from the process cache.

    ``columns`` are pandas Series (pandas UDF) or pyarrow arrays (Arrow UDF):
    :data:`T2_INPUTS` for ZTF, the survey's c* columns then its host redshift
    column for another survey (Rubin: :func:`rubin_input_columns`; the host
    redshift may be left out). Arguments are matched by position, so optional
    context columns can be appended to :data:`T2_INPUTS` without breaking callers.
    """
    if survey != "ztf":
        reader = get_reader(survey)
        n_columns = len(reader.columns)
        trailing = (reader.host_redshift_column, MANGROVE_DISTANCE_COLUMN)
        if not n_columns <= len(columns) <= n_columns + len(trailing):
            raise TypeError(f"t2 for {survey} takes {n_columns} to {n_columns + len(trailing)} columns "
                            f"{[*reader.columns, *trailing]}, got {len(columns)}")
        model = runtime.get_model(model_path)
        host = dict(zip(trailing, columns[n_columns:]))
        return score_columns(list(columns[:n_columns]), host, survey=survey, model=model)
    if not _N_REQUIRED <= len(columns) <= len(T2_INPUTS):
        raise TypeError(f"t2 takes {_N_REQUIRED} to {len(T2_INPUTS)} columns {list(T2_INPUTS)}, got {len(columns)}")
    named = dict(zip(T2_INPUTS, columns))
    model = runtime.get_model(model_path)
    select = (make_selector(cuts, *(_as_pandas(named.get(name)) for name in ("jdstarthist", "roid", "cdsxmatch")))
              if cuts.enabled else None)
    sky = {name: named[name] for name in T2_SKY_INPUTS if named.get(name) is not None}
    scores = score_alerts(
        named["cjd"], named["cfid"], named["cmagpsf"], named["csigmapsf"],
        cisdiffpos=named.get("cisdiffpos"), cdiffmaglim=named.get("cdiffmaglim"),
        model=model, select=select, sky=sky,
    )
    return scores


def _as_pandas(column):
    """A scalar-per-alert column as pandas (the cuts' input), whichever UDF flavour delivered it."""
    if column is None or isinstance(column, pd.Series):
        return column
    return pd.Series(column.to_pylist(), dtype=object) if hasattr(column, "to_pylist") else column


def arrow_udfs_available() -> bool:
    """Spark >= 4.1 has ``arrow_udf``: pyarrow arrays in and out, no pandas conversion."""
    import pyspark.sql.functions as functions

    return hasattr(functions, "arrow_udf")


def make_t2_udf(model_path: str | Path | None = None, cuts: Cuts | None = None,
                engine: str = "auto", survey: str = "ztf") -> Callable[..., Column]:
    """A ``t2`` UDF for a given model file and selection cuts (default: shipped model, no cuts).

    ``survey``: whose alerts the UDF reads ("ztf": :data:`T2_INPUTS`; "rubin":
    the columns of :func:`rubin_input_columns`); the default model is that
    survey's shipped one.

    ``engine``: ``"arrow"`` (Spark >= 4.1 ``arrow_udf``: the alert arrays reach
    the preparation as Arrow buffers and the column leaves as one), ``"pandas"``
    (``pandas_udf``, every Spark 3.x/4.x), or ``"auto"`` (arrow where available).
    Both give the same column. A relative ``model_path`` is made absolute here,
    in the driver: workers may run elsewhere.
    """
    if model_path is None and survey != "ztf":
        model_path = default_model(survey)
    path = str(Path(model_path).resolve()) if model_path is not None else None
    cuts = cuts if cuts is not None else Cuts()
    return t2_typed_udf(lambda columns: score_batch(columns, path, cuts, survey), engine)


def t2_typed_udf(score: Callable[[tuple], Scores], engine: str = "auto") -> Callable[..., Column]:
    """``score`` (the UDF's argument columns -> Scores) as a Spark UDF returning the ``t2`` column.

    The one place that picks the UDF flavour (``engine`` as in :func:`make_t2_udf`)
    and builds the column from Scores; the bench's diagnostics use it too, so
    they are priced in the same flavour as the module.
    """
    if engine not in ("auto", "arrow", "pandas"):
        raise ValueError(f"engine must be 'auto', 'arrow' or 'pandas', got {engine!r}")
    use_arrow = engine == "arrow" or (engine == "auto" and arrow_udfs_available())
    if use_arrow:
        from pyspark.sql.functions import ArrowUDFType, arrow_udf

        def t2(*columns):  # pyarrow arrays in, a pyarrow StructArray out
            return t2_arrow(score(columns))

        # Varargs cannot be typed for Spark's hint inference: the function type is explicit
        # (and Spark's advice to use hints instead is silenced: it cannot apply here).
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*type hints for arrow UDF.*", category=UserWarning)
            return arrow_udf(t2, T2_TYPE, ArrowUDFType.SCALAR)

    @pandas_udf(T2_TYPE)
    def t2(*columns: pd.Series) -> pd.DataFrame:
        return t2_frame(score(columns))

    return t2


#: The science module with the shipped model and no cuts (see :func:`apply_t2` for cuts).
t2 = make_t2_udf()

#: t2 as Fink runs it on ZTF alerts: the shipped model and Fink's selection cuts
#: (:data:`fink_t2.scoring.FINK_CUTS`), on the ``c*`` columns fink-broker's
#: ``apply_science_modules`` builds (docs/fink_integration.md)::
#:
#:     df = df.withColumn("t2", t2_fink(*T2_FINK_ZTF_ARGS))
t2_fink = make_t2_udf(cuts=FINK_CUTS)

#: t2 on Rubin alerts: the shipped six-band model, no cuts; arguments ``cmidpointMjdTai, cband,
#: cpsfFlux, cpsfFluxErr`` (Fink's Rubin ``c*`` columns), then optionally a host redshift column.
t2_rubin = make_t2_udf(survey="rubin")

#: The arguments of :data:`t2_fink` in fink-broker's ZTF stage, in order: the ``c*`` columns Fink has built
#: (``concat_col``), the first detection's date from the raw alert, the ``roid`` and ``cdsxmatch`` columns
#: Fink's earlier stages add, then the sky context: the alert's position and Fink's ``mangrove`` cross-match.
T2_FINK_ZTF_ARGS: tuple = ("cjd", "cfid", "cmagpsf", "csigmapsf", "cdiffmaglim", "cisdiffpos",
                           "candidate.jdstarthist", "roid", "cdsxmatch", "candidate.ra", "candidate.dec", "mangrove")

#: The arguments of :data:`t2_rubin` in fink-broker's Rubin stage (its ``c*`` columns).
T2_FINK_RUBIN_ARGS: tuple = ("cmidpointMjdTai", "cband", "cpsfFlux", "cpsfFluxErr")


@pandas_udf(StringType())
def worker_stats(anything: pd.Series) -> pd.Series:
    """Diagnostic: ``"pid:model_loads"`` of the Python worker evaluating each row (the model cache at work)."""
    # Read the counter through the module: this function is pickled by value, its globals with it.
    import fink_t2.scoring.runtime as live_runtime

    text = f"{os.getpid()}:{live_runtime.LOAD_COUNT}"
    return pd.Series([text] * len(anything))


# --------------------------------------------------------------------------- raw alerts -> c* columns

_HISTORY_TYPES = {"jd": "double", "fid": "double", "magpsf": "double", "sigmapsf": "double",
                  "diffmaglim": "double", "isdiffpos": "string"}


def history_column(df: DataFrame, field: str, dtype: str = "double") -> Column:
    """``prv_candidates.<field>`` + [``candidate.<field>``] as one array (history first, current last).

    Like fink-utils ``concat_col``, but an alert without history (null
    ``prv_candidates``) still gets its current value, and element types are
    unified (schema versions differ: int32/int64, float/double).
    """
    current = F.array(F.col(f"candidate.{field}").cast(dtype))
    empty = F.array().cast(f"array<{dtype}>")
    if "prv_candidates" in df.columns and field in _history_fields(df):
        past = F.coalesce(F.col(f"prv_candidates.{field}").cast(f"array<{dtype}>"), empty)
    elif "prv_candidates" in df.columns and _history_fields(df):
        # An optional field the history lacks (e.g. isdiffpos): unknown at each past point, same length.
        past = F.coalesce(F.transform(F.col("prv_candidates"), lambda x: F.lit(None).cast(dtype)), empty)
    else:
        past = empty
    return F.concat(past, current)


def _history_fields(df: DataFrame) -> set[str]:
    """Field names of the elements of ``prv_candidates`` (empty if it is not an array of structs)."""
    from pyspark.sql.types import ArrayType

    dtype = df.schema["prv_candidates"].dataType
    if isinstance(dtype, ArrayType) and isinstance(dtype.elementType, StructType):
        return set(dtype.elementType.fieldNames())
    return set()


def _candidate_fields(df: DataFrame) -> set[str]:
    """Field names of the raw ``candidate`` struct (empty if there is none, or it is not a struct)."""
    if "candidate" not in df.columns:
        return set()
    dtype = df.schema["candidate"].dataType
    return set(dtype.fieldNames()) if isinstance(dtype, StructType) else set()


def t2_input_columns(df: DataFrame, with_cut_columns: bool = True, with_sky: bool = False) -> list[Column]:
    """The UDF arguments for ``df``: Fink's ``c*`` columns if present, else built from raw alerts.

    Nine columns, or the six light-curve ones with ``with_cut_columns=False``
    (without cuts ``jdstarthist``, ``roid`` and ``cdsxmatch`` are unused, and
    every column costs a JVM -> Python transfer per alert). ``with_sky`` adds the
    three sky-context columns (:data:`T2_SKY_INPUTS`: ``ra``, ``dec`` from the
    frame or the raw ``candidate``, Fink's ``mangrove``; null where absent), for
    a model that reads them (the cut columns are then always passed, null without cuts).

    The light-curve arrays all come from one source: the existing ``c*`` columns
    when all four required ones are there, else the raw ``candidate`` and
    ``prv_candidates`` (an enriched file may carry a lone ``cmagpsf`` of its own
    making, whose length need not match the rebuilt arrays).
    """
    names = set(df.columns)
    raw = "candidate" in names
    fields = _candidate_fields(df)
    use_existing = set(T2_INPUTS[:_N_REQUIRED]) <= names
    columns = []
    for name in T2_LIGHT_CURVE_INPUTS:
        field = name[1:]
        if use_existing and name in names:
            columns.append(F.col(name))
        elif raw and field in fields:
            columns.append(history_column(df, field, _HISTORY_TYPES[field]))
        elif raw and name in T2_INPUTS[:_N_REQUIRED]:
            raise ValueError(f"the raw alerts' 'candidate' struct has no field '{field}' (fields: {sorted(fields)})")
        elif name in T2_INPUTS[:_N_REQUIRED]:
            raise ValueError(f"the alerts have neither a '{name}' column nor raw 'candidate'/'prv_candidates' "
                             f"columns to build it from (columns: {sorted(names)})")
        else:
            columns.append(F.lit(None).cast(f"array<{_HISTORY_TYPES[field]}>"))
    if not with_cut_columns and not with_sky:
        return columns
    if raw and "jdstarthist" in fields:
        columns.append(F.col("candidate.jdstarthist").cast("double"))
    elif "jdstarthist" in names:
        columns.append(F.col("jdstarthist").cast("double"))
    else:
        columns.append(F.lit(None).cast("double"))
    columns.append(F.col("roid").cast("double") if "roid" in names else F.lit(None).cast("double"))
    columns.append(F.col("cdsxmatch").cast("string") if "cdsxmatch" in names else F.lit(None).cast("string"))
    if with_sky:
        columns += _sky_columns(df, names, fields)
    return columns


def _sky_columns(df: DataFrame, names: set, fields: set) -> list[Column]:
    """``ra``, ``dec`` (the frame's, else the raw candidate's) and ``mangrove`` (Fink's cross-match), null where
    absent: without ``mangrove`` the scorer cross-matches the position with the package's catalogue copy."""
    out = []
    for name in ("ra", "dec"):
        if name in names:
            out.append(F.col(name).cast("double"))
        elif "candidate" in names and name in fields:
            out.append(F.col(f"candidate.{name}").cast("double"))
        else:
            out.append(F.lit(None).cast("double"))
    out.append(F.col("mangrove") if "mangrove" in names else F.lit(None).cast("map<string,string>"))
    return out


def check_cut_columns(df: DataFrame, cuts: Cuts) -> None:
    """ValueError naming the columns the enabled cuts need but ``df`` lacks (raised before any data is read)."""
    names = set(df.columns)
    in_candidate = "jdstarthist" in _candidate_fields(df)
    available = {"jdstarthist": in_candidate or "jdstarthist" in names,
                 "roid": "roid" in names, "cdsxmatch": "cdsxmatch" in names}
    missing = [c for c in cuts.needed_columns() if not available[c]]
    if missing:
        raise ValueError(f"the selection cuts need column(s) {missing}, absent from the alerts; add them "
                         "(Fink's enriched alerts have them), or pass cuts without those cuts, e.g. "
                         "apply_t2(df, cuts=Cuts(exclude_solar_system=False, extragalactic_xmatch=False)) "
                         "or cuts=Cuts(enabled=False) to classify every alert "
                         "(from fink_t2.scoring import Cuts)")


def dataframe_survey(df: DataFrame, survey: str | None = None) -> str:
    """``survey`` if given, else the survey whose columns ``df`` holds (ZTF unless they are Rubin's)."""
    if survey is not None:
        get_reader(survey)  # an unknown name lists the known ones
        return survey
    return survey_of_columns(df.columns) or "ztf"


def t2_column(df: DataFrame, model_path: str | Path | None = None, cuts: Cuts | None = None,
              survey: str | None = None) -> Column:
    """The ``t2`` column for ``df`` (raw alerts or Fink's science DataFrame), cut columns only with cuts.

    ``survey`` ("ztf", "rubin"; None: read off ``df``'s columns) picks the
    reader and the default model. ``cuts`` None means Fink's selection for ZTF
    (:data:`fink_t2.scoring.FINK_CUTS`) and none for Rubin (the cuts read ZTF
    columns); ``Cuts(enabled=False)`` classifies every alert. Fails fast, in the
    driver and before any data is read, on a bad model file, a model of another
    survey, or cuts whose columns are missing.
    """
    survey = dataframe_survey(df, survey)
    if survey != "ztf":
        from fink_t2.scoring.classifier import model_for

        if cuts is not None and cuts.enabled:
            raise ValueError(f"Fink's t2 selection cuts read ZTF columns (jdstarthist, roid, cdsxmatch); {survey} "
                             "alerts have none: pass cuts=Cuts(enabled=False) (the default for them)")
        model_for(survey, model_path=model_path if model_path is not None else default_model(survey))
        udf = make_t2_udf(model_path, Cuts(), survey=survey)
        return udf(*rubin_input_columns(df))
    cuts = cuts if cuts is not None else FINK_CUTS
    from fink_t2.scoring.classifier import model_for

    model = model_for("ztf", model_path=model_path)  # verify the file now (sha256, shapes, survey), not in a worker
    check_cut_columns(df, cuts)
    udf = make_t2_udf(model_path, cuts)
    return udf(*t2_input_columns(df, with_cut_columns=cuts.enabled, with_sky=model.preparation.sky_context))


def apply_t2(df: DataFrame, model_path: str | Path | None = None, cuts: Cuts | None = None,
             column: str = "t2", survey: str | None = None) -> DataFrame:
    """``df`` with the ``t2`` column (:func:`t2_column`) added; any existing ``column`` is replaced.

    ``survey`` ("ztf", "rubin"; None: read off the columns): Rubin alerts are
    scored by the shipped six-band model (``model_path`` to choose another),
    into the same ``t2`` column. For ZTF, by default with Fink's selection cuts
    (:data:`fink_t2.scoring.FINK_CUTS`, as Fink runs t2: the alerts need
    ``roid`` and ``cdsxmatch``, which Fink's science stage adds); pass
    ``cuts=Cuts(enabled=False)`` to classify every alert.
    """
    return df.withColumn(column, t2_column(df, model_path, cuts, survey))


# --------------------------------------------------------------------------- raw Rubin alerts -> c* columns


def _struct_fields(df: DataFrame, column: str) -> set[str]:
    """Field names of a struct column, or of the elements of an array-of-struct column (empty otherwise)."""
    from pyspark.sql.types import ArrayType

    if column not in df.columns:
        return set()
    dtype = df.schema[column].dataType
    if isinstance(dtype, ArrayType):
        dtype = dtype.elementType
    return set(dtype.fieldNames()) if isinstance(dtype, StructType) else set()


def _rubin_history(df: DataFrame, meaning: str, dtype: str) -> Column:
    """``prvDiaSources.<field>`` + [``diaSource.<field>``] (history first, current last), under each struct's
    name(s) for ``meaning`` (:data:`fink_t2.scoring.rubin_alerts.FIELD_NAMES`). Files of several schema
    versions unified into one DataFrame carry both names (each null where the other is set): the first
    non-null one is taken. A field the history lacks is null there; an alert without history (null
    ``prvDiaSources``) keeps its current value."""
    current_fields, history_fields = _struct_fields(df, "diaSource"), _struct_fields(df, "prvDiaSources")
    names = [n for n in FIELD_NAMES[meaning] if n in current_fields]
    if not names:
        raise ValueError(f"the Rubin alerts' 'diaSource' struct lacks {' or '.join(FIELD_NAMES[meaning])} "
                         f"(fields: {sorted(current_fields)[:12]})")
    current = F.array(F.coalesce(*[F.col(f"diaSource.{n}").cast(dtype) for n in names]))
    empty = F.array().cast(f"array<{dtype}>")
    past_names = [n for n in FIELD_NAMES[meaning] if n in history_fields]
    if len(past_names) == 1:  # the usual case: one schema version, a plain field extraction
        past = F.coalesce(F.col(f"prvDiaSources.{past_names[0]}").cast(f"array<{dtype}>"), empty)
    elif past_names:
        past = F.coalesce(F.transform(F.col("prvDiaSources"),
                                      lambda x: F.coalesce(*[x[n].cast(dtype) for n in past_names])), empty)
    elif history_fields:
        past = F.coalesce(F.transform(F.col("prvDiaSources"), lambda x: F.lit(None).cast(dtype)), empty)
    else:
        past = empty
    return F.concat(past, current)


def _rubin_host_z(df: DataFrame) -> Column:
    """The host redshift from ``diaObject`` (as :func:`fink_t2.scoring.rubin_alerts.host_redshift`), null unknown."""
    if "host_z" in df.columns:
        return F.col("host_z").cast("double")
    fields = _struct_fields(df, "diaObject") if "diaObject" in df.columns else set()
    value = F.lit(None).cast("double")
    for name in reversed(HOST_Z_FIELDS):  # the preferred field is applied last
        if name in fields:
            z = F.col(f"diaObject.{name}").cast("double")
            value = F.when(z >= 0, z).otherwise(value)
    return value


def rubin_input_columns(df: DataFrame) -> list[Column]:
    """The Rubin UDF's arguments for ``df``: cmidpointMjdTai, cband, cpsfFlux, cpsfFluxErr, host_z, and
    ``mangrove_lum_dist`` when ``df`` has it.

    Fink-style c* columns when ``df`` has all four (ELAsTiCC-named ones too),
    else built from the raw ``diaSource`` / ``prvDiaSources`` of any schema
    version read (lsst v7.1, v10.0, ELAsTiCC); ``host_z`` from the column of
    that name, else ``diaObject``, else null.
    """
    reader = get_reader("rubin")
    names = set(df.columns)
    aliases = {new: old for old, new in ELASTICC_COLUMNS.items()}
    if set(reader.columns) <= names:
        light_curve = [F.col(c) for c in reader.columns]
    elif set(aliases.values()) <= names:
        light_curve = [F.col(aliases[c]) for c in reader.columns]
    elif "diaSource" in names:
        light_curve = [_rubin_history(df, meaning, "string" if meaning == "band" else "double")
                       for meaning in FIELD_NAMES]
    else:
        raise ValueError(f"the alerts have neither Fink's {list(reader.columns)} columns nor a raw 'diaSource' "
                         f"column to build them from (columns: {sorted(names)[:12]})")
    # Fink's Rubin stage adds the Mangrove host distance (null: no galaxy): a distance where no photo-z is known.
    context = [F.col(MANGROVE_DISTANCE_COLUMN).cast("double")] if MANGROVE_DISTANCE_COLUMN in names else []
    return [*light_curve, _rubin_host_z(df), *context]


# --------------------------------------------------------------------------- session helper


def restore_conf(spark: SparkSession, values: dict) -> None:
    """Set each Spark SQL option of ``values`` back to its value there (None: it was unset)."""
    for key, value in values.items():
        if value is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, value)


def spark_session(app_name: str = "fink-t2", master: str | None = None, conf: dict | None = None) -> SparkSession:
    """A SparkSession whose Python workers run this interpreter (unless PYSPARK_PYTHON says otherwise).

    Without it, a local Spark launches ``python3`` from the PATH, which may
    lack numpy/LiteRT. ``master`` defaults to spark-submit's, else ``local[*]``.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
