"""Backfilling: how many queued best-effort leases may hold a future reservation.

No overheads here (no enactment, no shutdown), so a lease is done when its run ends.
"""

from __future__ import annotations

import pytest
from conftest import ar, be, hosts, planned, run, scheduler, timeline

from cloudctl.scheduler.model import LeaseRequest, LeaseState

ALL = (0, 1, 2, 3)


def blocked_wide_queue() -> list[LeaseRequest]:
    """L1 holds 2 of 4 hosts until 1000; L2 wants all 4; behind it a short and a long
    1-node lease that could start at once on the 2 free hosts."""
    return [be(1, 0, 1000, nodes=2), be(2, 0, 100, nodes=4), be(3, 0, 100), be(4, 0, 2000)]


def first_pass(requests: list[LeaseRequest], backfilling: int | None) -> dict[int, object]:
    """Submit everything at 0, run one queue pass; each lease's state and reservation."""
    s = scheduler(hosts(4), backfilling=backfilling)
    for r in requests:
        s.submit(r, 0)
    s.schedule(0)
    return {i: (lease.state, planned(lease)) for i, lease in s.leases.items()}


# --- off ----------------------------------------------------------------------------------


def test_off_stops_the_walk_at_the_first_lease_that_cannot_start() -> None:
    Q, S = LeaseState.QUEUED, LeaseState.SCHEDULED
    assert first_pass(blocked_wide_queue(), 0) == {
        1: (S, (0, 0, 1000, (0, 1))),
        2: (Q, None),  # no future reservation allowed...
        3: (Q, None),  # ...and the small leases behind it do not start, though they fit now
        4: (Q, None),
    }


def test_off_schedule() -> None:
    s = run(blocked_wide_queue(), hosts(4), backfilling="off")
    assert [timeline(s.leases[i])["runs"] for i in (1, 2, 3, 4)] == [
        [(0, 1000, (0, 1))],
        [(1000, 1100, ALL)],
        [(1100, 1200, (0,))],
        [(1100, 3100, (1,))],
    ]


def test_off_reason_names_the_limit() -> None:
    s = scheduler(hosts(4), backfilling=0)
    for r in blocked_wide_queue():
        s.submit(r, 0)
    s.schedule(0)
    assert "waiting" in s.leases[2].reason


# --- easy ---------------------------------------------------------------------------------


def test_easy_gives_exactly_one_future_reservation() -> None:
    Q, S = LeaseState.QUEUED, LeaseState.SCHEDULED
    # L2 gets the one reservation (1000, when L1 frees its hosts); L3 is short and
    # backfills now; L4 would still be running at 1000 on a host L2 needs, so it waits.
    assert first_pass(blocked_wide_queue(), 1) == {
        1: (S, (0, 0, 1000, (0, 1))),
        2: (S, (1000, 1000, 1100, ALL)),
        3: (S, (0, 0, 100, (2,))),
        4: (Q, None),
    }


def test_easy_schedule() -> None:
    s = run(blocked_wide_queue(), hosts(4), backfilling="easy")
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(1000, 1100, ALL)], "done": 1100}
    assert timeline(s.leases[3]) == {"state": "done", "runs": [(0, 100, (2,))], "done": 100}
    assert timeline(s.leases[4]) == {"state": "done", "runs": [(1100, 3100, (0,))], "done": 3100}


def easy_versus_conservative() -> list[LeaseRequest]:
    """L1 holds 3 hosts until 1000; L2 (3 nodes) fits after it, L3 (4 nodes) after L2; L4
    (1 node, long) could start now on the 4th host: it does not delay L2, but it delays L3."""
    return [be(1, 0, 1000, nodes=3), be(2, 0, 100, nodes=3), be(3, 0, 100, nodes=4),
            be(4, 0, 2000)]


def test_easy_protects_only_the_first_reservation() -> None:
    s = run(easy_versus_conservative(), hosts(4), backfilling=1)
    runs = {i: timeline(s.leases[i])["runs"] for i in (1, 2, 3, 4)}
    assert runs == {
        1: [(0, 1000, (0, 1, 2))],
        2: [(1000, 1100, (0, 1, 2))],
        3: [(2000, 2100, ALL)],  # delayed by the backfilled L4
        4: [(0, 2000, (3,))],
    }


# --- conservative and N -------------------------------------------------------------------


def test_conservative_reserves_every_queued_lease() -> None:
    S = LeaseState.SCHEDULED
    assert first_pass(easy_versus_conservative(), None) == {
        1: (S, (0, 0, 1000, (0, 1, 2))),
        2: (S, (1000, 1000, 1100, (0, 1, 2))),
        3: (S, (1100, 1100, 1200, ALL)),
        4: (S, (1200, 1200, 3200, (0,))),  # cannot start now: host 3 is L3's at 1100
    }


def test_conservative_schedule() -> None:
    s = run(easy_versus_conservative(), hosts(4), backfilling="conservative")
    runs = {i: timeline(s.leases[i])["runs"] for i in (1, 2, 3, 4)}
    assert runs == {
        1: [(0, 1000, (0, 1, 2))],
        2: [(1000, 1100, (0, 1, 2))],
        3: [(1100, 1200, ALL)],
        4: [(1200, 3200, (0,))],
    }


def test_two_future_reservations() -> None:
    Q, S = LeaseState.QUEUED, LeaseState.SCHEDULED
    assert first_pass(easy_versus_conservative(), 2) == {
        1: (S, (0, 0, 1000, (0, 1, 2))),
        2: (S, (1000, 1000, 1100, (0, 1, 2))),
        3: (S, (1100, 1100, 1200, ALL)),
        4: (Q, None),  # the limit is taken and it cannot start now
    }


