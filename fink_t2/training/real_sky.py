"""``fink-t2 evaluate --real``: how the model does on the real sky, not on the simulation.

Two real label sets, neither used to choose anything by looking at its scores:

- the typed ZTF Bright Transient Survey light curves, cut into alert-like views
  (3rd detection, first+10 d, first+30 d, each with a 30-day history, and the
  whole light curve). A model fine-tuned on them is judged by its
  *out-of-fold* predictions: the training run's object-wise cross-validation
  (``cv_predictions.npz``), so no object is scored by a model that saw it. A
  model that never saw a real object (today's or a baseline) is scored on
  every object;
- the SIMBAD cross-matches (``cdsxmatch``) of the Fink-enriched real alerts,
  the only real labels of variable stars and AGN here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fink_t2.scoring.calibration import calibrate
from fink_t2.scoring.classes import CLASSES
from fink_t2.training.bts import REAL_EPOCHS, RealData, load_bts, predict_real_epochs
from fink_t2.training.evaluation import SN_FAMILIES, real_sky_metrics, roc_curve

#: Epochs pooled into the headline "alert epochs" numbers.
ALERT_EPOCHS = ("det3", "first+10d", "first+30d")
#: The "done when" targets of the real-sky issue, printed beside the measured numbers.
TARGETS = {"pooled AUC": 0.86, "det3 AUC": 0.77, "first+30d AUC": 0.94, "whole light curve AUC": 0.90,
           "pooled Ia/II/Ibc balanced accuracy (flat prior)": 0.62}
#: The same model given the four light-curve columns only must stay where the model before the context was.
LC_ONLY_TARGETS = {"pooled AUC": 0.80, "first+30d AUC": 0.91}
#: Name suffix of the results scored with the light curve alone.
LC_ONLY = ", light curve only"

#: SIMBAD (or TNS) types of the Fink cross-match -> the class they correspond to.
SIMBAD_CLASSES: dict[str, str] = {
    "RRLyr": "RRL", "EB*": "EB", "EB*_Candidate": "EB", "Mira": "Mira", "LongPeriodV*": "Mira",
    "LongPeriodV*_Candidate": "Mira", "LPV*": "Mira", "QSO": "AGN", "QSO_Candidate": "AGN", "AGN": "AGN",
    "AGN_Candidate": "AGN", "Seyfert": "AGN", "Seyfert_1": "AGN", "Seyfert_2": "AGN", "Seyfert1": "AGN",
    "Seyfert2": "AGN", "BLLac": "AGN", "Blazar": "AGN", "LINER": "AGN", "QSO_CandidateSeyfert": "AGN",
}


def simbad_class(xmatch: str | None) -> str | None:
    """The class a ``cdsxmatch`` value names (the ``(SIMBAD)`` prefix ignored), or None."""
    if not xmatch:
        return None
    return SIMBAD_CLASSES.get(str(xmatch).removeprefix("(SIMBAD)").strip())


def load_cv_predictions(run_dir: str | Path, light_curve_only: bool = False) -> dict:
    """The run's out-of-fold predictions: epoch -> {object, label, probabilities, fold}; with
    ``light_curve_only``, those made without sky context ({} for a run whose model reads none)."""
    from fink_t2.training.train import CV_FILE, CV_LC_ONLY_FILE

    path = Path(run_dir) / (CV_LC_ONLY_FILE if light_curve_only else CV_FILE)
    if light_curve_only and not path.is_file():
        return {}
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no out-of-fold predictions (train with a 'real:' section in the config)")
    with np.load(path, allow_pickle=False) as stored:
        out: dict = {}
        for key in stored.files:
            epoch, field = key.split("/")
            out.setdefault(epoch, {})[field] = stored[key]
    return out


def cross_fitted_calibration(predictions: dict, prior: np.ndarray | None) -> dict:
    """Out-of-fold predictions calibrated with a temperature fitted on the *other* folds only.

    The shipped temperature is fitted on every fold; judging calibration with
    it would score it on the data it was fitted on.
    """
    from fink_t2.scoring.calibration import fit_temperature

    folds = np.unique(np.concatenate([predictions[e]["fold"] for e in ALERT_EPOCHS]))
    out = {e: dict(v, probabilities=np.empty_like(v["probabilities"])) for e, v in predictions.items()}
    for k in folds:
        labels = np.concatenate([predictions[e]["label"][predictions[e]["fold"] != k] for e in ALERT_EPOCHS])
        probs = np.concatenate([predictions[e]["probabilities"][predictions[e]["fold"] != k] for e in ALERT_EPOCHS])
        temperature = fit_temperature(labels, probs, prior)
        for e, v in predictions.items():
            rows = v["fold"] == k
            out[e]["probabilities"][rows] = calibrate(v["probabilities"][rows], temperature, prior)
    return out


def metrics_by_epoch(predictions: dict) -> dict:
    """:func:`fink_t2.training.evaluation.real_sky_metrics` per epoch, and pooled over the alert epochs."""
    out = {e: real_sky_metrics(predictions[e]["label"], predictions[e]["probabilities"]) for e in REAL_EPOCHS}
    out["alert epochs pooled"] = real_sky_metrics(
        np.concatenate([predictions[e]["label"] for e in ALERT_EPOCHS]),
        np.concatenate([predictions[e]["probabilities"] for e in ALERT_EPOCHS]))
    return out


def saw_real_objects(model_path: str | Path) -> bool:
    """Whether a TFLite model was trained on the BTS light curves (its metadata's ``trained_on`` says so)."""
    from fink_t2.scoring.runtime import read_metadata

    return "BTS" in str(read_metadata(model_path).get("trained_on", ""))


def tflite_predictions(model_path: str | Path | None, real: RealData, prior: str | None = None) -> dict:
    """A TFLite model's predictions on every real object (for a model that has seen none of them)."""
    from fink_t2.scoring.runtime import load_model

    model = load_model(model_path, prior=prior)
    return predict_real_epochs(model.predict, real, np.arange(len(real.labels)), model.preparation)


def simbad_confusion(model_paths: dict, alerts_dir: Path | None = None) -> dict:
    """Per model: for each SIMBAD-labelled class, how many alerts got each top class (and the recall)."""
    import pandas as pd

    from fink_t2.scoring.alerts import alert_columns_from_files
    from fink_t2.scoring.classifier import classify_with_reasons
    from fink_t2.scoring.paths import SHARED_ZTF_ALERTS, alert_files

    alerts_dir = alerts_dir or SHARED_ZTF_ALERTS
    files = alert_files(alerts_dir)  # not the labels beside them
    if not files:
        return {}
    frame = alert_columns_from_files(files, extra=("cdsxmatch",))
    frame = frame.drop_duplicates("candid").reset_index(drop=True)  # some alerts are in several files
    truth = frame["cdsxmatch"].map(simbad_class)
    labelled = truth.notna().to_numpy()
    frame, truth = frame[labelled].reset_index(drop=True), truth[labelled].reset_index(drop=True)
    out = {"n_labelled": int(len(frame)), "counts": {k: int(v) for k, v in truth.value_counts().items()},
           "models": {}}
    for name, path in model_paths.items():
        probabilities, reasons = classify_with_reasons(frame, model_path=path)
        values = probabilities.to_numpy()
        names = np.asarray(CLASSES, dtype=object)[np.nan_to_num(values, nan=-1.0).argmax(axis=1)]
        top = pd.Series(np.where(reasons.isna().to_numpy(), names, None))
        table = {}
        for cls in sorted(truth.unique()):
            rows = truth == cls
            counts = top[rows].fillna("declined").value_counts()
            table[cls] = {"n": int(rows.sum()), "correct": int((top[rows] == cls).sum()),
                          "top_classes": {k: int(v) for k, v in counts.items()}}
        correct = sum(v["correct"] for v in table.values())
        out["models"][name] = {"by_class": table, "correct": correct,
                               "balanced_recall": float(np.mean([v["correct"] / v["n"] for v in table.values()]))}
    return out


def plot_real(curves: dict, path: Path) -> None:
    """SN Ia vs rest ROC at each epoch and the SN Ia reliability diagram, per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    snia = CLASSES.index("SNIa")
    # A grid of panels (not one long row), one shared legend below them, outside every curve.
    n_panels = len(REAL_EPOCHS) + 1
    n_cols = 3
    n_rows = -(-n_panels // n_cols)
    fig, grid = plt.subplots(n_rows, n_cols, figsize=(4.0 * n_cols, 3.9 * n_rows + 1.2), squeeze=False)
    axes = grid.ravel()[:n_panels]
    for ax in grid.ravel()[n_panels:]:
        ax.set_visible(False)
    for name, (predictions, metrics) in curves.items():
        aucs = []
        for ax, epoch in zip(axes, REAL_EPOCHS):
            p = predictions[epoch]
            fpr, tpr = roc_curve(p["label"] == snia, p["probabilities"][:, snia])
            (line,) = ax.plot(fpr, tpr, lw=1.3)
            aucs.append(f"{metrics[epoch]['snia_vs_rest_auc']:.2f}")
            ax.set_title(f"SN Ia vs rest, {epoch}", fontsize=10)
            ax.set_xlabel("false-positive rate")
        curve = metrics["alert epochs pooled"]["snia_reliability"]
        mean_p = [m for m, c in zip(curve["mean_probability"], curve["count"]) if c]
        observed = [o for o, c in zip(curve["observed_fraction"], curve["count"]) if c]
        axes[-1].plot(mean_p, observed, "o-", lw=1.3, color=line.get_color(),
                      label=f"{name} (SN Ia AUC {' / '.join(aucs)})")
    for ax in axes[:-1]:
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set_ylabel("true-positive rate")
    axes[-1].plot([0, 1], [0, 1], ":", color="grey")
    axes[-1].set_title("SN Ia reliability, alert epochs pooled", fontsize=10)
    axes[-1].set_xlabel("predicted p(SN Ia)")
    axes[-1].set_ylabel("observed SN Ia fraction")
    fig.legend(*axes[-1].get_legend_handles_labels(), loc="lower center", ncol=1, fontsize=8, frameon=False,
               title=f"model (SN Ia vs rest AUC at {', '.join(REAL_EPOCHS)})", title_fontsize=8)
    fig.tight_layout(rect=(0, 0.03 + 0.025 * len(curves), 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _fmt(value) -> str:
    return "-" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"


def markdown_tables(results: dict) -> list[str]:
    """The real-sky tables: headline per model and epoch, then per-class recall."""
    lines = ["| model | epoch | n | SN Ia AUC | purity @50 % eff. | purity @80 % eff. | Ia/II/Ibc acc. | "
             "Ia/II/Ibc bal. acc. | flat log-loss | ECE |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, by_epoch in results.items():
        for epoch, m in by_epoch.items():
            lines.append(f"| {name} | {epoch} | {m['n']} | {_fmt(m['snia_vs_rest_auc'])} | "
                         f"{_fmt(m['snia_purity_at_50'])} | {_fmt(m['snia_purity_at_80'])} | "
                         f"{_fmt(m['family_accuracy'])} | {_fmt(m['family_balanced_accuracy'])} | "
                         f"{_fmt(m['flat_log_loss'])} | {_fmt(m['ece'])} |")
    lines += ["", "Per-class recall (top class = true class), alert epochs pooled:", "",
              "| model | " + " | ".join(next(iter(results.values()))["alert epochs pooled"]["per_class_recall"])
              + " | Ia / II / Ibc family recall |",
              "|---|" + "---|" * (len(next(iter(results.values()))["alert epochs pooled"]["per_class_recall"]) + 1)]
    for name, by_epoch in results.items():
        m = by_epoch["alert epochs pooled"]
        families = " / ".join(_fmt(m["family_recall"][f]) for f in SN_FAMILIES)
        lines.append(f"| {name} | " + " | ".join(_fmt(v) for v in m["per_class_recall"].values())
                     + f" | {families} |")
    return lines


def target_lines(metrics: dict, flat_metrics: dict | None = None, lc_only: dict | None = None) -> list[str]:
    """The targets against one model's numbers: with context (``metrics``; the balanced accuracy from
    ``flat_metrics``, the flat prior's decision) and with the light curve alone (``lc_only``)."""
    flat = flat_metrics or metrics
    rows = [("with context", k, TARGETS[k], v) for k, v in (
        ("pooled AUC", metrics["alert epochs pooled"]["snia_vs_rest_auc"]),
        ("det3 AUC", metrics["det3"]["snia_vs_rest_auc"]),
        ("first+30d AUC", metrics["first+30d"]["snia_vs_rest_auc"]),
        ("whole light curve AUC", metrics["full"]["snia_vs_rest_auc"]),
        ("pooled Ia/II/Ibc balanced accuracy (flat prior)", flat["alert epochs pooled"]["family_balanced_accuracy"]))]
    if lc_only is not None:
        rows += [("light curve only", k, LC_ONLY_TARGETS[k], v) for k, v in (
            ("pooled AUC", lc_only["alert epochs pooled"]["snia_vs_rest_auc"]),
            ("first+30d AUC", lc_only["first+30d"]["snia_vs_rest_auc"]))]
    return ["| inputs | target | wanted | measured | met |", "|---|---|---|---|---|"] + [
        f"| {inputs} | {k} | >= {wanted:.2f} | {value:.3f} | {'yes' if value >= wanted else 'no'} |"
        for inputs, k, wanted, value in rows]


def evaluate_real(run_dir: str | Path, output_dir: str | Path = "docs", baselines: dict | None = None,
                  bts_path: str | Path | None = None, progress: bool = True) -> dict:
    """Real-sky report of a run (out-of-fold) beside TFLite ``baselines`` (name -> path); JSON, plot, markdown."""
    from fink_t2.scoring.calibration import ZTF_ALERT_PRIOR, prior_vector
    from fink_t2.training.train import CALIBRATION_FILE

    run_dir, output_dir = Path(run_dir), Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    real = load_bts(bts_path)
    oof = load_cv_predictions(run_dir)
    prior = prior_vector(ZTF_ALERT_PRIOR)
    shipped_t = json.loads((run_dir / CALIBRATION_FILE).read_text())["temperature"]
    predictions = {
        "t2 fine-tuned, out-of-fold, ZTF prior (shipped)": cross_fitted_calibration(oof, prior),
        "t2 fine-tuned, out-of-fold, flat prior": oof,
    }
    lc_only = load_cv_predictions(run_dir, light_curve_only=True)
    if lc_only:  # the same folds and views, the four light-curve columns only
        predictions["t2 fine-tuned, out-of-fold, ZTF prior (shipped)" + LC_ONLY] = \
            cross_fitted_calibration(lc_only, prior)
        predictions["t2 fine-tuned, out-of-fold, flat prior" + LC_ONLY] = lc_only
    for name, path in (baselines or {}).items():
        if saw_real_objects(path):  # scored on its own training objects, it would measure nothing
            if progress:
                print(f"{name}: trained on the BTS objects, left out of the real-sky table", flush=True)
            continue
        predictions[f"{name} (never saw a real object)"] = tflite_predictions(path, real)
    results = {}
    for name, values in predictions.items():
        results[name] = metrics_by_epoch(values)
        if progress:
            m = results[name]
            print(f"{name}: pooled AUC {m['alert epochs pooled']['snia_vs_rest_auc']:.3f}, first+30d AUC "
                  f"{m['first+30d']['snia_vs_rest_auc']:.3f}, full AUC {m['full']['snia_vs_rest_auc']:.3f}, "
                  f"pooled Ia/II/Ibc bal. acc. {m['alert epochs pooled']['family_balanced_accuracy']:.3f}",
                  flush=True)
    plot_real({k: (predictions[k], results[k]) for k in predictions}, output_dir / "real_sky.png")
    counts = {CLASSES[c]: int(n) for c, n in enumerate(np.bincount(real.labels, minlength=len(CLASSES))) if n}
    report = {"run": str(run_dir), "objects": counts, "temperature": shipped_t, "results": results}
    (output_dir / "real_sky.json").write_text(json.dumps(report, indent=1))
    return report


#: Top classes that call a variable star a supernova.
SUPERNOVA_CLASSES = ("SNIa", "SNIa-91bg", "SNIax", "SNII", "SNIbc", "SLSN-I")
VSX_LABELS = "vsx_labels.parquet"


def vsx_check(model_paths: dict, alerts_dir: Path | None = None) -> dict:
    """Per model: how many alerts on catalogued variable stars (VSX, 1.5") get a supernova top class.

    The alerts of ``alerts_dir`` listed in its ``vsx_labels.parquet`` are scored as served, without cuts,
    with their full alert columns (``cisdiffpos``, ``cdiffmaglim``, the position and so the host
    cross-match), and again without ``cisdiffpos``: the sign of the flux is what says "variable star".
    Empty if the folder or its labels are absent.
    """
    import pandas as pd

    from fink_t2.scoring.alerts import alert_columns_from_files
    from fink_t2.scoring.classifier import classify_with_reasons
    from fink_t2.scoring.paths import SHARED_ZTF_ALERTS

    alerts_dir = Path(alerts_dir or SHARED_ZTF_ALERTS)
    labels_path = alerts_dir / VSX_LABELS
    if not labels_path.is_file():
        return {}
    labels = pd.read_parquet(labels_path)
    files = sorted({alerts_dir / name for name in labels["file"].unique()})
    frame = alert_columns_from_files(files).drop_duplicates("candid")
    frame = frame.set_index("candid").loc[labels["candid"].to_numpy()].reset_index()
    out = {"n_alerts": int(len(frame)), "n_objects": int(labels["objectId"].nunique()), "models": {}}
    for name, path in model_paths.items():
        entry = {}
        for variant, columns in (("as served", frame), ("without cisdiffpos", frame.drop(columns="cisdiffpos"))):
            probabilities, reasons = classify_with_reasons(columns, model_path=path)
            classified = reasons.isna().to_numpy()
            top = np.asarray(CLASSES, dtype=object)[np.nan_to_num(probabilities.to_numpy(), nan=-1).argmax(axis=1)]
            supernova = classified & np.isin(top, SUPERNOVA_CLASSES)
            entry[variant] = {"supernova_top_class": int(supernova.sum()), "classified": int(classified.sum()),
                              "share": float(supernova.sum() / max(len(frame), 1)),
                              "top_classes": {k: int(v) for k, v in
                                              pd.Series(np.where(classified, top, "declined")).value_counts().items()}}
        out["models"][name] = entry
    return out
