"""A benchmark run for readers: the terminal summary, the tables, the throughput plot, ``docs/performance.md``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from fink_t2.bench.modules import CEILING_MODULE, FAST_TRANSIENT_SAMPLES, IO_CEILING_MODULE, MODULES, REFERENCE_MODULE
from fink_t2.bench.targets import (
    FINK_ZTF_RATE,
    TARGET_RUBIN_VS_SNN,
    TARGET_VS_IO_CEILING,
    work_budgets,
)


def _fmt(value, spec: str = ",.0f", empty: str = "-") -> str:
    return empty if value is None else format(value, spec)


def results_table(report: dict, markdown: bool = False) -> str:
    """The per-module table (alerts, seconds, alerts/s/core, ratios), plain text or markdown."""
    header = ["module", "alerts", "median s", "min s", "max s", "alerts/s/core", "x Fink-deployed", "x no-op",
              "alerts/CPU-s", "note"]
    rows = []
    for m in report["modules"].values():
        ratios = m.get("ratio_to", {})
        note = m.get("note", "")
        if "classified" in m:
            note = (note + "; " if note else "") + f"{m['classified']} classified"
        rows.append([m["label"], f"{m['alerts']:,}", f"{m['seconds']['median']:.2f}", f"{m['seconds']['min']:.2f}",
                     f"{m['seconds']['max']:.2f}", _fmt(m["alerts_per_s_per_core"]),
                     _fmt(ratios.get(REFERENCE_MODULE), ",.1f"), _fmt(ratios.get(CEILING_MODULE), ".3f"),
                     _fmt(m.get("alerts_per_cpu_s")), note])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) if i in (0, 9) else str(c).rjust(w) for i, (c, w) in
                       enumerate(zip(row, widths))).rstrip() for row in [header] + rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def measures_table(report: dict, markdown: bool = False) -> str:
    """Every Spark module under every measure of the run: alerts/s/core (wall), alerts per CPU-second,
    and the ratios to ``t2_io_only`` and the no-op, each against the same measure of the same run."""
    measures = report["config"].get("measures") or []
    header = ["module"]
    for m in measures:
        header += [f"{m} alerts/s/core", f"{m} alerts/CPU-s", f"{m} x t2_io_only", f"{m} x no-op"]
    rows = []
    for module in report["modules"].values():
        per = module.get("measures")
        if not per:
            continue
        row = [module["label"]]
        for m in measures:
            item = per.get(m) or {}
            ratios = item.get("ratio_to", {})
            row += [_fmt(item.get("alerts_per_s_per_core")), _fmt(item.get("alerts_per_cpu_s")),
                    _fmt(ratios.get(IO_CEILING_MODULE), ".3f"), _fmt(ratios.get(CEILING_MODULE), ".3f")]
        rows.append(row)
    return _table(header, rows, markdown)


def cpu_roles_table(report: dict, markdown: bool = False) -> str:
    """Where the CPU time of each measure goes: driver, JVM, Python workers (median repeat, seconds)."""
    measures = report["config"].get("measures") or []
    header = ["module", "measure", "wall s", "driver CPU s", "JVM CPU s", "Python workers CPU s", "total CPU s"]
    rows = []
    for module in report["modules"].values():
        for m in measures:
            item = (module.get("measures") or {}).get(m)
            if not item or not item.get("cpu_seconds_by_role"):
                continue
            roles = item["cpu_seconds_by_role"]
            total = sum(roles.values())
            rows.append([module["label"], m, f"{item['seconds']['median']:.2f}", f"{roles['driver']:.2f}",
                         f"{roles['jvm']:.2f}", f"{roles['python_workers']:.2f}", f"{total:.2f}"])
    return _table(header, rows, markdown)


def _table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in
                       enumerate(zip(row, widths))).rstrip() for row in [header] + rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def targets_table(report: dict, markdown: bool = False) -> str:
    rows = []
    for t in report.get("targets", []):
        measured = t["measured"]
        if isinstance(measured, bool):
            shown = str(measured)
        elif measured is None:
            shown = "not measured"
        else:
            shown = f"{measured:,.3g} {t['unit']}".strip() if measured < 100 else f"{measured:,.0f} {t['unit']}"
        threshold = t["threshold"]
        if isinstance(threshold, bool):
            bound = str(threshold)
        elif threshold is None:
            bound = "reported"
        else:
            sign = "<" if t["unit"] in ("MB", "s") else ">="
            on_cpu = " (CPU time)" if t.get("judged_on") == "cpu" else ""
            bound = f"{sign} {threshold:,g} {t['unit']}{on_cpu}".strip()
        met = {True: "met", False: "NOT met", None: "-"}[t["met"]]
        cpu = t.get("measured_cpu")
        rows.append([t["target"], bound, shown, met, "-" if cpu is None else f"{cpu:,.3g} x"])
    if markdown:
        lines = ["| target | required | measured (wall time) | | same ratio from CPU time |",
                 "|---|---|---|---|---|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    return "\n".join(f"  {r[3]:<8} {r[0]}: {r[2]} (required {r[1]})" + (f"; from CPU time {r[4]}" if r[4] != "-"
                                                                         else "") for r in rows)


_COLOURS = {"t2": "#1f77b4", "reference": "#d62728", "fink": "#7f7f7f", "ceiling": "#2ca02c"}


def plot_throughput(report: dict, path: str | Path) -> Path:
    """Bar chart of alerts/s/core per module (log axis, min-max error bars) with Fink's 75/s/core ZTF line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["modules"])
    modules = [report["modules"][n] for n in names]
    rates = [m["alerts_per_s_per_core"] for m in modules]
    low = [r - m["alerts_per_s_per_core_range"][0] for r, m in zip(rates, modules)]
    high = [m["alerts_per_s_per_core_range"][1] - r for r, m in zip(rates, modules)]
    labels = [m["label"] + (f"\n({m['alerts']:,} alerts)" if m.get("note", "").startswith("measured on") else "")
              for m in modules]
    colours = [_COLOURS.get(MODULES[n].family, "#999999") if n in MODULES else "#999999" for n in names]
    fig, ax = plt.subplots(figsize=(11, 6.5))
    positions = np.arange(len(names))
    ax.bar(positions, rates, color=colours, alpha=0.8, yerr=[low, high], capsize=4, ecolor="black")
    for x, rate, up in zip(positions, rates, high):
        ax.text(x, (rate + up) * 1.08, f"{rate:,.0f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(FINK_ZTF_RATE, ls="--", color="black", lw=1)
    ax.text(-0.4, FINK_ZTF_RATE * 0.92,
            f"ZTF need: {FINK_ZTF_RATE:g} alerts/s/core (600 alerts/exposure in 1 s on 8 cores)",
            ha="left", va="top", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(min(rates + [FINK_ZTF_RATE]) / 3, max(rates) * 4)
    ax.set_xticks(positions)
    ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("alerts / second / core")
    config = report["config"]
    measure = (config.get("measures") or ["topandas"])[0]
    ax.set_title(f"On-sky single-core throughput ({measure} measure), {config.get('alerts', 0):,} replicated real "
                 f"ZTF alerts, local[{config.get('cores')}], median of {config.get('repeats')}", fontsize=10)
    ax.grid(axis="y", alpha=0.3, which="both")
    from matplotlib.patches import Patch

    legend = [Patch(color=c, label=t) for t, c in (("t2 (this project)", _COLOURS["t2"]),
                                                  ("Fink-as-deployed t2", _COLOURS["reference"]),
                                                  ("Fink modules (fink-science 7.4.0)", _COLOURS["fink"]),
                                                  ("no-op ceiling", _COLOURS["ceiling"]))]
    ax.legend(handles=legend, loc="lower left", bbox_to_anchor=(0.0, 0.12), fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path



def print_summary(report: dict, stream=None) -> None:
    """The results table, the targets, the skipped modules and the worker probe, for the terminal."""
    stream = stream or sys.stdout
    config = report["config"]
    print(f"\nThroughput ({config.get('alerts'):,} alerts, local[{config.get('cores')}], "
          f"median of {config.get('repeats')}; alerts/s/core = alerts / median s / cores)\n", file=stream)
    print(results_table(report), file=stream)
    if report["config"].get("measures"):
        print(f"\nEvery Spark module under each measure, side by side in this run "
              f"({', '.join(report['config']['measures'])}):\n", file=stream)
        print(measures_table(report), file=stream)
        print("\nCPU seconds by process (median repeat):\n", file=stream)
        print(cpu_roles_table(report), file=stream)
    slow = [m["label"] for m in report["modules"].values() if m.get("note", "").startswith("measured on")]
    if slow:
        print(f"\nMeasured on {config.get('slow_alerts'):,} alerts only (slow): {', '.join(slow)}", file=stream)
    for name, reason in report.get("skipped", {}).items():
        print(f"skipped {name}: {reason}", file=stream)
    for name, reason in report.get("failed", {}).items():
        print(f"FAILED {name}: {reason}", file=stream)
    print("left out (packages not on PyPI): " + ", ".join(report.get("excluded", {})), file=stream)
    worker = report.get("worker")
    if worker:
        batches = ", ".join(f"{b['alerts']:,} alerts -> {b['maxrss_mb']:.0f} MB" for b in worker["batches"])
        print(f"\nFresh worker: first alert classified {worker['first_alert_s']:.2f} s after launch, "
              f"peak RSS {worker['maxrss_mb_first_alert']:.0f} MB after it; batches: {batches}; "
              f"TensorFlow imported: {worker['tensorflow_imported']}", file=stream)
    print("\nTargets:\n" + targets_table(report), file=stream)
    load = report["machine"].get("load_average_start")
    if load:
        print(f"\nload average at start {load[0]:.2f}, at end {report['machine'].get('load_average_end', [0])[0]:.2f} "
              f"on {report['machine']['cpu_count']} cores", file=stream)


_STAGE_NAMES = {"observations": "Arrow alert arrays -> observations (flatten, FLUXCAL, upper limits)",
                "preparation": "preparation (point selection, GP onto the time grid)",
                "interpreter": "LiteRT interpreter (batched `invoke`)",
                "t2_arrow": "building the `t2` Arrow struct (14 float columns and two strings)"}


def _spark_decomposition(report: dict) -> list[str]:
    """Per-alert core time in Spark split into Spark itself, t2's scoring and t2's output column."""
    modules = report["modules"]
    if not all(name in modules for name in ("noop", "t2")):
        return []

    def us(name: str) -> float:
        return 1e6 / modules[name]["alerts_per_s_per_core"]

    def cpu(name: str) -> float | None:
        rate = modules[name].get("alerts_per_cpu_s")
        return 1e6 / rate if rate else None

    def both(a: str, b: str | None = None) -> str:
        wall = us(a) - (us(b) if b else 0.0)
        ca, cb = cpu(a), (cpu(b) if b else 0.0)
        return f"{wall:,.1f} | " + ("-" if ca is None or cb is None else f"{ca - cb:,.1f}")

    lines = ["", "In Spark, per alert (from the table above: wall time x cores, and CPU time of the driver, JVM "
             "and workers):", "",
             "| part | us per alert per core (wall) | CPU us per alert | how |", "|---|---|---|---|",
             f"| Spark alone: cache scan, JVM -> Python Arrow transfer of 4 columns, `toPandas` | {both('noop')} | "
             "no-op UDF |"]
    if "t2_scores_only" in modules:
        lines += [f"| t2 scoring (2 more input columns, observations, preparation, interpreter) | "
                  f"{both('t2_scores_only', 'noop')} | `t2_scores_only` - no-op |",
                  "| the `t2` struct output (14 probabilities and two strings built, sent to the JVM, collected "
                  f"by `toPandas`) | {both('t2', 't2_scores_only')} | `t2` - `t2_scores_only` |"]
    else:
        lines.append(f"| t2 (scoring and output) | {both('t2', 'noop')} | t2 - no-op |")
    if "t2_io_only" in modules:
        lines += [f"| of which moving t2's inputs and output, with no scoring | {both('t2_io_only', 'noop')} | "
                  "`t2_io_only` - no-op |",
                  f"| of which t2's own work (observations, preparation, interpreter, output built) | "
                  f"{both('t2', 't2_io_only')} | `t2` - `t2_io_only` |"]
    lines.append(f"| **t2 in total** | {both('t2')} | |")
    if "t2_io_only" in modules:
        bound = modules["t2_io_only"]["alerts_per_s_per_core"] / modules["noop"]["alerts_per_s_per_core"]
        lines += ["", f"Even with free scoring, a module with t2's input columns and its output column reaches "
                  f"{bound:.2f} of the no-op ceiling in this measure (`t2_io_only`): the rest of the gap between "
                  "`t2` and the ceiling is t2's own work. Why no t2 reaches 0.5 of the ceiling in this measure, "
                  "whatever its output type (an unnamed array included): `python benchmarks/ceiling_bound.py`, "
                  "discussed in [model_search.md](model_search.md#the-no-op-ceiling-target)."]
    lines += ["", "Differences of wall times inherit the noise of both runs (a negative entry means the machine was "
              "busier during one of them); the CPU-time column is the one to read."]
    return lines


def _profile_section(report: dict) -> list[str]:
    profile = report.get("profile")
    lines: list[str] = []
    if profile:
        lines += [f"One batch of {profile['alerts']:,} alerts through the worker's steps in one process "
                  f"(median of 3 after a warm-up): {profile['total_s'] * 1e3:,.0f} ms, "
                  f"{profile['alerts_per_s']:,.0f} alerts/s on one core.", "",
                  "| stage | ms per batch | us per alert | share |", "|---|---|---|---|"]
        for key, seconds in profile["stages_s"].items():
            lines.append(f"| {_STAGE_NAMES.get(key, key)} | {seconds * 1e3:,.1f} | "
                         f"{profile['stages_us_per_alert'][key]:,.1f} | {profile['stages_share'][key]:.0%} |")
    lines += _spark_decomposition(report)
    if profile:
        stages = profile["stages_share"]
        biggest = max(stages, key=stages.get)
        lines += ["", f"The largest in-process stage is **{_STAGE_NAMES.get(biggest, biggest)}** "
                  f"({stages[biggest]:.0%} of the batch). cProfile of one batch, top functions by own time:", "",
                  "```text", *profile["cprofile_top"], "```"]
    return lines or ["(not profiled in this run)"]


def _budget_verdict(row: dict) -> str:
    """Which of: met, out of reach whatever t2 computes, out of reach with this model's interpreter, or how much
    of t2's own work would have to go."""
    budget, work, interpreter = row["budget_us"], row["work_us"], row["interpreter_us"]
    if work <= budget:
        return "met"
    if budget <= 0:
        return "out of reach with no work at all: the inputs and output column alone cost more"
    if interpreter is not None and interpreter >= budget:
        return "out of reach with this model: its interpreter alone takes more"
    verdict = f"needs t2's own work {1 - budget / work:.0%} smaller"
    if interpreter is not None:
        verdict += (f": with the interpreter as it is, {budget - interpreter:,.1f} us left for the rest "
                    f"(reading and preparing the light curves), which takes {work - interpreter:,.1f}")
    return verdict


def budget_table(report: dict) -> str:
    """Markdown: per measure and Spark ratio target, t2's work per alert against what the target leaves."""
    rows = work_budgets(report)
    if not rows:
        return ""
    lines = ["| measure | target | t2_io_only us/alert | work allowed us/alert | t2's work us/alert | "
             "interpreter alone us/alert | verdict |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['measure'] or 'toPandas'} | {row['target']} >= {row['threshold']:g} x | "
                     f"{row['io_only_us']:,.1f} | {row['budget_us']:,.1f} | {row['work_us']:,.1f} | "
                     f"{_fmt(row['interpreter_us'], ',.1f')} | {_budget_verdict(row)} |")
    return "\n".join(lines)


def _budget_section(report: dict) -> list[str]:
    table = budget_table(report)
    if not table:
        return []
    return ["### What each Spark target leaves for t2's own work", "",
            "Core time per alert (wall time x cores, this run). t2's own work is `t2` (or `t2, Fink cuts`) minus "
            "`t2_io_only`, the module with the same input columns and output column and no work; the work a "
            "target allows is the time it leaves beyond `t2_io_only`'s. The interpreter column is the LiteRT "
            "call alone from the one-process profile below (for the cuts row, times the share of alerts the cuts "
            "let through): the part of the work the model's architecture fixes (two transformer blocks since "
            "the real-sky issue: about twice one block's time).", "", table, ""]


def _targets_notes(report: dict) -> list[str]:
    """What the SuperNNova comparison means, and which measure to trust on a shared machine."""
    modules = report["modules"]
    lines = []
    snn, onsky = modules.get("snn"), modules.get("t2_onsky")
    if snn and onsky and onsky.get("classified"):
        passed = onsky["classified"]
        share = passed / onsky["alerts"]
        lines.append(f"* SuperNNova runs its network only on the alerts that pass Fink's cuts ({share:.0%} of this "
                     f"input: t2 with the same cuts classifies {passed:,}); the other alerts cost it a vectorised "
                     "mask. `t2, every alert` classifies all of them, so only `t2, Fink cuts` compares like with like.")
        if snn.get("alerts_per_cpu_s") and modules.get("t2", {}).get("alerts_per_cpu_s"):
            snn_us = 1e6 / snn["alerts_per_cpu_s"] / share
            t2_us = 1e6 / modules["t2"]["alerts_per_cpu_s"]
            lines.append(f"* Per alert actually classified (CPU time): SuperNNova about {snn_us:,.0f} us, t2 about "
                         f"{t2_us:,.0f} us (t2 measured with every alert classified).")
    lines.append("* The wall-time ratios move with the load other processes put on the machine during each module; "
                 "the CPU-time ratios do not, and are the ones to compare between runs.")
    return lines + [""]


def _method(report: dict) -> list[str]:
    config, inputs = report["config"], report["input"]
    excluded = "; ".join(f"{k} ({v})" for k, v in report.get("excluded", {}).items())
    return [
        f"* **Input**: the {inputs['real_alerts']} real ZTF alerts of `data/alerts_sample.parquet` and "
        "`../shared/data/ztf_alerts/*.parquet` (schemas 3.3 and 4.02, raw and Fink-enriched; "
        f"{inputs['entries_per_alert']['median']:.0f} history entries per alert in the median, up to "
        f"{inputs['entries_per_alert']['max']}), replicated in order to {inputs['alerts']:,} alerts, each copy "
        "with a fresh `candid`. Fink's `c*` columns (history then current value, as fink-utils `concat_col`) and "
        "the candidate fields the modules read are built once with pyarrow (ZTF Avro types) and cached as parquet. "
        f"`roid`: {inputs['roid_source']}. `cdsxmatch`: {inputs['cdsxmatch_source']} (the replicated sample is "
        "therefore not a night's mix: it is richer in Fink-enriched, cross-matched alerts).",
        f"* **Spark** {config.get('spark')}, one session for everything: `{config.get('master')}`; the input read, "
        f"repartitioned into {config.get('partitions')} partitions and cached, as fink-science-perf does; "
        "`spark.sql.execution.arrow.pyspark.enabled=true`, `spark.sql.execution.arrow.maxRecordsPerBatch="
        f"{config.get('arrow_max_records_per_batch'):,}` (fink-science-perf's values); one BLAS/OpenMP thread per "
        "Python worker (one task per core, like Fink's one-core executors). One untimed no-op pass first starts "
        "the Python workers.",
        f"* **Measure** (fink-science-perf's): wall time of `df.withColumn(c, udf(*cols)).select(c).toPandas()`, "
        f"{config.get('repeats')} times per module; **alerts/s/core = alerts / median seconds / cores**. "
        "\"On-sky\": every alert counts, also those a module's cuts reject cheaply. The first repeat of a module "
        "includes its imports and model loads in each worker; the median does not. **alerts/CPU-s** = alerts / "
        "CPU seconds (user + system) of the driver, the JVM and the Python workers during the median repeat: "
        "unlike wall time it does not drop when other processes take the cores.",
        "* **t2**: `fink_t2.spark.processor.make_t2_udf` on the columns `apply_t2` passes: with no cuts (every alert "
        "with data classified) the six light-curve columns `cjd, cfid, cmagpsf, csigmapsf, cdiffmaglim, cisdiffpos`; "
        "with `Cuts(enabled=True)` (Fink's t2/SuperNNova cuts: >= 2 detections, history <= 90 d, `roid != 3`, "
        "extragalactic-compatible `cdsxmatch`) also `jdstarthist, roid, cdsxmatch`. Diagnostics: `t2_scores_only` "
        "is the same scoring returning one double, to price the `t2` output column; `t2_io_only` takes t2's "
        "columns and returns a constant `t2` struct without scoring, to price moving t2's data.",
        "* **Fink-deployed t2** (the \"before\"): `fink_t2.bench.fink_deployed.deployed_pandas_udf_body` in a pandas "
        "UDF: the deployed TFLite model (fink-science 7.4.0) opened inside the UDF body, then per alert a george GP "
        "fit with L-BFGS-B, per-object robust scaling and one `invoke` (REFERENCE section 4, faults 4 and 5); on every "
        "alert it accepts (>= 2 detections, g and r), and with Fink's cuts first.",
        "* **Fink's modules** from the PyPI wheel fink-science 7.4.0, with the arguments of Fink's ZTF science stage "
        "(`fink_broker/ztf/science.py`): SuperNNova `snn_ia(candid, cjd, cfid, cmagpsf, csigmapsf, roid, cdsxmatch, "
        "jdstarthist, 'snn_snia_vs_nonia')`; asteroids `roid_catcher(cjd, cmagpsf, ndethist, sgscore1, ssdistnr, "
        "distpsnr1)`; fast transient `magnitude_rate(magpsf, sigmapsf, jd, jdstarthist, fid, cmagpsf, csigmapsf, "
        f"cjd, cfid, cdiffmaglim, {FAST_TRANSIENT_SAMPLES}, None)`; light-curve features `extract_features_ad("
        "cmagpsf, cjd, csigmapsf, cfid, objectId, cdistnr, cmagnr, csigmagnr, cisdiffpos)` (a row-at-a-time Python "
        "UDF); anomaly `anomaly_score(lc_features, '')` (the public model; Fink runs six) on `lc_features` computed "
        "once beforehand, untimed, through a wrapper that gives `pandas.read_csv` back the `squeeze` argument "
        "pandas 2 removed (pyspark 4 needs pandas >= 2.2). Left out, their packages not being on PyPI: "
        f"{excluded}.",
        f"* **Smaller sample**: the slow modules (Fink-deployed t2, fast transient) run on the first "
        f"{config.get('slow_alerts'):,} alerts of the same input (every real alert about "
        f"{config.get('slow_alerts', 0) / max(inputs['real_alerts'], 1):.1f} times); their rates are per alert like "
        "the others, from fewer alerts.",
        "* **no-op**: a pandas UDF over `cjd, cfid, cmagpsf, csigmapsf` returning 0.0, for reference. The ceiling "
        "t2 is judged against is `t2_io_only`: the same input columns and the same `t2` output type as t2, no "
        "work (the old \">= 0.5 of the no-op\" target is retired: docs/model_search.md, \"The no-op ceiling "
        "target\").",
        "* **Measures** (each Spark module timed under each, back to back, in the same session): `topandas` = "
        "Fink's `df.withColumn(c, udf).select(c).toPandas()` (the driver converts every output row); `noop` = "
        "`df.withColumn(c, udf).write.format(\"noop\").mode(\"overwrite\").save()` (executor side, as "
        "fink-broker's Rubin stage doctests: every row computed, nothing collected); `parquet` = the same enriched "
        "frame written as parquet to a temporary directory (every cached input column is written too, as the "
        "broker stores the enriched alerts, so a module is a smaller share of it). Each measure's write path is "
        "run once untimed first. CPU time: user + system of the driver, the JVM and the Spark Python workers, from "
        "`/proc/<pid>/stat` (a worker that exits is counted through its parent's reaped-children time; "
        "`getrusage(RUSAGE_CHILDREN)` would miss the live JVM and workers).",
        "* **classify**: `fink_t2.scoring.classify_with_reasons` on the whole input as one pandas frame in the driver "
        "process (one core, one thread; it scores in chunks of 10,000 alerts), then the same stages timed apart, "
        "chunk by chunk: preparation (alert arrays -> observations -> model input) and model (`T2Model.predict`).",
        "* **Worker probe**: a fresh `python -c` process imports `fink_t2.scoring`, classifies one alert (time from "
        "launch; peak RSS from `VmHWM`; TensorFlow must stay unimported), then whole batches the size of Spark's "
        "default Arrow batch and of this run's, then imports pyspark as a Spark worker has it.",
        "* **Profile**: the worker's steps on one batch, timed stage by stage and under cProfile, in one process.",
    ]


#: The ZTF report's pointer to the Rubin one (its own run, its own file).
RUBIN_LINK = ("Rubin alerts (six-band model beside Fink's Rubin SuperNNova): "
              "[performance_rubin.md](performance_rubin.md), `fink-t2 bench --survey rubin`.")


def write_report(report: dict, path: str | Path, plot: str | Path | None = None, json_path: str | Path | None = None,
                 archive: dict | None = None) -> Path:
    """``docs/performance.md`` from a run: method, results, targets, profile, LSST arithmetic, machine."""
    path = Path(path)
    machine, model, modules = report["machine"], report["model"], report["modules"]
    seconds = report["config"].get("duration_s")
    duration = f"this run took {seconds / 60:.0f} minutes on {report['config'].get('cores')} cores, " if seconds else ""
    cpu_count = machine.get("cpu_count")
    load_start = (machine.get("load_average_start") or [None])[0]
    load_end = (machine.get("load_average_end") or [None])[0]
    command = report.get("command") or ("fink-t2 bench --json benchmarks/results/throughput.json "
                                        "--plot docs/throughput.png --report docs/performance.md")
    lines = [
        "# Throughput of t2 against Fink's science modules", "",
        f"Generated by `fink-t2 bench` on {report['generated']}: do not edit by hand, rerun it ({duration}in an "
        "environment with the `bench` extra; without it the Fink modules are skipped):", "",
        "```bash", command, "```", "",
        f"**Measured under load**: {cpu_count}-core machine shared with other jobs (load average "
        f"{_fmt(load_start, '.2f')} at the start, {_fmt(load_end, '.2f')} at the end): every rate is a lower bound; "
        "ratios between modules of this one run, and the CPU-time columns, are the figures to compare.", "",
        f"Model measured: `{Path(model['path']).name}`, {model['size_bytes']:,} bytes, sha256 `{model['sha256']}`, "
        f"input {model['input_shape'][0]} time steps x {model['input_shape'][1]} channels, variant "
        f"`{model.get('variant')}`, {model.get('num_threads')} interpreter thread. Rerun the command whenever the "
        "shipped model changes.", "",
        RUBIN_LINK, "",
        "## Method", "", *_method(report), "",
        "## Results", "", results_table(report, markdown=True), "",
    ]
    if report["config"].get("measures"):
        lines += [f"### Every Spark module under each measure ({', '.join(report['config']['measures'])})", "",
                  "Measured side by side in this one run (each module: all its measures back to back); the "
                  "ratios divide rates of the same measure. The table above is the first measure.", "",
                  measures_table(report, markdown=True), "",
                  "CPU seconds of the median repeat by process: the driver (this Python process: `toPandas` "
                  "converts every output row here), the JVM, and the Spark Python workers (`pyspark.daemon` and "
                  "its forked workers), read from `/proc/<pid>/stat` (user + system + reaped children):", "",
                  cpu_roles_table(report, markdown=True), ""]
    if plot:
        rel = os.path.relpath(Path(plot).resolve(), path.resolve().parent)
        lines += [f"![alerts/s/core per module, log scale, with Fink's 75 alerts/s/core ZTF line]({rel})", ""]
    skipped = report.get("skipped") or {}
    if skipped:
        lines += ["Skipped in this run: " + "; ".join(f"`{k}`: {v}" for k, v in skipped.items()) + ".", ""]
    failed = report.get("failed") or {}
    if failed:
        lines += ["Failed in this run: " + "; ".join(f"`{k}`: {v}" for k, v in failed.items()) + ".", ""]
    classify = modules.get("classify")
    if classify:
        split = classify["split"]
        lines += [f"`classify` without Spark: {classify['alerts_per_s_per_core']:,.0f} alerts/s end to end on one "
                  f"core; measured apart, preparation runs at {split['preparation_alerts_per_s']:,.0f} alerts/s and "
                  f"the model at {split['model_alerts_per_s']:,.0f} alerts/s (preparation "
                  f"{split['preparation_share']:.0%} of their sum).", ""]
    worker = report.get("worker")
    if worker:
        batches = "; ".join(f"{b['alerts']:,} alerts: {b['maxrss_mb']:.0f} MB ({b['seconds']:.2f} s)"
                            for b in worker["batches"])
        lines += [f"Fresh worker: Python running {worker['interpreter_start_s']:.2f} s after launch, first alert "
                  f"classified {worker['first_alert_s']:.2f} s after launch with a peak RSS of "
                  f"{worker['maxrss_mb_first_alert']:.0f} MB; peak RSS after whole batches: {batches}; with pyspark "
                  f"imported as well: {worker['maxrss_mb_with_pyspark']:.0f} MB. TensorFlow imported: "
                  f"{worker['tensorflow_imported']}.", ""]
    lines += ["## Targets", "", targets_table(report, markdown=True), ""]
    lines += _targets_notes(report)
    lines += _budget_section(report)
    lines += ["## Where t2's time goes", ""]
    lines += _profile_section(report)
    lines += _at_scale(report, archive)
    lines += _arithmetic(report, archive)
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    load_start, load_end = machine.get("load_average_start"), machine.get("load_average_end")
    lines += ["", "## Machine and noise", "",
              f"{machine['cpu_count']} cores ({machine['cpu']}), {machine['platform']}, Python {machine['python']}, "
              f"{machine.get('java')}. Load average (1 min): {load_start[0] if load_start else float('nan'):.2f} at "
              f"the start, {load_end[0] if load_end else float('nan'):.2f} at the end. This machine is shared: other "
              "processes take cores during the run, so every rate is a lower bound, and the min-max columns show the "
              "spread between repeats. Ratios between modules measured in the same run are the robust figures.", "",
              f"Versions: {versions}.", ""]
    if json_path:
        rel = os.path.relpath(Path(json_path).resolve(), path.resolve().parent)
        lines += [f"Every number of this run: [{Path(json_path).name}]({rel}).", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


_ARITHMETIC_MODULES = ("t2", "t2_onsky", "t2_io_only", "snn", "noop")


def _at_scale(report: dict, archive: dict | None) -> list[str]:
    """The batch scorer on a replicated archive (``benchmarks/archive_scale.py``), if its result is given."""
    if not archive:
        return []
    rss = archive.get("peak_rss_mb", {})
    return ["", "## At scale: the batch scorer on a replicated archive", "",
            f"`{archive['command']}` (by `{archive.get('script', 'benchmarks/archive_scale.py')}`, "
            f"{archive.get('generated', '')}): {archive['alerts']:,} alerts "
            f"({archive['real_alerts']} real alerts of "
            f"`{archive['source']}` replicated, each copy with a new unique `candid`; "
            f"{archive['input_bytes'] / 1e9:.2f} GB of parquet in {archive['input_files']} files) scored with "
            f"`--engine spark` on `{archive['master']}`, under load from other jobs on the machine.", "",
            "| alerts | wall s (whole command) | alerts/s | alerts/s/core | peak Python worker RSS | peak JVM RSS | "
            "output candids = input candids |", "|---|---|---|---|---|---|---|",
            f"| {archive['alerts']:,} | {archive['seconds']:.1f} | {archive['alerts_per_s']:,.0f} | "
            f"{archive['alerts_per_s_per_core']:,.0f} | {_fmt(rss.get('python_workers'), ',.0f')} MB | "
            f"{_fmt(rss.get('jvm'), ',.0f')} MB | {archive['candids_match']} ({archive['output_rows']:,} rows, "
            f"{archive['output_unique_candids']:,} unique) |", "",
            "Wall time is the whole `fink-t2 score` process: Spark start-up, reading the raw alerts (every field "
            "of `candidate` and `prv_candidates`; the sample has no cutouts), flattening the histories, t2, and "
            "writing every input column plus `t2` as parquet. Peak RSS is the peak resident set (`VmHWM`, sampled "
            "every 0.5 s) of any one Spark Python worker and of the JVM; the job runs with Spark's default Arrow "
            "batches of 10,000 alerts, so the worker figure is the worker-RSS "
            "target measured inside Spark itself (the probe above measures it in a fresh process). The JVM's "
            "resident set grows towards its heap limit (`--driver-memory`): it says what the JVM was allowed, "
            "not what t2 needs.", ""]


def _arithmetic(report: dict, archive: dict | None) -> list[str]:
    """Cores for LSST's night, ZTF's peak night and ZTF's 600 alerts/s burst, from the measured rates."""
    lsst = report.get("lsst", {})
    if not lsst:
        return []
    modules = report["modules"]
    lines = ["", "## LSST and ZTF arithmetic", "",
             f"From the measured rates R (alerts/s/core): cores busy all night = alerts / R / night seconds. "
             f"Assumptions: LSST {lsst['alerts_per_night']:,} alerts a night (REFERENCE.md) over a "
             f"{lsst['night_hours']:g}-hour night; ZTF's peak night {lsst['ztf_peak_night_alerts']:,} alerts over "
             f"{lsst['ztf_night_hours']:g} hours (an assumption, not in REFERENCE.md: the arithmetic scales linearly "
             f"with it); ZTF's burst requirement {lsst['ztf_burst_rate']:g} alerts/s (600 alerts of an exposure in "
             "1 s, REFERENCE.md). Alerts spread evenly, no headroom: bursts and latency need more. On this "
             "2-core machine under load the wall-time rates are lower bounds; the last column uses the CPU time "
             "the work took instead (driver + JVM + Python workers), what it needs on cores of its own.", "",
             "| module | measure | alerts/s/core | cores, LSST night | cores, ZTF peak night | "
             "cores, ZTF 600 alerts/s | alerts/CPU-s | cores, LSST night, from CPU time |",
             "|---|---|---|---|---|---|---|---|"]
    for name in _ARITHMETIC_MODULES:
        item = lsst["modules"].get(name)
        if not item:
            continue
        for measure, c in (item.get("measures") or {"main": item}).items():
            lines.append(f"| {modules[name]['label']} | {measure} | {c['alerts_per_s_per_core']:,.0f} | "
                         f"{c['cores_for_night']:,.3f} | {c['cores_for_ztf_peak_night']:,.4f} | "
                         f"{c['cores_for_ztf_burst']:,.3f} | {_fmt(c.get('alerts_per_cpu_s'))} | "
                         f"{_fmt(c.get('cpu_cores_for_night'), ',.3f')} |")
    if archive:
        rate = archive["alerts_per_s_per_core"]
        night = lsst["alerts_per_night"] / rate / 3600.0 / lsst["night_hours"]
        peak = lsst["ztf_peak_night_alerts"] / rate / 3600.0 / lsst["ztf_night_hours"]
        lines.append(f"| `fink-t2 score --engine spark`, whole job (read raw alerts, t2, write parquet) | archive | "
                     f"{rate:,.0f} | {night:,.3f} | {peak:,.4f} | {lsst['ztf_burst_rate'] / rate:,.3f} | - | - |")
    return lines


# --------------------------------------------------------------------------- a survey's own report (Rubin)

#: Ratios a survey's report gives per measure: (label, module, reference).
SURVEY_RATIOS: tuple[tuple[str, str, str, float | None], ...] = (
    ("t2 / t2_io_only (same I/O, no work)", "t2", IO_CEILING_MODULE, TARGET_VS_IO_CEILING),
    ("t2 / SuperNNova", "t2", "snn", TARGET_RUBIN_VS_SNN),
    ("t2 / no-op (4 columns in, 1 double out)", "t2", CEILING_MODULE, None),
    ("t2_io_only / no-op", IO_CEILING_MODULE, CEILING_MODULE, None),
    ("SuperNNova / no-op", "snn", CEILING_MODULE, None),
)


def survey_ratios_table(report: dict, markdown: bool = False) -> str:
    """Each ratio of :data:`SURVEY_RATIOS` under each measure of the run, wall (alerts/s/core) and CPU
    (alerts per CPU-second), both modules from the same run and the same measure."""
    measures = report["config"].get("measures") or []
    header = ["ratio", "target"] + [f"{m} {kind}" for m in measures for kind in ("wall", "CPU")]
    rows = []
    for label, a, b, threshold in SURVEY_RATIOS:
        ratios = ((report["modules"].get(a) or {}).get("measures") or {})
        if b not in report["modules"]:
            continue
        row = [label, "-" if threshold is None else f">= {threshold:g}"]
        for m in measures:
            item = (ratios.get(m) or {}).get("ratio_to", {})
            wall = item.get(b)
            mark = "" if threshold is None or wall is None else (" (met)" if wall >= threshold else " (not met)")
            row += [_fmt(wall, ".3f") + mark, _fmt(item.get(b + "_cpu"), ".3f")]
        rows.append(row)
    return _table(header, rows, markdown)


def _load_line(report: dict) -> str:
    machine = report["machine"]
    start = machine.get("load_average_start") or [None, None, None]
    end = machine.get("load_average_end") or [None, None, None]
    return (f"load average (1, 5, 15 min) at the start {', '.join(_fmt(v, '.2f') for v in start)}, at the end "
            f"{', '.join(_fmt(v, '.2f') for v in end)}, on {machine.get('cpu_count')} cores")


def print_survey_summary(report: dict, stream=None) -> None:
    """A survey run (Rubin) for the terminal: every module under every measure, the ratios, the load."""
    stream = stream or sys.stdout
    config = report["config"]
    print(f"\n{config.get('survey')} throughput ({config.get('alerts'):,} alerts, local[{config.get('cores')}], "
          f"median of {config.get('repeats')})\n", file=stream)
    print(measures_table(report), file=stream)
    print("\nRatios (same run, same measure):\n", file=stream)
    print(survey_ratios_table(report), file=stream)
    print("\nCPU seconds by process (median repeat):\n", file=stream)
    print(cpu_roles_table(report), file=stream)
    for name, reason in report.get("skipped", {}).items():
        print(f"skipped {name}: {reason}", file=stream)
    for name, reason in report.get("failed", {}).items():
        print(f"FAILED {name}: {reason}", file=stream)
    print("\n" + _load_line(report), file=stream)


def _classified_line(report: dict) -> str:
    """How many alerts each module judged (from its ``toPandas`` output, outside the timed section)."""
    parts = []
    for name, module in report["modules"].items():
        if "classified" in module:
            parts.append(f"`{name}` {module['classified']:,} of {module['alerts']:,} classified")
        if "scored_finite" in module:
            parts.append(f"`{name}` {module['scored_finite']:,} of {module['alerts']:,} scored")
    if not parts:
        return ""
    text = ("Output (last `toPandas` repeat): " + "; ".join(parts) + ". t2 declines, with a reason, the alerts "
            "it cannot judge (too few detections) and runs its network only on the others; t2_io_only returns "
            "its constant struct for every alert")
    t2, snn = report["modules"].get("t2", {}), report["modules"].get("snn", {})
    if "classified" in t2 and "scored_finite" in snn:
        text += (f"; so t2's network ran on {t2['classified'] / t2['alerts']:.0%} of the alerts, SuperNNova's on "
                 f"{snn['scored_finite'] / snn['alerts']:.0%}")
    return text + "."


def write_survey_report(report: dict, path: str | Path, json_path: str | Path | None = None) -> Path:
    """``docs/performance_rubin.md`` from a survey run: command, input, model, tables, ratios, load."""
    path = Path(path)
    config, model, facts = report["config"], report["model"], report["input"]
    survey = config.get("survey")
    seconds = config.get("duration_s")
    command = report.get("command") or (f"fink-t2 bench --survey {survey} --json "
                                        f"benchmarks/results/throughput_{survey}.json --report {path}")
    entries = facts.get("entries_per_alert", {})
    files = ", ".join(f"`{Path(f).name}`" for f in facts.get("files", []))
    known = facts.get("host_z_known")
    host_z = (f"known for {known} of the {facts.get('real_alerts')} real alerts" if known is not None
              else "null where an alert's diaObject carries no redshift, as in the sample's")
    lines = [
        f"# Throughput on {survey.capitalize()} alerts: t2's six-band model beside Fink's Rubin SuperNNova", "",
        f"Generated by `fink-t2 bench --survey {survey}` on {report['generated']}: do not edit by hand, rerun it"
        + (f" (this run took {seconds / 60:.1f} minutes)" if seconds else "") + ":", "",
        "```bash", "nice -n 10 " + command if not command.startswith("nice") else command, "```", "",
        f"**Measured under load**: {_load_line(report)}. The machine is shared with other jobs: every rate is a "
        "lower bound; the ratios between modules of this one run, and the CPU-time columns, are the figures "
        "to compare.", "",
        "## Input", "",
        f"{facts.get('real_alerts')} real Rubin alerts ({files}; {_fmt(entries.get('mean'), '.1f')} sources per "
        f"alert on average, median {_fmt(entries.get('median'), '.0f')}, "
        f"max {entries.get('max')}) replicated to {facts.get('alerts'):,} alerts, each copy with a new unique "
        "`diaSourceId`. The columns are Fink's Rubin `c*` columns (`cmidpointMjdTai, cband, cpsfFlux, cpsfFluxErr`, "
        "`prvDiaSources` then `diaSource`, as fink-broker's Rubin stage builds them with `concat_col`), built by "
        f"t2's own Rubin reader, and `host_z` from `diaObject` ({host_z}). The input is cached "
        f"in {config.get('partitions')} partitions before timing.", "",
        "## Modules", "",
        "* `noop`: a pandas UDF over the four `c*` columns returning one double (0.0): what Spark alone costs.",
        "* `t2_io_only`: t2's exact Rubin inputs (the four `c*` columns and `host_z`) in, the `t2` struct out "
        "(1/14 each), no work: the ceiling of t2 under each measure.",
        f"* `t2`: the column `apply_t2(df, survey=\"rubin\")` adds, every alert, model `{Path(model['path']).name}` "
        f"({model['size_bytes']:,} bytes, sha256 `{model['sha256']}`, input {model['input_shape'][0]} x "
        f"{model['input_shape'][1]}).",
        "* `snn`: fink-science 7.4.0's `fink_science.rubin.snn.processor.snn_ia_elasticc` (Fink's Rubin "
        "SuperNNova, SN vs other, trained on ELAsTiCC), called as its doctest does: `diaSourceId` then the four "
        "`c*` columns and the model name `elasticc_binary_broad/SN_vs_other`, the model file "
        "(`fink_science/data/models/snn_models/elasticc_binary_broad/SN_vs_other/model.pt`, which its default "
        "path also resolves to) passed explicitly as `model_ext`. Its `c*` columns are those of fink-broker's "
        "Rubin stage (history `prvDiaSources`; the doctest concatenates `prvDiaForcedSources`). It has no cuts: "
        "every alert goes through SuperNNova, as through t2.", "",
        "Measures (as for ZTF, [performance.md](performance.md)): `topandas` "
        "(`df.withColumn(c, udf).select(c).toPandas()`, Fink's fink-science-perf measure), `noop` "
        "(`df.withColumn(...).write.format(\"noop\")`, what fink-broker's Rubin stage doctests run) and `parquet` "
        "(the enriched frame written as parquet). Wall: alerts / median seconds / cores. CPU: alerts per "
        "CPU-second of the driver, the JVM and the Python workers together.", "",
        "## Results", "", measures_table(report, markdown=True), "",
        _classified_line(report), "",
        "## Ratios (one run, same measure)", "", survey_ratios_table(report, markdown=True), "",
        "## CPU by process (median repeat, seconds)", "", cpu_roles_table(report, markdown=True), "",
    ]
    if report.get("skipped") or report.get("failed") or report.get("excluded"):
        lines += ["## Not measured", ""]
        lines += [f"* skipped `{k}`: {v}" for k, v in report.get("skipped", {}).items()]
        lines += [f"* FAILED `{k}`: {v}" for k, v in report.get("failed", {}).items()]
        lines += [f"* {k}: {v}" for k, v in report.get("excluded", {}).items()]
        lines.append("")
    machine = report["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items() if v)
    lines += ["## Machine", "", f"{machine.get('cpu')}, {machine.get('cpu_count')} cores, Python "
              f"{machine.get('python')}, {machine.get('java')}; Spark {config.get('spark')} on {config.get('master')}, "
              f"Arrow batches of {config.get('arrow_max_records_per_batch'):,}; {versions}."
              + (f" Raw numbers: `{json_path}`." if json_path else ""), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
