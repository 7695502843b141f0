"""The benchmark's input: real alerts of one survey, flattened to the columns every module reads, replicated.

ZTF: the real alerts of ``data/`` and ``../shared/data/ztf_alerts`` become one
flat table (Fink's ``c*`` columns and the candidate fields the modules read,
with the ZTF Avro types). Rubin: the real alerts of
``data/rubin_alerts_sample.parquet`` become Fink's Rubin ``c*`` columns (built
by the survey's own reader) with ``diaSourceId`` and ``host_z``. Either is
replicated to the requested count with a fresh alert id per copy (the survey's
:attr:`BenchSurvey.id_column`) and cached as one parquet file under the work directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fink_t2.scoring.alerts import history_array
from fink_t2.scoring.arrow_compat import struct_field
from fink_t2.scoring.paths import SAMPLE_ALERTS, SAMPLE_RUBIN_ALERTS, SHARED_ZTF_ALERTS, alert_files, checkout_root
from fink_t2.scoring.readers import get_reader
from fink_t2.scoring.surveys import get_survey

#: Real alerts replicated to build the input (files or directories of parquet files).
DEFAULT_INPUTS: tuple[Path, ...] = (SAMPLE_ALERTS, SHARED_ZTF_ALERTS)
#: Cache of the built input and the Spark log: runs/bench of the checkout, or of the working directory
#: when the package is installed (never inside site-packages).
DEFAULT_WORKDIR = (checkout_root() or Path.cwd()) / "runs" / "bench"

#: Bump when the cached input's layout changes.
CACHE_VERSION = 2

#: Per-alert history columns (``c`` + field), with the ZTF Avro types (schema 3.3).
HISTORY_FIELDS: dict[str, pa.DataType] = {
    "jd": pa.float64(), "fid": pa.int32(), "magpsf": pa.float32(), "sigmapsf": pa.float32(),
    "diffmaglim": pa.float32(), "isdiffpos": pa.string(), "distnr": pa.float32(), "magnr": pa.float32(),
    "sigmagnr": pa.float32(),
}
#: Fields of the current detection (``candidate.<field>``) the modules read, flattened to top-level columns.
CANDIDATE_FIELDS: dict[str, pa.DataType] = {
    "jd": pa.float64(), "fid": pa.int32(), "magpsf": pa.float32(), "sigmapsf": pa.float32(),
    "jdstarthist": pa.float64(), "ndethist": pa.int32(), "sgscore1": pa.float32(), "ssdistnr": pa.float32(),
    "distpsnr1": pa.float32(), "ra": pa.float64(), "dec": pa.float64(),
}
#: Fink's ``mangrove`` column as its ZTF stage makes it (crossmatch_mangrove: a map of strings).
MANGROVE_FIELDS = ("HyperLEDA_name", "2MASS_name", "lum_dist", "ang_dist")
#: Fink's test value for a cross-match that needs a web service.
XMATCH_TEST_VALUE = "Unknown"



def find_alert_files(inputs: Sequence[str | Path] = DEFAULT_INPUTS) -> list[Path]:
    """Parquet files named by ``inputs`` (files, or directories searched non-recursively), sorted per input.

    With the default inputs, a missing shared-data folder is left out (the sample remains).
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if inputs is DEFAULT_INPUTS and path == SHARED_ZTF_ALERTS and not path.exists():
            # A user's clone has no shared data: the default is then the shipped sample alone (the
            # report's "files" says which alerts were replicated).
            continue
        if path.is_dir():
            files.extend(alert_files(path))  # not the labels beside the alerts (vsx_labels.parquet)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"bench input not found: {path}")
    if not files:
        raise FileNotFoundError(f"no parquet file of real alerts found in {[str(i) for i in inputs]}")
    return files


def _candidate(table: pa.Table, name: str, dtype: pa.DataType) -> pa.Array:
    return struct_field(table.column("candidate").combine_chunks(), name).cast(dtype)


def alerts_table(path: Path) -> pa.Table:
    """One file of raw (or Fink-enriched) ZTF alerts -> the flat columns every benchmarked module reads.

    ``roid`` and ``cdsxmatch`` are Fink's values when the file has them
    (Fink-enriched alerts); otherwise ``roid`` is null (computed later) and
    ``cdsxmatch`` is Fink's test value ``"Unknown"`` (the cross-match needs a
    web service).
    """
    names = pq.read_schema(path).names
    wanted = [c for c in ("objectId", "candid", "candidate", "prv_candidates", "roid", "cdsxmatch") if c in names]
    table = pq.read_table(path, columns=wanted)
    n = table.num_rows
    columns: dict[str, pa.Array] = {
        "objectId": table.column("objectId").combine_chunks().cast(pa.string()),
        "candid": table.column("candid").combine_chunks().cast(pa.int64()),
    }
    for name, dtype in HISTORY_FIELDS.items():
        columns["c" + name] = history_array(table, name, dtype)
    for name, dtype in CANDIDATE_FIELDS.items():
        columns[name] = _candidate(table, name, dtype)
    if "roid" in names:
        columns["roid"] = table.column("roid").combine_chunks().cast(pa.int32())
    else:
        columns["roid"] = pa.nulls(n, type=pa.int32())
    if "cdsxmatch" in names:
        columns["cdsxmatch"] = table.column("cdsxmatch").combine_chunks().cast(pa.string()).fill_null(
            XMATCH_TEST_VALUE)
    else:
        columns["cdsxmatch"] = pa.array([XMATCH_TEST_VALUE] * n, type=pa.string())
    columns["mangrove"] = mangrove_column(columns["ra"], columns["dec"])
    columns["source_file"] = pa.array([path.name] * n, type=pa.string())
    return pa.table(columns)


