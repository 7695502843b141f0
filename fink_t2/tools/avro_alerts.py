"""Avro alert files (Fink's distribution format) as pyarrow Tables, for the batch scorer.

Fink distributes enriched alerts as Avro (its Kafka streams, fink-client
downloads); ``fink-t2 score`` scores them like parquet once they are a Table.
The Table's types come from the file's own Avro schema (records -> structs,
arrays -> lists, maps -> maps, ``[type, "null"]`` -> a nullable type), not
from the values, so an alert whose history is empty or null reads the same as
the others. fastavro is needed only here: it is imported when an Avro file is
read, and its absence is one line saying how to install it.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from fink_t2.scoring.inputs import InputError, one_line

#: What to do when fastavro is missing.
FASTAVRO_MISSING = ("reading Avro alert files needs fastavro: pip install 'fink-t2[avro]' (or pip install fastavro), "
                    "or convert the file to parquet")

#: Suffix of the files read as Avro.
AVRO_SUFFIX = ".avro"

_PRIMITIVES = {"null": pa.null(), "boolean": pa.bool_(), "int": pa.int32(), "long": pa.int64(),
               "float": pa.float32(), "double": pa.float64(), "bytes": pa.binary(), "string": pa.string()}


def is_avro(path: str | Path) -> bool:
    """Whether ``path`` is read as Avro (by its suffix, as parquet inputs are)."""
    return Path(path).suffix.lower() == AVRO_SUFFIX


def _fastavro():
    try:
        import fastavro
    except ModuleNotFoundError as error:
        raise InputError(FASTAVRO_MISSING) from error
    return fastavro


def arrow_type(avro_type, named: dict | None = None) -> pa.DataType:
    """The pyarrow type of an Avro (parsed, JSON-like) type; ``named`` collects named types met so far.

    A union of null and one type is that type (nullable); a union of several
    non-null types has no Arrow counterpart Fink uses: ValueError.
    """
    named = {} if named is None else named
    if isinstance(avro_type, str):
        if avro_type in _PRIMITIVES:
            return _PRIMITIVES[avro_type]
        if avro_type in named:
            return named[avro_type]
        raise ValueError(f"unknown Avro type {avro_type!r}")
    if isinstance(avro_type, list):
        members = [t for t in avro_type if t != "null"]
        if not members:
            return pa.null()
        if len(members) > 1:
            raise ValueError(f"Avro union of several types {members} is not supported")
        return arrow_type(members[0], named)
    kind = avro_type.get("type")
    if kind == "record":
        struct = pa.struct([pa.field(f["name"], arrow_type(f["type"], named)) for f in avro_type["fields"]])
        named[avro_type.get("name", "")] = struct
        return struct
    if kind == "array":
        return pa.list_(arrow_type(avro_type["items"], named))
    if kind == "map":
        return pa.map_(pa.string(), arrow_type(avro_type["values"], named))
    if kind == "enum":
        named[avro_type.get("name", "")] = pa.string()
        return pa.string()
    if kind == "fixed":
        named[avro_type.get("name", "")] = pa.binary()
        return pa.binary()
    return arrow_type(kind, named)  # {"type": "long", "logicalType": ...}: the underlying type


def arrow_schema(avro_schema: dict) -> pa.Schema:
    """The pyarrow schema of an Avro record schema (its top-level fields become columns)."""
    if not isinstance(avro_schema, dict) or avro_schema.get("type") != "record":
        raise ValueError("the Avro schema is not a record")
    named: dict = {}
    return pa.schema([pa.field(f["name"], arrow_type(f["type"], named)) for f in avro_schema["fields"]])


def read_avro(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """The alerts of an Avro file as a pyarrow Table (all columns, or ``columns``).

    InputError (one line naming the file and the fix) if fastavro is missing,
    the file is not Avro or is damaged, or its schema has no Arrow counterpart.
    """
    fastavro = _fastavro()
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            reader = fastavro.reader(handle)
            schema = arrow_schema(reader.writer_schema)
            if columns is not None:
                schema = pa.schema([schema.field(name) for name in columns if name in schema.names])
            names = schema.names
            records = [{name: record.get(name) for name in names} for record in reader]
        return pa.Table.from_pylist(records, schema=schema)
    except InputError:
        raise
    except Exception as error:  # fastavro's errors, OSError, ArrowException, a schema without Arrow counterpart
        raise InputError(f"cannot read Avro file {path}: {one_line(error)} (corrupt, or not a Fink alert file: "
                         "remove or replace it)") from error


def read_avro_schema(path: str | Path) -> pa.Schema:
    """The pyarrow schema of an Avro file, from its header only (no record is decoded)."""
    fastavro = _fastavro()
    try:
        with open(path, "rb") as handle:
            return arrow_schema(fastavro.reader(handle).writer_schema)
    except Exception as error:
        raise InputError(f"cannot read Avro file {path}: {one_line(error)} (corrupt, or not a Fink alert file: "
                         "remove or replace it)") from error
