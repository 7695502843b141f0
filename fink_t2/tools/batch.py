"""Offline scoring of archived alerts: ``fink-t2 score INPUT... --output OUT``.

Inputs are parquet files, directories of them, or Fink's partitioned lake
(``year=/month=/day=``). The output keeps every input column and adds ``t2``
(same type as the Spark science module). Two engines:

* ``spark`` (default): any number of files, written as a parquet directory;
  Fink's partition columns are kept and the output is partitioned like the input.
* ``pandas``: one file, no Spark (quick jobs, laptops): pyarrow + :mod:`fink_t2.scoring`.

Every input file's footer is checked before anything is scored
(:mod:`fink_t2.scoring.inputs`), so a missing, empty or corrupt input fails at
once with the file named; files of different schemas are aligned by field
name for Spark (:mod:`fink_t2.tools.unify`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import sys
import threading
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fink_t2.scoring.alerts import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, alert_columns, candidate_fields
from fink_t2.scoring.arrow_compat import struct_field
from fink_t2.scoring.classes import CLASS_FIELDS, CLASSES
from fink_t2.scoring.classifier import Scores, score_alerts, score_columns
from fink_t2.scoring.column import t2_arrow
from fink_t2.scoring.cuts import Cuts, make_selector
from fink_t2.scoring.inputs import (
    InputError,
    check_alert_schema,
    check_separate,
    find_parquet,
    one_line,
    read_alert_schemas,
    schema_survey,
)
from fink_t2.scoring.outputs import OutputLock, lock_output, publish, remove
from fink_t2.scoring.readers import READERS, get_reader, light_curve_columns, survey_of_columns
from fink_t2.scoring.sky import sky_columns_of_table
from fink_t2.spark.hadoop import check_spark_path, spark_literal
from fink_t2.tools.avro_alerts import is_avro, read_avro, read_avro_schema
from fink_t2.tools.unify import UNFIT_COLUMN, decline_unfit, unify_frames

LOGGER = logging.getLogger(__name__)

#: Alerts scored per chunk by the pandas engine (one progress update per chunk).
PANDAS_CHUNK = 2000


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


# --------------------------------------------------------------------------- scoring a table (pyarrow)


def _extra(table: pa.Table, name: str):
    if name == "jdstarthist" and "candidate" in table.column_names:
        if name not in candidate_fields(table):
            return None
        return struct_field(table.column("candidate").combine_chunks(), "jdstarthist").to_pandas()
    return table.column(name).to_pandas() if name in table.column_names else None


def score_table(table: pa.Table, model_path=None, cuts: Cuts | None = None, survey: str | None = None) -> Scores:
    """Scores of the alerts in a pyarrow Table (raw alerts or with Fink's c* columns).

    ``survey`` None: read off the schema (ZTF unless the table holds Rubin alerts).
    """
    cuts = cuts if cuts is not None else Cuts()
    survey = survey if survey is not None else (schema_survey(table.schema) or "ztf")
    if survey != "ztf":
        return _score_survey_table(table, survey, model_path, cuts)
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
                        model_path=model_path, select=select, sky=sky_columns_of_table(table))


def _score_survey_table(table: pa.Table, survey: str, model_path, cuts: Cuts) -> Scores:
    """Scores of a non-ZTF survey's alerts (Rubin): its c* columns, from the table or built from raw alerts."""
    check_cuts_survey(cuts, survey)
    reader = get_reader(survey)
    wanted = [c for c in table.column_names if c.startswith("c") or c in
              (reader.current_column, reader.history_column, "diaObject", reader.host_redshift_column)]
    frame = light_curve_columns(table.select(wanted).to_pandas(), survey)
    optional = {name: frame[name] for name in (*reader.optional_columns, reader.host_redshift_column)
                if name and name in frame}
    optional.update(sky_columns_of_table(table))
    return score_columns([frame[c] for c in reader.columns], optional, survey=survey, model_path=model_path)


def check_cuts_survey(cuts: Cuts | None, survey: str) -> None:
    """InputError if Fink's selection cuts are asked for on another survey's alerts: they read ZTF columns."""
    if cuts is not None and cuts.enabled and survey != "ztf":
        raise InputError(f"Fink's t2 selection cuts (--cuts / --cuts-config) read ZTF columns (jdstarthist, roid, "
                         f"cdsxmatch); {survey} alerts have none: score them without --cuts")


# --------------------------------------------------------------------------- inputs of either survey, either format


def find_alert_files(inputs: list[str | Path]) -> list[Path]:
    """The alert files named by ``inputs``: parquet as :func:`find_parquet` finds them, and Avro files.

    An Avro file (``*.avro``) is read when it is named; directories are searched
    for parquet only, as ever (a directory of Avro files is named file by file,
    ``DIR/*.avro``: a stray ``.avro`` beside a lake's parquet is not read by accident).
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_file() and is_avro(path):
            files.append(path)
            continue
        try:
            files.extend(find_parquet([path]))
        except InputError as error:
            avro = path.is_dir() and any(p.is_file() for p in path.rglob("*.avro"))
            if not avro:
                raise
            raise InputError(f"{error}; it holds Avro files: name them one by one ({path}/*.avro)") from None
    return files


def read_input_schemas(files: list[Path]) -> list[pa.Schema]:
    """Each input file's schema (parquet footer, Avro header), checked to hold ZTF or Rubin alerts."""
    parquet = [p for p in files if not is_avro(p)]
    of_parquet = dict(zip(parquet, read_alert_schemas(parquet))) if parquet else {}
    schemas = []
    for path in files:
        if is_avro(path):
            schema = read_avro_schema(path)
            check_alert_schema(schema, path)
            schemas.append(schema)
        else:
            schemas.append(of_parquet[path])
    return schemas


def input_survey(files: list[Path], schemas: list[pa.Schema], survey: str | None) -> str:
    """The survey of the inputs: ``survey`` if given (checked against every file), else read off the schemas.

    One survey per job: files of both, or a file of the other survey than
    ``--survey``, is an InputError naming the file. The survey read off the
    schemas is logged (one line).
    """
    found = [(path, schema_survey(schema)) for path, schema in zip(files, schemas)]
    if survey is not None:
        for path, of_file in found:
            if of_file is not None and of_file != survey:
                raise InputError(f"{path} holds {of_file} alerts, not {survey} ones (--survey {survey}): remove it "
                                 f"from the input or pass --survey {of_file}")
        return survey
    surveys = {of_file for _, of_file in found if of_file is not None}
    if len(surveys) > 1:
        first = {of_file: path for path, of_file in reversed(found)}
        named = ", ".join(f"{first[s]} holds {s} alerts" for s in sorted(surveys))
        raise InputError(f"the inputs mix surveys ({named}): score each survey's files in its own job")
    detected = surveys.pop() if surveys else "ztf"
    LOGGER.info("inputs hold %s alerts (read off their columns): scoring them with the %s model "
                "(--survey to say so)", detected, detected)
    return detected


def _read_table(path: Path) -> pa.Table:
    """One input file as a Table (Avro or parquet); InputError naming it if its data cannot be read."""
    if is_avro(path):
        return read_avro(path)
    try:
        return pq.read_table(path)
    except Exception as error:  # ArrowException, OSError: a damaged data page behind a valid footer
        raise InputError(f"cannot read parquet file {path}: {one_line(error)} (corrupt: remove or replace "
                         "it)") from error


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
    return InputError(f"cannot write output {output}: {one_line(error)} (free some space, fix the permissions or "
                      "choose another --output; nothing was written)")


def _lock_output(output: Path, overwrite: bool, spark: bool = False) -> OutputLock:
    """This job's lock on ``output`` (OutputBusyError if another job holds it), the output checked again under it.

    Taken after every other check and before anything is read or written; two jobs
    given the same output cannot both pass, and one that finished meanwhile is seen.
    """
    lock = lock_output(output)
    try:
        _check_output(output, overwrite, spark)
    except BaseException:
        lock.release()
        raise
    return lock


def score_pandas(input_file: str | Path, output: str | Path | None, model_path=None, cuts: Cuts | None = None,
                 overwrite: bool = False, progress: bool = True, survey: str | None = None) -> pa.Table:
    """Score one parquet or Avro file without Spark; write it (parquet) with ``t2`` added to ``output`` (if
    given); return it.

    ``survey`` ("ztf", "rubin"; None: read off the file's columns) picks the
    reader and the default model. The output is written under a temporary name
    and renamed when complete, so a killed or failed write (full disk) leaves
    no file under the final name.
    """
    files = find_alert_files([input_file])
    if len(files) != 1:
        raise InputError(f"the pandas engine scores one file; {input_file} holds {len(files)} "
                         "(use --engine spark)")
    path = files[0]
    if output is not None:
        output = Path(output)
        check_separate([input_file], {"output": output})
    schemas = read_input_schemas(files)
    survey = input_survey(files, schemas, survey)
    check_cuts_survey(cuts, survey)
    if output is not None:
        _check_output(output, overwrite)
    from fink_t2.scoring.preflight import check_score_job

    check_score_job(files, schemas, output, cuts, "pandas",
                    _output_file(output) if output is not None else None)

    model_path = survey_model(survey, model_path)  # a bad model file, or one of another survey, fails here
    lock = _lock_output(output, overwrite) if output is not None else None
    try:
        return _score_pandas_file(path, output, model_path, cuts, overwrite, progress, survey)
    finally:
        if lock is not None:
            lock.release()


def _score_pandas_file(path: Path, output: Path | None, model_path, cuts: Cuts | None, overwrite: bool,
                       progress: bool, survey: str) -> pa.Table:
    """:func:`score_pandas` once the checks passed and the output is locked: score, write, publish."""
    table = _read_table(path)
    parts = []
    with progress_bar(table.num_rows, progress) as bar:
        for start in range(0, table.num_rows, PANDAS_CHUNK):
            chunk = table.slice(start, PANDAS_CHUNK)
            parts.append(t2_arrow(score_table(chunk, model_path, cuts, survey)))
            bar.update(chunk.num_rows)
    t2 = pa.concat_arrays(parts) if parts else t2_arrow(Scores.empty())
    if "t2" in table.column_names:
        LOGGER.info("replacing the existing 't2' column of %s", path)
        table = table.drop(["t2"])
    table = table.append_column("t2", t2)
    if output is not None:
        tmp = _temporary_sibling(output, "tmp")
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            if _output_file(output) == output:
                pq.write_table(table, tmp)
            else:  # a folder output is replaced whole: written as a folder, published as one
                tmp.mkdir()
                pq.write_table(table, tmp / _output_file(output).name)
            publish(tmp, output, replace=overwrite)
        except OSError as error:
            raise _write_error(output, error) from error
        finally:
            if os.path.lexists(tmp):
                remove(tmp)
    return table


def survey_model(survey: str, model_path=None):
    """``model_path`` (or ``survey``'s shipped model when None), loaded and checked to read ``survey``'s alerts.

    Returns the path to score with. ModelFileError for a bad file; InputError
    for a model of another survey (one line naming the model and the fix).
    """
    from fink_t2.scoring.classifier import model_for
    from fink_t2.scoring.paths import default_model

    path = model_path if model_path is not None else default_model(survey)
    try:
        model_for(survey, model_path=path)
    except ValueError as error:
        if type(error) is not ValueError:  # ModelFileError and the like: their own one line
            raise
        raise InputError(f"model {path}: {error}") from error
    return path


#: Spark's partition-column type inference turns ``day=01`` into the integer 1: off while reading inputs.
_INFERENCE = "spark.sql.sources.partitionColumnTypeInference.enabled"
#: Spark >= 3.4 refuses parquet nanosecond timestamps (pandas writes them: the ELAsTiCC files'
#: ``brokerIngestTimestamp``) unless they are read as their int64 value: on while reading inputs.
_NANOS_AS_LONG = "spark.sql.legacy.parquet.nanosAsLong"
#: Session settings while the job runs (restored after): partition values as written, nanosecond times readable.
_READ_SETTINGS = {_INFERENCE: "false", _NANOS_AS_LONG: "true"}


def score_spark(inputs: list[str | Path], output: str | Path, model_path=None, cuts: Cuts | None = None,
                overwrite: bool = False, spark=None, master: str | None = None, progress: bool = True,
                survey: str | None = None) -> Path:
    """Score parquet (or Avro) files/directories/partitions with Spark; write a parquet directory; return the path.

    ``survey`` ("ztf", "rubin"; None: read off the files' columns) picks the
    reader and the default model; one job scores one survey. Avro files are
    converted to parquet in a hidden directory beside the output first (Spark
    reads Avro only with the spark-avro package), removed when the job ends.

    Inputs, output and model are checked before a Spark session is started
    (``spark`` None: one is made with ``master`` once the checks pass). Paths
    are literal; every input's partition columns are kept with their values as
    written (``day=01`` stays ``01``); files of different schemas are aligned by
    field name. The output is written to a hidden temporary directory and
    renamed when the job succeeded: a failed job leaves nothing behind.
    """
    output = Path(output)
    check_separate(inputs, {"output": output})
    files_of = {str(item): find_alert_files([item]) for item in inputs}
    files = [f for found in files_of.values() for f in found]
    for path in files:
        check_spark_path(path)
    schemas = read_input_schemas(files)
    survey = input_survey(files, schemas, survey)
    check_cuts_survey(cuts, survey)
    _check_output(output, overwrite, spark=True)
    from fink_t2.scoring.preflight import check_score_job

    check_score_job(files, schemas, output, cuts, "spark")  # unwritable output, cuts' columns: before Spark
    model_path = survey_model(survey, model_path)  # a bad model file fails here, before Spark reads anything
    lock = _lock_output(output, overwrite, spark=True)
    try:
        return _score_spark_files(files_of, files, schemas, survey, output, model_path, cuts, overwrite, spark,
                                  master, progress)
    finally:
        lock.release()


def _score_spark_files(files_of: dict[str, list[Path]], files: list[Path], schemas: list[pa.Schema], survey: str,
                       output: Path, model_path, cuts: Cuts | None, overwrite: bool, spark, master: str | None,
                       progress: bool) -> Path:
    """:func:`score_spark` once the checks passed and the output is locked: read, score, write, publish."""
    from fink_t2.spark.processor import apply_t2, restore_conf, spark_session

    converted = None
    if any(is_avro(p) for p in files):
        converted = _temporary_sibling(output.absolute(), "avro")
        files_of, schemas = _avro_as_parquet(files_of, converted)
        files = [f for found in files_of.values() for f in found]
    schema_of = dict(zip(files, schemas))
    own_session = spark is None  # stopped after a Ctrl-C; a caller's session is left running
    spark = spark or spark_session("fink-t2-score", master=master,
                                   conf={"spark.ui.showConsoleProgress": str(progress).lower()})
    previous = {key: spark.conf.get(key, None) for key in _READ_SETTINGS}
    for key, value in _READ_SETTINGS.items():
        spark.conf.set(key, value)
    ctrl_c = threading.Event()
    handler = _cancel_on_interrupt(spark, ctrl_c)
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
        result = decline_unfit(apply_t2(df, model_path=model_path, survey=survey,
                                            cuts=cuts if cuts is not None else Cuts()))  # None: no cuts
        writer = result.write.mode("errorifexists")
        if partition_columns:
            writer = writer.partitionBy(*partition_columns)
        tmp = _temporary_sibling(output.absolute(), "tmp")
        try:
            output.absolute().parent.mkdir(parents=True, exist_ok=True)
            writer.parquet(str(tmp))
            if ctrl_c.is_set():
                raise KeyboardInterrupt
            publish(tmp, output, replace=overwrite)
        except OSError as error:
            raise _write_error(output, error) from error
        except KeyboardInterrupt:
            _stop_quietly(spark, own_session)  # no task may write into the temporary folder once it is removed
            raise
        except Exception as error:  # the job failed: Py4JJavaError, PythonException, ...
            if ctrl_c.is_set() or interrupted(error):  # Ctrl-C cancelled the job: say so, not "the job failed"
                _stop_quietly(spark, own_session)
                raise KeyboardInterrupt from None
            raise InputError(spark_failure(error, files)) from error
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)
        try:
            restore_conf(spark, previous)
        except Exception:  # noqa: BLE001 -- the JVM is gone (Ctrl-C reaches it too): nothing to restore
            pass
        if converted is not None:
            shutil.rmtree(converted, ignore_errors=True)
    return output