def mangrove_column(ra: pa.Array, dec: pa.Array) -> pa.Array:
    """Fink's ``mangrove`` column for these positions: the nearest Mangrove galaxy within 60" (the package's
    catalogue copy, the same match), as the map of strings Fink's stage attaches before the classifiers run.

    Fink computes it upstream of every classifier, so its cost is not t2's; the galaxy names are not in the
    copy and read ``"None"`` (t2 reads only ``lum_dist``)."""
    from fink_t2.scoring.mangrove import nearest_galaxy_distance
    from fink_t2.scoring.sky import valid_position

    ra_values = ra.to_numpy(zero_copy_only=False).astype(np.float64)
    dec_values = dec.to_numpy(zero_copy_only=False).astype(np.float64)
    distance = np.full(len(ra_values), np.nan)
    searched = valid_position(ra_values, dec_values)
    if searched.any():
        distance[searched] = nearest_galaxy_distance(ra_values[searched], dec_values[searched])
    rows = [[(field, f"{d:.6g}" if field == "lum_dist" and np.isfinite(d) else "None") for field in MANGROVE_FIELDS]
            for d in distance]
    return pa.array(rows, type=pa.map_(pa.string(), pa.string()))


def _fill_roid(table: pa.Table) -> tuple[pa.Table, str]:
    """Fill the missing ``roid`` (asteroid flag) the way Fink makes it, before its other modules run.

    Fink computes ``roid`` with its asteroid module upstream of SuperNNova and
    t2. With fink-science installed, the same function fills the alerts whose
    file has no ``roid``; without it they get 0 ("not a solar-system object").
    """
    roid = table.column("roid").combine_chunks()
    missing = roid.is_null().to_numpy(zero_copy_only=False)
    if not missing.any():
        return table, "alert files"
    try:
        with warnings.catch_warnings():  # its PandasUDFType deprecation warning is Fink's business
            warnings.simplefilter("ignore")
            from fink_science.ztf.asteroids.processor import roid_catcher
    except Exception:  # noqa: BLE001 -- any import failure means: not available here
        filled = roid.fill_null(0)
        source = f"alert files; 0 for the {int(missing.sum())} alerts without it (fink-science not installed)"
    else:
        sub = table.filter(pa.array(missing))
        pdf = sub.select(["cjd", "cmagpsf", "ndethist", "sgscore1", "ssdistnr", "distpsnr1"]).to_pandas()
        function = getattr(roid_catcher, "func", roid_catcher)
        flags = np.asarray(function(pdf["cjd"], pdf["cmagpsf"], pdf["ndethist"], pdf["sgscore1"],
                                    pdf["ssdistnr"], pdf["distpsnr1"]), dtype=np.int32)
        values = roid.to_numpy(zero_copy_only=False).astype(np.float64)
        values[missing] = flags
        filled = pa.array(values.astype(np.int32))
        source = f"alert files; fink-science roid_catcher for the {int(missing.sum())} alerts without it"
    index = table.column_names.index("roid")
    return table.set_column(index, "roid", filled), source


def rubin_alerts_table(path: Path) -> pa.Table:
    """One file of Rubin alerts (any schema version the reader knows) -> ``diaSourceId``, ``diaObjectId``,
    Fink's Rubin ``c*`` columns (history first, current last, as ``concat_col`` builds them) and ``host_z``.

    The columns are built by the survey's reader, the same code ``fink-t2 score`` runs, so the
    benchmark reads what the pipeline reads.
    """
    reader = get_reader("rubin")
    names = pq.read_schema(path).names
    if reader.current_column not in names:
        raise ValueError(f"{path}: not Rubin alerts (no '{reader.current_column}' column; columns: {names[:8]}); "
                         "pass Rubin alert files with --input, or use --survey ztf for ZTF alerts")
    raw = pq.read_table(path, columns=[c for c in (reader.current_column, reader.history_column, "diaObject")
                                       if c in names])
    frame = reader.columns_from_raw(raw)
    current = raw.column(reader.current_column).combine_chunks()
    columns: dict[str, pa.Array] = {
        "diaSourceId": struct_field(current, "diaSourceId").cast(pa.int64()),
        "diaObjectId": struct_field(current, "diaObjectId").cast(pa.int64()),
    }
    for name in reader.columns:
        element = pa.string() if name == "cband" else pa.float64()
        columns[name] = pa.array(frame[name].tolist(), type=pa.list_(element))
    columns[reader.host_redshift_column] = pa.array(frame[reader.host_redshift_column].to_numpy(float),
                                                    type=pa.float64(), from_pandas=True)
    columns["source_file"] = pa.array([path.name] * raw.num_rows, type=pa.string())
    return pa.table(columns)


