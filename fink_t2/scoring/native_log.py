"""LiteRT's native notices kept out of the logs of every Spark worker.

LiteRT's C++ runtime writes "INFO: Created TensorFlow Lite XNNPACK delegate for
CPU." straight to file descriptor 2 when an interpreter allocates its tensors
(once per worker process and model); no environment variable or Python logger
controls it. :func:`litert_notices_dropped` catches that descriptor for the call,
drops the notice and passes every other line on to the real stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

#: Lines of LiteRT's native output that carry no information for a broker.
DROPPED_NOTICES = ("Created TensorFlow Lite XNNPACK delegate",)

_LOCK = threading.Lock()


@contextlib.contextmanager
def litert_notices_dropped() -> Iterator[None]:
    """Within the block, native writes to stderr lose LiteRT's notices; other lines are written on afterwards."""
    with _LOCK, tempfile.TemporaryFile() as caught:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().splitlines(keepends=True)
                    if not any(notice.encode() in line for notice in DROPPED_NOTICES)]
            if kept:
                os.write(2, b"".join(kept))
