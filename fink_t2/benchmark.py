"""``fink-t2 bench``: alerts per second per core, measured the way Fink measures its science modules.

Fink (fink-science-perf, REFERENCE.md section 5) caches the input columns of a
night of alerts, times ``df.withColumn(name, udf(*cols)).select(name).toPandas()``
and divides the alert count by the time and by the number of cores ("on-sky":
every alert counts, including those a module's cuts reject cheaply). This
module does the same, in ONE local Spark session, side by side for:

* ``t2`` (this project), every alert classified, and ``t2_onsky`` with Fink's cuts
  (diagnostics: ``t2_scores_only`` scores the same way but returns one double;
  ``t2_io_only`` moves t2's inputs and a t2-typed output without scoring: the
  most t2 can reach under this measure);
* ``fink_deployed`` / ``fink_deployed_onsky``: the Fink-as-deployed t2 procedure
  (:mod:`fink_t2.fink_deployed`: george GP fit per alert, model loaded in the UDF
  body, one invoke per alert), on a smaller sample because it is slow;
* Fink's own modules from the ``fink-science==7.4.0`` wheel, called with the
  arguments Fink's science stage passes (SuperNNova, asteroids, fast-transient
  rate, light-curve features, anomaly score);
* ``noop``: a pandas UDF over the same four columns returning a constant, the
  ceiling of any Spark module on this machine;
* ``classify``: :func:`fink_t2.classify` without Spark on the same alerts,
  split into preparation and model time.

The input is built by replicating the real ZTF alerts of ``data/`` and
``../shared/data/ztf_alerts`` (a fresh ``candid`` per copy) and cached as one
parquet file under ``--workdir``. Modules whose packages are missing are
skipped with the reason, so the same command runs in the plain environment.
Never imported by the scoring path.
"""

from __future__ import annotations

import glob
import hashlib
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fink_t2.batch import SAMPLE_ALERTS, SHARED_ZTF_ALERTS, history_array
from fink_t2.classes import N_CLASSES
from fink_t2.paths import checkout_root
from fink_t2.scoring import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, Scores

#: Real alerts replicated to build the input (files or directories of parquet files).
DEFAULT_INPUTS: tuple[Path, ...] = (SAMPLE_ALERTS, SHARED_ZTF_ALERTS)
#: Cache of the built input and the Spark log: runs/bench of the checkout, or of the working directory
#: when the package is installed (never inside site-packages).
DEFAULT_WORKDIR = (checkout_root() or Path.cwd()) / "runs" / "bench"

#: Fink's requirement for ZTF: 600 alerts per exposure processed in 1 s on 8 cores (REFERENCE section 5).
FINK_ZTF_RATE = 75.0
#: Alerts per night expected from LSST (REFERENCE section 5).
LSST_ALERTS_PER_NIGHT = 10_000_000
#: Targets of issue 6.
TARGET_CLASSIFY_RATE = 5_000.0
TARGET_VS_DEPLOYED = 50.0
TARGET_VS_NOOP = 0.5
TARGET_WORKER_RSS_MB = 300.0
TARGET_FIRST_ALERT_S = 1.0

#: Spark settings of fink-science-perf's sessions that matter on a local machine.
ARROW_BATCH_FINK_PERF = 1_000_000
#: Spark's default ``spark.sql.execution.arrow.maxRecordsPerBatch``.
SPARK_DEFAULT_ARROW_BATCH = 10_000
#: Bump when the cached input's layout changes.
CACHE_VERSION = 1

#: Per-alert history columns (``c`` + field), with the ZTF Avro types (schema 3.3).
HISTORY_FIELDS: dict[str, pa.DataType] = {
    "jd": pa.float64(), "fid": pa.int32(), "magpsf": pa.float32(), "sigmapsf": pa.float32(),
    "diffmaglim": pa.float32(), "isdiffpos": pa.string(), "distnr": pa.float32(), "magnr": pa.float32(),
    "sigmagnr": pa.float32(),
}
#: Fields of the current detection (``candidate.<field>``) the modules read, flattened to top-level columns.
CANDIDATE_FIELDS: dict[str, pa.DataType] = {
    "jd": pa.float64(), "fid": pa.int32(), "magpsf": pa.float32(), "sigmapsf": pa.float32(),
    "jdstarthist": pa.float64(), "ndethist": pa.int32(), "sgscore1": pa.float32(), "ssdistnr": pa.float32(),
    "distpsnr1": pa.float32(),
}
#: Fink's test value for a cross-match that needs a web service.
XMATCH_TEST_VALUE = "Unknown"

#: Fink modules left out, and why (their packages are not on PyPI).
EXCLUDED_MODULES: dict[str, str] = {
    "Early SN Ia (random forest, rfscore_sigmoid_full)": "needs 'actsnfink', not on PyPI",
    "Kilonova (knscore)": "needs 'kndetect', not on PyPI",
    "Microlensing (mulens)": "needs 'LIA', not on PyPI",
}


# --------------------------------------------------------------------------- input: real alerts -> replicated table


