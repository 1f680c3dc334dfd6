"""Bursting to a public cloud as the scheduler plans it: which leases go, when, on what
instance type and at what price, under the provider's monthly budget. Times to the second.

Unless a test says otherwise: hosts of 1 CPU / 1024 MiB, a provider whose cheapest fitting
type is `small` (1 vCPU, 2048 MiB) at $0.36/h ($0.0001/s), instances boot in 60 s, EC2-style
billing per second with a 60 s minimum.
"""

from __future__ import annotations

from typing import Any

import pytest
from cloudctl.policies import burst_policies, policy_set
from conftest import ar, be, config, hosts, im, planned, timeline

from cloudctl.config import provider_from
from cloudctl.errors import InvalidInput
from cloudctl.scheduler.burst import Burster, InstanceType, Ledger, Provider, calendar_month
from cloudctl.scheduler.core import Scheduler
from cloudctl.scheduler.model import LeaseState
from cloudctl.sim.simulator import simulate, summarize

CATALOGUE = (InstanceType("small", 1, 2048, 0.36), InstanceType("big", 4, 16384, 1.44),
             InstanceType("tiny", 1, 512, 0.01))


def provider(**kw: Any) -> Provider:
    options: dict[str, Any] = {"name": "ec2", "catalogue": CATALOGUE, "boot_time": 60}
    options.update(kw)
    return Provider(**options)


def cloud(n: int = 2, *providers: Provider, **options: Any) -> Scheduler:
    settings = config(**options)
    clouds = list(providers) or [provider()]
    return Scheduler(hosts(n), settings, policy_set(settings), burster=Burster(
        clouds, burst_policies(clouds), ledger=Ledger(calendar_month())))


def test_an_immediate_lease_with_no_local_room_bursts_to_the_cheapest_type_that_fits() -> None:
    s = cloud()
    assert s.submit(im(1, 0, 1000, nodes=2), 0).hosts == (0, 1)
    decision = s.submit(im(2, 10, 600), 10)
    plan = decision.burst
    assert plan is not None and decision.hosts == ()
    assert (plan.provider, plan.instance_type, plan.nodes) == ("ec2", "small", 1)
    # launched now, running after the boot, billed from launch to end: 660 s at $0.0001/s
    assert (plan.start, plan.run_start, plan.end) == (10, 70, 670)
    assert plan.cost == pytest.approx(0.066)
    assert s.leases[2].state is LeaseState.SCHEDULED
    kinds = [(a.time, a.kind) for a in s.advance(70) if a.lease_id == 2]
    assert kinds == [(10, "launch"), (70, "start"), (70, "running")]
    assert s.leases[2].state is LeaseState.ACTIVE
    s.advance(1000)
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(70, 670, ())], "done": 670}
    assert s.burster is not None and s.burster.stats.cost == pytest.approx(0.066)


def test_the_budget_stops_bursting_with_the_reason() -> None:
    s = cloud(2, provider(budget_per_month=0.1))
    s.submit(im(1, 0, 5000, nodes=2), 0)
    assert s.submit(im(2, 0, 600), 0).burst is not None  # $0.066
    decision = s.submit(im(3, 0, 600), 0)  # another $0.066 would make $0.132
    assert decision.state is LeaseState.REJECTED
    why = "; ".join(decision.reasons)
    assert "budget: ec2 has $0.03 of $0.10 left for 1970-01, the lease would cost $0.07" in why
    assert "host-0: cpu: need 1, free 0" in why  # and the local story


def test_a_new_month_brings_a_new_budget() -> None:
    month = 31 * 86400  # 1970-02-01
    s = cloud(2, provider(budget_per_month=0.1))
    s.submit(im(1, 0, 2 * month, nodes=2), 0)
    assert s.submit(im(2, 0, 600), 0).burst is not None
    assert s.submit(im(3, 0, 600), 0).state is LeaseState.REJECTED
    assert s.submit(im(4, month, 600), month).burst is not None


def test_the_cheapest_type_must_hold_the_node_and_ties_go_to_the_smaller() -> None:
    p = provider(catalogue=CATALOGUE + (InstanceType("same-price", 2, 2048, 0.36),))
    need = be(1, 0, 10, cpus=1, memory=1024).capacity
    assert p.cheapest(need).name == "small"  # type: ignore[union-attr]
    assert p.cheapest(be(1, 0, 10, cpus=3, memory=1024).capacity).name == "big"  # type: ignore[union-attr]
    assert p.cheapest(be(1, 0, 10, cpus=8, memory=1024).capacity) is None
    s = cloud(1, p)
    s.submit(im(1, 0, 100), 0)
    decision = s.submit(im(2, 0, 100, cpus=8), 0)
    assert decision.state is LeaseState.REJECTED
    assert "no-instance-type: ec2 has no type with 8 vCPU and 1024 MiB" in "; ".join(
        decision.reasons)


