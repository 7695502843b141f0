"""Alert parquet files as inputs: found, and their footers checked, before any alert is read.

Shared by every job that reads alert files (``fink-t2 score``, both engines,
and the stream): paths are literal, directories are searched with pyarrow's
dataset discovery (hive partitions, Spark's bookkeeping files skipped), every
file's footer is read and checked to hold ZTF alerts, and an output that
overlaps an input is refused. A problem is ONE :class:`InputError` naming the
file and the fix. Pure pyarrow.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fink_t2.scoring.alerts import NUMERIC_HISTORY, REQUIRED_COLUMNS, struct_of
from fink_t2.scoring.readers import survey_of_columns
from fink_t2.scoring.rubin_alerts import CURRENT, ELASTICC_COLUMNS, FIELD_NAMES, HISTORY, RUBIN_COLUMNS, missing_fields

LOGGER = logging.getLogger(__name__)


class InputError(ValueError):
    """An input path holds no parquet, or a parquet file cannot be read."""


#: pyarrow before 14.0.1 unpickles ``arrow.py_extension_type`` metadata of any file it opens (CVE-2023-47248).
MIN_PYARROW = (14, 0, 1)


def check_pyarrow(version: str | None = None, hotfixed: bool | None = None) -> None:
    """InputError if the installed pyarrow unpickles file metadata: older than 14.0.1 and not hotfixed.

    Fink's ZTF image keeps pyarrow 9.0.0: there ``pyarrow_hotfix`` (imported by
    :mod:`fink_t2.scoring.arrow_compat`) refuses the pickled extension type instead.
    """
    from fink_t2.scoring.arrow_compat import PROTECTED

    version = version or pa.__version__
    hotfixed = PROTECTED if hotfixed is None else hotfixed
    parts = tuple(int(p) for p in re.findall(r"\d+", version)[:3])
    if parts < MIN_PYARROW and not hotfixed:
        raise InputError(f"pyarrow {version} runs code hidden in a parquet file's metadata (CVE-2023-47248): "
                         "install pyarrow >= 14.0.1 or pyarrow-hotfix before reading any file")


#: Names of Spark/Hadoop bookkeeping (``_SUCCESS``, ``_spark_metadata``, ``.crc``, hidden files): not data.
IGNORE_PREFIXES = ("_", ".")


def _ignored(relative: str) -> bool:
    """Whether a path relative to the searched folder has a component starting with :data:`IGNORE_PREFIXES`."""
    return any(part.startswith(IGNORE_PREFIXES) for part in relative.split("/"))


def _discover(folder: Path) -> list[Path]:
    """The ``*.parquet`` files under ``folder``, found by pyarrow's dataset discovery.

    Recursive, ``year=/month=/day=`` directories read as hive partitions (their
    values are not parsed here: Spark reads them as written), and any file or
    directory whose name starts with :data:`IGNORE_PREFIXES` skipped (pyarrow
    applies the prefixes to every path component). The folder is given to
    pyarrow as an absolute local path, never a URI or a pattern (``lake[1]``,
    ``a:b`` and ``%41`` are names). A directory named ``x.parquet`` is searched;
    a FIFO, device or socket named ``*.parquet`` (which pyarrow's discovery
    leaves out silently) is refused, not skipped. Paths are returned under
    ``folder`` as given (relative stays relative).
    """
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    local = pafs.LocalFileSystem()
    base = os.path.abspath(folder)
    # An empty schema: list the files without opening any (the footers are read, and checked, later).
    dataset = ds.dataset(base, filesystem=local, schema=pa.schema([]), format="parquet", partitioning="hive",
                         ignore_prefixes=list(IGNORE_PREFIXES), exclude_invalid_files=False)
    found = sorted(folder / os.path.relpath(f, base) for f in dataset.files if f.endswith(".parquet"))
    for info in local.get_file_info(pafs.FileSelector(base, recursive=True)):
        relative = os.path.relpath(info.path, base).replace(os.sep, "/")
        if info.type == pafs.FileType.Unknown and info.path.endswith(".parquet") and not _ignored(relative):
            raise _not_regular(folder / relative)
    return found


def _not_regular(path: Path) -> InputError:
    return InputError(f"{path} is not a regular file (a FIFO, device or socket): reading it could block "
                      "forever; remove it or point the input at the parquet files")


def find_parquet(inputs: list[str | Path]) -> list[Path]:
    """The parquet files named by ``inputs`` (files, or directories searched recursively).

    Paths are literal (no pattern matching). A directory named ``x.parquet`` (Spark's
    own output naming) is searched like any directory; a FIFO or device named
    ``*.parquet`` is refused rather than opened (opening a FIFO blocks).
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = _discover(path)
            if not found:
                raise InputError(f"no parquet file found under {path} (expected *.parquet files, possibly in "
                                 "year=/month=/day= sub-directories)")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise _not_regular(path)
        else:
            raise InputError(f"input not found: {path}")
    if not files:
        raise InputError("no input given")
    return files


