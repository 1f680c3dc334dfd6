"""A tick killed with SIGKILL in the middle of enactment, then another tick: the store and
the hypervisors agree again. And a driver failure is recorded truthfully and retried.

The clock is fixed (CLOUDCTL_NOW), so the only thing that changes between the two ticks is
what the killed one managed to do. The test driver's node files show what it did: each
driver call rewrites its host's file, so counting the domains there tells how far it got.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_harness import CLOUDCTL, Cli
from cloud_helpers import (
    disagreements,
    domains,
    make_cloud,
    node_file,
    request,
    vanished_image,
)

pytestmark = pytest.mark.slow  # real processes killed mid-tick, on clouds of ~100 VMs

T0 = 1_795_341_600  # 2026-11-22T10:00:00Z
HOSTS = [(f"node-{i}", 32, 65536) for i in range(1, 5)]
LEASES, NODES = 8, 12  # 96 VMs to create in one tick: about 1.5 s of enactment


def _created(tmp: Path) -> dict[str, list[str]]:
    """Every active cloudctl domain, with the hosts whose node file holds it."""
    found: dict[str, list[str]] = {}
    for name, _, _ in HOSTS:
        for dom in domains(node_file(tmp, name)).values():
            if dom.active and dom.name.startswith("cloudctl-"):
                found.setdefault(dom.name, []).append(name)
    return found


def _kill_tick_when(tmp: Path, cloud: Cli, created: int, timeout: float = 30
                    ) -> int:
    """Start `cloudctl tick`, SIGKILL it once `created` more domains exist (0: at once);
    return how many more domains there were after it died."""
    before = len(_created(tmp))
    proc = subprocess.Popen([*CLOUDCTL, "tick", "--json"], env=cloud.environ(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while created and len(_created(tmp)) - before < created:
        assert proc.poll() is None, "the tick finished before it could be killed"
        assert time.monotonic() < deadline, "the tick made no progress"
        time.sleep(0.001)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return len(_created(tmp)) - before


def _check_agreement(tmp: Path, cloud: Cli) -> None:
    assert disagreements(cloud) == []
    vms = cloud.json("vm", "list", "--all")
    running = {vm["name"]: vm["host"] for vm in vms if vm["state"] == "running"}
    # No leaked domain and none twice: exactly the running VMs exist, each on its host.
    found = _created(tmp)
    assert {name: hosts for name, hosts in found.items()} == \
        {name: [host] for name, host in running.items()}
    for name, _, _ in HOSTS:
        assert all(d.name in running for d in domains(node_file(tmp, name)).values())
    # The lease states tell the truth about their VMs.
    for lease in cloud.json("lease", "list"):
        mine = [vm for vm in vms if vm["lease"] == lease["id"]]
        if lease["state"] == "active":
            assert sorted(vm["node"] for vm in mine if vm["state"] == "running") == \
                list(range(lease["nodes"])), lease
            assert {running[vm["name"]] for vm in mine} == set(lease["hosts"])
        else:
            assert all(vm["state"] != "running" for vm in mine), (lease, mine)


@pytest.fixture
def busy_cloud(tmp_path: Path) -> Cli:
    """Four hosts, 8 IM leases of 12 VMs each and best-effort leases queued behind them
    (the first of which fits at once): 112 VMs the next tick must create."""
    cloud = make_cloud(tmp_path, HOSTS, now=T0)
    for _ in range(LEASES):
        assert request(cloud, "im", 1800, NODES, 1, 256).state == "active"
    for _ in range(4):
        request(cloud, "be", 3600, 16, 2, 512)
    return cloud


def _to_start(cloud: Cli) -> int:
    return sum(1 for vm in cloud.json("vm", "list") if vm["want"] == "running")


@pytest.mark.parametrize("kill_after", [0, 1, 30, 80], ids=lambda n: f"after-{n}-creates")
def test_killed_tick_is_carried_on_by_the_next(tmp_path: Path, busy_cloud: Cli,
                                               kill_after: int) -> None:
    cloud = busy_cloud
    total = _to_start(cloud)
    assert total == LEASES * NODES + 16
    created = _kill_tick_when(tmp_path, cloud, kill_after)
    if kill_after:
        assert kill_after <= created < total, "the tick was not interrupted half-way"
    tick = cloud.json("tick")
    assert tick["failed"] == [] and tick["unowned"] == [] and tick["missing"] == []
    # What the killed tick did is adopted; only the rest is created now.
    assert len(tick["done"]) == total - created
    assert sum(1 for vm in cloud.json("vm", "list") if vm["state"] == "running") == total
    _check_agreement(tmp_path, cloud)


@pytest.mark.parametrize("kill_after", [1, 20], ids=lambda n: f"after-{n}-changes")
def test_killed_tick_that_stops_and_starts(tmp_path: Path, busy_cloud: Cli,
                                           kill_after: int) -> None:
    """The IM leases end and the queued best-effort leases start in the same tick: the
    killed tick had stopped some VMs and maybe started others."""
    cloud = busy_cloud
    cloud.json("tick")
    _check_agreement(tmp_path, cloud)
    later = cloud.copy(now=T0 + 31 * 60)
    before = set(_created(tmp_path))
    proc = subprocess.Popen([*CLOUDCTL, "tick", "--json"], env=later.environ(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while len(set(_created(tmp_path)) ^ before) < kill_after:
        assert proc.poll() is None, "the tick finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.001)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    changed = set(_created(tmp_path)) ^ before
    assert kill_after <= len(changed) < LEASES * NODES + 3 * 16
    tick = later.json("tick")
    assert tick["failed"] == [] and tick["unowned"] == []
    _check_agreement(tmp_path, later)
    states = {lease["type"]: lease["state"] for lease in later.json("lease", "list")}
    assert states == {"im": "done", "be": "active"}


# -- a driver failure is recorded, then retried --------------------------------------------

def test_driver_failure_is_recorded_and_retried(tmp_path: Path) -> None:
    cloud = make_cloud(tmp_path, [("node-1", 4, 8192), ("node-2", 4, 8192)], now=T0)
    # Fill node-1 so that the next lease must go to node-2.
    request(cloud, "im", 3600, cpus=4, memory=1024)
    copy, data = vanished_image(cloud)
    lease = cloud.json("lease", "request", "--type", "im", "--duration", "1h", "--cpus", "2",
               "--memory", "1024", "--image", "base")
    assert lease["hosts"] == ["node-2"]
    vm_name = f"cloudctl-{lease['id']}-0"
    node2 = node_file(tmp_path, "node-2")

    tick = cloud("tick", "--json", code=None)
    assert tick.exit_code == 0, tick.stderr  # the tick succeeded in recording the failure
    report = json.loads(tick.stdout)
    assert any(vm_name in line and "cannot create disk" in line for line in report["failed"])
    assert any(line.startswith("cloudctl-1-0") for line in report["done"])
    vm = cloud.json("vm", "show", vm_name)
    assert vm["state"] == "error" and vm["want"] == "running"
    assert "cannot create disk" in vm["error"] and vm["attempts"] == 1
    assert vm["retry_at"] == "2026-11-22T10:00:30Z"  # retry-backoff 30 s after the failure
    assert any("cannot create disk" in e["reason"] for e in vm["events"])
    assert report["next_event"] == "2026-11-22T10:00:30Z"

    # Before the retry time a tick leaves it alone, even once the image is back.
    copy.write_bytes(data)
    early = cloud.copy(now=T0 + 10).json("tick")
    assert any(vm_name in line for line in early["waiting"]) and early["done"] == []
    assert cloud.json("vm", "show", vm_name)["state"] == "error"
    assert vm_name not in domains(node2)

    late_cloud = cloud.copy(now=T0 + 31)
    late = late_cloud.json("tick")
    assert late["done"] == [f"{vm_name}: running on node-2"]
    vm = late_cloud.json("vm", "show", vm_name)
    assert vm["state"] == "running" and vm["error"] is None and vm["retry_at"] is None
    assert domains(node2)[vm_name].active
    assert disagreements(late_cloud) == []


def test_driver_failures_exhausted_fail_the_lease(tmp_path: Path) -> None:
    """After max-attempts failures the lease fails, truthfully, and its capacity is freed."""
    cloud = make_cloud(tmp_path, [("node-1", 4, 8192)], now=T0)
    copy, data = vanished_image(cloud)
    lease = cloud.json("lease", "request", "--type", "im", "--duration", "1h", "--cpus", "4",
               "--memory", "1024", "--image", "base")
    now = T0
    for attempt in range(1, 6):
        report = cloud.copy(now=now).json("tick")
        assert report["failed"], report
        now += 30 * 2 ** (attempt - 1)  # past the doubled backoff
    assert report["failed_leases"] == [lease["id"]]
    copy.write_bytes(data)
    later = cloud.copy(now=now)
    shown = later.json("lease", "show", str(lease["id"]))
    assert shown["state"] == "fail" and "gave up after 5 attempts" in shown["reason"]
    assert all(vm["state"] != "running" for vm in shown["vms"])
    later.json("tick")
    assert disagreements(later) == []
    # The capacity it held is free again.
    again = later.json("lease", "request", "--type", "im", "--duration", "1h", "--cpus", "4",
               "--memory", "1024")
    assert again["state"] == "active"


# -- killed right after a driver call, before its result was recorded -----------------------

DIE_AFTER_DRIVER_CALL = """
import os, signal
from cloudctl.enact import Enactor