def test_the_instance_limit_holds_across_leases() -> None:
    s = cloud(1, provider(max_instances=3))
    s.submit(im(1, 0, 1000), 0)
    assert s.submit(im(2, 0, 100, nodes=2), 0).burst is not None
    refused = s.submit(im(3, 0, 100, nodes=2), 0)
    assert "instance-limit: ec2 runs 2 of 3 instances, the lease needs 2" in "; ".join(
        refused.reasons)
    s.advance(500)  # lease 2 is done: its instances are gone
    assert s.submit(im(4, 500, 100, nodes=2), 500).burst is not None


def test_a_best_effort_lease_bursts_when_it_has_waited_the_longest_wait() -> None:
    # One host busy for 5000 s; a BE lease queued at 100 with a 1000 s limit, EASY
    # backfilling (one future reservation: the first queued lease gets one at 5000).
    reqs = [im(1, 0, 5000), be(2, 100, 300), be(3, 100, 300)]
    s = cloud(1, provider(max_wait=1000), backfilling="off")
    simulate(reqs, hosts(1), s)
    # both waited their 1000 s limit, then ran on the cloud after a 60 s boot
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(1160, 1460, ())], "done": 1460}
    assert timeline(s.leases[3]) == {"state": "done", "runs": [(1160, 1460, ())], "done": 1460}
    assert s.burster is not None and s.burster.stats.by_trigger == {"be": 2}


def test_a_best_effort_lease_whose_reservation_is_too_far_off_bursts_at_once() -> None:
    # With EASY backfilling the first queued lease gets a reservation at 5000: 4900 s away.
    s = cloud(1, provider(max_wait=1000))
    simulate([im(1, 0, 5000), be(2, 100, 300)], hosts(1), s)
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(160, 460, ())], "done": 460}
    # under the limit: it stays at home
    s = cloud(1, provider(max_wait=1000))
    simulate([im(1, 0, 500), be(2, 100, 300)], hosts(1), s)
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(500, 800, (0,))], "done": 800}


def test_a_best_effort_lease_bursts_only_if_the_provider_takes_them() -> None:
    s = cloud(1, provider())  # no max_wait
    simulate([im(1, 0, 5000), be(2, 100, 300)], hosts(1), s)
    assert timeline(s.leases[2])["runs"] == [(5000, 5300, (0,))]


def test_an_ar_that_would_preempt_more_than_allowed_bursts_and_preempts_nobody() -> None:
    s = cloud(1, provider(max_preemptions=0))
    simulate([be(1, 0, 2000), ar(2, 100, 500, 300)], hosts(1), s)
    assert s.preemptions == 0
    assert timeline(s.leases[1]) == {"state": "done", "runs": [(0, 2000, (0,))], "done": 2000}
    # launched 60 s before its start, so that it runs at its start
    assert s.leases[2].burst is not None and s.leases[2].burst.start == 440
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(500, 800, ())], "done": 800}


def test_an_ar_preempts_as_usual_when_the_provider_allows_that_many() -> None:
    s = cloud(1, provider(max_preemptions=1))
    simulate([be(1, 0, 2000), ar(2, 100, 500, 300)], hosts(1), s)
    assert s.preemptions == 1
    assert s.leases[2].burst is None


def test_cancelling_a_burst_ar_before_its_launch_costs_nothing() -> None:
    s = cloud(1, provider(max_preemptions=0, budget_per_month=1.0))
    s.submit(im(1, 0, 10_000), 0)
    decision = s.submit(ar(2, 0, 5000, 3600), 0)
    assert decision.burst is not None and decision.burst.cost == pytest.approx(0.366)
    ledger = s.burster.ledger  # type: ignore[union-attr]
    assert ledger.committed("ec2", 0) == pytest.approx(0.366)
    s.cancel(2, 100)
    assert ledger.committed("ec2", 0) == 0
    assert ledger.running["ec2"] == 0


