"""``fink-t2 evaluate --rubin``: the six-band Rubin t2 on held-out PLAsTiCC objects and ELAsTiCC alerts.

PLAsTiCC: the test objects of the Rubin model's own training split (seed and
fractions from the training configuration shipped beside it; the split
depends only on the labels, so the ZTF model, trained with the same seed and
fractions, never saw them either), at the evaluation epochs of
:data:`fink_t2.training.plasticc.EVALUATION_EPOCHS` (whole light curves, the
3rd detection, first+10 d and first+30 d with 30 days of history). Three
predictors see the same views: the Rubin model with the host redshift, the
Rubin model without it, and the shipped g/r ZTF model on the same views
restricted to g and r (what four more bands, and the redshift, buy). Metrics
are those of :func:`fink_t2.training.evaluation.classification_metrics`, on
the views all three judge.

PLAsTiCC-test-like: the same test objects moved to the test set's population (farther, fainter,
sparser: :mod:`fink_t2.training.test_like`), scored as Rubin alerts (detections, 365 days of
history) at the alert epochs and pooled, with the supernova metrics the Rubin issue set, beside the
same metrics on the plain test objects and, when ``benchmarks/rubin_yardstick.py`` has been run on
the same views (same digest), beside the boosted-tree yardstick.

ELAsTiCC: the 556 SN Ia alerts and the 100 AGN alerts of the shared
``rubin_alerts`` folder, read by :mod:`fink_t2.scoring.rubin_alerts`: SN Ia and
AGN recall (top class), with and without the host redshift the alerts carry.

The TFLite files are scored, with the flat class prior: PLAsTiCC's metrics are
defined for it. Training side: never imported by the serving core.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fink_t2.scoring.classes import CLASSES
from fink_t2.scoring.lightcurves import Observations, prepare
from fink_t2.scoring.paths import MODELS, shared_path
from fink_t2.training.evaluation import classification_metrics
from fink_t2.training.plasticc import (
    EVALUATION_EPOCHS,
    evaluation_views,
    load_plasticc,
    make_views,
    restrict_to_survey,
    split_objects,
)

RUBIN_MODEL = MODELS / "t2_rubin.tflite"
ZTF_MODEL = MODELS / "t2.tflite"
WITH_Z = "Rubin t2, 6 bands + host z"
WITHOUT_Z = "Rubin t2, 6 bands, no host z"
ZTF_GR = "ZTF t2 (shipped), g/r only"
#: ELAsTiCC alert files (shared ``data/rubin_alerts``) and the class every alert in them has.
ELASTICC_FILES: dict[str, str] = {"fink_science_elasticc_snia.parquet": "SNIa",
                                  "fink_science_elasticc_agn.parquet": "AGN"}


def _predict(model, obs: Observations, host_z: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (n, 14), NaN where not judged; mask of the judged) of a TFLite model on ``obs``."""
    batch = prepare(obs, model.preparation, host_z=host_z)
    probabilities = np.full((obs.n_objects, len(CLASSES)), np.nan)
    if batch.ok.any():
        probabilities[batch.ok] = model.predict(batch.values[batch.ok])
    return probabilities, batch.ok


def predictors(rubin_model, ztf_model) -> dict:
    """name -> function(observations in Rubin bands, host z per object) -> (probabilities, judged)."""
    return {
        WITH_Z: lambda obs, z: _predict(rubin_model, obs, z),
        WITHOUT_Z: lambda obs, z: _predict(rubin_model, obs, None),
        ZTF_GR: lambda obs, z: _predict(ztf_model, restrict_to_survey(obs, rubin_model.survey, ztf_model.survey),
                                        None),
    }


def plasticc_held_out(data, objects: np.ndarray, models: dict, progress: bool = True) -> dict:
    """Metrics of every predictor at every evaluation epoch, on the held-out views all of them judge."""
    results: dict = {}
    for epoch in EVALUATION_EPOCHS:
        spec, _ = evaluation_views(data.observations, objects, epoch)
        obs = make_views(data.observations, spec)
        labels, host_z = data.labels[spec.source], data.host_z[spec.source]
        outputs = {name: predict(obs, host_z) for name, predict in models.items()}
        common = np.logical_and.reduce([ok for _, ok in outputs.values()])
        entry = {"description": EVALUATION_EPOCHS[epoch], "n_objects_with_view": int(len(labels)),
                 "n_judged_by_all": int(common.sum()), "models": {}, "alone": {}}
        for name, (p, ok) in outputs.items():
            entry["models"][name] = {**classification_metrics(labels[common], p[common]),
                                     "coverage": float(np.mean(ok))}
            entry["alone"][name] = {**classification_metrics(labels[ok], p[ok]), "coverage": float(np.mean(ok))}
        results[epoch] = entry
        if progress:
            print(f"  {epoch:10s} " + "  ".join(f"{name}: {m['flat_log_loss']:.3f}"
                                               for name, m in entry["models"].items()), flush=True)
    return results


