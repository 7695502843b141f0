"""Throughput of the light-curve preparation on real ZTF alert histories, on one core.

Replicates the real alerts of ``data/alerts_sample.parquet`` (histories cut
to at most ``--max-points`` entries, the issue's "typical ZTF histories, up to
60 points") and times the two stages every alert goes through:
alert columns -> observations (``observations_from_alerts``) and
observations -> model input (``prepare``), for the GP and, for comparison,
the linear-interpolation alternative. Prints alerts per second.

    python benchmarks/preparation_speed.py [--alerts 50000] [--repeats 5]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from fink_t2.scoring.alerts import alert_columns, observations_from_columns
from fink_t2.scoring.lightcurves import PreparationConfig, prepare
from fink_t2.scoring.paths import SAMPLE_ALERTS  # noqa: E402
from fink_t2.scoring.runtime import DEFAULT_MODEL, read_metadata  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def replicated_columns(n_alerts: int, max_points: int) -> pd.DataFrame:
    columns = alert_columns(pq.read_table(SAMPLE_ALERTS))
    columns = columns.apply(lambda col: col.map(lambda seq: None if seq is None else list(seq)[-max_points:]))
    reps = int(np.ceil(n_alerts / len(columns)))
    return pd.concat([columns] * reps, ignore_index=True).iloc[:n_alerts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=50_000)
    parser.add_argument("--max-points", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    config = PreparationConfig.from_dict(read_metadata(DEFAULT_MODEL)["preparation"])
    columns = replicated_columns(args.alerts, args.max_points)
    lengths = columns["cjd"].map(len)
    print(f"{len(columns)} alerts, history length median {lengths.median():.0f}, max {lengths.max()}; "
          f"grid {config.n_steps} x {config.step_days} d; one core")
    results = {}
    for name, cfg in (("gp", config), ("linear", replace(config, method="linear"))):
        convert, grid = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            obs, _ = observations_from_columns(columns)
            middle = time.perf_counter()
            batch = prepare(obs, cfg)
            end = time.perf_counter()
            convert.append(middle - start)
            grid.append(end - middle)
        best_convert, best_grid = min(convert), min(grid)
        results[name] = {"alerts": len(columns), "columns_to_observations_s": best_convert,
                         "prepare_s": best_grid, "alerts_per_s": len(columns) / (best_convert + best_grid),
                         "prepare_only_alerts_per_s": len(columns) / best_grid, "ok": int(batch.ok.sum())}
        print(f"{name:6s}: columns->observations {best_convert:.3f}s, prepare {best_grid:.3f}s -> "
              f"{results[name]['alerts_per_s']:,.0f} alerts/s end to end "
              f"({results[name]['prepare_only_alerts_per_s']:,.0f}/s for prepare alone), best of {args.repeats}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
