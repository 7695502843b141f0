"""Offline scoring of archived alerts: ``fink-t2 score INPUT... --output OUT``.

Inputs are parquet files, directories of them, or Fink's partitioned lake
(``year=/month=/day=``). The output keeps every input column and adds ``t2``
(same type as the Spark science module). Two engines:

* ``spark`` (default): any number of files, written as a parquet directory;
  Fink's partition columns are kept and the output is partitioned like the input.
* ``pandas``: one file, no Spark (quick jobs, laptops): pyarrow + ``scoring``.

Every input file's footer is checked before anything is scored, so a missing,
empty or corrupt input fails at once with the file named.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fink_t2.classes import CLASS_FIELDS, CLASSES
from fink_t2.lightcurves import Observations, observations_from_alerts
from fink_t2.paths import resource, shared_path
from fink_t2.scoring import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, Cuts, Scores, make_selector, score_alerts, t2_arrow

LOGGER = logging.getLogger(__name__)

#: The 329 real alerts of ``data/alerts_sample.parquet``, shipped as package data (installed or not).
SAMPLE_ALERTS = resource("alerts_sample.parquet")
#: The project's real ZTF alerts: ``data/ztf_alerts`` in the shared-data folder (``$FINK_T2_SHARED``,
#: else ``../shared`` beside a checkout; see :mod:`fink_t2.paths`). It may not exist (a user's clone).
SHARED_ZTF_ALERTS = shared_path("data", "ztf_alerts")

#: Alerts scored per chunk by the pandas engine (one progress update per chunk).
PANDAS_CHUNK = 2000

_NUMERIC_HISTORY = ("jd", "fid", "magpsf", "sigmapsf", "diffmaglim")


class InputError(ValueError):
    """An input path holds no parquet, or a parquet file cannot be read."""


# --------------------------------------------------------------------------- inputs

#: pyarrow before 14.0.1 unpickles ``arrow.py_extension_type`` metadata of any file it opens (CVE-2023-47248).
MIN_PYARROW = (14, 0, 1)


def check_pyarrow(version: str | None = None) -> None:
    """InputError if the installed pyarrow unpickles file metadata (setup.py requires a fixed one)."""
    version = version or pa.__version__
    parts = tuple(int(p) for p in re.findall(r"\d+", version)[:3])
    if parts < MIN_PYARROW:
        raise InputError(f"pyarrow {version} runs code hidden in a parquet file's metadata (CVE-2023-47248): "
                         "install pyarrow >= 14.0.1 before reading any file")


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
            raise InputError(f"cannot read parquet file {path}: {_one_line(error)} (corrupt or not parquet: "
                             "remove or replace it)") from error
    for schema, path in zip(schemas, files):
        check_alert_schema(schema, path)
        _warn_float32_times(schema, path)
    return schemas


def _one_line(error: Exception, limit: int = 300) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _struct_of(dtype: pa.DataType) -> pa.StructType | None:
    """The struct type of a ``candidate`` (struct) or ``prv_candidates`` (list of struct) column."""
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        dtype = dtype.value_type
    return dtype if pa.types.is_struct(dtype) else None


def check_alert_schema(schema: pa.Schema, path: Path) -> None:
    """InputError unless the file holds raw alerts (candidate struct) or Fink's c* columns.

    Raw alerts need ``jd, fid, magpsf, sigmapsf`` in ``candidate`` and, when
    ``prv_candidates`` is a list of structs, in its elements too (optional
    fields such as ``isdiffpos`` may be missing: they are scored as unknown).
    """
    names = set(schema.names)
    if set(REQUIRED_COLUMNS) <= names:
        return
    if "candidate" not in names:
        raise InputError(f"{path} does not hold ZTF alerts: it has neither a 'candidate' column nor Fink's "
                         f"'cjd, cfid, cmagpsf, csigmapsf' columns (columns: {schema.names[:12]}...)")
    for column in ("candidate", "prv_candidates"):
        if column not in names:
            continue
        struct = _struct_of(schema.field(column).type)
        if struct is None:
            if column == "prv_candidates" and pa.types.is_null(schema.field(column).type):
                continue
            continue  # not a struct: reported by the schema unification or the scorer
        fields = {struct.field(i).name for i in range(struct.num_fields)}
        missing = [f for f in _NUMERIC_HISTORY[:4] if f not in fields]
        if missing:
            raise InputError(f"{path}: the '{column}' struct lacks {missing}, which every alert needs (fields: "
                             f"{sorted(fields)[:12]}...); these are not ZTF alerts, remove the file from the input")


def _warn_float32_times(schema: pa.Schema, path: Path) -> None:
    """Log a warning when a file stores ``jd`` as float32 (see docs/reliability.md, point 10)."""
    def jd_type(column: str) -> pa.DataType | None:
        if column not in schema.names:
            return None
        struct = _struct_of(schema.field(column).type)
        if struct is None or struct.get_field_index("jd") < 0:
            return None
        return struct.field("jd").type

    types = [jd_type("candidate"), jd_type("prv_candidates")]
    if "cjd" in schema.names and pa.types.is_list(schema.field("cjd").type):
        types.append(schema.field("cjd").type.value_type)
    if any(t is not None and (pa.types.is_float32(t) or pa.types.is_float16(t)) for t in types):
        LOGGER.warning("%s stores jd as a 32-bit float: times are rounded to 0.25 d at ZTF epochs (the "
                       "preparation's step is %s); scoring them as they are", path, "3 d")


# --------------------------------------------------------------------------- paths


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


def partition_root(path: Path) -> Path | None:
    """The directory above ``path``'s ``key=value`` components (Spark's basePath), or None if there are none."""
    folder = path if path.is_dir() else path.parent
    root = folder
    while _PARTITION.fullmatch(root.name):
        root = root.parent
    if root == folder and not path.is_dir():
        return None
    return root


_PARTITION = re.compile(r"[^=/]+=[^/]*")


# --------------------------------------------------------------------------- raw alerts -> c* columns (pyarrow)


def history_array(table: pa.Table, field: str, dtype: pa.DataType) -> pa.Array:
    """``prv_candidates.<field>`` + [``candidate.<field>``] per alert, as a list array (vectorised)."""
    current = pc.struct_field(table.column("candidate").combine_chunks(), field).cast(dtype)
    n = len(current)
    if "prv_candidates" in table.column_names:
        prv = table.column("prv_candidates").combine_chunks()
        lengths = prv.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        elements = prv.flatten()
        struct = _struct_of(prv.type)
        if struct is not None and struct.get_field_index(field) >= 0:
            past = pc.struct_field(elements, field).cast(dtype)
        else:  # an optional field the history lacks (e.g. isdiffpos): unknown there, same lengths
            past = pa.nulls(len(elements), dtype)
    else:
        lengths = np.zeros(n, dtype=np.int64)
        past = pa.array([], type=dtype)
    ends = np.cumsum(lengths + 1)
    offsets = np.concatenate([[0], ends])
    # Positions in [past..., current...] for each slot of the output.
    source = np.empty(int(ends[-1]) if n else 0, dtype=np.int64)
    is_current = np.zeros(len(source), dtype=bool)
    is_current[ends - 1] = True
    source[is_current] = len(past) + np.arange(n)
    source[~is_current] = np.arange(len(past))
    values = pa.concat_arrays([past, current]).take(pa.array(source))
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values)


def _candidate_fields(table: pa.Table) -> set[str]:
    """Field names of the raw ``candidate`` struct (empty if it is not a struct)."""
    dtype = table.schema.field("candidate").type
    return {f.name for f in dtype} if pa.types.is_struct(dtype) else set()


def alert_columns(table: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """Fink's ``c*`` columns (cjd, cfid, cmagpsf, csigmapsf, cdiffmaglim, cisdiffpos) from raw alerts.

    Accepts a pyarrow Table or a pandas DataFrame with ``candidate`` (and
    usually ``prv_candidates``); the result has one row per alert, each cell
    a numpy array, ready for :func:`fink_t2.classify`.
    """
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    if "candidate" not in table.column_names:
        raise ValueError("raw alerts need a 'candidate' column")
    fields = _candidate_fields(table)
    missing = [f for f in _NUMERIC_HISTORY[:4] if f not in fields]
    if missing:
        raise ValueError(f"the raw alerts' 'candidate' struct lacks {missing} (fields: {sorted(fields)})")
    # diffmaglim and isdiffpos are optional: without them, columns of nulls (scored as absent).
    out = {f"c{field}": history_array(table, field, pa.float64()) for field in _NUMERIC_HISTORY if field in fields}
    if "isdiffpos" in fields:
        out["cisdiffpos"] = history_array(table, "isdiffpos", pa.string())
    frame = pd.DataFrame({name: column.to_pandas() for name, column in out.items()})
    for name in ("cdiffmaglim", "cisdiffpos"):
        if name not in frame.columns:
            frame[name] = pd.Series([None] * table.num_rows, dtype=object)
    return frame[[*REQUIRED_COLUMNS, "cdiffmaglim", "cisdiffpos"]]


def observations_from_columns(frame: pd.DataFrame) -> tuple[Observations, np.ndarray]:
    """(Observations, reason per alert) of a frame of Fink's ``c*`` columns, as :func:`alert_columns` makes it."""
    return observations_from_alerts(*(frame[c] for c in REQUIRED_COLUMNS),
                                    **{c: frame[c] for c in OPTIONAL_COLUMNS if c in frame})


