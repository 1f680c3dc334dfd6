"""What the scheduler asks of its policies: the extension points, the Status every policy
answers with, and the PolicySet handed to the Scheduler.

The policies themselves (`cloudctl.policies`) implement these; the scheduler never loads
them by name. The composition root does (`cloudctl.policies.policy_set`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from cloudctl.scheduler.slottable import vnodes_fitting

if TYPE_CHECKING:
    from cloudctl.scheduler.burst import BurstPlan, Ledger, Provider
    from cloudctl.scheduler.lease import Lease
    from cloudctl.scheduler.model import HostSpec, LeaseRequest
    from cloudctl.scheduler.slottable import Candidate


class Code(str, Enum):
    OK = "ok"
    UNSCHEDULABLE = "unschedulable"  # not now; may fit later
    UNRESOLVABLE = "unresolvable"  # never, whatever happens
    ERROR = "error"


@dataclass(frozen=True)
class Status:
    """Why a policy said yes or no: a code, reasons ("memory: need 2048 MiB, free 1024 MiB
    on host-3") and the policy's name, so `lease explain` can print the story."""

    code: Code = Code.OK
    reasons: tuple[str, ...] = field(default_factory=tuple)
    policy: str = ""

    @property
    def ok(self) -> bool:
        return self.code is Code.OK

    @classmethod
    def success(cls, policy: str = "") -> Status:
        # Statuses are immutable: one success per policy serves every request.
        if cls is not Status:
            return cls(Code.OK, (), policy)
        found = _SUCCESSES.get(policy)
        if found is None:
            found = _SUCCESSES[policy] = cls(Code.OK, (), policy)
        return found

    @classmethod
    def unschedulable(cls, reason: str, policy: str = "") -> Status:
        return cls(Code.UNSCHEDULABLE, (reason,), policy)

    @classmethod
    def unresolvable(cls, reason: str, policy: str = "") -> Status:
        return cls(Code.UNRESOLVABLE, (reason,), policy)

    def __str__(self) -> str:
        text = "; ".join(self.reasons) or self.code.value
        return f"{self.policy}: {text}" if self.policy else text


_SUCCESSES: dict[str, Status] = {}


class AdmissionPolicy(Protocol):
    name: str

    def admit(self, request: LeaseRequest, hosts: Sequence[HostSpec]) -> Status: ...


class HostFilterPolicy(Protocol):
    name: str

    def allowed(self, lease: Lease, hosts: Sequence[HostSpec]) -> set[int] | None:
        """Indexes of hosts the lease may use, or None for all of them."""
        ...

    def explain(self, lease: Lease, host: HostSpec) -> Status: ...


class HostScorePolicy(Protocol):
    name: str

    def key(self, lease: Lease, candidate: Candidate, end: int) -> tuple[int, ...]:
        """Sort key: smaller is better. Ties break on host order, so runs are reproducible."""
        ...


class PreemptionPolicy(Protocol):
    name: str

    def may_preempt(self, preemptor: Lease, victim: Lease, at: int) -> Status: ...

    def rank(self, preemptor: Lease, victims: Sequence[Lease], at: int) -> list[Lease]:
        """Victims in the order they should be tried, first first."""
        ...


class BurstPolicy(Protocol):
    name: str

    def plan(self, lease: Lease, trigger: str, provider: Provider, start: int, now: int,
             ledger: Ledger, nodes: int) -> BurstPlan | Status:
        """A plan to run `nodes` of the lease's virtual nodes on `provider`, or why not."""
        ...


@dataclass(frozen=True)
class PolicySet:
    """One policy per extension point, built by the composition root. (Typed Any: the
    compiled scheduler reaches them through plain attribute lookups, and a third party's
    policy need not subclass anything.)"""

    admission: Any  # AdmissionPolicy
    host_filter: Any  # HostFilterPolicy
    host_score: Any  # HostScorePolicy
    preemption: Any  # PreemptionPolicy


def cluster_fit(request: LeaseRequest, hosts: Sequence[HostSpec], policy: str = "") -> Status:
    """Whether the request could run on the empty cluster (the scheduler always asks; the
    `fits-cluster` admission policy answers with it too)."""
    # Disabled hosts count: they may come back, and a lease waiting for them is not absurd
    # (one that cannot be placed now is refused by placement, with the host's reason).
    need = request.capacity
    room = sum(
        vnodes_fitting(h.capacity.cpus, h.capacity.memory_mib, h.capacity.disk_mib, need)
        for h in hosts
    )
    if room >= request.nodes:
        return Status.success(policy)
    largest = max((h.capacity for h in hosts), default=None,
                  key=lambda c: (c.cpus, c.memory_mib))
    detail = (
        f"{request.nodes} nodes of {need.cpus} CPU/{need.memory_mib} MiB/{need.disk_mib} MiB disk;"
        f" the cluster holds at most {room}"
    )
    if largest is not None and room == 0:
        detail += (f" (largest host: {largest.cpus} CPU/{largest.memory_mib} MiB/"
                   f"{largest.disk_mib} MiB disk)")
    return Status.unresolvable(f"larger than the cluster: {detail}", policy)
