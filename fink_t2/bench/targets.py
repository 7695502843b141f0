"""What a benchmark run is judged against: the speed targets of the context issue, and the LSST / ZTF arithmetic."""

from __future__ import annotations

#: Fink's requirement for ZTF: 600 alerts per exposure processed in 1 s on 8 cores (REFERENCE section 5).
FINK_ZTF_RATE = 75.0
#: Alerts per night expected from LSST (REFERENCE section 5).
LSST_ALERTS_PER_NIGHT = 10_000_000
#: Targets of the context issue (they replace issue 14's six wall-time ratios, whose analysis was accepted):
#: classify on one core, t2 against the Fink-deployed procedure, and t2's CPU time per alert on every alert at
#: most SuperNNova's (on its cuts) in the same run, under each measure.
TARGET_CLASSIFY_RATE = 20_000.0
TARGET_VS_DEPLOYED = 100.0
TARGET_VS_SNN_CPU = 1.0
#: Issue 14's retired wall-time ratios: the same-I/O ceiling is reported, and the budgets below still say what
#: each would leave for t2's own work.
TARGET_VS_IO_CEILING = 0.6
TARGET_VS_SNN = 1.5
#: Rubin (issue 25 and the brief): t2 at least twice Fink's Rubin SuperNNova's rate in the same run, every measure.
TARGET_RUBIN_VS_SNN = 2.0
TARGET_ONSKY_VS_SNN = 2.0
TARGET_WORKER_RSS_MB = 300.0
TARGET_FIRST_ALERT_S = 1.0

#: Spark's default ``spark.sql.execution.arrow.maxRecordsPerBatch``.
SPARK_DEFAULT_ARROW_BATCH = 10_000


def _measure(report: dict, name: str, measure: str | None) -> dict | None:
    """A module's figures under ``measure`` (None: the run's main table), or None if not measured."""
    module = report["modules"].get(name)
    if not module:
        return None
    if measure is None:
        return module
    return (module.get("measures") or {}).get(measure)


def ratio(report: dict, a: str, b: str, measure: str | None = None, cpu: bool = False) -> float | None:
    """Rate of ``a`` over rate of ``b`` under one measure (wall time, or CPU time with ``cpu``)."""
    ma, mb = _measure(report, a, measure), _measure(report, b, measure)
    if not ma or not mb:
        return None
    key = "alerts_per_cpu_s" if cpu else "alerts_per_s_per_core"
    return ma[key] / mb[key] if ma.get(key) and mb.get(key) else None


def _item(target: str, measured, threshold: float | None, unit: str, higher_is_better: bool = True,
          measured_cpu: float | None = None, measure: str | None = None, judged_on_cpu: bool = False) -> dict:
    """One target; ``met`` is None where the run lacks the figure, or for a reported ratio (``threshold`` None)."""
    judged = measured_cpu if judged_on_cpu else measured
    met = None if judged is None or threshold is None else (
        judged >= threshold if higher_is_better else judged < threshold)
    return {"target": target, "measured": measured, "threshold": threshold, "unit": unit, "met": met,
            "measured_cpu": measured_cpu, "measure": measure, "judged_on": "cpu" if judged_on_cpu else "wall"}


def evaluate_targets(report: dict) -> list[dict]:
    """The targets against this run (``met`` None where the run lacks a module or a measure).

    classify's rate, and its ratio to the Fink-deployed procedure (per core, wall
    time); t2 / SuperNNova judged on CPU time (``measured_cpu``) under each measure
    the run has, its wall-time ratio beside it. t2 / Fink-deployed in Spark and
    the same-I/O ceiling (t2 / t2_io_only) are reported, not judged.
    """
    measures = report["config"].get("measures") or [None]
    items = []
    classify = report["modules"].get("classify")
    items.append(_item("classify without Spark, 1 core, end to end, shipped model",
                       classify["alerts_per_s_per_core"] if classify else None, TARGET_CLASSIFY_RATE, "alerts/s"))
    if "fink_deployed" in report["modules"]:
        items.append(_item("classify without Spark / Fink-deployed t2 (its procedure in Spark), per core",
                           ratio(report, "classify", "fink_deployed"), TARGET_VS_DEPLOYED, "x",
                           measured_cpu=ratio(report, "classify", "fink_deployed", cpu=True)))
    pairs = (("t2 (every alert) / SuperNNova (its cuts), CPU time", "t2", "snn", TARGET_VS_SNN_CPU, True),
             ("t2 (every alert) / t2_io_only (same I/O, no work), reported", "t2", "t2_io_only", None, False),
             ("t2 (every alert) / Fink-deployed t2, reported", "t2", "fink_deployed", None, False))
    for label, a, b, threshold, on_cpu in pairs:
        for measure in measures:
            if a == "t2" and b == "fink_deployed" and "fink_deployed" not in report["modules"]:
                continue  # judged when the slow reference was run
            items.append(_item(f"Spark [{measure or 'toPandas'}]: {label}", ratio(report, a, b, measure), threshold,
                               "x", measured_cpu=ratio(report, a, b, measure, cpu=True), measure=measure,
                               judged_on_cpu=on_cpu))
    worker = report.get("worker") or {}
    default_batch = [b for b in worker.get("batches", []) if b["alerts"] <= SPARK_DEFAULT_ARROW_BATCH]
    batch_rss = max(b["maxrss_mb"] for b in default_batch) if default_batch else None
    batch_size = max((b["alerts"] for b in default_batch), default=SPARK_DEFAULT_ARROW_BATCH)
    items += [
        _item(f"worker peak RSS, model loaded, Arrow batches of {batch_size:,} alerts", batch_rss,
              TARGET_WORKER_RSS_MB, "MB", higher_is_better=False),
        _item("worker start -> first alert classified", worker.get("first_alert_s"), TARGET_FIRST_ALERT_S, "s",
              higher_is_better=False),
    ]
    if worker:
        items.append({"target": "no TensorFlow import on the scoring path",
                      "measured": worker.get("tensorflow_imported"), "threshold": False, "unit": "",
                      "met": not worker.get("tensorflow_imported"), "measured_cpu": None, "measure": None})
    return items


