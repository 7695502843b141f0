"""Local paths as Spark's (Hadoop's) file readers and writers take them: literally, or not at all.

Hadoop expands glob characters in a path (``lake[1]`` would read ``lake1``)
and cannot represent a ``:`` in a file name; the Spark jobs (the batch
scorer's Spark engine, the stream) pass every path through here. No pyspark
import: these are string rules, checked before Spark starts.
"""

from __future__ import annotations

import re
from pathlib import Path

from fink_t2.scoring.inputs import InputError

_GLOB_CHARS = re.compile(r"([\\*?\[\]{}])")


def spark_literal(path: str | Path) -> str:
    """``path`` as Spark's readers take it literally: absolute, with Hadoop's glob characters escaped."""
    check_spark_path(path)
    return _GLOB_CHARS.sub(r"\\\1", str(Path(path).absolute()))


def check_spark_path(path: str | Path) -> None:
    """InputError for a path Hadoop cannot represent (a ':' in a file or directory name)."""
    absolute = Path(path).absolute()
    for part in absolute.parts:
        if ":" in part:
            raise InputError(f"{path}: Spark (Hadoop) cannot read or write a path with ':' in a name ({part!r}); "
                             "rename it without ':' (the pandas engine reads such a file as it is)")
