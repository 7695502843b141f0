"""Stream Fink's raw alert lake (ZTF or Rubin) through t2 into a parquet sink (``fink-t2 stream``, run_t2_stream.py).

Structured Streaming: a parquet file source over ``input`` (new files are
picked up as they land), the ``t2`` column added by
``fink_t2.spark.processor.apply_t2``, and Spark's parquet file sink with a checkpoint
directory. The file sink commits each micro-batch in ``<output>/_spark_metadata``
together with the checkpoint, so a job stopped (or killed) at any point and
restarted from the same checkpoint neither loses nor duplicates alerts; read
the output with Spark (``spark.read.parquet(output)``), which honours that log.
A lake holds one survey's alerts (``survey``, or read off the files' columns:
ZTF's ``candidate`` or Rubin's ``diaSource``) and one schema: a lake mixing
them is refused before the stream starts.

Configuration comes from a YAML file (``--config``; default: ``conf/stream.yaml``
in the working directory if there is one, else the copy shipped in the package),
safe-loaded and strict, and flags override it. Every check (configuration,
model file, input files, writable output) runs before Spark reads any alert.
A module of the package (an installed ``fink-t2`` has it, with its console
entry point); ``run_t2_stream.py`` in the repository is a thin wrapper for
``spark-submit``. Examples::

    fink-t2 stream --input /lake/raw --output /lake/t2 --checkpoint /lake/t2_ckpt --once
    fink-t2 stream --survey rubin --input /lake/rubin --output /lake/rubin_t2 --checkpoint /lake/rubin_ckpt --once
    spark-submit run_t2_stream.py --config conf/stream.yaml
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

LOGGER = logging.getLogger("fink_t2.spark.stream")
METRICS = "t2_counts"


def build_parser(prog: str = "fink-t2 stream") -> argparse.ArgumentParser:
    """The stream's flags (``fink-t2 stream`` and ``run_t2_stream.py`` share them)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the stream's flags to ``parser`` (also the ``fink-t2 stream`` sub-command's)."""
    parser.add_argument("--config", default=None,
                        help="YAML configuration (default: conf/stream.yaml here, else the shipped one)")
    parser.add_argument("--input", help="directory of raw alert parquet files")
    parser.add_argument("--output", help="parquet sink directory")
    parser.add_argument("--checkpoint", help="checkpoint directory")
    parser.add_argument("--model", dest="model_path", help="TFLite model (default: the survey's shipped one)")
    parser.add_argument("--survey", choices=("ztf", "rubin"), default=None,
                        help="whose alerts the lake holds (default: read off the files' columns)")
    parser.add_argument("--trigger-seconds", type=float, help="micro-batch interval")
    parser.add_argument("--max-files-per-trigger", type=int, help="input files per micro-batch")
    parser.add_argument("--once", action="store_true", default=None,
                        help="process the files present now (available-now trigger), then stop")
    parser.add_argument("--cuts", dest="cuts", action="store_true", default=None, help="apply Fink's t2 cuts")
    parser.add_argument("--no-cuts", dest="cuts", action="store_false", help="score every alert")
    parser.add_argument("--master", default=None, help="Spark master when not run by spark-submit (default local[*])")


def load_config(args: argparse.Namespace):
    """The validated configuration: file, then flags."""
    from fink_t2.scoring.paths import default_config
    from fink_t2.spark.stream_config import load_stream_config

    overrides = {"input": args.input, "output": args.output, "checkpoint": args.checkpoint,
                 "model_path": args.model_path, "trigger_seconds": args.trigger_seconds,
                 "max_files_per_trigger": args.max_files_per_trigger, "once": args.once,
                 "cuts.enabled": args.cuts, "survey": getattr(args, "survey", None)}
    return load_stream_config(args.config if args.config is not None else default_config("stream.yaml"), overrides)


def _writable_dir(path: Path, what: str) -> None:
    """A directory Spark can create or write into; checked without creating it (fink_t2.scoring.preflight)."""
    from fink_t2.scoring.preflight import check_writable

    check_writable(path, f"{what} directory", f"--{what}", directory=True)


#: Hadoop's glob characters: Spark < 3.5's streaming file source expands them even when escaped.
_GLOB = set("*?[]{}\\")


def check_stream_source(source: Path) -> None:
    """ValueError for a lake path Spark < 3.5's stream would read as a pattern (it matched 'lake1' for 'lake[1]')."""
    import pyspark

    major, minor = (int(v) for v in pyspark.__version__.split(".")[:2])
    if (major, minor) < (3, 5) and _GLOB & set(str(source.absolute())):
        raise ValueError(f"{source}: Spark {pyspark.__version__}'s stream reads this path as a pattern "
                         "(it has one of * ? [ ] { } \\); rename the lake folder without them, or use Spark >= 3.5")


def preflight(config) -> None:
    """Every check that can fail before the stream starts, each with one clear message."""
    from fink_t2.scoring.inputs import check_separate, find_parquet, read_alert_schemas, schema_survey
    from fink_t2.scoring.runtime import get_model
    from fink_t2.spark.hadoop import check_spark_path

    if config.model_path is not None:
        get_model(config.model_path)  # a bad model file fails first; its survey is checked once the lake's is known
    source = Path(config.input)
    if not source.is_dir():
        raise FileNotFoundError(f"input directory not found: {source} (set 'input' in the configuration or "
                                "pass --input; to try the stream on the sample alerts: mkdir -p data/stream/raw "
                                "&& cp data/alerts_sample.parquet data/stream/raw/)")
    # The sink and checkpoint must not be inside the lake (every restart would re-read them), nor hold it.
    check_separate([source], {"output": config.output, "checkpoint": config.checkpoint})
    check_stream_source(source)
    for path in (config.output, config.checkpoint):
        check_spark_path(path)
    files = find_parquet([source])
    for path in files:
        check_spark_path(path)
    schemas = read_alert_schemas(files)
    surveys = [schema_survey(schema) for schema in schemas]
    for schema, survey, path in zip(schemas, surveys, files):
        if survey != surveys[0]:
            raise ValueError(f"input files mix surveys: {path} holds {survey} alerts, {files[0]} {surveys[0]} ones; "
                             "a stream reads one survey's lake: move the other files to a lake of their own")
        if not schema.equals(schemas[0]):
            raise ValueError(f"input files have different schemas: {path} differs from {files[0]}; a stream "
                             "reads one schema (unify the files, e.g. as data/make_sample.py does)")
    if config.survey is not None and surveys[0] is not None and surveys[0] != config.survey:
        raise ValueError(f"{files[0]} holds {surveys[0]} alerts, the configuration says survey {config.survey}: "
                         f"pass --survey {surveys[0]} (or set 'survey') or point the stream at a {config.survey} lake")
    config.survey = config.survey or surveys[0] or "ztf"
    LOGGER.info("the lake holds %s alerts: scoring them with the %s model", config.survey,
                config.survey if config.model_path is None else config.model_path)
    _check_model(config)
    if config.survey != "ztf" and config.cuts.enabled:
        raise ValueError(f"Fink's t2 selection cuts read ZTF columns (jdstarthist, roid, cdsxmatch); {config.survey} "
                         "alerts have none: pass --no-cuts (or set cuts.enabled: false)")
    from fink_t2.scoring.preflight import check_cut_columns

    check_cut_columns(schemas[0], config.cuts, files[0], flag="--cuts / cuts.enabled")
    _writable_dir(Path(config.output), "output")
    _writable_dir(Path(config.checkpoint), "checkpoint")


def _check_model(config) -> None:
    """The model file (or the survey's shipped one) is valid and reads the lake's survey: ValueError otherwise."""
    from fink_t2.scoring.classifier import model_for
    from fink_t2.scoring.paths import default_model

    path = config.model_path if config.model_path is not None else default_model(config.survey or "ztf")
    model_for(config.survey or "ztf", model_path=path)


def start_query(spark, config):
    """Start the streaming query (not waiting for it)."""
    from pyspark.sql import functions as F

    from fink_t2.spark.hadoop import spark_literal
    from fink_t2.spark.processor import apply_t2

    # Paths are literal (Spark would expand 'lake[1]' as a pattern); only *.parquet files are alerts (a README
    # in the lake is not); partition values stay as written (day=01, not 1): the schema read here fixes the
    # stream's types, partition columns included.
    # (run() switches Spark's partition type inference off for the query's lifetime.)
    # basePath (literal, never a pattern) keeps year=/month=/day= columns under an escaped source path.
    source, base = spark_literal(config.input), str(Path(config.input).absolute())
    schema = spark.read.option("pathGlobFilter", "*.parquet").option("basePath", base).parquet(source).schema
    alerts = (spark.readStream.schema(schema)
              .option("maxFilesPerTrigger", config.max_files_per_trigger)
              .option("pathGlobFilter", "*.parquet")
              .option("basePath", base)
              .parquet(source))
    scored = apply_t2(alerts, model_path=config.model_path, cuts=config.cuts, survey=config.survey)
    scored = scored.observe(
        METRICS,
        F.count(F.lit(1)).alias("alerts"),
        F.sum(F.when(F.col("t2.top_class").isNotNull(), 1).otherwise(0)).alias("classified"),
    )
    writer = (scored.writeStream.format("parquet").queryName(config.query_name)
              .option("path", config.output).option("checkpointLocation", config.checkpoint))
    partitions = [c for c in ("year", "month", "day") if c in schema.names]
    if partitions:
        writer = writer.partitionBy(*partitions)
    if config.once:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{config.trigger_seconds} seconds")
    return writer.start()


def _as_dict(progress) -> dict:
    """A progress report as a dict (Spark 3.4 and 3.5 give dicts, Spark 4 objects with ``.json``)."""
    if isinstance(progress, dict):
        return progress
    return json.loads(progress.json)


def log_progress(query, seen: set, totals: dict) -> None:
    """Log each micro-batch not yet logged: alerts in, classified, declined, rate."""
    for report in map(_as_dict, query.recentProgress):
        batch = report.get("batchId")
        if batch in seen:
            continue
        seen.add(batch)
        rows = int(report.get("numInputRows") or 0)
        metrics = (report.get("observedMetrics") or {}).get(METRICS) or {}
        if hasattr(metrics, "asDict"):  # Spark 4 gives Rows here
            metrics = metrics.asDict()
        classified = int(metrics.get("classified") or 0)
        rate = float(report.get("processedRowsPerSecond") or 0.0)
        totals["alerts"] = totals.get("alerts", 0) + rows
        totals["classified"] = totals.get("classified", 0) + classified
        totals["batches"] = totals.get("batches", 0) + (1 if rows else 0)
        LOGGER.info("batch %s: %d alerts in, %d classified, %d declined, %.1f alerts/s",
                    batch, rows, classified, rows - classified, rate)


#: Spark's partition-column type inference (``day=01`` read as the integer 1): off while the query runs.
INFERENCE = "spark.sql.sources.partitionColumnTypeInference.enabled"


def run(config, spark) -> dict:
    """Run the query until it stops (available-now) or is interrupted; return totals.

    Partition values are kept as written (``day=01`` stays ``01``): Spark's
    partition type inference is off while the query runs, then restored.
    """
    previous = spark.conf.get(INFERENCE, None)
    spark.conf.set(INFERENCE, "false")
    try:
        return _run(config, spark)
    finally:
        if previous is None:
            spark.conf.unset(INFERENCE)
        else:
            spark.conf.set(INFERENCE, previous)


def _run(config, spark) -> dict:
    query = start_query(spark, config)
    LOGGER.info("started %s: %s -> %s (checkpoint %s, %s)", config.query_name, config.input, config.output,
                config.checkpoint, "available-now" if config.once else f"every {config.trigger_seconds:g} s")
    stop = {"requested": False, "interrupted": False}

    def request_stop(signum, frame):  # SIGTERM: finish cleanly, the checkpoint keeps the position
        stop["requested"] = True
        stop["interrupted"] = stop["interrupted"] or signum == signal.SIGINT

    previous = previous_interrupt = None
    try:
        previous = signal.signal(signal.SIGTERM, request_stop)
        # Ctrl-C too: pyspark's own handler cancels jobs inside the signal handler, in the middle of a py4j call
        # (a page of chained py4j tracebacks); here the loop stops the query and says it was interrupted.
        previous_interrupt = signal.signal(signal.SIGINT, request_stop)
    except ValueError:  # not in the main thread (e.g. under a test runner thread)
        previous = None
    seen: set = set()
    totals: dict = {}
    started = time.perf_counter()
    failure = None
    try:
        while query.isActive:
            try:
                query.awaitTermination(1.0)
            except Exception as error:  # noqa: BLE001 -- the query failed (StreamingQueryException): said below
                failure = error
                break
            log_progress(query, seen, totals)
            if stop["interrupted"]:
                LOGGER.info("interrupted; stopping the query")
                try:
                    spark.sparkContext.setLogLevel("OFF")  # the cancelled tasks would each log a stack trace
                    query.stop()
                except Exception:  # noqa: BLE001 -- already stopping
                    pass
                raise KeyboardInterrupt
            if stop["requested"]:
                LOGGER.info("stop requested; stopping the query")
                query.stop()
    except KeyboardInterrupt:
        LOGGER.info("interrupted; stopping the query")
        try:
            query.stop()
        except Exception:  # noqa: BLE001 -- Ctrl-C reached the JVM too: nothing left to stop
            pass
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if previous_interrupt is not None:
            signal.signal(signal.SIGINT, previous_interrupt)
    log_progress(query, seen, totals)
    error = query.exception() or failure
    if error is not None:
        raise RuntimeError(stream_failure(error, config))
    elapsed = time.perf_counter() - started
    totals["seconds"] = elapsed
    LOGGER.info("done: %d alerts in %d micro-batch(es), %d classified, %.1f s",
                totals.get("alerts", 0), totals.get("batches", 0), totals.get("classified", 0), elapsed)
    return totals


#: How an operating system says a disk is full (Java's IOException text, errno names).
_DISK_FULL = ("No space left on device", "ENOSPC", "Disk quota exceeded", "EDQUOT")


def stream_failure(error: BaseException, config) -> str:
    """One line for a failed streaming query: the disk-full case named with its folder, else the first cause.

    The sink commits a micro-batch with the checkpoint, so what is committed is
    whole and a restart with the same command resumes at the failed batch.
    """
    text = str(error)
    resume = ("a restart with the same command resumes from the checkpoint (the output committed so far is whole, "
              "the failed micro-batch is redone)")
    if any(mark in text for mark in _DISK_FULL):
        where = [str(p) for p in (config.output, config.checkpoint)
                 if str(Path(p).absolute()) in text or str(p) in text]
        place = " and ".join(where) if where else f"{config.output} or {config.checkpoint}"
        return f"the disk holding {place} is full (No space left on device): free some space there; {resume}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cause = next((line for line in lines if "Exception" in line or "Error" in line), lines[0] if lines else
                 type(error).__name__)
    cause = " ".join(cause.split())
    return f"streaming query failed: {cause[:300]}; {resume}"


