"""``spark-submit run_t2_stream.py [flags]``: the t2 stream (:mod:`fink_t2.spark.stream`) for spark-submit.

A thin wrapper: the job itself is the package module ``fink_t2.spark.stream``, also
installed as ``fink-t2 stream`` (same flags).
"""

from __future__ import annotations

import sys

from fink_t2.spark import stream as _stream
from fink_t2.spark.stream import *  # noqa: F403 - the stream's functions, for callers of this script


def main(argv: list[str] | None = None, spark=None) -> int:
    """The stream's entry point, with errors prefixed ``run_t2_stream:``."""
    return _stream.main(argv, spark=spark, prog="run_t2_stream")

if __name__ == "__main__":
    sys.exit(main())