def test_an_early_end_is_billed_for_what_ran() -> None:
    s = cloud(1)
    s.submit(im(1, 0, 10_000), 0)
    s.submit(im(2, 0, 3600), 0)
    s.advance(1000)
    s.end_early(2, 1000)
    assert s.leases[2].burst.cost == pytest.approx(0.1)  # type: ignore[union-attr]
    assert s.burster.ledger.committed("ec2", 0) == pytest.approx(0.1)  # type: ignore[union-attr]


def test_without_a_burster_nothing_changes() -> None:
    s = Scheduler(hosts(1), config(), policy_set(config()))
    s.submit(im(1, 0, 100), 0)
    assert s.submit(im(2, 0, 100), 0).state is LeaseState.REJECTED


def test_provider_files_are_checked() -> None:
    good = {"name": "p", "prices": {"t": 0.5},
            "instance_types": [{"name": "t", "vcpus": 2, "memory_mib": 1024}],
            "max_wait": "1h", "boot_time": 90}
    p = provider_from(good, "p.toml")
    assert (p.max_wait, p.boot_time, p.catalogue) == (3600, 90, (InstanceType("t", 2, 1024, 0.5),))
    with pytest.raises(InvalidInput, match="p.toml: instance type t has no size"):
        provider_from({"name": "p", "prices": {"t": 0.5}}, "p.toml")
    with pytest.raises(InvalidInput, match="unknown key.*bugdet"):
        provider_from({**good, "bugdet": 3}, "p.toml")
    with pytest.raises(InvalidInput, match="budget_per_month must be a number"):
        provider_from({**good, "budget_per_month": "lots"}, "p.toml")
    with pytest.raises(InvalidInput, match="max_wait: cannot read"):
        provider_from({**good, "max_wait": "soon"}, "p.toml")
    with pytest.raises(InvalidInput, match="partial must be true or false"):
        provider_from({**good, "partial": "yes"}, "p.toml")
    assert provider_from({**good, "partial": True}, "p.toml").partial


def test_each_provider_bursts_by_its_own_policy() -> None:
    s = cloud(1, provider(name="off", policy="never"), provider(name="on"))
    s.submit(im(1, 0, 1000), 0)
    decision = s.submit(im(2, 0, 100), 0)
    assert decision.burst is not None and decision.burst.provider == "on"
    s = cloud(1, provider(name="off", policy="never"))
    s.submit(im(1, 0, 1000), 0)
    refused = s.submit(im(2, 0, 100), 0)
    assert "off: the burst policy is 'never'" in "; ".join(refused.reasons)


# -- partial bursting: a multi-node lease's nodes split between local hosts and a cloud -------

def test_a_lease_bursts_only_the_nodes_local_hosts_have_no_room_for() -> None:
    s = cloud(2, provider(partial=True), shutdown_time=30)
    s.submit(im(1, 0, 5000), 0)  # host-0 busy, host-1 free
    decision = s.submit(im(2, 10, 600, nodes=3), 10)
    plan = decision.burst
    assert plan is not None and decision.hosts == (1,)
    assert (plan.nodes, plan.instance_type, plan.start, plan.run_start, plan.end) == (
        2, "small", 10, 70, 670)
    assert plan.cost == pytest.approx(0.132)  # 2 instances x 660 s, not 3
    # the local node is held from the launch to its shutdown after the run
    assert planned(s.leases[2]) == (10, 70, 670, (1,))
    assert s.leases[2].run is not None and s.leases[2].run.end == 700
    assert s.submit(im(3, 20, 100), 20).burst is not None  # host-1 is taken
    s.advance(1000)
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(70, 670, (1,))], "done": 700}
    assert s.burster is not None and (s.burster.stats.bursts, s.burster.stats.partial) == (2, 1)
    # the same lease with a provider that takes whole leases only: all three nodes go
    s = cloud(2, provider())
    s.submit(im(1, 0, 5000), 0)
    decision = s.submit(im(2, 10, 600, nodes=3), 10)
    assert decision.hosts == () and decision.burst is not None and decision.burst.nodes == 3


def test_partial_bursting_counts_only_the_cloud_nodes_against_budget_and_limit() -> None:
    # Two of three hosts free: in part the lease needs 1 instance ($0.066), whole 3 ($0.198).
    s = cloud(3, provider(partial=True, budget_per_month=0.1, max_instances=1))
    s.submit(im(1, 0, 5000), 0)
    decision = s.submit(im(2, 10, 600, nodes=3), 10)
    assert decision.burst is not None and decision.burst.nodes == 1
    assert sorted(decision.hosts) == [1, 2]
    assert decision.burst.cost == pytest.approx(0.066)
    assert s.burster.ledger.running["ec2"] == 1  # type: ignore[union-attr]
    s = cloud(3, provider(budget_per_month=0.1, max_instances=1))
    s.submit(im(1, 0, 5000), 0)
    refused = s.submit(im(2, 10, 600, nodes=3), 10)
    assert refused.state is LeaseState.REJECTED
    assert "instance-limit: ec2 runs 0 of 1 instances, the lease needs 3" in "; ".join(
        refused.reasons)