def elasticc_recall(models: dict, alerts_dir: Path) -> dict:
    """Per labelled ELAsTiCC file: alerts, judged, and the recall of its class (top class) per predictor."""
    import pyarrow.parquet as pq

    from fink_t2.scoring.rubin_alerts import HOST_Z_COLUMN, RUBIN_COLUMNS, observations_from_rubin, rubin_alert_columns

    out: dict = {}
    for filename, label in ELASTICC_FILES.items():
        path = alerts_dir / filename
        if not path.is_file():
            continue
        try:
            columns = rubin_alert_columns(pq.read_table(path))
        except (OSError, KeyError, ValueError) as error:  # ArrowInvalid is a ValueError: not parquet, not alerts
            raise ValueError(f"ELAsTiCC alert file {path} cannot be read as Rubin alerts ({str(error)[:200]}): "
                             "replace it, or remove it from the folder") from error
        obs, reason = observations_from_rubin(*(columns[c] for c in RUBIN_COLUMNS))
        host_z = columns[HOST_Z_COLUMN].to_numpy(np.float64)
        readable = np.equal(reason, None)
        entry = {"file": filename, "class": label, "n_alerts": int(len(columns)),
                 "n_with_host_z": int(np.isfinite(host_z).sum()), "models": {}}
        target = CLASSES.index(label)
        for name, predict in models.items():
            p, ok = predict(obs, host_z)
            ok &= readable
            top = np.where(ok, np.nan_to_num(p, nan=-1.0).argmax(axis=1), -1)
            counts = {CLASSES[c]: int((top == c).sum()) for c in np.unique(top[ok])}
            entry["models"][name] = {
                "n_judged": int(ok.sum()),
                "recall_of_judged": float(np.mean(top[ok] == target)) if ok.any() else float("nan"),
                "recall_of_all": float(np.mean(top == target)),
                "mean_probability": float(np.nanmean(p[ok, target])) if ok.any() else float("nan"),
                "top_class_counts": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
            }
        out[label] = entry
    return out


#: Where ``benchmarks/rubin_yardstick.py`` writes its metrics (a checkout; absent from an installed package).
YARDSTICK_RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "rubin_yardstick.json"


def test_like_report(data, test_objects: np.ndarray, models: dict, yardstick: str | Path | None = YARDSTICK_RESULTS,
                     progress: bool = True) -> dict:
    """Supernova metrics on the plain test objects and the test-like set, per epoch, for every predictor; the
    yardstick's, read from its results file, where its views were the same (digest)."""
    from fink_t2.training.test_like import population, supernova_report, test_like_objects

    copies = test_like_objects(data, test_objects)
    sets = {"plain": (data, test_objects),
            "test_like": (copies.data, np.arange(copies.data.observations.n_objects))}
    predict = {name: (lambda obs, z, f=f: f(obs, z)[0]) for name, f in models.items()}
    report = {"population": {"plain": population(_subset(data, test_objects)), "test_like": population(copies.data),
                             "augmentation": copies.stats},
              "sets": supernova_report(predict, sets, progress), "yardstick": None}
    path = Path(yardstick) if yardstick is not None else None
    if path is not None and path.is_file():
        trees = json.loads(path.read_text())
        same = {name: trees["sets"].get(name, {}).get("digest") == entry["digest"]
                for name, entry in report["sets"].items()}
        report["yardstick"] = {"file": path.name, "same_views": same, "best_iteration": trees.get("best_iteration")}
        for name, entry in report["sets"].items():
            if same[name]:
                for epoch, values in entry["epochs"].items():
                    values["yardstick"] = trees["sets"][name]["epochs"][epoch]["models"]
    return report


