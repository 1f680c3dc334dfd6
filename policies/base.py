"""The extension points and the Status every policy answers with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
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
