"""What t2's design choices cost inside Spark: output column type, Arrow batch size, interpreter chunk.

Same input and measurement as ``fink-t2 bench`` (cached replicated real
alerts, ``withColumn(udf).select(c).toPandas()``, alerts/s/core), one Spark
session, several variants of the t2 UDF that differ in ONE thing each:

* output type: the shipped ``struct<map<string,float>, string, string>``,
  ``struct<array<float>, string, string>``, a bare ``array<float>``, one double;
* ``spark.sql.execution.arrow.maxRecordsPerBatch``;
* the number of light curves per interpreter call (``T2Model.predict(chunk=)``).

Diagnostic only (it does not change the package). Usage, from the repository root::

    python benchmarks/t2_spark_variants.py [--alerts 50000] [--cores 1] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from pyspark.sql.functions import pandas_udf  # noqa: E402
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType  # noqa: E402

from fink_t2.bench import harness as bench  # noqa: E402
from fink_t2.bench.inputs import DEFAULT_WORKDIR, build_input  # noqa: E402
from fink_t2.bench.modules import noop_column  # noqa: E402
from fink_t2.scoring import Scores, score_alerts, t2_frame  # noqa: E402
from fink_t2.scoring.runtime import get_model  # noqa: E402
from fink_t2.spark.processor import T2_TYPE, t2_input_columns  # noqa: E402

ARRAY_STRUCT = StructType([StructField("probabilities", ArrayType(FloatType(), False), True),
                           StructField("top_class", StringType(), True), StructField("reason", StringType(), True)])


def _scores(columns: tuple, chunk: int | None) -> Scores:
    """t2's scoring of one Arrow batch; ``chunk`` light curves per interpreter call (None: the runtime's)."""
    model = get_model()
    if chunk is not None:
        # The runtime only ever grows its interpreter batch; start each variant from the size asked for.
        model._batch = 0  # noqa: SLF001 -- diagnostic
        predict = model.predict
        model.predict = lambda values, chunk=chunk: type(model).predict(model, values, chunk=chunk)
    try:
        cjd, cfid, cmagpsf, csigmapsf, cdiffmaglim, cisdiffpos = columns[:6]
        return score_alerts(cjd, cfid, cmagpsf, csigmapsf, cisdiffpos=cisdiffpos, cdiffmaglim=cdiffmaglim,
                            model=model)
    finally:
        if chunk is not None:
            model.predict = predict
            model._batch = 0  # noqa: SLF001 -- the next variant resizes from scratch too


def make_udf(kind: str, chunk: int | None = None):
    """A t2 pandas UDF over the nine ``apply_t2`` columns returning ``kind``."""
    if kind == "struct_map":
        @pandas_udf(T2_TYPE)
        def struct_map(*columns: pd.Series) -> pd.DataFrame:
            return t2_frame(_scores(columns, chunk))
        return struct_map
    if kind == "struct_array":
        @pandas_udf(ARRAY_STRUCT)
        def struct_array(*columns: pd.Series) -> pd.DataFrame:
            scores = _scores(columns, chunk)
            rows = [row if ok else None for row, ok in zip(scores.probabilities.astype(np.float32), scores.classified)]
            return pd.DataFrame({"probabilities": rows, "top_class": scores.top_class(), "reason": scores.reason})
        return struct_array
    if kind == "array":
        @pandas_udf(ArrayType(FloatType()))
        def array(*columns: pd.Series) -> pd.Series:
            return pd.Series(list(_scores(columns, chunk).probabilities.astype(np.float32)))
        return array
    if kind == "double":
        @pandas_udf("double")
        def double(*columns: pd.Series) -> pd.Series:
            return pd.Series(np.nanmax(_scores(columns, chunk).probabilities, axis=1))
        return double
    raise ValueError(kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=50_000)
    parser.add_argument("--cores", type=int, default=1, help="local[N]; 1 limits noise from other processes")
    parser.add_argument("--repeats", type=int, default=2, help="the best of the repeats is reported")
    parser.add_argument("--workdir", default=str(DEFAULT_WORKDIR))
    args = parser.parse_args()
    path, facts = build_input(args.alerts, args.workdir)
    spark = bench.start_spark(args.cores, "4g", Path(args.workdir) / "spark.log")
    cores = bench.session_cores(spark)
    df, n = bench._cached(spark, path, cores)  # noqa: SLF001
    columns = t2_input_columns(df)

    def measure(label: str, column, batch: int = bench.ARROW_BATCH_FINK_PERF) -> None:
        for key, value in bench._spark_conf(cores, batch).items():  # noqa: SLF001
            spark.conf.set(key, value)
        seconds, _, cpu = bench.time_spark_module(df, column, args.repeats)
        best = min(seconds)
        per_cpu = f"{n / min(cpu):>9,.0f} alerts/CPU-s" if cpu else ""
        print(f"{label:<50} {best:7.2f} s {n / best / cores:>9,.0f} alerts/s/core {per_cpu}", flush=True)

    print(f"{n:,} alerts, local[{cores}], best of {args.repeats}; model {get_model().metadata['sha256'][:12]}")
    bench.time_spark_module(df, noop_column(df, {}), 1)  # start the workers
    measure("no-op (4 columns, returns 0.0)", noop_column(df, {}))
    for kind in ("struct_map", "struct_array", "array", "double"):
        measure(f"output {kind}", make_udf(kind)(*columns))
    for batch in (1_000_000, 10_000, 2_000):
        measure(f"struct_map, Arrow batch {batch:,}", make_udf("struct_map")(*columns), batch)
    for chunk in (1024, 256, 64):
        measure(f"struct_map, interpreter chunk {chunk}", make_udf("struct_map", chunk)(*columns))
    spark.stop()


if __name__ == "__main__":
    main()
