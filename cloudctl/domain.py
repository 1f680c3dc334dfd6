"""cloudctl's vocabulary, in one place: lease types and states with their transitions, what
the store records of a VM, and the phases of a reservation.

The scheduler, the store's queries, the session, enactment, the views and the CLI's choices
all use these names; nothing else spells a state as a string of its own. Compiled with the
scheduler (see `cloudctl/_native.py`): the constants are `Final`.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from cloudctl.errors import InvalidTransition


class LeaseType(str, Enum):
    AR = "ar"  # advance reservation: exact start
    BE = "be"  # best-effort: queued, as soon as possible
    IM = "im"  # immediate: now or never


class LeaseState(str, Enum):
    NEW = "new"
    PENDING = "pending"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    PREPARING = "preparing"
    READY = "ready"
    ACTIVE = "active"
    SUSPENDING = "suspending"
    SUSPENDED_PENDING = "suspended-pending"
    SUSPENDED_QUEUED = "suspended-queued"
    SUSPENDED_SCHEDULED = "suspended-scheduled"
    MIGRATING = "migrating"
    RESUMING = "resuming"
    RESUMED_READY = "resumed-ready"
    DONE = "done"
    CANCELLED = "cancelled"
    FAIL = "fail"
    REJECTED = "rejected"

    @property
    def final(self) -> bool:
        return self in FINAL_STATES


S = LeaseState
FINAL_STATES: Final = frozenset({S.DONE, S.CANCELLED, S.FAIL, S.REJECTED})
# What a lease's VMs are doing in each live state: suspended (or on their way there, or
# moving their memory image), running (or on their way back).
SUSPENDED_STATES: Final = frozenset({S.SUSPENDING, S.SUSPENDED_PENDING, S.SUSPENDED_QUEUED,
                                     S.SUSPENDED_SCHEDULED, S.MIGRATING})
RUNNING_STATES: Final = frozenset({S.ACTIVE, S.RESUMING, S.RESUMED_READY})
# The states a lease can be listed by: every one a lease can be seen in (`new` lasts only
# inside one decision).
LISTED_STATES: Final = tuple(s.value for s in LeaseState if s is not S.NEW)

# Haizea's transition table, plus the requeue edges Haizea lacks: a running lease that is
# preempted without suspension goes back to the queue (Active -> Queued), and a future
# reservation given up for an earlier one or for a preemptor goes back too. A lease burst to
# a public cloud is Preparing while its instances boot, then Active.
_EDGES: dict[LeaseState, set[LeaseState]] = {
    S.NEW: {S.PENDING},
    S.PENDING: {S.SCHEDULED, S.QUEUED, S.REJECTED},
    S.QUEUED: {S.SCHEDULED},
    S.SCHEDULED: {S.PREPARING, S.READY, S.ACTIVE, S.QUEUED},
    S.PREPARING: {S.READY, S.QUEUED, S.ACTIVE},
    S.READY: {S.ACTIVE, S.QUEUED},
    S.ACTIVE: {S.SUSPENDING, S.DONE, S.QUEUED},
    S.SUSPENDING: {S.SUSPENDED_PENDING},
    S.SUSPENDED_PENDING: {S.SUSPENDED_QUEUED, S.SUSPENDED_SCHEDULED},
    S.SUSPENDED_QUEUED: {S.SUSPENDED_SCHEDULED},
    S.SUSPENDED_SCHEDULED: {S.MIGRATING, S.RESUMING, S.SUSPENDED_QUEUED},
    S.MIGRATING: {S.RESUMING, S.SUSPENDED_QUEUED},
    S.RESUMING: {S.RESUMED_READY, S.ACTIVE},
    S.RESUMED_READY: {S.ACTIVE},
}
# A lease whose host is drained, removed or lost starts over from the queue, whatever it was
# doing (its memory image, if any, was on that host).
for _state in (S.SUSPENDING, S.SUSPENDED_PENDING, S.SUSPENDED_QUEUED, S.SUSPENDED_SCHEDULED,
               S.MIGRATING, S.RESUMING, S.RESUMED_READY):
    _EDGES[_state].add(S.QUEUED)
for _state in LeaseState:
    if not _state.final:
        _EDGES.setdefault(_state, set()).update({S.CANCELLED, S.FAIL})
TRANSITIONS: Final[dict[LeaseState, frozenset[LeaseState]]] = {
    k: frozenset(v) for k, v in _EDGES.items()}


def check_transition(lease_id: int, old: LeaseState, new: LeaseState) -> None:
    """Raise InvalidTransition unless the table allows old -> new."""
    if new not in TRANSITIONS.get(old, frozenset()):
        raise InvalidTransition(f"lease {lease_id}: {old.value} -> {new.value} is not allowed")


class VMStatus(str, Enum):
    """What the store records of one VM: its state as last enacted, and what the schedule
    wants of it (`running`, `suspended` or `gone`)."""

    PENDING = "pending"  # not created yet (or to be created again)
    RUNNING = "running"
    SUSPENDED = "suspended"  # its memory image saved, the domain defined
    GONE = "gone"  # destroyed, or never made
    ERROR = "error"  # the last driver call failed (see the VM's error and retry time)
    MISSING = "missing"  # the hypervisor lost a VM the store says exists

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class HostStatus(str, Enum):
    """Whether a host answered its last tick."""

    OK = "ok"
    ERROR = "error"  # stopped answering: its leases were handled as for a drain

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


# A reservation's phases in order: [start, migrated) cold migration, [migrated, run_start)
# resume, [run_start, run_end) running, [run_end, end) suspension or shutdown. A run's `step`
# counts the phases already carried out: `step >= STEP_RUNNING` once its VMs run.
STEP_STARTED: Final = 1
STEP_MIGRATED: Final = 2
STEP_RUNNING: Final = 3
STEP_RAN: Final = 4  # its run ended: suspending or shutting down
STEP_ENDED: Final = 5