def die(*args, **kwargs):  # the driver call returned; its result is never recorded
    os.kill(os.getpid(), signal.SIGKILL)

Enactor._done = die
from cloudctl.cli.app import main
main(["tick", "--json"])
"""

# A best-effort lease runs from T0, an AR preempts it at T0+10m for an hour: the BE lease is
# suspended (16 s: 2 x 256 MiB at 32 MiB/s), resumed at T0+70m and ends later.
STEPS = {"create": 0, "suspend": 595, "ar-start": 600, "resume": 4205, "shutdown": 5 * 3600}


@pytest.mark.parametrize("phase", [
    "create",
    "suspend",
    "resume",
    "shutdown",
])
def test_tick_killed_between_driver_call_and_record(tmp_path: Path, phase: str) -> None:
    cloud = make_cloud(tmp_path, [("node-1", 4, 8192)], now=T0)
    be = request(cloud, "be", 7200, 2, 2, 256)
    ar = request(cloud, "ar", 3600, 1, 4, 1024, start=T0 + 600)
    for step, offset in STEPS.items():
        at = cloud.copy(now=T0 + offset)
        if step == phase:
            died = subprocess.run([sys.executable, "-c", DIE_AFTER_DRIVER_CALL],
                                  env=at.environ(), capture_output=True, text=True)
            assert died.returncode == -signal.SIGKILL, died.stderr
        tick = at.json("tick")
        assert tick["failed"] == [], (step, tick)
        assert disagreements(at) == [], step
    final = cloud.copy(now=T0 + 5 * 3600)
    states = {lease["id"]: lease["state"] for lease in final.json("lease", "list")}
    assert states == {be.id: "done", ar.id: "done"}
    shown = final.json("lease", "show", str(be.id))
    assert shown["preempted"] == 1