def read_alert_schemas(files: list[Path]) -> list[pa.Schema]:
    """Each file's schema, read from its footer, checked to hold alerts (:func:`check_alert_schema`).

    InputError naming the first corrupt or non-parquet file, else the first file without alerts.
    """
    check_pyarrow()
    schemas = []
    for path in files:
        try:
            schemas.append(pq.read_schema(path))
        except Exception as error:  # ArrowException, OSError, and whatever a hostile footer provokes
            raise InputError(f"cannot read parquet file {path}: {one_line(error)} (corrupt or not parquet: "
                             "remove or replace it)") from error
    for schema, path in zip(schemas, files):
        check_alert_schema(schema, path)
        _warn_float32_times(schema, path)
    return schemas


def one_line(error: Exception, limit: int = 300) -> str:
    """An error's text on one line, at most ``limit`` characters (for one-line error messages)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def schema_survey(schema: pa.Schema) -> str | None:
    """The survey whose alerts a file holds, from its schema: "ztf" (``candidate`` or Fink's ZTF c* columns),
    "rubin" (``diaSource`` or Fink-style Rubin c* columns), None if neither (or both)."""
    return survey_of_columns(schema.names)


def check_alert_schema(schema: pa.Schema, path: Path) -> None:
    """InputError unless the file holds ZTF or Rubin alerts: raw (candidate / diaSource struct) or Fink's c* columns.

    Raw ZTF alerts need ``jd, fid, magpsf, sigmapsf`` in ``candidate`` and, when
    ``prv_candidates`` is a list of structs, in its elements too (optional
    fields such as ``isdiffpos`` may be missing: they are scored as unknown).
    Raw Rubin alerts need a time, band, flux and flux error in ``diaSource``
    under one of the names of the schema versions read
    (:data:`fink_t2.scoring.rubin_alerts.FIELD_NAMES`).
    """
    check_unique_names(schema, path)
    check_alert_shapes(schema, path)
    names = set(schema.names)
    if set(REQUIRED_COLUMNS) <= names:
        return
    if schema_survey(schema) == "rubin":
        if set(RUBIN_COLUMNS) <= names or set(ELASTICC_COLUMNS) <= names:
            return
        missing = missing_fields(schema)
        if missing:
            wanted = [" or ".join(FIELD_NAMES[m]) for m in missing]
            raise InputError(f"{path}: the '{CURRENT}' column lacks {wanted}, which every Rubin alert needs (lsst "
                             "v7.1, v10.0 and ELAsTiCC name them so); these are not Rubin alerts fink-t2 reads, "
                             "remove the file from the input")
        return
    if "candidate" not in names:
        raise InputError(f"{path} does not hold ZTF alerts nor Rubin alerts: it has neither a 'candidate' (ZTF) nor "
                         f"a 'diaSource' (Rubin) column, nor Fink's 'cjd, cfid, cmagpsf, csigmapsf' columns "
                         f"(columns: {schema.names[:12]}...)")
    for column in ("candidate", "prv_candidates"):
        if column not in names:
            continue
        struct = struct_of(schema.field(column).type)
        if struct is None:
            if column == "prv_candidates" and pa.types.is_null(schema.field(column).type):
                continue
            continue  # not a struct: reported by the schema unification or the scorer
        fields = {field.name for field in struct}  # (StructType.field() is pyarrow >= 13)
        missing = [f for f in NUMERIC_HISTORY[:4] if f not in fields]
        if missing:
            raise InputError(f"{path}: the '{column}' struct lacks {missing}, which every alert needs (fields: "
                             f"{sorted(fields)[:12]}...); these are not ZTF alerts, remove the file from the input")


def check_unique_names(schema: pa.Schema, path: Path) -> None:
    """InputError naming the file and the name when two columns (or two fields of one struct) share a name.

    Every reader looks columns and fields up by name: with two of them, which one
    is read is arbitrary (pyarrow raises KeyError, Spark an ambiguity error).
    """
    def duplicate(names: list[str]) -> str | None:
        seen: set[str] = set()
        return next((name for name in names if name in seen or seen.add(name)), None)

    def walk(dtype: pa.DataType, where: str) -> None:
        if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
            walk(dtype.value_type, where)
        elif pa.types.is_struct(dtype):
            fields = list(dtype)  # iterating a StructType gives its fields (StructType.field() is pyarrow >= 13)
            name = duplicate([f.name for f in fields])
            if name is not None:
                raise InputError(f"{path}: the '{where}' struct has two fields named {name!r}: which one holds the "
                                 "alert's values cannot be told; write the file again with one field of each name")
            for field in fields:
                walk(field.type, f"{where}.{field.name}")

    name = duplicate(list(schema.names))
    if name is not None:
        raise InputError(f"{path} has two columns named {name!r}: which one holds the alerts cannot be told; write "
                         "the file again with one column of each name")
    for field in schema:
        walk(field.type, field.name)


def check_alert_shapes(schema: pa.Schema, path: Path) -> None:
    """InputError naming the file when a raw alert column has the wrong shape.

    The current detection (ZTF ``candidate``, Rubin ``diaSource``) is one struct per
    alert, the history (``prv_candidates``, ``prvDiaSources``) a list of them (or null).
    """
    for current, history in (("candidate", "prv_candidates"), (CURRENT, HISTORY)):
        if current in schema.names and not pa.types.is_struct(schema.field(current).type):
            dtype = schema.field(current).type
            kind = "a list" if pa.types.is_list(dtype) or pa.types.is_large_list(dtype) else "not a struct"
            raise InputError(f"{path}: the '{current}' column is {kind} ({str(dtype)[:80]}), where alerts have one "
                             f"struct (the current detection); these are not alerts fink-t2 reads, remove the file "
                             "from the input")
        if history in schema.names:
            dtype = schema.field(history).type
            is_list = pa.types.is_list(dtype) or pa.types.is_large_list(dtype)
            if not (pa.types.is_null(dtype) or (is_list and pa.types.is_struct(dtype.value_type))):
                raise InputError(f"{path}: the '{history}' column is {str(dtype)[:80]}, where alerts have a list of "
                                 "structs (the previous detections); these are not alerts fink-t2 reads, remove the "
                                 "file from the input")


def _warn_float32_times(schema: pa.Schema, path: Path) -> None:
    """Log a warning when a file stores ``jd`` as float32 (see docs/reliability.md, point 10)."""
    def jd_type(column: str) -> pa.DataType | None:
        if column not in schema.names:
            return None
        struct = struct_of(schema.field(column).type)
        if struct is None or struct.get_field_index("jd") < 0:
            return None
        return struct[struct.get_field_index("jd")].type

    types = [jd_type("candidate"), jd_type("prv_candidates")]
    if "cjd" in schema.names and pa.types.is_list(schema.field("cjd").type):
        types.append(schema.field("cjd").type.value_type)
    if any(t is not None and (pa.types.is_float32(t) or pa.types.is_float16(t)) for t in types):
        LOGGER.warning("%s stores jd as a 32-bit float: times are rounded to 0.25 d at ZTF epochs (the "
                       "preparation's step is %s); scoring them as they are", path, "3 d")


def check_separate(inputs: list[str | Path], outputs: dict[str, str | Path]) -> None:
    """InputError if an output (or checkpoint) path and an input overlap: equal, or one inside the other.

    Checked before anything is created or deleted: writing (or ``--overwrite``)
    there would delete the input, or re-read the output as input on every restart.
    """
    for what, target in outputs.items():
        out = Path(target).resolve()
        for item in inputs:
            source = Path(item).resolve()
            if out == source or source in out.parents or out in source.parents:
                relation = ("is the input" if out == source else
                            "is inside the input" if source in out.parents else "contains the input")
                raise InputError(f"{what} {target} {relation} {item}: writing there would delete or re-read the "
                                 f"input; choose {'an' if what[0] in 'aeiou' else 'a'} {what} outside every input")


