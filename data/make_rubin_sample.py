"""Regenerate ``data/rubin_alerts_sample.parquet`` from the Rubin alerts in ``../shared/data/rubin_alerts``.

Why: tests and the README's Rubin commands need a few dozen real Rubin alerts
in ONE parquet file with ONE schema, without ``../shared``. The sources are
two schema versions in two formats (lsst v10.0 parquet and Fink-enriched Avro,
lsst v7.1 parquet), so each alert keeps only the fields the sample needs, under
their lsst names and the v10.0 parquet's types; ``lsst_schema_version`` says
where each alert came from. Cutouts, Fink's added columns and every other
field are dropped to keep the file small. Usage::

    python data/make_rubin_sample.py [--source ../shared/data/rubin_alerts] [--output data/rubin_alerts_sample.parquet]

Needs fastavro (for the Avro source).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
#: Fields of ``diaSource`` and of each ``prvDiaSources`` element kept (present in lsst v7.1 and v10.0).
SOURCE_FIELDS = ["diaSourceId", "diaObjectId", "midpointMjdTai", "band", "ra", "dec", "psfFlux", "psfFluxErr",
                 "snr"]
#: Fields of ``diaObject`` kept.
OBJECT_FIELDS = ["diaObjectId", "ra", "dec"]
#: (file, schema version, alerts taken: the first n rows); None: all of them.
SOURCES = [("fink_client_rubin_enriched.avro", "10.0", None),
           ("fink_science_rubin_v10_0_ddf.parquet", "10.0", None),
           ("fink_science_rubin_or4_v7_1.parquet", "7.1", 16)]

SOURCE_TYPE = pa.struct([("diaSourceId", pa.int64()), ("diaObjectId", pa.int64()), ("midpointMjdTai", pa.float64()),
                         ("band", pa.string()), ("ra", pa.float64()), ("dec", pa.float64()),
                         ("psfFlux", pa.float64()), ("psfFluxErr", pa.float64()), ("snr", pa.float64())])
OBJECT_TYPE = pa.struct([("diaObjectId", pa.int64()), ("ra", pa.float64()), ("dec", pa.float64())])
SCHEMA = pa.schema([("diaSourceId", pa.int64()), ("diaSource", SOURCE_TYPE), ("prvDiaSources", pa.list_(SOURCE_TYPE)),
                    ("diaObject", OBJECT_TYPE), ("lsst_schema_version", pa.string())])


def _read(path: Path) -> pa.Table:
    if path.suffix == ".avro":
        from fink_t2.tools.avro_alerts import read_avro

        return read_avro(path, columns=["diaSource", "prvDiaSources", "diaObject"])
    return pq.read_table(path, columns=["diaSource", "prvDiaSources", "diaObject"])


def _project(row: dict | None, fields: list[str]) -> dict | None:
    return None if row is None else {name: row.get(name) for name in fields}


def build(source: Path) -> pa.Table:
    """The sampled alerts, one schema (:data:`SCHEMA`), in the order of :data:`SOURCES`."""
    rows = []
    for name, version, count in SOURCES:
        table = _read(source / name)
        table = table.slice(0, count) if count is not None else table
        for alert in table.to_pylist():
            current = _project(alert["diaSource"], SOURCE_FIELDS)
            history = [_project(p, SOURCE_FIELDS) for p in alert["prvDiaSources"]] if alert["prvDiaSources"] else None
            obj = _project(alert["diaObject"], OBJECT_FIELDS)
            if obj is not None and obj["diaObjectId"] is not None:
                obj["diaObjectId"] = int(obj["diaObjectId"])  # the v10.0 parquet stores it as a double
            rows.append({"diaSourceId": current["diaSourceId"], "diaSource": current, "prvDiaSources": history,
                         "diaObject": obj, "lsst_schema_version": version})
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    if pc.count_distinct(table.column("diaSourceId")).as_py() != table.num_rows:
        raise SystemExit("duplicate diaSourceId in the sample: check the sources")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "rubin_alerts")
    parser.add_argument("--output", type=Path, default=ROOT / "data" / "rubin_alerts_sample.parquet")
    args = parser.parse_args()
    table = build(args.source)
    pq.write_table(table, args.output, compression="zstd")
    print(f"wrote {table.num_rows} alerts to {args.output} ({args.output.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