def plot_test_like(section: dict, path: Path) -> None:
    """SN Ia AUC and Ia/II/Ibc balanced accuracy per epoch: t2 (solid) beside the yardstick (dashed), with and
    without host z, plain test objects and the test-like set side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fink_t2.training.test_like import EPOCHS

    sets = list(section["sets"])
    fig, axes = plt.subplots(2, len(sets), figsize=(5.2 * len(sets), 7), sharey="row", squeeze=False)
    x = np.arange(len(EPOCHS))
    curves = [(WITH_Z, TREES_Z, "tab:blue", "host z"), (WITHOUT_Z, TREES_NO_Z, "tab:orange", "no host z")]
    for col, name in enumerate(sets):
        epochs = section["sets"][name]["epochs"]
        for row, key in enumerate(("snia_auc", "balanced_accuracy")):
            ax = axes[row, col]
            for model, trees, colour, label in curves:
                ax.plot(x, [epochs[e]["models"][model][key] for e in EPOCHS], "o-", color=colour, label=f"t2, {label}")
                if all("yardstick" in epochs[e] for e in EPOCHS):
                    ax.plot(x, [epochs[e]["yardstick"][trees][key] for e in EPOCHS], "s--", color=colour,
                            alpha=0.7, label=f"trees, {label}")
            ax.plot(x, [epochs[e]["models"][ZTF_GR][key] for e in EPOCHS], "^:", color="grey", label="g/r t2")
            ax.set_xticks(x, EPOCHS)
            ax.grid(alpha=0.3)
            ax.set_title(f"{name}: {'SN Ia vs II+Ibc AUC' if row == 0 else 'Ia/II/Ibc balanced accuracy'}")
    axes[0, -1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _subset(data, objects: np.ndarray):
    """The labels and host redshifts of ``objects`` with their observations (for :func:`population`)."""
    from fink_t2.training.plasticc import PlasticcData

    keep = np.isin(data.observations.object_index, objects)
    remap = np.full(data.observations.n_objects, -1)
    remap[objects] = np.arange(len(objects))
    obs = data.observations.subset(keep)
    obs.object_index = remap[obs.object_index]
    obs.n_objects = len(objects)
    return PlasticcData(obs, obs, np.asarray(data.object_ids)[objects], data.labels[objects],
                        data.metadata.iloc[objects].reset_index(drop=True), data.survey)


def evaluate_rubin(rubin_model_path: str | Path = RUBIN_MODEL, ztf_model_path: str | Path = ZTF_MODEL,
                   data_dir: str | Path | None = None, output: str | Path = "docs",
                   max_objects: int | None = None, alerts_dir: str | Path | None = None,
                   progress: bool = True, yardstick: str | Path | None = YARDSTICK_RESULTS) -> dict:
    """The whole report: PLAsTiCC held-out tables and ELAsTiCC recalls, as JSON and markdown in ``output``."""
    from fink_t2.scoring.runtime import load_model
    from fink_t2.training.train import TrainConfig

    rubin_model_path, ztf_model_path = Path(rubin_model_path), Path(ztf_model_path)
    rubin = load_model(rubin_model_path, prior="flat")
    ztf = load_model(ztf_model_path, prior="flat")
    config_path = rubin_model_path.with_name(f"{rubin_model_path.stem}_train.yaml")
    if not config_path.is_file():
        raise FileNotFoundError(f"training configuration not found: {config_path} (the split comes from it; copy "
                                f"the run's config.yaml there, as 'fink-t2 compress --ship' does)")
    config = TrainConfig.from_yaml(config_path)
    if config.preparation != rubin.preparation:
        raise ValueError(f"{config_path} is not the training configuration of {rubin_model_path} "
                         "(their preparations differ)")
    data = load_plasticc(data_dir, max_objects=max_objects, seed=config.seed, survey=rubin.survey)
    split = split_objects(data.labels, config.split, config.seed)
    models = predictors(rubin, ztf)
    if progress:
        print(f"PLAsTiCC test objects: {len(split['test'])} (seed {config.seed}, split {list(config.split)})")
    report = {
        "rubin_model": {"path": rubin_model_path.name, "sha256": rubin.metadata["sha256"],
                        "size_bytes": rubin.metadata["size_bytes"]},
        "ztf_model": {"path": ztf_model_path.name, "sha256": ztf.metadata["sha256"],
                      "size_bytes": ztf.metadata["size_bytes"]},
        "split": {"seed": config.seed, "fractions": list(config.split),
                  **{name: int(len(idx)) for name, idx in split.items()}},
        "max_objects": max_objects,
        "plasticc": plasticc_held_out(data, split["test"], models, progress),
    }
    # As served: each model's default class prior (the Rubin model's PLAsTiCC training mix), as an alert
    # stream's astronomer gets its top class.
    served_rubin, served_ztf = load_model(rubin_model_path), load_model(ztf_model_path)
    report["test_like"] = test_like_report(data, split["test"], predictors(served_rubin, served_ztf), yardstick,
                                           progress)
    report["test_like"]["priors"] = {"rubin": served_rubin.prior, "ztf": served_ztf.prior}
    alerts_dir = Path(alerts_dir) if alerts_dir is not None else shared_path("data", "rubin_alerts")
    report["elasticc"] = elasticc_recall(models, alerts_dir)
    report["elasticc_served"] = elasticc_recall(predictors(served_rubin, served_ztf), alerts_dir)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "evaluation_rubin.json").write_text(json.dumps(report, indent=1, default=float))
    (output / "evaluation_rubin.md").write_text(markdown_report(report))
    plot_test_like(report["test_like"], output / "evaluation_rubin.png")
    if progress:
        print(f"wrote {output / 'evaluation_rubin.md'} and {output / 'evaluation_rubin.json'}")
    return report


def _f(value) -> str:
    return "-" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"


def markdown_report(report: dict) -> str:
    """The tables of the report (the model card copies them)."""
    lines = ["# Rubin t2: evaluation", "",
             f"Generated by `fink-t2 evaluate --rubin`. Rubin model `{report['rubin_model']['path']}` "
             f"(sha256 `{report['rubin_model']['sha256'][:16]}...`), g/r model `{report['ztf_model']['path']}`. "
             f"PLAsTiCC test objects: {report['split']['test']} (split seed {report['split']['seed']}, fractions "
             f"{report['split']['fractions']}); never seen in training or validation by either model.", "",
             *([f"**--max-objects {report['max_objects']}: a subset, whose split is not the training split; "
                "these objects are NOT held out. Quick checks only.**", ""] if report.get("max_objects") else []),
             "## PLAsTiCC held-out objects, on the views all three judge", "",
             "| epoch | model | n | coverage | flat log-loss | accuracy | balanced acc. | SN Ia AUC |",
             "|---|---|---|---|---|---|---|---|"]
    for epoch, entry in report["plasticc"].items():
        for name, m in entry["models"].items():
            lines.append(f"| {epoch} | {name} | {m['n']} | {m['coverage']:.3f} | {m['flat_log_loss']:.3f} | "
                         f"{m['accuracy']:.3f} | {m['balanced_accuracy']:.3f} | {_f(m['snia_vs_rest_auc'])} |")
    lines += ["", "Each model alone, on every view it judges:", "",
              "| epoch | model | n | flat log-loss | accuracy | balanced acc. | SN Ia AUC |",
              "|---|---|---|---|---|---|---|"]
    for epoch, entry in report["plasticc"].items():
        for name, m in entry["alone"].items():
            lines.append(f"| {epoch} | {name} | {m['n']} | {m['flat_log_loss']:.3f} | {m['accuracy']:.3f} | "
                         f"{m['balanced_accuracy']:.3f} | {_f(m['snia_vs_rest_auc'])} |")
    for name in next(iter(report["plasticc"].values()))["models"]:
        lines += ["", f"Per-class recall, {name} (views all three judge):", "",
                  "| class | " + " | ".join(report["plasticc"]) + " |", "|---|" + "---|" * len(report["plasticc"])]
        for cls in CLASSES:
            lines.append(f"| {cls} | " + " | ".join(_f(e["models"][name]["per_class_recall"][cls])
                                                   for e in report["plasticc"].values()) + " |")
    if report.get("test_like"):
        lines += test_like_markdown(report["test_like"]) + ["", "![t2 beside the yardstick](evaluation_rubin.png)"]
    for key, title in (("elasticc", "flat prior"), ("elasticc_served", "each model's default prior, as served")):
        if not report.get(key):
            continue
        lines += ["", f"## ELAsTiCC alerts (simulated LSST alerts, shared `rubin_alerts`): {title}", "",
                  "| alerts | class | model | judged | recall (of judged) | recall (of all) | mean p(class) "
                  "| top classes |",
                  "|---|---|---|---|---|---|---|---|"]
        for label, entry in report[key].items():
            for name, m in entry["models"].items():
                top = ", ".join(f"{k} {v}" for k, v in list(m["top_class_counts"].items())[:4])
                lines.append(f"| {entry['n_alerts']} ({entry['n_with_host_z']} with host z) | {label} | {name} | "
                             f"{m['n_judged']} | {_f(m['recall_of_judged'])} | {_f(m['recall_of_all'])} | "
                             f"{_f(m['mean_probability'])} | {top} |")
    return "\n".join(lines) + "\n"


TREES_Z, TREES_NO_Z = "trees, host z", "trees, no host z"


def _pair(values: dict, model: str, trees: dict | None, tree_name: str, key: str) -> str:
    ours = _f(values["models"][model][key])
    if trees is None:
        return ours
    theirs = trees[tree_name][key]
    mark = "**" if key != "non_supernova_top_share" and values["models"][model][key] > theirs else ""
    return f"{mark}{ours}{mark} / {_f(theirs)}"


def test_like_markdown(section: dict) -> list[str]:
    """The supernova tables: population, then per set and epoch t2 beside the yardstick."""
    from fink_t2.training.test_like import SUPERNOVAE, TARGET_POPULATION

    pop = section["population"]
    lines = ["", "## Supernovae as Rubin alerts: plain test objects and the PLAsTiCC-test-like set", "",
             "The test-like set: the same held-out test objects moved to higher redshift and observed again "
             "(`fink_t2.training.test_like`, seed fixed; copies of test objects only). Views: detections only, "
             "365 days of history; `pooled` = the 3rd detection, first+10 d and first+30 d together. "
             f"Augmentation: {pop['augmentation']}. Each model with its default class prior, as served "
             f"({section.get('priors', {})}); the yardstick's trees with the Rubin model's.", "",
             "| class | set | n | median host photo-z | median detections | share with 2 |",
             "|---|---|---|---|---|---|"]
    for cls in SUPERNOVAE:
        for name in ("plain", "test_like"):
            m = pop[name][cls]
            lines.append(f"| {cls} | {name} | {m['n']} | {_f(m['photoz_median'])} | {m['detections_median']:.0f} | "
                         f"{_f(m['share_with_2_detections'])} |")
        lines.append(f"| {cls} | PLAsTiCC test set (the issue's measurement) | | "
                     f"{TARGET_POPULATION['photoz_median'][cls]:.2f} | {TARGET_POPULATION['detections_median']} | "
                     f"{TARGET_POPULATION['share_with_2_detections']:.2f} (all three) |")
    yard = section.get("yardstick")
    lines += ["", "SN Ia vs II + Ibc AUC of p(SN Ia), Ia/II/Ibc balanced accuracy (top class among the three) and "
              "the share whose top class of all 14 is none of the three; "
              + ("t2 / boosted-tree yardstick (`benchmarks/rubin_yardstick.py`, same split, augmentation and "
                 "views; **bold**: t2 better)." if yard else "the yardstick's results are absent (run "
                                                              "`benchmarks/rubin_yardstick.py`)."), "",
              "| set | epoch | n | AUC, host z | AUC, no host z | AUC, g/r model | bal. acc., host z | "
              "bal. acc., no host z | non-SN top, host z | non-SN top, no host z |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name, entry in section["sets"].items():
        for epoch, values in entry["epochs"].items():
            trees = values.get("yardstick")
            lines.append(
                f"| {name} | {epoch} | {values['n_judged_by_all']} | "
                f"{_pair(values, WITH_Z, trees, TREES_Z, 'snia_auc')} | "
                f"{_pair(values, WITHOUT_Z, trees, TREES_NO_Z, 'snia_auc')} | "
                f"{_f(values['models'][ZTF_GR]['snia_auc'])} | "
                f"{_pair(values, WITH_Z, trees, TREES_Z, 'balanced_accuracy')} | "
                f"{_pair(values, WITHOUT_Z, trees, TREES_NO_Z, 'balanced_accuracy')} | "
                f"{_pair(values, WITH_Z, trees, TREES_Z, 'non_supernova_top_share')} | "
                f"{_pair(values, WITHOUT_Z, trees, TREES_NO_Z, 'non_supernova_top_share')} |")
    return lines


__all__ = [
    "evaluate_rubin",
    "test_like_markdown",
    "test_like_report",
    "elasticc_recall",
    "markdown_report",
    "plasticc_held_out",
    "predictors",
]
