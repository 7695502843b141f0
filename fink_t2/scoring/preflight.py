"""Checks that run before any alert is scored and before any folder is created.

A job that would fail at its end (an output it cannot write, selection cuts
whose columns the alerts lack) must fail at its start instead, with one line
naming the file and the fix: a Spark job otherwise prints hundreds of lines of
Java stack trace, and the pandas engine scores every alert first. Nothing here
creates anything the user would see: the write test is a temporary file,
created and removed in the nearest existing folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow as pa

from fink_t2.scoring.cuts import Cuts


class PreflightError(ValueError):
    """A job cannot succeed as configured; the message names the file or column and the fix."""


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(path: str | Path, what: str = "output", flag: str = "--output", directory: bool = True) -> None:
    """PreflightError unless ``path`` can be created (or, if a directory that exists, written into).

    ``directory``: the job writes a directory at ``path`` (Spark, the stream)
    rather than a file. Nothing is created: the nearest existing folder is
    probed with a temporary file, removed at once.
    """
    path = Path(path)
    if path.exists():
        if directory and not path.is_dir():
            raise PreflightError(f"{what} {path} is not writable: it is a file, not a directory (move the "
                                 f"file away or choose another {flag})")
        if not directory and path.is_dir():
            raise PreflightError(f"{what} {path} is a directory, not a file: choose a file name ending in "
                                 f".parquet for {flag}")
    base = _nearest_existing(path)
    if base == Path(os.path.abspath(path)) and not directory and path.is_file():
        base = base.parent  # a file replaced with --overwrite: the new one is written beside it
    if not base.is_dir():
        raise PreflightError(f"{what} {path} is not writable: {base} is a file, not a directory "
                             f"(move the file away or choose another {flag})")
    try:
        handle, name = tempfile.mkstemp(prefix=".fink_t2_write_test", dir=base)
    except OSError as error:
        raise PreflightError(f"{what} {path} is not writable: cannot write in {base} ({error.strerror or error}); "
                             f"fix its permissions or choose another {flag}") from error
    os.close(handle)
    os.unlink(name)


def _schema_names(schema: pa.Schema) -> tuple[set[str], set[str]]:
    """Top-level column names and the raw ``candidate`` struct's field names of a parquet schema."""
    names = set(schema.names)
    candidate: set[str] = set()
    if "candidate" in names and pa.types.is_struct(schema.field("candidate").type):
        candidate = {f.name for f in schema.field("candidate").type}
    return names, candidate


def check_cut_columns(schema: pa.Schema, cuts: Cuts, path: str | Path, flag: str = "--cuts") -> None:
    """PreflightError naming the columns the enabled cuts need but the alerts of ``path`` lack.

    The same rule as the Spark module's driver-side check
    (``fink_t2.spark.processor.check_cut_columns``), applied to a parquet footer, before
    Spark starts.
    """
    names, candidate = _schema_names(schema)
    available = {"jdstarthist": "jdstarthist" in names or "jdstarthist" in candidate,
                 "roid": "roid" in names, "cdsxmatch": "cdsxmatch" in names}
    missing = [c for c in cuts.needed_columns() if not available[c]]
    if missing:
        raise PreflightError(
            f"the selection cuts ({flag}) need column(s) {missing}, absent from {path}: score Fink's science "
            "alerts (they have roid and cdsxmatch), or switch those cuts off (cuts.exclude_solar_system / "
            "cuts.extragalactic_xmatch: false in the configuration), or drop the cuts")


def check_score_job(files: list[Path], schemas: list[pa.Schema], output: str | Path | None, cuts: Cuts | None,
                    engine: str, output_file: Path | None = None) -> None:
    """``fink-t2 score``'s checks before scoring: the output can be written, the cuts' columns exist.

    ``output_file``: the file the pandas engine will write (``output`` itself
    or ``output/part-00000.parquet``); the Spark engine writes a directory.
    """
    if cuts is not None and cuts.enabled:
        for schema, path in zip(schemas, files):
            check_cut_columns(schema, cuts, path, flag="--cuts / --cuts-config")
    if output is None:
        return
    if engine == "pandas":
        check_writable(output_file if output_file is not None else output, "output", "--output", directory=False)
    else:
        check_writable(output, "output", "--output", directory=True)
