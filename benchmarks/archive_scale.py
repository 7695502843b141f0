"""The batch scorer at scale: ``fink-t2 score --engine spark`` on a replicated 2-million-alert archive.

Replicates the real raw ZTF alerts of ``data/alerts_sample.parquet`` (every
field kept, ``candid`` and ``candidate.candid`` replaced by new unique values
per copy) into a parquet archive of ``--files`` files under ``--workdir``
(default ``/tmp``; never inside the repository), runs ``fink-t2 score
--engine spark`` on it as a separate process, and reports:

* alerts/s (whole command: Spark start-up, reading, flattening, t2, writing every
  input column plus ``t2``), and per core;
* peak RSS of the Spark Python workers and of the JVM, sampled from ``/proc`` every
  ``--interval`` s (``VmHWM`` of each process: the peak between two samples is not lost);
* whether the output holds exactly the input's candids (same count, no duplicate,
  none missing, none added).

    nice -n 10 python benchmarks/archive_scale.py [--alerts 2000000] [--json benchmarks/results/archive_scale.json]

``fink-t2 bench --report docs/performance.md`` includes the JSON's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "alerts_sample.parquet"


def _with_candid(table: pa.Table, candids: np.ndarray) -> pa.Table:
    """``table`` with ``candid`` and ``candidate.candid`` set to ``candids``."""
    out = table.set_column(table.column_names.index("candid"), "candid", pa.array(candids, type=pa.int64()))
    candidate = table.column("candidate").combine_chunks()
    kind = candidate.type
    children = [pa.array(candids, type=kind.field(i).type) if kind.field(i).name == "candid" else candidate.field(i)
                for i in range(kind.num_fields)]
    rebuilt = pa.StructArray.from_arrays(children, fields=list(kind), mask=candidate.is_null())
    return out.set_column(out.column_names.index("candidate"), "candidate", rebuilt)


def build_archive(folder: Path, n_alerts: int, n_files: int, source: Path = SAMPLE) -> dict:
    """``n_alerts`` replicated alerts in ``n_files`` parquet files; candids 1..n_alerts (all new, unique)."""
    real = pq.read_table(source)
    folder.mkdir(parents=True, exist_ok=True)
    per_file = -(-n_alerts // n_files)
    written = 0
    for index in range(n_files):
        count = min(per_file, n_alerts - written)
        if count <= 0:
            break
        rows = np.arange(written, written + count) % real.num_rows
        part = _with_candid(real.take(pa.array(rows)), np.arange(written + 1, written + count + 1, dtype=np.int64))
        pq.write_table(part, folder / f"part-{index:04d}.parquet")
        written += count
    files = sorted(folder.glob("*.parquet"))
    return {"alerts": written, "real_alerts": real.num_rows, "input_files": len(files),
            "input_bytes": int(sum(f.stat().st_size for f in files)), "source": str(source.relative_to(ROOT))}


def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return out


def _descendants(root: int) -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command name) of every live descendant of ``root``."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                data = handle.read()
        except OSError:
            continue
        table[int(entry)] = (int(data[data.rindex(")") + 2:].split()[1]), data[data.index("(") + 1:data.rindex(")")])
    tree, grown = {root}, True
    while grown:
        grown = False
        for pid, (ppid, _) in table.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grown = True
    return {pid: table[pid] for pid in tree if pid in table}


class PeakRss(threading.Thread):
    """Samples the peak RSS (``VmHWM``, MB) of the JVM and of each Python worker under ``root``."""

    def __init__(self, root: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak = {"driver": 0.0, "jvm": 0.0, "python_workers": 0.0}
        self.workers_seen: set[int] = set()
        self.done = threading.Event()

    def sample(self) -> None:
        tree = _descendants(self.root)
        java = {pid for pid, (_, name) in tree.items() if name == "java"}
        for pid, (ppid, _) in tree.items():
            if pid == self.root:
                role = "driver"
            elif pid in java:
                role = "jvm"
            else:
                parent = ppid
                while parent in tree and parent not in java and parent != self.root:
                    parent = tree[parent][0]
                if parent not in java:
                    continue  # a helper of the driver, not a Spark worker
                role = "python_workers"
                self.workers_seen.add(pid)
            self.peak[role] = max(self.peak[role], _status(pid).get("VmHWM", 0) / 1024.0)

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.interval)


def candid_check(input_dir: Path, output_dir: Path) -> dict:
    """Whether the output's candids are exactly the input's (as a multiset: count, duplicates, missing, extra)."""
    given = ds.dataset(str(input_dir), format="parquet").to_table(columns=["candid"]).column("candid").to_numpy()
    scored = ds.dataset(str(output_dir), format="parquet").to_table(columns=["candid"]).column("candid").to_numpy()
    given_set, scored_set = np.unique(given), np.unique(scored)
    return {"input_rows": int(len(given)), "output_rows": int(len(scored)),
            "output_unique_candids": int(len(scored_set)),
            "missing": int(len(np.setdiff1d(given_set, scored_set))),
            "extra": int(len(np.setdiff1d(scored_set, given_set))),
            "candids_match": bool(len(given) == len(scored) == len(scored_set) == len(given_set)
                                  and np.array_equal(given_set, scored_set))}


def t2_summary(output_dir: Path) -> dict:
    """How many output alerts t2 classified (top_class not null)."""
    table = ds.dataset(str(output_dir), format="parquet").to_table(columns=["t2"])
    top = pc.struct_field(table.column("t2").combine_chunks(), "top_class")
    return {"classified": int(len(top) - top.null_count)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2_000_000)
    parser.add_argument("--files", type=int, default=100, help="parquet files of the archive (default: %(default)s)")
    parser.add_argument("--workdir", default="/tmp/fink-t2-archive-scale",
                        help="archive and output (deleted at the end unless --keep; default: %(default)s)")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--interval", type=float, default=0.5, help="RSS sampling interval, s")
    parser.add_argument("--keep", action="store_true", help="keep the archive and the output")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    if ROOT in workdir.resolve().parents or workdir.resolve() == ROOT:
        parser.error("--workdir must be outside the repository (the archive is never committed)")
    archive, output = workdir / "archive", workdir / "scored"
    shutil.rmtree(workdir, ignore_errors=True)
    started = time.perf_counter()
    facts = build_archive(archive, args.alerts, args.files)
    facts["build_s"] = time.perf_counter() - started
    print(f"archive: {facts['alerts']:,} alerts in {facts['input_files']} files, {facts['input_bytes'] / 1e9:.2f} GB "
          f"({facts['build_s']:.0f} s)", flush=True)
    command = [sys.executable, "-m", "fink_t2.tools.cli", "score", str(archive), "--engine", "spark",
               "--output", str(output), "--master", args.master, "--no-progress"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYSPARK_SUBMIT_ARGS", f"--driver-memory {args.driver_memory} pyspark-shell")
    log = workdir / "score.log"
    start = time.perf_counter()
    with open(log, "wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
        sampler = PeakRss(process.pid, args.interval)
        sampler.start()
        code = process.wait()
        sampler.done.set()
        sampler.join()
    seconds = time.perf_counter() - start
    if code != 0:
        print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
        print(f"fink-t2 score failed (exit {code}); log: {log}", file=sys.stderr)
        return 1
    cores = int(args.master.split("[")[1].rstrip("]")) if "[" in args.master else 1
    check = candid_check(archive, output)
    result = {
        "script": "benchmarks/archive_scale.py", "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": "fink-t2 score ARCHIVE --engine spark --output OUT --master "
                   f"{args.master} --no-progress", "master": args.master, "cores": cores,
        "driver_memory": args.driver_memory, **facts, "seconds": seconds,
        "alerts_per_s": facts["alerts"] / seconds, "alerts_per_s_per_core": facts["alerts"] / seconds / cores,
        "peak_rss_mb": sampler.peak, "python_workers_seen": len(sampler.workers_seen),
        "output_bytes": int(sum(f.stat().st_size for f in output.rglob("*.parquet"))),
        **check, **t2_summary(output),
        "load_average_end": list(os.getloadavg()),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")
        print(f"wrote {args.json}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if check["candids_match"] else 1


if __name__ == "__main__":
    sys.exit(main())
