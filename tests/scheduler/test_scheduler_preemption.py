"""Advance reservations preempting best-effort leases; IM and AR admission.

Unless a test says otherwise: no overheads, VMs of 1024 MiB suspended and resumed at
32 MiB/s, so one VM suspends or resumes in 32 s.
"""

from __future__ import annotations

from conftest import ar, be, hosts, im, planned, run, scheduler, timeline

from cloudctl.scheduler.core import Preemption, Scheduler
from cloudctl.scheduler.model import LeaseState


def suspended_ids(s: Scheduler) -> list[int]:
    return sorted(i for i, lease in s.leases.items() if lease.suspensions)


# --- suspension and the timing model ------------------------------------------------------


def test_local_exclusion_two_nodes_suspend_and_resume_in_one_step() -> None:
    # 2 VMs on 2 nodes: one step of 32 s plus 2 commands x 2 s = 36 s, each way.
    s = run([be(1, 0, 1000, nodes=2), ar(2, 100, 500, 100, nodes=2)], hosts(2),
            enactment_overhead=2)
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(500, 596, (0, 1))], "done": 600}
    assert timeline(s.leases[1]) == {
        "state": "done",
        "runs": [(0, 464, (0, 1)), (636, 1172, (0, 1))],  # 464 + 536 = 1000 s of work
        "suspensions": [(464, 500)],
        "resumptions": [(600, 636)],
        "done": 1176,  # shutdown: 2 commands x 2 s
    }
    assert s.preemptions == 1


def test_local_exclusion_vms_on_one_node_go_one_after_another() -> None:
    # Both VMs on one 2-CPU host: two steps of 32 + 2 = 34 s.
    s = run([be(1, 0, 1000, nodes=2), ar(2, 100, 500, 100, cpus=2, memory=2048)],
            hosts(1, cpus=2, memory=2048), enactment_overhead=2)
    assert timeline(s.leases[1]) == {
        "state": "done",
        "runs": [(0, 432, (0, 0)), (668, 1236, (0, 0))],
        "suspensions": [(432, 500)],
        "resumptions": [(600, 668)],
        "done": 1240,
    }


def test_global_exclusion_is_serial() -> None:
    # 2 VMs on 2 nodes, but one at a time: 2 x (32 + 2) = 68 s each way.
    s = run([be(1, 0, 1000, nodes=2), ar(2, 100, 500, 100, nodes=2)], hosts(2),
            enactment_overhead=2, suspend_exclusion="global")
    assert timeline(s.leases[1]) == {
        "state": "done",
        "runs": [(0, 432, (0, 1)), (668, 1236, (0, 1))],
        "suspensions": [(432, 500)],
        "resumptions": [(600, 668)],
        "done": 1240,
    }


def test_override_times_replace_the_memory_part_only() -> None:
    s = run([be(1, 0, 1000), ar(2, 100, 500, 100)], hosts(1), enactment_overhead=3,
            override_suspend_time=10, override_resume_time=20)
    assert timeline(s.leases[1]) == {
        "state": "done",
        "runs": [(0, 487, (0,)), (623, 1136, (0,))],
        "suspensions": [(487, 500)],
        "resumptions": [(600, 623)],
        "done": 1139,
    }


# --- choosing victims ---------------------------------------------------------------------


def four_running(policy: str = "ar-preempts-be") -> Scheduler:
    """Four 1-node leases submitted at 0, 10, 20, 25 fill 4 hosts; an AR wants 2 nodes."""
    return run([be(1, 0, 5000), be(2, 10, 5000), be(3, 20, 5000), be(5, 25, 5000),
                ar(4, 30, 1000, 100, nodes=2)], hosts(4), preemption_policy=policy)


def test_youngest_first() -> None:
    s = four_running()
    assert suspended_ids(s) == [3, 5]
    assert timeline(s.leases[4])["runs"] == [(1000, 1100, (2, 3))]
    assert timeline(s.leases[5]) == {
        "state": "done",
        "runs": [(25, 968, (3,)), (1132, 5189, (3,))],
        "suspensions": [(968, 1000)],
        "resumptions": [(1100, 1132)],
        "done": 5189,
    }
    assert timeline(s.leases[1]) == {"state": "done", "runs": [(0, 5000, (0,))], "done": 5000}


def test_oldest_first_policy() -> None:
    s = four_running("oldest-first")
    assert suspended_ids(s) == [1, 2]
    assert timeline(s.leases[4])["runs"] == [(1000, 1100, (0, 1))]