def _us_per_alert(report: dict, name: str, measure: str | None) -> float | None:
    """Core time per alert (us, wall time x cores) of a module under one measure."""
    figures = _measure(report, name, measure)
    rate = (figures or {}).get("alerts_per_s_per_core")
    return 1e6 / rate if rate else None


def work_budgets(report: dict) -> list[dict]:
    """For each Spark ratio target and measure: the most core time per alert t2's own work may take to meet it.

    t2's own work is what a module costs beyond ``t2_io_only`` (the same input columns and output column,
    no work) in the same run and measure. A target on SuperNNova's rate ``R`` at ratio ``x`` leaves
    ``1 / (x R) - t2_io_only's time``; one on ``t2_io_only`` at ratio ``x`` leaves ``(1 / x - 1)`` times
    its time. A budget at or below zero means no module with t2's inputs and output column meets the
    target, whatever it computes. ``interpreter_us`` is what the LiteRT interpreter alone takes per alert
    in the run's one-process profile (scaled by the share of alerts the cuts let through for ``t2_onsky``),
    the part of the work the model's architecture fixes.
    """
    modules = report["modules"]
    profile_us = ((report.get("profile") or {}).get("stages_us_per_alert") or {}).get("interpreter")
    classified = (modules.get("t2") or {}).get("classified")
    classified_onsky = (modules.get("t2_onsky") or {}).get("classified")
    onsky_share = classified_onsky / classified if classified and classified_onsky is not None else None
    rows = []
    for measure in report["config"].get("measures") or [None]:
        io = _us_per_alert(report, "t2_io_only", measure)
        snn = _us_per_alert(report, "snn", measure)
        if io is None:
            continue
        for target, module, threshold, limit in (  # limit: the module's most time per alert
                ("t2 (every alert) / t2_io_only", "t2", TARGET_VS_IO_CEILING, io / TARGET_VS_IO_CEILING),
                ("t2 (every alert) / SuperNNova", "t2", TARGET_VS_SNN, snn / TARGET_VS_SNN if snn else None),
                ("t2 on Fink's cuts / SuperNNova", "t2_onsky", TARGET_ONSKY_VS_SNN,
                 snn / TARGET_ONSKY_VS_SNN if snn else None)):
            spent = _us_per_alert(report, module, measure)
            if limit is None or spent is None:
                continue
            interpreter = profile_us if module == "t2" else (
                profile_us * onsky_share if profile_us is not None and onsky_share is not None else None)
            rows.append({"measure": measure, "target": target, "threshold": threshold, "module": module,
                         "io_only_us": io, "budget_us": limit - io, "work_us": spent - io,
                         "interpreter_us": interpreter})
    return rows


#: Assumptions of the arithmetic (REFERENCE.md gives LSST's 10 million alerts a night and ZTF's
#: 600 alerts/s on 8 cores; the night lengths and ZTF's peak-night count are assumptions, stated as such).
LSST_NIGHT_HOURS = 10.0
ZTF_PEAK_NIGHT_ALERTS = 1_500_000
ZTF_NIGHT_HOURS = 8.0
ZTF_BURST_RATE = 8 * FINK_ZTF_RATE  # alerts/s: 600 alerts of an exposure processed in 1 s


def lsst_arithmetic(report: dict, alerts_per_night: int = LSST_ALERTS_PER_NIGHT,
                    night_hours: float = LSST_NIGHT_HOURS) -> dict:
    """Cores needed at the measured per-core rates: LSST's night, ZTF's peak night, ZTF's 600 alerts/s burst.

    Per module and per measure. ``cores_for_night`` = alerts / rate / night seconds (busy all night,
    no headroom); ``cores_for_ztf_burst`` = 600 / rate.
    """
    out = {"alerts_per_night": alerts_per_night, "night_hours": night_hours,
           "ztf_peak_night_alerts": ZTF_PEAK_NIGHT_ALERTS, "ztf_night_hours": ZTF_NIGHT_HOURS,
           "ztf_burst_rate": ZTF_BURST_RATE, "modules": {}}

    def cores(rate: float, cpu_rate: float | None) -> dict:
        core_hours = alerts_per_night / rate / 3600.0
        return {"alerts_per_s_per_core": rate, "core_hours_per_night": core_hours,
                "cores_for_night": core_hours / night_hours,
                "cores_for_ztf_peak_night": ZTF_PEAK_NIGHT_ALERTS / rate / 3600.0 / ZTF_NIGHT_HOURS,
                "cores_for_ztf_burst": ZTF_BURST_RATE / rate,
                # The same from CPU time (alerts per CPU-second): what the work needs on cores nobody else uses.
                "alerts_per_cpu_s": cpu_rate,
                "cpu_cores_for_night": alerts_per_night / cpu_rate / 3600.0 / night_hours if cpu_rate else None}

    for name, module in report["modules"].items():
        item = cores(module["alerts_per_s_per_core"], module.get("alerts_per_cpu_s"))
        item["measures"] = {m: cores(v["alerts_per_s_per_core"], v.get("alerts_per_cpu_s"))
                            for m, v in (module.get("measures") or {}).items()}
        out["modules"][name] = item
    return out
