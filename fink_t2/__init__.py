"""fink-t2: real-time classification of ZTF alerts into 14 transient classes.

The scoring path (``classify``, the Spark processor) needs numpy, pandas,
pyarrow and the LiteRT interpreter only; TensorFlow is a training extra.
"""

from fink_t2.classes import CLASS_CODES, CLASSES, N_CLASSES

__version__ = "0.1.0"

__all__ = ["CLASSES", "CLASS_CODES", "N_CLASSES", "classify", "__version__"]


def __getattr__(name: str):
    # ``classify`` is imported lazily so that ``import fink_t2`` stays cheap.
    if name == "classify":
        from fink_t2.scoring import classify

        return classify
    raise AttributeError(f"module 'fink_t2' has no attribute {name!r}")