def find_alert_files(inputs: Sequence[str | Path] = DEFAULT_INPUTS) -> list[Path]:
    """Parquet files named by ``inputs`` (files, or directories searched non-recursively), sorted per input.

    With the default inputs, a missing shared-data folder is left out (the sample remains).
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if inputs is DEFAULT_INPUTS and path == SHARED_ZTF_ALERTS and not path.exists():
            # A user's clone has no shared data: the default is then the shipped sample alone (the
            # report's "files" says which alerts were replicated).
            continue
        if path.is_dir():
            found = sorted(Path(p) for p in glob.glob(str(path / "*.parquet")))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"bench input not found: {path}")
    if not files:
        raise FileNotFoundError(f"no parquet file of real alerts found in {[str(i) for i in inputs]}")
    return files


def _candidate(table: pa.Table, name: str, dtype: pa.DataType) -> pa.Array:
    return pc.struct_field(table.column("candidate").combine_chunks(), name).cast(dtype)


def alerts_table(path: Path) -> pa.Table:
    """One file of raw (or Fink-enriched) ZTF alerts -> the flat columns every benchmarked module reads.

    ``roid`` and ``cdsxmatch`` are Fink's values when the file has them
    (Fink-enriched alerts); otherwise ``roid`` is null (computed later) and
    ``cdsxmatch`` is Fink's test value ``"Unknown"`` (the cross-match needs a
    web service).
    """
    names = pq.read_schema(path).names
    wanted = [c for c in ("objectId", "candid", "candidate", "prv_candidates", "roid", "cdsxmatch") if c in names]
    table = pq.read_table(path, columns=wanted)
    n = table.num_rows
    columns: dict[str, pa.Array] = {
        "objectId": table.column("objectId").combine_chunks().cast(pa.string()),
        "candid": table.column("candid").combine_chunks().cast(pa.int64()),
    }
    for name, dtype in HISTORY_FIELDS.items():
        columns["c" + name] = history_array(table, name, dtype)
    for name, dtype in CANDIDATE_FIELDS.items():
        columns[name] = _candidate(table, name, dtype)
    if "roid" in names:
        columns["roid"] = table.column("roid").combine_chunks().cast(pa.int32())
    else:
        columns["roid"] = pa.nulls(n, type=pa.int32())
    if "cdsxmatch" in names:
        columns["cdsxmatch"] = table.column("cdsxmatch").combine_chunks().cast(pa.string()).fill_null(
            XMATCH_TEST_VALUE)
    else:
        columns["cdsxmatch"] = pa.array([XMATCH_TEST_VALUE] * n, type=pa.string())
    columns["source_file"] = pa.array([path.name] * n, type=pa.string())
    return pa.table(columns)


def _fill_roid(table: pa.Table) -> tuple[pa.Table, str]:
    """Fill the missing ``roid`` (asteroid flag) the way Fink makes it, before its other modules run.

    Fink computes ``roid`` with its asteroid module upstream of SuperNNova and
    t2. With fink-science installed, the same function fills the alerts whose
    file has no ``roid``; without it they get 0 ("not a solar-system object").
    """
    roid = table.column("roid").combine_chunks()
    missing = roid.is_null().to_numpy(zero_copy_only=False)
    if not missing.any():
        return table, "alert files"
    try:
        with warnings.catch_warnings():  # its PandasUDFType deprecation warning is Fink's business
            warnings.simplefilter("ignore")
            from fink_science.ztf.asteroids.processor import roid_catcher
    except Exception:  # noqa: BLE001 -- any import failure means: not available here
        filled = roid.fill_null(0)
        source = f"alert files; 0 for the {int(missing.sum())} alerts without it (fink-science not installed)"
    else:
        sub = table.filter(pa.array(missing))
        pdf = sub.select(["cjd", "cmagpsf", "ndethist", "sgscore1", "ssdistnr", "distpsnr1"]).to_pandas()
        function = getattr(roid_catcher, "func", roid_catcher)
        flags = np.asarray(function(pdf["cjd"], pdf["cmagpsf"], pdf["ndethist"], pdf["sgscore1"],
                                    pdf["ssdistnr"], pdf["distpsnr1"]), dtype=np.int32)
        values = roid.to_numpy(zero_copy_only=False).astype(np.float64)
        values[missing] = flags
        filled = pa.array(values.astype(np.int32))
        source = f"alert files; fink-science roid_catcher for the {int(missing.sum())} alerts without it"
    index = table.column_names.index("roid")
    return table.set_column(index, "roid", filled), source


def load_real_alerts(inputs: Sequence[str | Path] = DEFAULT_INPUTS) -> tuple[pa.Table, dict]:
    """All real alerts of ``inputs`` as one flat table, and facts about them (files, counts, roid source)."""
    files = find_alert_files(inputs)
    tables = [alerts_table(path) for path in files]
    table = pa.concat_tables(tables)
    table, roid_source = _fill_roid(table)
    history = pc.list_value_length(table.column("cjd")).to_numpy(zero_copy_only=False)
    facts = {
        "files": [str(p) for p in files],
        "alerts_per_file": {p.name: t.num_rows for p, t in zip(files, tables)},
        "real_alerts": table.num_rows,
        "entries_per_alert": {"mean": float(np.mean(history)), "median": float(np.median(history)),
                              "max": int(np.max(history))},
        "roid_source": roid_source,
        "cdsxmatch_source": f"alert files where present, else Fink's test value '{XMATCH_TEST_VALUE}'",
    }
    return table, facts


def replicate(table: pa.Table, n_alerts: int) -> pa.Table:
    """``n_alerts`` rows: the real alerts repeated in order (the last copy truncated), each with a new ``candid``."""
    n_real = table.num_rows
    if n_real == 0:
        raise ValueError("no real alerts to replicate")
    copies = -(-int(n_alerts) // n_real)
    rows = np.tile(np.arange(n_real), copies)[: int(n_alerts)]
    out = table.take(pa.array(rows))
    index = out.column_names.index("candid")
    return out.set_column(index, "candid", pa.array(np.arange(1, len(rows) + 1, dtype=np.int64)))


def _inputs_digest(files: Sequence[Path]) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def build_input(n_alerts: int, workdir: str | Path = DEFAULT_WORKDIR,
                inputs: Sequence[str | Path] = DEFAULT_INPUTS) -> tuple[Path, dict]:
    """The replicated input as a parquet file under ``workdir`` (reused when the inputs did not change)."""
    files = find_alert_files(inputs)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    key = _inputs_digest(files)
    path = workdir / f"alerts-{n_alerts}-{key}.parquet"
    facts_path = path.with_suffix(".json")
    if path.exists() and facts_path.exists():
        return path, json.loads(facts_path.read_text(encoding="utf-8"))
    real, facts = load_real_alerts(files)
    table = replicate(real, n_alerts)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, row_group_size=50_000)
    os.replace(tmp, path)
    facts = dict(facts, alerts=table.num_rows, copies=round(table.num_rows / real.num_rows, 2))
    facts_path.write_text(json.dumps(facts, indent=1), encoding="utf-8")
    return path, facts


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    """Timings of one module: ``seconds`` per repeat for ``alerts`` alerts on ``cores`` cores."""

    name: str
    label: str
    engine: str  # "spark" or "local" (no Spark, one core)
    alerts: int
    cores: int
    seconds: list[float]
    note: str = ""
    cpu_seconds: list[float] | None = None  # CPU time of the driver, JVM and workers per repeat
    extra: dict = field(default_factory=dict)

    @property
    def median(self) -> float:
        return float(statistics.median(self.seconds))

    def rate(self, seconds: float | None = None) -> float:
        """Alerts per second per core (Fink's measure)."""
        seconds = self.median if seconds is None else seconds
        return self.alerts / seconds / self.cores

    def as_dict(self) -> dict:
        return {
            "label": self.label, "engine": self.engine, "alerts": self.alerts, "cores": self.cores,
            "seconds": {"median": self.median, "min": min(self.seconds), "max": max(self.seconds),
                        "all": list(self.seconds)},
            "alerts_per_s_per_core": self.rate(),
            "alerts_per_s_per_core_range": [self.rate(max(self.seconds)), self.rate(min(self.seconds))],
            "alerts_per_cpu_s": self.alerts / float(statistics.median(self.cpu_seconds)) if self.cpu_seconds else None,
            "cpu_seconds": list(self.cpu_seconds) if self.cpu_seconds else None,
            "note": self.note, **self.extra,
        }


class Unavailable(RuntimeError):
    """A module cannot run in this environment (a package or file is missing)."""


def _require(*modules: str) -> None:
    """Import ``modules`` or raise :class:`Unavailable` naming the first that fails and why."""
    for name in modules:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 -- ImportError, or a broken install raising anything
            raise Unavailable(f"cannot import {name} ({type(error).__name__}: {str(error)[:160]})") from error


# --------------------------------------------------------------------------- the modules (Spark columns)


def _noop_column(df, ctx: dict):
    """A pandas UDF over the four t2 columns that returns a constant: what Spark alone costs."""
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("double")
    def noop(cjd: pd.Series, cfid: pd.Series, cmagpsf: pd.Series, csigmapsf: pd.Series) -> pd.Series:
        return pd.Series(np.zeros(len(cjd)))

    return noop(F.col("cjd"), F.col("cfid"), F.col("cmagpsf"), F.col("csigmapsf"))


def _t2_column(df, ctx: dict, onsky: bool = False):
    """This project's module, the column ``apply_t2`` adds (the cut columns only with cuts)."""
    from fink_t2.processor import t2_column
    from fink_t2.scoring import Cuts

    return t2_column(df, ctx.get("model_path"), Cuts(enabled=onsky))


def _t2_scores_only_column(df, ctx: dict):
    """Diagnostic: t2's scoring on the same columns as ``t2``, returning one double (the top probability).

    Against ``t2`` it prices the ``t2`` struct (14 probabilities and two
    strings) on both sides of Arrow; against ``noop`` it prices the classification itself.
    """
    from pyspark.sql.functions import pandas_udf

    from fink_t2.processor import score_batch, t2_input_columns
    from fink_t2.runtime import get_model
    from fink_t2.scoring import Cuts

    model_path = ctx.get("model_path")
    get_model(model_path)

    @pandas_udf("double")
    def t2_top_probability(cjd: pd.Series, cfid: pd.Series, cmagpsf: pd.Series, csigmapsf: pd.Series,
                           cdiffmaglim: pd.Series, cisdiffpos: pd.Series) -> pd.Series:
        scores = score_batch((cjd, cfid, cmagpsf, csigmapsf, cdiffmaglim, cisdiffpos), model_path, Cuts())
        top = np.full(len(cjd), np.nan)
        ok = scores.classified
        top[ok] = scores.probabilities[ok].max(axis=1)
        return pd.Series(top)

    return t2_top_probability(*t2_input_columns(df, with_cut_columns=False))


def uniform_scores(n: int) -> Scores:
    """``n`` alerts 'classified' as 1/14 each: the output of diagnostics that price t2's column, not its work."""
    return Scores(np.full((n, N_CLASSES), 1.0 / N_CLASSES), np.full(n, None, dtype=object))


def _t2_io_only_column(df, ctx: dict):
    """Diagnostic: t2's input columns in (as ``t2``), a ``t2``-typed struct out (1/14 each), no scoring at all.

    Same UDF flavour as ``t2`` (Arrow on Spark >= 4.1): what Spark charges for
    moving t2's inputs and output, i.e. the most t2 can reach under this
    measure however fast its scoring becomes. Bench-only: the constant
    probabilities never leave this diagnostic.
    """
    from fink_t2.processor import t2_input_columns, t2_typed_udf

    udf = t2_typed_udf(lambda columns: uniform_scores(len(columns[0])))
    return udf(*t2_input_columns(df, with_cut_columns=False))


def fink_cuts_mask(cmagpsf, cjd, jdstarthist, roid, cdsxmatch, allowed: Sequence[str]) -> np.ndarray:
    """Fink's t2/SuperNNova selection (REFERENCE section 5) per alert, vectorised; True = keep.

    At least 2 valid magnitudes, ``jd[-1] - jdstarthist <= 90`` d, ``roid != 3``
    and ``cdsxmatch`` among ``allowed`` (the deployed module's "both g and r"
    is applied by :func:`fink_t2.fink_deployed.deployed_pandas_udf_body`).
    """
    n_valid = np.array([int(np.isfinite(np.asarray(m, dtype=np.float64)).sum()) if m is not None else 0
                        for m in cmagpsf])
    last_jd = np.array([float(j[-1]) if j is not None and len(j) else np.nan for j in cjd])
    with np.errstate(invalid="ignore"):
        recent = (last_jd - pd.to_numeric(pd.Series(jdstarthist), errors="coerce").to_numpy(float)) <= 90.0
    not_sso = pd.to_numeric(pd.Series(roid), errors="coerce").fillna(0).to_numpy() != 3
    host = pd.Series(cdsxmatch).isin(list(allowed)).to_numpy()
    return (n_valid >= 2) & recent & not_sso & host


def _deployed_column(df, ctx: dict, onsky: bool = False):
    """The Fink-as-deployed t2 procedure as a pandas UDF (model loaded and invoked inside the body)."""
    _require("george", "scipy")
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf
    from pyspark.sql.types import FloatType, MapType, StringType

    from fink_t2.classes import CLASSES
    from fink_t2.fink_deployed import DeployedModelError, deployed_pandas_udf_body, find_deployed_model
    from fink_t2.scoring import EXTRAGALACTIC_XMATCH

    try:
        path = str(find_deployed_model())
    except DeployedModelError as error:
        raise Unavailable(str(error)) from error
    names = list(CLASSES)
    allowed = tuple(EXTRAGALACTIC_XMATCH)

    @pandas_udf(MapType(StringType(), FloatType()))
    def t2_deployed(cjd: pd.Series, cfid: pd.Series, cmagpsf: pd.Series, csigmapsf: pd.Series,
                    jdstarthist: pd.Series, roid: pd.Series, cdsxmatch: pd.Series) -> pd.Series:
        mask = fink_cuts_mask(cmagpsf, cjd, jdstarthist, roid, cdsxmatch, allowed) if onsky else None
        out = deployed_pandas_udf_body(cjd, cfid, cmagpsf, csigmapsf, model_path=path, mask=mask)
        return pd.Series([dict(zip(names, p)) if p is not None else None for p in out])

    return t2_deployed(*[F.col(c) for c in ("cjd", "cfid", "cmagpsf", "csigmapsf", "jdstarthist", "roid",
                                             "cdsxmatch")])


def _snn_column(df, ctx: dict):
    """SuperNNova (SN Ia vs non-Ia), arguments as in Fink's ZTF science stage."""
    _require("fink_science.ztf.snn.processor")
    from fink_science.ztf.snn.processor import snn_ia
    from pyspark.sql import functions as F

    args = [F.col(c) for c in ("candid", "cjd", "cfid", "cmagpsf", "csigmapsf", "roid", "cdsxmatch", "jdstarthist")]
    return snn_ia(*args, F.lit("snn_snia_vs_nonia"))


def _asteroids_column(df, ctx: dict):
    """The asteroid flag ``roid``, arguments as in Fink's ZTF science stage."""
    _require("fink_science.ztf.asteroids.processor")
    from fink_science.ztf.asteroids.processor import roid_catcher
    from pyspark.sql import functions as F

    return roid_catcher(*[F.col(c) for c in ("cjd", "cmagpsf", "ndethist", "sgscore1", "ssdistnr", "distpsnr1")])


#: Monte-Carlo samples of the fast-transient rate: Fink's science stage passes 10000.
FAST_TRANSIENT_SAMPLES = 10_000


def _fast_transient_column(df, ctx: dict):
    """The fast-transient magnitude rate (struct column), arguments as in Fink's ZTF science stage."""
    _require("fink_science.ztf.fast_transient_rate.processor")
    from fink_science.ztf.fast_transient_rate.processor import magnitude_rate
    from pyspark.sql import functions as F

    args = [F.col(c) for c in ("magpsf", "sigmapsf", "jd", "jdstarthist", "fid", "cmagpsf", "csigmapsf", "cjd",
                               "cfid", "cdiffmaglim")]
    return magnitude_rate(*args, F.lit(FAST_TRANSIENT_SAMPLES), F.lit(None))


AD_FEATURES_ARGS = ("cmagpsf", "cjd", "csigmapsf", "cfid", "objectId", "cdistnr", "cmagnr", "csigmagnr", "cisdiffpos")


def _ad_features_column(df, ctx: dict):
    """Light-curve features for anomaly detection (a row-at-a-time Python UDF in Fink)."""
    _require("fink_science.ztf.ad_features.processor")
    from fink_science.ztf.ad_features.processor import extract_features_ad
    from pyspark.sql import functions as F

    return extract_features_ad(*[F.col(c) for c in AD_FEATURES_ARGS])


def pandas1_read_csv_shim() -> None:
    """Give ``pandas.read_csv`` back its ``squeeze`` argument (removed in pandas 2.0).

    fink-science 7.4.0's anomaly module calls ``read_csv(..., squeeze=True)``;
    pyspark 4 needs pandas >= 2.2, so the benchmark restores that one argument
    (the one-column frame squeezed to a Series, as pandas 1 did) in the worker.
    """
    if getattr(pd.read_csv, "_fink_t2_shim", False):
        return
    original = pd.read_csv

    def read_csv(*args, squeeze: bool = False, **kwargs):
        frame = original(*args, **kwargs)
        return frame.squeeze("columns") if squeeze else frame

    read_csv._fink_t2_shim = True  # type: ignore[attr-defined]
    pd.read_csv = read_csv


def _anomaly_column(df, ctx: dict):
    """The anomaly score (public model) on precomputed ``lc_features``, via Fink's own function."""
    _require("fink_science.ztf.anomaly_detection.processor", "onnxruntime")
    from fink_science.ztf.anomaly_detection import processor as anomaly
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf
    from pyspark.sql.types import DoubleType

    function = getattr(anomaly.anomaly_score, "func", anomaly.anomaly_score)

    @pandas_udf(DoubleType())
    def anomaly_score(lc_features: pd.Series, model: pd.Series) -> pd.Series:
        pandas1_read_csv_shim()
        return function(lc_features, model)

    return anomaly_score(F.col("lc_features"), F.lit(""))


@dataclass(frozen=True)
class Module:
    """A benchmarked module: how to build its column, on which sample, and what it is."""

    name: str
    label: str
    build: Callable | None  # (df, ctx) -> Column; None for the local ``classify``
    family: str  # "t2", "reference", "fink", "ceiling"
    slow: bool = False  # measured on --slow-alerts alerts
    needs_features: bool = False  # runs on the cached lc_features (anomaly)
    description: str = ""


MODULES: dict[str, Module] = {m.name: m for m in (
    Module("noop", "no-op pandas UDF (ceiling)", _noop_column, "ceiling",
           description="pandas UDF over cjd, cfid, cmagpsf, csigmapsf returning 0.0"),
    Module("t2", "t2, every alert", _t2_column, "t2",
           description="fink_t2.processor t2 UDF, no cuts: every alert with data classified"),
    Module("t2_onsky", "t2, Fink cuts (on-sky)", lambda df, ctx: _t2_column(df, ctx, onsky=True), "t2",
           description="fink_t2.processor t2 UDF with Cuts(enabled=True)"),
    Module("t2_scores_only", "t2 scoring, 1 double out (diagnostic)", _t2_scores_only_column, "t2",
           description="same scoring as t2, returns only the top probability: prices the t2 struct output"),
    Module("t2_io_only", "t2 inputs and output only, no scoring (diagnostic)", _t2_io_only_column, "t2",
           description="t2's input columns in, a constant t2 struct out: the most t2 can reach in this measure"),
    Module("snn", "SuperNNova snn_ia (Fink)", _snn_column, "fink",
           description="fink_science.ztf.snn snn_ia, model snn_snia_vs_nonia (its own cuts)"),
    Module("asteroids", "asteroids roid_catcher (Fink)", _asteroids_column, "fink",
           description="fink_science.ztf.asteroids roid_catcher"),
    Module("fast_transient", "fast-transient rate (Fink)", _fast_transient_column, "fink", slow=True,
           description=f"fink_science.ztf.fast_transient_rate magnitude_rate, N={FAST_TRANSIENT_SAMPLES}"),
    Module("ad_features", "light-curve features (Fink)", _ad_features_column, "fink",
           description="fink_science.ztf.ad_features extract_features_ad (row-at-a-time Python UDF)"),
    Module("anomaly", "anomaly score (Fink)", _anomaly_column, "fink", needs_features=True,
           description="fink_science.ztf.anomaly_detection anomaly_score (public model) on cached lc_features"),
    Module("fink_deployed", "Fink-deployed t2, every alert", lambda df, ctx: _deployed_column(df, ctx), "reference",
           slow=True, description="fink_t2.fink_deployed procedure: george GP per alert, 1 invoke per alert"),
    Module("fink_deployed_onsky", "Fink-deployed t2, Fink cuts", lambda df, ctx: _deployed_column(df, ctx, True),
           "reference", slow=True, description="same, only alerts passing Fink's cuts are fitted"),
    Module("classify", "fink_t2.classify, no Spark (1 core)", None, "t2",
           description="classify_with_reasons on a pandas frame in this process"),
)}
DEFAULT_MODULES: tuple[str, ...] = tuple(MODULES)
#: The "before" every ratio refers to.
REFERENCE_MODULE = "fink_deployed"
CEILING_MODULE = "noop"


# --------------------------------------------------------------------------- Spark


_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _spark_conf(cores: int, arrow_batch: int) -> dict[str, str]:
    """SQL settings applied to the session for the run (and restored afterwards)."""
    return {
        "spark.sql.execution.arrow.pyspark.enabled": "true",  # toPandas through Arrow, as fink-science-perf
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(int(arrow_batch)),
        "spark.sql.shuffle.partitions": str(int(cores)),
    }


def start_spark(cores: int, driver_memory: str, log_path: Path):
    """A local[cores] session whose JVM and Python workers log to ``log_path`` instead of the terminal.

    Workers get one BLAS/OpenMP thread each (one task = one core, as Fink's
    one-core executors), and find this package even when it is not installed.
    """
    from fink_t2.processor import spark_session

    for variable in _THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")
    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    if root not in path.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, path) if p)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    saved = os.dup(2)
    try:
        with open(log_path, "ab") as log:
            os.dup2(log.fileno(), 2)  # inherited by the JVM and, through it, by the Python workers
            spark = spark_session("fink-t2-bench", master=f"local[{int(cores)}]", conf={
                "spark.driver.memory": driver_memory,
                "spark.ui.enabled": "false",
                "spark.ui.showConsoleProgress": "false",
                "spark.python.worker.reuse": "true",
                "spark.sql.session.timeZone": "UTC",
            })
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def session_cores(spark) -> int:
    """Task slots of a local session (``local[N]``), else the default parallelism."""
    master = spark.sparkContext.master
    if master.startswith("local["):
        inside = master[len("local["):].split(",")[0].rstrip("]")
        return (os.cpu_count() or 1) if inside == "*" else int(inside)
    if master == "local":
        return 1
    return int(spark.sparkContext.defaultParallelism)


