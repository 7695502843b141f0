"""Write ``fink_t2/data/mangrove_positions.parquet`` (and its record): the compact Mangrove copy the package ships.

Fink cross-matches every alert with the Mangrove galaxy catalogue
(``../shared/data/catalogs/mangrove_filtered.parquet``, 295,341 galaxies, as
fink-science ships it). The model reads only whether a galaxy lies within 60"
and its luminosity distance, so the copy keeps the positions as integers of a
micro-degree (0.0036") and the distance as float32, sorted by declination:
a few MB instead of 14. The record beside it (rows, size, sha256, the source's
sha256) is what :func:`fink_t2.scoring.mangrove.load_catalogue` checks.

Regenerate with ``python data/make_mangrove_positions.py`` (``--source``, ``--output``).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "data" / "catalogs" / "mangrove_filtered.parquet"
DEFAULT_OUTPUT = HERE.parent / "fink_t2" / "data" / "mangrove_positions.parquet"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    table = pq.read_table(args.source, columns=["ra", "dec", "lum_dist"])
    ra = np.mod(table.column("ra").to_numpy(), 360.0)
    dec = table.column("dec").to_numpy()
    distance = table.column("lum_dist").to_numpy()
    order = np.lexsort((ra, dec))
    compact = pa.table({
        "ra_udeg": pa.array(np.round(ra[order] * 1e6).astype(np.int32)),
        "dec_udeg": pa.array(np.round(dec[order] * 1e6).astype(np.int32)),
        "lum_dist": pa.array(distance[order].astype(np.float32)),
    })
    pq.write_table(compact, args.output, compression="zstd", compression_level=19, use_dictionary=False)
    record = {
        "description": "Mangrove galaxy catalogue (Ducoin et al. 2020), positions in micro-degrees and "
                       "luminosity distance (Mpc) only: the copy fink_t2.scoring.mangrove cross-matches with",
        "source": "fink-science fink_science/data/catalogs/mangrove_filtered.parquet",
        "source_sha256": sha256(args.source),
        "rows": int(compact.num_rows),
        "size_bytes": int(args.output.stat().st_size),
        "sha256": sha256(args.output),
        "made_by": "python data/make_mangrove_positions.py",
    }
    with open(args.output.with_suffix(".yaml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump(record, handle, sort_keys=False, width=120)
    print(f"wrote {args.output} ({record['size_bytes']:,} B, {record['rows']:,} galaxies)")


if __name__ == "__main__":
    main()
