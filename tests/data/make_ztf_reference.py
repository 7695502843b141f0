"""Write tests/data/ztf_reference.npz: the ZTF sample's prepared arrays and scores, as main computed them.

Generated once with the code of main 3ab7337 (before the survey generalisation of issue 13), so
tests/test_ztf_unchanged.py can check that ZTF inputs and outputs did not move (to 1e-6):

    mkdir /tmp/main3ab && git archive 3ab7337 | tar -x -C /tmp/main3ab && cd /tmp/main3ab
    PYTHONPATH=$PWD python /path/to/tests/data/make_ztf_reference.py --output /path/to/tests/data/ztf_reference.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from fink_t2.scoring.alerts import alert_columns, observations_from_columns
from fink_t2.scoring.classifier import classify_with_reasons
from fink_t2.scoring.lightcurves import PreparationConfig, prepare
from fink_t2.scoring.runtime import load_model

ROOT = Path(__file__).resolve().parents[2]
#: Alerts prepared with the non-shipped preparations too (linear interpolation; the defaults).
N_OTHER = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", default=str(ROOT / "data" / "alerts_sample.parquet"))
    parser.add_argument("--output", default=str(Path(__file__).with_name("ztf_reference.npz")))
    args = parser.parse_args()
    frame = alert_columns(pq.read_table(args.sample))
    obs, _ = observations_from_columns(frame)
    model = load_model()
    shipped = prepare(obs, model.preparation)
    few = obs.subset(obs.object_index < N_OTHER)  # the other preparations on the first alerts only (size)
    few.n_objects = N_OTHER
    linear = prepare(few, PreparationConfig(method="linear", context_channels=True))
    plain = prepare(few, PreparationConfig())
    probabilities, reasons = classify_with_reasons(frame)
    np.savez_compressed(
        args.output,
        shipped_values=shipped.values, shipped_ok=shipped.ok,
        shipped_reason=np.asarray(shipped.reason.astype(str), dtype=str),
        linear_values=linear.values, plain_values=plain.values,
        probabilities=probabilities.to_numpy(np.float32),
        reasons=np.asarray(reasons.astype(str), dtype=str),
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
