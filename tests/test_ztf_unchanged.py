"""ZTF did not move when the preparation learnt other surveys (issue 13): same inputs, same scores.

The reference (tests/data/ztf_reference.npz) was computed by main 3ab7337, before the survey
generalisation, with tests/data/make_ztf_reference.py on data/alerts_sample.parquet, with the model
shipped then (v7): tests/data/ztf_reference_t2.tflite and its YAML, kept so that the serving path is
still pinned when the shipped model changes. Since session 10 the shipped model's preparation adds the
coarse grid tail and the sky context (docs/model_card.md); the reference pins the preparation every
older model file still carries, and a test checks that the new keys leave it alone.
"""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from fink_t2.scoring.alerts import alert_columns, observations_from_columns
from fink_t2.scoring.classifier import classify_with_reasons
from fink_t2.scoring.lightcurves import PreparationConfig, prepare
from fink_t2.scoring.runtime import load_model

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = np.load(Path(__file__).parent / "data" / "ztf_reference.npz")
N_OTHER = 64  # alerts prepared with the other preparations in the reference
#: The GP's batched solve goes through the machine's BLAS: OpenBLAS picks its kernels by processor, and
#: an AVX-512 kernel (AMD EPYC here) rounds differently from the one the reference was made with by up
#: to 1.8e-5 (with OPENBLAS_CORETYPE=Haswell it matches to 1e-6). A changed preparation moves values
#: by far more than this.
ATOL = 5e-5
REFERENCE_MODEL = Path(__file__).parent / "data" / "ztf_reference_t2.tflite"  # the model shipped at 3ab7337


def _sample():
    frame = alert_columns(pq.read_table(ROOT / "data" / "alerts_sample.parquet"))
    obs, _ = observations_from_columns(frame)
    return frame, obs


def test_shipped_preparation_of_the_ztf_sample_is_unchanged():
    _, obs = _sample()
    reference = load_model(REFERENCE_MODEL).preparation
    assert not reference.sky_context and reference.coarse_steps == 0  # a model file from before those keys
    batch = prepare(obs, load_model(REFERENCE_MODEL).preparation)
    assert batch.values.shape == REFERENCE["shipped_values"].shape
    np.testing.assert_allclose(batch.values, REFERENCE["shipped_values"], rtol=0, atol=ATOL)
    np.testing.assert_array_equal(batch.ok, REFERENCE["shipped_ok"])
    np.testing.assert_array_equal(batch.reason.astype(str), REFERENCE["shipped_reason"])
    assert batch.ok.sum() > 100  # the comparison covers real prepared light curves


def test_other_ztf_preparations_are_unchanged():
    _, obs = _sample()
    few = obs.subset(obs.object_index < N_OTHER)
    few.n_objects = N_OTHER
    linear = prepare(few, PreparationConfig(method="linear", context_channels=True)).values
    plain = prepare(few, PreparationConfig()).values
    np.testing.assert_allclose(linear, REFERENCE["linear_values"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(plain, REFERENCE["plain_values"], rtol=0, atol=ATOL)


def test_scores_of_the_ztf_sample_are_unchanged():
    frame, _ = _sample()
    probabilities, reasons = classify_with_reasons(frame, model_path=REFERENCE_MODEL)
    # "None" for a classified alert, as the reference spells it (pandas 3's astype(str) keeps a missing value missing)
    spelled = np.array(["None" if reason is None or reason != reason else str(reason) for reason in reasons])
    np.testing.assert_array_equal(spelled, REFERENCE["reasons"])
    np.testing.assert_allclose(probabilities.to_numpy(), REFERENCE["probabilities"], rtol=0, atol=ATOL,
                               equal_nan=True)
    assert np.isfinite(probabilities.to_numpy()).all(axis=1).sum() > 100


def test_ztf_preparation_is_written_as_before():
    """No new key in a ZTF preparation: the shipped t2.yaml's identity and any ZTF model written now agree."""
    shipped = load_model().metadata["preparation"]
    assert PreparationConfig.from_dict(shipped).to_dict() == shipped
