"""``fink-t2 evaluate``: held-out metrics, plots and the model card.

The test objects are those of the training run's own split (same seed and
fractions, recomputed from its config), so no test object was seen in
training or validation. Every model evaluated here sees the same views of the
same objects; each through its own preparation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from fink_t2.scoring.classes import CLASSES
from fink_t2.scoring.lightcurves import prepare
from fink_t2.scoring.paths import SHARED_ZTF_ALERTS
from fink_t2.training.evaluation import classification_metrics, confusion_matrix, roc_curve
from fink_t2.training.plasticc import EVALUATION_EPOCHS, evaluation_views, load_plasticc, make_views, split_objects

OURS = "t2 (Keras float)"
FINK_DEPLOYED = "Fink-deployed t2 (corrected)"


#: A model under evaluation: (observations, sky context or None) -> (probabilities, mask of the objects it judged).
Predictor = Callable[..., tuple[np.ndarray, np.ndarray]]


def _predictors(run_dir: Path, config, tflite: dict, fink_deployed: Predictor | None) -> dict:
    """name -> function(observations) -> (probabilities, ok mask)."""
    from fink_t2.training.train import KERAS_FILE, load_keras_model

    prep = config.preparation
    keras_model = load_keras_model(run_dir / KERAS_FILE)

    def keras_predict(obs, sky=None):
        batch = prepare(obs, prep, sky=sky)
        return keras_model.predict(batch.values, batch_size=4096, verbose=0), batch.ok

    predictors = {OURS: keras_predict}
    for name, path in tflite.items():
        from fink_t2.scoring.runtime import load_model

        model = load_model(path, prior="flat")  # PLAsTiCC's flat log-loss: the flat-prior option

        def tflite_predict(obs, sky=None, model=model):
            batch = prepare(obs, model.preparation, sky=sky)
            return model.predict(batch.values), batch.ok

        predictors[name] = tflite_predict
    if fink_deployed is not None:
        predictors[FINK_DEPLOYED] = lambda obs, sky=None: fink_deployed(obs)  # its own preparation: no context
    return predictors


def evaluate_predictions(data, objects: np.ndarray, predictors: dict, progress: bool = True) -> dict:
    """Metrics of every predictor at every evaluation epoch, on the views all of them could judge.

    Views carry the simulated host cross-match of their object (one fixed draw,
    :func:`fink_t2.training.train.view_sky`): read by a model with sky-context channels, ignored by others.
    """
    from fink_t2.scoring.lightcurves import PreparationConfig
    from fink_t2.training.train import view_sky

    results: dict = {}
    for epoch in EVALUATION_EPOCHS:
        spec, _ = evaluation_views(data.observations, objects, epoch)
        obs = make_views(data.observations, spec)
        sky = view_sky(data, spec.source, PreparationConfig(sky_context=True), None)
        labels = data.labels[spec.source]
        outputs = {}
        for name, predict in predictors.items():
            started = time.time()
            outputs[name] = predict(obs, sky)
            if progress:
                print(f"  {epoch:10s} {name:34s} {len(labels)} views  {time.time() - started:.1f}s", flush=True)
        common = np.logical_and.reduce([ok for _, ok in outputs.values()])
        models = {}
        for name, (p, ok) in outputs.items():
            models[name] = {**classification_metrics(labels[common], p[common]), "coverage": float(np.mean(ok))}
        for name, (p, ok) in outputs.items():
            if ok.sum() > common.sum():
                # Also each model alone on every view it accepts (more views than the common ones).
                models[f"{name}, all views it accepts"] = {**classification_metrics(labels[ok], p[ok]),
                                                           "coverage": float(np.mean(ok))}
        results[epoch] = {
            "description": EVALUATION_EPOCHS[epoch], "n_objects_with_view": int(len(labels)),
            "n_judged_by_all": int(common.sum()),
            "models": models,
            "_labels": labels[common], "_probabilities": {name: p[common] for name, (p, _) in outputs.items()},
        }
    return results


def real_alert_check(predictors: dict, alerts_dir: Path = SHARED_ZTF_ALERTS) -> dict:
    """Top classes on real ZTF alerts, and the predictions for those with a TNS spectroscopic class.

    A qualitative check only (about 15 typed alerts; nothing was tuned on
    them): a model that answers the same class for everything, as the
    deployed one did, shows here.
    """
    import pandas as pd

    from fink_t2.scoring.alerts import alert_columns_from_files, observations_from_columns
    from fink_t2.scoring.paths import alert_files

    files = alert_files(alerts_dir)  # not the labels beside them
    if not files:
        return {}
    frame = alert_columns_from_files(files, extra=("tnsclass",))
    obs, _ = observations_from_columns(frame)
    out = {"n_alerts": int(len(frame)), "models": {}}
    typed = frame["tnsclass"].fillna("Unknown").astype(str).str.startswith("(TNS)").to_numpy()
    for name, predict in predictors.items():
        p, ok = predict(obs)
        top = np.asarray(CLASSES, dtype=object)[p.argmax(1)]
        counts = pd.Series(top[ok]).value_counts()
        out["models"][name] = {
            "n_classified": int(ok.sum()),
            "top_class_counts": {k: int(v) for k, v in counts.items()},
            "typed": [{"objectId": frame["objectId"][i], "tns": frame["tnsclass"][i],
                       "top": (str(top[i]) if ok[i] else None),
                       "p_top": (round(float(p[i].max()), 3) if ok[i] else None),
                       "p_SNIa": (round(float(p[i, CLASSES.index("SNIa")]), 3) if ok[i] else None)}
                      for i in np.flatnonzero(typed)],
        }
    return out


def plot_confusion(labels: np.ndarray, probabilities: np.ndarray, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = confusion_matrix(labels, probabilities.argmax(1)).astype(float)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    fig, ax = plt.subplots(figsize=(8.5, 7.5))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=60, ha="right")
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    for i in range(len(CLASSES)):
        for j in range(len(CLASSES)):
            if matrix[i, j]:
                ax.text(j, i, f"{normalised[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if normalised[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (row-normalised)")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_roc(labels: np.ndarray, probabilities: np.ndarray, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fink_t2.training.evaluation import roc_auc

    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    cmap = plt.get_cmap("tab20")
    for c, name in enumerate(CLASSES):
        positive = labels == c
        if positive.any() and (~positive).any():
            fpr, tpr = roc_curve(positive, probabilities[:, c])
            ax.plot(fpr, tpr, color=cmap(c), lw=1.2, label=f"{name} ({roc_auc(positive, probabilities[:, c]):.2f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right", title="one-vs-rest (AUC)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(results: dict) -> str:
    lines = ["| epoch | model | n | coverage | flat log-loss | accuracy | balanced acc. | micro AUC | macro AUC "
             "| SN Ia vs rest AUC |", "|---|---|---|---|---|---|---|---|---|---|"]
    for epoch, entry in results.items():
        for name, m in entry["models"].items():
            lines.append(f"| {epoch} | {name} | {m['n']} | {m['coverage']:.3f} | {m['flat_log_loss']:.3f} | "
                         f"{m['accuracy']:.3f} | {m['balanced_accuracy']:.3f} | {m['micro_roc_auc']:.3f} | "
                         f"{m['macro_roc_auc']:.3f} | {m['snia_vs_rest_auc']:.3f} |")
    return "\n".join(lines)


def _recall_table(results: dict, model: str) -> str:
    epochs = list(results)
    lines = ["| class | " + " | ".join(epochs) + " |", "|---|" + "---|" * len(epochs)]
    for name in CLASSES:
        cells = []
        for epoch in epochs:
            value = results[epoch]["models"][model]["per_class_recall"][name]
            cells.append("-" if value is None else f"{value:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _real_sky_section(run_dir: Path, output_dir: Path, tflite: dict, bts, text: list[str], progress: bool) -> dict:
    """Run the real-sky evaluation; append its markdown to ``text``; return its numbers."""
    from fink_t2.training import real_sky

    report = real_sky.evaluate_real(run_dir, output_dir, baselines=tflite, bts_path=bts, progress=progress)
    simbad = real_sky.simbad_confusion(tflite)
    report["simbad"] = simbad
    (output_dir / "real_sky.json").write_text(json.dumps(report, indent=1))
    objects = ", ".join(f"{k} {v}" for k, v in report["objects"].items())
    shipped = next(iter(report["results"]))
    flat = "t2 fine-tuned, out-of-fold, flat prior"
    text += ["## Real sky: typed ZTF Bright Transient Survey light curves", "",
             f"{sum(report['objects'].values())} objects ({objects}). Alert-like views: cut at the 3rd detection, "
             "at the last detection within 10 and 30 days of the first (each with a 30-day history), and the whole "
             "light curve. The fine-tuned model is judged **out of fold**: object-wise "
             f"{len(np.unique(real_sky.load_cv_predictions(run_dir)['full']['fold']))}-fold cross-validation, "
             "each object scored by the model trained without it (its temperature fitted on the other folds). "
             "Models that never saw a real object are scored on every object. Ia/II/Ibc: the most probable of "
             "the summed families (Ia = SNIa + SNIa-91bg + SNIax).", "",
             *real_sky.markdown_tables(report["results"]), "",
             f"Targets, {shipped}:", "", *real_sky.target_lines(report["results"][shipped],
                                                              report["results"].get(flat),
                                                              report["results"].get(shipped + real_sky.LC_ONLY)),
             "",
             "![real_sky.png](real_sky.png)", ""]
    if simbad:
        text += ["## Real sky: SIMBAD-labelled alerts (variables and AGN)", "",
                 f"{simbad['n_labelled']} alerts of `../shared/data/ztf_alerts` whose `cdsxmatch` names a modelled "
                 "class (" + ", ".join(f"{k} {v}" for k, v in simbad["counts"].items()) + "), scored as served "
                 "(no cuts, the model's default prior). Correct = top class is the SIMBAD class.", "",
                 "| model | correct | mean recall over classes | top classes per SIMBAD class |", "|---|---|---|---|"]
        for name, entry in simbad["models"].items():
            detail = "; ".join(f"{cls} ({v['n']}): " + ", ".join(f"{k} {n}" for k, n in v["top_classes"].items())
                               for cls, v in entry["by_class"].items())
            text += [f"| {name} | {entry['correct']} / {simbad['n_labelled']} | {entry['balanced_recall']:.3f} | "
                     f"{detail} |"]
        text += [""]
    vsx = real_sky.vsx_check(tflite)
    report["vsx"] = vsx
    (output_dir / "real_sky.json").write_text(json.dumps(report, indent=1))
    if vsx:
        text += ["## Real sky: alerts on catalogued variable stars (VSX)", "",
                 f"{vsx['n_alerts']} alerts ({vsx['n_objects']} objects) of `../shared/data/ztf_alerts` within 1.5\" "
                 "of a VSX variable star, scored as served (no cuts, full alert columns: the position, hence the host "
                 "cross-match), and without `cisdiffpos`. Target: a supernova top class for at most 25 %.", "",
                 "| model | supernova top class, as served | without cisdiffpos | top classes, as served |",
                 "|---|---|---|---|"]
        for name, entry in vsx["models"].items():
            served, unsigned = entry["as served"], entry["without cisdiffpos"]
            tops = ", ".join(f"{k} {n}" for k, n in served["top_classes"].items())
            text += [f"| {name} | {served['supernova_top_class']} / {vsx['n_alerts']} ({served['share']:.0%}) | "
                     f"{unsigned['supernova_top_class']} / {vsx['n_alerts']} ({unsigned['share']:.0%}) | {tops} |"]
        text += [""]
    return report


def evaluate_run(run_dir: str | Path, output_dir: str | Path = "docs", data_dir: str | Path | None = None,
                 tflite: dict | None = None, fink_deployed: Predictor | None = None, max_objects: int | None = None,
                 progress: bool = True, real: bool = False, bts: str | Path | None = None) -> dict:
    """Evaluate a training run on its held-out test objects; write JSON, plots and a markdown report.

    ``fink_deployed``: the Fink-deployed model as a :data:`Predictor` (the benchmark side's
    :func:`fink_t2.bench.fink_deployed.deployed_predictor`, passed by ``fink-t2 evaluate
    --fink-deployed``), evaluated through its own preparation; None leaves it out.

    With ``real``, the real-sky report too (:mod:`fink_t2.training.real_sky`): the run's
    out-of-fold BTS predictions beside the ``tflite`` models, and the
    SIMBAD-labelled alerts scored by the ``tflite`` models.
    """
    from fink_t2.training.train import CONFIG_FILE, HISTORY_FILE, TrainConfig

    run_dir, output_dir = Path(run_dir), Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    config = TrainConfig.from_yaml(run_dir / CONFIG_FILE)
    if config.preparation.survey != "ztf":  # this report compares ZTF models and reads real ZTF alerts
        raise ValueError(f"{run_dir} trained a {config.preparation.survey!r} model: evaluate it with 'fink-t2 "
                         "evaluate --rubin --rubin-model <its compressed .tflite>' (fink_t2.training.rubin_evaluation)")
    data = load_plasticc(data_dir, max_objects=max_objects, seed=config.seed)
    split = split_objects(data.labels, config.split, config.seed)
    predictors = _predictors(run_dir, config, tflite or {}, fink_deployed)
    results = evaluate_predictions(data, split["test"], predictors, progress)

    plots = {}
    for epoch in ("full", "first+30d"):
        entry = results[epoch]
        for name in (OURS, FINK_DEPLOYED):
            if name not in entry["_probabilities"]:
                continue
            tag = "t2" if name == OURS else "fink_deployed"
            stem = f"{tag}_{epoch.replace('+', '_')}"
            title = f"{name}, PLAsTiCC test objects, epoch '{epoch}' (n={len(entry['_labels'])})"
            plot_confusion(entry["_labels"], entry["_probabilities"][name], title, output_dir / f"confusion_{stem}.png")
            plot_roc(entry["_labels"], entry["_probabilities"][name], title, output_dir / f"roc_{stem}.png")
            plots[f"{name} / {epoch}"] = [f"confusion_{stem}.png", f"roc_{stem}.png"]

    clean = {epoch: {k: v for k, v in entry.items() if not k.startswith("_")} for epoch, entry in results.items()}
    alerts_check = real_alert_check(predictors)
    history = json.loads((run_dir / HISTORY_FILE).read_text()) if (run_dir / HISTORY_FILE).exists() else {}
    training = {k: history.get(k) for k in ("best_epoch", "best_val_flat_log_loss", "seconds", "parameters")}
    report = {"run": str(run_dir), "split": {k: int(len(v)) for k, v in split.items()}, "epochs": clean,
              "plots": plots, "real_alerts": alerts_check, "training": training, "config": config.to_dict()}
    (output_dir / "evaluation.json").write_text(json.dumps(report, indent=1))
    text = ["# Evaluation on held-out PLAsTiCC test objects", "",
            f"Generated by `fink-t2 evaluate --run {run_dir}`; test objects: {len(split['test'])} "
            f"(split {list(config.split)} by object, stratified, seed {config.seed}).",
            "Each row: the views that every model listed could judge (`n`); `coverage` is the fraction of all "
            "views of that epoch the model accepted.", "", _table(clean), "",
            f"## Per-class recall, {OURS}", "", _recall_table(clean, OURS), ""]
    if FINK_DEPLOYED in predictors:
        text += [f"## Per-class recall, {FINK_DEPLOYED}", "", _recall_table(clean, FINK_DEPLOYED), ""]
    if alerts_check:
        text += ["## Real ZTF alerts (qualitative check)", "",
                 f"{alerts_check['n_alerts']} real alerts of `../shared/data/ztf_alerts` (no labels used in "
                 "training or model choice). Top-class counts:", ""]
        for name, entry in alerts_check["models"].items():
            counts = ", ".join(f"{k} {v}" for k, v in entry["top_class_counts"].items())
            text += [f"- {name} ({entry['n_classified']} classified): {counts}"]
        text += ["", "Alerts with a TNS spectroscopic class:", "",
                 "| objectId | TNS class | "
                 + " | ".join(f"{n}: top (p), p(SNIa)" for n in alerts_check["models"]) + " |",
                 "|---|---|" + "---|" * len(alerts_check["models"])]
        first = next(iter(alerts_check["models"].values()))["typed"]
        for i, row in enumerate(first):
            cells = []
            for entry in alerts_check["models"].values():
                r = entry["typed"][i]
                cells.append("declined" if r["top"] is None else f"{r['top']} ({r['p_top']}), {r['p_SNIa']}")
            text += [f"| {row['objectId']} | {row['tns']} | " + " | ".join(cells) + " |"]
        text += [""]
    if real:
        report["real_sky"] = _real_sky_section(run_dir, output_dir, tflite or {}, bts, text, progress)
    for label, files in plots.items():
        text += [f"### {label}", ""] + [f"![{f}]({f})" for f in files] + [""]
    (output_dir / "evaluation.md").write_text("\n".join(text))
    with open(output_dir / "evaluation_config.yaml", "w", encoding="utf-8") as handle:
        yaml.safe_dump({"run": str(run_dir), "tflite": tflite or {},
                        "fink_deployed": fink_deployed is not None}, handle)
    if progress:
        print(_table(clean))
    return report
