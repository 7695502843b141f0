"""Regenerate ``data/alerts_sample.parquet`` from the real ZTF alerts in ``../shared/data/ztf_alerts``.

Why: tests, the README demo and the Docker image need a small, self-contained
set of real alerts in ONE file with ONE schema. The source files mix schema
versions and types (Fink re-wrote some with float64/int64 and a float64
``prv_candidates.candid``), so every file is cast to the types of the ZTF Avro
schema (float32 magnitudes, int32 ids, int64 candid), cutouts are dropped and
duplicate ``candid`` values (alerts present in several source files) are kept
once. Usage::

    python data/make_sample.py [--source ../shared/data/ztf_alerts] [--output data/alerts_sample.parquet]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
#: Columns of the raw alert schema kept in the sample (cutouts dropped).
KEEP = ["objectId", "candid", "schemavsn", "candidate", "prv_candidates"]
#: The file whose types follow the ZTF Avro schema exactly (raw, written by Fink's raw stage).
REFERENCE_FILE = "fink_broker_raw_20200101_part0.parquet"


def target_schema(source: Path) -> pa.Schema:
    """The ZTF Avro types, read off a raw (not re-written) file."""
    schema = pq.read_schema(source / REFERENCE_FILE)
    return pa.schema([schema.field(name) for name in KEEP])


def build(source: Path) -> pa.Table:
    """All alerts of ``source``, cast to one schema, one row per candid, sorted by candid."""
    schema = target_schema(source)
    tables = []
    for path in sorted(source.glob("*.parquet")):
        table = pq.read_table(path, columns=KEEP)
        # Field order is identical in all files; a cast by position fixes the types.
        tables.append(table.cast(schema))
    table = pa.concat_tables(tables)
    candid = table.column("candid").to_numpy()
    _, first = np.unique(candid, return_index=True)
    table = table.take(pa.array(sorted(first)))
    return table.take(pc.sort_indices(table, sort_keys=[("candid", "ascending")]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "ztf_alerts")
    parser.add_argument("--output", type=Path, default=ROOT / "data" / "alerts_sample.parquet")
    args = parser.parse_args()
    table = build(args.source)
    pq.write_table(table, args.output, compression="zstd", row_group_size=64)
    print(f"wrote {table.num_rows} alerts ({args.output.stat().st_size / 1e6:.2f} MB) to {args.output}")


if __name__ == "__main__":
    main()
