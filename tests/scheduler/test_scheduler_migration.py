"""Where a suspended lease resumes: on its own hosts, or (with migration) wherever it can
resume earlier, after a cold migration of its memory image (1024 MiB at 100 Mbit/s = 82 s).

Two hosts, no overheads; a VM suspends and resumes in 32 s. L1 (1 node, 3000 s) starts on
host 0 at 0. L2, an AR on both hosts at [1000, 1100), suspends L1 at 968-1000. L3, an AR on
host 0 at [1100, 2000), keeps L1 off its own host until 2000; host 1 is free from 1100.
"""

from __future__ import annotations

from typing import Any

from conftest import ar, be, hosts, planned, run, scheduler, timeline

from cloudctl.scheduler.core import Scheduler
from cloudctl.scheduler.model import LeaseRequest, LeaseState


def workload(**image: Any) -> list[LeaseRequest]:
    return [be(1, 0, 3000, **image), ar(2, 10, 1000, 100, nodes=2), ar(3, 20, 1100, 900)]


def check_setup(s: Scheduler) -> None:
    assert timeline(s.leases[2])["runs"] == [(1000, 1100, (0, 1))]
    assert timeline(s.leases[3])["runs"] == [(1100, 2000, (0,))]
    assert s.leases[1].runs[0] == (0, 968, (0,))
    assert s.leases[1].suspensions == [(968, 1000)]


def test_without_migration_the_lease_waits_for_its_own_host() -> None:
    s = run(workload(), hosts(2))
    check_setup(s)
    assert timeline(s.leases[1]) == {
        "state": "done",
        "runs": [(0, 968, (0,)), (2032, 4064, (0,))],  # 968 + 2032 = 3000
        "suspensions": [(968, 1000)],
        "resumptions": [(2000, 2032)],
        "done": 4064,
    }


def test_with_migration_the_lease_resumes_elsewhere_earlier() -> None:
    # The memory image moves as soon as the lease is suspended (1000-1082), while host 1
    # still runs L2; the lease resumes there as soon as L2 ends.
    s = run(workload(), hosts(2), migration=True)
    check_setup(s)
    assert timeline(s.leases[1]) == {
        "state": "done",
        "runs": [(0, 968, (0,)), (1132, 3164, (1,))],
        "suspensions": [(968, 1000)],
        "migrations": [(1000, 1082)],
        "resumptions": [(1100, 1132)],
        "done": 3164,
    }


def test_late_migration_waits_for_the_destination() -> None:
    s = run(workload(), hosts(2), migration=True, early_migration=False)
    check_setup(s)
    assert timeline(s.leases[1]) == {
        "state": "done",
        "runs": [(0, 968, (0,)), (1214, 3246, (1,))],
        "suspensions": [(968, 1000)],
        "migrations": [(1100, 1182)],
        "resumptions": [(1182, 1214)],
        "done": 3246,
    }


def test_early_migration_holds_the_hosts_from_the_resume() -> None:
    s = scheduler(hosts(2), migration=True)
    for r in workload():
        s.advance(r.submit)
        s.submit(r, r.submit)
        s.schedule(r.submit)
    s.advance(1000)
    s.schedule(1000)
    lease = s.leases[1]
    # The image moves at once; host 1 is held only from the resume, when L2 has left it.
    assert planned(lease) == (1000, 1132, 3164, (1,))
    assert lease.run is not None and (lease.run.migrated, lease.run.hold) == (1082, 1100)
    assert [b.start for b in lease.run.bookings] == [1100]
    s.advance(1000)
    assert lease.state is LeaseState.MIGRATING
    s.advance(1082)
    assert lease.state is LeaseState.MIGRATING
    s.advance(1100)
    assert lease.state is LeaseState.RESUMING
    s.advance(1132)
    assert lease.state is LeaseState.ACTIVE


def test_late_migration_is_reserved_before_the_resume() -> None:
    s = scheduler(hosts(2), migration=True, early_migration=False)
    for r in workload():
        s.advance(r.submit)
        s.submit(r, r.submit)
        s.schedule(r.submit)
    s.advance(1000)
    s.schedule(1000)
    lease = s.leases[1]
    assert lease.state is LeaseState.SUSPENDED_SCHEDULED
    # Host 1 is held from the migration's start; the resume follows the migration.
    assert planned(lease) == (1100, 1214, 3246, (1,))
    assert lease.run is not None and lease.run.migrated == 1182
    s.advance(1100)
    assert lease.state is LeaseState.MIGRATING
    s.advance(1182)
    assert lease.state is LeaseState.RESUMING
    s.advance(1214)
    assert lease.state is LeaseState.ACTIVE


def test_migration_is_not_used_when_waiting_is_sooner() -> None:
    # At 1 Mbit/s the memory image takes 8192 s to move: resuming on host 0 at 2000 is much
    # earlier than resuming on host 1 after a migration (1100 + 8192), so the lease waits.
    s = run(workload(), hosts(2), migration=True, bandwidth=1)
    check_setup(s)
    assert timeline(s.leases[1]) == {
        "state": "done",
        "runs": [(0, 968, (0,)), (2032, 4064, (0,))],
        "suspensions": [(968, 1000)],
        "resumptions": [(2000, 2032)],
        "done": 4064,
    }


def test_migrated_disk_is_not_sent_again_from_the_repository() -> None:
    # With image transfers on, the migration moves memory and disk (2 x 82 s) from host 0 to
    # host 1; the disk arrives with it, so the repository link is not used a second time.
    image = dict(image="img-a", image_size_mib=1024)
    s = run(workload(**image), hosts(2), migration=True, image_transfer="multicast")
    assert timeline(s.leases[1]) == {
        "state": "done",
        "runs": [(82, 968, (0,)), (1196, 3310, (1,))],
        "suspensions": [(968, 1000)],
        "migrations": [(1000, 1164)],
        "resumptions": [(1164, 1196)],
        "transfers": [(0, 82)],
        "done": 3310,
    }
