"""Parquet files of different schemas as ONE Spark DataFrame, nested fields aligned BY NAME.

Fink's files differ: 4.02 stores the ``candidate`` fields in alphabetical
order, the ZTF schema in its own; some store float64/int64 where the ZTF
schema has float32/int32; a column may be all null in one file. Spark's own
cast would match struct fields by position. Here every file is cast to one
schema field by field (``try_cast``): numbers take the widest of the files'
types (int32 and int64: int64; float and double: double), so every value is
read as written, as the pandas engine reads each file, and both engines score
an alert alike (fid 2**32 + 1, magpsf 1e39: an unusable point, dropped);
other leaves take the first file's type, and an alert with a value that does
not fit it is declined with a reason naming the field (the batch scorer's
Spark engine, :func:`fink_t2.tools.batch.score_spark`).
"""

from __future__ import annotations

import pyarrow as pa

from fink_t2.scoring.inputs import InputError, one_line

#: Internal column: why an alert's values do not fit the unified schema (null if they all do).
UNFIT_COLUMN = "__fink_t2_unfit"


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _sql_type(dtype) -> str:
    """Spark SQL text of a data type, struct field names quoted."""
    from pyspark.sql.types import ArrayType, MapType, StructType

    if isinstance(dtype, StructType):
        return "struct<" + ",".join(f"{_quote(f.name)}:{_sql_type(f.dataType)}" for f in dtype.fields) + ">"
    if isinstance(dtype, ArrayType):
        return f"array<{_sql_type(dtype.elementType)}>"
    if isinstance(dtype, MapType):
        return f"map<{_sql_type(dtype.keyType)},{_sql_type(dtype.valueType)}>"
    return dtype.simpleString()


class _Mismatch(ValueError):
    """Two schemas cannot be aligned (a struct against a number, ...)."""


#: Numeric types by family, narrowest first: two files' leaves of one family are read in the wider type.
_NUMERIC_FAMILIES = (("tinyint", "smallint", "int", "bigint"), ("float", "double"))


def _wider(first, other):
    """The wider of two leaf types of one numeric family (int32/int64, float/double), else ``first``."""
    for family in _NUMERIC_FAMILIES:
        names = (first.simpleString(), other.simpleString())
        if names[0] in family and names[1] in family:
            return first if family.index(names[0]) >= family.index(names[1]) else other
    return first


def merged_type(first, other, where: str = ""):
    """``first`` with the nested fields only ``other`` has appended; numeric leaves the wider of the two types
    (:func:`_wider`), other leaves ``first``'s."""
    from pyspark.sql.types import ArrayType, MapType, NullType, StructField, StructType

    if isinstance(first, NullType):  # a column that is all null in the first file takes the other's type
        return other
    if isinstance(other, NullType):
        return first
    if isinstance(first, StructType) or isinstance(other, StructType):
        if not (isinstance(first, StructType) and isinstance(other, StructType)):
            raise _Mismatch(f"{where or 'a column'} is {_sql_type(first)[:60]} in one file, {_sql_type(other)[:60]} "
                            "in the other")
        theirs = {f.name: f for f in other.fields}
        fields = [StructField(f.name, merged_type(f.dataType, theirs[f.name].dataType, f"{where}.{f.name}")
                              if f.name in theirs else f.dataType, True) for f in first.fields]
        names = {f.name for f in first.fields}
        fields += [StructField(f.name, f.dataType, True) for f in other.fields if f.name not in names]
        return StructType(fields)
    if isinstance(first, ArrayType) or isinstance(other, ArrayType):
        if not (isinstance(first, ArrayType) and isinstance(other, ArrayType)):
            raise _Mismatch(f"{where or 'a column'} is an array in one file, not in the other")
        return ArrayType(merged_type(first.elementType, other.elementType, where), True)
    if isinstance(first, MapType) != isinstance(other, MapType):
        raise _Mismatch(f"{where or 'a column'} is a map in one file, not in the other")
    return _wider(first, other)