def test_reprieve_gives_back_victims_that_were_not_needed() -> None:
    # Youngest first: L3 (1 node) is taken out, not enough; then L2 (2 nodes): enough on
    # its own, so L3 is given back. Only L2 is preempted.
    s = scheduler(hosts(4))
    for r in (be(1, 0, 5000), be(2, 10, 5000, nodes=2), be(3, 20, 5000)):
        s.submit(r, r.submit)
        s.schedule(r.submit)
    s.advance(30)
    decision = s.submit(ar(4, 30, 1000, 100, nodes=2), 30)
    assert decision.preempted == [Preemption(2, "suspend", 1000)]
    assert decision.hosts == (1, 2)
    assert planned(s.leases[2]) == (10, 10, 968, (1, 2))
    assert planned(s.leases[3]) == (20, 20, 5020, (3,))
    assert planned(s.leases[1]) == (0, 0, 5000, (0,))
    assert s.preemptions == 1


# --- rejections ---------------------------------------------------------------------------


def test_ar_rejected_when_overlapping_leases_are_non_preemptible() -> None:
    s = scheduler(hosts(4))
    s.submit(be(1, 0, 5000, nodes=2, preemptible=False), 0)
    s.schedule(0)
    decision = s.submit(ar(2, 30, 1000, 100, nodes=4), 30)
    assert decision.state is LeaseState.REJECTED
    assert any("non-preemptible" in r and "1" in r for r in decision.reasons)
    assert "non-preemptible" in s.leases[2].reason
    assert planned(s.leases[1]) == (0, 0, 5000, (0, 1))


def test_no_preemption_policy_rejects() -> None:
    s = scheduler(hosts(4), preemption_policy="no-preemption")
    s.submit(be(1, 0, 5000, nodes=2), 0)
    s.schedule(0)
    decision = s.submit(ar(2, 30, 1000, 100, nodes=4), 30)
    assert decision.state is LeaseState.REJECTED
    assert "no-preemption" in s.leases[2].reason
    assert planned(s.leases[1]) == (0, 0, 5000, (0, 1))
    assert s.preemptions == 0


def test_ar_in_the_past_is_rejected() -> None:
    s = scheduler(hosts(2))
    decision = s.submit(ar(1, 100, 50, 100), 100)
    assert decision.state is LeaseState.REJECTED
    assert "past" in decision.reasons[0]


def test_ar_starting_now_is_accepted() -> None:
    s = scheduler(hosts(2))
    decision = s.submit(ar(1, 100, 100, 100, nodes=2), 100)
    assert (decision.state, decision.start, decision.end, decision.hosts) == (
        LeaseState.SCHEDULED, 100, 200, (0, 1))


def test_im_accepted_when_it_can_start_now_and_rejected_otherwise() -> None:
    s = run([be(1, 0, 1000, nodes=2), im(2, 100, 100), im(3, 100, 100, nodes=3),
             im(4, 1000, 100, nodes=2)], hosts(3))
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(100, 200, (2,))], "done": 200}
    assert timeline(s.leases[3]) == {"state": "rejected", "runs": [], "done": None}
    assert timeline(s.leases[4]) == {"state": "done", "runs": [(1000, 1100, (0, 1))], "done": 1100}
    # An IM never preempts: the best-effort lease ran undisturbed.
    assert timeline(s.leases[1]) == {"state": "done", "runs": [(0, 1000, (0, 1))], "done": 1000}


def test_im_shutdown_comes_after_its_run() -> None:
    s = run([im(1, 10, 100, nodes=2)], hosts(2), enactment_overhead=2, shutdown_time=5)
    assert timeline(s.leases[1]) == {"state": "done", "runs": [(10, 110, (0, 1))], "done": 119}


# --- without suspension -------------------------------------------------------------------


def test_suspension_none_kills_and_requeues_with_full_duration() -> None:
    s = scheduler(hosts(2), suspension="none")
    s.submit(be(1, 0, 1000, nodes=2), 0)
    s.schedule(0)
    s.advance(100)
    decision = s.submit(ar(2, 100, 500, 100, nodes=2), 100)
    assert decision.preempted == [Preemption(1, "kill", 500)]
    s2 = run([be(1, 0, 1000, nodes=2), ar(2, 100, 500, 100, nodes=2)], hosts(2),
             suspension="none")
    # Killed at the AR's start; starts over after it with its whole 1000 s.
    assert timeline(s2.leases[1]) == {
        "state": "done", "runs": [(0, 500, (0, 1)), (600, 1600, (0, 1))], "done": 1600,
    }


