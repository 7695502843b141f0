"""``fink-t2``: train, evaluate, compress, score and benchmark from the command line.

Each sub-command imports its module only when run, so ``fink-t2 score`` never
imports TensorFlow.
"""

from __future__ import annotations

import argparse
import sys


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train t2 on PLAsTiCC alert-like views")
    p.add_argument("--config", default="conf/train.yaml", help="training YAML (default: %(default)s)")
    p.add_argument("--output", default="runs/t2", help="output folder for the Keras model (default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="folder with the PLAsTiCC csv.gz files (default: ../shared/data/plasticc)")
    p.add_argument("--max-objects", type=int, default=None, help="stratified subset of objects, for quick runs")
    p.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    p.add_argument("--seed", type=int, default=None, help="override the seed")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=_run_train)


def _run_train(args) -> int:
    from fink_t2.training import TrainConfig, train

    config = TrainConfig.from_yaml(args.config)
    if args.epochs is not None:
        config.epochs = args.epochs
    if args.seed is not None:
        config.seed = args.seed
    train(config, args.output, data_dir=args.data_dir, max_objects=args.max_objects, progress=not args.quiet)
    return 0


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="metrics and plots on the held-out PLAsTiCC test objects")
    p.add_argument("--run", default="runs/t2", help="training output folder (Keras model + config)")
    p.add_argument("--tflite", action="append", default=[], metavar="NAME=PATH",
                   help="also evaluate a TFLite file (repeatable)")
    p.add_argument("--fink-deployed", action="store_true",
                   help="also evaluate the Fink-deployed model with its own preparation (bench extra)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--output", default="docs", help="where the report and plots go (default: %(default)s)")
    p.add_argument("--max-objects", type=int, default=None)
    p.set_defaults(handler=_run_evaluate)


def _run_evaluate(args) -> int:
    from fink_t2.report import evaluate_run

    tflite = dict(item.split("=", 1) for item in args.tflite)
    evaluate_run(args.run, args.output, data_dir=args.data_dir, tflite=tflite,
                 fink_deployed=args.fink_deployed, max_objects=args.max_objects)
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
    from fink_t2.compression import compress_run

    compress_run(args.run, args.output, ship=args.ship, data_dir=args.data_dir, report=args.report)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fink-t2", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    _add_compress(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (FileNotFoundError, ValueError) as error:
        print(f"fink-t2 {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
