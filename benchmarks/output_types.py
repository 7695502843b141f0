"""Price of the ``t2`` column's type in Fink's measure, with no scoring at all.

One Spark session, ``local[2]``, 200,000 rows: an Arrow UDF returns, for every
row, the same 14 probabilities plus ``top_class`` and ``reason`` as

* ``map``: ``struct<probabilities: map<string, float>, top_class, reason>`` (Fink's historical t2),
* ``nested``: ``struct<probabilities: struct<14 floats>, top_class, reason>``,
* ``flat``: ``struct<14 floats, top_class, reason>`` (what fink-t2 ships),
* ``array``: ``struct<probabilities: array<float>, top_class, reason>`` (no class names),

and ``noop`` returns one double; each is timed as Fink does,
``withColumn(udf).select(col).toPandas()``. Needs Spark >= 4.1 (``arrow_udf``).

    python benchmarks/output_types.py [--rows 200000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import pyarrow as pa


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql.functions import ArrowUDFType, arrow_udf
    from pyspark.sql.types import ArrayType, DoubleType, FloatType, MapType, StringType, StructField, StructType

    from fink_t2.scoring.classes import CLASSES

    names = list(CLASSES)
    spark = (SparkSession.builder.master("local[2]").appName("t2-output-types")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true")
             .config("spark.sql.execution.arrow.maxRecordsPerBatch", "1000000").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.range(args.rows).withColumn("x", F.rand(1)).repartition(2).cache()
    df.count()

    def probabilities(n: int) -> np.ndarray:
        p = np.random.default_rng(0).random((n, len(names))).astype(np.float32)
        return p / p.sum(axis=1, keepdims=True)

    def extras(p: np.ndarray) -> list[pa.Array]:
        return [pa.array(np.asarray(names, dtype=object)[p.argmax(1)], pa.string()), pa.nulls(len(p), pa.string())]

    strings = [StructField("top_class", StringType()), StructField("reason", StringType())]
    floats = StructType([StructField(n, FloatType()) for n in names])

    def build(kind: str, n: int) -> pa.Array:
        p = probabilities(n)
        if kind == "noop":
            return pa.array(np.zeros(n))
        if kind == "flat":
            return pa.StructArray.from_arrays([pa.array(p[:, i]) for i in range(len(names))] + extras(p),
                                              names=names + ["top_class", "reason"])
        offsets = pa.array(np.arange(n + 1, dtype=np.int32) * len(names))
        if kind == "map":
            keys = pa.array(np.tile(np.asarray(names, dtype=object), n), pa.string())
            inner = pa.MapArray.from_arrays(offsets, keys, pa.array(p.ravel()))
        elif kind == "nested":
            inner = pa.StructArray.from_arrays([pa.array(p[:, i]) for i in range(len(names))], names=names)
        else:
            inner = pa.ListArray.from_arrays(offsets, pa.array(p.ravel()))
        return pa.StructArray.from_arrays([inner] + extras(p), names=["probabilities", "top_class", "reason"])

    types = {
        "noop": DoubleType(),
        "map": StructType([StructField("probabilities", MapType(StringType(), FloatType(), False))] + strings),
        "nested": StructType([StructField("probabilities", floats)] + strings),
        "flat": StructType(list(floats.fields) + strings),
        "array": StructType([StructField("probabilities", ArrayType(FloatType(), False))] + strings),
    }
    udfs = {kind: arrow_udf(lambda x, kind=kind: build(kind, len(x)), t, ArrowUDFType.SCALAR)
            for kind, t in types.items()}
    seconds: dict[str, list[float]] = {kind: [] for kind in udfs}
    for _ in range(args.repeats + 1):  # the first round warms the workers up and is dropped
        for kind, udf in udfs.items():
            start = time.perf_counter()
            df.withColumn("c", udf("x")).select("c").toPandas()
            seconds[kind].append(time.perf_counter() - start)
    cores = 2
    print(f"{args.rows:,} rows, local[{cores}], median of {args.repeats}")
    print(f"{'output type':<10} {'median s':>9} {'us/row/core':>12} {'minus noop':>11}")
    noop = statistics.median(seconds["noop"][1:])
    for kind, values in seconds.items():
        median = statistics.median(values[1:])
        print(f"{kind:<10} {median:9.2f} {median * cores / args.rows * 1e6:12.1f} "
              f"{(median - noop) * cores / args.rows * 1e6:11.1f}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
