"""The lease model, heterogeneous hosts and the slot table (the policy registry: tests/policies)."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from cloudctl.policies import policy_set
from conftest import ar, be, config, hosts, im, run, scheduler, timeline

from cloudctl.errors import InvalidInput, InvalidTransition
from cloudctl.scheduler.core import Scheduler
from cloudctl.scheduler.lease import Lease
from cloudctl.scheduler.model import (
    FINAL_STATES,
    Capacity,
    HostSpec,
    LeaseState,
    check_transition,
)
from cloudctl.scheduler.slottable import Booking, SlotTable, vnodes_fitting

S = LeaseState

# --- the state machine --------------------------------------------------------------------


@pytest.mark.parametrize("old, new", [
    (S.NEW, S.ACTIVE),
    (S.NEW, S.DONE),
    (S.PENDING, S.ACTIVE),
    (S.QUEUED, S.ACTIVE),
    (S.ACTIVE, S.RESUMING),
    (S.SUSPENDING, S.ACTIVE),
    (S.SUSPENDED_QUEUED, S.ACTIVE),
    (S.DONE, S.ACTIVE),
    (S.DONE, S.CANCELLED),
    (S.REJECTED, S.PENDING),
    (S.CANCELLED, S.QUEUED),
])
def test_illegal_transitions_raise(old: LeaseState, new: LeaseState) -> None:
    with pytest.raises(InvalidTransition, match=f"lease 7: {old.value} -> {new.value}"):
        check_transition(7, old, new)


@pytest.mark.parametrize("path", [
    [S.NEW, S.PENDING, S.QUEUED, S.SCHEDULED, S.ACTIVE, S.DONE],
    [S.NEW, S.PENDING, S.SCHEDULED, S.PREPARING, S.READY, S.ACTIVE, S.SUSPENDING,
     S.SUSPENDED_PENDING, S.SUSPENDED_QUEUED, S.SUSPENDED_SCHEDULED, S.MIGRATING,
     S.RESUMING, S.RESUMED_READY, S.ACTIVE, S.DONE],
    [S.NEW, S.PENDING, S.REJECTED],
    [S.NEW, S.PENDING, S.QUEUED, S.CANCELLED],
    [S.NEW, S.PENDING, S.SCHEDULED, S.ACTIVE, S.FAIL],
])
def test_haizea_paths_are_legal(path: list[LeaseState]) -> None:
    for old, new in pairwise(path):
        check_transition(1, old, new)


def test_final_states_have_no_way_out() -> None:
    assert FINAL_STATES == {S.DONE, S.CANCELLED, S.FAIL, S.REJECTED}
    for final in FINAL_STATES:
        assert final.final
        for new in LeaseState:
            with pytest.raises(InvalidTransition):
                check_transition(1, final, new)


def test_any_live_state_may_be_cancelled_or_fail() -> None:
    for state in LeaseState:
        if not state.final:
            check_transition(1, state, S.CANCELLED)
            check_transition(1, state, S.FAIL)


def test_lease_move_keeps_its_state_on_an_illegal_transition() -> None:
    lease = Lease(be(1, 0, 100))
    assert lease.move(S.PENDING) is S.NEW
    with pytest.raises(InvalidTransition):
        lease.move(S.DONE)
    assert lease.state is S.PENDING


def test_scheduler_records_every_transition_of_a_preempted_lease() -> None:
    seen: list[tuple[int, str, str, int]] = []
    s = Scheduler(hosts(1), config(), policy_set(config()),
                  listener=lambda lease, old, new, now, why: seen.append(
                      (lease.id, old.value, new.value, now)))
    s.submit(be(1, 0, 1000), 0)
    s.schedule(0)
    s.advance(100)
    s.submit(ar(2, 100, 500, 100), 100)
    while (t := s.next_event_time()) is not None:
        s.advance(t)
        s.schedule(t)
    assert [x for x in seen if x[0] == 1] == [
        (1, "new", "pending", 0),
        (1, "pending", "queued", 0),
        (1, "queued", "scheduled", 0),
        (1, "scheduled", "active", 0),
        (1, "active", "suspending", 468),
        (1, "suspending", "suspended-pending", 500),
        (1, "suspended-pending", "suspended-queued", 500),
        (1, "suspended-queued", "suspended-scheduled", 500),
        (1, "suspended-scheduled", "resuming", 600),
        (1, "resuming", "active", 632),
        (1, "active", "done", 1164),
    ]


def test_end_early_of_a_lease_that_is_not_running_is_refused() -> None:
    s = scheduler(hosts(1))
    s.submit(be(1, 0, 100), 0)
    s.submit(be(2, 0, 100), 0)
    s.schedule(0)
    with pytest.raises(InvalidInput, match="not running"):
        s.end_early(2, 10)


def test_duplicate_lease_id_is_refused() -> None:
    s = scheduler(hosts(1))
    s.submit(be(1, 0, 100), 0)
    with pytest.raises(InvalidInput, match="already exists"):
        s.submit(be(1, 5, 100), 5)


def test_cancel_a_queued_lease_and_a_done_one() -> None:
    s = scheduler(hosts(1))
    s.submit(be(1, 0, 100), 0)
    s.submit(be(2, 0, 100), 0)
    s.schedule(0)
    assert s.cancel(2, 10).state is S.CANCELLED
    s.advance(100)
    assert s.leases[1].state is S.DONE
    assert s.cancel(1, 200).state is S.DONE


# --- heterogeneous hosts, disk, packing ---------------------------------------------------


SMALL_AND_BIG = [HostSpec("small", Capacity(1, 1024)), HostSpec("big", Capacity(4, 8192))]


def test_lease_that_fits_only_the_big_host_goes_there() -> None:
    s = run([be(1, 0, 100, memory=4096), be(2, 0, 100, cpus=2), be(3, 0, 100)], SMALL_AND_BIG)
    assert timeline(s.leases[1]) == {"state": "done", "runs": [(0, 100, (1,))], "done": 100}
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(0, 100, (1,))], "done": 100}
    assert timeline(s.leases[3]) == {"state": "done", "runs": [(0, 100, (0,))], "done": 100}


def test_memory_and_disk_are_checked_together_on_one_host() -> None:
    # Host 0 has the memory, host 1 the disk; a lease needing both fits neither.
    site = [HostSpec("mem", Capacity(4, 8192, 10_000)), HostSpec("disk", Capacity(1, 1024, 50_000))]
    s = run([be(1, 0, 100, memory=512, disk=20_000), be(2, 0, 100, memory=2048, disk=20_000),
             be(3, 0, 100, memory=2048, disk=5_000)], site)
    assert timeline(s.leases[1])["runs"] == [(0, 100, (1,))]
    assert s.leases[2].state is S.REJECTED
    assert "larger than the cluster" in s.leases[2].reason
    assert timeline(s.leases[3])["runs"] == [(0, 100, (0,))]


def test_lease_needing_more_disk_than_any_host_is_rejected() -> None:
    site = [HostSpec("a", Capacity(4, 8192, 10_000)), HostSpec("b", Capacity(4, 8192, 20_000))]
    s = scheduler(site)
    decision = s.submit(be(1, 0, 100, disk=30_000), 0)
    assert decision.state is S.REJECTED
    assert "larger than the cluster" in decision.reasons[0]
    assert "30000 MiB disk" in decision.reasons[0]


def test_disk_is_booked_not_only_checked() -> None:
    # Two 6000 MiB disks do not fit one 10000 MiB host at the same time.
    site = [HostSpec("h", Capacity(4, 8192, 10_000))]
    s = run([be(1, 0, 100, disk=6000), be(2, 0, 100, disk=6000)], site)
    assert timeline(s.leases[2])["runs"] == [(100, 200, (0,))]


def test_several_virtual_nodes_pack_onto_one_host() -> None:
    s = run([be(1, 0, 100, nodes=4)], hosts(2, cpus=4, memory=8192))
    assert timeline(s.leases[1])["runs"] == [(0, 100, (0, 0, 0, 0))]


def test_packing_is_limited_by_memory() -> None:
    # 2 x 3000 MiB fit one 8192 MiB host; the third virtual node goes to the next host.
    s = run([be(1, 0, 100, nodes=3, memory=3000)], hosts(2, cpus=4, memory=8192))
    assert timeline(s.leases[1])["runs"] == [(0, 100, (0, 0, 1))]
    # With host 0 taken by a 4-VM lease, host 1 holds only 2 of the 3: it waits.
    s = run([be(1, 0, 100, nodes=4), be(2, 0, 100, nodes=3, memory=3000)],
            hosts(2, cpus=4, memory=8192))
    assert timeline(s.leases[2])["runs"] == [(100, 200, (0, 0, 1))]


def test_ar_packs_too() -> None:
    s = scheduler(hosts(2, cpus=4, memory=8192))
    decision = s.submit(ar(1, 0, 50, 100, nodes=3, memory=2048), 0)
    assert decision.hosts == (0, 0, 0)


@pytest.mark.parametrize("make", [
    lambda: be(1, 0, 100, nodes=5),
    lambda: ar(1, 0, 10, 100, nodes=5),
    lambda: im(1, 0, 100, nodes=5),
    lambda: be(1, 0, 100, memory=2048),
    lambda: be(1, 0, 100, cpus=2),
])
def test_lease_larger_than_the_cluster_is_rejected_with_a_reason(make: Any) -> None:
    s = scheduler(hosts(4))
    decision = s.submit(make(), 0)
    assert decision.state is S.REJECTED
    assert s.leases[1].state is S.REJECTED
    assert "larger than the cluster" in s.leases[1].reason
    assert "the cluster holds at most" in decision.reasons[0]


def test_greedy_prefers_a_host_free_for_the_whole_run() -> None:
    # Host 0 has an AR at 500; the 1000 s lease goes to host 1 rather than being suspended.
    s = run([ar(1, 0, 500, 100), be(2, 0, 1000)], hosts(2))
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(0, 1000, (1,))], "done": 1000}


def test_greedy_prefers_a_host_with_fewer_leases() -> None:
    s = run([be(1, 0, 1000), be(2, 10, 1000)], hosts(2, cpus=2, memory=2048))
    assert timeline(s.leases[2])["runs"] == [(10, 1010, (1,))]


def test_disabled_hosts_are_not_used() -> None:
    site = [HostSpec("a", Capacity(1, 1024)), HostSpec("b", Capacity(1, 1024), enabled=False),
            HostSpec("c", Capacity(1, 1024))]
    s = run([be(1, 0, 100, nodes=2), be(2, 0, 100, nodes=3), be(3, 0, 100, nodes=4)], site)
    assert timeline(s.leases[1])["runs"] == [(0, 100, (0, 2))]
    # Needs the disabled host: it waits for it to come back rather than being refused.
    assert s.leases[2].state is S.QUEUED and s.leases[2].reason.startswith("waiting")
    assert s.leases[3].state is S.REJECTED  # more than the cluster has, disabled or not


# --- explanations -------------------------------------------------------------------------


def test_rejection_names_each_host_and_the_short_resource() -> None:
    s = scheduler(hosts(2, cpus=2, memory=2048))
    s.submit(ar(1, 0, 100, 100, memory=1536), 0)
    s.submit(ar(2, 0, 100, 100, memory=1536), 0)
    decision = s.submit(ar(3, 0, 100, 100), 0)
    assert decision.state is S.REJECTED
    assert "host-0: memory: need 1024 MiB, free 512 MiB" in decision.reasons[0]
    assert "host-1: memory: need 1024 MiB, free 512 MiB" in decision.reasons[0]
    assert "ar-conflict: lease 1" in decision.reasons[0]


def test_queued_lease_says_why_it_waits() -> None:
    s = scheduler(hosts(2), backfilling="off")
    s.submit(be(1, 0, 100, nodes=2), 0)
    s.submit(be(2, 0, 100), 0)
    s.schedule(0)
    assert s.leases[2].state is S.QUEUED
    assert s.leases[2].reason.startswith("waiting")


# --- the slot table -----------------------------------------------------------------------


ONE = Capacity(1, 1024)


def table() -> SlotTable:
    """Two hosts of 2 CPUs / 2048 MiB. Host 0: one VM in [0, 100), another in [50, 150).
    Host 1: one VM in [200, 300)."""
    t = SlotTable(hosts(2, cpus=2, memory=2048))
    for start, end, host in ((0, 100, 0), (50, 150, 0), (200, 300, 1)):
        t.add(Booking(start, end, host, ONE, owner=object()))
    return t


def test_changepoints() -> None:
    t = table()
    assert t.changepoints(0) == [100, 150, 300]
    assert t.changepoints(100) == [150, 300]
    assert t.changepoints(300) == []
    t.add(Booking(10, 150, 1, ONE, owner=object()))
    assert t.changepoints(0) == [100, 150, 300]  # distinct


@pytest.mark.parametrize("host, start, end, expected", [
    (0, 0, 50, (1, 1)),
    (0, 50, 100, (0, 2)),
    (0, 0, 150, (0, 2)),
    (0, 100, 150, (1, 1)),
    (0, 150, 200, (2, 0)),
    (1, 0, 200, (2, 0)),
    (1, 150, 250, (1, 1)),
    (1, 300, 400, (2, 0)),
])
def test_fit_count(host: int, start: int, end: int, expected: tuple[int, int]) -> None:
    assert table().fit_count(host, start, end, ONE) == expected


def test_fit_count_checks_every_resource() -> None:
    t = SlotTable([HostSpec("h", Capacity(8, 4096, 10_000))])
    t.add(Booking(0, 100, 0, Capacity(1, 1024, 6000), owner=object()))
    assert t.fit_count(0, 0, 100, Capacity(1, 512, 0)) == (6, 1)
    assert t.fit_count(0, 0, 100, Capacity(1, 1024, 0)) == (3, 1)
    assert t.fit_count(0, 0, 100, Capacity(1, 512, 2000)) == (2, 1)
    assert t.fit_count(0, 100, 200, Capacity(1, 512, 2000)) == (5, 0)


@pytest.mark.parametrize("free, need, expected", [
    ((4, 4096, 0), Capacity(1, 1024), 4),
    ((4, 2048, 0), Capacity(1, 1024), 2),
    ((1, 4096, 0), Capacity(1, 1024), 1),
    ((4, 4096, 0), Capacity(1, 1024, 1), 0),
    ((4, 4096, 3000), Capacity(1, 1024, 1000), 3),
    ((4, -1, 0), Capacity(1, 1024), 0),
])
def test_vnodes_fitting(free: tuple[int, int, int], need: Capacity, expected: int) -> None:
    assert vnodes_fitting(*free, need) == expected


def test_sweep_finds_the_earliest_changepoint_where_k_fit() -> None:
    t = table()
    found = [(when, sorted((c.host, c.fits) for c in cands))
             for when, cands in t.sweep(ONE, 3, 100, 0)]
    # At 0 only host 1's two slots hold for [0, 100); from 100 host 0 has one more.
    assert found[0] == (100, [(0, 1), (1, 2)])
    assert [when for when, _ in t.sweep(ONE, 4, 100, 0)][0] == 300


def test_advance_forgets_what_ended() -> None:
    t = table()
    t.advance(100)
    assert t.now == 100
    assert t.changepoints(0) == [150, 300]
    assert t.usage_at(0, 120) == (1, 1024, 0)
    assert t.fit_count(0, 100, 150, ONE) == (1, 1)


def test_truncate_and_remove_give_capacity_back() -> None:
    t = SlotTable(hosts(1))
    a = t.add(Booking(0, 100, 0, ONE, owner=object()))
    b = t.add(Booking(100, 200, 0, ONE, owner=object()))
    t.truncate(a, 40)
    assert t.fit_count(0, 40, 100, ONE) == (1, 0)
    assert t.changepoints(0) == [40, 200]
    t.remove(b)
    assert t.fit_count(0, 40, 1000, ONE) == (1, 0)
    assert t.changepoints(0) == [40]
