"""Where t2's time and memory go: a fresh worker process probed, one Arrow batch profiled stage by stage."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from fink_t2.scoring.alerts import OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from fink_t2.scoring.paths import PACKAGE

#: BLAS/OpenMP thread variables set to 1 in Spark's Python workers (one task = one core).
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

def stopwatch() -> tuple[dict[str, float], Callable[[str], None]]:
    """``laps`` (stage -> perf_counter time, from "start", in order) and ``lap(stage)`` recording one."""
    laps = {"start": time.perf_counter()}
    return laps, lambda stage: laps.__setitem__(stage, time.perf_counter())



_PROBE = r"""
import json, resource, sys, time
started = time.time()


def peak_mb():
    # VmHWM: peak RSS of this process image; ru_maxrss would include the parent's from before exec.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


import numpy as np
import pandas as pd
from fink_t2.scoring.classifier import classify_with_reasons

alert = json.loads(sys.argv[1])
row = {k: [np.array(v, dtype=object if k == "cisdiffpos" else np.float64)] for k, v in alert.items()}
probabilities, reasons = classify_with_reasons(pd.DataFrame(row))
first = time.time()
out = {"started": started, "first_alert": first, "first_alert_classified": reasons.iloc[0] is None,
       "maxrss_mb_first_alert": peak_mb(),
       "tensorflow_imported": any(m == "tensorflow" or m.startswith("tensorflow.") for m in sys.modules),
       "batches": []}
import pyarrow.parquet as pq
columns = ["cjd", "cfid", "cmagpsf", "csigmapsf", "cisdiffpos", "cdiffmaglim"]
for size in json.loads(sys.argv[3]):
    # Only the first row groups are read: the probe holds what a worker holds, one batch.
    batch = next(pq.ParquetFile(sys.argv[2]).iter_batches(batch_size=size, columns=columns))
    pdf = batch.to_pandas()
    del batch
    t = time.perf_counter()
    classify_with_reasons(pdf)
    out["batches"].append({"alerts": len(pdf), "seconds": time.perf_counter() - t,
                           "maxrss_mb": peak_mb()})
import pyspark.sql  # what a Spark Python worker has loaded as well
out["maxrss_mb_with_pyspark"] = peak_mb()
out["tensorflow_imported"] = out["tensorflow_imported"] or "tensorflow" in sys.modules
print(json.dumps(out))
"""


def _probe_alert(path: Path) -> dict:
    """The input's first alert the model judges, as plain lists (None for nulls), for the probe's command line.

    An alert the model declines (a lone detection, fewer than ``fink_t2.scoring.MIN_DETECTIONS``) would time
    a cold start without the interpreter call.
    """
    from fink_t2.scoring.classifier import classify_with_reasons

    head = pq.read_table(path, columns=[*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]).slice(0, 200)
    reasons = classify_with_reasons(head.to_pandas())[1]
    judged = np.flatnonzero(reasons.isna().to_numpy())
    row = head.slice(int(judged[0]) if len(judged) else 0, 1)
    alert = {}
    for name in row.column_names:
        values = row.column(name).to_pylist()[0]
        alert[name] = list(values) if name == "cisdiffpos" else \
            [float("nan") if v is None else float(v) for v in values]
    return alert


def probe_worker(path: Path, batch_sizes: Sequence[int]) -> dict:
    """A fresh Python process that imports the scoring path, classifies one alert, then whole batches.

    Reports the time from process launch to the first alert classified (a
    Spark Python worker's cold start: interpreter, imports, model load), peak
    RSS after it and after each batch, and whether TensorFlow got imported.
    """
    root = str(PACKAGE.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    for variable in THREAD_VARIABLES:
        env.setdefault(variable, "1")
    alert = json.dumps(_probe_alert(path), allow_nan=True)
    launched = time.time()
    done = subprocess.run([sys.executable, "-c", _PROBE, alert, str(path), json.dumps([int(b) for b in batch_sizes])],
                          capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"worker probe failed: {done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["interpreter_start_s"] = out.pop("started") - launched
    out["first_alert_s"] = out.pop("first_alert") - launched
    out["maxrss_mb_peak"] = max([out["maxrss_mb_first_alert"]] + [b["maxrss_mb"] for b in out["batches"]])
    return out



def profile_t2(path: Path, batch_alerts: int = 10_000, repeats: int = 3, model_path=None, top: int = 14) -> dict:
    """Where one Arrow batch of t2 spends its time inside a worker, stage by stage, plus a cProfile.

    The steps of the Arrow UDF (Spark >= 4.1): Observations from the alert
    arrays as Arrow hands them over; preparation (selection + GP onto the
    grid); the interpreter; building the ``t2`` Arrow struct.
    """
    import cProfile
    import io
    import pstats

    from fink_t2.scoring.classifier import score_stages
    from fink_t2.scoring.column import t2_arrow
    from fink_t2.scoring.runtime import get_model

    columns = [*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]  # what the UDF gets without cuts
    table = pq.read_table(path, columns=columns).slice(0, int(batch_alerts))
    n = table.num_rows
    model = get_model(model_path)

    def one_batch(clock: dict | None) -> None:
        laps, lap = stopwatch()
        arrays = {name: table.column(name).combine_chunks() for name in columns}  # as the Arrow UDF gets them
        scores = score_stages(model, [arrays[c] for c in REQUIRED_COLUMNS], {c: arrays[c] for c in OPTIONAL_COLUMNS},
                              lap=lap)
        t2_arrow(scores)
        lap("t2_arrow")
        marks = list(laps.items())
        if clock is not None:
            for (_, before), (name, after) in zip(marks, marks[1:]):
                clock.setdefault(name, []).append(after - before)

    one_batch(None)  # warm-up: model load, first allocations
    clock: dict[str, list[float]] = {}
    for _ in range(int(repeats)):
        one_batch(clock)
    stages = {name: float(statistics.median(values)) for name, values in clock.items()}
    total = sum(stages.values())
    profiler = cProfile.Profile()
    profiler.enable()
    one_batch(None)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).strip_dirs().sort_stats("tottime").print_stats(int(top))
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return {
        "alerts": n,
        "stages_s": stages,
        "stages_us_per_alert": {k: v / n * 1e6 for k, v in stages.items()},
        "stages_share": {k: v / total for k, v in stages.items()},
        "total_s": total,
        "alerts_per_s": n / total,
        "cprofile_top": lines[start:start + int(top) + 1],
    }
