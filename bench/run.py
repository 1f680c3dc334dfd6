"""cloudctl's benchmarks, one command: `.venv/bin/python bench/run.py [--quick] [--json]`.

Medians of several runs, all measured in one process tree so ratios are comparable on a
noisy shared machine:
- KTH-SP2 EASY (full log, and its first half): jobs/s wall time including start-up, peak RSS;
- the independent count-based EASY (bench/easy_reference.py) on the same log, for scale;
- 30-day Blue + one set of injected ARs, suspension on;
- AR admission decisions against 1,000 and 2,000 hosts holding 10,000 and 20,000 leases;
- the operating CLI end to end (subprocess wall time): `cloudctl --version`, `lease list
  --json` over 10,000 leases, and `lease request --type ar` against 1,000 hosts and 10,000
  live reservations (stores filled through the store and the scheduler, not the CLI);
- image transfer over SSH to a real sshd in a network namespace (tests/sshd.py; loopback when
  namespaces are unavailable): connect, exec, 1 MiB and 64 MiB SFTP puts, a cache hit.

`--only NAME` runs the benchmarks whose name contains NAME (e.g. `--only cli`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
    from cloudctl.policies import policy_set

    from cloudctl.scheduler.config import SchedulerConfig
    from cloudctl.scheduler.core import Scheduler
    from cloudctl.scheduler.model import Capacity, HostSpec, LeaseRequest, LeaseType

    rng = random.Random(seed)
    hosts = [HostSpec(f"host-{i}", Capacity(8, 32768, 0)) for i in range(n_hosts)]
    sched = Scheduler(hosts, SchedulerConfig(), policy_set(SchedulerConfig()))
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


# -- the operating CLI, end to end -------------------------------------------------------------

def cli_wall(cmd: list[str], env: dict[str, str], ok_codes: tuple[int, ...] = (0,)
             ) -> tuple[float, int, str]:
    """(wall seconds, exit code, stdout) of one cloudctl invocation."""
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode not in ok_codes:
        raise SystemExit(f"bench: {' '.join(cmd)} failed ({proc.returncode}): "
                         f"{proc.stderr.strip()}")
    return wall, proc.returncode, proc.stdout


def cli_env(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDCTL_")}
    env.update(CLOUDCTL_DB=str(db), CLOUDCTL_CONFIG=str(db.with_name("config.toml")))
    return env


def version_bench(repeat: int) -> dict[str, object]:
    walls = [cli_wall(CLOUDCTL + ["--version"], dict(os.environ))[0] for _ in range(repeat)]
    return {"bench": "cli: cloudctl --version", "runs": repeat,
            "median_ms": round(statistics.median(walls) * 1000, 1),
            "min_ms": round(min(walls) * 1000, 1), "target_ms": 100}


def build_store(db: Path, n_hosts: int, leases: list[Any], now: int) -> None:
    """A store with `n_hosts` test hosts (8 CPUs, 32 GiB) and `leases` (LeaseRecords, saved
    with their reservations in one transaction)."""
    sys.path.insert(0, str(ROOT))
    from cloudctl.drivers.registry import default_uri

    from cloudctl.domain import LeaseState
    from cloudctl.store.db import open_store
    from cloudctl.store.records import HostRecord
    from cloudctl.views import lease_list_text

    store = open_store(db, create=True, check_schema=False)
    store.migrate(now)
    state_dir = db.with_suffix(".d")
    with store.write():
        for i in range(n_hosts):
            name = f"host-{i}"
            store.hosts.add(HostRecord(name, 8, 32768, 102400, "test",
                                       default_uri("test", name, 8, 32768, state_dir),
                                       added_at=now))
        for record in leases:
            store.leases.save(record, final=LeaseState(record.state).final,
                              list_text=lease_list_text(record))
        store.state.set_clock(now)
    store.close()


def scheduled_ars(n_hosts: int, n_leases: int, now: int, seed: int = 11) -> list[Any]:
    """`n_leases` ARs over the next two weeks, placed by the scheduler itself on `n_hosts`
    hosts (so they are valid, non-overlapping reservations), as store records."""
    sys.path.insert(0, str(ROOT))
    from cloudctl.policies import policy_set

    from cloudctl.persist import to_record
    from cloudctl.scheduler.config import SchedulerConfig
    from cloudctl.scheduler.core import Scheduler
    from cloudctl.scheduler.model import Capacity, HostSpec, LeaseRequest, LeaseType

    rng = random.Random(seed)
    hosts = [HostSpec(f"host-{i}", Capacity(8, 32768, 102400)) for i in range(n_hosts)]
    sched = Scheduler(hosts, SchedulerConfig(), policy_set(SchedulerConfig()), now=now)
    lease_id, booked = 0, 0
    while booked < n_leases:
        lease_id += 1
        request = LeaseRequest(id=lease_id, type=LeaseType.AR, submit=now,
                               nodes=rng.randint(1, 8),
                               capacity=Capacity(rng.choice([1, 2, 4]),
                                                 rng.choice([2048, 4096, 8192])),
                               duration=rng.choice([1800, 3600, 7200, 14400]),
                               start=now + rng.randrange(3600, 14 * 24 * 3600),
                               preemptible=False)
        if sched.submit(request, now).accepted:
            booked += 1
        else:
            del sched.leases[lease_id]  # rejected requests are not kept in this store
    names = [h.name for h in hosts]
    records = [to_record(lease, names) for lease in sched.leases.values()]
    for new_id, record in enumerate(records, 1):  # dense ids, as the store hands them out
        record.id = new_id
    return records


def finished_leases(n: int, first_id: int, now: int, n_hosts: int, seed: int = 13) -> list[Any]:
    """`n` leases that ran and ended over the past month (most of a real store)."""
    sys.path.insert(0, str(ROOT))
    from cloudctl.store.records import LeaseRecord

    rng = random.Random(seed)
    out = []
    for i in range(n):
        duration = rng.choice([600, 1800, 3600, 7200])
        start = now - rng.randrange(3600, 30 * 24 * 3600)
        hosts = [f"host-{rng.randrange(n_hosts)}" for _ in range(rng.randint(1, 4))]
        kind = rng.choice(["be", "be", "im", "ar"])
        out.append(LeaseRecord(
            id=first_id + i, name=None, type=kind, state="done", submitted=start - 60,
            start_req=start if kind == "ar" else None, duration=duration, nodes=len(hosts),
            cpus=rng.choice([1, 2, 4]), memory_mib=rng.choice([1024, 2048, 4096]), disk_mib=0,
            image=None, image_size_mib=0, preemptible=kind == "be", remaining=0,
            first_start=start, done_at=start + duration, reason="done",
            history={"runs": [[start, start + duration, hosts]], "last_hosts": hosts,
                     "suspensions": [], "resumptions": [], "migrations": [], "transfers": []},
            start=start, end=start + duration, hosts=hosts))
    return out


def lease_list_bench(tmp: Path, repeat: int) -> dict[str, object]:
    """`lease list --json` over 10,000 leases: 9,000 finished, 1,000 live reservations."""
    now = int(time.time())
    live = scheduled_ars(100, 1000, now)
    db = tmp / "list" / "state.db"
    db.parent.mkdir()
    build_store(db, 100, live + finished_leases(9000, len(live) + 1, now, 100), now)
    env = cli_env(db)
    walls, out = [], ""
    for _ in range(repeat):
        wall, _, out = cli_wall(CLOUDCTL + ["lease", "list", "--json"], env)
        walls.append(wall)
    return {"bench": "cli: lease list --json, 10,000 leases", "runs": repeat,
            "median_ms": round(statistics.median(walls) * 1000, 1),
            "min_ms": round(min(walls) * 1000, 1), "listed": len(json.loads(out)),
            "target_ms": 150}


def ar_request_bench(tmp: Path, repeat: int, n_hosts: int = 1000,
                     n_leases: int = 10_000) -> dict[str, object]:
    """`lease request --type ar` end to end against `n_hosts` hosts and `n_leases` live ARs;
    each run asks for a different AR on a fresh copy of the store."""
    now = int(time.time())
    started = time.perf_counter()
    records = scheduled_ars(n_hosts, n_leases, now)
    base = tmp / "ar" / "state.db"
    base.parent.mkdir()
    build_store(base, n_hosts, records, now)
    build_s = time.perf_counter() - started
    rng = random.Random(17)
    walls, outcomes = [], []
    for i in range(repeat):
        db = tmp / f"ar-{i}" / "state.db"
        db.parent.mkdir()
        shutil.copyfile(base, db)
        start = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                              time.gmtime(now + rng.randrange(2 * 3600, 13 * 24 * 3600)))
        wall, code, _ = cli_wall(CLOUDCTL + ["lease", "request", "--type", "ar", "--start",
                                             start, "--duration", "2h", "--nodes",
                                             str(rng.randint(1, 8)), "--cpus", "2",
                                             "--memory", "4096", "--json"],
                                 cli_env(db), ok_codes=(0, 6))
        walls.append(wall)
        outcomes.append("accepted" if code == 0 else "rejected")
        shutil.rmtree(db.parent)
    return {"bench": f"cli: lease request --type ar, {n_hosts} hosts, {n_leases} live leases",
            "runs": repeat, "median_ms": round(statistics.median(walls) * 1000, 1),
            "min_ms": round(min(walls) * 1000, 1),
            "accepted": outcomes.count("accepted"), "target_ms": 150,
            "store_build_s": round(build_s, 1)}


# -- image transfer over SSH --------------------------------------------------------------------

def ssh_transfer_bench(tmp: Path, repeat: int) -> list[dict[str, object]]:
    sys.path.insert(0, str(ROOT / "tests"))
    from cloudctl.drivers.image_cache import open_image_cache, sha256_of
    from cloudctl.drivers.ssh import SSHConnection, SSHTarget
    from sshd import start_network, stop_network

    net = start_network(tmp / "sshnet", count=1)
    try:
        host = net.hosts[0]
        target = SSHTarget.parse(host.target, host.options())
        connects, execs = [], []
        for _ in range(max(repeat, 5)):
            with SSHConnection(target) as conn:
                conn.connect()
                connects.append(conn.connect_seconds or 0.0)
                started = time.perf_counter()
                conn.exec("true")
                execs.append(time.perf_counter() - started)
        rows: list[dict[str, object]] = [
            {"bench": f"ssh: connect ({net.mode})", "runs": len(connects),
             "median_ms": round(statistics.median(connects) * 1000, 1),
             "network_setup_s": round(net.setup_seconds, 2)},
            {"bench": "ssh: exec `true`", "runs": len(execs),
             "median_ms": round(statistics.median(execs) * 1000, 1)}]
        for mib in (1, 64):
            path = tmp / f"image-{mib}.qcow2"
            path.write_bytes(os.urandom(mib << 20))
            walls = []
            with SSHConnection(target) as conn:
                conn.connect()
                for i in range(max(repeat, 3)):
                    started = time.perf_counter()
                    conn.put(path, f"{host.image_dir}/put-{mib}-{i}")
                    walls.append(time.perf_counter() - started)
            wall = statistics.median(walls)
            rows.append({"bench": f"ssh: SFTP put {mib} MiB", "runs": len(walls),
                         "median_ms": round(wall * 1000, 1),
                         "mib_per_s": round(mib / wall, 1)})
        sha = sha256_of(path)
        with open_image_cache(host.target, host.options(progress=False)) as cache:
            cache.ensure("bench", path, sha, path.stat().st_size)
            hits = [cache.ensure("bench", path, sha, path.stat().st_size).seconds
                    for _ in range(max(repeat, 5))]
        rows.append({"bench": "ssh: image cache hit (64 MiB image)", "runs": len(hits),
                     "median_ms": round(statistics.median(hits) * 1000, 1)})
        return rows
    finally:
        stop_network(net)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one run each, smaller AR bench")
    parser.add_argument("--json", action="store_true", help="print results as JSON lines")
    parser.add_argument("--only", metavar="NAME",
                        help="run only the benchmarks whose name contains NAME "
                             "(kth, reference, blue, burst, admission, cli, version, list, "
                             "request, ssh)")
    args = parser.parse_args()
    repeat = 1 if args.quick else 3

    def wanted(*names: str) -> bool:
        return args.only is None or any(args.only.lower() in n for n in names)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        half, n_half, n_full = half_trace(KTH, Path(tmp))
        easy = ["--backfilling", "easy", "--estimates", "requested"]
        if wanted("kth", "simulate"):
            results.append(simulate_bench("KTH EASY full (user estimates)",
                                          [str(KTH), *easy], n_full, repeat))
            results.append(simulate_bench("KTH EASY first half", [str(half), *easy], n_half,
                                          repeat))
            results.append(simulate_bench("KTH EASY full (perfect estimates)",
                                          [str(KTH), "--backfilling", "easy", "--estimates",
                                           "actual"], n_full, repeat))
        if wanted("reference"):
            results.append(reference_easy(repeat))
        if wanted("blue", "simulate", "burst"):
            blue_jobs = sum(1 for line in BLUE.read_text().splitlines() if line.strip())
            blue_ars = sum(1 for line in BLUE_AR.read_text().splitlines()
                           if line.strip() and not line.startswith("#"))
            if wanted("blue", "simulate"):
                results.append(simulate_bench(
                    "Blue 30 days + ARs, suspension on",
                    [str(BLUE), "--inject", str(BLUE_AR), "--nodes", "144", "--suspension",
                     "all"], blue_jobs + blue_ars, repeat))
            if wanted("burst"):
                # Bursting and the comparison run without it: two simulations per command.
                results.append(simulate_bench(
                    "Blue 30 days + ARs, bursting (+ baseline run)",
                    [str(BLUE), "--inject", str(BLUE_AR), "--nodes", "144",
                     "--burst-provider", str(ROOT / "examples" / "ec2-burst.toml")],
                    blue_jobs + blue_ars, repeat))
        if wanted("admission"):
            decisions = 100 if args.quick else 300
            results.append(ar_admission(1000, 10_000, decisions))
            results.append(ar_admission(2000, 20_000, decisions))
        cli_repeat = 5 if args.quick else 11
        if wanted("cli", "version"):
            results.append(version_bench(cli_repeat))
        if wanted("cli", "list"):
            results.append(lease_list_bench(Path(tmp), cli_repeat))
        if wanted("cli", "request"):
            results.append(ar_request_bench(Path(tmp), cli_repeat))
        if wanted("ssh"):
            results.extend(ssh_transfer_bench(Path(tmp), repeat))
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
