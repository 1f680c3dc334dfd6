"""The scheduling threshold: a best-effort lease is started in a gap before an AR only if the
gap is at least its suspend (+ resume, when it is resuming) time x (1 + threshold factor).

One host, no overheads: one 1024 MiB VM suspends in 32 s and resumes in 32 s. A fresh lease
needs a gap of 32 x 2 = 64 s (Haizea's threshold counts the resume only for a lease that is
resuming); a suspended one resuming in the gap needs (32 + 32) x 2 = 128 s.
"""

from __future__ import annotations

import pytest
from conftest import ar, be, hosts, run, timeline


def before_an_ar(gap: int, **options: object) -> dict[int, dict[str, object]]:
    """An AR at `gap` (100 s) and a 1000 s best-effort lease, both submitted at 0."""
    s = run([ar(1, 0, gap, 100), be(2, 0, 1000)], hosts(1), **options)
    assert s.leases[1].first_start == gap and s.leases[1].done_at == gap + 100
    return {i: timeline(lease) for i, lease in s.leases.items()}


@pytest.mark.parametrize("gap", [200, 128, 64])
def test_lease_starts_in_a_gap_at_least_the_threshold(gap: int) -> None:
    # It runs, is suspended exactly by the AR's start, resumes at the AR's end and runs
    # the rest of its 1000 s.
    ran = gap - 32
    assert before_an_ar(gap)[2] == {
        "state": "done",
        "runs": [(0, ran, (0,)), (gap + 132, gap + 132 + 1000 - ran, (0,))],
        "suspensions": [(ran, gap)],
        "resumptions": [(gap + 100, gap + 132)],
        "done": 1164,
    }


@pytest.mark.parametrize("gap", [63, 40, 33])
def test_lease_waits_for_the_ar_when_the_gap_is_shorter(gap: int) -> None:
    assert before_an_ar(gap)[2] == {
        "state": "done", "runs": [(gap + 100, gap + 1100, (0,))], "done": gap + 1100,
    }


def test_threshold_factor_scales_the_gap() -> None:
    # Factor 2: 32 x 3 = 96 s.
    assert before_an_ar(96, threshold_factor=2)[2]["suspensions"] == [(64, 96)]
    assert before_an_ar(95, threshold_factor=2)[2] == {
        "state": "done", "runs": [(195, 1195, (0,))], "done": 1195,
    }


def test_threshold_factor_zero_still_leaves_time_to_run() -> None:
    # Factor 0: the gap only has to hold the suspension (and a second of work).
    assert before_an_ar(33, threshold_factor=0)[2]["suspensions"] == [(1, 33)]
    assert before_an_ar(32, threshold_factor=0)[2]["runs"] == [(132, 1132, (0,))]


def test_threshold_counts_suspension_overheads() -> None:
    # 2 s per command: a suspend takes 34 s, so the threshold is 68 s.
    assert before_an_ar(68, enactment_overhead=2)[2]["suspensions"] == [(34, 68)]
    assert before_an_ar(67, enactment_overhead=2)[2]["runs"] == [(167, 1167, (0,))]


@pytest.mark.parametrize("gap, resumes_in_gap", [(128, True), (127, False)])
def test_resuming_lease_needs_suspend_plus_resume(gap: int, resumes_in_gap: bool) -> None:
    # L2 is suspended for L1 at 200 (after 168 s of work); L3 is a second AR at 300 + gap.
    s = run([ar(1, 0, 200, 100), ar(3, 0, 300 + gap, 100), be(2, 0, 1000)], hosts(1))
    l3_end = 400 + gap
    if resumes_in_gap:
        # Resume 300-332, run 64 s, suspend 396-428 for L3, resume after it.
        assert timeline(s.leases[2]) == {
            "state": "done",
            "runs": [(0, 168, (0,)), (332, 396, (0,)), (l3_end + 32, 1328, (0,))],
            "suspensions": [(168, 200), (396, 428)],
            "resumptions": [(300, 332), (l3_end, l3_end + 32)],
            "done": 1328,
        }
    else:
        assert timeline(s.leases[2]) == {
            "state": "done",
            "runs": [(0, 168, (0,)), (l3_end + 32, l3_end + 32 + 832, (0,))],
            "suspensions": [(168, 200)],
            "resumptions": [(l3_end, l3_end + 32)],
            "done": l3_end + 32 + 832,
        }


def test_non_preemptible_lease_never_starts_in_a_gap() -> None:
    s = run([ar(1, 0, 500, 100), be(2, 0, 1000, preemptible=False)], hosts(1))
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(600, 1600, (0,))], "done": 1600}


def test_no_gap_start_without_suspension() -> None:
    s = run([ar(1, 0, 500, 100), be(2, 0, 1000)], hosts(1), suspension="none")
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(600, 1600, (0,))], "done": 1600}
