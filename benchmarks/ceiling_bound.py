"""How close to the no-op ceiling can ANY t2 get under Fink's measure?

The throughput issue asks t2 (every alert classified) to reach >= 50 % of a no-op pandas
UDF's alerts/s/core, timed as Fink times modules:
``df.withColumn(c, udf(*cols)).select(c).toPandas()``. This script prices the
interface apart from the work, in one Spark session (``local[2]``, the bench's
replicated real alerts, rounds interleaved so machine noise hits all alike):

* ``noop``: the ceiling, a pandas UDF over ``cjd, cfid, cmagpsf, csigmapsf`` returning 0.0;
* ``io_*``: Arrow UDFs doing NO work: 4 or 6 light-curve columns in, and out
  one double, an unnamed ``array<float>`` of 14 probabilities, or the ``t2``
  struct (14 named floats, ``top_class``, ``reason``);
* ``t2_array``: t2's real scoring with the cheapest output that still carries
  14 probabilities (an unnamed array, null when declined);
* ``t2``: the shipped module (``fink_t2.spark.processor.t2_column``, no cuts).

For each interface it prints the zero-work bound (its ``io_*`` rate over the
ceiling) and the per-alert budget left for t2's own work if t2 is to reach
0.5 of the ceiling (twice the no-op's time minus the interface's), next to
what t2's own work costs (the module minus its ``io_*`` twin) and, in one
process (``fink_t2.bench.profiling.profile_t2``), the worker's stages alone. Writes JSON with ``--json``.

    python benchmarks/ceiling_bound.py [--alerts 200000] [--repeats 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa

from fink_t2.bench.modules import uniform_scores
from fink_t2.scoring import Cuts, Scores
from fink_t2.scoring.classes import N_CLASSES
from fink_t2.spark.processor import T2_LIGHT_CURVE_INPUTS, score_batch

ROOT = Path(__file__).resolve().parents[1]
LIGHT_CURVE_COLUMNS = T2_LIGHT_CURVE_INPUTS  # what t2's UDF gets without cuts, in its order
TARGET = 0.5


def _columns(df, model_path: str | None) -> dict:
    """name -> the Spark column to time on ``df`` (Fink's ``c*`` columns). Arrow UDFs except the
    pandas no-op (the issue's ceiling); the no-op, ``io_6_t2`` and ``t2`` are the bench's own."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, DoubleType, FloatType

    from fink_t2.bench.modules import _t2_column, _t2_io_only_column, noop_column

    def array_of(scores: Scores) -> pa.Array:
        n = len(scores.reason)
        flat = pa.array(scores.probabilities.astype(np.float32).ravel())
        offsets = pa.array(np.arange(n + 1, dtype=np.int32) * N_CLASSES)
        return pa.ListArray.from_arrays(offsets, flat, mask=pa.array(~scores.classified))

    def arrow(function, return_type, columns):
        from pyspark.sql.functions import ArrowUDFType, arrow_udf

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*type hints for arrow UDF.*", category=UserWarning)
            udf = arrow_udf(function, return_type, ArrowUDFType.SCALAR)
        return udf(*[F.col(c) for c in columns])

    def zeros(*columns):
        return pa.array(np.zeros(len(columns[0])))

    def t2_array(*columns):  # the shipped UDF's body, with the array instead of the struct
        return array_of(score_batch(columns, model_path, Cuts()))

    array_type = ArrayType(FloatType(), False)
    four, six = LIGHT_CURVE_COLUMNS[:4], LIGHT_CURVE_COLUMNS
    ctx = {"model_path": model_path}
    return {
        "noop": noop_column(df, ctx),
        "io_4_double": arrow(zeros, DoubleType(), four),
        "io_6_double": arrow(zeros, DoubleType(), six),
        "io_6_array": arrow(lambda *c: array_of(uniform_scores(len(c[0]))), array_type, six),
        "io_6_t2": _t2_io_only_column(df, ctx),
        "t2_array": arrow(t2_array, array_type, six),
        "t2": _t2_column(df, ctx),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--model", default=None, help="model file (default: the shipped one)")
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "bench"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    from fink_t2.bench.harness import (
        ARROW_BATCH_FINK_PERF,
        _cached,
        _spark_conf,
        _summarize_output,
        machine_facts,
        model_facts,
        start_spark,
        time_spark_module,
    )
    from fink_t2.bench.inputs import build_input
    from fink_t2.bench.profiling import profile_t2

    path, _ = build_input(args.alerts, args.workdir)
    spark = start_spark(args.cores, "4g", Path(args.workdir) / "ceiling_bound.log")
    for key, value in _spark_conf(args.cores, ARROW_BATCH_FINK_PERF).items():
        spark.conf.set(key, value)
    df, count = _cached(spark, path, args.cores, LIGHT_CURVE_COLUMNS)
    columns = _columns(df, args.model)
    seconds: dict[str, list[float]] = {name: [] for name in columns}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in columns}  # driver + JVM + workers
    for round_index in range(args.repeats + 1):  # round 0 starts the workers and loads the model: dropped
        for name, column in columns.items():  # one repeat per round: machine noise hits every module alike
            wall, out, cpu = time_spark_module(df, column, 1)
            seconds[name] += wall
            cpu_seconds[name] += cpu if cpu is not None else [float("nan")]
            if round_index == 0 and name == "t2":
                classified = _summarize_output("t2", out["_bench"])["classified"]
        print(f"round {round_index}: " + ", ".join(f"{n} {s[-1]:.2f}s" for n, s in seconds.items()),
              file=sys.stderr, flush=True)
    spark.stop()

    us = {name: statistics.median(s[1:]) * args.cores / count * 1e6 for name, s in seconds.items()}
    cpu_us = {name: statistics.median(s[1:]) / count * 1e6 for name, s in cpu_seconds.items()}
    noop = us["noop"]
    profile = profile_t2(path, batch_alerts=10_000, model_path=args.model)
    in_process = {"batch": profile["alerts"], **{f"{stage}_us": us_per_alert
                                                 for stage, us_per_alert in profile["stages_us_per_alert"].items()}}
    print(f"\n{count:,} alerts ({classified:,} classified by t2), local[{args.cores}], median of {args.repeats}; "
          "us = microseconds per alert per core (wall); CPU us = CPU time of driver, JVM and workers per alert")
    print(f"{'module':<13} {'us':>6} {'x ceiling':>10} {'CPU us':>7} {'x ceiling':>10}")
    for name, value in us.items():
        print(f"{name:<13} {value:6.1f} {noop / value:10.3f} {cpu_us[name]:7.1f} {cpu_us['noop'] / cpu_us[name]:10.3f}")
    budget = {kind: noop / TARGET - us[io] for kind, io in (("t2 struct", "io_6_t2"), ("array", "io_6_array"))}
    own = {"t2 struct": us["t2"] - us["io_6_t2"], "array": us["t2_array"] - us["io_6_array"]}
    print(f"\nto reach {TARGET} of the ceiling a module may take {noop / TARGET:.1f} us per alert per core in all")
    for kind in budget:
        io = "io_6_t2" if kind == "t2 struct" else "io_6_array"
        print(f"{kind:<10}: zero-work bound {noop / us[io]:.3f}; left for t2's own work {budget[kind]:5.1f} us; "
              f"t2's own work measured {own[kind]:5.1f} us")
    print(f"in one process, batch of {in_process['batch']:,}: Arrow arrays -> observations "
          f"{in_process['observations_us']:.1f} us, preparation {in_process['preparation_us']:.1f} us, "
          f"LiteRT interpreter alone {in_process['interpreter_us']:.1f} us per alert")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "alerts": count, "classified": classified, "cores": args.cores, "repeats": args.repeats,
            "seconds": seconds, "cpu_seconds": cpu_seconds, "us_per_alert_per_core": us, "cpu_us_per_alert": cpu_us,
            "x_ceiling": {n: noop / v for n, v in us.items()},
            "target_x_ceiling": TARGET, "budget_us_for_target": budget, "own_work_us": own, "in_process": in_process,
            "machine": machine_facts(), "model": model_facts(args.model),
        }, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    sys.exit(main())
