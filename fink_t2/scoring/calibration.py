"""Class priors and temperature: turning the network's flat-prior output into calibrated probabilities.

t2 is trained with every class weighted alike (PLAsTiCC's flat log-loss), so its
softmax is a posterior under a uniform class prior: on a real ZTF stream,
where most transients are SNe Ia, that makes rare classes (KN, TDE) the top
class of ordinary SNe Ia. Bayes' rule moves a posterior from one prior to
another by multiplying by the ratio of priors and renormalising; a temperature
fitted on held-out real objects corrects over- or under-confidence first:

    p_calibrated[c]  ~  p[c] ** (1 / T) * prior[c] / prior_train[c]

Both are numbers in the model's YAML (``calibration``), applied after the
interpreter: 14 multiplications per alert.
"""

from __future__ import annotations

import numpy as np

from fink_t2.scoring.classes import CLASSES, N_CLASSES

FLAT = "flat"
ZTF_ALERTS = "ztf_alerts"

#: The population an alert stream delivers to t2 after Fink's cuts (not a known solar-system
#: object, no stellar SIMBAD type, young), as stated in docs/model_card.md: 58 % supernova-like
#: transients with the Bright Transient Survey's mix (Ia 75 %, II 18 %, Ibc 5.5 %, rare types
#: 1.5 %), 42 % AGN and variable stars that SIMBAD does not type. A stated assumption, not a
#: measurement: pass ``prior="flat"`` for the training prior.
ZTF_ALERT_PRIOR: dict[str, float] = {
    "SNIa": 0.40, "SNII": 0.10, "SNIbc": 0.03, "SLSN-I": 0.01, "TDE": 0.005, "SNIa-91bg": 0.01,
    "SNIax": 0.01, "KN": 0.001, "AGN": 0.15, "EB": 0.08, "RRL": 0.05, "Mira": 0.03, "M-dwarf": 0.08,
    "mu-Lens-Single": 0.004,
}

PLASTICC_TRAINING = "plasticc_training"

#: The Rubin model's default prior: the class counts of PLAsTiCC's training set (7,848 objects), with
#: SN Ia, II and Ibc given one shared count (their mean, 1,330) so that no one of the three main supernova
#: types is favoured over another. Rare transients (TDE, SLSN-I, SNIa-91bg, SNIax, KN) are rare in any
#: alert stream: under the flat training prior a faint SN II was called a TDE or an SLSN-I more often than
#: not (docs/evaluation_rubin.md). A stated assumption from training data only; ``prior="flat"`` undoes it.
PLASTICC_TRAINING_PRIOR: dict[str, float] = {  # counts / 7,848
    "SNIa": 0.1695, "SNII": 0.1695, "SNIbc": 0.1695, "mu-Lens-Single": 0.0192, "TDE": 0.0631, "EB": 0.1177,
    "SNIax": 0.0233, "Mira": 0.0038, "KN": 0.013, "M-dwarf": 0.125, "SNIa-91bg": 0.0265, "AGN": 0.0471,
    "RRL": 0.0305, "SLSN-I": 0.0223,
}


def prior_vector(prior: dict[str, float] | None) -> np.ndarray:
    """Class prior in model-output order, normalised (None: flat). Unknown or missing classes are errors."""
    if prior is None:
        return np.full(N_CLASSES, 1.0 / N_CLASSES)
    unknown = sorted(set(prior) - set(CLASSES))
    missing = [c for c in CLASSES if c not in prior]
    if unknown or missing:
        raise ValueError(f"class prior: unknown classes {unknown}, missing classes {missing}")
    values = np.array([float(prior[c]) for c in CLASSES])
    if not (np.isfinite(values).all() and (values > 0).all()):
        raise ValueError("class prior: every class needs a finite probability > 0")
    return values / values.sum()


def calibrate(probabilities: np.ndarray, temperature: float = 1.0, prior: np.ndarray | None = None,
              training_prior: np.ndarray | None = None) -> np.ndarray:
    """Flat-prior network output -> probabilities under ``prior`` (both in model-output order)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-30, 1.0)
    log_p = np.log(p) / float(temperature)
    if prior is not None:
        reference = training_prior if training_prior is not None else np.full(N_CLASSES, 1.0 / N_CLASSES)
        log_p = log_p + np.log(prior) - np.log(reference)
    log_p -= log_p.max(axis=1, keepdims=True)
    out = np.exp(log_p)
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)


def fit_temperature(labels: np.ndarray, probabilities: np.ndarray, prior: np.ndarray | None = None,
                    grid: np.ndarray | None = None) -> float:
    """The temperature minimising the log-loss of :func:`calibrate` on held-out ``labels`` (grid search)."""
    labels = np.asarray(labels, dtype=np.int64)
    grid = np.exp(np.linspace(np.log(0.25), np.log(4.0), 121)) if grid is None else grid
    losses = []
    for t in grid:
        q = calibrate(probabilities, t, prior).astype(np.float64)
        losses.append(-np.mean(np.log(np.clip(q[np.arange(len(labels)), labels], 1e-15, 1.0))))
    return float(grid[int(np.argmin(losses))])