def test_victim_below_the_threshold_is_requeued_not_suspended() -> None:
    # REFERENCE.md: "Without suspension (or when a suspension would not fit the threshold) a
    # preempted running lease is cancelled and re-queued". L1 has run 50 s when the AR
    # starts; its threshold is 32 s x (1 + 1) = 64 s, so it is not suspended but requeued,
    # and starts over after the AR.
    s = scheduler(hosts(1))
    s.submit(be(1, 950, 1000), 950)
    s.schedule(950)
    s.advance(960)
    decision = s.submit(ar(2, 960, 1000, 100), 960)
    assert [(p.lease_id, p.how) for p in decision.preempted] == [(1, "kill")]
    s2 = run([be(1, 950, 1000), ar(2, 960, 1000, 100)], hosts(1))
    assert timeline(s2.leases[1]) == {
        "state": "done", "runs": [(950, 1000, (0,)), (1100, 2100, (0,))], "done": 2100,
    }


def test_victim_at_the_threshold_is_suspended() -> None:
    # Ran exactly 64 s when the AR starts: 32 s of running, 32 s of suspending.
    s = run([be(1, 936, 1000), ar(2, 960, 1000, 100)], hosts(1))
    assert timeline(s.leases[1]) == {
        "state": "done",
        "runs": [(936, 968, (0,)), (1132, 2100, (0,))],
        "suspensions": [(968, 1000)],
        "resumptions": [(1100, 1132)],
        "done": 2100,
    }


# --- future reservations ------------------------------------------------------------------


def test_future_best_effort_reservation_is_simply_re_planned() -> None:
    # L2 holds a future reservation at 1000; the AR takes [1000, 1100): L2, which has not
    # started, is moved after the AR, with no suspension.
    s = scheduler(hosts(2))
    for r in (be(1, 0, 1000, nodes=2), be(2, 0, 1000, nodes=2)):
        s.submit(r, 0)
    s.schedule(0)
    assert planned(s.leases[2]) == (1000, 1000, 2000, (0, 1))
    s.advance(100)
    decision = s.submit(ar(3, 100, 1000, 100, nodes=2), 100)
    assert decision.state is LeaseState.SCHEDULED
    assert [(p.lease_id, p.how) for p in decision.preempted] == [(2, "requeue")]
    assert s.leases[2].state is LeaseState.SCHEDULED
    assert planned(s.leases[2]) == (1100, 1100, 2100, (0, 1))
    assert planned(s.leases[1]) == (0, 0, 1000, (0, 1))

    s2 = run([be(1, 0, 1000, nodes=2), be(2, 0, 1000, nodes=2), ar(3, 100, 1000, 100, nodes=2)],
             hosts(2))
    assert timeline(s2.leases[2]) == {"state": "done", "runs": [(1100, 2100, (0, 1))],
                                      "done": 2100}


def test_future_resumption_is_re_planned_after_a_new_ar() -> None:
    # L1 is suspended for L2 at 1000 and its resumption is reserved at 1100; L3 arrives
    # and takes [1100, 1300): the resumption moves to 1300.
    s = scheduler(hosts(1))
    s.submit(be(1, 0, 3000), 0)
    s.schedule(0)
    s.advance(10)
    s.submit(ar(2, 10, 1000, 100), 10)
    s.advance(1000)
    s.schedule(1000)
    assert s.leases[1].state is LeaseState.SUSPENDED_SCHEDULED
    assert planned(s.leases[1]) == (1100, 1132, 3164, (0,))
    decision = s.submit(ar(3, 1010, 1100, 200), 1010)
    assert [(p.lease_id, p.how) for p in decision.preempted] == [(1, "requeue")]
    assert s.leases[1].state is LeaseState.SUSPENDED_SCHEDULED
    assert planned(s.leases[1]) == (1300, 1332, 3364, (0,))


# --- global exclusion across leases -------------------------------------------------------


