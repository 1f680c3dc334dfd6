"""Policies found by name: built-ins without packaging metadata, unknown names, third
parties' policies found by entry point, and a scheduler using one."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest
from cloudctl.policies import policy_set
from conftest import ar, be, hosts, planned, scheduler

from cloudctl import plugins
from cloudctl.errors import InvalidInput
from cloudctl.scheduler.config import SchedulerConfig
from cloudctl.scheduler.lease import Lease
from cloudctl.scheduler.model import LeaseState
from cloudctl.scheduler.policy import Status

S = LeaseState


def test_unknown_policy_name_lists_the_known_ones() -> None:
    with pytest.raises(InvalidInput) as caught:
        plugins.load_policy("preemption", "no-such-policy")
    message = str(caught.value)
    assert "no-such-policy" in message
    for known in ("ar-preempts-be", "no-preemption", "oldest-first"):
        assert known in message


def test_unknown_policy_in_the_config_fails_at_construction() -> None:
    with pytest.raises(InvalidInput, match="known: greedy, pack"):
        scheduler(hosts(1), host_score_policy="nope")


class NeverPreempt:
    """A third party's preemption policy: nothing may be preempted."""

    name = "never"

    def may_preempt(self, preemptor: Lease, victim: Lease, at: int) -> Status:
        return Status.unschedulable(f"never: lease {victim.id} stays", self.name)

    def rank(self, preemptor: Lease, victims: list[Lease], at: int) -> list[Lease]:
        return []


def fake_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    def entry_points(group: str) -> list[EntryPoint]:
        if group != "cloudctl.policies.preemption":
            return []
        return [EntryPoint(name="never", value=f"{__name__}:NeverPreempt", group=group)]

    monkeypatch.setattr(plugins, "entry_points", entry_points)


def test_third_party_policy_is_found_by_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch)
    assert "never" in plugins.available("cloudctl.policies.preemption")
    assert isinstance(plugins.load_policy("preemption", "never"), NeverPreempt)
    s = scheduler(hosts(2), preemption_policy="never")
    s.submit(be(1, 0, 1000, nodes=2), 0)
    s.schedule(0)
    decision = s.submit(ar(2, 10, 500, 100, nodes=2), 10)
    assert decision.state is S.REJECTED
    assert "never: lease 1 stays" in s.leases[2].reason
    assert planned(s.leases[1]) == (0, 0, 1000, (0, 1))


def test_unknown_name_lists_third_party_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch)
    with pytest.raises(InvalidInput, match="never"):
        plugins.load_policy("preemption", "nope")


def test_built_in_policies_need_no_packaging_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    def entry_points(group: str) -> list[EntryPoint]:
        raise AssertionError(f"looked through installed packages for {group}")

    monkeypatch.setattr(plugins, "entry_points", entry_points)
    policies = policy_set(SchedulerConfig(host_score_policy="pack"))
    assert (policies.admission.name, policies.host_filter.name, policies.host_score.name,
            policies.preemption.name) == ("accept-all", "enabled", "pack", "ar-preempts-be")
    assert plugins.is_registered("cloudctl.policies.burst", "never")
    assert plugins.load(plugins.HYPERVISOR, "xen").__name__ == "XenDriver"