def alert_columns_from_files(paths, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """Raw ZTF alert parquet files -> ``objectId``, ``candid``, the ``extra`` columns and Fink's ``c*`` columns.

    The ``c*`` columns come from :func:`alert_columns`; files with different
    schemas are read one by one. An ``extra`` column a file lacks is None there.
    """
    frames = []
    for path in paths:
        names = pq.read_schema(path).names
        wanted = ["objectId", "candid", "candidate", "prv_candidates", *(c for c in extra if c in names)]
        table = pq.read_table(path, columns=wanted)
        frame = alert_columns(table)
        for name in reversed(("objectId", "candid", *extra)):
            frame.insert(0, name, table.column(name).to_pylist() if name in table.column_names else None)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _extra(table: pa.Table, name: str):
    if name == "jdstarthist" and "candidate" in table.column_names:
        if name not in _candidate_fields(table):
            return None
        return pc.struct_field(table.column("candidate").combine_chunks(), "jdstarthist").to_pandas()
    return table.column(name).to_pandas() if name in table.column_names else None


def score_table(table: pa.Table, model_path=None, cuts: Cuts | None = None) -> Scores:
    """Scores of the alerts in a pyarrow Table (raw alerts or with Fink's c* columns)."""
    cuts = cuts if cuts is not None else Cuts()
    if set(REQUIRED_COLUMNS) <= set(table.column_names):
        cols = {name: table.column(name).to_pandas() for name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS
                if name in table.column_names}
        if "candidate" in table.column_names and not set(OPTIONAL_COLUMNS) <= set(cols):
            built = alert_columns(table)  # as the Spark module does: missing optional c* from the raw alert
            for name in OPTIONAL_COLUMNS:
                cols.setdefault(name, built[name])
    else:
        cols = alert_columns(table)
    select = make_selector(cuts, _extra(table, "jdstarthist"), _extra(table, "roid"), _extra(table, "cdsxmatch"))
    return score_alerts(cols["cjd"], cols["cfid"], cols["cmagpsf"], cols["csigmapsf"],
                        cisdiffpos=cols.get("cisdiffpos"), cdiffmaglim=cols.get("cdiffmaglim"),
                        model_path=model_path, select=select)


# --------------------------------------------------------------------------- progress


def progress_bar(total: int, enabled: bool = True):
    """A tqdm progress bar of alerts on stderr (a no-op when disabled)."""
    from tqdm import tqdm

    return tqdm(total=total, unit=" alerts", file=sys.stderr, disable=not enabled, dynamic_ncols=True)


# --------------------------------------------------------------------------- engines


def _output_file(output: Path) -> Path:
    return output if output.suffix == ".parquet" else output / "part-00000.parquet"


#: Files a replaceable output directory may hold (what Spark and the pandas engine write there).
_OUTPUT_FILE = re.compile(r"(.*\.parquet|_SUCCESS|\..*\.crc|_committed_.*|_started_.*)")


def _check_output(output: Path, overwrite: bool, spark: bool = False) -> None:
    """InputError unless ``output`` can be written: absent, or replaceable with ``--overwrite``.

    Checked before anything is written. With ``--overwrite`` an existing output is
    replaced only if it looks like a scored output (parquet files and Spark's
    bookkeeping), never a directory of other files.
    """
    for parent in output.absolute().parents:
        if parent.exists() and not parent.is_dir():
            raise InputError(f"output {output} is not writable: {parent} is a file, not a directory (a regular "
                             "file where a folder is needed): move the file away or choose another --output")
    if spark:
        check_spark_path(output)
    if not output.exists() and not output.is_symlink():
        return
    if not overwrite:
        raise InputError(f"output {output} already exists: choose another path or pass --overwrite")
    if output.is_dir() and not output.is_symlink():
        for path in output.rglob("*"):
            inside_log = path.relative_to(output).parts[0] == "_spark_metadata"
            if path.is_dir() or inside_log or _OUTPUT_FILE.fullmatch(path.name):
                continue
            raise InputError(f"output {output} holds {path.relative_to(output)}, which fink-t2 does not write: "
                             "refusing to replace it with --overwrite; remove it yourself or choose another --output")
    elif not output.is_file() or output.is_symlink():
        raise InputError(f"output {output} is not a regular file or directory: refusing to replace it")


def _temporary_sibling(target: Path, kind: str) -> Path:
    """A hidden name beside ``target`` (same file system, so the final rename is atomic)."""
    return target.parent / f".{target.name}.fink-t2-{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _write_error(output: Path, error: OSError) -> InputError:
    return InputError(f"cannot write output {output}: {_one_line(error)} (free some space, fix the permissions or "
                      "choose another --output; nothing was written)")


def _publish(tmp: Path, output: Path) -> None:
    """Move the finished ``tmp`` to ``output``, replacing an existing one: no half-written output is ever visible."""
    if tmp.is_file():
        os.replace(tmp, output)
        return
    old = None
    if output.exists():
        old = _temporary_sibling(output, "old")
        os.rename(output, old)
    try:
        os.rename(tmp, output)
    except OSError:
        if old is not None:
            os.rename(old, output)
        raise
    if old is not None and old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    elif old is not None:
        old.unlink(missing_ok=True)


def score_pandas(input_file: str | Path, output: str | Path | None, model_path=None, cuts: Cuts | None = None,
                 overwrite: bool = False, progress: bool = True) -> pa.Table:
    """Score one parquet file without Spark; write it with ``t2`` added to ``output`` (if given); return it.

    The output is written under a temporary name and renamed when complete, so a
    killed or failed write (full disk) leaves no file under the final name.
    """
    files = find_parquet([input_file])
    if len(files) != 1:
        raise InputError(f"the pandas engine scores one file; {input_file} holds {len(files)} "
                         "(use --engine spark)")
    path = files[0]
    if output is not None:
        output = Path(output)
        check_separate([input_file], {"output": output})
    schemas = read_alert_schemas(files)
    if output is not None:
        _check_output(output, overwrite)
    from fink_t2.preflight import check_score_job
    from fink_t2.runtime import get_model

    check_score_job(files, schemas, output, cuts, "pandas",
                    _output_file(output) if output is not None else None)

    get_model(model_path)  # a bad model file fails before anything is read
    try:
        table = pq.read_table(path)
    except Exception as error:  # ArrowException, OSError: a damaged data page behind a valid footer
        raise InputError(f"cannot read parquet file {path}: {_one_line(error)} (corrupt: remove or replace "
                         "it)") from error
    parts = []
    with progress_bar(table.num_rows, progress) as bar:
        for start in range(0, table.num_rows, PANDAS_CHUNK):
            chunk = table.slice(start, PANDAS_CHUNK)
            parts.append(t2_arrow(score_table(chunk, model_path, cuts)))
            bar.update(chunk.num_rows)
    t2 = pa.concat_arrays(parts) if parts else t2_arrow(Scores.empty())
    if "t2" in table.column_names:
        LOGGER.info("replacing the existing 't2' column of %s", path)
        table = table.drop(["t2"])
    table = table.append_column("t2", t2)
    if output is not None:
        target = _output_file(output)
        tmp = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = _temporary_sibling(target, "tmp")
            pq.write_table(table, tmp)
            _publish(tmp, target)
        except OSError as error:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            raise _write_error(output, error) from error
    return table


#: Spark's partition-column type inference turns ``day=01`` into the integer 1: off while reading inputs.
_INFERENCE = "spark.sql.sources.partitionColumnTypeInference.enabled"
#: Internal column: why an alert's values do not fit the unified schema (null if they all do).
UNFIT_COLUMN = "__fink_t2_unfit"


def score_spark(inputs: list[str | Path], output: str | Path, model_path=None, cuts: Cuts | None = None,
                overwrite: bool = False, spark=None, master: str | None = None, progress: bool = True) -> Path:
    """Score parquet files/directories/partitions with Spark; write a parquet directory; return the path.

    Inputs, output and model are checked before a Spark session is started
    (``spark`` None: one is made with ``master`` once the checks pass). Paths
    are literal; every input's partition columns are kept with their values as
    written (``day=01`` stays ``01``); files of different schemas are aligned by
    field name. The output is written to a hidden temporary directory and
    renamed when the job succeeded: a failed job leaves nothing behind.
    """
    from fink_t2.processor import apply_t2, spark_session
    from fink_t2.runtime import get_model

    output = Path(output)
    check_separate(inputs, {"output": output})
    files_of = {str(item): find_parquet([item]) for item in inputs}
    files = [f for found in files_of.values() for f in found]
    for path in files:
        check_spark_path(path)
    schemas = read_alert_schemas(files)
    schema_of = dict(zip(files, schemas))
    _check_output(output, overwrite, spark=True)
    from fink_t2.preflight import check_score_job

    check_score_job(files, schemas, output, cuts, "spark")  # unwritable output, cuts' columns: before Spark
    get_model(model_path)  # a bad model file fails here, before Spark reads anything
    spark = spark or spark_session("fink-t2-score", master=master,
                                   conf={"spark.ui.showConsoleProgress": str(progress).lower()})
    previous = spark.conf.get(_INFERENCE, None)
    spark.conf.set(_INFERENCE, "false")
    try:
        frames, first_files, arrow_schemas = [], [], []
        for item, found in files_of.items():
            groups: dict[tuple, list[Path]] = {}  # by names and types (pyarrow 17 cannot hash metadata)
            for path in found:
                key = tuple((f.name, str(f.type)) for f in schema_of[path])
                groups.setdefault(key, []).append(path)
            for paths in groups.values():
                reader = spark.read
                base = partition_root(Path(item))
                if base is not None:
                    reader = reader.option("basePath", str(base.absolute()))
                frames.append(reader.parquet(*[spark_literal(p) for p in paths]))
                first_files.append(str(paths[0]))
                arrow_schemas.append(schema_of[paths[0]])
                LOGGER.info("%d file(s) of %s with schema #%d", len(paths), item, len(frames))
        file_columns = {name for schema in schemas for name in schema.names}
        df = unify_frames(frames, first_files, arrow_schemas)
        partition_columns = [c for c in df.columns if c not in file_columns and c != UNFIT_COLUMN]
        result = decline_unfit(apply_t2(df, model_path=model_path,
                                            cuts=cuts if cuts is not None else Cuts()))  # None: no cuts
        writer = result.write.mode("errorifexists")
        if partition_columns:
            writer = writer.partitionBy(*partition_columns)
        tmp = _temporary_sibling(output.absolute(), "tmp")
        try:
            output.absolute().parent.mkdir(parents=True, exist_ok=True)
            writer.parquet(str(tmp))
            _publish(tmp, output)
        except OSError as error:
            raise _write_error(output, error) from error
        except Exception as error:  # the job failed: Py4JJavaError, PythonException, ...
            raise InputError(spark_failure(error, files)) from error
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if previous is None:
            spark.conf.unset(_INFERENCE)
        else:
            spark.conf.set(_INFERENCE, previous)
    return output


def spark_failure(error: Exception, files: list[Path]) -> str:
    """One line for a failed Spark job: the input file it names, if any, and what to do."""
    text = str(error)
    named = next((p for p in files if str(p.absolute()) in text or p.absolute().as_uri() in text), None)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cause = next((line for line in lines if "Exception" in line or "Error" in line or "[" in line), None)
    cause = _one_line(Exception(cause or (lines[0] if lines else type(error).__name__)), 240)
    if named is not None:
        return (f"the Spark job failed reading {named}: {cause} (the file is damaged: remove or replace it, then "
                "rerun; nothing was written)")
    return f"the Spark job failed: {cause} (nothing was written; fix the cause and rerun)"


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


def merged_type(first, other, where: str = ""):
    """``first`` with the nested fields only ``other`` has appended (leaf types: ``first``'s)."""
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
    return first


def _nulled(spark_type, arrow_type):
    """``spark_type`` with NullType where the file's arrow type is null (Spark reads those as int)."""
    from pyspark.sql.types import ArrayType, NullType, StructField, StructType

    if arrow_type is None:
        return spark_type
    if pa.types.is_null(arrow_type):
        return NullType()
    if isinstance(spark_type, StructType) and pa.types.is_struct(arrow_type):
        names = [arrow_type.field(i).name for i in range(arrow_type.num_fields)]
        return StructType([StructField(f.name, _nulled(f.dataType, arrow_type.field(f.name).type
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
    from pyspark.sql.types import ArrayType, StructType

    if src == dst:
        return expr
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
    from pyspark.sql.types import ArrayType, DoubleType, FloatType, StructType

    if src == dst:
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

    Types are the first group's (fields only later groups have are appended);
    values that do not fit them become null and the alert is declined (column
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
        return StructType([StructField(f.name, _nulled(f.dataType, arrow.field(f.name).type
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
    for frame in frames:
        have = {f.name: f.dataType for f in frame.schema.fields}
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
        aligned.append(frame.select(*columns, reason.alias(UNFIT_COLUMN)))
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


# --------------------------------------------------------------------------- summary


def summarize(pdf: pd.DataFrame, examples: int = 5) -> str:
    """A readable summary of scored alerts: counts per top class, declines by reason, a few examples.

    ``pdf`` has ``objectId``, ``candid`` and the ``t2`` struct as dicts (or its
    fields as columns: one per class field of ``CLASS_FIELDS``, ``top_class``, ``reason``).
    """
    if "t2" in pdf.columns:
        t2 = pdf["t2"]
        top = t2.map(lambda s: s.get("top_class") if s else None)
        reason = t2.map(lambda s: s.get("reason") if s else None)
        probs = t2.map(lambda s: {c: s[f] for c, f in zip(CLASSES, CLASS_FIELDS) if s.get(f) is not None}
                       if s else {})
    else:
        top, reason = pdf["top_class"], pdf["reason"]
        values = pdf[list(CLASS_FIELDS)].to_numpy(dtype=float)
        probs = pd.Series([dict(zip(CLASSES, row)) if np.isfinite(row).all() else {} for row in values],
                          index=pdf.index)
    n = len(pdf)
    classified = top.notna()
    lines = [f"{n} alerts: {int(classified.sum())} classified, {int((~classified).sum())} declined", "",
             "Top class             alerts"]
    for name, count in Counter(top[classified]).most_common():
        lines.append(f"  {name:<18} {count:>6}")
    declined = Counter(reason[~classified])
    if declined:
        lines += ["", "Declined (reason)     alerts"]
        for text, count in declined.most_common():
            lines.append(f"  {text:<40} {count:>6}")
    ids = pdf["objectId"] if "objectId" in pdf.columns else pd.Series(["?"] * n, index=pdf.index)
    candid = pdf["candid"] if "candid" in pdf.columns else pd.Series(["?"] * n, index=pdf.index)
    lines += ["", "Examples (the most confident alert of each frequent class)",
              f"  {'objectId':<14} {'candid':<20} {'top class':<16} p(top)  runner-up"]
    p_top = pd.Series([max(p.values()) if p else np.nan for p in probs], index=pdf.index)
    for name, _ in Counter(top[classified]).most_common(examples):
        i = int(np.nanargmax(np.where((top == name).to_numpy(), p_top.to_numpy(), np.nan)))
        ranked = sorted(probs.iloc[i].items(), key=lambda kv: -kv[1])
        (best, p_best), (second, p_second) = ranked[0], ranked[1]
        lines.append(f"  {ids.iloc[i]!s:<14} {candid.iloc[i]!s:<20} {best:<16} {p_best:.3f}   "
                     f"{second} {p_second:.3f}")
    for i in np.flatnonzero(~classified.to_numpy())[:2]:
        lines.append(f"  {ids.iloc[i]!s:<14} {candid.iloc[i]!s:<20} declined: {reason.iloc[i]}")
    return "\n".join(lines)


def read_scored(output: str | Path, engine: str, spark=None) -> pd.DataFrame:
    """objectId, candid and t2 of a scored output, as pandas (for the summary)."""
    output = Path(output)
    if engine == "pandas":
        table = pq.read_table(_output_file(output), columns=["objectId", "candid", "t2"])
        return table.to_pandas()
    return spark.read.parquet(spark_literal(output)).select("objectId", "candid", "t2.*").toPandas()
