"""Cloud scale: the Azure 2017 VM trace replayed whole, and per-lease cost as KTH grows.

    .venv/bin/python bench/scale.py                 # both, medians of 3
    .venv/bin/python bench/scale.py --only azure    # the Azure replay only
    .venv/bin/python bench/scale.py --only kth --repeat 1

Azure: 410,276 VMs on 850 hosts x 64 CPUs x 256 GiB (the cluster that holds its mean
demand), best effort, EASY; wall time and peak RSS of the whole `cloudctl simulate` process.
KTH x N: the KTH-SP2 log repeated N times end to end (each copy's submit times shifted by the
log's span), EASY with user estimates; the replay's own time (`sim_wall_s`) per lease should
not grow with N.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT.parent / "shared" / "traces"
KTH = TRACES / "kth" / "KTH-SP2-1996-2.1-cln.swf"
AZURE = TRACES / "azure" / "azure-2017-vms.lwf.gz"
AZURE_CLUSTER = ["--nodes", "850", "--node-cpus", "64", "--node-memory", str(256 * 1024)]
CLOUDCTL = [str(ROOT / ".venv" / "bin" / "cloudctl")]
if not Path(CLOUDCTL[0]).exists():
    CLOUDCTL = [sys.executable, "-m", "cloudctl"]


def run_child(cmd: list[str]) -> tuple[float, float, int, dict[str, object]]:
    """(wall seconds, CPU seconds, peak RSS in MiB, JSON summary) of one `cloudctl simulate
    --json`. CPU time is what a shared machine measures fairly: wall time there is mostly
    the other processes' turn."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise SystemExit(f"scale: {' '.join(cmd)} failed: {err.read().decode().strip()}")
        out.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        return wall, cpu, usage.ru_maxrss // 1024, json.loads(out.read())


def repeated_kth(times: int, out_dir: Path) -> tuple[Path, int]:
    """KTH's log `times` times in a row, job numbers and submit times shifted per copy."""
    lines = KTH.read_text().splitlines()
    header = [line for line in lines if line.startswith(";")]
    jobs = [line.split() for line in lines if line.strip() and not line.startswith(";")]
    span = max(int(j[1]) for j in jobs) + 1
    count = len(jobs)
    rows = []
    for k in range(times):
        for j in jobs:
            row = list(j)
            row[0] = str(int(j[0]) + k * count)
            row[1] = str(int(j[1]) + k * span)
            rows.append(" ".join(row))
    path = out_dir / f"kth-x{times}.swf"
    path.write_text("\n".join(header + rows) + "\n")
    return path, count * times


def bench(label: str, args: list[str], leases: int, repeat: int) -> dict[str, object]:
    walls, cpus, rss, sims = [], [], [], []
    for _ in range(repeat):
        wall, cpu, peak, summary = run_child([*CLOUDCTL, "simulate", *args, "--json"])
        walls.append(wall)
        cpus.append(cpu)
        rss.append(peak)
        sims.append(float(summary["sim_wall_s"]))  # type: ignore[arg-type]
    wall = statistics.median(walls)
    cpu = statistics.median(cpus)
    sim = statistics.median(sims)
    return {"bench": label, "runs": repeat, "leases": leases, "median_wall_s": round(wall, 2),
            "leases_per_s": round(leases / wall), "median_cpu_s": round(cpu, 2),
            "leases_per_cpu_s": round(leases / cpu), "peak_rss_mib": max(rss),
            "median_sim_wall_s": round(sim, 2), "us_per_lease": round(sim / leases * 1e6, 1),
            "cpu_us_per_lease": round(cpu / leases * 1e6, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="azure or kth")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--times", default="1,2,4", help="KTH copies to measure (1,2,4)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    if args.only in ("", "azure"):
        results.append(bench("Azure 2017, 850 x 64 CPUs, EASY",
                             [str(AZURE), *AZURE_CLUSTER], 410_276, args.repeat))
    if args.only in ("", "kth"):
        with tempfile.TemporaryDirectory() as tmp:
            for times in (int(t) for t in args.times.split(",")):
                path, leases = repeated_kth(times, Path(tmp))
                results.append(bench(f"KTH x{times}, EASY, user estimates", [str(path)],
                                     leases, args.repeat))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        print(f"{r['bench']:36} {r['leases']:>8} leases  wall {r['median_wall_s']:>7} s "
              f"({r['leases_per_s']:>6}/s)  CPU {r['median_cpu_s']:>7} s "
              f"({r['cpu_us_per_lease']:>6} us/lease)  peak {r['peak_rss_mib']:>4} MiB  "
              f"replay wall {r['us_per_lease']:>6} us/lease", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
