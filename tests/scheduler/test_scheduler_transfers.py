"""Image transfers over the one link from the image repository.

1024 MiB at 100 Mbit/s takes ceil(1024 x 8 / 100) = 82 s. No other overheads here.
"""

from __future__ import annotations

import pytest
from conftest import ar, be, hosts, im, run, scheduler, timeline

from cloudctl.scheduler.model import LeaseState
from cloudctl.scheduler.timing import transfer_time

A = dict(image="img-a", image_size_mib=1024)
B = dict(image="img-b", image_size_mib=1024)
C = dict(image="img-c", image_size_mib=1024)
D = dict(image="img-d", image_size_mib=1024)


@pytest.mark.parametrize("size, bandwidth, seconds",
                         [(1024, 100, 82), (2048, 100, 164), (1024, 1000, 9), (100, 8, 100)])
def test_transfer_time(size: int, bandwidth: float, seconds: int) -> None:
    assert transfer_time(size, bandwidth) == seconds


def test_no_transfers_when_image_transfer_is_none() -> None:
    s = run([be(1, 0, 1000, nodes=2, **A)], hosts(4))
    assert timeline(s.leases[1]) == {"state": "done", "runs": [(0, 1000, (0, 1))], "done": 1000}


@pytest.mark.parametrize("mode, seconds", [("multicast", 82), ("unicast", 164)])
def test_best_effort_lease_starts_after_its_transfer(mode: str, seconds: int) -> None:
    # Multicast sends one copy for the lease, unicast one per node.
    s = run([be(1, 0, 1000, nodes=2, **A)], hosts(4), image_transfer=mode)
    assert timeline(s.leases[1]) == {
        "state": "done",
        "runs": [(seconds, seconds + 1000, (0, 1))],
        "transfers": [(0, seconds)],
        "done": seconds + 1000,
    }


def test_bandwidth_sets_the_transfer_time() -> None:
    s = run([be(1, 0, 1000, **A)], hosts(4), image_transfer="multicast", bandwidth=1000)
    assert timeline(s.leases[1])["transfers"] == [(0, 9)]
    assert s.leases[1].first_start == 9


def test_best_effort_transfers_are_first_come_first_served() -> None:
    s = run([be(1, 0, 1000, **A), be(2, 0, 1000, **B),
             be(3, 5, 100, image="img-c", image_size_mib=2048)],
            hosts(4), image_transfer="multicast")
    assert timeline(s.leases[1]) == {
        "state": "done", "runs": [(82, 1082, (0,))], "transfers": [(0, 82)], "done": 1082,
    }
    assert timeline(s.leases[2]) == {
        "state": "done", "runs": [(164, 1164, (1,))], "transfers": [(82, 164)], "done": 1164,
    }
    assert timeline(s.leases[3]) == {
        "state": "done", "runs": [(328, 428, (2,))], "transfers": [(164, 328)], "done": 428,
    }


def test_ar_transfers_take_the_latest_slot_ending_by_the_start() -> None:
    s = run([ar(1, 0, 1000, 100, **A), ar(2, 10, 1000, 100, **B), ar(3, 20, 500, 100, **C),
             ar(4, 30, 1000, 100, **D)], hosts(4), image_transfer="multicast")
    assert [s.leases[i].transfers for i in (1, 2, 3, 4)] == [
        [(918, 1000)],
        [(836, 918)],  # the link is busy 918-1000: the latest free slot before it
        [(418, 500)],
        [(754, 836)],
    ]
    assert [s.leases[i].first_start for i in (1, 2, 3, 4)] == [1000, 1000, 500, 1000]


def test_ar_unicast_sends_one_copy_per_node() -> None:
    s = run([ar(1, 0, 1000, 100, nodes=2, **A)], hosts(4), image_transfer="unicast")
    assert s.leases[1].transfers == [(836, 1000)]


def test_ar_rejected_when_its_transfer_cannot_arrive_in_time() -> None:
    s = scheduler(hosts(4), image_transfer="multicast")
    decision = s.submit(ar(1, 0, 50, 100, **A), 0)
    assert decision.state is LeaseState.REJECTED
    assert "transfer" in s.leases[1].reason
    assert s.link.busy == []


def test_ar_transfer_comes_first_when_submitted_with_a_best_effort_lease() -> None:
    # Both at 0: the AR is placed on arrival (transfer 18-100), the best-effort lease at the
    # queue pass takes the first slot after it.
    s = run([be(1, 0, 1000, **B), ar(2, 0, 100, 100, **A)], hosts(4), image_transfer="multicast")
    assert s.leases[2].transfers == [(18, 100)]
    assert timeline(s.leases[1]) == {
        "state": "done", "runs": [(182, 1182, (1,))], "transfers": [(100, 182)], "done": 1182,
    }


# --- the image cache ----------------------------------------------------------------------


def test_cached_image_needs_no_transfer() -> None:
    s = run([be(1, 0, 1000, **A), be(2, 2000, 1000, **A)], hosts(4), image_transfer="multicast")
    assert timeline(s.leases[1]) == {
        "state": "done", "runs": [(82, 1082, (0,))], "transfers": [(0, 82)], "done": 1082,
    }
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(2000, 3000, (0,))], "done": 3000}


def test_without_the_cache_the_image_is_sent_again() -> None:
    s = run([be(1, 0, 1000, **A), be(2, 2000, 1000, **A)], hosts(4), image_transfer="multicast",
            image_cache=False)
    assert timeline(s.leases[2]) == {
        "state": "done", "runs": [(2082, 3082, (0,))], "transfers": [(2000, 2082)], "done": 3082,
    }


def test_cached_image_is_preferred_over_a_free_host_without_it() -> None:
    # L1 holds host 0 for a long time without an image; L2 brings img-a to host 1. L3 (img-a)
    # arrives when hosts 1-3 are free: it goes to host 1 and starts at once.
    s = run([be(1, 0, 10_000), be(2, 0, 1000, **A), be(3, 2000, 1000, **A)], hosts(4),
            image_transfer="multicast")
    assert timeline(s.leases[2])["runs"] == [(82, 1082, (1,))]
    assert timeline(s.leases[3]) == {"state": "done", "runs": [(2000, 3000, (1,))], "done": 3000}


def test_different_image_is_transferred_even_to_a_host_with_a_cache() -> None:
    s = run([be(1, 0, 1000, **A), be(2, 2000, 1000, **B)], hosts(4), image_transfer="multicast")
    assert timeline(s.leases[2])["transfers"] == [(2000, 2082)]
    assert s.leases[2].first_start == 2082


def test_immediate_lease_needs_the_image_already_there() -> None:
    # An IM lease cannot wait 82 s for a transfer; it can start where the image is cached.
    s = run([be(1, 0, 100, **A), im(2, 500, 100, **B), im(3, 500, 100, **A)], hosts(4),
            image_transfer="multicast")
    assert s.leases[2].state is LeaseState.REJECTED
    assert timeline(s.leases[3]) == {"state": "done", "runs": [(500, 600, (0,))], "done": 600}


@pytest.mark.parametrize("mode", ["unicast", "multicast"])
def test_only_hosts_without_the_image_are_sent_a_copy(mode: str) -> None:
    # Host 0 holds img-a from L1; L2 needs 2 nodes: one copy, to host 1 only (82 s), in
    # either mode, and L2 starts when it arrives.
    s = run([be(1, 0, 100, **A), be(2, 1000, 100, nodes=2, **A)], hosts(2), image_transfer=mode)
    assert timeline(s.leases[2]) == {
        "state": "done", "runs": [(1082, 1182, (0, 1))], "transfers": [(1000, 1082)], "done": 1182,
    }