def _cached(spark, path: Path, partitions: int, columns: Sequence[str] | None = None):
    df = spark.read.parquet(str(path))
    if columns is not None:
        df = df.select(*columns)
    df = df.repartition(int(partitions)).cache()
    count = df.count()
    return df, count


def _summarize_output(name: str, values) -> dict:
    """A few facts about a module's output (outside the timed section): how many alerts it classified."""
    if name in ("t2", "t2_onsky", "t2_io_only"):
        classified = sum(1 for v in values if v is not None and v["top_class"] is not None)
        return {"classified": int(classified)}
    if name == "t2_scores_only":
        return {"classified": int(np.isfinite(np.asarray(values, dtype=float)).sum())}
    if name in ("fink_deployed", "fink_deployed_onsky"):
        return {"classified": int(sum(1 for v in values if v is not None))}
    if name == "snn":
        scores = np.asarray(values, dtype=float)
        return {"scored_nonzero": int(np.count_nonzero(scores))}
    return {}


def tree_cpu_seconds(root: int | None = None) -> float | None:
    """CPU seconds (user + system, reaped children included) of this process and all its descendants.

    In local mode that is the driver, the JVM and the Python workers: the
    work a module costs, whatever other processes on the machine take.
    Linux ``/proc`` only; None elsewhere.
    """
    root = os.getpid() if root is None else root
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except (OSError, ValueError, AttributeError):
        return None
    parent, used = {}, {}
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                data = handle.read()
        except OSError:
            continue
        fields = data[data.rindex(")") + 2:].split()  # after "pid (comm) "
        parent[int(entry)] = int(fields[1])
        used[int(entry)] = sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    tree, grown = {root}, True
    while grown:
        grown = False
        for pid, ppid in parent.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grown = True
    return sum(used.get(pid, 0) for pid in tree) / ticks


