"""fink-t2: real-time classification of ZTF alerts into 14 transient classes.

The scoring path (``classify``, the Spark processor) needs numpy, pandas,
pyarrow and the LiteRT interpreter only; TensorFlow is a training extra.
"""

import importlib.util

from fink_t2.classes import CLASS_CODES, CLASSES, N_CLASSES

__version__ = "0.1.0"

__all__ = ["CLASSES", "CLASS_CODES", "N_CLASSES", "classify", "require_spark", "SparkMissingError", "__version__"]

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


def __getattr__(name: str):
    # ``classify`` is imported lazily so that ``import fink_t2`` stays cheap.
    if name == "classify":
        from fink_t2.scoring import classify

        return classify
    raise AttributeError(f"module 'fink_t2' has no attribute {name!r}")
