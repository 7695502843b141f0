"""Check the Fink-as-deployed t2 baseline: GP cost per object and the deployed model's accuracy.

Prints (and optionally writes as JSON):

1. time per object of :func:`fink_t2.bench.fink_deployed.prepare_deployed` (one
   george fit with L-BFGS-B per object) for short (<= 10 detections) and long
   (>= 40 detections) histories, on the real ZTF alerts and on PLAsTiCC test
   objects (REFERENCE §4 quotes about 14 ms and 120 ms for the deployed
   module, which also spent time in pandas/astropy tables around each fit);
2. the deployed model's metrics on the PLAsTiCC test split (``split_objects``,
   seed 42) at the chosen epochs, with the corrected preparation (forward
   time, [g, r], per-object robust scaling), on the objects the deployed
   module accepts (g and r detected) and on all test objects (refused ones
   scored as uniform 1/14); plus the deployed faults derived from the same
   fits: reversed time and/or swapped bands. The stationary GP makes those
   exact re-orderings of the corrected input (checked in
   tests/test_fink_deployed.py), so no refit is needed;
3. for reference, the same GP inputs scaled the way the model was trained:
   one global median / IQR per band (REFERENCE §4 fault 3), estimated here
   from the raw GP means of ``--global-train-objects`` objects of the train
   split (full light curves, detections only; the deployed model was trained
   on other objects, the PLAsTiCC test set, so this is an approximation).

Usage (from the repository root)::

    PYTHONPATH=. python benchmarks/fink_deployed_check.py [--max-objects N] [--epochs full det3] [--json out.json]

The model comes from an installed fink-science 7.4.0, ``--model`` or
$FINK_T2_DEPLOYED_MODEL.

Times are per core: BLAS is limited to one thread (set before numpy loads;
override with OPENBLAS_NUM_THREADS / OMP_NUM_THREADS). With the default
threading, george's small Cholesky factorisations fight over the cores with
any other busy process and a 50-point fit went from about 8 ms to 40-490 ms
on this 2-core machine while a training job ran.
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from fink_t2.bench.fink_deployed import (  # noqa: E402
    deployed_pandas_udf_body,
    find_deployed_model,
    predict_deployed,
    prepare_deployed,
)
from fink_t2.scoring.alerts import alert_columns_from_files, observations_from_alerts  # noqa: E402
from fink_t2.scoring.classes import N_CLASSES  # noqa: E402
from fink_t2.scoring.lightcurves import Observations  # noqa: E402
from fink_t2.scoring.paths import SHARED_ZTF_ALERTS  # noqa: E402
from fink_t2.training.evaluation import HEADLINE_METRICS, classification_metrics  # noqa: E402
from fink_t2.training.plasticc import (  # noqa: E402
    EVALUATION_EPOCHS,
    evaluation_views,
    load_plasticc,
    make_views,
    split_objects,
)

SHORT_MAX, LONG_MIN = 10, 40


def select_objects(obs: Observations, objects: np.ndarray) -> Observations:
    """The observations of ``objects`` only, re-indexed 0..len(objects)-1 in that order."""
    remap = np.full(obs.n_objects, -1, dtype=np.int64)
    remap[objects] = np.arange(len(objects))
    keep = remap[obs.object_index] >= 0
    sub = obs.subset(keep)
    return Observations(remap[sub.object_index], sub.time, sub.band, sub.flux, sub.flux_err, sub.detected,
                        len(objects))


def detections_per_object(obs: Observations) -> tuple[np.ndarray, np.ndarray]:
    """Number of g/r detections per object, and whether both g and r are detected."""
    det = obs.detected & (obs.band >= 0) & (obs.band < 2)
    n = np.bincount(obs.object_index[det], minlength=obs.n_objects)
    g = np.bincount(obs.object_index[det & (obs.band == 0)], minlength=obs.n_objects)
    r = np.bincount(obs.object_index[det & (obs.band == 1)], minlength=obs.n_objects)
    return n, (g > 0) & (r > 0)


def time_groups(obs: Observations, label: str, per_group: int, rng: np.random.Generator) -> list[dict]:
    """Time prepare_deployed per object for short and long histories (objects with g and r only)."""
    n_det, both = detections_per_object(obs)
    rows = []
    groups = (("short (<=10 det.)", (n_det >= 2) & (n_det <= SHORT_MAX)), ("long (>=40 det.)", n_det >= LONG_MIN))
    for name, mask in groups:
        candidates = np.flatnonzero(mask & both)
        if len(candidates) == 0:
            rows.append({"source": label, "group": name, "objects": 0})
            continue
        picked = np.sort(rng.choice(candidates, size=min(per_group, len(candidates)), replace=False))
        per_object, cpu = [], []
        for obj in picked:  # one object per call: per-object times, not just a mean
            single = select_objects(obs, np.array([obj]))
            start, start_cpu = time.perf_counter(), time.process_time()
            prepare_deployed(single)
            per_object.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        per_object, cpu = np.asarray(per_object) * 1e3, np.asarray(cpu) * 1e3
        rows.append({
            "source": label, "group": name, "objects": int(len(picked)),
            "median_detections": float(np.median(n_det[picked])),
            "ms_per_object_median": float(np.median(per_object)),
            "ms_per_object_mean": float(per_object.mean()),
            "ms_per_object_p90": float(np.percentile(per_object, 90)),
            "cpu_ms_per_object_median": float(np.median(cpu)),
            "cpu_ms_per_object_mean": float(cpu.mean()),
        })
    return rows


def stratified_subset(objects: np.ndarray, labels: np.ndarray, max_objects: int | None, seed: int) -> np.ndarray:
    """At most ``max_objects`` of ``objects``, the same fraction of every class (at least 1 each)."""
    if max_objects is None or max_objects >= len(objects):
        return objects
    rng = np.random.default_rng(seed)
    fraction = max_objects / len(objects)
    picked = []
    for label in np.unique(labels[objects]):
        members = objects[labels[objects] == label]
        k = max(1, int(round(fraction * len(members))))
        picked.extend(rng.choice(members, size=min(k, len(members)), replace=False))
    return np.sort(np.asarray(picked, dtype=np.int64))


def summary(metrics: dict) -> dict:
    return {key: metrics[key] for key in ("n", *HEADLINE_METRICS)}


def global_band_scaling(data, objects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and IQR per band of the raw GP means of ``objects`` (full light curves): the training-style scaling."""
    spec, _ = evaluation_views(data.observations, objects, "full")
    raw, ok = prepare_deployed(make_views(data.observations, spec), corrected=True, scale=False)
    flat = raw[ok].reshape(-1, 2).astype(np.float64)
    q25, median, q75 = np.percentile(flat, [25.0, 50.0, 75.0], axis=0)
    return median, q75 - q25