def _lock_paths(config) -> list:
    """This stream's locks on its output and checkpoint (fink_t2.scoring.outputs): one job at a time on each."""
    from fink_t2.scoring.outputs import lock_output

    locks = []
    try:
        for path, what in ((config.output, "output"), (config.checkpoint, "checkpoint")):
            locks.append(lock_output(path, what, f"--{what}"))
    except BaseException:
        for lock in locks:
            lock.release()
        raise
    return locks


def main(argv: list[str] | None = None, spark=None, prog: str = "fink-t2 stream") -> int:
    """Entry point; ``spark`` lets tests reuse a session, ``prog`` names the command in error messages."""
    return run_args(build_parser(prog).parse_args(argv), spark=spark, prog=prog)


def run_args(args: argparse.Namespace, spark=None, prog: str = "fink-t2 stream") -> int:
    """Run the stream for parsed flags; 2 on a configuration or input error (one line on stderr), 1 if it fails."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    LOGGER.setLevel(logging.INFO)
    from fink_t2.spark import SparkMissingError, require_spark

    try:
        if spark is None:
            require_spark()
        config = load_config(args)
        preflight(config)
        locks = _lock_paths(config)  # another stream or score job on the same output or checkpoint: refused
    except (ValueError, OSError, RuntimeError, SparkMissingError) as error:  # ConfigError, InputError, ...
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    try:
        if spark is None:
            from fink_t2.spark.processor import spark_session

            spark = spark_session("fink-t2-stream", master=args.master)
        run(config, spark)
    except RuntimeError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted (Ctrl-C): stopped; the output committed so far is whole and a restart with the "
              "same command resumes from the checkpoint", file=sys.stderr)
        return 130
    finally:
        for lock in locks:
            lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