def _nulled(spark_type, arrow_type):
    """``spark_type`` with NullType where the file's arrow type is null (Spark reads those as int)."""
    from pyspark.sql.types import ArrayType, NullType, StructField, StructType

    if arrow_type is None:
        return spark_type
    if pa.types.is_null(arrow_type):
        return NullType()
    if isinstance(spark_type, StructType) and pa.types.is_struct(arrow_type):
        names = [field.name for field in arrow_type]
        return StructType([StructField(f.name, _nulled(f.dataType, arrow_type[arrow_type.get_field_index(f.name)].type
                                                       if f.name in names else None), True)
                           for f in spark_type.fields])
    if isinstance(spark_type, ArrayType) and (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)):
        return ArrayType(_nulled(spark_type.elementType, arrow_type.value_type), True)
    return spark_type


def _denulled(merged, actual):
    """``merged`` with each NullType left (null in every file) replaced by the type Spark actually read."""
    from pyspark.sql.types import ArrayType, IntegerType, NullType, StructField, StructType

    if isinstance(merged, NullType):
        return actual if actual is not None and not isinstance(actual, NullType) else IntegerType()
    if isinstance(merged, StructType):
        have = {f.name: f.dataType for f in actual.fields} if isinstance(actual, StructType) else {}
        return StructType([StructField(f.name, _denulled(f.dataType, have.get(f.name)), True) for f in merged.fields])
    if isinstance(merged, ArrayType):
        element = actual.elementType if isinstance(actual, ArrayType) else None
        return ArrayType(_denulled(merged.elementType, element), True)
    return merged


def _align(expr: str, src, dst, depth: int = 0) -> str:
    """SQL turning ``expr`` of type ``src`` into ``dst``, struct fields matched by NAME (missing ones null).

    Leaves that differ go through ``try_cast``: a value that does not fit is null
    there (never an exception, never a wrapped integer), and :func:`_unfit`
    reports it so that the alert is declined.
    """
    from pyspark.sql.types import ArrayType, NullType, StructType

    if src == dst:
        return expr
    if isinstance(src, NullType):  # all null in this file (Spark read it as int): null of the unified type
        return f"CAST(NULL AS {_sql_type(dst)})"
    if isinstance(dst, StructType):
        have = {f.name: f.dataType for f in src.fields}
        parts = [f"{_sql_string(f.name)}, " + (_align(f"{expr}.{_quote(f.name)}", have[f.name], f.dataType, depth)
                                               if f.name in have else f"CAST(NULL AS {_sql_type(f.dataType)})")
                 for f in dst.fields]
        return f"IF({expr} IS NULL, NULL, named_struct({', '.join(parts)}))"
    if isinstance(dst, ArrayType):
        var = f"x{depth}"
        return f"transform({expr}, {var} -> {_align(var, src.elementType, dst.elementType, depth + 1)})"
    return f"try_cast({expr} AS {_sql_type(dst)})"


def _unfit(expr: str, src, dst, label: str, depth: int = 0) -> list[tuple[str, str]]:
    """(field, SQL condition) for every leaf whose values may not fit: true where one does not."""
    from pyspark.sql.types import ArrayType, DoubleType, FloatType, NullType, StructType

    if src == dst or isinstance(src, NullType):
        return []
    if isinstance(dst, StructType):
        have = {f.name: f.dataType for f in src.fields}
        return [item for f in dst.fields if f.name in have
                for item in _unfit(f"{expr}.{_quote(f.name)}", have[f.name], f.dataType, f"{label}.{f.name}", depth)]
    if isinstance(dst, ArrayType):
        var = f"x{depth}"
        return [(name, f"exists({expr}, {var} -> {cond})")
                for name, cond in _unfit(var, src.elementType, dst.elementType, label, depth + 1)]
    cast = f"try_cast({expr} AS {_sql_type(dst)})"
    cond = f"({expr} IS NOT NULL AND {cast} IS NULL)"
    if isinstance(dst, FloatType) and isinstance(src, DoubleType):  # a finite double beyond float's range
        big = f"(NOT isnan({expr}) AND abs({expr}) < double('inf') AND abs({expr}) > 3.4028234663852886E38)"
        cond = f"({cond} OR {big})"
    return [(f"{label} ({dst.simpleString()})", f"coalesce({cond}, false)")]


