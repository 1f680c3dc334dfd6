"""Preemption: which leases an incoming lease may push aside, and in what order."""

from __future__ import annotations

from collections.abc import Sequence

from cloudctl.scheduler.lease import Lease
from cloudctl.scheduler.model import LeaseType
from cloudctl.scheduler.policy import Status


class ARPreemptsBE:
    """Advance reservations may preempt preemptible best-effort leases, youngest first
    (Haizea meant this; its code sorted oldest first by accident)."""

    name = "ar-preempts-be"

    def may_preempt(self, preemptor: Lease, victim: Lease, at: int) -> Status:
        if preemptor.type is not LeaseType.AR:
            return Status.unschedulable(
                f"{preemptor.type.value}-conflict: only advance reservations preempt", self.name)
        if victim.type is not LeaseType.BE:
            return Status.unschedulable(
                f"ar-conflict: lease {victim.id} is {victim.type.value}, not best-effort",
                self.name)
        if not victim.preemptible:
            return Status.unschedulable(
                f"ar-conflict: lease {victim.id} non-preemptible", self.name)
        return Status.success(self.name)

    def rank(self, preemptor: Lease, victims: Sequence[Lease], at: int) -> list[Lease]:
        allowed = [v for v in victims if self.may_preempt(preemptor, v, at).ok]
        return sorted(allowed, key=self._order)

    @staticmethod
    def _order(victim: Lease) -> tuple[int, int]:
        return (-victim.submit, -victim.id)


class OldestFirst(ARPreemptsBE):
    """Haizea 1.0's actual order: the oldest best-effort lease goes first."""

    name = "oldest-first"

    @staticmethod
    def _order(victim: Lease) -> tuple[int, int]:
        return (victim.submit, victim.id)


class NoPreemption:
    name = "no-preemption"

    def may_preempt(self, preemptor: Lease, victim: Lease, at: int) -> Status:
        return Status.unschedulable(f"no-preemption: lease {victim.id} is not preempted", self.name)

    def rank(self, preemptor: Lease, victims: Sequence[Lease], at: int) -> list[Lease]:
        return []
