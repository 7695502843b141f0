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
  (:mod:`fink_t2.bench.fink_deployed`: george GP fit per alert, model loaded in the UDF
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

``--survey rubin`` runs the same harness on replicated real Rubin alerts
(``data/rubin_alerts_sample.parquet``, a new ``diaSourceId`` per copy): the
no-op over Rubin's four ``c*`` columns, ``t2_io_only`` with t2's Rubin inputs,
``t2`` as ``apply_t2(df, survey="rubin")`` with the six-band model, and Fink's
Rubin SuperNNova (:data:`fink_t2.bench.modules.RUBIN_MODULES`), each warmed once
untimed; its report is ``docs/performance_rubin.md``.
Never imported by the scoring path.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from fink_t2.bench.inputs import DEFAULT_WORKDIR, build_input
from fink_t2.bench.measures import MEASURES, parse_measures, time_measure
from fink_t2.bench.modules import (
    CEILING_MODULE,
    DEFAULT_MODULES,
    EXCLUDED_MODULES,
    IO_CEILING_MODULE,
    MODULES,
    REFERENCE_MODULE,
    RUBIN_NOT_MEASURED,
    Unavailable,
    ad_features_column,
    list_modules,
    noop_column,
    survey_modules,
)
from fink_t2.bench.profiling import THREAD_VARIABLES, probe_worker, profile_t2, stopwatch
from fink_t2.bench.report import (
    plot_throughput,
    print_summary,
    print_survey_summary,
    write_report,
    write_survey_report,
)
from fink_t2.bench.targets import SPARK_DEFAULT_ARROW_BATCH, evaluate_targets, lsst_arithmetic
from fink_t2.scoring.alerts import OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from fink_t2.scoring.paths import PACKAGE

#: Spark settings of fink-science-perf's sessions that matter on a local machine.
ARROW_BATCH_FINK_PERF = 1_000_000


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


def measure_summary(alerts: int, cores: int, seconds: Sequence[float], cpu: Sequence[dict] | None) -> dict:
    """One module under one measure: wall seconds, alerts/s/core, and CPU seconds (total and by process role)."""
    median = float(statistics.median(seconds))
    out = {"seconds": {"median": median, "min": min(seconds), "max": max(seconds), "all": list(seconds)},
           "alerts_per_s_per_core": alerts / median / cores,
           "alerts_per_s_per_core_range": [alerts / max(seconds) / cores, alerts / min(seconds) / cores],
           "cpu_seconds": None, "cpu_seconds_by_role": None, "alerts_per_cpu_s": None}
    if cpu:
        totals = [c["total"] for c in cpu]
        out["cpu_seconds"] = totals
        out["cpu_seconds_by_role"] = {role: float(statistics.median(c[role] for c in cpu))
                                      for role in cpu[0] if role != "total"}
        out["alerts_per_cpu_s"] = alerts / float(statistics.median(totals)) if statistics.median(totals) > 0 else None
    return out


# --------------------------------------------------------------------------- Spark


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
    from fink_t2.spark.processor import spark_session

    for variable in THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")
    root = str(PACKAGE.parent)
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
        return {"scored_nonzero": int(np.count_nonzero(scores)), "scored_finite": int(np.isfinite(scores).sum())}
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


def run_classify(path: Path, repeats: int, model_path=None) -> Result:
    """``fink_t2.classify`` on every alert of ``path`` in this process, and the same split in stages.

    End to end is ``classify_with_reasons``; the split reruns its vectorised
    pass (``fink_t2.scoring.classifier.score_stages``) with laps, chunk by chunk of
    ``SCORING_CHUNK`` alerts as classify scores them (one pass over the whole input is
    several times slower per alert: its temporaries outgrow the caches): preparation
    (columns -> observations -> model input) and model (batched ``T2Model.predict``).
    """
    from fink_t2.scoring.classifier import SCORING_CHUNK, classify_with_reasons, score_stages
    from fink_t2.scoring.runtime import get_model

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
        prep_s = model_s = 0.0
        for start in range(0, len(pdf), SCORING_CHUNK):  # in the chunks classify scores (cache-sized)
            part = pdf.iloc[start:start + SCORING_CHUNK].reset_index(drop=True)
            laps, lap = stopwatch()
            score_stages(model, [part[c] for c in REQUIRED_COLUMNS], {c: part[c] for c in OPTIONAL_COLUMNS}, lap=lap)
            prep_s += laps["preparation"] - laps["start"]  # alert arrays -> observations -> model input
            model_s += laps["interpreter"] - laps["preparation"]
        preparation.append(prep_s)
        inference.append(model_s)
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
        "thread_env": {v: os.environ.get(v) for v in THREAD_VARIABLES},
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def model_facts(model_path=None) -> dict:
    """The t2 model measured: file, size, sha256, input shape, variant."""
    from fink_t2.scoring.runtime import get_model

    model = get_model(model_path)
    meta = model.metadata
    return {"path": str(model.path), "size_bytes": meta.get("size_bytes"), "sha256": meta.get("sha256"),
            "input_shape": [int(model.input_shape[0]), int(model.input_shape[1])],
            "variant": meta.get("variant"), "num_threads": model.num_threads}


# --------------------------------------------------------------------------- the run


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _check_modules(modules: Sequence[str], survey: str = "ztf") -> list[str]:
    known = survey_modules(survey)
    unknown = [m for m in modules if m not in known]
    if unknown:
        raise ValueError(f"unknown module(s) {unknown} for {survey}; choose among {list(known)}")
    return list(dict.fromkeys(modules))


def run_benchmark(alerts: int = 200_000, slow_alerts: int = 2_000, repeats: int = 3,
                  modules: Sequence[str] = DEFAULT_MODULES, cores: int | None = None,
                  arrow_batch: int = ARROW_BATCH_FINK_PERF, partitions: int | None = None,
                  workdir: str | Path = DEFAULT_WORKDIR, inputs: Sequence[str | Path] | None = None,
                  model_path=None, driver_memory: str = "4g", spark=None, profile_alerts: int = 10_000,
                  probe: bool = True, measures: Sequence[str] = MEASURES,
                  log: Callable[[str], None] = _log, survey: str = "ztf") -> dict:
    """Run the benchmark; returns the JSON-ready report (see the module docstring).

    ``spark``: an existing session to use (its ``local[N]`` gives the cores);
    otherwise a ``local[cores]`` session is started and stopped here.
    ``survey``: "ztf" (the default, every module above) or "rubin" (replicated real Rubin alerts:
    ``noop``, ``t2_io_only``, ``t2`` with the six-band model and Fink's Rubin SuperNNova;
    ``inputs`` None: the survey's real alerts). The worker probe, stage profile and
    ``classify`` read ZTF columns and run for ZTF only.
    """
    began = time.perf_counter()
    known_modules = survey_modules(survey)
    if survey != "ztf" and modules is DEFAULT_MODULES:
        modules = tuple(known_modules)
    modules = _check_modules(modules, survey)
    measures = parse_measures(measures)
    warm_modules = survey != "ztf"  # the ZTF run stays as it was (its first repeats are reported as measured)
    if survey != "ztf":
        from fink_t2.scoring.paths import default_model

        model_path = default_model(survey) if model_path is None else model_path
        probe = False
    if alerts < 1 or repeats < 1 or slow_alerts < 1:
        raise ValueError("--alerts, --slow-alerts and --repeats must be positive")
    workdir = Path(workdir)
    facts = machine_facts()
    path, input_facts = build_input(int(alerts), workdir, inputs, survey)
    slow_n = min(int(slow_alerts), int(alerts))
    slow_path, _ = build_input(slow_n, workdir, inputs, survey)
    log(f"input: {input_facts['alerts']} alerts ({input_facts['real_alerts']} real ones replicated) in {path}")
    results: dict[str, Result] = {}
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    spark_modules = [m for m in modules if known_modules[m].build is not None]
    config: dict = {"survey": survey, "alerts": int(alerts), "slow_alerts": slow_n, "repeats": int(repeats),
                    "modules": modules, "measures": measures, "modules_warmed_untimed": warm_modules,
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
        from fink_t2.spark.processor import restore_conf

        conf = _spark_conf(n_cores, arrow_batch)
        saved = {key: spark.conf.get(key, None) for key in conf}
        for key, value in conf.items():
            spark.conf.set(key, value)
        frames: dict[str, object] = {}
        warmed = False
        sink_dir = Path(tempfile.mkdtemp(prefix="fink-t2-bench-sink-"))  # the parquet measure's output
        try:
            for name in spark_modules:
                module = known_modules[name]
                kind = "slow" if module.slow else "big"
                if kind not in frames:
                    frames[kind], count = _cached(spark, slow_path if module.slow else path, n_partitions)
                    log(f"cached {count} alerts in {n_partitions} partitions ({kind} sample)")
                    if not warmed:
                        # Start the Python workers once (untimed), so no module pays their start-up alone.
                        for measure in measures:  # and each measure's write path once (untimed)
                            time_measure(frames[kind], noop_column(frames[kind], {"survey": survey}), measure, 1,
                                         sink_dir / "warm")
                        warmed = True
                df = frames[kind]
                ctx = {"model_path": model_path, "survey": survey}
                try:
                    if module.needs_features:
                        if "features" not in frames:
                            from pyspark.sql import functions as F

                            features = df.withColumn("lc_features", ad_features_column(df, ctx))
                            frames["features"], _ = _cached_frame(features.select(F.col("lc_features")))
                            log("cached lc_features (ad_features run once, untimed)")
                        df = frames["features"]
                    column = module.build(df, ctx)
                    if warm_modules:
                        _warm_module(spark, slow_path, n_partitions, module, ctx, sink_dir / "warm")
                except Unavailable as error:
                    skipped[name] = str(error)
                    log(f"skipping {name}: {error}")
                    continue
                n = input_facts["alerts"] if not module.slow else slow_n
                per_measure: dict[str, dict] = {}
                out = None
                try:
                    for measure in measures:
                        log(f"{name} [{measure}]: {repeats} x {n} alerts ...")
                        seconds, frame, cpu = time_measure(df, column, measure, repeats, sink_dir / name)
                        if frame is not None:
                            out = frame
                        per_measure[measure] = measure_summary(n, n_cores, seconds, cpu)
                        log(f"{name} [{measure}]: median {per_measure[measure]['seconds']['median']:.2f} s -> "
                            f"{per_measure[measure]['alerts_per_s_per_core']:,.0f} alerts/s/core")
                except Exception as error:  # noqa: BLE001 -- another project's module failing must not end the run
                    if module.family in ("t2", "ceiling"):
                        raise
                    failed[name] = f"{type(error).__name__}: {str(error)[:300]}"
                    log(f"{name} FAILED: {failed[name]}")
                    continue
                note = f"measured on {n} alerts (--slow-alerts)" if module.slow else ""
                primary = per_measure[measures[0]]
                result = Result(name, module.label, "spark", n, n_cores, primary["seconds"]["all"], note=note,
                                cpu_seconds=primary["cpu_seconds"])
                result.extra["measures"] = per_measure
                if out is not None:
                    result.extra.update(_summarize_output(name, out["_bench"].tolist()))
                results[name] = result
        finally:
            restore_conf(spark, saved)
            for frame in frames.values():
                frame.unpersist()
            shutil.rmtree(sink_dir, ignore_errors=True)
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
        "modules": {}, "skipped": skipped, "failed": failed,
        "excluded": dict(EXCLUDED_MODULES) if survey == "ztf" else dict(RUBIN_NOT_MEASURED),
    }
    try:
        from fink_t2.bench.fink_deployed import DEPLOYED_MODEL_NAME, DEPLOYED_MODEL_SHA256

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
    if survey == "ztf" and ("t2" in modules or "classify" in modules):
        log(f"profile: one batch of {min(profile_alerts, int(alerts))} alerts, stage by stage ...")
        report["profile"] = profile_t2(path, min(int(profile_alerts), int(alerts)), model_path=model_path)
    report["targets"] = evaluate_targets(report)
    report["lsst"] = lsst_arithmetic(report)
    report["machine"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    report["config"]["duration_s"] = time.perf_counter() - began
    return report


def _warm_module(spark, path: Path, partitions: int, module, ctx: dict, sink: Path) -> None:
    """One untimed pass of ``module`` over the small sample, in every partition, before it is timed.

    Each Python worker then has the module's imports and model loaded (SuperNNova's torch, t2's
    interpreter), as a long-running broker's workers do; without it the first timed repeat of a
    module with heavy imports is charged several seconds of start-up.
    """
    frame = spark.read.parquet(str(path)).repartition(int(partitions))
    time_measure(frame, module.build(frame, ctx), "noop", 1, sink)


def _cached_frame(df):
    df = df.cache()
    return df, df.count()


def _add_ratios(results: dict[str, Result]) -> None:
    """Each module's rate over the references' (Fink-deployed, the no-op ceiling, t2_io_only, SuperNNova).

    Top level: the run's first measure; ``measures[m]["ratio_to"]``: each measure against the same
    measure of the reference, both from one run.
    """
    references = [name for name in (REFERENCE_MODULE, "fink_deployed_onsky", CEILING_MODULE, IO_CEILING_MODULE,
                                    "snn") if name in results]
    for result in results.values():
        result.extra["ratio_to"] = {name: result.rate() / results[name].rate() for name in references}
        for measure, summary in result.extra.get("measures", {}).items():
            summary["ratio_to"] = {}
            for name in references:
                ref = results[name].extra.get("measures", {}).get(measure)
                if ref:
                    summary["ratio_to"][name] = summary["alerts_per_s_per_core"] / ref["alerts_per_s_per_core"]
                    if summary["alerts_per_cpu_s"] and ref["alerts_per_cpu_s"]:
                        summary["ratio_to"][name + "_cpu"] = summary["alerts_per_cpu_s"] / ref["alerts_per_cpu_s"]


def run_from_args(args) -> int:
    """``fink-t2 bench``: measure (or reload ``--from-json``), print, and write JSON / plot / report."""
    survey = getattr(args, "survey", "ztf")
    if getattr(args, "list", False):
        print(list_modules(survey))
        return 0
    if args.from_json:
        report = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        report["targets"] = evaluate_targets(report)  # the current definitions, on the saved numbers
        report["lsst"] = lsst_arithmetic(report)
    else:
        modules = [m.strip() for m in args.modules.split(",") if m.strip()] if args.modules else DEFAULT_MODULES
        report = run_benchmark(
            alerts=args.alerts, slow_alerts=args.slow_alerts, repeats=args.repeats, modules=modules,
            cores=args.cores, arrow_batch=args.arrow_batch or ARROW_BATCH_FINK_PERF, partitions=args.partitions,
            workdir=args.workdir or DEFAULT_WORKDIR, inputs=args.input or None, model_path=args.model,
            driver_memory=args.driver_memory, probe=not args.no_probe, measures=parse_measures(args.measures),
            survey=survey)
        report["command"] = "fink-t2 bench " + " ".join(sys.argv[2:]) if "bench" in sys.argv[1:2] else None
    survey = report["config"].get("survey", "ztf")
    if survey != "ztf":
        print_survey_summary(report)
    else:
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
    if args.report and survey != "ztf":
        print(f"wrote {write_survey_report(report, args.report, json_path=args.json)}")
    elif args.report:
        archive = None
        if args.archive_result and Path(args.archive_result).exists():
            archive = json.loads(Path(args.archive_result).read_text(encoding="utf-8"))
        print(f"wrote {write_report(report, args.report, plot=args.plot, json_path=args.json, archive=archive)}")
    return 0