def unify_frames(frames: list, first_files: list[str], arrow_schemas: list[pa.Schema] | None = None):
    """One DataFrame from groups of files with different schemas, nested fields aligned BY NAME.

    Types are the first group's, numbers widened to the widest group's (fields
    only later groups have are appended); values that do not fit become null
    and the alert is declined (column
    :data:`UNFIT_COLUMN`, see :func:`decline_unfit`). Spark's own cast would
    match struct fields by position and mis-score every alert of a file whose
    fields are in another order. ``arrow_schemas`` (one per frame) mark the
    columns a file stores as all-null (arrow type null, which Spark reads as
    int): they take the type of the files that have values there.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructField, StructType

    def nulled(i: int):
        schema = frames[i].schema
        if arrow_schemas is None:
            return schema
        arrow = arrow_schemas[i]
        return StructType([StructField(f.name, _nulled(f.dataType, arrow[arrow.get_field_index(f.name)].type
                                                       if f.name in arrow.names else None), True)
                           for f in schema.fields])

    target = nulled(0)
    for i, name in enumerate(first_files[1:], start=1):
        try:
            target = merged_type(target, nulled(i))
        except _Mismatch as error:
            raise InputError(f"{name} has a schema that cannot be unified with {first_files[0]} ({error}); "
                             "score these files separately") from error
    target = _denulled(target, frames[0].schema)
    target = StructType([StructField(f.name, f.dataType, True) for f in target.fields])
    aligned = []
    for i, frame in enumerate(frames):
        have = {f.name: f.dataType for f in nulled(i).fields}  # all-null columns as NullType: cast as a whole
        columns, problems = [], []
        for f in target.fields:
            if f.name in have:
                columns.append(F.expr(_align(_quote(f.name), have[f.name], f.dataType)).alias(f.name))
                problems += _unfit(_quote(f.name), have[f.name], f.dataType, f.name)
            else:
                columns.append(F.lit(None).cast(f.dataType).alias(f.name))
        if problems:
            cases = ", ".join(f"IF({cond}, {_sql_string(label)}, NULL)" for label, cond in problems)
            reason = F.expr(f"nullif(concat_ws(', ', {cases}), '')")
        else:
            reason = F.lit(None).cast("string")
        try:
            aligned.append(frame.select(*columns, reason.alias(UNFIT_COLUMN)))
        except Exception as error:  # AnalysisException: a leaf Spark cannot cast (a timestamp against a number)
            raise InputError(f"{first_files[i]} has a schema that cannot be unified with {first_files[0]} "
                             f"({one_line(error, 200)}); score these files separately") from error
    df = aligned[0]
    for frame in aligned[1:]:
        df = df.unionByName(frame)
    return df


#: Reason given to an alert whose values do not fit the unified schema.
REASON_UNFIT = "value out of range for the first file's type: "


def decline_unfit(df):
    """``df`` without :data:`UNFIT_COLUMN`, alerts it flags declined (``t2`` with no probabilities, a reason)."""
    from pyspark.sql import functions as F

    if UNFIT_COLUMN not in df.columns:
        return df
    t2_type = df.schema["t2"].dataType
    declined = F.struct(*[(F.concat(F.lit(REASON_UNFIT), F.col(UNFIT_COLUMN)) if f.name == "reason"
                           else F.lit(None).cast(f.dataType)).alias(f.name) for f in t2_type.fields])
    return df.withColumn("t2", F.when(F.col(UNFIT_COLUMN).isNull(), F.col("t2")).otherwise(declined)) \
             .drop(UNFIT_COLUMN)
