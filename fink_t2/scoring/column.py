"""The ``t2`` column: its type (Spark, Arrow, Avro-legal names, HBase flattening) and its values.

One column per alert (Fink convention): a struct of one double per class, named
as in :data:`fink_t2.scoring.classes.CLASS_FIELDS` (null for a declined alert),
then ``top_class`` and ``reason``. Here :class:`~fink_t2.scoring.classifier.Scores`
become that column as pandas (the Spark pandas UDF) or Arrow (the Arrow UDF,
parquet), and a collected value becomes a ``{class name: probability}`` dict.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from fink_t2.scoring.classes import CLASS_FIELDS, CLASSES
from fink_t2.scoring.classifier import Scores

#: Fields of the ``t2`` struct after the 14 class probabilities (which are named as in
#: ``fink_t2.scoring.classes.CLASS_FIELDS``).
T2_EXTRA_FIELDS: tuple[str, ...] = ("top_class", "reason")

#: Every field of the ``t2`` struct, in order: the class fields (Avro-legal spellings of ``CLASSES``:
#: ``mu_Lens_Single``, ``M_dwarf``, ``SNIa_91bg``, ``SLSN_I``, the others unchanged), then the extras.
T2_FIELDS: tuple[str, ...] = (*CLASS_FIELDS, *T2_EXTRA_FIELDS)

#: Spark type of the ``t2`` column (one column, Fink convention): one double per class (as Fink's other
#: classifiers' scores), named as in
#: ``CLASS_FIELDS`` (null for a declined alert), then ``top_class`` (the human class name, as in
#: ``CLASSES``) and ``reason`` (null for a classified one). A struct of named floats rather than Fink's
#: historical map: the same "class -> probability" access (``t2.SNIa``, ``t2['SNIa']``) at half the cost
#: per alert in Spark (docs/performance.md). Every name is a legal Avro name, so Fink can distribute the
#: column over Kafka (Avro) and flatten it into HBase columns (``t2_SNIa``) as it is.
T2_TYPE_DDL = ("struct<" + ", ".join([f"{name}: double" for name in CLASS_FIELDS]
                                     + [f"{name}: string" for name in T2_EXTRA_FIELDS]) + ">")

#: The entries fink-broker's HBase whitelist (``load_fink_cols``, its nested columns) needs for the ``t2``
#: column: key ``t2.<field>`` as Fink lists nested columns, its HBase type and default. Fink flattens each to
#: the column ``t2_<field>`` (:func:`hbase_name`) of family ``d``. The default is only written when the whole
#: column is missing from Fink's DataFrame; a declined alert's null probabilities and ``top_class`` (and a
#: classified one's null ``reason``) stay null (docs/fink_integration.md).
T2_HBASE_COLUMNS: dict[str, dict] = {
    **{f"t2.{name}": {"type": "double", "default": None} for name in CLASS_FIELDS},
    **{f"t2.{name}": {"type": "string", "default": None} for name in T2_EXTRA_FIELDS},
}


def hbase_name(key: str) -> str:
    """The HBase column of a whitelist key, as Fink flattens nested columns: ``t2.SNIa`` -> ``t2_SNIa``."""
    return key.replace(".", "_")


def t2_frame(scores: Scores) -> pd.DataFrame:
    """The ``t2`` struct as a pandas DataFrame (what the Spark pandas UDF returns): one column per field."""
    frame = pd.DataFrame(scores.probabilities.astype(np.float64), columns=list(CLASS_FIELDS))
    # object columns whatever pandas' default string dtype: a declined alert's top_class must stay None
    # (pandas 3's str dtype would turn it into NaN, which Spark then reads as the string "NaN").
    frame["top_class"] = pd.Series(scores.top_class(), dtype=object)
    frame["reason"] = pd.Series(scores.reason, dtype=object)
    return frame


def t2_arrow(scores: Scores) -> pa.StructArray:
    """The ``t2`` struct as a pyarrow StructArray, same type as the Spark column (for parquet)."""
    declined = ~scores.classified
    fields = [pa.array(column, type=pa.float64(), mask=declined)
              for column in scores.probabilities.astype(np.float64).T]
    fields.append(pa.array(scores.top_class(), type=pa.string()))
    fields.append(pa.array(scores.reason, type=pa.string()))
    return pa.StructArray.from_arrays(fields, names=list(T2_FIELDS))


def top_classes(probs: pd.DataFrame) -> pd.Series:
    """The most probable class of each row of :func:`fink_t2.classify`'s output, None for a declined alert.

    ``probs.idxmax(axis=1)`` fails on pandas 3 when a row is all NaN (a declined
    alert) and returned NaN with a warning before; this works on every pandas.
    """
    values = probs.to_numpy(dtype=np.float64)
    classified = ~np.isnan(values).any(axis=1) if values.size else np.zeros(len(probs), dtype=bool)
    best = np.argmax(np.where(np.isnan(values), -np.inf, values), axis=1) if values.size else np.zeros(0, int)
    names = np.asarray(probs.columns, dtype=object)
    return pd.Series(np.where(classified, names[best] if len(names) else None, None), index=probs.index,
                     dtype=object, name="top_class")


def t2_probabilities(value) -> dict[str, float] | None:
    """Class name -> probability of one ``t2`` value (a dict, or a Spark Row), None for a declined alert.

    Keys are the human class names of ``CLASSES`` (``"SNIa-91bg"``), read from their Avro-legal
    fields (``SNIa_91bg``). Raises if a classified value lacks a class: a half-filled struct is a
    bug, not a result.
    """
    if value is None:
        return None
    fields = value.asDict() if hasattr(value, "asDict") else value
    if fields.get("top_class") is None:
        if any(fields.get(name) is not None for name in CLASS_FIELDS):
            raise ValueError(f"declined t2 value carries probabilities: {fields}")
        return None
    return {name: float(fields[key]) for name, key in zip(CLASSES, CLASS_FIELDS)}


def t2_arrow_type() -> pa.DataType:
    """pyarrow type of the ``t2`` column."""
    return pa.struct([(name, pa.float64()) for name in CLASS_FIELDS]
                     + [(name, pa.string()) for name in T2_EXTRA_FIELDS])
