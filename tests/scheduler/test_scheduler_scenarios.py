"""Haizea's scenario traces, replayed to the second.

The first two are REFERENCE.md's worked examples (13:00:00 is t = 0). The others were worked
out by hand from REFERENCE.md's rules with the same setup: 4 nodes x (1 CPU, 1024 MiB),
2 s per command, suspend = 2 s, resume = 1024/32 + 2 = 34 s per step, EASY backfilling.
A 4-node shutdown takes 4 x 2 = 8 s, a 2-node one 4 s, a 1-node one 2 s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import HAIZEA, ar, be, hosts, planned, run, scheduler, timeline

from cloudctl.scheduler.core import Preemption, Scheduler
from cloudctl.scheduler.model import LeaseState
from cloudctl.sim.traces import load_trace

ALL = (0, 1, 2, 3)


def replay(scenarios: Path, name: str, **options: Any) -> Scheduler:
    trace = load_trace(scenarios / name)
    assert (trace.nodes, trace.node_cpus, trace.node_memory_mib) == (4, 1, 1024)
    site = hosts(trace.nodes, trace.node_cpus, trace.node_memory_mib)
    return run(trace.requests, site, **{**HAIZEA, **options})


# --- REFERENCE.md's two scenarios ---------------------------------------------------------


def test_preemption(scenarios: Path) -> None:
    s = replay(scenarios, "preemption.lwf")
    # L2 (AR) 13:30-14:00 on all nodes, its 8 s shutdown carved from the end of the window.
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(1800, 3592, ALL)], "done": 3600}
    # L1 runs until 13:29:58, suspends in 2 s, resumes 14:00:00-14:00:34, runs its remaining
    # 30:02 until 14:30:36 and shuts down in 2 s.
    assert timeline(s.leases[1]) == {
        "state": "done",
        "runs": [(0, 1798, (0,)), (3634, 5436, (0,))],
        "suspensions": [(1798, 1800)],
        "resumptions": [(3600, 3634)],
        "done": 5438,
    }
    assert s.leases[1].ran == 3600
    assert s.preemptions == 1


def test_preemption_is_planned_when_the_ar_arrives() -> None:
    s = scheduler(hosts(4), **HAIZEA)
    s.submit(be(1, 0, 3600), 0)
    s.schedule(0)
    assert planned(s.leases[1]) == (0, 0, 3600, (0,))
    s.advance(900)
    decision = s.submit(ar(2, 900, 1800, 1800, nodes=4), 900)
    assert decision.state is LeaseState.SCHEDULED
    assert (decision.start, decision.end, decision.hosts) == (1800, 3600, ALL)
    assert decision.preempted == [Preemption(1, "suspend", 1800)]
    # At 13:15 L1 is told: run until 13:29:58, be suspended by 13:30:00.
    assert planned(s.leases[1]) == (0, 0, 1798, (0,))
    assert s.leases[1].run is not None and s.leases[1].run.end == 1800
    assert s.leases[1].state is LeaseState.ACTIVE


def test_reservation(scenarios: Path) -> None:
    s = replay(scenarios, "reservation.lwf")
    assert timeline(s.leases[1]) == {"state": "done", "runs": [(0, 3600, (0,))], "done": 3602}
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(3602, 4502, ALL)], "done": 4510}


def test_reservation_is_made_in_the_future_at_once() -> None:
    s = scheduler(hosts(4), **HAIZEA)
    s.submit(be(1, 0, 3600), 0)
    s.schedule(0)
    s.advance(900)
    s.submit(be(2, 900, 900, nodes=4), 900)
    s.schedule(900)
    assert s.leases[2].state is LeaseState.SCHEDULED
    assert planned(s.leases[2]) == (3602, 3602, 4502, ALL)


# --- the other scenarios, worked out by hand ----------------------------------------------


def test_preemption_prematureend(scenarios: Path) -> None:
    # L1 really needs 45 min: 1798 s before the AR, 902 s after its resume; an early end
    # has no shutdown. The AR lasts 15 min: 13:30-13:45, shutdown 8 s.
    s = replay(scenarios, "preemption_prematureend.lwf")
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(1800, 2692, ALL)], "done": 2700}
    assert timeline(s.leases[1]) == {
        "state": "done",
        "runs": [(0, 1798, (0,)), (2734, 3636, (0,))],
        "suspensions": [(1798, 1800)],
        "resumptions": [(2700, 2734)],
        "done": 3636,
    }


def test_preemption_prematureend2(scenarios: Path) -> None:
    # The AR also ends early (10 min, at 2400, no shutdown): L1's resumption, a future
    # best-effort reservation, moves from 2700 to 2400.
    s = replay(scenarios, "preemption_prematureend2.lwf")
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(1800, 2400, ALL)], "done": 2400}
    assert timeline(s.leases[1]) == {
        "state": "done",
        "runs": [(0, 1798, (0,)), (2434, 3336, (0,))],
        "suspensions": [(1798, 1800)],
        "resumptions": [(2400, 2434)],
        "done": 3336,
    }


def test_reservation_prematureend(scenarios: Path) -> None:
    # L1 ends at 13:30 instead of 14:00; L2's reservation (14:00:02) moves to 13:30.
    s = replay(scenarios, "reservation_prematureend.lwf")
    assert timeline(s.leases[1]) == {"state": "done", "runs": [(0, 1800, (0,))], "done": 1800}
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(1800, 2700, ALL)], "done": 2708}


def test_wait(scenarios: Path) -> None:
    # Eight 4-node 15-minute leases one after another: each takes 900 + 8 s.
    s = replay(scenarios, "wait.lwf")
    for n in range(1, 9):
        start = (n - 1) * 908
        assert timeline(s.leases[n]) == {
            "state": "done", "runs": [(start, start + 900, ALL)], "done": start + 908,
        }, n


def test_reuse1_without_transfers(scenarios: Path) -> None:
    s = replay(scenarios, "reuse1.lwf")
    assert timeline(s.leases[1]) == {"state": "done", "runs": [(900, 1798, (0,))], "done": 1800}
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(2700, 3600, (0,))], "done": 3602}


def test_reuse1_reuses_the_cached_image(scenarios: Path) -> None:
    # 1024 MiB at 100 Mbit/s = 82 s, in the latest slot ending at the AR's start. The
    # best-effort lease finds the image on host 0 and starts at once, with no transfer.
    s = replay(scenarios, "reuse1.lwf", image_transfer="multicast")
    assert timeline(s.leases[1]) == {
        "state": "done", "runs": [(900, 1798, (0,))], "transfers": [(818, 900)], "done": 1800,
    }
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(2700, 3600, (0,))], "done": 3602}


def test_reuse2_prefers_the_hosts_holding_the_image(scenarios: Path) -> None:
    # Two ARs at 13:15: the link takes one transfer at a time, so the second AR's transfer
    # goes in the latest slot before the first's. L3 uses L2's image: it goes to P3 (index 2,
    # first of the two hosts holding it) with no transfer.
    s = replay(scenarios, "reuse2.lwf", image_transfer="multicast")
    assert timeline(s.leases[1]) == {
        "state": "done", "runs": [(900, 1796, (0, 1))], "transfers": [(818, 900)], "done": 1800,
    }
    assert timeline(s.leases[2]) == {
        "state": "done", "runs": [(900, 1796, (2, 3))], "transfers": [(736, 818)], "done": 1800,
    }
    assert timeline(s.leases[3]) == {"state": "done", "runs": [(2700, 3600, (2,))], "done": 3602}


def test_migrate_without_migration(scenarios: Path) -> None:
    # L1 (AR) takes P1-P2 from 00:01:30, L2 (AR) P3-P4 from 00:30. L3 (BE, 2 nodes, 1 h)
    # starts at once on P3-P4, which stay free longest, and is suspended for L2 (2 VMs on 2
    # nodes: 2 x 2 = 4 s). Migration is off: it resumes on P3-P4 when L2 ends (32 + 2 x 2 =
    # 36 s) and runs its remaining 3600 - 1796 = 1804 s.
    s = replay(scenarios, "migrate.lwf")
    assert timeline(s.leases[1]) == {"state": "done", "runs": [(90, 3686, (0, 1))], "done": 3690}
    assert timeline(s.leases[2]) == {
        "state": "done", "runs": [(1800, 5396, (2, 3))], "done": 5400,
    }
    assert timeline(s.leases[3]) == {
        "state": "done",
        "runs": [(0, 1796, (2, 3)), (5436, 7240, (2, 3))],
        "suspensions": [(1796, 1800)],
        "resumptions": [(5400, 5436)],
        "done": 7244,
    }


def test_migrate_with_migration(scenarios: Path) -> None:
    # With migration L3 moves to P1-P2. As in Haizea, the two memory images go P3->P1 and
    # P4->P2 at the same time (disjoint pairs of nodes), each 1024 MiB at 100 Mbit/s = 82 s,
    # and they go as soon as L3 is suspended (1800-1882), while L1 still holds P1-P2: the
    # network is free. L3 resumes as soon as L1 ends (3690), 36 s, then its remaining 1804 s.
    s = replay(scenarios, "migrate.lwf", migration=True)
    assert timeline(s.leases[3]) == {
        "state": "done",
        "runs": [(0, 1796, (2, 3)), (3726, 5530, (0, 1))],
        "suspensions": [(1796, 1800)],
        "migrations": [(1800, 1882)],
        "resumptions": [(3690, 3726)],
        "done": 5534,
    }


def test_migrate_with_late_migration(scenarios: Path) -> None:
    # Late migration waits for the destination: the images move when L1 ends (3690).
    s = replay(scenarios, "migrate.lwf", migration=True, early_migration=False)
    assert timeline(s.leases[3]) == {
        "state": "done",
        "runs": [(0, 1796, (2, 3)), (3808, 5612, (0, 1))],
        "suspensions": [(1796, 1800)],
        "migrations": [(3690, 3772)],
        "resumptions": [(3772, 3808)],
        "done": 5616,
    }
