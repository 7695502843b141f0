"""The benchmarked modules: how each builds its Spark column, t2's and its peers'.

t2 (every alert, Fink's cuts, two diagnostics), the Fink-deployed t2
procedure (:mod:`fink_t2.bench.fink_deployed`), Fink's own modules from the
``fink-science==7.4.0`` wheel called with the arguments of Fink's science
stage (SuperNNova, asteroids, fast-transient rate, light-curve features,
anomaly score), the no-op ceiling, and the local ``classify``. A module whose
packages are missing raises :class:`Unavailable` and is skipped.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fink_t2.scoring.classes import N_CLASSES
from fink_t2.scoring.classifier import Scores

#: Fink modules left out, and why (their packages are not on PyPI).
EXCLUDED_MODULES: dict[str, str] = {
    "Early SN Ia (random forest, rfscore_sigmoid_full)": "needs 'actsnfink', not on PyPI",
    "Kilonova (knscore)": "needs 'kndetect', not on PyPI",
    "Microlensing (mulens)": "needs 'LIA', not on PyPI",
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


def noop_column(df, ctx: dict):
    """A pandas UDF over the survey's four light-curve columns that returns a constant: what Spark alone costs.

    ZTF: cjd, cfid, cmagpsf, csigmapsf; Rubin: cmidpointMjdTai, cband, cpsfFlux, cpsfFluxErr
    (``ctx["survey"]``, default ZTF).
    """
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf

    from fink_t2.scoring.surveys import get_survey

    @pandas_udf("double")
    def noop(time: pd.Series, band: pd.Series, value: pd.Series, error: pd.Series) -> pd.Series:
        return pd.Series(np.zeros(len(time)))

    return noop(*[F.col(c) for c in get_survey(ctx.get("survey", "ztf")).columns])


def _t2_column(df, ctx: dict, onsky: bool = False):
    """This project's module, the column ``apply_t2`` adds (the cut columns only with cuts)."""
    from fink_t2.scoring.cuts import Cuts
    from fink_t2.spark.processor import t2_column

    return t2_column(df, ctx.get("model_path"), Cuts(enabled=onsky))


def _t2_scores_only_column(df, ctx: dict):
    """Diagnostic: t2's scoring on the same columns as ``t2``, returning one double (the top probability).

    Against ``t2`` it prices the ``t2`` struct (14 probabilities and two
    strings) on both sides of Arrow; against ``noop`` it prices the classification itself.
    """
    from pyspark.sql.functions import pandas_udf

    from fink_t2.scoring.cuts import Cuts
    from fink_t2.scoring.runtime import get_model
    from fink_t2.spark.processor import score_batch, t2_input_columns

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
    from fink_t2.scoring.runtime import get_model
    from fink_t2.spark.processor import t2_input_columns, t2_typed_udf

    with_sky = get_model(ctx.get("model_path")).preparation.sky_context  # the columns t2 itself is given
    udf = t2_typed_udf(lambda columns: uniform_scores(len(columns[0])))
    return udf(*t2_input_columns(df, with_cut_columns=False, with_sky=with_sky))


def _rubin_t2_column(df, ctx: dict):
    """This project's module on Rubin alerts: the column ``apply_t2(df, survey="rubin")`` adds (six-band model)."""
    from fink_t2.spark.processor import t2_column

    return t2_column(df, ctx.get("model_path"), survey="rubin")


def _rubin_t2_io_only_column(df, ctx: dict):
    """Diagnostic: t2's exact Rubin inputs (4 c* columns and ``host_z``) in, a ``t2``-typed struct out, no work.

    The Rubin twin of ``t2_io_only``: the most t2 on Rubin alerts can reach under a measure.
    """
    from fink_t2.spark.processor import rubin_input_columns, t2_typed_udf

    udf = t2_typed_udf(lambda columns: uniform_scores(len(columns[0])))
    return udf(*rubin_input_columns(df))


#: The SuperNNova model of Fink's Rubin stage: SN vs other, trained on ELAsTiCC (fink-science 7.4.0 data).
RUBIN_SNN_MODEL = "elasticc_binary_broad/SN_vs_other"


def rubin_snn_model_path() -> str:
    """The file of :data:`RUBIN_SNN_MODEL` inside the installed fink-science, passed to the UDF explicitly."""
    from pathlib import Path

    import fink_science

    path = Path(fink_science.__file__).parent / "data" / "models" / "snn_models" / RUBIN_SNN_MODEL / "model.pt"
    if not path.is_file():
        raise Unavailable(f"fink-science has no SuperNNova model at {path}")
    return str(path)


