"""Write ``data/bts_sample.parquet``: a small, class-stratified subset of the BTS development file.

The tests need real typed light curves that travel with the repository; the
full file (``../shared/data/ztf_bts_dev/bts_dev.parquet``, 1,318 objects) does
not. Rows are copied unchanged. Regenerate with ``python data/make_bts_sample.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
#: Objects kept per class (all of a class with fewer).
PER_CLASS = {"SNIa": 24, "SNII": 12, "SNIbc": 8, "SLSN-I": 2, "TDE": 2, "SNIa-91bg": 1, "SNIax": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(HERE.parent.parent / "shared" / "data" / "ztf_bts_dev" /
                                                "bts_dev.parquet"))
    parser.add_argument("--output", default=str(HERE / "bts_sample.parquet"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    frame = pd.read_parquet(args.source)
    rng = np.random.default_rng(args.seed)
    picked = []
    for name, n in PER_CLASS.items():
        members = frame.index[frame["target_name"] == name].to_numpy()
        picked.extend(rng.choice(members, size=min(n, len(members)), replace=False))
    sample = frame.loc[sorted(picked)].reset_index(drop=True)
    sample.to_parquet(args.output, index=False)
    print(f"{len(sample)} objects -> {args.output}")


if __name__ == "__main__":
    main()
