"""cloudctl's benchmarks, one command: `.venv/bin/python bench/run.py [--quick] [--json]`.

Medians of several runs, all measured in one process tree so ratios are comparable on a
noisy shared machine:
- KTH-SP2 EASY (full log, and its first half): jobs/s wall time including start-up, peak RSS;
- the independent count-based EASY (bench/easy_reference.py) on the same log, for scale;
- 30-day Blue + one set of injected ARs, suspension on;
- AR admission decisions against 1,000 and 2,000 hosts holding 10,000 and 20,000 leases.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT.parent / "shared" / "traces"
KTH = TRACES / "kth" / "KTH-SP2-1996-2.1-cln.swf"
BLUE = TRACES / "blue" / "30days.swf"
BLUE_AR = TRACES / "blue" / "injected-30days" / "work_10-dur_3h-size_2medium.lwf"
CLOUDCTL = [str(ROOT / ".venv" / "bin" / "cloudctl")]
if not Path(CLOUDCTL[0]).exists():
    CLOUDCTL = [sys.executable, "-m", "cloudctl"]


def run_child(cmd: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in MiB, stdout) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed ({proc.returncode}): {err.strip()}")
    return wall, usage.ru_maxrss // 1024, out


def simulate_bench(label: str, args: list[str], jobs: int, repeat: int) -> dict[str, object]:
    walls, rss, summary = [], [], {}
    for _ in range(repeat):
        wall, peak, out = run_child(CLOUDCTL + ["simulate", *args, "--json"])
        walls.append(wall)
        rss.append(peak)
        summary = json.loads(out)
    wall = statistics.median(walls)
    return {"bench": label, "runs": repeat, "median_wall_s": round(wall, 3),
            "jobs": jobs, "jobs_per_s": round(jobs / wall), "peak_rss_mib": max(rss),
            "mean_wait_s": summary.get("mean_wait_s"),
            "mean_bounded_slowdown": summary.get("mean_bounded_slowdown"),
            "utilization": summary.get("utilization"), "sim_wall_s": summary.get("sim_wall_s")}


def half_trace(path: Path, out_dir: Path) -> tuple[Path, int, int]:
    lines = path.read_text().splitlines(keepends=True)
    header = [line for line in lines if line.startswith(";")]
    jobs = [line for line in lines if line.strip() and not line.startswith(";")]
    half = out_dir / "kth-first-half.swf"
    half.write_text("".join(header + jobs[: len(jobs) // 2]))
    return half, len(jobs) // 2, len(jobs)


def reference_easy(repeat: int) -> dict[str, object]:
    walls, out = [], ""
    for _ in range(repeat):
        wall, _, out = run_child([sys.executable, str(ROOT / "bench" / "easy_reference.py"),
                                  str(KTH), "requested"])
        walls.append(wall)
    return {"bench": "count-based EASY reference, KTH, requested", "runs": repeat,
            "median_wall_s": round(statistics.median(walls), 3), "result": out.strip()}


def ar_admission(n_hosts: int, n_leases: int, decisions: int, seed: int = 7) -> dict[str, object]:
    sys.path.insert(0, str(ROOT))
    from cloudctl.scheduler.config import SchedulerConfig
    from cloudctl.scheduler.core import Scheduler
    from cloudctl.scheduler.model import Capacity, HostSpec, LeaseRequest, LeaseType

    rng = random.Random(seed)
    hosts = [HostSpec(f"host-{i}", Capacity(8, 32768, 0)) for i in range(n_hosts)]
    sched = Scheduler(hosts, SchedulerConfig())
    horizon = 14 * 24 * 3600
    lease_id = 0

    def request() -> LeaseRequest:
        nonlocal lease_id
        lease_id += 1
        start = rng.randrange(3600, horizon)
        return LeaseRequest(id=lease_id, type=LeaseType.AR, submit=0, nodes=rng.randint(1, 8),
                            capacity=Capacity(rng.choice([1, 2, 4]),
                                              rng.choice([2048, 4096, 8192])),
                            duration=rng.choice([1800, 3600, 7200, 14400]), start=start,
                            preemptible=False)

    booked = 0
    while booked < n_leases:
        if sched.submit(request(), 0).accepted:
            booked += 1
    times = []
    accepted = 0
    for _ in range(decisions):
        req = request()
        started = time.perf_counter()
        decision = sched.submit(req, 0)
        times.append(time.perf_counter() - started)
        if decision.accepted:
            accepted += 1
            sched.cancel(req.id, 0)
    times.sort()
    return {"bench": f"AR admission, {n_hosts} hosts, {n_leases} leases", "decisions": decisions,
            "median_ms": round(statistics.median(times) * 1000, 3),
            "p90_ms": round(times[int(len(times) * 0.9)] * 1000, 3), "accepted": accepted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one run each, smaller AR bench")
    parser.add_argument("--json", action="store_true", help="print results as JSON lines")
    args = parser.parse_args()
    repeat = 1 if args.quick else 3
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        half, n_half, n_full = half_trace(KTH, Path(tmp))
        easy = ["--backfilling", "easy", "--estimates", "requested"]
        results.append(simulate_bench("KTH EASY full (user estimates)", [str(KTH), *easy],
                                      n_full, repeat))
        results.append(simulate_bench("KTH EASY first half", [str(half), *easy], n_half, repeat))
        results.append(simulate_bench("KTH EASY full (perfect estimates)",
                                      [str(KTH), "--backfilling", "easy", "--estimates", "actual"],
                                      n_full, repeat))
    results.append(reference_easy(repeat))
    blue_jobs = sum(1 for line in BLUE.read_text().splitlines() if line.strip())
    blue_ars = sum(1 for line in BLUE_AR.read_text().splitlines()
                   if line.strip() and not line.startswith("#"))
    results.append(simulate_bench("Blue 30 days + ARs, suspension on",
                                  [str(BLUE), "--inject", str(BLUE_AR), "--nodes", "144",
                                   "--suspension", "all"], blue_jobs + blue_ars, repeat))
    decisions = 100 if args.quick else 300
    results.append(ar_admission(1000, 10_000, decisions))
    results.append(ar_admission(2000, 20_000, decisions))
    machine = {"machine": platform.node(), "python": platform.python_version(),
               "cpus": os.cpu_count(), "platform": platform.platform()}
    if args.json:
        print(json.dumps(machine))
        for row in results:
            print(json.dumps(row))
        return
    print(f"machine: {machine}")
    for row in results:
        print(" | ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