def test_global_exclusion_serialises_suspensions_of_different_leases() -> None:
    # REFERENCE.md: "With global exclusion all suspensions in the cluster are serial." Two
    # 1-node leases on two hosts are preempted by one AR at 500: one suspends 436-468, the
    # other 468-500 (not both 468-500), and they resume one after the other too.
    s = run([be(1, 0, 1000), be(2, 0, 1000), ar(3, 100, 500, 100, nodes=2)], hosts(2),
            suspend_exclusion="global")
    suspensions = sorted(s.leases[1].suspensions + s.leases[2].suspensions)
    resumptions = sorted(s.leases[1].resumptions + s.leases[2].resumptions)
    assert suspensions == [(436, 468), (468, 500)]
    assert resumptions == [(600, 632), (632, 664)]


def test_local_exclusion_suspends_different_leases_in_parallel() -> None:
    s = run([be(1, 0, 1000), be(2, 0, 1000), ar(3, 100, 500, 100, nodes=2)], hosts(2))
    for i in (1, 2):
        assert timeline(s.leases[i]) == {
            "state": "done",
            "runs": [(0, 468, (i - 1,)), (632, 1164, (i - 1,))],
            "suspensions": [(468, 500)],
            "resumptions": [(600, 632)],
            "done": 1164,
        }


# --- shutdowns ----------------------------------------------------------------------------


def test_ar_shutdown_is_carved_from_its_window() -> None:
    # shutdown_time 5 + 2 s x 2 nodes = 9 s, ending exactly at start + duration.
    s = run([ar(1, 0, 100, 1000, nodes=2)], hosts(2), shutdown_time=5, enactment_overhead=2)
    assert timeline(s.leases[1]) == {"state": "done", "runs": [(100, 1091, (0, 1))], "done": 1100}


def test_best_effort_shutdown_comes_after_its_run() -> None:
    s = run([be(1, 0, 1000, nodes=2)], hosts(2), shutdown_time=5, enactment_overhead=2)
    assert timeline(s.leases[1]) == {"state": "done", "runs": [(0, 1000, (0, 1))], "done": 1009}


def test_ar_shorter_than_its_shutdown_is_rejected() -> None:
    s = scheduler(hosts(2), shutdown_time=5, enactment_overhead=2)
    decision = s.submit(ar(1, 0, 100, 9, nodes=2), 0)
    assert decision.state is LeaseState.REJECTED
    assert "shutdown" in decision.reasons[0]


def test_ar_does_not_preempt_another_ar() -> None:
    s = scheduler(hosts(1))
    s.submit(ar(1, 0, 100, 100), 0)
    decision = s.submit(ar(2, 0, 150, 100), 0)
    assert decision.state is LeaseState.REJECTED
    assert any("ar-conflict: lease 1" in r for r in decision.reasons)


def test_ar_that_fits_on_free_hosts_preempts_nothing() -> None:
    s = run([be(1, 0, 1000), ar(2, 10, 500, 100, nodes=3)], hosts(4))
    assert timeline(s.leases[2])["runs"] == [(500, 600, (1, 2, 3))]
    assert timeline(s.leases[1]) == {"state": "done", "runs": [(0, 1000, (0,))], "done": 1000}
    assert s.preemptions == 0


# --- early ends and preemption ------------------------------------------------------------


def test_lease_ending_before_its_planned_suspension_is_simply_done() -> None:
    s = run([be(1, 0, 3600, real_duration=1000), ar(2, 900, 1800, 1800, nodes=4)], hosts(4),
            enactment_overhead=2, override_suspend_time=0)
    assert timeline(s.leases[1]) == {"state": "done", "runs": [(0, 1000, (0,))], "done": 1000}


def test_requeued_lease_does_its_real_work_again_from_the_start() -> None:
    # 800 s of real work: killed at 500, it starts over at 600 and ends at 1400.
    s = run([be(1, 0, 1000, nodes=2, real_duration=800), ar(2, 100, 500, 100, nodes=2)],
            hosts(2), suspension="none")
    assert timeline(s.leases[1]) == {
        "state": "done", "runs": [(0, 500, (0, 1)), (600, 1400, (0, 1))], "done": 1400,
    }


def test_suspended_lease_does_only_its_remaining_real_work() -> None:
    # 800 s of real work: 468 before the suspension, 332 after the resume.
    s = run([be(1, 0, 1000, nodes=2, real_duration=800), ar(2, 100, 500, 100, nodes=2)],
            hosts(2))
    assert timeline(s.leases[1]) == {
        "state": "done",
        "runs": [(0, 468, (0, 1)), (632, 964, (0, 1))],
        "suspensions": [(468, 500)],
        "resumptions": [(600, 632)],
        "done": 964,
    }