def time_spark_module(df, column, repeats: int) -> tuple[list[float], object, list[float] | None]:
    """Fink's measurement: ``df.withColumn(c, udf).select(c).toPandas()`` wall time, ``repeats`` times.

    Also returns the CPU seconds the driver, JVM and workers spent on each repeat (None off Linux).
    """
    seconds, cpu = [], []
    out = None
    for _ in range(int(repeats)):
        cpu_start = tree_cpu_seconds()
        start = time.perf_counter()
        out = df.withColumn("_bench", column).select("_bench").toPandas()
        seconds.append(time.perf_counter() - start)
        cpu_end = tree_cpu_seconds()
        cpu.append(cpu_end - cpu_start if cpu_start is not None and cpu_end is not None else float("nan"))
    return seconds, out, (None if any(np.isnan(cpu)) else cpu)


# --------------------------------------------------------------------------- classify without Spark


def _stopwatch() -> tuple[dict[str, float], Callable[[str], None]]:
    """``laps`` (stage -> perf_counter time, from "start", in order) and ``lap(stage)`` recording one."""
    laps = {"start": time.perf_counter()}
    return laps, lambda stage: laps.__setitem__(stage, time.perf_counter())


def run_classify(path: Path, repeats: int, model_path=None) -> Result:
    """``fink_t2.classify`` on every alert of ``path`` in this process, and the same split in stages.

    End to end is ``classify_with_reasons``; the split reruns its vectorised
    pass (``scoring.score_stages``) with laps: preparation (columns ->
    observations -> model input) and model (batched ``T2Model.predict``).
    """
    from fink_t2.runtime import get_model
    from fink_t2.scoring import classify_with_reasons, score_stages

    table = pq.read_table(path, columns=[*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS])
    pdf = table.to_pandas()
    model = get_model(model_path)
    total, cpu, preparation, inference = [], [], [], []
    classified = 0
    for _ in range(int(repeats)):
        start, cpu_start = time.perf_counter(), time.process_time()
        _, reasons = classify_with_reasons(pdf, model_path)
        total.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
        classified = int(reasons.isna().sum())
        laps, lap = _stopwatch()
        score_stages(model, [pdf[c] for c in REQUIRED_COLUMNS], {c: pdf[c] for c in OPTIONAL_COLUMNS}, lap=lap)
        preparation.append(laps["preparation"] - laps["start"])  # alert arrays -> model input
        inference.append(laps["interpreter"] - laps["preparation"])
    n = len(pdf)
    prep_s, model_s = float(statistics.median(preparation)), float(statistics.median(inference))
    extra = {
        "classified": classified,
        "split": {
            "preparation_s": prep_s, "model_s": model_s,
            "preparation_alerts_per_s": n / prep_s, "model_alerts_per_s": n / model_s,
            "preparation_share": prep_s / (prep_s + model_s),
            "preparation_s_all": preparation, "model_s_all": inference,
        },
    }
    return Result("classify", MODULES["classify"].label, "local", n, 1, total,
                  note="no Spark, one process, one thread", cpu_seconds=cpu, extra=extra)


# --------------------------------------------------------------------------- a fresh worker: memory and start-up

_PROBE = r"""
import json, resource, sys, time
started = time.time()


def peak_mb():
    # VmHWM: peak RSS of this process image; ru_maxrss would include the parent's from before exec.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


import numpy as np
import pandas as pd
from fink_t2.scoring import classify_with_reasons

alert = json.loads(sys.argv[1])
row = {k: [np.array(v, dtype=object if k == "cisdiffpos" else np.float64)] for k, v in alert.items()}
probabilities, reasons = classify_with_reasons(pd.DataFrame(row))
first = time.time()
out = {"started": started, "first_alert": first, "first_alert_classified": reasons.iloc[0] is None,
       "maxrss_mb_first_alert": peak_mb(),
       "tensorflow_imported": any(m == "tensorflow" or m.startswith("tensorflow.") for m in sys.modules),
       "batches": []}
import pyarrow.parquet as pq
columns = ["cjd", "cfid", "cmagpsf", "csigmapsf", "cisdiffpos", "cdiffmaglim"]
for size in json.loads(sys.argv[3]):
    # Only the first row groups are read: the probe holds what a worker holds, one batch.
    batch = next(pq.ParquetFile(sys.argv[2]).iter_batches(batch_size=size, columns=columns))
    pdf = batch.to_pandas()
    del batch
    t = time.perf_counter()
    classify_with_reasons(pdf)
    out["batches"].append({"alerts": len(pdf), "seconds": time.perf_counter() - t,
                           "maxrss_mb": peak_mb()})
import pyspark.sql  # what a Spark Python worker has loaded as well
out["maxrss_mb_with_pyspark"] = peak_mb()
out["tensorflow_imported"] = out["tensorflow_imported"] or "tensorflow" in sys.modules
print(json.dumps(out))
"""


def _probe_alert(path: Path) -> dict:
    """The input's first alert the model judges, as plain lists (None for nulls), for the probe's command line.

    An alert the model declines (a lone detection, fewer than ``scoring.MIN_DETECTIONS``) would time
    a cold start without the interpreter call.
    """
    from fink_t2.scoring import classify_with_reasons

    head = pq.read_table(path, columns=[*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]).slice(0, 200)
    reasons = classify_with_reasons(head.to_pandas())[1]
    judged = np.flatnonzero(reasons.isna().to_numpy())
    row = head.slice(int(judged[0]) if len(judged) else 0, 1)
    alert = {}
    for name in row.column_names:
        values = row.column(name).to_pylist()[0]
        alert[name] = list(values) if name == "cisdiffpos" else \
            [float("nan") if v is None else float(v) for v in values]
    return alert


def probe_worker(path: Path, batch_sizes: Sequence[int]) -> dict:
    """A fresh Python process that imports the scoring path, classifies one alert, then whole batches.

    Reports the time from process launch to the first alert classified (a
    Spark Python worker's cold start: interpreter, imports, model load), peak
    RSS after it and after each batch, and whether TensorFlow got imported.
    """
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    for variable in _THREAD_VARIABLES:
        env.setdefault(variable, "1")
    alert = json.dumps(_probe_alert(path), allow_nan=True)
    launched = time.time()
    done = subprocess.run([sys.executable, "-c", _PROBE, alert, str(path), json.dumps([int(b) for b in batch_sizes])],
                          capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"worker probe failed: {done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["interpreter_start_s"] = out.pop("started") - launched
    out["first_alert_s"] = out.pop("first_alert") - launched
    out["maxrss_mb_peak"] = max([out["maxrss_mb_first_alert"]] + [b["maxrss_mb"] for b in out["batches"]])
    return out


# --------------------------------------------------------------------------- profile of t2 inside one Arrow batch


def profile_t2(path: Path, batch_alerts: int = 10_000, repeats: int = 3, model_path=None, top: int = 14) -> dict:
    """Where one Arrow batch of t2 spends its time inside a worker, stage by stage, plus a cProfile.

    The steps of the Arrow UDF (Spark >= 4.1): Observations from the alert
    arrays as Arrow hands them over; preparation (selection + GP onto the
    grid); the interpreter; building the ``t2`` Arrow struct.
    """
    import cProfile
    import io
    import pstats

    from fink_t2.runtime import get_model
    from fink_t2.scoring import score_stages, t2_arrow

    columns = [*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]  # what the UDF gets without cuts
    table = pq.read_table(path, columns=columns).slice(0, int(batch_alerts))
    n = table.num_rows
    model = get_model(model_path)

    def one_batch(clock: dict | None) -> None:
        laps, lap = _stopwatch()
        arrays = {name: table.column(name).combine_chunks() for name in columns}  # as the Arrow UDF gets them
        scores = score_stages(model, [arrays[c] for c in REQUIRED_COLUMNS], {c: arrays[c] for c in OPTIONAL_COLUMNS},
                              lap=lap)
        t2_arrow(scores)
        lap("t2_arrow")
        marks = list(laps.items())
        if clock is not None:
            for (_, before), (name, after) in zip(marks, marks[1:]):
                clock.setdefault(name, []).append(after - before)

    one_batch(None)  # warm-up: model load, first allocations
    clock: dict[str, list[float]] = {}
    for _ in range(int(repeats)):
        one_batch(clock)
    stages = {name: float(statistics.median(values)) for name, values in clock.items()}
    total = sum(stages.values())
    profiler = cProfile.Profile()
    profiler.enable()
    one_batch(None)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).strip_dirs().sort_stats("tottime").print_stats(int(top))
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return {
        "alerts": n,
        "stages_s": stages,
        "stages_us_per_alert": {k: v / n * 1e6 for k, v in stages.items()},
        "stages_share": {k: v / total for k, v in stages.items()},
        "total_s": total,
        "alerts_per_s": n / total,
        "cprofile_top": lines[start:start + int(top) + 1],
    }


