"""fink-t2: real-time classification of ZTF alerts into 14 transient classes.

The scoring path (``classify``, the Spark processor) needs numpy, pandas,
pyarrow and the LiteRT interpreter only; TensorFlow is a training extra.

Five subpackages, imports flowing one way (README, "Layout"): :mod:`fink_t2.scoring`
(the serving core), :mod:`fink_t2.spark` (the UDF and the stream), :mod:`fink_t2.tools`
(batch scorer, CLI), :mod:`fink_t2.training` and :mod:`fink_t2.bench`.
"""

from fink_t2.scoring.classes import CLASS_CODES, CLASSES, N_CLASSES
from fink_t2.spark import SPARK_MISSING, SparkMissingError, require_spark

__version__ = "0.1.0"

__all__ = ["CLASSES", "CLASS_CODES", "N_CLASSES", "SPARK_MISSING", "classify", "require_spark", "SparkMissingError",
           "__version__"]


def __getattr__(name: str):
    # ``classify`` is imported lazily so that ``import fink_t2`` stays cheap.
    if name == "classify":
        from fink_t2.scoring.classifier import classify

        return classify
    raise AttributeError(f"module 'fink_t2' has no attribute {name!r}")