def evaluate_epoch(data, objects: np.ndarray, epoch: str, model: Path,
                   global_scaling: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Deployed model on one epoch's views of ``objects``: corrected preparation and the deployed faults."""
    spec, positions = evaluation_views(data.observations, objects, epoch)
    views = make_views(data.observations, spec)
    labels = data.labels[objects[positions]]
    start = time.perf_counter()
    values, ok = prepare_deployed(views, corrected=True, progress=True)
    prep_seconds = time.perf_counter() - start
    probabilities = predict_deployed(values, model)
    variants = {
        "corrected (forward time, [g, r])": values,
        "reversed time, [g, r]": values[:, ::-1, :],
        "reversed time, [r, g]": values[:, ::-1, ::-1],
        "forward time, [r, g]": values[:, :, ::-1],
    }
    result = {
        "epoch": epoch,
        "test_objects": int(len(objects)),
        "objects_with_view": int(len(positions)),
        "accepted_by_deployed_rules": int(ok.sum()),
        "prepare_seconds": prep_seconds,
        "prepare_ms_per_object": 1e3 * prep_seconds / max(len(positions), 1),
        "accepted_only": {},
    }
    for name, x in variants.items():
        p = probabilities if x is values else predict_deployed(np.ascontiguousarray(x), model)
        result["accepted_only"][name] = summary(classification_metrics(labels[ok], p[ok]))
    if global_scaling is not None:
        raw, raw_ok = prepare_deployed(views, corrected=True, scale=False)
        assert np.array_equal(raw_ok, ok)
        median, iqr = global_scaling
        x = ((raw[ok] - median) / iqr).astype(np.float32)
        result["accepted_only"]["as trained: global band scaling"] = summary(
            classification_metrics(labels[ok], predict_deployed(x, model)))
    # All test objects: refused ones (and objects without a view) get the uniform answer.
    all_probabilities = np.full((len(objects), N_CLASSES), 1.0 / N_CLASSES)
    all_probabilities[positions[ok]] = probabilities[ok]
    result["all_test_objects_uniform_if_refused"] = summary(
        classification_metrics(data.labels[objects], all_probabilities))
    return result


def time_udf_body(alerts: list[str], model: Path) -> dict:
    """The deployed UDF body on the real alerts (one call, as for one Arrow batch)."""
    frame = alert_columns_from_files(alerts)
    deployed_pandas_udf_body(frame.cjd[:2], frame.cfid[:2], frame.cmagpsf[:2], frame.csigmapsf[:2], model)  # warm-up
    start, start_cpu = time.perf_counter(), time.process_time()
    out = deployed_pandas_udf_body(frame.cjd, frame.cfid, frame.cmagpsf, frame.csigmapsf, model)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    classified = int(out.notna().sum())
    return {"alerts": int(len(frame)), "classified": classified, "seconds": seconds, "cpu_seconds": cpu_seconds,
            "alerts_per_cpu_second": len(frame) / cpu_seconds,
            "alerts_per_second": len(frame) / seconds, "ms_per_classified_alert": 1e3 * seconds / max(classified, 1)}


def print_report(report: dict) -> None:
    print(f"\nDeployed model: {report['model']}")
    print("\nprepare_deployed: time per object (one george GP fit with L-BFGS-B each)")
    print("  (wall-clock times, and CPU time of this process, which ignores waits for a shared core)")
    print(f"  {'source':<18} {'group':<18} {'objects':>7} {'med.det':>7} {'median ms':>10} {'mean ms':>8} "
          f"{'p90 ms':>7} {'CPU median':>10} {'CPU mean':>8}")
    for row in report["timing"]:
        if row["objects"] == 0:
            print(f"  {row['source']:<18} {row['group']:<18} {0:>7}")
            continue
        print(f"  {row['source']:<18} {row['group']:<18} {row['objects']:>7} {row['median_detections']:>7.0f} "
              f"{row['ms_per_object_median']:>10.1f} {row['ms_per_object_mean']:>8.1f} "
              f"{row['ms_per_object_p90']:>7.1f} {row['cpu_ms_per_object_median']:>10.1f} "
              f"{row['cpu_ms_per_object_mean']:>8.1f}")
    if "udf_body" in report:
        u = report["udf_body"]
        print(f"\ndeployed_pandas_udf_body on {u['alerts']} real alerts: {u['seconds']:.2f} s, "
              f"{u['alerts_per_second']:.1f} alerts/s on one core ({u['alerts_per_cpu_second']:.1f} per CPU second), "
              f"{u['classified']} classified "
              f"({u['ms_per_classified_alert']:.1f} ms each)")
    if "global_scaling" in report:
        g = report["global_scaling"]
        print(f"\ntraining-style global scaling from {g['train_objects']} train-split objects: "
              f"median g, r = {g['median'][0]:.1f}, {g['median'][1]:.1f}; IQR g, r = {g['iqr'][0]:.1f}, "
              f"{g['iqr'][1]:.1f} (FLUXCAL)")
    for result in report["epochs"]:
        print(f"\nPLAsTiCC test split, epoch '{result['epoch']}': {result['test_objects']} test objects, "
              f"{result['objects_with_view']} with a view, {result['accepted_by_deployed_rules']} accepted "
              f"(g and r detected); preparation {result['prepare_seconds']:.1f} s "
              f"({result['prepare_ms_per_object']:.1f} ms/object)")
        header = f"  {'input':<41} {'n':>5} {'logloss':>8} {'acc':>6} {'bal.acc':>7} {'microAUC':>8} {'SNIa AUC':>8}"
        print(header)
        rows = list(result["accepted_only"].items())
        rows.append(("corrected, all objects (1/14 if refused)", result["all_test_objects_uniform_if_refused"]))
        for name, m in rows:
            print(f"  {name[:41]:<41} {m['n']:>5} {m['flat_log_loss']:>8.3f} {m['accuracy']:>6.3f} "
                  f"{m['balanced_accuracy']:>7.3f} {m['micro_roc_auc']:>8.3f} {m['snia_vs_rest_auc']:>8.3f}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="PLAsTiCC folder (default ../shared/data/plasticc)")
    parser.add_argument("--alerts-dir", default=str(SHARED_ZTF_ALERTS), help="folder of real ZTF alert parquet files")
    parser.add_argument("--model", default=None,
                        help="deployed .tflite (default: installed fink_science or $FINK_T2_DEPLOYED_MODEL)")
    parser.add_argument("--epochs", nargs="+", default=["full"], choices=list(EVALUATION_EPOCHS))
    parser.add_argument("--max-objects", type=int, default=None,
                        help="stratified subset of the test split (default: all of it)")
    parser.add_argument("--timing-objects", type=int, default=40, help="objects timed per group and source")
    parser.add_argument("--skip-udf", action="store_true", help="do not time the UDF body on real alerts")
    parser.add_argument("--global-train-objects", type=int, default=1500,
                        help="train-split objects used to estimate the training-style global scaling (0: skip)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the timing sample and the subset")
    parser.add_argument("--json", default=None, help="write the report here")
    args = parser.parse_args(argv)

    model = find_deployed_model(args.model)
    rng = np.random.default_rng(args.seed)
    report: dict = {"model": str(model), "python": platform.python_version(), "machine": platform.machine(),
                    "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "timing": [], "epochs": []}
    # Warm-up: the first fit pays for importing george and scipy.optimize.
    prepare_deployed(Observations([0, 0, 0], [0.0, 1.0, 2.0], [0, 1, 0], [1.0, 2.0, 1.5], [0.1] * 3, [True] * 3, 1))

    alerts = sorted(glob.glob(str(Path(args.alerts_dir) / "*.parquet")))
    if alerts:
        frame = alert_columns_from_files(alerts)
        alert_obs, _ = observations_from_alerts(frame.cjd, frame.cfid, frame.cmagpsf, frame.csigmapsf)
        report["timing"] += time_groups(alert_obs, "ZTF alerts", args.timing_objects, rng)
        if not args.skip_udf:
            report["udf_body"] = time_udf_body(alerts, model)
    else:
        print(f"no alerts in {args.alerts_dir}: skipping the alert timings", file=sys.stderr)

    data = load_plasticc(args.data_dir)
    test = split_objects(data.labels)["test"]
    test = stratified_subset(test, data.labels, args.max_objects, args.seed)
    spec, _ = evaluation_views(data.observations, test, "full")
    full_views = make_views(data.observations, spec)
    report["timing"] += time_groups(full_views, "PLAsTiCC full", args.timing_objects, rng)

    global_scaling = None
    if args.global_train_objects > 0:
        train = split_objects(data.labels)["train"]
        train = stratified_subset(train, data.labels, args.global_train_objects, args.seed)
        global_scaling = global_band_scaling(data, train)
        report["global_scaling"] = {"train_objects": int(len(train)), "median": global_scaling[0].tolist(),
                                    "iqr": global_scaling[1].tolist()}
    for epoch in args.epochs:
        report["epochs"].append(evaluate_epoch(data, test, epoch, model, global_scaling))

    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")
    return report


if __name__ == "__main__":
    main()
