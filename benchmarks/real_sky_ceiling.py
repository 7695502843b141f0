"""How far can SN Ia vs rest go on the real folds from the four light-curve columns? A boosted-tree check.

The real-sky issue asks for a pooled SN Ia AUC of 0.85 over the 3rd-detection, first+10 d and
first+30 d alert views of the BTS development objects. This script asks the same question of a
different learner: LightGBM on a few hand-made light-curve features (magnitudes, rise rates and
colour per band, ages), trained on the same object-wise folds as ``fink-t2 train`` and scored out of
fold on the same evaluation views (:func:`fink_t2.training.plasticc.evaluation_views`). Two
training sets: the evaluation views themselves of the other folds ("epochs"), and random alert-like
views of them as the transformer's real stage draws ("views"). Each twice: from the light curve
alone, and with the host context Fink attaches (the Mangrove match: matched or not, distance
modulus, peak absolute magnitude). Nothing here is shipped.

    pip install lightgbm scikit-learn
    python benchmarks/real_sky_ceiling.py            # 2-4 minutes on 2 cores
"""

from __future__ import annotations

import argparse

import numpy as np

from fink_t2.scoring.classes import CLASSES
from fink_t2.scoring.lightcurves import Observations, fluxcal_to_mag
from fink_t2.scoring.sky import SkyContext, distance_modulus
from fink_t2.training.bts import REAL_EPOCHS, load_bts, object_folds
from fink_t2.training.plasticc import evaluation_views, make_views, sample_training_views
from fink_t2.training.real_sky import ALERT_EPOCHS
from fink_t2.training.sky_simulation import real_sky

N_FEATURES = 17


def band_features(t: np.ndarray, mag: np.ndarray, t_last: float) -> list[float]:
    """Last and brightest magnitude, fading since the brightest, its age, mean and end-to-end slopes."""
    if len(t) == 0:
        return [np.nan] * 6
    slope = end_to_end = np.nan
    if len(t) >= 2 and t[-1] > t[0]:
        slope = np.polyfit(t - t[0], mag, 1)[0]
        end_to_end = (mag[-1] - mag[0]) / (t[-1] - t[0])
    return [mag[-1], mag.min(), mag[-1] - mag.min(), t_last - t[mag.argmin()], slope, end_to_end]


def features(views: Observations) -> np.ndarray:
    """One row of :data:`N_FEATURES` features per view (detections only; NaN where undefined)."""
    out = np.full((views.n_objects, N_FEATURES), np.nan)
    mag = fluxcal_to_mag(np.clip(views.flux, 1e-3, None))
    order = np.lexsort((views.time, views.object_index))
    idx, t_all, b_all, m_all = (a[order] for a in (views.object_index, views.time, views.band, mag))
    det = views.detected[order]
    bounds = np.searchsorted(idx, np.arange(views.n_objects + 1))
    for i in range(views.n_objects):
        rows = slice(bounds[i], bounds[i + 1])
        keep = det[rows]
        t, b, m = t_all[rows][keep], b_all[rows][keep], m_all[rows][keep]
        if len(t) == 0:
            continue
        row = [t[-1] - t[0], len(t)]
        for band in (0, 1):
            row += band_features(t[b == band], m[b == band], t[-1])
        g, r = b == 0, b == 1
        colour = np.nan
        if g.any() and r.any():
            colour = m[g][-1] - m[r][np.argmin(np.abs(t[r] - t[g][-1]))]
        row += [colour, m.min(), m[-1]]
        out[i] = row
    return out


def context_features(base: np.ndarray, sky: SkyContext) -> np.ndarray:
    """``base`` with the host context: matched (0/1), distance modulus and peak absolute magnitude (NaN if none)."""
    dm = np.where(sky.host_matched, distance_modulus(np.where(sky.host_matched, sky.host_distance_mpc, 1.0)), np.nan)
    return np.column_stack([base, sky.host_matched.astype(float), dm, base[:, -2] - dm])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views-per-object", type=int, default=24)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    real = load_bts()
    sky = real_sky(real.metadata)
    folds = object_folds(real.labels, 5, args.seed)
    everyone = np.arange(len(real.labels))
    evaluation = {}
    for epoch in REAL_EPOCHS:
        spec, _ = evaluation_views(real.observations, everyone, epoch)
        evaluation[epoch] = (features(make_views(real.observations, spec)), spec.source)
    for with_context in (False, True):
        run(real, sky, evaluation, folds, args, with_context)


def run(real, sky: SkyContext, evaluation: dict, folds: np.ndarray, args, with_context: bool) -> None:
    """Out-of-fold SN Ia AUC of LightGBM, trained on the evaluation epochs or on random views."""
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score

    snia = CLASSES.index("SNIa")
    everyone = np.arange(len(real.labels))
    inputs = "light curve + host" if with_context else "light curve only "

    def rows(x: np.ndarray, source: np.ndarray) -> np.ndarray:
        return context_features(x, sky.take(source)) if with_context else x

    evaluation = {epoch: (rows(f, src), src) for epoch, (f, src) in evaluation.items()}
    rng = np.random.default_rng(args.seed)
    for training in ("epochs", "views"):
        scores = {epoch: np.zeros(len(src)) for epoch, (_, src) in evaluation.items()}
        for k in range(5):
            if training == "epochs":
                x = np.concatenate([f[folds[src] != k] for f, src in evaluation.values()])
                source = np.concatenate([src[folds[src] != k] for _, src in evaluation.values()])
            else:
                spec = sample_training_views(real.observations, everyone[folds != k], args.views_per_object, rng,
                                             0.3, 0.8, 30.0)
                x, source = rows(features(make_views(real.observations, spec, rng)), spec.source), spec.source
            model = lgb.LGBMClassifier(n_estimators=400, learning_rate=0.03, num_leaves=31, min_child_samples=40,
                                       subsample=0.8, subsample_freq=1, colsample_bytree=0.8, verbose=-1,
                                       random_state=args.seed)
            model.fit(x, (real.labels[source] == snia).astype(int))
            for epoch, (f, src) in evaluation.items():
                held = folds[src] == k
                scores[epoch][held] = model.predict_proba(f[held])[:, 1]
        truth = {epoch: real.labels[src] == snia for epoch, (_, src) in evaluation.items()}
        pooled = roc_auc_score(np.concatenate([truth[e] for e in ALERT_EPOCHS]),
                               np.concatenate([scores[e] for e in ALERT_EPOCHS]))
        per_epoch = ", ".join(f"{e} {roc_auc_score(truth[e], scores[e]):.3f}" for e in REAL_EPOCHS)
        print(f"LightGBM, {inputs}, trained on {training:6s}: SN Ia AUC pooled {pooled:.3f} ({per_epoch})",
              flush=True)


if __name__ == "__main__":
    main()