@pytest.mark.parametrize("backfilling", ["2", 2])
def test_n_accepts_a_number_as_text(backfilling: str | int) -> None:
    s = run(easy_versus_conservative(), hosts(4), backfilling=backfilling)
    assert [s.leases[i].first_start for i in (1, 2, 3, 4)] == [0, 1000, 1100, 1200]


# --- early ends ---------------------------------------------------------------------------


@pytest.mark.parametrize("backfilling", [1, 2, None])
def test_early_end_pulls_future_reservations_forward(backfilling: int | None) -> None:
    # L1 was reserved until 1000 but ends at 500: everything waiting behind it moves up.
    requests = easy_versus_conservative()
    requests[0] = be(1, 0, 1000, nodes=3, real_duration=500)
    s = run(requests, hosts(4), backfilling=backfilling)
    assert timeline(s.leases[1]) == {"state": "done", "runs": [(0, 500, (0, 1, 2))], "done": 500}
    assert timeline(s.leases[2])["runs"] == [(500, 600, (0, 1, 2))]
    if backfilling == 1:  # L4 backfilled at 0 on host 3 and holds it until 2000
        assert timeline(s.leases[3])["runs"] == [(2000, 2100, ALL)]
        assert timeline(s.leases[4])["runs"] == [(0, 2000, (3,))]
    else:
        assert timeline(s.leases[3])["runs"] == [(600, 700, ALL)]
        assert timeline(s.leases[4])["runs"] == [(700, 2700, (0,))]


def test_early_end_through_the_api() -> None:
    s = scheduler(hosts(4), backfilling=None)
    for r in easy_versus_conservative():
        s.submit(r, 0)
    s.schedule(0)
    s.advance(300)
    s.end_early(1, 300)
    assert s.leases[1].state is LeaseState.DONE and s.leases[1].done_at == 300
    assert s.leases[1].runs == [(0, 300, (0, 1, 2))]
    s.schedule(300)
    assert planned(s.leases[2]) == (300, 300, 400, (0, 1, 2))
    assert planned(s.leases[3]) == (400, 400, 500, ALL)
    assert planned(s.leases[4]) == (500, 500, 2500, (0,))


def test_cancel_pulls_future_reservations_forward() -> None:
    s = scheduler(hosts(4), backfilling="conservative")
    for r in easy_versus_conservative():
        s.submit(r, 0)
    s.schedule(0)
    s.advance(300)
    assert s.cancel(1, 300).state is LeaseState.CANCELLED
    s.schedule(300)
    assert planned(s.leases[2]) == (300, 300, 400, (0, 1, 2))
    assert planned(s.leases[3]) == (400, 400, 500, ALL)
    assert planned(s.leases[4]) == (500, 500, 2500, (0,))


# --- one lease that cannot start says nothing about a different one -----------------------


def test_preemptible_lease_backfills_a_gap_a_non_preemptible_one_could_not() -> None:
    # An AR takes all 3 hosts at [500, 600). L1 and L2 (not preemptible, 1000 s) cannot use
    # the gap before it; L1 takes the one future reservation, L2 waits. L3 has the same
    # shape but may be suspended: it runs in the gap, as it does when L2 is not there.
    ar_and = [ar(9, 0, 500, 100, nodes=3), be(1, 0, 1000, preemptible=False)]
    alone = run([*ar_and, be(3, 0, 1000)], hosts(3))
    expected = {
        "state": "done",
        "runs": [(0, 468, (0,)), (1632, 2164, (0,))],
        "suspensions": [(468, 500)],
        "resumptions": [(1600, 1632)],
        "done": 2164,
    }
    assert timeline(alone.leases[3]) == expected
    behind = run([*ar_and, be(2, 0, 1000, preemptible=False), be(3, 0, 1000)], hosts(3))
    assert timeline(behind.leases[3]) == expected


def test_lease_without_an_image_is_not_held_back_by_one_waiting_for_a_transfer() -> None:
    # L0 holds host 0 until 1000; L1 (2 nodes) has the future reservation at 1000. L2 needs
    # an 82 s transfer, so it could only start later and must wait. L3, same shape but no
    # image, fits now on host 1 and ends long before 1000.
    image = dict(image="img-x", image_size_mib=1024)
    head = [be(0, 0, 1000), be(1, 0, 100, nodes=2)]
    for queue in ([*head, be(3, 0, 100)], [*head, be(2, 0, 100, **image), be(3, 0, 100)]):
        s = run(queue, hosts(2), image_transfer="multicast")
        assert timeline(s.leases[3]) == {"state": "done", "runs": [(0, 100, (1,))], "done": 100}


def test_early_end_never_pushes_a_reservation_later() -> None:
    # EASY. L3 (2 nodes) holds the one future reservation, at 1000 when L1 should end. An AR
    # suspends L2 at 468-500; L2, older than L3, waits in the queue without a reservation.
    # L1 ends early at 700: L3's reservation may only move earlier (to 700, both hosts free);
    # L2 then resumes after it. Giving the freed capacity to L2 first would push L3 to 3264.
    requests = [be(1, 0, 1000, real_duration=700), be(2, 0, 3000), be(3, 10, 100, nodes=2),
                ar(4, 20, 500, 100)]
    without_early_end = run([be(1, 0, 1000), *requests[1:]], hosts(2))
    assert timeline(without_early_end.leases[3])["runs"] == [(1000, 1100, (0, 1))]
    s = run(requests, hosts(2))
    assert timeline(s.leases[3]) == {"state": "done", "runs": [(700, 800, (0, 1))], "done": 800}
    assert timeline(s.leases[2]) == {
        "state": "done",
        "runs": [(0, 468, (1,)), (832, 3364, (1,))],
        "suspensions": [(468, 500)],
        "resumptions": [(800, 832)],
        "done": 3364,
    }