# --------------------------------------------------------------------------- machine facts

_DISTRIBUTIONS = ("numpy", "pandas", "pyarrow", "pyspark", "ai-edge-litert", "tflite-runtime", "scipy", "george",
                  "fink-science", "fink-utils", "supernnova", "torch", "light-curve", "onnxruntime", "matplotlib")


def machine_facts() -> dict:
    """Cores, CPU, load, Python/Java and library versions: what a reader needs to compare runs."""
    from importlib import metadata

    versions = {}
    for name in _DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30).stderr.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        java = None
    return {
        "cpu_count": os.cpu_count(), "cpu": cpu, "platform": platform.platform(),
        "python": platform.python_version(), "java": java, "versions": versions,
        "thread_env": {v: os.environ.get(v) for v in _THREAD_VARIABLES},
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def model_facts(model_path=None) -> dict:
    """The t2 model measured: file, size, sha256, input shape, variant."""
    from fink_t2.runtime import get_model

    model = get_model(model_path)
    meta = model.metadata
    return {"path": str(model.path), "size_bytes": meta.get("size_bytes"), "sha256": meta.get("sha256"),
            "input_shape": [int(model.input_shape[0]), int(model.input_shape[1])],
            "variant": meta.get("variant"), "num_threads": model.num_threads}


# --------------------------------------------------------------------------- the run


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _check_modules(modules: Sequence[str]) -> list[str]:
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        raise ValueError(f"unknown module(s) {unknown}; choose among {list(MODULES)}")
    return list(dict.fromkeys(modules))


def run_benchmark(alerts: int = 200_000, slow_alerts: int = 2_000, repeats: int = 3,
                  modules: Sequence[str] = DEFAULT_MODULES, cores: int | None = None,
                  arrow_batch: int = ARROW_BATCH_FINK_PERF, partitions: int | None = None,
                  workdir: str | Path = DEFAULT_WORKDIR, inputs: Sequence[str | Path] = DEFAULT_INPUTS,
                  model_path=None, driver_memory: str = "4g", spark=None, profile_alerts: int = 10_000,
                  probe: bool = True, log: Callable[[str], None] = _log) -> dict:
    """Run the benchmark; returns the JSON-ready report (see the module docstring).

    ``spark``: an existing session to use (its ``local[N]`` gives the cores);
    otherwise a ``local[cores]`` session is started and stopped here.
    """
    modules = _check_modules(modules)
    if alerts < 1 or repeats < 1 or slow_alerts < 1:
        raise ValueError("--alerts, --slow-alerts and --repeats must be positive")
    workdir = Path(workdir)
    facts = machine_facts()
    path, input_facts = build_input(int(alerts), workdir, inputs)
    slow_n = min(int(slow_alerts), int(alerts))
    slow_path, _ = build_input(slow_n, workdir, inputs)
    log(f"input: {input_facts['alerts']} alerts ({input_facts['real_alerts']} real ones replicated) in {path}")
    results: dict[str, Result] = {}
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    spark_modules = [m for m in modules if MODULES[m].build is not None]
    config: dict = {"alerts": int(alerts), "slow_alerts": slow_n, "repeats": int(repeats), "modules": modules,
                    "arrow_max_records_per_batch": int(arrow_batch)}
    if spark_modules:
        own = spark is None
        if own:
            spark = start_spark(int(cores or os.cpu_count() or 1), driver_memory, workdir / "spark.log")
            log(f"Spark {spark.version} on {spark.sparkContext.master} (JVM and worker logs: {workdir / 'spark.log'})")
        n_cores = session_cores(spark)
        n_partitions = int(partitions or n_cores)
        config.update(cores=n_cores, partitions=n_partitions, master=spark.sparkContext.master,
                      spark=spark.version, driver_memory=driver_memory if own else None)
        conf = _spark_conf(n_cores, arrow_batch)
        saved = {key: spark.conf.get(key, None) for key in conf}
        for key, value in conf.items():
            spark.conf.set(key, value)
        frames: dict[str, object] = {}
        warmed = False
        try:
            for name in spark_modules:
                module = MODULES[name]
                kind = "slow" if module.slow else "big"
                if kind not in frames:
                    frames[kind], count = _cached(spark, slow_path if module.slow else path, n_partitions)
                    log(f"cached {count} alerts in {n_partitions} partitions ({kind} sample)")
                    if not warmed:
                        # Start the Python workers once (untimed), so no module pays their start-up alone.
                        time_spark_module(frames[kind], _noop_column(frames[kind], {}), 1)  # untimed
                        warmed = True
                df = frames[kind]
                ctx = {"model_path": model_path}
                try:
                    if module.needs_features:
                        if "features" not in frames:
                            from pyspark.sql import functions as F

                            features = df.withColumn("lc_features", _ad_features_column(df, ctx))
                            frames["features"], _ = _cached_frame(features.select(F.col("lc_features")))
                            log("cached lc_features (ad_features run once, untimed)")
                        df = frames["features"]
                    column = module.build(df, ctx)
                except Unavailable as error:
                    skipped[name] = str(error)
                    log(f"skipping {name}: {error}")
                    continue
                n = input_facts["alerts"] if not module.slow else slow_n
                log(f"{name}: {repeats} x {n} alerts ...")
                try:
                    seconds, out, cpu = time_spark_module(df, column, repeats)
                except Exception as error:  # noqa: BLE001 -- another project's module failing must not end the run
                    if module.family in ("t2", "ceiling"):
                        raise
                    failed[name] = f"{type(error).__name__}: {str(error)[:300]}"
                    log(f"{name} FAILED: {failed[name]}")
                    continue
                note = f"measured on {n} alerts (--slow-alerts)" if module.slow else ""
                result = Result(name, module.label, "spark", len(out), n_cores, seconds, note=note, cpu_seconds=cpu)
                result.extra.update(_summarize_output(name, out["_bench"].tolist()))
                results[name] = result
                log(f"{name}: median {result.median:.2f} s -> {result.rate():,.0f} alerts/s/core")
        finally:
            for key, value in saved.items():
                if value is None:
                    spark.conf.unset(key)
                else:
                    spark.conf.set(key, value)
            for frame in frames.values():
                frame.unpersist()
            if own:
                spark.stop()
    else:
        config.update(cores=int(cores or os.cpu_count() or 1))
    if "classify" in modules:
        log(f"classify: {repeats} x {input_facts['alerts']} alerts without Spark ...")
        results["classify"] = run_classify(path, repeats, model_path)
        log(f"classify: {results['classify'].rate():,.0f} alerts/s (1 core)")
    report: dict = {
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": None,
        "config": config, "input": input_facts, "machine": facts, "model": model_facts(model_path),
        "modules": {}, "skipped": skipped, "failed": failed, "excluded": dict(EXCLUDED_MODULES),
    }
    try:
        from fink_t2.fink_deployed import DEPLOYED_MODEL_NAME, DEPLOYED_MODEL_SHA256

        report["deployed_model"] = {"file": DEPLOYED_MODEL_NAME, "sha256": DEPLOYED_MODEL_SHA256}
    except ImportError:  # pragma: no cover -- the module is part of the package
        pass
    _add_ratios(results)
    report["modules"] = {name: result.as_dict() for name, result in results.items()}
    if probe:
        per_worker = -(-int(alerts) // max(int(config.get("partitions", 1)), 1))
        sizes = sorted({min(SPARK_DEFAULT_ARROW_BATCH, int(alerts)), min(int(arrow_batch), per_worker)})
        log(f"worker probe: fresh process, 1 alert then batches of {sizes} ...")
        report["worker"] = probe_worker(path, sizes)
    if "t2" in modules or "classify" in modules:
        log(f"profile: one batch of {min(profile_alerts, int(alerts))} alerts, stage by stage ...")
        report["profile"] = profile_t2(path, min(int(profile_alerts), int(alerts)), model_path=model_path)
    report["targets"] = evaluate_targets(report)
    report["lsst"] = lsst_arithmetic(report)
    report["machine"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return report


def _cached_frame(df):
    df = df.cache()
    return df, df.count()


def _add_ratios(results: dict[str, Result]) -> None:
    """Each module's rate over the reference procedure's and over the no-op ceiling's."""
    references = {name: results[name] for name in (REFERENCE_MODULE, "fink_deployed_onsky", CEILING_MODULE)
                  if name in results}
    for result in results.values():
        result.extra["ratio_to"] = {name: result.rate() / ref.rate() for name, ref in references.items()}


def _rate(report: dict, name: str) -> float | None:
    module = report["modules"].get(name)
    return module["alerts_per_s_per_core"] if module else None


def evaluate_targets(report: dict) -> list[dict]:
    """Issue 6's targets against this run (None where the run lacks a module)."""
    rate = {name: _rate(report, name) for name in MODULES}
    cpu_rate = {name: (report["modules"].get(name) or {}).get("alerts_per_cpu_s") for name in MODULES}

    def ratio(a: str, b: str, rates: dict | None = None) -> float | None:
        rates = rate if rates is None else rates
        return rates[a] / rates[b] if rates[a] and rates[b] else None

    def item(target: str, measured, threshold: float, unit: str, higher_is_better: bool = True,
             pair: tuple[str, str] | None = None) -> dict:
        met = None if measured is None else (measured >= threshold if higher_is_better else measured < threshold)
        out = {"target": target, "measured": measured, "threshold": threshold, "unit": unit, "met": met}
        if pair is not None:  # the same ratio from CPU time, which other processes' load does not inflate
            out["measured_cpu"] = ratio(*pair, rates=cpu_rate)
        return out

    worker = report.get("worker") or {}
    default_batch = [b for b in worker.get("batches", []) if b["alerts"] <= SPARK_DEFAULT_ARROW_BATCH]
    batch_rss = max(b["maxrss_mb"] for b in default_batch) if default_batch else worker.get("maxrss_mb_first_alert")
    batch_size = max((b["alerts"] for b in default_batch), default=1)
    items = [
        item("classify without Spark, 1 core, end to end", rate["classify"], TARGET_CLASSIFY_RATE, "alerts/s"),
        item("Spark, every alert classified: t2 / Fink-deployed", ratio("t2", "fink_deployed"), TARGET_VS_DEPLOYED,
             "x", pair=("t2", "fink_deployed")),
        item("Spark: t2 (every alert) / SuperNNova (its cuts)", ratio("t2", "snn"), 1.0, "x", pair=("t2", "snn")),
        item("Spark: t2 on-sky / SuperNNova (same cuts)", ratio("t2_onsky", "snn"), 1.0, "x",
             pair=("t2_onsky", "snn")),
        item("Spark: t2 (every alert) / no-op ceiling", ratio("t2", "noop"), TARGET_VS_NOOP, "x",
             pair=("t2", "noop")),
        item(f"worker peak RSS, model loaded, Arrow batches of {batch_size:,} alerts (Spark's default: "
             f"{SPARK_DEFAULT_ARROW_BATCH:,})",
             batch_rss, TARGET_WORKER_RSS_MB, "MB", higher_is_better=False),
        item("worker start -> first alert classified", worker.get("first_alert_s"), TARGET_FIRST_ALERT_S, "s",
             higher_is_better=False),
    ]
    if worker:
        items.append({"target": "no TensorFlow import on the scoring path",
                      "measured": worker.get("tensorflow_imported"), "threshold": False, "unit": "",
                      "met": not worker.get("tensorflow_imported")})
    return items


def lsst_arithmetic(report: dict, alerts_per_night: int = LSST_ALERTS_PER_NIGHT, night_hours: float = 10.0) -> dict:
    """Cores needed for LSST's alerts of a night, per module, at the measured per-core rates."""
    out = {"alerts_per_night": alerts_per_night, "night_hours": night_hours, "modules": {}}
    for name, module in report["modules"].items():
        rate = module["alerts_per_s_per_core"]
        core_hours = alerts_per_night / rate / 3600.0
        out["modules"][name] = {"alerts_per_s_per_core": rate, "core_hours_per_night": core_hours,
                                "cores_for_night": core_hours / night_hours}
    return out


# --------------------------------------------------------------------------- output: table, plot, report


def _fmt(value, spec: str = ",.0f", empty: str = "-") -> str:
    return empty if value is None else format(value, spec)


def results_table(report: dict, markdown: bool = False) -> str:
    """The per-module table (alerts, seconds, alerts/s/core, ratios), plain text or markdown."""
    header = ["module", "alerts", "median s", "min s", "max s", "alerts/s/core", "x Fink-deployed", "x no-op",
              "alerts/CPU-s", "note"]
    rows = []
    for m in report["modules"].values():
        ratios = m.get("ratio_to", {})
        note = m.get("note", "")
        if "classified" in m:
            note = (note + "; " if note else "") + f"{m['classified']} classified"
        rows.append([m["label"], f"{m['alerts']:,}", f"{m['seconds']['median']:.2f}", f"{m['seconds']['min']:.2f}",
                     f"{m['seconds']['max']:.2f}", _fmt(m["alerts_per_s_per_core"]),
                     _fmt(ratios.get(REFERENCE_MODULE), ",.1f"), _fmt(ratios.get(CEILING_MODULE), ".3f"),
                     _fmt(m.get("alerts_per_cpu_s")), note])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) if i in (0, 9) else str(c).rjust(w) for i, (c, w) in
                       enumerate(zip(row, widths))).rstrip() for row in [header] + rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def targets_table(report: dict, markdown: bool = False) -> str:
    rows = []
    for t in report.get("targets", []):
        measured = t["measured"]
        if isinstance(measured, bool):
            shown = str(measured)
        elif measured is None:
            shown = "not measured"
        else:
            shown = f"{measured:,.3g} {t['unit']}".strip() if measured < 100 else f"{measured:,.0f} {t['unit']}"
        threshold = t["threshold"]
        if isinstance(threshold, bool):
            bound = str(threshold)
        else:
            sign = "<" if t["unit"] in ("MB", "s") else ">="
            bound = f"{sign} {threshold:,g} {t['unit']}".strip()
        met = {True: "met", False: "NOT met", None: "-"}[t["met"]]
        cpu = t.get("measured_cpu")
        rows.append([t["target"], bound, shown, met, "-" if cpu is None else f"{cpu:,.3g} x"])
    if markdown:
        lines = ["| target | required | measured (Fink's wall-time measure) | | same ratio from CPU time |",
                 "|---|---|---|---|---|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    return "\n".join(f"  {r[3]:<8} {r[0]}: {r[2]} (required {r[1]})" + (f"; from CPU time {r[4]}" if r[4] != "-"
                                                                         else "") for r in rows)


