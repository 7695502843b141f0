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
* ``t2``: the shipped module (``fink_t2.processor.t2_column``, no cuts).

For each interface it prints the zero-work bound (its ``io_*`` rate over the
ceiling) and the per-alert budget left for t2's own work if t2 is to reach
0.5 of the ceiling (twice the no-op's time minus the interface's), next to
what t2's own work costs (the module minus its ``io_*`` twin) and, in one
process, the preparation and the LiteRT interpreter alone. Writes JSON with ``--json``.

    python benchmarks/ceiling_bound.py [--alerts 200000] [--repeats 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
LIGHT_CURVE_COLUMNS = ("cjd", "cfid", "cmagpsf", "csigmapsf", "cdiffmaglim", "cisdiffpos")
TARGET = 0.5


def _udfs(model_path: str | None) -> dict:
    """name -> (udf, input columns). Arrow UDFs except the pandas no-op (the issue's ceiling)."""
    from pyspark.sql.functions import ArrowUDFType, arrow_udf, pandas_udf
    from pyspark.sql.types import ArrayType, DoubleType, FloatType

    from fink_t2.classes import N_CLASSES
    from fink_t2.processor import T2_TYPE, make_t2_udf
    from fink_t2.runtime import get_model
    from fink_t2.scoring import Scores, score_alerts, t2_arrow

    def constant_scores(n: int) -> Scores:
        return Scores(np.full((n, N_CLASSES), 1.0 / N_CLASSES), np.full(n, None, dtype=object))

    def array_of(scores: Scores) -> pa.Array:
        n = len(scores.reason)
        flat = pa.array(scores.probabilities.astype(np.float32).ravel())
        offsets = pa.array(np.arange(n + 1, dtype=np.int32) * N_CLASSES)
        return pa.ListArray.from_arrays(offsets, flat, mask=pa.array(~scores.classified))

    def arrow(function, return_type):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*type hints for arrow UDF.*", category=UserWarning)
            return arrow_udf(function, return_type, ArrowUDFType.SCALAR)

    @pandas_udf("double")
    def noop(cjd: pd.Series, cfid: pd.Series, cmagpsf: pd.Series, csigmapsf: pd.Series) -> pd.Series:
        return pd.Series(np.zeros(len(cjd)))

    def zeros(*columns):
        return pa.array(np.zeros(len(columns[0])))

    def t2_array(*columns):
        names = dict(zip(LIGHT_CURVE_COLUMNS, columns))
        scores = score_alerts(names["cjd"], names["cfid"], names["cmagpsf"], names["csigmapsf"],
                              cisdiffpos=names["cisdiffpos"], cdiffmaglim=names["cdiffmaglim"],
                              model=get_model(model_path))
        return array_of(scores)

    array_type = ArrayType(FloatType(), False)
    four, six = LIGHT_CURVE_COLUMNS[:4], LIGHT_CURVE_COLUMNS
    return {
        "noop": (noop, four),
        "io_4_double": (arrow(zeros, DoubleType()), four),
        "io_6_double": (arrow(zeros, DoubleType()), six),
        "io_6_array": (arrow(lambda *c: array_of(constant_scores(len(c[0]))), array_type), six),
        "io_6_t2": (arrow(lambda *c: t2_arrow(constant_scores(len(c[0]))), T2_TYPE), six),
        "t2_array": (arrow(t2_array, array_type), six),
        "t2": (make_t2_udf(model_path), six),
    }


def interpreter_us_per_alert(path: Path, model_path: str | None, batch: int = 10_000, repeats: int = 5) -> dict:
    """In this process, one core: preparation and the LiteRT interpreter alone, per alert, on one batch."""
    from fink_t2.lightcurves import observations_from_alerts, prepare
    from fink_t2.runtime import get_model

    model = get_model(model_path)
    table = pq.read_table(path, columns=list(LIGHT_CURVE_COLUMNS)).slice(0, batch)
    columns = {c: table.column(c).combine_chunks() for c in LIGHT_CURVE_COLUMNS}  # as the Arrow UDF gets them
    args = [columns[c] for c in LIGHT_CURVE_COLUMNS[:4]]
    obs, _ = observations_from_alerts(*args, cisdiffpos=columns["cisdiffpos"], cdiffmaglim=columns["cdiffmaglim"])
    prepared = prepare(obs, model.preparation)
    values = prepared.values[prepared.ok]
    model.predict(values)
    prep, interp = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        prepare(obs, model.preparation)
        middle = time.perf_counter()
        model.predict(values)
        interp.append(time.perf_counter() - middle)
        prep.append(middle - start)
    return {"batch": batch, "preparation_us": min(prep) / batch * 1e6,
            "interpreter_us": min(interp) / len(values) * 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--model", default=None, help="model file (default: the shipped one)")
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "bench"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    from pyspark.sql import functions as F

    from fink_t2.benchmark import (
        _cached,
        _spark_conf,
        build_input,
        machine_facts,
        model_facts,
        start_spark,
        tree_cpu_seconds,
    )

    path, _ = build_input(args.alerts, args.workdir)
    spark = start_spark(args.cores, "4g", Path(args.workdir) / "ceiling_bound.log")
    for key, value in _spark_conf(args.cores, 1_000_000).items():
        spark.conf.set(key, value)
    df, count = _cached(spark, path, args.cores, LIGHT_CURVE_COLUMNS)
    udfs = _udfs(args.model)
    seconds: dict[str, list[float]] = {name: [] for name in udfs}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in udfs}  # driver + JVM + workers
    for round_index in range(args.repeats + 1):  # round 0 starts the workers and loads the model: dropped
        for name, (udf, columns) in udfs.items():
            cpu_start, start = tree_cpu_seconds(), time.perf_counter()
            out = df.withColumn("c", udf(*[F.col(c) for c in columns])).select("c").toPandas()
            seconds[name].append(time.perf_counter() - start)
            cpu_end = tree_cpu_seconds()
            cpu_seconds[name].append(float("nan") if cpu_start is None or cpu_end is None else cpu_end - cpu_start)
            if round_index == 0 and name == "t2":
                classified = int(sum(v is not None and v["top_class"] is not None for v in out["c"]))
        print(f"round {round_index}: " + ", ".join(f"{n} {s[-1]:.2f}s" for n, s in seconds.items()),
              file=sys.stderr, flush=True)
    spark.stop()

    us = {name: statistics.median(s[1:]) * args.cores / count * 1e6 for name, s in seconds.items()}
    cpu_us = {name: statistics.median(s[1:]) / count * 1e6 for name, s in cpu_seconds.items()}
    noop = us["noop"]
    in_process = interpreter_us_per_alert(path, args.model)
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
    print(f"in one process, batch of {in_process['batch']:,}: preparation {in_process['preparation_us']:.1f} us, "
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
