"""Test-only: every t2 UDF batch in Spark's Python workers waits before scoring, and says so on stderr.

tests/test_stream_faults.py puts this folder first on the PYTHONPATH of a streaming
job it starts, with T2_TEST_BATCH_SECONDS set: Python imports this module at start-up
in the driver and every worker, and it wraps ``fink_t2.spark.processor.score_batch``,
so that a SIGKILL can be sent while a micro-batch is inside the UDF. The package
itself has no such hook.
"""

import os
import sys
import time

SECONDS = float(os.environ.get("T2_TEST_BATCH_SECONDS") or 0)
#: Printed on the worker's stderr (in the job's log) when a batch enters the UDF.
MARKER = "t2 test batch: "

if SECONDS > 0:
    from fink_t2.spark import processor

    _score_batch = processor.score_batch

    def slow_score_batch(columns, *args, **kwargs):
        print(f"{MARKER}{len(columns[0])} alerts, waiting {SECONDS} s", file=sys.stderr, flush=True)
        time.sleep(SECONDS)
        return _score_batch(columns, *args, **kwargs)

    processor.score_batch = slow_score_batch