def _rubin_snn_column(df, ctx: dict):
    """SuperNNova SN vs other on Rubin alerts: fink_science.rubin.snn ``snn_ia_elasticc``, called as its doctest
    and Fink's Rubin stage do (``diaSourceId`` then the four c* columns, model ``elasticc_binary_broad/SN_vs_other``),
    the model file passed explicitly. No cuts: every alert goes through the network."""
    _require("fink_science.rubin.snn.processor", "supernnova", "torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fink_science.rubin.snn.processor import snn_ia_elasticc
    from pyspark.sql import functions as F

    from fink_t2.scoring.surveys import get_survey

    args = [F.col("diaSourceId"), *[F.col(c) for c in get_survey("rubin").columns]]
    return snn_ia_elasticc(*args, F.lit(RUBIN_SNN_MODEL), F.lit(rubin_snn_model_path()))


def fink_cuts_mask(cmagpsf, cjd, jdstarthist, roid, cdsxmatch, allowed: Sequence[str]) -> np.ndarray:
    """Fink's t2/SuperNNova selection (REFERENCE section 5) per alert, vectorised; True = keep.

    At least 2 valid magnitudes, ``jd[-1] - jdstarthist <= 90`` d, ``roid != 3``
    and ``cdsxmatch`` among ``allowed`` (the deployed module's "both g and r"
    is applied by :func:`fink_t2.bench.fink_deployed.deployed_pandas_udf_body`).
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

    from fink_t2.bench.fink_deployed import DeployedModelError, deployed_pandas_udf_body, find_deployed_model
    from fink_t2.scoring.classes import CLASSES
    from fink_t2.scoring.cuts import EXTRAGALACTIC_XMATCH

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


def ad_features_column(df, ctx: dict):
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
    Module("noop", "no-op pandas UDF (ceiling)", noop_column, "ceiling",
           description="pandas UDF over cjd, cfid, cmagpsf, csigmapsf returning 0.0"),
    Module("t2", "t2, every alert", _t2_column, "t2",
           description="fink_t2.spark.processor t2 UDF, no cuts: every alert with data classified"),
    Module("t2_onsky", "t2, Fink cuts (on-sky)", lambda df, ctx: _t2_column(df, ctx, onsky=True), "t2",
           description="fink_t2.spark.processor t2 UDF with Cuts(enabled=True)"),
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
    Module("ad_features", "light-curve features (Fink)", ad_features_column, "fink",
           description="fink_science.ztf.ad_features extract_features_ad (row-at-a-time Python UDF)"),
    Module("anomaly", "anomaly score (Fink)", _anomaly_column, "fink", needs_features=True,
           description="fink_science.ztf.anomaly_detection anomaly_score (public model) on cached lc_features"),
    Module("fink_deployed", "Fink-deployed t2, every alert", lambda df, ctx: _deployed_column(df, ctx), "reference",
           slow=True, description="fink_t2.bench.fink_deployed procedure: george GP per alert, 1 invoke per alert"),
    Module("fink_deployed_onsky", "Fink-deployed t2, Fink cuts", lambda df, ctx: _deployed_column(df, ctx, True),
           "reference", slow=True, description="same, only alerts passing Fink's cuts are fitted"),
    Module("classify", "fink_t2.classify, no Spark (1 core)", None, "t2",
           description="classify_with_reasons on a pandas frame in this process"),
)}
DEFAULT_MODULES: tuple[str, ...] = tuple(MODULES)

#: The Rubin benchmark: the same roles under the same names (so ratios and reports read alike), on Rubin's columns.
RUBIN_MODULES: dict[str, Module] = {m.name: m for m in (
    Module("noop", "no-op pandas UDF (ceiling)", noop_column, "ceiling",
           description="pandas UDF over cmidpointMjdTai, cband, cpsfFlux, cpsfFluxErr returning 0.0"),
    Module("t2_io_only", "t2 inputs and output only, no scoring (diagnostic)", _rubin_t2_io_only_column, "t2",
           description="t2's Rubin inputs (4 c* columns, host_z) in, a constant t2 struct out"),
    Module("t2", "t2, every alert (six-band model)", _rubin_t2_column, "t2",
           description="apply_t2(df, survey='rubin')'s column, fink_t2/data/t2_rubin.tflite, every alert"),
    Module("snn", "SuperNNova SN vs other (Fink Rubin)", _rubin_snn_column, "fink",
           description=f"fink_science.rubin.snn snn_ia_elasticc, model {RUBIN_SNN_MODEL} (no cuts)"),
)}
#: Fink's other Rubin science modules, not in the Rubin benchmark, and why.
RUBIN_NOT_MEASURED: dict[str, str] = {
    "CATS (fink_science.rubin.cats)": "not measured here: the Rubin benchmark compares t2 with SuperNNova only",
    "early SN Ia random forest (fink_science.rubin.random_forest_snia)": "needs 'actsnfink', not on PyPI",
}
#: The modules of each survey's benchmark.
SURVEY_MODULES: dict[str, dict[str, Module]] = {"ztf": MODULES, "rubin": RUBIN_MODULES}


def survey_modules(survey: str) -> dict[str, Module]:
    if survey not in SURVEY_MODULES:
        raise ValueError(f"unknown survey {survey!r} for the benchmark; choose among {list(SURVEY_MODULES)}")
    return SURVEY_MODULES[survey]
#: The "before" every ratio refers to.
REFERENCE_MODULE = "fink_deployed"
CEILING_MODULE = "noop"
#: The ceiling of t2 itself: the same input columns and output type, no work.
IO_CEILING_MODULE = "t2_io_only"


def list_modules(survey: str = "ztf") -> str:
    lines = ["module               family     sample   what"]
    for m in survey_modules(survey).values():
        lines.append(f"{m.name:<20} {m.family:<10} {'slow' if m.slow else 'full':<8} {m.description}")
    lines.append("")
    lines.append("Left out (packages not on PyPI): " + "; ".join(f"{k}: {v}" for k, v in EXCLUDED_MODULES.items()))
    return "\n".join(lines)
