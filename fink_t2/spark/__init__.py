"""The Spark layer, thin over the serving core: the science module's UDF (``processor``) and the stream.

May import pyspark and :mod:`fink_t2.scoring`, nothing else of fink_t2 (tests/test_layout.py checks).
Importing this package itself needs no pyspark: :func:`require_spark` and :class:`SparkMissingError`
say in one line how to install it.
"""

from __future__ import annotations

import importlib.util

__all__ = ["SPARK_MISSING", "SparkMissingError", "require_spark"]

#: What to do when pyspark is missing (the Spark module, ``--engine spark`` and the stream need it).
SPARK_MISSING = ("pyspark is not installed: install the Spark extra, pip install 'fink-t2[spark]' "
                 "(or score without Spark: fink-t2 score --engine pandas, fink_t2.classify)")


class SparkMissingError(ImportError):
    """pyspark is needed and absent: one line saying how to install it."""


def require_spark() -> None:
    """SparkMissingError (:data:`SPARK_MISSING`) unless pyspark can be imported: scoring itself never needs it."""
    try:
        found = importlib.util.find_spec("pyspark") is not None
    except (ImportError, ValueError):  # a broken or half-removed installation
        found = False
    if not found:
        raise SparkMissingError(SPARK_MISSING)
