"""``fink-t2``: train, evaluate, compress, score and benchmark from the command line.

Each sub-command imports its module only when run, so ``fink-t2 score`` never
imports TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import sys


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train t2 on PLAsTiCC alert-like views")
    p.add_argument("--config", default=None,
                   help="training YAML (default: conf/train.yaml here, else the one shipped in the package)")
    p.add_argument("--output", default="runs/t2", help="output folder for the Keras model (default: %(default)s)")
    p.add_argument("--data-dir", default=None,
                   help="folder with the PLAsTiCC csv.gz files (default: data/plasticc in $FINK_T2_SHARED, "
                        "else ../shared beside a checkout)")
    p.add_argument("--max-objects", type=int, default=None, help="stratified subset of objects, for quick runs")
    p.add_argument("--pretrained", default=None, metavar="KERAS",
                   help="skip PLAsTiCC pretraining: start the real-data stage from this Keras file")
    p.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    p.add_argument("--seed", type=int, default=None, help="override the seed")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=_run_train)


def _run_train(args) -> int:
    from fink_t2.scoring.paths import default_config
    from fink_t2.training.train import TrainConfig, train

    config = TrainConfig.from_yaml(args.config if args.config is not None else default_config("train.yaml"))
    if args.epochs is not None:
        config.epochs = args.epochs
    if args.seed is not None:
        config.seed = args.seed
    train(config, args.output, data_dir=plasticc_dir(args.data_dir), max_objects=args.max_objects,
          progress=not args.quiet, pretrained=args.pretrained)
    return 0


def plasticc_dir(data_dir: str | None) -> str:
    """``--data-dir``, else ``data/plasticc`` in the shared-data folder (fink_t2.scoring.paths.shared_dir)."""
    from fink_t2.scoring.paths import shared_path

    return data_dir if data_dir is not None else str(shared_path("data", "plasticc"))


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="metrics and plots on held-out PLAsTiCC objects and, with --real, the real sky")
    p.add_argument("--run", default="runs/t2", help="training output folder (Keras model + config)")
    p.add_argument("--tflite", action="append", default=[], metavar="NAME=PATH",
                   help="also evaluate a TFLite file (repeatable)")
    p.add_argument("--fink-deployed", action="store_true",
                   help="also evaluate the Fink-deployed model with its own preparation (bench extra)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--output", default="docs", help="where the report and plots go (default: %(default)s)")
    p.add_argument("--max-objects", type=int, default=None)
    p.add_argument("--real", action="store_true",
                   help="also the real-sky report: the run's out-of-fold predictions on typed BTS light curves "
                        "(beside the --tflite models, scored on every object) and the SIMBAD-labelled alerts")
    p.add_argument("--bts", default=None, help="BTS light-curve parquet (default: ../shared/data/ztf_bts_dev)")
    p.add_argument("--rubin", action="store_true",
                   help="instead: the six-band Rubin model (--rubin-model) beside the g/r model (--ztf-model) on "
                        "held-out PLAsTiCC objects and the labelled ELAsTiCC alerts (docs/evaluation_rubin.md)")
    p.add_argument("--rubin-model", default=None, help="with --rubin: default fink_t2/data/t2_rubin.tflite")
    p.add_argument("--ztf-model", default=None, help="with --rubin: default fink_t2/data/t2.tflite")
    p.set_defaults(handler=_run_evaluate)


def _named_models(items: list[str]) -> dict[str, str]:
    """``--tflite NAME=PATH`` values -> {name: path}, every model file verified before any work starts."""
    from fink_t2.scoring.runtime import load_model

    models = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not (sep and name and path):
            raise ValueError(f"--tflite {item!r}: expected NAME=PATH, e.g. 'old t2=/tmp/old/t2.tflite'")
        load_model(path, prior="flat")  # missing, unverifiable (size, sha256, identity): one line and the fix
        models[name] = path
    return models


def _run_evaluate(args) -> int:
    if args.rubin:
        from fink_t2.training.rubin_evaluation import RUBIN_MODEL, ZTF_MODEL, evaluate_rubin

        evaluate_rubin(args.rubin_model or RUBIN_MODEL, args.ztf_model or ZTF_MODEL,
                       data_dir=plasticc_dir(args.data_dir), output=args.output, max_objects=args.max_objects)
        return 0
    from fink_t2.training.report import evaluate_run

    tflite = _named_models(args.tflite)
    deployed = None
    if args.fink_deployed:  # the baseline lives on the benchmark side: the training side never imports it
        from fink_t2.bench.fink_deployed import deployed_predictor

        deployed = deployed_predictor()
    evaluate_run(args.run, args.output, data_dir=plasticc_dir(args.data_dir), tflite=tflite,
                 fink_deployed=deployed, max_objects=args.max_objects, real=args.real, bts=args.bts)
    return 0


def _add_compress(sub) -> None:
    p = sub.add_parser("compress", help="TFLite variants of a trained model, with a comparison table")
    p.add_argument("--run", default="runs/t2", help="training output folder (Keras model + config)")
    p.add_argument("--output", default="runs/t2/compressed", help="folder for the variants")
    p.add_argument("--ship", default=None, metavar="VARIANT", help="copy this variant into fink_t2/data/")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--report", default="docs/compression.md")
    p.set_defaults(handler=_run_compress)


def _run_compress(args) -> int:
    from fink_t2.training.compression import compress_run

    compress_run(args.run, args.output, ship=args.ship, data_dir=plasticc_dir(args.data_dir), report=args.report)
    return 0


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="alerts/s/core of t2 vs Fink's science modules, measured as Fink does (Spark)")
    p.add_argument("--survey", choices=("ztf", "rubin"), default="ztf",
                   help="whose alerts: ztf (every module) or rubin (replicated real Rubin alerts of "
                        "data/rubin_alerts_sample.parquet: no-op, t2_io_only, t2 with the six-band model, Fink's "
                        "Rubin SuperNNova) (default: %(default)s)")
    p.add_argument("--alerts", type=int, default=200_000,
                   help="alerts, replicated from the real ones (default: %(default)s)")
    p.add_argument("--slow-alerts", type=int, default=2_000,
                   help="smaller sample for the slow modules (Fink-deployed t2, fast transient) (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per module; the median is reported")
    p.add_argument("--modules", default=None, help="comma-separated subset (default: all; see --list)")
    p.add_argument("--list", action="store_true", help="list the modules and exit")
    p.add_argument("--measures", default="topandas,noop,parquet",
                   help="comma-separated, each timed for every Spark module in the same run: topandas (Fink's "
                        "df.withColumn(c, udf).select(c).toPandas()), noop (df.withColumn(...).write.format('noop'), "
                        "executor side, as fink-broker's Rubin stage doctests), parquet (the enriched frame written "
                        "as parquet to a temporary directory); the first is the one of the main table "
                        "(default: %(default)s)")
    p.add_argument("--cores", type=int, default=None, help="Spark local[N] (default: all cores)")
    p.add_argument("--arrow-batch", type=int, default=None,
                   help="spark.sql.execution.arrow.maxRecordsPerBatch (default: 1000000, as fink-science-perf)")
    p.add_argument("--partitions", type=int, default=None, help="partitions of the cached input (default: cores)")
    p.add_argument("--workdir", default=None, help="cache of the built input and Spark log (default: runs/bench)")
    p.add_argument("--input", action="append", default=None, metavar="PATH",
                   help="real alerts to replicate (parquet file or folder; repeatable; default: data/ and "
                        "../shared/data/ztf_alerts for ztf, data/rubin_alerts_sample.parquet for rubin)")
    p.add_argument("--model", default=None, help="t2 model file (default: the shipped one)")
    p.add_argument("--driver-memory", default="4g", help="Spark driver memory (default: %(default)s)")
    p.add_argument("--no-probe", action="store_true", help="skip the fresh-worker memory/start-up probe")
    p.add_argument("--json", default=None, metavar="PATH", help="write the results as JSON")
    p.add_argument("--plot", default=None, metavar="PATH", help="write a PNG of alerts/s/core per module")
    p.add_argument("--report", default=None, metavar="PATH", help="write the markdown report (docs/performance.md)")
    p.add_argument("--archive-result", default="benchmarks/results/archive_scale.json", metavar="PATH",
                   help="JSON of benchmarks/archive_scale.py to include in the report, if it exists "
                        "(default: %(default)s)")
    p.add_argument("--from-json", default=None, metavar="PATH",
                   help="do not measure: print and rewrite plot/report from a saved JSON")
    p.set_defaults(handler=_run_bench)


def _run_bench(args) -> int:
    from fink_t2.bench.harness import run_from_args

    return run_from_args(args)


def _add_score(sub) -> None:
    p = sub.add_parser("score", help="add the t2 column to archived alerts, ZTF or Rubin (parquet or Avro files, "
                       "directories, partitions)")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="parquet or Avro file(s) or directories (year=/month=/day= ok)")
    p.add_argument("--output", default=None, help="output: a parquet directory (spark) or file/directory (pandas); "
                   "optional with --summary and the pandas engine")
    p.add_argument("--engine", choices=("spark", "pandas"), default="spark",
                   help="spark (default, any size) or pandas (one file, no Spark)")
    p.add_argument("--model", default=None, help="TFLite model (default: the survey's model shipped in the package)")
    p.add_argument("--survey", choices=("ztf", "rubin"), default=None,
                   help="whose alerts the inputs hold (default: read off their columns: candidate / diaSource)")
    p.add_argument("--cuts", action="store_true", help="apply Fink's t2 selection cuts (default values; ZTF only)")
    p.add_argument("--cuts-config", default=None, metavar="YAML", help="cuts from a YAML file with a 'cuts:' "
                   "mapping (see conf/cuts.yaml); implies --cuts unless it says enabled: false")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--summary", action="store_true", help="print counts per top class and a few example alerts")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--master", default=None, help="Spark master (default: local[*])")
    p.set_defaults(handler=_run_score)


def _run_score(args) -> int:
    import dataclasses
    import logging

    from fink_t2.scoring.config import ConfigError
    from fink_t2.scoring.cuts import Cuts, load_cuts
    from fink_t2.scoring.inputs import InputError
    from fink_t2.scoring.runtime import ModelFileError
    from fink_t2.tools.batch import read_scored, score_pandas, score_spark, summarize, summary_frame

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cuts = Cuts(enabled=args.cuts)
        if args.cuts_config:
            loaded = load_cuts(args.cuts_config)
            cuts = dataclasses.replace(loaded, enabled=loaded.enabled or args.cuts)
        if args.output is None and not (args.summary and args.engine == "pandas"):
            raise InputError("--output is required (only --engine pandas --summary may go without it)")
        if args.engine == "pandas":
            if len(args.inputs) != 1:
                raise InputError(f"--engine pandas scores one file, got {len(args.inputs)} inputs (use --engine spark)")
            table = score_pandas(args.inputs[0], args.output, model_path=args.model, cuts=cuts,
                                 overwrite=args.overwrite, progress=not args.no_progress, survey=args.survey)
            if args.summary:
                print(summarize(summary_frame(table)))
        else:
            from fink_t2.spark.processor import spark_session

            # Inputs, output and model are checked before Spark starts.
            score_spark(args.inputs, args.output, model_path=args.model, cuts=cuts, overwrite=args.overwrite,
                        master=args.master, progress=not args.no_progress, survey=args.survey)
            if args.summary:
                print(summarize(read_scored(args.output, "spark", spark_session("fink-t2-score", master=args.master))))
    except (InputError, ConfigError, ModelFileError) as error:
        print(f"fink-t2 score: error: {error}", file=sys.stderr)
        return 2
    if args.output:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _add_stream(sub) -> None:
    from fink_t2.spark.stream import add_arguments

    p = sub.add_parser("stream", help="Structured Streaming: Fink's raw alert lake -> parquet with t2 (Spark)")
    add_arguments(p)
    p.set_defaults(handler=_run_stream)


def _run_stream(args) -> int:
    from fink_t2.spark.stream import run_args

    return run_args(args, prog="fink-t2 stream")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fink-t2", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    _add_compress(sub)
    _add_score(sub)
    _add_stream(sub)
    _add_bench(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from fink_t2.scoring.runtime import ModelFileError
    from fink_t2.spark import SparkMissingError

    try:
        return int(args.handler(args) or 0)
    except (FileNotFoundError, ValueError, SparkMissingError, ModelFileError) as error:
        print(f"fink-t2 {args.command}: error: {error}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:
        extra = missing_extra(error, args.command)
        if extra is None:
            raise
        print(f"fink-t2 {args.command}: error: {error.name} is not installed: 'fink-t2 {args.command}' needs the "
              f"{extra} extra, pip install 'fink-t2[{extra}]'", file=sys.stderr)
        return 2
    except BaseException as error:  # Ctrl-C, also when it surfaces as Spark's or py4j's errors
        from fink_t2.tools.batch import interrupted

        if not interrupted(error):
            raise
        print(f"fink-t2 {args.command}: interrupted (Ctrl-C): stopped; nothing was written under the output's "
              "name (no partial output, no temporary folder)", file=sys.stderr, flush=True)
        _quiet_shutdown()
        return 130


def _quiet_shutdown() -> None:
    """After the interrupted job's one line, nothing more: the interpreter's shutdown of the threads Spark and py4j
    left (CPython 3.13.0 reports a bug of its own there, an 'Exception ignored' traceback) writes to nowhere."""
    sys.stderr.flush()
    sys.unraisablehook = lambda unraisable: None
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 -- kept open until the interpreter exits


#: Third-party modules of the optional extras (top-level name -> extra); other commands' needs by command.
EXTRA_MODULES = {"tensorflow": "train", "tf_keras": "train", "tensorflow_model_optimization": "train",
                 "fastavro": "avro", "pyspark": "spark", "fink_science": "bench", "fink_utils": "bench",
                 "george": "bench", "torch": "bench", "supernnova": "bench"}
EXTRA_COMMANDS = {"train": "train", "evaluate": "train", "compress": "train", "bench": "bench"}


def missing_extra(error: ModuleNotFoundError, command: str) -> str | None:
    """The extra that installs the module ``error`` lacks (None for a module of fink-t2 itself: a real bug)."""
    name = (error.name or "").split(".")[0]
    if not name or name == "fink_t2":
        return None
    return EXTRA_MODULES.get(name) or EXTRA_COMMANDS.get(command)


if __name__ == "__main__":
    sys.exit(main())
