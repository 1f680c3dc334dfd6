"""A `cloudctl vm migrate` killed with SIGKILL half-way, then a tick: the store and the
hypervisors agree again, with the VM on exactly one host and never booted afresh.

The kill comes at an exact step: the command runs with one test-driver call replaced by
"do it, then SIGKILL this process", so each case cuts the move at a known point.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cloud_helpers import disagreements, domains, make_cloud, node_file, request

pytestmark = pytest.mark.slow  # real processes killed mid-migration

T0 = 1_795_341_600  # 2026-11-22T10:00:00Z
KILLED_AFTER = """
import os, signal, sys
from cloudctl.drivers.libvirt import TestDriver
step = sys.argv.pop(1)
done = getattr(TestDriver, step)
def then_die(self, *args, **kwargs):
    done(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
setattr(TestDriver, step, then_die)
from cloudctl.cli.entry import main
sys.exit(main())
"""


def active_on(tmp: Path, name: str) -> list[str]:
    return [host for host in ("node-1", "node-2")
            if (dom := domains(node_file(tmp, host)).get(name)) is not None and dom.active]


@pytest.mark.parametrize(("step", "ends_on", "story"), [
    # Saved on node-1, not yet restored on node-2: restored on node-1 from the move's image.
    ("suspend", "node-1", "undone: restored on node-1 from its memory image"),
    # Running on node-2, the schedule not yet told: the move is completed.
    ("resume", "node-2", "completed: running on node-2"),
])
def test_the_next_tick_settles_a_killed_migration(tmp_path: Path, step: str, ends_on: str,
                                                  story: str) -> None:
    cloud = make_cloud(tmp_path, [("node-1", 4, 8192), ("node-2", 4, 8192)], now=T0)
    lease = request(cloud, "im", 3600, cpus=2, memory=1024)
    name = f"cloudctl-{lease.id}-0"
    cloud.json("tick")
    assert active_on(tmp_path, name) == ["node-1"]

    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER, step, "vm", "migrate", name,
                             "node-2"], env=cloud.environ(), capture_output=True, text=True,
                            timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    vm = cloud.json("vm", "show", name)
    assert vm["host"] == "node-1"  # the schedule's change died with the command
    if step == "resume":
        assert active_on(tmp_path, name) == ["node-2"]
    else:
        assert active_on(tmp_path, name) == []
    image = tmp_path / "state.d" / "saves" / f"{name}.migrate"
    assert image.exists()

    tick = cloud.json("tick")
    assert tick["missing"] == [] and tick["failed"] == [], tick
    assert active_on(tmp_path, name) == [ends_on]
    assert disagreements(cloud) == []
    vm = cloud.json("vm", "show", name)
    assert vm["host"] == ends_on and vm["state"] == "running"
    assert cloud.json("lease", "show", str(lease.id))["hosts"] == [ends_on]
    assert any(story in e["reason"] for e in vm["events"]), vm["events"]
    assert not image.exists()
    # Settled once: the next tick has nothing left to do, and migrating works again.
    assert cloud.json("tick")["done"] == []
    other = "node-1" if ends_on == "node-2" else "node-2"
    assert cloud.json("vm", "migrate", name, other)["to"] == other
    assert active_on(tmp_path, name) == [other] and disagreements(cloud) == []
