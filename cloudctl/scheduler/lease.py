"""A lease as the scheduler tracks it, and its runs (Haizea's VM resource reservations)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from cloudctl.scheduler.model import (
    Capacity,
    LeaseRequest,
    LeaseState,
    LeaseType,
    check_transition,
)
from cloudctl.scheduler.slottable import Booking

if TYPE_CHECKING:
    from cloudctl.scheduler.burst import BurstPlan

# What ends a run: the lease shuts down, is suspended, or is killed and requeued.
SHUTDOWN: Final = "shutdown"
SUSPEND: Final = "suspend"
KILL: Final = "kill"


class Run:
    """One reservation of a lease's VMs on hosts:
    [start, migrated) cold migration, [migrated, run_start) resume,
    [run_start, run_end) running, [run_end, end) suspension or shutdown.

    An early migration copies the memory image while the destination is still busy: the
    hosts are then held only from `hold` (after `migrated`), when the resume begins; for
    every other run `hold` is `start`."""

    __slots__ = ("lease", "hosts", "start", "migrated", "run_start", "run_end", "end", "post",
                 "bookings", "step", "channel", "hold")

    def __init__(self, lease: Lease, hosts: tuple[int, ...], start: int, migrated: int,
                 run_start: int, run_end: int, end: int, post: str) -> None:
        self.lease = lease
        self.hosts = hosts  # one host index per virtual node
        self.start = start
        self.migrated = migrated
        self.run_start = run_start
        self.run_end = run_end
        self.end = end
        self.post = post
        self.bookings: list[Booking] = []
        self.step = 0  # phases already carried out (see Scheduler.advance)
        self.channel: list[tuple[int, int]] = []  # suspend/resume slots held (global exclusion)
        self.hold = start  # when its bookings on `hosts` begin

    @property
    def movable(self) -> bool:
        """Best-effort runs can be re-planned; a run may be split only against fixed ones."""
        return self.lease.type is LeaseType.BE

    def __repr__(self) -> str:
        return (f"Run(lease {self.lease.id} on {self.hosts} [{self.start},{self.run_start},"
                f"{self.run_end},{self.end}) {self.post})")


class Lease:
    __slots__ = ("request", "id", "type", "submit", "nodes", "need", "duration", "start_req",
                 "preemptible", "image", "image_size", "state", "remaining", "run", "first_start",
                 "done_at", "runs", "suspensions", "resumptions", "transfers", "migrations",
                 "last_hosts", "preempted", "reason", "queue_key", "burst",
                 "no_burst")

    def __init__(self, request: LeaseRequest) -> None:
        self.request = request
        self.id = request.id
        self.type = request.type
        self.submit = request.submit
        self.nodes = request.nodes
        self.need: Capacity = request.capacity
        self.duration = request.duration
        self.start_req = request.start
        self.preemptible = request.preemptible
        self.image = request.image
        self.image_size = request.image_size_mib
        self.state = LeaseState.NEW
        self.remaining = request.duration  # run time still owed
        self.run: Run | None = None  # the current or next reservation
        self.first_start: int | None = None
        self.done_at: int | None = None
        self.runs: list[tuple[int, int, tuple[int, ...]]] = []
        self.suspensions: list[tuple[int, int]] = []
        self.resumptions: list[tuple[int, int]] = []
        self.transfers: list[tuple[int, int]] = []
        self.migrations: list[tuple[int, int]] = []
        self.last_hosts: tuple[int, ...] = ()
        self.preempted = 0
        self.reason = ""
        self.queue_key = (request.submit, request.id)
        self.burst: BurstPlan | None = None  # runs on a public cloud, not on our hosts
        self.no_burst = ""  # why it must not be burst again (a burst of it failed)

    def move(self, new: LeaseState) -> LeaseState:
        """Enforce the transition table; returns the old state."""
        old = self.state
        check_transition(self.id, old, new)
        self.state = new
        return old

    @property
    def ran(self) -> int:
        return sum(end - start for start, end, _ in self.runs)

    @property
    def suspended(self) -> bool:
        return self.state in (LeaseState.SUSPENDED_QUEUED, LeaseState.SUSPENDED_SCHEDULED,
                              LeaseState.SUSPENDED_PENDING)

    def __repr__(self) -> str:
        return f"Lease({self.id} {self.type.value} {self.state.value})"