@dataclass(frozen=True)
class BenchSurvey:
    """What the benchmark's input needs to know of a survey: its real alerts, how one file becomes the flat
    table the modules read, which column names an alert (renewed per copy), and any column to fill first."""

    default_inputs: tuple[Path, ...]
    flatten: Callable[[Path], pa.Table]
    id_column: str
    fill: Callable[[pa.Table], tuple[pa.Table, str]] | None = None


#: The surveys the benchmark runs on.
BENCH_SURVEYS: dict[str, BenchSurvey] = {
    "ztf": BenchSurvey(DEFAULT_INPUTS, alerts_table, "candid", _fill_roid),
    "rubin": BenchSurvey((SAMPLE_RUBIN_ALERTS,), rubin_alerts_table, "diaSourceId"),
}


def bench_survey(survey: str) -> BenchSurvey:
    if survey not in BENCH_SURVEYS:
        raise ValueError(f"unknown survey {survey!r} for the benchmark; choose among {list(BENCH_SURVEYS)}")
    return BENCH_SURVEYS[survey]


def load_real_alerts(inputs: Sequence[str | Path] | None = None, survey: str = "ztf") -> tuple[pa.Table, dict]:
    """All real alerts of ``inputs`` (default: the survey's) as one flat table, and facts about them
    (files, counts, where filled columns come from)."""
    spec = bench_survey(survey)
    files = find_alert_files(spec.default_inputs if inputs is None else inputs)
    tables = [spec.flatten(path) for path in files]
    table = pa.concat_tables(tables)
    facts: dict = {"survey": survey, "files": [str(p) for p in files],
                   "alerts_per_file": {p.name: t.num_rows for p, t in zip(files, tables)},
                   "real_alerts": table.num_rows}
    if spec.fill is not None:
        table, facts["roid_source"] = spec.fill(table)
        facts["cdsxmatch_source"] = f"alert files where present, else Fink's test value '{XMATCH_TEST_VALUE}'"
    host = get_reader(survey).host_redshift_column
    if host is not None and host in table.column_names:
        facts["host_z_known"] = int(table.num_rows - table.column(host).null_count)
    history = pc.list_value_length(table.column(get_survey(survey).columns[0]).combine_chunks()).to_numpy(
        zero_copy_only=False)
    facts["entries_per_alert"] = {"mean": float(np.mean(history)), "median": float(np.median(history)),
                                  "max": int(np.max(history))}
    return table, facts


def replicate(table: pa.Table, n_alerts: int, id_column: str = "candid") -> pa.Table:
    """``n_alerts`` rows: the real alerts repeated in order (the last copy truncated), each with a new
    ``id_column`` (1..n_alerts, unique)."""
    n_real = table.num_rows
    if n_real == 0:
        raise ValueError("no real alerts to replicate")
    copies = -(-int(n_alerts) // n_real)
    rows = np.tile(np.arange(n_real), copies)[: int(n_alerts)]
    out = table.take(pa.array(rows))
    index = out.column_names.index(id_column)
    return out.set_column(index, id_column, pa.array(np.arange(1, len(rows) + 1, dtype=np.int64)))


def _inputs_digest(files: Sequence[Path], survey: str = "ztf") -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION}".encode() + (b"" if survey == "ztf" else survey.encode()))
    for path in files:
        stat = path.stat()
        digest.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def build_input(n_alerts: int, workdir: str | Path = DEFAULT_WORKDIR,
                inputs: Sequence[str | Path] | None = DEFAULT_INPUTS, survey: str = "ztf") -> tuple[Path, dict]:
    """The replicated input as a parquet file under ``workdir`` (reused when the inputs did not change).

    ``inputs`` None: the survey's real alerts (:data:`BENCH_SURVEYS`).
    """
    spec = bench_survey(survey)
    files = find_alert_files(spec.default_inputs if inputs is None else inputs)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    key = _inputs_digest(files, survey)
    prefix = "alerts" if survey == "ztf" else f"alerts-{survey}"
    path = workdir / f"{prefix}-{n_alerts}-{key}.parquet"
    facts_path = path.with_suffix(".json")
    if path.exists() and facts_path.exists():
        return path, json.loads(facts_path.read_text(encoding="utf-8"))
    real, facts = load_real_alerts(files, survey)
    table = replicate(real, n_alerts, spec.id_column)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, row_group_size=50_000)
    os.replace(tmp, path)
    facts = dict(facts, alerts=table.num_rows, copies=round(table.num_rows / real.num_rows, 2))
    facts_path.write_text(json.dumps(facts, indent=1), encoding="utf-8")
    return path, facts