_COLOURS = {"t2": "#1f77b4", "reference": "#d62728", "fink": "#7f7f7f", "ceiling": "#2ca02c"}


def plot_throughput(report: dict, path: str | Path) -> Path:
    """Bar chart of alerts/s/core per module (log axis, min-max error bars) with Fink's 75/s/core ZTF line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["modules"])
    modules = [report["modules"][n] for n in names]
    rates = [m["alerts_per_s_per_core"] for m in modules]
    low = [r - m["alerts_per_s_per_core_range"][0] for r, m in zip(rates, modules)]
    high = [m["alerts_per_s_per_core_range"][1] - r for r, m in zip(rates, modules)]
    labels = [m["label"] + (f"\n({m['alerts']:,} alerts)" if m.get("note", "").startswith("measured on") else "")
              for m in modules]
    colours = [_COLOURS.get(MODULES[n].family, "#999999") if n in MODULES else "#999999" for n in names]
    fig, ax = plt.subplots(figsize=(11, 6.5))
    positions = np.arange(len(names))
    ax.bar(positions, rates, color=colours, alpha=0.8, yerr=[low, high], capsize=4, ecolor="black")
    for x, rate, up in zip(positions, rates, high):
        ax.text(x, (rate + up) * 1.08, f"{rate:,.0f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(FINK_ZTF_RATE, ls="--", color="black", lw=1)
    ax.text(-0.4, FINK_ZTF_RATE * 0.92,
            f"ZTF need: {FINK_ZTF_RATE:g} alerts/s/core (600 alerts/exposure in 1 s on 8 cores)",
            ha="left", va="top", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(min(rates + [FINK_ZTF_RATE]) / 3, max(rates) * 4)
    ax.set_xticks(positions)
    ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("alerts / second / core")
    config = report["config"]
    ax.set_title(f"On-sky single-core throughput, {config.get('alerts', 0):,} replicated real ZTF alerts, "
                 f"local[{config.get('cores')}], median of {config.get('repeats')}", fontsize=10)
    ax.grid(axis="y", alpha=0.3, which="both")
    from matplotlib.patches import Patch

    legend = [Patch(color=c, label=t) for t, c in (("t2 (this project)", _COLOURS["t2"]),
                                                  ("Fink-as-deployed t2", _COLOURS["reference"]),
                                                  ("Fink modules (fink-science 7.4.0)", _COLOURS["fink"]),
                                                  ("no-op ceiling", _COLOURS["ceiling"]))]
    ax.legend(handles=legend, loc="upper right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- command line


def list_modules() -> str:
    lines = ["module               family     sample   what"]
    for m in MODULES.values():
        lines.append(f"{m.name:<20} {m.family:<10} {'slow' if m.slow else 'full':<8} {m.description}")
    lines.append("")
    lines.append("Left out (packages not on PyPI): " + "; ".join(f"{k}: {v}" for k, v in EXCLUDED_MODULES.items()))
    return "\n".join(lines)


def print_summary(report: dict, stream=None) -> None:
    """The results table, the targets, the skipped modules and the worker probe, for the terminal."""
    stream = stream or sys.stdout
    config = report["config"]
    print(f"\nThroughput ({config.get('alerts'):,} alerts, local[{config.get('cores')}], "
          f"median of {config.get('repeats')}; alerts/s/core = alerts / median s / cores)\n", file=stream)
    print(results_table(report), file=stream)
    slow = [m["label"] for m in report["modules"].values() if m.get("note", "").startswith("measured on")]
    if slow:
        print(f"\nMeasured on {config.get('slow_alerts'):,} alerts only (slow): {', '.join(slow)}", file=stream)
    for name, reason in report.get("skipped", {}).items():
        print(f"skipped {name}: {reason}", file=stream)
    for name, reason in report.get("failed", {}).items():
        print(f"FAILED {name}: {reason}", file=stream)
    print("left out (packages not on PyPI): " + ", ".join(report.get("excluded", {})), file=stream)
    worker = report.get("worker")
    if worker:
        batches = ", ".join(f"{b['alerts']:,} alerts -> {b['maxrss_mb']:.0f} MB" for b in worker["batches"])
        print(f"\nFresh worker: first alert classified {worker['first_alert_s']:.2f} s after launch, "
              f"peak RSS {worker['maxrss_mb_first_alert']:.0f} MB after it; batches: {batches}; "
              f"TensorFlow imported: {worker['tensorflow_imported']}", file=stream)
    print("\nTargets:\n" + targets_table(report), file=stream)
    load = report["machine"].get("load_average_start")
    if load:
        print(f"\nload average at start {load[0]:.2f}, at end {report['machine'].get('load_average_end', [0])[0]:.2f} "
              f"on {report['machine']['cpu_count']} cores", file=stream)


def run_from_args(args) -> int:
    """``fink-t2 bench``: measure (or reload ``--from-json``), print, and write JSON / plot / report."""
    if getattr(args, "list", False):
        print(list_modules())
        return 0
    if args.from_json:
        report = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        report["targets"] = evaluate_targets(report)  # the current definitions, on the saved numbers
    else:
        modules = [m.strip() for m in args.modules.split(",") if m.strip()] if args.modules else DEFAULT_MODULES
        report = run_benchmark(
            alerts=args.alerts, slow_alerts=args.slow_alerts, repeats=args.repeats, modules=modules,
            cores=args.cores, arrow_batch=args.arrow_batch or ARROW_BATCH_FINK_PERF, partitions=args.partitions,
            workdir=args.workdir or DEFAULT_WORKDIR, inputs=args.input or DEFAULT_INPUTS, model_path=args.model,
            driver_memory=args.driver_memory, probe=not args.no_probe)
        report["command"] = "fink-t2 bench " + " ".join(sys.argv[2:]) if "bench" in sys.argv[1:2] else None
    print_summary(report)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1, default=float), encoding="utf-8")
        print(f"\nwrote {args.json}")
    if args.plot:
        try:
            print(f"wrote {plot_throughput(report, args.plot)}")
        except ImportError:
            print("no plot: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
    if args.report:
        print(f"wrote {write_report(report, args.report, plot=args.plot, json_path=args.json)}")
    return 0


# --------------------------------------------------------------------------- markdown report

_STAGE_NAMES = {"observations": "Arrow alert arrays -> observations (flatten, FLUXCAL, upper limits)",
                "preparation": "preparation (point selection, GP onto the time grid)",
                "interpreter": "LiteRT interpreter (batched `invoke`)",
                "t2_arrow": "building the `t2` Arrow struct (14 float columns and two strings)"}


def _spark_decomposition(report: dict) -> list[str]:
    """Per-alert core time in Spark split into Spark itself, t2's scoring and t2's output column."""
    modules = report["modules"]
    if not all(name in modules for name in ("noop", "t2")):
        return []

    def us(name: str) -> float:
        return 1e6 / modules[name]["alerts_per_s_per_core"]

    def cpu(name: str) -> float | None:
        rate = modules[name].get("alerts_per_cpu_s")
        return 1e6 / rate if rate else None

    def both(a: str, b: str | None = None) -> str:
        wall = us(a) - (us(b) if b else 0.0)
        ca, cb = cpu(a), (cpu(b) if b else 0.0)
        return f"{wall:,.1f} | " + ("-" if ca is None or cb is None else f"{ca - cb:,.1f}")

    lines = ["", "In Spark, per alert (from the table above: wall time x cores, and CPU time of the driver, JVM "
             "and workers):", "",
             "| part | us per alert per core (wall) | CPU us per alert | how |", "|---|---|---|---|",
             f"| Spark alone: cache scan, JVM -> Python Arrow transfer of 4 columns, `toPandas` | {both('noop')} | "
             "no-op UDF |"]
    if "t2_scores_only" in modules:
        lines += [f"| t2 scoring (2 more input columns, observations, preparation, interpreter) | "
                  f"{both('t2_scores_only', 'noop')} | `t2_scores_only` - no-op |",
                  "| the `t2` struct output (14 probabilities and two strings built, sent to the JVM, collected "
                  f"by `toPandas`) | {both('t2', 't2_scores_only')} | `t2` - `t2_scores_only` |"]
    else:
        lines.append(f"| t2 (scoring and output) | {both('t2', 'noop')} | t2 - no-op |")
    if "t2_io_only" in modules:
        lines += [f"| of which moving t2's inputs and output, with no scoring | {both('t2_io_only', 'noop')} | "
                  "`t2_io_only` - no-op |",
                  f"| of which t2's own work (observations, preparation, interpreter, output built) | "
                  f"{both('t2', 't2_io_only')} | `t2` - `t2_io_only` |"]
    lines.append(f"| **t2 in total** | {both('t2')} | |")
    if "t2_io_only" in modules:
        bound = modules["t2_io_only"]["alerts_per_s_per_core"] / modules["noop"]["alerts_per_s_per_core"]
        lines += ["", f"Even with free scoring, a module with t2's input columns and its output column reaches "
                  f"{bound:.2f} of the no-op ceiling in this measure (`t2_io_only`): the rest of the gap between "
                  "`t2` and the ceiling is t2's own work. Why no t2 reaches 0.5 of the ceiling in this measure, "
                  "whatever its output type (an unnamed array included): `python benchmarks/ceiling_bound.py`, "
                  "discussed in [model_search.md](model_search.md#the-no-op-ceiling-target)."]
    lines += ["", "Differences of wall times inherit the noise of both runs (a negative entry means the machine was "
              "busier during one of them); the CPU-time column is the one to read."]
    return lines


def _profile_section(report: dict) -> list[str]:
    profile = report.get("profile")
    lines: list[str] = []
    if profile:
        lines += [f"One batch of {profile['alerts']:,} alerts through the worker's steps in one process "
                  f"(median of 3 after a warm-up): {profile['total_s'] * 1e3:,.0f} ms, "
                  f"{profile['alerts_per_s']:,.0f} alerts/s on one core.", "",
                  "| stage | ms per batch | us per alert | share |", "|---|---|---|---|"]
        for key, seconds in profile["stages_s"].items():
            lines.append(f"| {_STAGE_NAMES.get(key, key)} | {seconds * 1e3:,.1f} | "
                         f"{profile['stages_us_per_alert'][key]:,.1f} | {profile['stages_share'][key]:.0%} |")
    lines += _spark_decomposition(report)
    if profile:
        stages = profile["stages_share"]
        biggest = max(stages, key=stages.get)
        lines += ["", f"The largest in-process stage is **{_STAGE_NAMES.get(biggest, biggest)}** "
                  f"({stages[biggest]:.0%} of the batch). cProfile of one batch, top functions by own time:", "",
                  "```text", *profile["cprofile_top"], "```"]
    return lines or ["(not profiled in this run)"]


def _targets_notes(report: dict) -> list[str]:
    """What the SuperNNova comparison means, and which measure to trust on a shared machine."""
    modules = report["modules"]
    lines = []
    snn, onsky = modules.get("snn"), modules.get("t2_onsky")
    if snn and onsky and onsky.get("classified"):
        passed = onsky["classified"]
        share = passed / onsky["alerts"]
        lines.append(f"* SuperNNova runs its network only on the alerts that pass Fink's cuts ({share:.0%} of this "
                     f"input: t2 with the same cuts classifies {passed:,}); the other alerts cost it a vectorised "
                     "mask. `t2, every alert` classifies all of them, so only `t2, Fink cuts` compares like with like.")
        if snn.get("alerts_per_cpu_s") and modules.get("t2", {}).get("alerts_per_cpu_s"):
            snn_us = 1e6 / snn["alerts_per_cpu_s"] / share
            t2_us = 1e6 / modules["t2"]["alerts_per_cpu_s"]
            lines.append(f"* Per alert actually classified (CPU time): SuperNNova about {snn_us:,.0f} us, t2 about "
                         f"{t2_us:,.0f} us (t2 measured with every alert classified).")
    lines.append("* The wall-time ratios move with the load other processes put on the machine during each module; "
                 "the CPU-time ratios do not, and are the ones to compare between runs.")
    return lines + [""]


def _method(report: dict) -> list[str]:
    config, inputs = report["config"], report["input"]
    excluded = "; ".join(f"{k} ({v})" for k, v in report.get("excluded", {}).items())
    return [
        f"* **Input**: the {inputs['real_alerts']} real ZTF alerts of `data/alerts_sample.parquet` and "
        "`../shared/data/ztf_alerts/*.parquet` (schemas 3.3 and 4.02, raw and Fink-enriched; "
        f"{inputs['entries_per_alert']['median']:.0f} history entries per alert in the median, up to "
        f"{inputs['entries_per_alert']['max']}), replicated in order to {inputs['alerts']:,} alerts, each copy "
        "with a fresh `candid`. Fink's `c*` columns (history then current value, as fink-utils `concat_col`) and "
        "the candidate fields the modules read are built once with pyarrow (ZTF Avro types) and cached as parquet. "
        f"`roid`: {inputs['roid_source']}. `cdsxmatch`: {inputs['cdsxmatch_source']} (the replicated sample is "
        "therefore not a night's mix: it is richer in Fink-enriched, cross-matched alerts).",
        f"* **Spark** {config.get('spark')}, one session for everything: `{config.get('master')}`; the input read, "
        f"repartitioned into {config.get('partitions')} partitions and cached, as fink-science-perf does; "
        "`spark.sql.execution.arrow.pyspark.enabled=true`, `spark.sql.execution.arrow.maxRecordsPerBatch="
        f"{config.get('arrow_max_records_per_batch'):,}` (fink-science-perf's values); one BLAS/OpenMP thread per "
        "Python worker (one task per core, like Fink's one-core executors). One untimed no-op pass first starts "
        "the Python workers.",
        f"* **Measure** (fink-science-perf's): wall time of `df.withColumn(c, udf(*cols)).select(c).toPandas()`, "
        f"{config.get('repeats')} times per module; **alerts/s/core = alerts / median seconds / cores**. "
        "\"On-sky\": every alert counts, also those a module's cuts reject cheaply. The first repeat of a module "
        "includes its imports and model loads in each worker; the median does not. **alerts/CPU-s** = alerts / "
        "CPU seconds (user + system) of the driver, the JVM and the Python workers during the median repeat: "
        "unlike wall time it does not drop when other processes take the cores.",
        "* **t2**: `fink_t2.processor.make_t2_udf` on the columns `apply_t2` passes: with no cuts (every alert "
        "with data classified) the six light-curve columns `cjd, cfid, cmagpsf, csigmapsf, cdiffmaglim, cisdiffpos`; "
        "with `Cuts(enabled=True)` (Fink's t2/SuperNNova cuts: >= 2 detections, history <= 90 d, `roid != 3`, "
        "extragalactic-compatible `cdsxmatch`) also `jdstarthist, roid, cdsxmatch`. Diagnostics: `t2_scores_only` "
        "is the same scoring returning one double, to price the `t2` output column; `t2_io_only` takes t2's "
        "columns and returns a constant `t2` struct without scoring, to price moving t2's data.",
        "* **Fink-deployed t2** (the \"before\"): `fink_t2.fink_deployed.deployed_pandas_udf_body` in a pandas UDF: "
        "the deployed TFLite model (fink-science 7.4.0) opened inside the UDF body, then per alert a george GP fit "
        "with L-BFGS-B, per-object robust scaling and one `invoke` (REFERENCE section 4, faults 4 and 5); on every "
        "alert it accepts (>= 2 detections, g and r), and with Fink's cuts first.",
        "* **Fink's modules** from the PyPI wheel fink-science 7.4.0, with the arguments of Fink's ZTF science stage "
        "(`fink_broker/ztf/science.py`): SuperNNova `snn_ia(candid, cjd, cfid, cmagpsf, csigmapsf, roid, cdsxmatch, "
        "jdstarthist, 'snn_snia_vs_nonia')`; asteroids `roid_catcher(cjd, cmagpsf, ndethist, sgscore1, ssdistnr, "
        "distpsnr1)`; fast transient `magnitude_rate(magpsf, sigmapsf, jd, jdstarthist, fid, cmagpsf, csigmapsf, "
        f"cjd, cfid, cdiffmaglim, {FAST_TRANSIENT_SAMPLES}, None)`; light-curve features `extract_features_ad("
        "cmagpsf, cjd, csigmapsf, cfid, objectId, cdistnr, cmagnr, csigmagnr, cisdiffpos)` (a row-at-a-time Python "
        "UDF); anomaly `anomaly_score(lc_features, '')` (the public model; Fink runs six) on `lc_features` computed "
        "once beforehand, untimed, through a wrapper that gives `pandas.read_csv` back the `squeeze` argument "
        "pandas 2 removed (pyspark 4 needs pandas >= 2.2). Left out, their packages not being on PyPI: "
        f"{excluded}.",
        f"* **Smaller sample**: the slow modules (Fink-deployed t2, fast transient) run on the first "
        f"{config.get('slow_alerts'):,} alerts of the same input (every real alert about "
        f"{config.get('slow_alerts', 0) / max(inputs['real_alerts'], 1):.1f} times); their rates are per alert like "
        "the others, from fewer alerts.",
        "* **no-op**: a pandas UDF over `cjd, cfid, cmagpsf, csigmapsf` returning 0.0: the most any Spark module can "
        "reach on this machine (the ceiling).",
        "* **classify**: `fink_t2.scoring.classify_with_reasons` on the whole input as one pandas frame in the driver "
        "process (one core, one thread), then the same stages timed apart: preparation (alert arrays -> "
        "observations -> model input) and model (`T2Model.predict`).",
        "* **Worker probe**: a fresh `python -c` process imports `fink_t2.scoring`, classifies one alert (time from "
        "launch; peak RSS from `VmHWM`; TensorFlow must stay unimported), then whole batches the size of Spark's "
        "default Arrow batch and of this run's, then imports pyspark as a Spark worker has it.",
        "* **Profile**: the worker's steps on one batch, timed stage by stage and under cProfile, in one process.",
    ]


def write_report(report: dict, path: str | Path, plot: str | Path | None = None, json_path: str | Path | None = None
                 ) -> Path:
    """``docs/performance.md`` from a run: method, results, targets, profile, LSST arithmetic, machine."""
    path = Path(path)
    machine, model, modules = report["machine"], report["model"], report["modules"]
    command = report.get("command") or ("fink-t2 bench --json benchmarks/results/throughput.json "
                                        "--plot docs/throughput.png --report docs/performance.md")
    lines = [
        "# Throughput of t2 against Fink's science modules", "",
        f"Generated by `fink-t2 bench` on {report['generated']}: do not edit by hand, rerun it (about 15 minutes on "
        "2 cores, in an environment with the `bench` extra; without it the Fink modules are skipped):", "",
        "```bash", command, "```", "",
        f"Model measured: `{Path(model['path']).name}`, {model['size_bytes']:,} bytes, sha256 `{model['sha256']}`, "
        f"input {model['input_shape'][0]} time steps x {model['input_shape'][1]} bands, variant "
        f"`{model.get('variant')}`, {model.get('num_threads')} interpreter thread. Rerun the command whenever the "
        "shipped model changes.", "",
        "## Method", "", *_method(report), "",
        "## Results", "", results_table(report, markdown=True), "",
    ]
    if plot:
        rel = os.path.relpath(Path(plot).resolve(), path.resolve().parent)
        lines += [f"![alerts/s/core per module, log scale, with Fink's 75 alerts/s/core ZTF line]({rel})", ""]
    skipped = report.get("skipped") or {}
    if skipped:
        lines += ["Skipped in this run: " + "; ".join(f"`{k}`: {v}" for k, v in skipped.items()) + ".", ""]
    failed = report.get("failed") or {}
    if failed:
        lines += ["Failed in this run: " + "; ".join(f"`{k}`: {v}" for k, v in failed.items()) + ".", ""]
    classify = modules.get("classify")
    if classify:
        split = classify["split"]
        lines += [f"`classify` without Spark: {classify['alerts_per_s_per_core']:,.0f} alerts/s end to end on one "
                  f"core; measured apart, preparation runs at {split['preparation_alerts_per_s']:,.0f} alerts/s and "
                  f"the model at {split['model_alerts_per_s']:,.0f} alerts/s (preparation "
                  f"{split['preparation_share']:.0%} of their sum).", ""]
    worker = report.get("worker")
    if worker:
        batches = "; ".join(f"{b['alerts']:,} alerts: {b['maxrss_mb']:.0f} MB ({b['seconds']:.2f} s)"
                            for b in worker["batches"])
        lines += [f"Fresh worker: Python running {worker['interpreter_start_s']:.2f} s after launch, first alert "
                  f"classified {worker['first_alert_s']:.2f} s after launch with a peak RSS of "
                  f"{worker['maxrss_mb_first_alert']:.0f} MB; peak RSS after whole batches: {batches}; with pyspark "
                  f"imported as well: {worker['maxrss_mb_with_pyspark']:.0f} MB. TensorFlow imported: "
                  f"{worker['tensorflow_imported']}.", ""]
    lines += ["## Targets", "", targets_table(report, markdown=True), ""]
    lines += _targets_notes(report)
    lines += ["## Where t2's time goes", ""]
    lines += _profile_section(report)
    lsst = report.get("lsst", {})
    lines += ["", "## LSST arithmetic", "",
              f"LSST will send about {lsst.get('alerts_per_night', LSST_ALERTS_PER_NIGHT):,} alerts a night. At an "
              "on-sky rate R (alerts/s/core) a night costs 10^7 / R core-seconds; spread evenly over a "
              f"{lsst.get('night_hours', 10):g}-hour night, that is the number of busy cores below (bursts and "
              "latency targets need headroom on top).", "",
              "| module | alerts/s/core | core-hours per night | cores busy all night |", "|---|---|---|---|"]
    for name, item in lsst.get("modules", {}).items():
        lines.append(f"| {modules[name]['label']} | {item['alerts_per_s_per_core']:,.0f} | "
                     f"{item['core_hours_per_night']:,.2f} | {item['cores_for_night']:,.3f} |")
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    load_start, load_end = machine.get("load_average_start"), machine.get("load_average_end")
    lines += ["", "## Machine and noise", "",
              f"{machine['cpu_count']} cores ({machine['cpu']}), {machine['platform']}, Python {machine['python']}, "
              f"{machine.get('java')}. Load average (1 min): {load_start[0] if load_start else float('nan'):.2f} at "
              f"the start, {load_end[0] if load_end else float('nan'):.2f} at the end. This machine is shared: other "
              "processes take cores during the run, so every rate is a lower bound, and the min-max columns show the "
              "spread between repeats. Ratios between modules measured in the same run are the robust figures.", "",
              f"Versions: {versions}.", ""]
    if json_path:
        rel = os.path.relpath(Path(json_path).resolve(), path.resolve().parent)
        lines += [f"Every number of this run: [{Path(json_path).name}]({rel}).", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