def interrupted(error: BaseException) -> bool:
    """Whether ``error`` is, or was raised while handling, a KeyboardInterrupt (Ctrl-C)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def _cancel_on_interrupt(spark, ctrl_c: threading.Event):
    """Make Ctrl-C cancel the Spark job from a thread and set ``ctrl_c``; return the handler it replaces (None
    when not in the main thread, where signals cannot be handled).

    pyspark's own handler cancels the jobs inside the signal handler, re-entering py4j in the middle of the
    main thread's call: a page of chained py4j tracebacks. Here the main thread's call returns the cancelled
    job's error instead, which the job turns into KeyboardInterrupt; Spark's logs are silenced first (the
    cancelled tasks would each log a stack trace).
    """
    def cancel() -> None:
        try:
            spark.sparkContext.setLogLevel("OFF")
            spark.sparkContext.cancelAllJobs()
        except Exception:  # noqa: BLE001 -- the JVM is already stopping
            pass

    def on_interrupt(signum, frame) -> None:
        if not ctrl_c.is_set():
            ctrl_c.set()
            threading.Thread(target=cancel, daemon=True).start()

    try:
        return signal.signal(signal.SIGINT, on_interrupt)
    except ValueError:  # not the main thread
        return None


def _stop_quietly(spark, own_session: bool) -> None:
    """After a Ctrl-C: stop the job's own Spark session (a caller's: cancel its jobs), ignoring a JVM that is gone."""
    try:
        if own_session:
            spark.stop()
        else:
            spark.sparkContext.cancelAllJobs()
    except Exception:  # noqa: BLE001 -- py4j errors of a JVM that received the Ctrl-C too
        pass


def _avro_as_parquet(files_of: dict[str, list[Path]], folder: Path) -> tuple[dict[str, list[Path]], list[pa.Schema]]:
    """Every Avro file of ``files_of`` written as parquet under ``folder``: the file lists (the converted files
    under ``folder``'s own key: they have no partition directories) and their schemas, in that order."""
    out: dict[str, list[Path]] = {}
    converted: list[Path] = []
    folder.mkdir(parents=True, exist_ok=True)
    for item, found in files_of.items():
        kept = [path for path in found if not is_avro(path)]
        for path in found:
            if is_avro(path):
                target = folder / f"part-{len(converted):05d}-{path.stem}.parquet"
                try:
                    pq.write_table(read_avro(path), target)
                except OSError as error:
                    raise _write_error(target, error) from error
                converted.append(target)
        if kept:
            out[item] = kept
    out[str(folder)] = converted
    files = [f for found in out.values() for f in found]
    return out, [pq.read_schema(path) for path in files]


def spark_failure(error: Exception, files: list[Path]) -> str:
    """One line for a failed Spark job: the damaged input file, if any, and what to do.

    The file is the one Spark's error names (a plain path or a URI, percent-encoded
    or not); Spark often names none ("Job aborted"), so else every input is read
    with pyarrow, row group by row group, and the first that cannot be read is named.
    """
    text = str(error)
    named = next((p for p in files if _named_in(p, text)), None) or _unreadable_file(files)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cause = next((line for line in lines if "Exception" in line or "Error" in line or "[" in line), None)
    cause = one_line(Exception(cause or (lines[0] if lines else type(error).__name__)), 240)
    if named is not None:
        return (f"the Spark job failed reading {named}: {cause} (the file is damaged: remove or replace it, then "
                "rerun; nothing was written)")
    return f"the Spark job failed: {cause} (nothing was written; fix the cause and rerun)"


def _named_in(path: Path, text: str) -> bool:
    """Whether ``text`` (a Spark error) names ``path``: as a path, a URI, or either percent-encoded."""
    from urllib.parse import quote

    absolute = str(path.absolute())
    return any(form in text for form in (absolute, path.absolute().as_uri(), quote(absolute)))


def _unreadable_file(files: list[Path]) -> Path | None:
    """The first parquet input whose data pyarrow cannot read (a damaged page behind a valid footer), or None."""
    for path in files:
        if is_avro(path):
            continue
        try:
            parquet = pq.ParquetFile(path)
            for group in range(parquet.metadata.num_row_groups):
                parquet.read_row_group(group)
        except Exception:  # noqa: BLE001 -- ArrowException, OSError: that file is the damaged one
            return path
    return None


# --------------------------------------------------------------------------- summary


def summarize(pdf: pd.DataFrame, examples: int = 5) -> str:
    """A readable summary of scored alerts: counts per top class, declines by reason, a few examples.

    ``pdf`` has an alert's two identifiers (a survey reader's ``id_columns``:
    ``objectId``, ``candid`` for ZTF, ``diaObjectId``, ``diaSourceId`` for Rubin) and the ``t2``
    struct as dicts (or its fields as columns: one per class field of ``CLASS_FIELDS``,
    ``top_class``, ``reason``).
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
    names = next((r.id_columns for r in READERS.values() if set(r.id_columns) & set(pdf.columns)),
                 READERS["ztf"].id_columns)
    ids, candid = (pdf[c].astype(object) if c in pdf.columns else pd.Series(["?"] * n, index=pdf.index)
                   for c in names)
    wide = [max([14, len(names[0]) + 1, *(len(str(v)) + 1 for v in ids)]),
            max([20, len(names[1]) + 1, *(len(str(v)) + 1 for v in candid)])]
    lines += ["", "Examples (the most confident alert of each frequent class)",
              f"  {names[0]:<{wide[0]}} {names[1]:<{wide[1]}} {'top class':<16} p(top)  runner-up"]
    p_top = pd.Series([max(p.values()) if p else np.nan for p in probs], index=pdf.index)
    for name, _ in Counter(top[classified]).most_common(examples):
        i = int(np.nanargmax(np.where((top == name).to_numpy(), p_top.to_numpy(), np.nan)))
        ranked = sorted(probs.iloc[i].items(), key=lambda kv: -kv[1])
        (best, p_best), (second, p_second) = ranked[0], ranked[1]
        lines.append(f"  {ids.iloc[i]!s:<{wide[0]}} {candid.iloc[i]!s:<{wide[1]}} {best:<16} {p_best:.3f}   "
                     f"{second} {p_second:.3f}")
    for i in np.flatnonzero(~classified.to_numpy())[:2]:
        lines.append(f"  {ids.iloc[i]!s:<{wide[0]}} {candid.iloc[i]!s:<{wide[1]}} declined: {reason.iloc[i]}")
    return "\n".join(lines)


def summary_frame(table: pa.Table) -> pd.DataFrame:
    """What :func:`summarize` reads from a scored table: the alert's two identifiers and ``t2``.

    The identifiers are the survey reader's ``id_columns`` (ZTF: ``objectId``,
    ``candid``; Rubin: ``diaObjectId``, ``diaSourceId``), a top-level column or
    a field of the current detection's struct (Rubin's ``diaSource``); null where absent.
    """
    reader = get_reader(schema_survey(table.schema) or "ztf")
    names = table.column_names
    struct_type = table.schema.field(reader.current_column).type if reader.current_column in names else None
    current = table.column(reader.current_column).combine_chunks() if pa.types.is_struct(struct_type) else None
    columns = {}
    for name in reader.id_columns:
        if name in names:
            columns[name] = table.column(name).to_pylist()
        elif current is not None and current.type.get_field_index(name) >= 0:
            columns[name] = struct_field(current, name).to_pylist()
        else:
            columns[name] = [None] * table.num_rows
    return pd.DataFrame({**columns, "t2": table.column("t2").to_pylist()})


def read_scored(output: str | Path, engine: str, spark=None) -> pd.DataFrame:
    """The identifiers and t2 of a scored output, as pandas (for the summary; see :func:`summary_frame`)."""
    output = Path(output)
    if engine == "pandas":
        path = _output_file(output)
        schema = pq.read_schema(path)
        reader = get_reader(schema_survey(schema) or "ztf")
        wanted = [c for c in (*reader.id_columns, "t2") if c in schema.names]
        if len(wanted) < 3 and reader.current_column in schema.names:
            wanted.append(reader.current_column)  # identifiers inside the current detection (Rubin)
        return summary_frame(pq.read_table(path, columns=wanted))
    from pyspark.sql import functions as F

    df = spark.read.parquet(spark_literal(output))
    reader = get_reader(survey_of_columns(df.columns) or "ztf")
    current_type = df.schema[reader.current_column].dataType if reader.current_column in df.columns else None
    current = set(current_type.fieldNames()) if hasattr(current_type, "fieldNames") else set()
    picked = []
    for name in reader.id_columns:
        if name in df.columns:
            picked.append(df[name])
        elif name in current:
            picked.append(df[f"{reader.current_column}.{name}"].alias(name))
        else:
            picked.append(F.lit(None).cast("string").alias(name))
    return df.select(*picked, "t2.*").toPandas()
