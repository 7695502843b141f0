"""Alerts/s of ``score_alerts`` on one big Arrow batch for several internal chunk sizes, side by side.

Spark hands a worker one Arrow batch per partition and ``maxRecordsPerBatch``
(Fink uses 1,000,000): ``score_alerts`` then prepares and scores
``fink_t2.scoring.classifier.SCORING_CHUNK`` alerts at a time. This measures that choice
on the benchmark's replicated real alerts, one core, rounds alternating.

    python benchmarks/chunk_size.py [--input runs/bench/alerts-200000-*.parquet] [--alerts 100000]
"""

from __future__ import annotations

import argparse
import glob
import sys
import time

import pyarrow.parquet as pq


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=None, help="parquet with Fink's c* columns (default: fink-t2 bench's)")
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chunks", default="100000,50000,20000,10000,5000,2000")
    args = parser.parse_args(argv)
    path = args.input or next(iter(sorted(glob.glob("runs/bench/alerts-200000-*.parquet"))), None)
    if path is None:
        print("no input: run 'fink-t2 bench' once (it caches its input under runs/bench) or pass --input",
              file=sys.stderr)
        return 2

    import fink_t2.scoring.classifier as scoring
    from fink_t2.scoring.runtime import get_model

    names = ["cjd", "cfid", "cmagpsf", "csigmapsf", "cdiffmaglim", "cisdiffpos"]
    table = pq.read_table(path, columns=names).slice(0, args.alerts)
    columns = {name: table.column(name).combine_chunks() for name in names}
    model = get_model()

    def run() -> float:
        start = time.perf_counter()
        scoring.score_alerts(columns["cjd"], columns["cfid"], columns["cmagpsf"], columns["csigmapsf"],
                             cisdiffpos=columns["cisdiffpos"], cdiffmaglim=columns["cdiffmaglim"], model=model)
        return table.num_rows / (time.perf_counter() - start)

    chunks = [int(c) for c in args.chunks.split(",")]
    scoring.SCORING_CHUNK = 10_000
    run()  # warm-up
    rates: dict[int, list[float]] = {c: [] for c in chunks}
    for _ in range(args.rounds):
        for chunk in chunks:
            scoring.SCORING_CHUNK = chunk
            rates[chunk].append(run())
    print(f"{table.num_rows:,} alerts in one batch, one core; alerts/s per round")
    for chunk, values in rates.items():
        print(f"chunk {chunk:>7,}: " + "  ".join(f"{v:,.0f}" for v in values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
