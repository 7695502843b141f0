"""The yardstick for the Rubin t2: boosted trees on simple light-curve features, same split, same views.

Not the product: a strong plain learner given what t2 is given (the same PLAsTiCC training objects,
the same redshift augmentation of conf/train_rubin.yaml, alert-like views drawn the same way, the host
photo-z withheld from the same share of views), so every model choice is judged against it on the
same held-out views: the plain test objects and the test-like set (fink_t2.training.test_like). The trees
are trained class-weighted like t2 (a flat prior) and their output is moved to the served Rubin t2's
class prior (fink_t2.scoring.calibration.PLASTICC_TRAINING_PRIOR), as t2's is.

Features (per view, detections only, as a Rubin alert carries): per band the number of detections,
log10 of the peak |flux|, the time from the band's peak to the latest point, the mean signal-to-noise,
the latest flux over the peak; overall the number of detections, the duration, log10 peak flux and the
apparent peak magnitude, the rise and decline times and rates, the share of negative fluxes, the
band of the peak, five colours (log peak-flux ratios of adjacent bands), the host photo-z and the
absolute peak magnitude at its distance (NaN when unknown). 48 in all.

    pip install lightgbm
    python benchmarks/rubin_yardstick.py [--config conf/train_rubin.yaml] [--output benchmarks/results]

Writes ``rubin_yardstick.json`` (metrics per set, epoch, with / without host z; the digest of each set's
views, which ``fink-t2 evaluate --rubin`` checks before putting them beside t2's) and the booster as
LightGBM's own text format in ``--model-dir`` (not committed; a few MB). About 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from fink_t2.scoring.calibration import PLASTICC_TRAINING, PLASTICC_TRAINING_PRIOR, calibrate, prior_vector
from fink_t2.scoring.classes import CLASSES
from fink_t2.scoring.lightcurves import FLUXCAL_ZEROPOINT, Observations
from fink_t2.scoring.sky import distance_modulus, luminosity_distance_mpc
from fink_t2.training.plasticc import alert_views, load_plasticc, sample_training_views, split_objects
from fink_t2.training.redshift_augmentation import augmented_split
from fink_t2.training.test_like import supernova_report, test_like_objects
from fink_t2.training.train import TrainConfig, class_weights, training_view_observations

N_BANDS = 6
#: Column of the number of detections (NaN: the view has none).
N_DET_COLUMN = 5 * N_BANDS


def features(obs: Observations, host_z: np.ndarray | None) -> np.ndarray:
    """(n_objects, 48) float32 features of detections-only views (NaN where undefined)."""
    n = obs.n_objects
    det = obs.detected
    idx, t, b = obs.object_index[det], obs.time[det], obs.band[det].astype(np.int64)
    f, e = obs.flux[det], obs.flux_err[det]
    absf = np.abs(f)
    out = []
    last_time = np.full(n, -np.inf)
    np.maximum.at(last_time, idx, t)
    first_time = np.full(n, np.inf)
    np.minimum.at(first_time, idx, t)
    n_det = np.bincount(idx, minlength=n).astype(np.float64)
    band_peak = np.full((n, N_BANDS), np.nan)
    for band in range(N_BANDS):
        m = b == band
        i, tb, fb, eb = idx[m], t[m], absf[m], e[m]
        count = np.bincount(i, minlength=n).astype(np.float64)
        peak = np.zeros(n)
        np.maximum.at(peak, i, fb)
        has = count > 0
        band_peak[has, band] = peak[has]
        # time of the band's peak: the latest point reaching it
        at_peak = fb >= peak[i]
        t_peak = np.full(n, np.nan)
        t_peak[i[at_peak]] = tb[at_peak]
        snr = np.bincount(i, weights=fb / eb, minlength=n) / np.maximum(count, 1)
        # the band's latest flux over its peak
        order = np.lexsort((tb, i))
        latest = np.full(n, np.nan)
        latest[i[order]] = fb[order] / np.maximum(peak[i[order]], 1e-12)
        out += [count, np.where(has, np.log10(np.maximum(peak, 1e-3)), np.nan), last_time - t_peak,
                np.where(has, snr, np.nan), latest]
    peak = np.zeros(n)
    np.maximum.at(peak, idx, absf)
    at_peak = absf >= peak[idx]
    t_peak = np.full(n, np.nan)
    t_peak[idx[at_peak]] = t[at_peak]
    peak_band = np.full(n, np.nan)
    peak_band[idx[at_peak]] = b[at_peak]
    order = np.lexsort((t, idx))
    first_flux = np.full(n, np.nan)
    first_flux[idx[order][::-1]] = absf[order][::-1]  # the earliest write wins when written last
    last_flux = np.full(n, np.nan)
    last_flux[idx[order]] = absf[order]
    rise = t_peak - first_time
    decline = last_time - t_peak
    log_peak = np.log10(np.maximum(peak, 1e-3))
    with np.errstate(divide="ignore", invalid="ignore"):
        rise_rate = (log_peak - np.log10(np.maximum(first_flux, 1e-3))) / np.maximum(rise, 1.0)
        decline_rate = (log_peak - np.log10(np.maximum(last_flux, 1e-3))) / np.maximum(decline, 1.0)
        negative = np.bincount(idx, weights=(f < 0).astype(float), minlength=n) / np.maximum(n_det, 1)
        snr_all = np.bincount(idx, weights=absf / e, minlength=n) / np.maximum(n_det, 1)
        colours = [np.log10(band_peak[:, k] / band_peak[:, k + 1]) for k in range(N_BANDS - 1)]
    magnitude = FLUXCAL_ZEROPOINT - 2.5 * log_peak
    z = np.full(n, np.nan) if host_z is None else np.asarray(host_z, np.float64).copy()
    z[~(np.isfinite(z) & (z > 1e-3))] = np.nan
    absolute = magnitude - distance_modulus(np.where(np.isfinite(z), luminosity_distance_mpc(np.nan_to_num(z)), np.nan))
    out += [n_det, last_time - first_time, log_peak, magnitude, rise, decline, rise_rate, decline_rate, negative,
            snr_all, peak_band, *colours, z, absolute]
    x = np.stack(out, axis=1).astype(np.float32)
    x[~np.isfinite(x)] = np.nan
    x[n_det == 0] = np.nan
    return x


def detections_only(obs: Observations) -> Observations:
    return obs.subset(obs.detected)


def training_rows(data, objects, config: TrainConfig, views_per_object: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of random alert-like views of ``objects``, drawn as t2's training views are."""
    prep = config.preparation
    spec = sample_training_views(data.observations, objects, views_per_object, rng, config.long_history_fraction,
                                 history_days=alert_views(prep.survey).history_days)
    obs, position = training_view_observations(data, spec, rng, config.resampled_fraction)
    host_z = data.host_z[spec.source[position]]
    host_z = np.where(rng.random(len(host_z)) < config.redshift_dropout, np.nan, host_z)
    x = features(detections_only(obs), host_z)
    y = data.labels[spec.source[position]]
    keep = np.isfinite(x[:, N_DET_COLUMN])  # at least one detection (n_det column is defined)
    return x[keep], y[keep]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="conf/train_rubin.yaml")
    parser.add_argument("--output", default="benchmarks/results")
    parser.add_argument("--model-dir", default="runs/rubin_yardstick")
    parser.add_argument("--views-per-object", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        import lightgbm as lgb
    except ImportError:
        print("rubin_yardstick: lightgbm is not installed: pip install lightgbm", file=sys.stderr)
        return 2
    started = time.time()
    config = TrainConfig.from_yaml(args.config)
    data = load_plasticc(survey="rubin", seed=config.seed)
    split = split_objects(data.labels, config.split, config.seed)
    test_objects = split["test"]
    plain = data
    if config.augmentation is not None:
        data, split, counts = augmented_split(data, split, config.augmentation, config.seed)
        print(f"augmentation: {counts}", flush=True)
    rng = np.random.default_rng(config.seed)
    x_train, y_train = training_rows(data, split["train"], config, args.views_per_object, rng)
    x_val, y_val = training_rows(data, split["validation"], config, 4, np.random.default_rng(config.seed + 1))
    print(f"rows: train {len(y_train)}, validation {len(y_val)}; features {x_train.shape[1]}; "
          f"{time.time() - started:.0f}s", flush=True)
    params = {"objective": "multiclass", "num_class": len(CLASSES), "learning_rate": 0.08, "num_leaves": 63,
              "min_data_in_leaf": 40, "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
              "lambda_l2": 1.0, "num_threads": args.threads, "verbose": -1, "seed": config.seed}
    train_set = lgb.Dataset(x_train, y_train, weight=class_weights(y_train))
    val_set = lgb.Dataset(x_val, y_val, weight=class_weights(y_val), reference=train_set)
    booster = lgb.train(params, train_set, num_boost_round=2000, valid_sets=[val_set],
                        callbacks=[lgb.early_stopping(50, verbose=False), lgb.log_evaluation(100)])
    print(f"trees: best iteration {booster.best_iteration}; {time.time() - started:.0f}s", flush=True)
    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(model_dir / "rubin_yardstick.txt"), num_iteration=booster.best_iteration)

    prior = prior_vector(PLASTICC_TRAINING_PRIOR)  # what the served Rubin t2 applies to its flat output

    def predict(obs, host_z):
        x = features(detections_only(obs), host_z)
        p = calibrate(booster.predict(x, num_iteration=booster.best_iteration), 1.0, prior)
        p[np.isnan(x[:, N_DET_COLUMN])] = np.nan
        return p

    test_like = test_like_objects(plain, test_objects)
    sets = {"plain": (plain, test_objects),
            "test_like": (test_like.data, np.arange(test_like.data.observations.n_objects))}
    predictors = {"trees, host z": predict, "trees, no host z": lambda obs, z: predict(obs, None)}
    report = {"config": args.config, "params": params, "prior": PLASTICC_TRAINING,
              "best_iteration": int(booster.best_iteration),
              "rows": {"train": int(len(y_train)), "validation": int(len(y_val))},
              "sets": supernova_report(predictors, sets), "seconds": round(time.time() - started, 1)}
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "rubin_yardstick.json").write_text(json.dumps(report, indent=1, default=float))
    print(f"wrote {output / 'rubin_yardstick.json'} in {report['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
