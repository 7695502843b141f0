"""t2 as fink-broker runs it (docs/fink_integration.md), and what Fink's images need of the package.

* the documented lines in Fink's ZTF and Rubin science stages, on the ``c*`` columns built by
  fink-utils' real ``concat_col``, then Fink's Avro schema derivation (``schema_converter.to_avro``);
* CVE-2023-47248 closed on the pyarrow the image keeps (pyarrow 9 in Fink's ZTF image);
* LiteRT's native "XNNPACK delegate" notice kept out of the workers' logs.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fink_t2.scoring import T2_FIELDS
from fink_t2.scoring.arrow_compat import FIXED_PYARROW, pyarrow_version
from fink_t2.scoring.classes import CLASS_FIELDS
from fink_t2.scoring.paths import SAMPLE_RUBIN_ALERTS


def _fink_utils():
    """fink-utils' concat_col and schema_converter, or a skip saying why they are absent."""
    try:
        from fink_utils.spark import schema_converter
        from fink_utils.spark.utils import concat_col
    except ImportError as error:  # fink-utils (or the astropy it imports) not installed
        pytest.skip(f"fink-utils not importable here ({error}): pip install fink-utils astropy")
    return concat_col, schema_converter


def _avro_fields(schema_json: str) -> dict:
    """Field name -> Avro type of the ``t2`` record in Fink's derived schema."""
    schema = json.loads(schema_json)
    (t2,) = [f for f in schema["fields"] if f["name"] == "t2"]
    record = next(t for t in (t2["type"] if isinstance(t2["type"], list) else [t2["type"]])
                  if isinstance(t, dict) and t.get("type") == "record")
    return {f["name"]: f["type"] for f in record["fields"]}


@pytest.mark.spark
def test_ztf_stage_lines_with_fink_utils(spark, sample_path):
    """fink-broker's ZTF ``apply_science_modules``: concat_col, cross-match columns, then the documented line."""
    from pyspark.sql import functions as F

    concat_col, schema_converter = _fink_utils()
    from fink_t2.spark.processor import T2_FINK_ZTF_ARGS, t2_fink

    df = spark.read.parquet(str(sample_path))
    expanded = ["jd", "fid", "magpsf", "sigmapsf", "magnr", "sigmagnr", "isdiffpos", "distnr", "diffmaglim",
                "ra", "dec"]
    for name in expanded:
        df = concat_col(df, name, prefix="c")
    # Fink's earlier stages: the cross-match and the asteroid catcher (their test values here).
    df = df.withColumn("cdsxmatch", F.lit("Unknown")).withColumn("roid", F.lit(0).cast("int"))
    no_galaxy = [F.lit(v) for field in ("HyperLEDA_name", "2MASS_name", "lum_dist", "ang_dist")
                 for v in (field, "None")]
    df = df.withColumn("mangrove", F.create_map(*no_galaxy))  # crossmatch_mangrove's map, nothing within 60"
    df = df.withColumn("t2", t2_fink(*T2_FINK_ZTF_ARGS))  # the line of docs/fink_integration.md
    df = df.drop(*["c" + name for name in expanded])
    rows = df.select("candid", "t2").collect()
    assert len(rows) == 329
    reasons = [row.t2.reason for row in rows]
    classified = [row.t2 for row in rows if row.t2.reason is None]
    assert classified and any(r is not None for r in reasons)
    assert all(abs(sum(t[c] for c in CLASS_FIELDS) - 1) < 1e-6 for t in classified)
    fields = _avro_fields(schema_converter.to_avro(df.coalesce(1).limit(1).schema))
    assert list(fields) == list(T2_FIELDS)
    assert all(fields[c] == ["double", "null"] or fields[c] == ["null", "double"] or fields[c] == "double"
               for c in CLASS_FIELDS), fields


@pytest.mark.spark
def test_rubin_stage_line_inside_fink_clf_struct(spark):
    """fink-broker's Rubin stage: concat_col on diaSource/prvDiaSources, t2 among the classifiers, then ``clf``."""
    concat_col, schema_converter = _fink_utils()
    from pyspark.sql import functions as F

    from fink_t2.spark.processor import T2_FINK_RUBIN_ARGS, t2_rubin

    df = spark.read.parquet(str(SAMPLE_RUBIN_ALERTS))
    expanded = ["midpointMjdTai", "band", "psfFlux", "psfFluxErr"]
    for name in expanded:
        df = concat_col(df, name, prefix="c", current="diaSource", history="prvDiaSources")
    before = df.columns
    df = df.withColumn("t2", t2_rubin(*T2_FINK_RUBIN_ARGS))  # the line of docs/fink_integration.md
    classifiers = [c for c in df.columns if c not in before]
    df = df.withColumn("clf", F.struct(*classifiers)).drop(*classifiers).drop(*["c" + n for n in expanded])
    values = [row.t2 for row in df.select("clf.t2").collect()]
    assert values and any(v.reason is None for v in values)
    schema = json.loads(schema_converter.to_avro(df.coalesce(1).limit(1).schema))
    (clf,) = [f for f in schema["fields"] if f["name"] == "clf"]
    assert "t2" in json.dumps(clf) and "SNIa_91bg" in json.dumps(clf)


def test_crafted_parquet_metadata_is_never_unpickled(tmp_path):
    """CVE-2023-47248: a parquet file declaring a pickled ``arrow.py_extension_type`` is refused, nothing runs.

    On pyarrow < 14.0.1 (Fink's ZTF image) a bare pyarrow runs the payload (checked first, so the file is
    known to be a real exploit); with fink_t2 imported the hotfix refuses it.
    """
    canary = tmp_path / "PWNED"
    path = tmp_path / "evil.parquet"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (canary,))

    field = pa.field("evil", pa.int64(), metadata={b"ARROW:extension:name": b"arrow.py_extension_type",
                                                   b"ARROW:extension:metadata": pickle.dumps(Payload())})
    pq.write_table(pa.table({"evil": pa.array(range(3), pa.int64())}, schema=pa.schema([field])), path)
    read = f"import pyarrow.parquet as pq; pq.read_table({str(path)!r})"
    if pyarrow_version() < FIXED_PYARROW:
        subprocess.run([sys.executable, "-c", read], capture_output=True, timeout=120)
        assert canary.exists(), "pyarrow < 14.0.1 without the hotfix should have run the payload"
        canary.unlink()
    guarded = subprocess.run([sys.executable, "-c", "import fink_t2.scoring; " + read], capture_output=True,
                             text=True, timeout=120)
    assert not canary.exists()
    if pyarrow_version() < FIXED_PYARROW:
        assert guarded.returncode != 0 and "deserialization" in guarded.stderr.lower(), guarded.stderr


def test_litert_delegate_notice_is_dropped_other_lines_kept():
    code = textwrap.dedent("""
        import os
        from fink_t2.scoring.native_log import litert_notices_dropped
        from fink_t2.scoring.runtime import load_model
        load_model(None)
        with litert_notices_dropped():
            os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\nanother line\\n")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "XNNPACK" not in done.stderr
    assert "another line" in done.stderr
