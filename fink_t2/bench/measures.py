"""How a module's Spark column is timed: Fink's ``toPandas`` measure and the broker's executor-side sinks.

* ``topandas`` (fink-science-perf, comparable with Fink's published figures):
  ``df.withColumn(c, udf).select(c).toPandas()``; the driver converts every
  output row, so a struct output is charged its conversion to Python objects.
* ``noop``: ``df.withColumn(c, udf).write.format("noop").mode("overwrite").save()``,
  what fink-broker's Rubin stage doctests run: every row computed on the
  executors, nothing collected, nothing stored.
* ``parquet``: the same enriched frame written as parquet to a temporary
  directory, as the broker stores its science stage's output (every input
  column is written too, so the module is a smaller share of it).

CPU time is read from ``/proc/<pid>/stat`` (user + system, plus the reaped
children's) for the driver (this process), the JVM and the Spark Python
workers (``pyspark.daemon`` and the workers it forks; a worker that exits
during a measure is counted through the daemon's reaped-children time).
``resource.getrusage(RUSAGE_CHILDREN)`` would not do: it counts only children
that have exited and been waited for, never the live JVM or workers.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

MEASURES: tuple[str, ...] = ("topandas", "noop", "parquet")
MEASURE_LABELS: dict[str, str] = {
    "topandas": "toPandas (Fink's measure)",
    "noop": "noop sink (executor side)",
    "parquet": "parquet sink (executor side)",
}
#: Roles of the processes whose CPU time is counted.
ROLES: tuple[str, ...] = ("driver", "jvm", "python_workers")


def parse_measures(text: str | Sequence[str] | None) -> list[str]:
    """``"topandas,noop"`` -> ``["topandas", "noop"]`` (order kept, duplicates dropped); None: all three."""
    if text is None:
        return list(MEASURES)
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    unknown = [t for t in items if t not in MEASURES]
    if unknown or not items:
        raise ValueError(f"unknown or no measure(s) {unknown or items}; choose among {list(MEASURES)} "
                         "(comma-separated, e.g. --measures topandas,noop,parquet)")
    return list(dict.fromkeys(items))


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, CPU ticks: utime + stime + cutime + cstime, command name) of ``pid``; None if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            data = handle.read()
    except OSError:
        return None
    name = data[data.index("(") + 1:data.rindex(")")]
    fields = data[data.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[1]), sum(int(v) for v in fields[11:15]), name


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def process_cpu_seconds(root: int | None = None) -> dict[str, float] | None:
    """CPU seconds so far of the driver (``root``, default this process), the JVM and the Python workers.

    The JVM is any ``java`` descendant; the Python workers are every
    descendant of the JVM (the ``pyspark.daemon`` and the workers it forks).
    Other descendants (none in a local session) are counted as ``other``.
    Linux ``/proc`` only; None elsewhere.
    """
    root = os.getpid() if root is None else root
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        pids = [int(e) for e in os.listdir("/proc") if e.isdigit()]
    except (OSError, ValueError, AttributeError):
        return None
    info = {pid: s for pid in pids if (s := _stat(pid)) is not None}
    if root not in info:
        return None
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in info.items():
        children.setdefault(ppid, []).append(pid)
    out = {"driver": info[root][1] / ticks, "jvm": 0.0, "python_workers": 0.0, "other": 0.0}

    def walk(pid: int, role: str) -> None:
        for child in children.get(pid, []):
            if role == "other" and (info[child][2] == "java" or _cmdline(child).split(" ")[0].endswith("java")):
                child_role = "jvm"
            elif role in ("jvm", "python_workers"):
                child_role = "python_workers"
            else:
                child_role = role
            out[child_role] += info[child][1] / ticks
            walk(child, child_role)

    walk(root, "other")
    return out


def _cpu_delta(start: dict | None, end: dict | None) -> dict[str, float] | None:
    if start is None or end is None:
        return None
    delta = {role: end[role] - start[role] for role in end}
    delta["total"] = sum(delta.values())
    return delta


def run_measure(df, column, measure: str, sink_dir: Path | None = None):
    """One timed pass of ``measure``; returns the ``toPandas`` frame (None for the sinks)."""
    enriched = df.withColumn("_bench", column)
    if measure == "topandas":
        return enriched.select("_bench").toPandas()
    if measure == "noop":
        enriched.write.format("noop").mode("overwrite").save()
        return None
    if measure == "parquet":
        if sink_dir is None:
            raise ValueError("the parquet measure needs a directory to write to")
        enriched.write.mode("overwrite").parquet(str(sink_dir))
        return None
    raise ValueError(f"unknown measure {measure!r}; choose among {list(MEASURES)}")


def time_measure(df, column, measure: str, repeats: int, sink_dir: Path | None = None
                 ) -> tuple[list[float], object, list[dict] | None]:
    """Wall seconds per repeat, the last ``toPandas`` output (None for sinks), CPU seconds by role per repeat.

    The parquet output is removed after each repeat (outside the timed section).
    """
    seconds, cpu, out = [], [], None
    for _ in range(int(repeats)):
        cpu_start = process_cpu_seconds()
        start = time.perf_counter()
        result = run_measure(df, column, measure, sink_dir)
        seconds.append(time.perf_counter() - start)
        cpu.append(_cpu_delta(cpu_start, process_cpu_seconds()))
        if result is not None:
            out = result
        if measure == "parquet" and sink_dir is not None:
            shutil.rmtree(sink_dir, ignore_errors=True)
    return seconds, out, (None if any(c is None for c in cpu) else cpu)
