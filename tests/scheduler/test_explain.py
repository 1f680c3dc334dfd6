"""Every decision is explainable: per-host reasons and per-lease reasons."""

from __future__ import annotations

from cloudctl.policies import policy_set

from cloudctl.scheduler.config import SchedulerConfig
from cloudctl.scheduler.core import Scheduler
from cloudctl.scheduler.model import Capacity, HostSpec, LeaseRequest, LeaseState, LeaseType


def request(lease_id: int, kind: LeaseType, **fields: object) -> LeaseRequest:
    return LeaseRequest(id=lease_id, type=kind, submit=0, **fields)  # type: ignore[arg-type]


def cluster() -> Scheduler:
    hosts = [HostSpec(f"host-{i}", Capacity(2, 2048, 0)) for i in range(1, 4)]
    return Scheduler(hosts, SchedulerConfig(), policy_set(SchedulerConfig()))


def test_rejected_ar_names_each_short_host_and_the_resource() -> None:
    s = cluster()
    first = s.submit(request(1, LeaseType.AR, nodes=3, capacity=Capacity(1, 1024), duration=100,
                             start=10, preemptible=False), 0)
    assert first.state is LeaseState.SCHEDULED and first.hosts == (0, 0, 1)
    second = s.submit(request(2, LeaseType.AR, nodes=3, capacity=Capacity(1, 2048), duration=100,
                              start=50, preemptible=False), 0)
    assert second.state is LeaseState.REJECTED
    text = "; ".join(second.reasons)
    assert "host-1: cpu: need 1, free 0" in text
    assert "host-2: memory: need 2048 MiB, free 1024 MiB" in text
    assert "ar-conflict: lease 1 is ar, not best-effort" in text
    assert s.explain_hosts(2) == [
        ("host-1", "cpu: need 1, free 0"),
        ("host-2", "memory: need 2048 MiB, free 1024 MiB"),
        ("host-3", ""),
    ]


def test_non_preemptible_victim_is_named() -> None:
    s = cluster()
    s.submit(request(1, LeaseType.BE, nodes=3, capacity=Capacity(2, 2048), duration=1000,
                     preemptible=False), 0)
    s.schedule(0)
    s.advance(0)
    decision = s.submit(request(2, LeaseType.AR, nodes=1, capacity=Capacity(1, 1024),
                                duration=100, start=100, preemptible=False), 0)
    assert decision.state is LeaseState.REJECTED
    assert "ar-conflict: lease 1 non-preemptible" in "; ".join(decision.reasons)


def test_lease_larger_than_cluster_is_rejected_with_the_sizes() -> None:
    s = cluster()
    decision = s.submit(request(1, LeaseType.BE, nodes=7, capacity=Capacity(1, 1024),
                                duration=10), 0)
    assert decision.state is LeaseState.REJECTED
    assert decision.reasons == [
        "larger than the cluster: 7 nodes of 1 CPU/1024 MiB/0 MiB disk; the cluster holds at most 6"
    ]


def test_queued_lease_says_why_it_waits() -> None:
    config = SchedulerConfig(backfilling=0)
    s = Scheduler([HostSpec("host-1", Capacity(1, 1024))], config, policy_set(config))
    s.submit(request(1, LeaseType.BE, nodes=1, capacity=Capacity(1, 1024), duration=100), 0)
    s.submit(request(2, LeaseType.BE, nodes=1, capacity=Capacity(1, 1024), duration=100), 0)
    s.schedule(0)
    assert s.leases[2].state is LeaseState.QUEUED
    assert s.leases[2].reason == "waiting: no capacity free now"
    assert s.explain_hosts(2, 0, 100) == [("host-1", "cpu: need 1, free 0")]
