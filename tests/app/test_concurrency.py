"""Many commands at once against one store: 8 processes each submit 50 leases and tick, while
real `cloudctl` commands tick and list beside them. Nothing may be lost or duplicated, no
host over-committed at any instant, and no 'database is locked' may reach a user.

The clock is the real one: every command then acts at its own time, leases of 3 to 30 s
end, are preempted and start while the storm lasts, so ticks really create, suspend and
stop VMs (a fixed clock would keep every tick at one instant with nothing ever ending).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cloud_helpers import (
    active_usage,
    disagreements,
    make_cloud,
    node_file,
    overcommits,
    store_records,
)

pytestmark = pytest.mark.slow  # a storm of processes for several seconds

WORKERS = 8
PER_WORKER = 50
HOSTS = [(f"node-{i}", 4, 8192) for i in range(1, 5)]

WORKER = r'''
import json, os, random, re, sys, traceback
from cloudctl.app.leases import LeaseSpec
from cloudctl.domain import LeaseType
from cloudctl.errors import CloudctlError, Unsatisfiable
from cloudctl.runtime import build_real

seed, count = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
out = {"ids": [], "rejected": [], "errors": [], "ticks": 0, "busy": 0}
for i in range(count):
    # A new App per command, as each CLI invocation builds its own.
    cloud = build_real(os.environ)
    try:
        kind = rng.choice(["be", "be", "im", "ar"])
        spec = LeaseSpec(type=LeaseType(kind), duration=rng.randint(3, 30),
                         nodes=rng.choice([1, 1, 1, 2]), cpus=rng.choice([1, 1, 2]),
                         memory_mib=rng.choice([512, 1024, 2048]),
                         start=cloud.clock() + rng.randint(2, 20) if kind == "ar" else None)
        try:
            out["ids"].append(cloud.leases.request(spec).lease.id)
        except Unsatisfiable as error:
            found = re.match(r"lease (\d+) rejected", str(error))
            out["rejected"].append(int(found.group(1)) if found else str(error))
        if i % 3 == 2:
            outcome = cloud.ticks.tick(blocking=rng.random() < 0.5)
            out["ticks" if outcome.ran else "busy"] += 1
    except CloudctlError as error:
        out["errors"].append(f"{type(error).__name__} (exit {error.exit_code}): {error}")
    except Exception:
        out["errors"].append(traceback.format_exc())
    finally:
        cloud.close()
print(json.dumps(out))
'''


def _sample_node_files(tmp: Path, stop: threading.Event, peaks: dict[str, tuple[int, int]],
                       seen: list[str]) -> None:
    """Watch what the hypervisors really hold while the storm lasts."""
    sizes = {name: (cpus, memory) for name, cpus, memory in HOSTS}
    while not stop.is_set():
        for name, (cpus, memory) in sizes.items():
            used = active_usage(node_file(tmp, name))
            peak = peaks.get(name, (0, 0))
            peaks[name] = (max(peak[0], used[0]), max(peak[1], used[1]))
            if used[0] > cpus or used[1] > memory:
                seen.append(f"{name} holds {used[0]} CPUs / {used[1]} MiB")
        stop.wait(0.02)


def test_storm_of_requests_and_ticks(tmp_path: Path) -> None:
    cloud = make_cloud(tmp_path, HOSTS)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [subprocess.Popen([sys.executable, str(script), str(seed), str(PER_WORKER)],
                                env=cloud.environ(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for seed in range(WORKERS)]

    stop = threading.Event()
    peaks: dict[str, tuple[int, int]] = {}
    overfull: list[str] = []
    sampler = threading.Thread(target=_sample_node_files,
                               args=(tmp_path, stop, peaks, overfull), daemon=True)
    sampler.start()

    # Real commands beside the workers, as cron and users would run them.
    beside: list[tuple[str, int, str]] = []
    listed = 0
    commands = [["tick", "--json"], ["lease", "list", "--json"], ["vm", "list", "--json"],
                ["tick", "--wait", "--json"], ["host", "list", "--json"]]
    i = 0
    while any(w.poll() is None for w in workers):
        args = commands[i % len(commands)]
        i += 1
        result = cloud(*args, code=None)
        beside.append((" ".join(args), result.exit_code, result.stderr))
        if args[:2] == ["lease", "list"] and result.exit_code == 0:
            listed += 1
            ids = [lease["id"] for lease in json.loads(result.stdout)]
            assert len(ids) == len(set(ids)), "a lease listed twice mid-storm"

    outputs = [w.communicate() for w in workers]
    stop.set()
    sampler.join()

    for w, (_out, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err
        for word in ("locked", "Traceback"):
            assert word not in err, err
    results = [json.loads(out) for out, _ in outputs]
    errors = [e for r in results for e in r["errors"]]
    assert errors == []
    for command, code, err in beside:
        assert code == 0, f"cloudctl {command} -> {code}: {err}"
        assert "locked" not in err and "Traceback" not in err, err
    assert listed >= 1 and len(beside) >= 5, "the CLI did not run during the storm"

    accepted = [i for r in results for i in r["ids"]]
    rejected = [i for r in results for i in r["rejected"]]
    assert all(isinstance(i, int) for i in rejected), rejected
    returned = accepted + rejected
    assert len(returned) == WORKERS * PER_WORKER
    assert len(set(returned)) == len(returned), "an id was handed out twice"
    leases = cloud.json("lease", "list")
    assert sorted(lease["id"] for lease in leases) == sorted(returned)
    states = {lease["id"]: lease["state"] for lease in leases}
    assert {i for i in rejected} == {i for i, s in states.items() if s == "rejected"}
    assert sum(r["ticks"] for r in results) >= 1

    # The schedule, past and present, never asked a host for more than it has.
    hosts, all_leases, live, vms = store_records(tmp_path / "state.db")
    assert overcommits(hosts, all_leases, live) == []
    # Nor did the hypervisors ever hold more (sampled every 20 ms during the storm).
    assert overfull == [], overfull[:5]
    # The storm did real work: VMs were started on every host, and they are stopped again
    # when their leases end (on a fast run none may have ended yet: give them the time).
    assert all(peaks[name][0] > 0 for name, _, _ in HOSTS), peaks
    deadline = time.monotonic() + 45
    while not any(vm.state == "gone" for vm in vms) and time.monotonic() < deadline:
        time.sleep(1)
        cloud("tick", "--wait", code=None)
        vms = store_records(tmp_path / "state.db")[3]
    assert any(vm.state == "gone" for vm in vms)

    # One more tick: then the store and the node files agree exactly.
    final = cloud("tick", "--wait", "--json", code=None)
    assert final.exit_code == 0, final.stderr
    report = json.loads(final.stdout)
    assert report["failed"] == [] and report["unowned"] == [] and report["unreachable"] == []
    assert disagreements(cloud) == []