def test_an_ar_keeps_at_home_the_nodes_it_need_not_preempt_for() -> None:
    # host-0 runs a BE lease; the AR needs both hosts and may preempt nobody: its node on
    # host-1 stays here (held from the instances' launch, 60 s before its start), the other
    # bursts, and the BE lease runs on untouched.
    s = cloud(2, provider(partial=True, max_preemptions=0), shutdown_time=20)
    simulate([be(1, 0, 2000), ar(2, 100, 500, 300, nodes=2)], hosts(2), s)
    assert s.preemptions == 0
    # (its 20 s shutdown after the run)
    assert timeline(s.leases[1]) == {"state": "done", "runs": [(0, 2000, (0,))], "done": 2020}
    plan = s.leases[2].burst
    assert plan is not None and (plan.nodes, plan.start, plan.run_start, plan.end) == (
        1, 440, 500, 800)
    # the AR's shutdown is carved from its window, as for any AR
    assert timeline(s.leases[2]) == {"state": "done", "runs": [(500, 780, (1,))], "done": 800}


def split_after_waiting() -> Scheduler:
    """host-0 busy for 5000 s; lease 2 (BE, 2 nodes, 3000 s) has waited its 100 s at 100:
    one node runs on host-1, the other bursts."""
    s = cloud(2, provider(partial=True, max_wait=100), backfilling="off")
    s.submit(im(1, 0, 5000), 0)
    s.submit(be(2, 0, 3000, nodes=2), 0)
    s.schedule(0)
    s.advance(100)
    s.schedule(100)
    return s


def test_a_partly_burst_lease_is_never_preempted() -> None:
    s = split_after_waiting()
    s.advance(200)
    assert s.leases[2].burst is not None and s.leases[2].run.hosts == (1,)  # type: ignore[union-attr]
    decision = s.submit(ar(3, 200, 1000, 500), 200)  # would need host-1
    assert decision.state is LeaseState.REJECTED
    assert "burst: lease 2 runs partly on ec2" in "; ".join(decision.reasons)
    assert s.preemptions == 0


def test_a_failed_partial_burst_gives_its_local_node_back() -> None:
    s = split_after_waiting()
    s.advance(150)
    assert s.leases[2].state is LeaseState.PREPARING
    ledger = s.burster.ledger  # type: ignore[union-attr]
    assert ledger.running["ec2"] == 1
    s.unburst(2, 150, "InsufficientInstanceCapacity")
    assert s.leases[2].state is LeaseState.QUEUED and s.leases[2].burst is None
    assert ledger.running["ec2"] == 0 and ledger.committed("ec2", 0) == 0
    # host-1 is free again: a one-node lease starts there at once
    assert s.submit(im(3, 150, 100), 150).hosts == (1,)


def test_losing_the_host_of_a_partly_burst_lease_lets_its_instances_go() -> None:
    s = split_after_waiting()
    s.advance(1000)
    assert s.leases[2].state is LeaseState.ACTIVE
    s.evict(2, 1000, "host-1 lost")
    lease = s.leases[2]
    assert lease.burst is None and lease.state is LeaseState.QUEUED
    assert s.burster.ledger.running["ec2"] == 0  # type: ignore[union-attr]
    # billed for what ran: launch at 100, let go at 1000
    assert s.burster.stats.cost == pytest.approx(0.09)  # type: ignore[union-attr]


def test_a_simulation_counts_only_the_local_nodes_of_a_partial_burst_as_utilization() -> None:
    s = cloud(2, provider(partial=True))
    simulate([im(1, 0, 1000), im(2, 0, 1000, nodes=2)], hosts(2), s)
    assert s.leases[2].burst is not None and s.leases[2].burst.nodes == 1
    summary = summarize(list(s.leases.values()), 2, s.preemptions, 0.0)
    # both hosts busy 1000 s of the 1060 s span (lease 2 runs after its 60 s boot)
    assert summary["utilization"] == pytest.approx(2000 / (2 * 1060), abs=1e-3)
