"""The lease scheduler: places AR, BE and IM leases on the slot table, backfills, preempts.

It is pure: time comes in as an argument, configuration and policies are passed to the
constructor, and what it decides comes out as state changes on leases and as `Action`s for an
enactment layer (real drivers, or the simulator) to carry out.
"""

from __future__ import annotations

import functools
import heapq
import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from cloudctl.errors import InvalidInput
from cloudctl.scheduler.config import SchedulerConfig
from cloudctl.scheduler.lease import KILL, SHUTDOWN, SUSPEND, Lease, Run
from cloudctl.scheduler.model import HostSpec, LeaseRequest, LeaseState, LeaseType
from cloudctl.scheduler.policy import PolicySet, Status, cluster_fit
from cloudctl.scheduler.scores import greedy_index_key, greedy_key
from cloudctl.scheduler.slottable import (
    GROUP_ALL,
    GROUP_NONE,
    GROUP_SIMPLE,
    INFINITY,
    Booking,
    Candidate,
    SlotTable,
)
from cloudctl.scheduler.timing import (
    resume_time,
    shutdown_duration,
    suspend_time,
    transfer_time,
)
from cloudctl.scheduler.transfers import TransferLink

if TYPE_CHECKING:
    from cloudctl.scheduler.burst import Burster, BurstPlan, Provider

# Phases of a run, carried out in this order when several fall on one instant: what ends goes
# first so that capacity is given back before anything new starts. (Final: compiled, they are
# constants, not module lookups.)
RUN_END: Final = 0
END: Final = 1
START: Final = 2
MIGRATED: Final = 3
RUN_START: Final = 4
# Queue keys of leases queued again behind those of the same submit time start here (above
# any lease id).
REQUEUED: Final = 1 << 48


def _step_after(phase: int) -> int:
    """`Run.step` once `phase` is carried out: the phases run START 1, MIGRATED 2,
    RUN_START 3, RUN_END 4, END 5 (the run's own order, not the order of one instant)."""
    return (phase + 3) % 5 + 1


def _phase_time(run: Run, phase: int) -> int:
    """When the run reaches `phase`."""
    if phase == RUN_END:
        return run.run_end
    if phase == END:
        return run.end
    if phase == START:
        return run.start
    if phase == MIGRATED:
        return _resume_from(run)
    return run.run_start


def _resume_from(run: Run) -> int:
    """When the run's resumption begins: at the end of its migration, or later when the
    memory image moved early and the destination frees later."""
    return run.migrated if run.migrated >= run.hold else run.hold

def _moved_early(run: Run, early: tuple[int, int] | None) -> Run:
    """The run with its memory image moved during `early`, before its hosts are held."""
    if early is not None:
        run.hold = run.start
        run.start, run.migrated = early
    return run


Listener = Callable[[Lease, LeaseState, LeaseState, int, str], None]


@functools.lru_cache(maxsize=16)
def _limit_reason(limit: int | None) -> str:
    """Why a lease waits when the backfilling limit is taken (queue walks say it often)."""
    return (f"waiting: does not fit now and the backfilling limit ({limit} future "
            f"reservation{'s' if limit != 1 else ''}) is taken")


class Action:
    """Something the enactment layer must do: start, suspend, resume, migrate, shut down,
    kill VMs, or note that a lease is done/suspended. (Plain classes, not dataclasses, for
    what the scheduler makes per lease: compiled, their constructors are native code.)"""

    __slots__ = ("time", "kind", "lease_id", "hosts")

    def __init__(self, time: int, kind: str, lease_id: int, hosts: tuple[int, ...] = ()) -> None:
        self.time = time
        self.kind = kind
        self.lease_id = lease_id
        self.hosts = hosts

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Action):
            return NotImplemented
        return (self.time, self.kind, self.lease_id, self.hosts) == (
            other.time, other.kind, other.lease_id, other.hosts)

    def __hash__(self) -> int:
        return hash((self.time, self.kind, self.lease_id, self.hosts))

    def __repr__(self) -> str:
        return f"Action({self.time}, {self.kind!r}, lease {self.lease_id}, hosts {self.hosts})"


@dataclass
class Preemption:
    lease_id: int
    how: str  # suspend | requeue | kill
    at: int


class Decision:
    """What became of a request: its state, where and when it runs, whom it preempted."""

    __slots__ = ("lease_id", "state", "start", "end", "hosts", "preempted", "reasons", "burst")

    def __init__(self, lease_id: int, state: LeaseState, start: int | None = None,
                 end: int | None = None, hosts: tuple[int, ...] = (),
                 preempted: list[Preemption] | None = None, reasons: list[str] | None = None,
                 burst: BurstPlan | None = None) -> None:
        self.lease_id = lease_id
        self.state = state
        self.start = start
        self.end = end
        self.hosts = hosts
        self.preempted = preempted if preempted is not None else []
        self.reasons = reasons if reasons is not None else []
        self.burst = burst  # runs on a public cloud instead of `hosts`

    def _fields(self) -> tuple[object, ...]:
        return (self.lease_id, self.state, self.start, self.end, self.hosts, self.preempted,
                self.reasons, self.burst)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Decision):
            return NotImplemented
        return self._fields() == other._fields()

    def __repr__(self) -> str:
        return (f"Decision(lease {self.lease_id}, {self.state.value}, start={self.start}, "
                f"end={self.end}, hosts={self.hosts}, reasons={self.reasons})")

    @property
    def accepted(self) -> bool:
        return self.state is not LeaseState.REJECTED


class Scheduler:
    def __init__(self, hosts: Sequence[HostSpec], config: SchedulerConfig,
                 policies: PolicySet, now: int = 0,
                 listener: Listener | None = None,
                 time_label: Callable[[int], str] = str,
                 burster: Burster | None = None) -> None:
        if not hosts:
            raise InvalidInput("the cluster has no hosts")
        self.hosts = list(hosts)
        self.config = config
        self.policies = policies  # built by the caller (`cloudctl.policies.policy_set`)
        self.table = SlotTable(self.hosts, now)
        self.now = now
        self.leases: dict[int, Lease] = {}
        self.queue: list[Lease] = []
        self._heap: list[tuple[int, int, int, Run]] = []
        self._seq = 0
        self._future_be: set[int] = set()  # BE leases holding a reservation that has not begun
        # lease id -> (its future run, table.freed): the lease fitted nowhere before the run's
        # start when the table had given back that much capacity (see _could_start_before).
        self._no_earlier_fit: dict[int, tuple[Run, int]] = {}
        self._fixed_future = 0  # runs of AR/IM leases not yet ended: the only splitters
        self._requeued = 0  # leases queued again (see _enqueue)
        self.link = TransferLink()
        self.channel = TransferLink()  # global exclusion: one suspend or resume at a time
        self.cache: list[dict[str, int]] = [{} for _ in self.hosts]  # image -> time it is there
        self.listener = listener
        # Called with each lease that reaches a final state, which the scheduler then forgets
        # (None: every lease is kept in `leases`).
        self.on_final: Callable[[Lease], None] | None = None
        self._t = time_label  # how reasons write a time: trace seconds, or a wall clock
        self.preemptions = 0
        self._room_cache: dict[object, int] = {}
        self._fit_cache: dict[tuple[object, int], Status] = {}
        self._misfits: dict[object, list[tuple[int, int]]] = {}
        self._room_version = -1
        self._queue_edits = 0  # insertions before the tail and removals (see _walk_state)
        # (state, queue, how many of its leases are known to wait) after a walk that booked
        # nothing: the next walk against the same state starts after those leases.
        self._quiet_walk: tuple[tuple[int, ...], list[Lease], int] | None = None
        # Bursting to public clouds (None: the private cloud is all there is). A queued
        # best-effort lease is looked at again when it has waited the providers' longest wait.
        self.burster = burster
        self._burst_due: list[tuple[int, int]] = []  # (submit + max wait, lease id)
        # A host score that never reads a candidate's index takes alike hosts as one group.
        self._host_blind = bool(getattr(self.policies.host_score, "host_blind", False))
        self._host_key = self.policies.host_score.key
        greedy = getattr(self.policies.host_score, "name", "") == "greedy"
        if config.host_ties == "index" and greedy:
            self._host_key = greedy_index_key
        # The built-in greedy scores rank hosts free for a whole run by the bookings they
        # hold, then by index: a one-VM lease placed now needs no candidate per host.
        self._greedy = self._host_key is greedy_key or self._host_key is greedy_index_key

    # -- requests ------------------------------------------------------------------------

    def submit(self, request: LeaseRequest, now: int) -> Decision:
        """Take a new request at `now`: ARs and IMs are placed or rejected at once, BE leases
        join the queue (call `schedule(now)` after the arrivals of one instant)."""
        if request.id in self.leases:
            raise InvalidInput(f"lease {request.id} already exists")
        self._tick(now)
        lease = Lease(request)
        self.leases[lease.id] = lease
        self._move(lease, LeaseState.PENDING, now, "submitted")
        status = self._cluster_fit(request)
        if status.ok:
            status = self.policies.admission.admit(request, self.hosts)
        if not status.ok:
            # Too big for our hosts, ever: a public cloud may still take it.
            reasons = [str(status)]
            start = lease.start_req if lease.start_req is not None else now
            if self.burster is not None and start >= now and self._burst(
                    lease, lease.type.value, start, now, "larger than any local host",
                    reasons):
                return self._burst_decision(lease)
            return self._reject(lease, now, "; ".join(reasons))
        if lease.type is LeaseType.BE:
            self._enqueue(lease, again=False)
            self._move(lease, LeaseState.QUEUED, now, "queued")
            self._watch_wait(lease)
            return Decision(lease.id, lease.state)
        return self._schedule_exact(lease, now)

    def _cluster_fit(self, request: LeaseRequest) -> Status:
        key = (request.capacity, request.nodes)
        status = self._fit_cache.get(key)
        if status is None:
            status = self._fit_cache[key] = cluster_fit(request, self.hosts)
        return status

    def cancel(self, lease_id: int, now: int, reason: str = "cancelled") -> Lease:
        return self._give_up(lease_id, now, LeaseState.CANCELLED, reason)

    def fail(self, lease_id: int, now: int, reason: str) -> Lease:
        """The lease cannot be carried out (its driver keeps failing): give its capacity
        back and record why."""
        return self._give_up(lease_id, now, LeaseState.FAIL, reason)

    def _give_up(self, lease_id: int, now: int, state: LeaseState, reason: str) -> Lease:
        """End a lease before its time: the work done so far is recorded, its reservation
        released, and reservations behind it may move earlier."""
        lease = self.leases[lease_id]
        if lease.state.final:
            return lease
        self._tick(now)
        if lease in self.queue:
            self._dequeue(lease)
        run = lease.run
        if run is not None:
            if run.start < now < run.run_end and run.run_start < now:
                lease.runs.append((run.run_start, now, run.hosts))
            self._future_be.discard(lease.id)
            self._release(run, now)
            if lease.burst is not None and self.burster is not None:
                self.burster.settle(lease.burst, max(0, now - lease.burst.start))
        self._move(lease, state, now, reason)
        self._replan_future(now)
        return lease

    def end_early(self, lease_id: int, now: int) -> Lease:
        """The lease's VMs finished before their reserved time (a trace's real duration): it is
        done now, with no shutdown reservation, and future reservations may move earlier."""
        lease = self.leases[lease_id]
        run = lease.run
        if (run is None or lease.state is not LeaseState.ACTIVE
                or not run.run_start <= now < run.run_end):
            raise InvalidInput(f"lease {lease_id} is not running at {self._t(now)}")
        self._tick(now)
        lease.runs.append((run.run_start, now, run.hosts))
        lease.remaining -= now - run.run_start
        self._release(run, now)
        if lease.burst is not None and self.burster is not None:
            self.burster.settle(lease.burst, now - lease.burst.start)
        lease.done_at = now
        self._move(lease, LeaseState.DONE, now, "ended before its reserved time")
        self._replan_future(now)
        return lease

    def explain_hosts(self, lease_id: int, start: int | None = None,
                      end: int | None = None) -> list[tuple[str, str]]:
        """(host name, why it cannot take one of the lease's VMs during [start, end), or '')
        for every host: the host-by-host story behind a rejection or a wait."""
        lease = self.leases[lease_id]
        if start is None:
            start = lease.start_req if lease.start_req is not None else self.now
        if end is None:
            end = start + (lease.remaining if lease.type is not LeaseType.AR else lease.duration)
        allowed = self._allowed(lease)
        out = []
        for h, host in enumerate(self.hosts):
            if (allowed is not None and h not in allowed) or not self.table.enabled[h]:
                out.append((host.name, str(self.policies.host_filter.explain(lease, host))))
                continue
            out.append((host.name, self.table.shortfall(h, start, end, lease.need)))
        return out

    def explain_placement(self, lease_id: int, start: int, end: int) -> list[tuple[str, str]]:
        """`explain_hosts` as if the lease's own current reservation were not booked (what
        each host would say to placing it again)."""
        run = self.leases[lease_id].run
        if run is None:
            return self.explain_hosts(lease_id, start, end)
        for b in run.bookings:
            self.table.remove(b)
        try:
            return self.explain_hosts(lease_id, start, end)
        finally:
            self.table.add_all(list(run.bookings))

    def host_index(self, name: str) -> int:
        for h, host in enumerate(self.hosts):
            if host.name == name:
                return h
        raise InvalidInput(f"no host {name!r} in the schedule")

    def set_host_enabled(self, name: str, enabled: bool) -> None:
        """A disabled host gets nothing new; what it holds carries on."""
        self.table.set_enabled(self.host_index(name), enabled)

    # -- time ----------------------------------------------------------------------------

    def next_event_time(self) -> int | None:
        heap = self._heap
        found = None
        while heap:
            t, phase, _, run = heap[0]
            if self._valid(t, phase, run):
                found = t
                break
            heapq.heappop(heap)
        due = self._burst_due
        while due:
            t, lease_id = due[0]
            waiting = self.leases.get(lease_id)
            if waiting is not None and waiting.state is LeaseState.QUEUED:
                return t if found is None or t < found else found
            heapq.heappop(due)
        return found

    def advance(self, now: int) -> list[Action]:
        """Carry out every run boundary up to `now`, in time order."""
        actions: list[Action] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            t, phase, _, run = heapq.heappop(heap)
            if not self._valid(t, phase, run):
                continue
            self._tick(t)
            run.step = _step_after(phase)
            self._carry_out(run, phase, t, actions)
        self._tick(now)
        return actions

    def _valid(self, t: int, phase: int, run: Run) -> bool:
        return (run.lease.run is run and run.step == _step_after(phase) - 1
                and _phase_time(run, phase) == t)

    def _carry_out(self, run: Run, phase: int, t: int, actions: list[Action]) -> None:
        lease = run.lease
        if phase == START:
            if run.hold == run.start and self.config.reserved_until == "start":
                self._future_be.discard(lease.id)
                self._no_earlier_fit.pop(lease.id, None)
            if lease.burst is not None:
                if run.run_start > run.start:
                    self._move(lease, LeaseState.PREPARING, t,
                               f"launching on {lease.burst.provider}")
                actions.append(Action(t, "launch", lease.id))
            elif run.migrated > run.start:
                self._move(lease, LeaseState.MIGRATING, t, "cold migration")
                actions.append(Action(t, "migrate", lease.id, run.hosts))
            elif run.run_start > run.start:
                self._move(lease, LeaseState.RESUMING, t, "resuming")
                actions.append(Action(t, "resume", lease.id, run.hosts))
        elif phase == MIGRATED:
            if run.migrated == run.start:
                return
            if run.hold > run.start and self.config.reserved_until == "start":
                # an early migration: the hosts are held from now
                self._future_be.discard(lease.id)
                self._no_earlier_fit.pop(lease.id, None)
            lease.migrations.append((run.start, run.migrated))
            if run.run_start > _resume_from(run):
                self._move(lease, LeaseState.RESUMING, t, "resuming")
                actions.append(Action(t, "resume", lease.id, run.hosts))
        elif phase == RUN_START:
            if self.config.reserved_until == "run":
                self._future_be.discard(lease.id)
                self._no_earlier_fit.pop(lease.id, None)
            if run.run_start > _resume_from(run) and lease.burst is None:
                lease.resumptions.append((_resume_from(run), run.run_start))
            if lease.first_start is None:
                lease.first_start = t
                actions.append(Action(t, "start", lease.id, run.hosts))
            self._move(lease, LeaseState.ACTIVE, t, "running")
            actions.append(Action(t, "running", lease.id, run.hosts))
        elif phase == RUN_END:
            if run.run_end > run.run_start:
                lease.runs.append((run.run_start, run.run_end, run.hosts))
            lease.remaining -= run.run_end - run.run_start
            lease.last_hosts = run.hosts
            if run.post == SUSPEND:
                self._move(lease, LeaseState.SUSPENDING, t, "suspending for a preemptor")
                actions.append(Action(t, "suspend", lease.id, run.hosts))
            elif run.post == SHUTDOWN:
                actions.append(Action(t, "shutdown", lease.id, run.hosts))
            else:  # KILL: the work of this run is lost; the lease starts over
                lease.remaining = lease.duration
                lease.last_hosts = ()
                actions.append(Action(t, "kill", lease.id, run.hosts))
                self._drop_run(run)
                if lease.state is LeaseState.ACTIVE:
                    self._move(lease, LeaseState.QUEUED, t, "killed by a preemptor; requeued")
                else:
                    self._move(lease, LeaseState.SUSPENDED_QUEUED, t,
                               "resume aborted by a preemptor")
                self._enqueue(lease)
        elif phase == END:
            self._drop_run(run)
            if lease.burst is not None and self.burster is not None:
                # Billed until its instances went: the local nodes' shutdown is not theirs.
                plan = lease.burst
                self.burster.settle(plan, min(t, plan.end) - plan.start)
            if run.post == SUSPEND:
                lease.suspensions.append((run.run_end, run.end))
                self._move(lease, LeaseState.SUSPENDED_PENDING, t, "suspended")
                self._move(lease, LeaseState.SUSPENDED_QUEUED, t, "waiting to resume")
                self._enqueue(lease)
                actions.append(Action(t, "suspended", lease.id, run.hosts))
            else:
                lease.done_at = t
                self._move(lease, LeaseState.DONE, t, "done")
                actions.append(Action(t, "done", lease.id, run.hosts))

    def _tick(self, now: int) -> None:
        if now > self.now:
            self.now = now
        self.table.advance(self.now)

    # -- the queue -------------------------------------------------------------------------

    def schedule(self, now: int) -> None:
        """One pass over the best-effort queue (Haizea's backfilling walk); then leases that
        have waited too long are offered to the burst providers."""
        self._walk(now)
        if self._burst_due and self._burst_due[0][0] <= now:
            self._burst_waiting(now)

    def _walk(self, now: int) -> None:
        self._tick(now)
        if not self.queue:
            return
        limit = self.config.backfilling
        future = len(self._future_be)
        queue = self.queue
        first = 0
        memo = self._quiet_walk
        if memo is not None and memo[1] is queue and memo[0] == self._walk_state():
            # The last walk booked nothing, and nothing has changed since but the clock and
            # leases appended to the queue: the leases it walked would wait again, with the
            # same reasons (see _walk_state), so only the new ones are walked.
            first = memo[2]
            if first >= len(queue):
                return
        waiting: list[Lease] = queue[:first]
        quiet = True  # every lease walked waits and would still wait at a later instant
        free_now = self.table.fits_now_hosts()
        limit_reason = _limit_reason(limit)
        for i in range(first, len(queue)):
            lease = queue[i]
            may_reserve = limit is None or future < limit
            if not may_reserve and not free_now:
                waiting.extend(queue[i:])  # nothing can start now and nothing may reserve
                for rest in queue[i:]:
                    rest.reason = "waiting: no capacity free now"
                break
            # Most leases of a long queue are turned away at once: too big for what is free.
            if not may_reserve and self._room_now(lease) < lease.nodes:
                lease.reason = limit_reason
            elif self._schedule_be(lease, now, may_reserve):
                quiet = False
                if lease.run is not None and lease.run.hold > now:
                    future += 1
                continue
            waiting.append(lease)
            if quiet and (may_reserve or not self._plain(lease)):
                quiet = False
            if limit == 0:
                quiet = False  # the walk stops here: the leases after it were not walked
                waiting.extend(queue[i + 1:])
                break
        self.queue = waiting
        self._quiet_walk = (self._walk_state(), waiting, len(waiting)) if quiet else None

    def _walk_state(self) -> tuple[int, ...]:
        """What a queue walk's outcome depends on besides the clock and the leases walked.

        A plain lease (see `_plain`) that cannot start now against a table cannot start at a
        later instant against the same table either: the table has crossed no booking start
        or end in between (it would have a new version), so the later window meets the same
        usage and more of it. A walk that booked nothing therefore repeats itself as long as
        this state stays the same.
        """
        return (self.table.version, self._queue_edits, len(self._future_be), self._fixed_future)

    def _plain(self, lease: Lease) -> bool:
        """A lease that cannot be split and needs no image: whether it fits now depends only
        on its size, its length and the table."""
        cfg = self.config
        return (not self._splittable(lease)
                and (not lease.image or cfg.image_transfer == "none")
                and lease.state is not LeaseState.SUSPENDED_QUEUED)

    def _splittable(self, lease: Lease) -> bool:
        """May the lease run up to a future reservation and be suspended there? Against fixed
        reservations only (there must be some), or against any (Haizea, Q14)."""
        cfg = self.config
        return (lease.preemptible and cfg.suspension_enabled
                and (self._fixed_future > 0 or cfg.split == "any"))

    def _enqueue(self, lease: Lease, again: bool = True) -> None:
        """Queue in (submit time, id) order. With requeue order "behind", a lease queued
        again (suspended, requeued, re-planned) goes behind every lease queued with the same
        submit time (Haizea appends it and sorts by submit time, stably)."""
        if again and self.config.requeue_order == "behind":
            self._requeued += 1
            lease.queue_key = (lease.submit, REQUEUED + self._requeued)
        queue = self.queue
        if not queue or queue[-1].queue_key <= lease.queue_key:
            queue.append(lease)
            return
        keys = [q.queue_key for q in queue]
        queue.insert(bisect_right(keys, lease.queue_key), lease)
        self._queue_edits += 1

    def _dequeue(self, lease: Lease) -> None:
        self.queue.remove(lease)
        self._queue_edits += 1

    def _replan_future(self, now: int) -> None:
        """Capacity came free early: every best-effort reservation that has not begun and
        could now start earlier is placed again, in queue order (compression).  Reservations
        that cannot move keep their hosts."""
        for lease_id in sorted(self._future_be, key=lambda i: self.leases[i].queue_key):
            lease = self.leases[lease_id]
            run = lease.run
            if run is None or run.hold <= now:
                continue
            if not self._could_start_before(lease, run, now):
                continue
            self._future_be.discard(lease_id)
            self._release(run, now)
            if lease.state in (LeaseState.SUSPENDED_SCHEDULED, LeaseState.MIGRATING):
                self._move(lease, LeaseState.SUSPENDED_QUEUED, now, "re-planned")
            else:
                self._move(lease, LeaseState.QUEUED, now, "re-planned")
            # Re-place it at once, before the queue: its old slot is free again, so it can only
            # move earlier; leases still waiting in the queue never overtake it.
            if not self._schedule_be(lease, now, may_reserve=True):
                self._enqueue(lease)

    def _could_start_before(self, lease: Lease, run: Run, now: int) -> bool:
        if (self.config.image_transfer != "none" or lease.suspended or run.post != SHUTDOWN
                or (self.config.split == "any" and self._splittable(lease))):
            return True  # not worth being clever (or it may start earlier in part): re-plan
        length = run.end - run.start
        t0, before = now, run.start
        known = self._no_earlier_fit.get(lease.id)
        freed = self.table.freed_since(known[1]) if known and known[0] is run else None
        if freed is not None:
            # It fitted nowhere before its start when the proof was made. Since then the table
            # has only gained bookings, except for the capacity given back in [lo, hi), so an
            # earlier fit must overlap [lo, hi): only those start times need a look.
            lo, hi = freed
            t0, before = max(now, lo - length + 1), min(before, hi)
        if t0 < before:
            for _ in self.table.sweep(lease.need, lease.nodes, length, t0, before=before,
                                      ignore=run, hosts=self._allowed(lease), collect=False):
                return True
        self._no_earlier_fit[lease.id] = (run, self.table.freed)
        return False

    # -- best-effort placement -------------------------------------------------------------

    def _room_now(self, lease: Lease) -> int:
        """Upper bound of the lease's virtual nodes that could start now (cached per table
        version, since a queue walk asks it for many leases of the same shape)."""
        table = self.table
        if self._room_version != table.version:
            self._room_cache.clear()
            self._misfits.clear()
            self._room_version = table.version
        need = lease.need
        room = self._room_cache.get(need)
        if room is None:
            room = table.room_now(need)
            self._room_cache[need] = room
        return room

    def _known_not_to_fit(self, lease: Lease) -> bool:
        """A plain lease of the same shape, no smaller and no shorter, failed to start now
        against this very table: this one cannot start either (queue walks ask this a lot)."""
        self._room_now(lease)  # clears the caches when the table changed
        for nodes, length in self._misfits.get(lease.need, ()):
            if lease.nodes >= nodes and lease.remaining >= length:
                return True
        return False

    def _schedule_be(self, lease: Lease, now: int, may_reserve: bool) -> bool:
        cfg = self.config
        need = lease.need
        suspended = lease.state is LeaseState.SUSPENDED_QUEUED
        suspendable = self._splittable(lease)
        if not may_reserve and self._room_now(lease) < lease.nodes:
            lease.reason = self._waiting_reason(lease, now, may_reserve)
            return False
        # Leases that cannot be split and need no image differ only in size and length, so one
        # that failed to start now rules out any no smaller and no shorter.
        plain = self._plain(lease)
        if not may_reserve and plain and self._known_not_to_fit(lease):
            lease.reason = self._waiting_reason(lease, now, may_reserve)
            return False
        shutdown = shutdown_duration(lease.nodes, cfg)
        options: list[tuple[int, int, Run]] = []

        # A suspended lease's memory image may move as soon as it is suspended (early), or
        # only once the destination is free; Haizea waits for the move even when the lease
        # stays put (Q10), and starts the move when it schedules the lease.
        t0 = now
        moved_from = now
        if suspended and cfg.migration:
            allowance = self._migration_time(lease)
            if cfg.migration_allowance:
                t0 = now + allowance
            elif lease.suspensions:
                moved_from = min(now, lease.suspensions[-1][1])

        def plan(hosts_pref: tuple[int, ...] | None, migrate_all: bool) -> Run | None:
            layout = hosts_pref or self._guess_layout(lease)
            resume = resume_time(layout, need.memory_mib, cfg) if suspended else 0
            migrate = self._migration_time(lease) if migrate_all else 0
            early: tuple[int, int] | None = None
            start_from = t0
            if migrate and cfg.early_migration:
                early = (moved_from, moved_from + migrate)
                start_from = max(t0, early[1])
                migrate = 0
            pre = migrate + resume
            full = pre + lease.remaining + shutdown
            sus = suspend_time(layout, need.memory_mib, cfg) if suspendable else 0
            min_len = full
            if suspendable:
                gap = self._threshold(lease, sus, resume, suspended)
                min_len = min(full, max(gap, pre + sus + 1))
            ready = self._image_ready(lease, now) if not suspended else None
            if (self._greedy and lease.nodes == 1 and hosts_pref is None and ready is None
                    and start_from == now and not (suspendable and min_len < full)
                    and self._allowed(lease) is None):
                best = self.table.best_single_now(need, min_len)
                if best >= 0:
                    return self._choose(lease, now, [Candidate(best, 1, 0)], pre, migrate,
                                        full, sus, min_len, suspendable, None, early)
                if best == -1 and not may_reserve:
                    return None
            if hosts_pref is not None:
                found = self._fit_on(lease, hosts_pref, start_from, min_len, may_reserve)
                attempts: Iterable[tuple[int, list[Candidate]]] = found
            else:
                # Hosts alike but for their index come as one candidate when the score never
                # reads the index; hosts with future bookings too unless `_choose` needs each
                # one's `until` (a run that may end in a suspension).
                group = GROUP_NONE
                if self._host_blind:
                    group = GROUP_SIMPLE if suspendable and min_len < full else GROUP_ALL
                attempts = self.table.sweep(need, lease.nodes, min_len, start_from,
                                            hosts=self._allowed(lease), ready=ready,
                                            future=may_reserve, group=group)
            for t, candidates in attempts:
                run = self._choose(lease, t, candidates, pre, migrate, full, sus, min_len,
                                   suspendable, fixed_hosts=hosts_pref, early=early)
                if run is not None:
                    return run
            return None

        if suspended and lease.last_hosts and cfg.migration and cfg.migration_allowance:
            # Haizea: one placement over every host, all of them from the allowance on; the
            # image moves only if the hosts chosen are other hosts.
            moved = plan(None, migrate_all=True)
            if moved is not None:
                if moved.hosts == lease.last_hosts:
                    moved.start = moved.migrated = moved.hold
                options.append((moved.run_start, 1, moved))
        elif suspended and lease.last_hosts:
            run = plan(lease.last_hosts, migrate_all=False)
            if run is not None:
                options.append((run.run_start, 0, run))
            if cfg.migration:
                moved = plan(None, migrate_all=True)
                if moved is not None:
                    options.append((moved.run_start, 1, moved))
        else:
            run = plan(None, migrate_all=False)
            if run is not None:
                options.append((run.start, 0, run))
        if not options:
            if not may_reserve and plain:
                self._misfits.setdefault(need, []).append((lease.nodes, lease.remaining))
            lease.reason = self._waiting_reason(lease, now, may_reserve)
            return False
        _, _, run = min(options, key=lambda o: (o[0], o[1]))
        wait = self.burster.max_wait if self.burster is not None else None
        if (wait is not None and run.start - lease.submit > wait and not suspended
                and lease.first_start is None):
            why = (f"would wait {run.start - lease.submit} s for local hosts (limit {wait} s)")
            if self._burst(lease, "be", now, now, why, [], self._ready_hosts(lease, now)):
                return True
        self._book(run, now)
        if run.hold > now:
            self._future_be.add(lease.id)
            if plain:
                # A plain lease takes the first start the sweep yields: it fits nowhere earlier.
                self._no_earlier_fit[lease.id] = (run, self.table.freed)
        new = LeaseState.SUSPENDED_SCHEDULED if suspended else LeaseState.SCHEDULED
        when = "now" if run.hold <= now else f"at {self._t(run.hold)} (future reservation)"
        self._move(lease, new, now, f"scheduled {when}")
        return True

    def _choose(self, lease: Lease, t: int, candidates: list[Candidate], pre: int, migrate: int,
                full: int, sus: int, min_len: int, suspendable: bool,
                fixed_hosts: tuple[int, ...] | None,
                early: tuple[int, int] | None = None) -> Run | None:
        """Pick hosts among candidates at t; the run is partial (ends in a suspension before a
        fixed reservation) only when the lease may be suspended and the gap is long enough."""
        table = self.table
        need = lease.need
        end_full = t + full
        if fixed_hosts is not None:
            hosts = fixed_hosts
            ends = [table.free_until(h, t, need, n, end_full) for h, n in Counter(hosts).items()]
        else:
            if suspendable and min_len < full:  # otherwise every candidate fits the whole run
                for c in candidates:
                    if table.has_future(c.host):  # only these can be cut short
                        c.until, c.blocked_by_fixed = table.free_until(c.host, t, need, 1, end_full)
            assigned = self._assign(lease, candidates, end_full)
            if assigned is None:
                return None
            hosts = assigned
            if suspendable and min_len < full:
                ends = [table.free_until(h, t, need, n, end_full) if table.has_future(h)
                        else (end_full, True) for h, n in Counter(hosts).items()]
            else:
                ends = [(end_full, True)]
        end = min(e for e, _ in ends)
        if end >= end_full:
            run_end = t + pre + lease.remaining
            return self._serialize(_moved_early(
                Run(lease, hosts, t, t + migrate, t + pre, run_end, end_full, SHUTDOWN), early))
        if not suspendable or end - t < min_len:
            return None
        if self.config.split != "any" and not all(fixed for e, fixed in ends if e == end):
            return None
        sus = suspend_time(hosts, need.memory_mib, self.config)
        run_end = end - sus
        if run_end <= t + pre:
            return None
        return self._serialize(_moved_early(
            Run(lease, hosts, t, t + migrate, t + pre, run_end, end, SUSPEND), early))

    def _threshold(self, lease: Lease, sus: int, resume: int, suspended: bool) -> int:
        """The shortest run worth starting when it will be suspended at its end: its suspend
        (and resume) time x (1 + factor). Haizea estimates those times for the whole lease,
        every node holding the memory of all of them (an overestimate), and counts the
        resume only when the lease is suspended now; cloudctl uses the layout's times."""
        cfg = self.config
        if cfg.threshold_estimate == "haizea":
            total = lease.need.memory_mib * lease.nodes
            sus = (cfg.override_suspend_time if cfg.override_suspend_time is not None else
                   lease.nodes * (math.ceil(total / cfg.suspend_rate) + cfg.enactment_overhead))
            resume = 0
            if suspended:
                resume = (cfg.override_resume_time if cfg.override_resume_time is not None
                          else lease.nodes * (math.ceil(total / cfg.resume_rate)
                                              + cfg.enactment_overhead))
        return math.ceil((sus + resume) * (1 + cfg.threshold_factor))

    def _serialize(self, run: Run) -> Run | None:
        """Global exclusion: one suspension or resumption at a time in the whole cluster. A
        resume waits for the channel (the run moves later, if its hosts allow); a planned
        suspension takes the latest free slot before its deadline."""
        if self.config.suspend_exclusion != "global":
            return run
        begin = _resume_from(run)
        resume = run.run_start - begin
        if resume > 0:
            shift = self.channel.earliest(begin, resume) - begin
            if shift and run.post == SHUTDOWN:
                for h, n in Counter(run.hosts).items():
                    if self.table.fit_count(h, run.start + shift, run.end + shift,
                                            run.lease.need)[0] < n:
                        return None
                run.end += shift
                run.run_end += shift
            if run.hold == run.start:
                run.start += shift
                run.migrated += shift
            run.hold += shift
            run.run_start += shift
            if run.run_start >= run.run_end:
                return None
        if run.post == SUSPEND:
            sus = run.end - run.run_end
            slot = self.channel.latest(run.end, sus, run.run_start + 1)
            if slot is None:
                return None
            run.run_end, run.end = slot, slot + sus
        return run

    def _fit_on(self, lease: Lease, hosts: tuple[int, ...], now: int, length: int,
                may_reserve: bool) -> Iterable[tuple[int, list[Candidate]]]:
        """Times at which the lease fits back on exactly its previous hosts."""
        per_host = Counter(hosts)
        times = [now] + (self.table.changepoints(now) if may_reserve else [])
        for t in times:
            if all(self.table.fit_count(h, t, t + length, lease.need)[0] >= n
                   and self.table.enabled[h] for h, n in per_host.items()):
                yield t, []

    def _guess_layout(self, lease: Lease) -> tuple[int, ...]:
        return lease.last_hosts or tuple(range(lease.nodes))

    def _migration_time(self, lease: Lease) -> int:
        """Cold migration moves each VM's memory image (and its disk, when images are managed)
        host to host; as in Haizea, moves between disjoint pairs of hosts run in parallel, so
        the busiest source host sets the time."""
        size = lease.need.memory_mib
        if self.config.image_transfer != "none":
            size += lease.image_size
        per_host = max(Counter(lease.last_hosts).values(), default=lease.nodes)
        return transfer_time(size, self.config.bandwidth) * per_host

    def _ready_hosts(self, lease: Lease, now: int) -> set[int] | None:
        """The hosts the lease may run on that hold its image at `now` (None: any host)."""
        cfg = self.config
        ready = None
        if cfg.image_transfer != "none" and lease.image:
            ready = {h for h in range(len(self.hosts))
                     if cfg.image_cache and self.cache[h].get(lease.image, INFINITY) <= now}
        allowed = self._allowed(lease)
        if allowed is not None:
            ready = allowed if ready is None else ready & allowed
        return ready

    def _allowed(self, lease: Lease) -> set[int] | None:
        return self.policies.host_filter.allowed(lease, self.hosts)

    def _waiting_reason(self, lease: Lease, now: int, may_reserve: bool) -> str:
        if not may_reserve:
            return _limit_reason(self.config.backfilling)
        return "waiting: no fit now or at any future changepoint"

    # -- images ----------------------------------------------------------------------------

    def _image_ready(self, lease: Lease, now: int) -> dict[int, int] | None:
        """When each host could hold the lease's image if its transfers were queued now."""
        cfg = self.config
        if cfg.image_transfer == "none" or not lease.image:
            return None
        one = transfer_time(lease.image_size, cfg.bandwidth)
        have = [self.cache[h].get(lease.image) if cfg.image_cache else None
                for h in range(len(self.hosts))]
        # Unicast sends one copy per host that lacks the image, at most one per VM.
        lacking = sum(1 for t in have if t is None)
        copies = 1 if cfg.image_transfer == "multicast" else max(1, min(lease.nodes, lacking))
        total = one * copies
        arrive = self.link.earliest(now, total) + total
        return {h: arrive if t is None else max(now, min(t, arrive)) for h, t in enumerate(have)}

    def _book_transfers(self, lease: Lease, hosts: Iterable[int], deadline: int, now: int,
                        latest: bool) -> bool:
        """Reserve the image transfers the hosts need; ARs take the latest slot ending by the
        deadline (earliest-deadline order), BE leases the earliest slot (first come first
        served). False if an AR's transfers cannot make the deadline."""
        cfg = self.config
        if cfg.image_transfer == "none" or not lease.image:
            return True
        missing = sorted({h for h in hosts
                          if not (cfg.image_cache and self.cache[h].get(lease.image, INFINITY)
                                  <= deadline)})
        if not missing:
            return True
        one = transfer_time(lease.image_size, cfg.bandwidth)
        total = one if cfg.image_transfer == "multicast" else one * len(missing)
        if latest:
            start = self.link.latest(deadline, total, now)
            if start is None:
                return False
        else:
            start = self.link.earliest(now, total)
        self.link.book(start, start + total)
        lease.transfers.append((start, start + total))
        for h in missing:
            self.cache[h][lease.image] = start + total
        return True

    # -- exact placement (AR, IM) ---------------------------------------------------------

    def _schedule_exact(self, lease: Lease, now: int) -> Decision:
        cfg = self.config
        if lease.type is LeaseType.IM:
            start = now
            shutdown = shutdown_duration(lease.nodes, cfg)
            end = start + lease.duration + shutdown
            run_end = start + lease.duration
        else:
            start = lease.start_req if lease.start_req is not None else now
            if start < now:
                return self._reject(lease, now, f"start {self._t(start)} is in the past "
                                                f"(now {self._t(now)})")
            shutdown = shutdown_duration(lease.nodes, cfg)
            end = start + lease.duration
            run_end = end - shutdown  # an AR's shutdown is carved from its window
            if run_end <= start:
                return self._reject(lease, now, f"duration {lease.duration} s is shorter than "
                                                f"its shutdown ({shutdown} s)")
        hosts_ok = self._ready_hosts(lease, now) if lease.type is LeaseType.IM else (
            self._allowed(lease))
        hosts = self._place_exact(lease, start, end, hosts_ok)
        preempted: list[Preemption] = []
        if hosts is None:
            victims, reasons = self._find_victims(lease, start, end, hosts_ok)
            trigger = lease.type.value
            if victims is None:
                short = [f"{self.hosts[h].name}: {why}" for h in range(len(self.hosts))
                         if (why := self.table.shortfall(h, start, end, lease.need))]
                if short:
                    more = f" (+{len(short) - 3} more)" if len(short) > 3 else ""
                    reasons.append("; ".join(short[:3]) + more)
                if self.burster is not None and self._burst(
                        lease, trigger, start, now, "no local room", reasons,
                        self._ready_hosts(lease, now)):
                    return self._burst_decision(lease)
                return self._reject(lease, now, "; ".join(reasons))
            if self.burster is not None and lease.type is LeaseType.AR:
                allowed_pre = min((p.max_preemptions for p in self.burster.providers
                                   if p.max_preemptions is not None), default=None)
                if allowed_pre is not None and len(victims) > allowed_pre and self._burst(
                        lease, trigger, start, now,
                        f"would preempt {len(victims)} lease(s), more than {allowed_pre}", [],
                        self._ready_hosts(lease, now)):
                    return self._burst_decision(lease)
            for victim in victims:
                preempted.append(self._preempt(victim, start, now))
            hosts = self._place_exact(lease, start, end, hosts_ok)
            assert hosts is not None, "victims were chosen so that the lease fits"
        if not self._book_transfers(lease, hosts, start, now, latest=True):
            return self._reject(lease, now, "transfer: no slot on the image link before the start")
        run = Run(lease, hosts, start, start, start, run_end, end, SHUTDOWN)
        self._book(run, now)
        self._fixed_future += 1
        self._move(lease, LeaseState.SCHEDULED, now, f"reserved [{self._t(start)}, {self._t(end)})")
        if preempted:
            if self.config.replan_after_preemption:
                self._replan_future(now)
            self.schedule(now)
        return Decision(lease.id, lease.state, start, end, hosts, preempted)

    def _place_exact(self, lease: Lease, start: int, end: int,
                     allowed: set[int] | None) -> tuple[int, ...] | None:
        table = self.table
        score = self.policies.host_score
        if getattr(score, "idle_first", False):
            # The policy ranks a host with nothing overlapping the window above every other
            # and breaks ties by host order: the first such hosts in order are its answer.
            chosen: list[int] = []
            enabled = table.enabled
            for h in (range(len(self.hosts)) if allowed is None else sorted(allowed)):
                if not enabled[h]:
                    continue
                fits, overlapping = table.fit_count(h, start, end, lease.need)
                if overlapping:
                    continue
                chosen.extend([h] * min(fits, lease.nodes - len(chosen)))
                if len(chosen) == lease.nodes:
                    return tuple(chosen)
        return self._assign(lease, table.candidates_at(start, end, lease.need, allowed), end)

    def _assign(self, lease: Lease, candidates: list[Candidate], end: int,
                most: int | None = None) -> tuple[int, ...] | None:
        """One host per virtual node, best-scored hosts first, as many VMs per host as fit;
        ties go to the lower host index (None when they do not all fit, unless `most` asks
        for up to that many nodes)."""
        key = self._host_key
        # Hosts are unique among candidates: the objects themselves are never compared.
        ranked = sorted([(key(lease, c, end), c.host, c) for c in candidates])
        chosen: list[int] = []
        left = lease.nodes if most is None else most
        i, n = 0, len(ranked)
        while i < n:
            k, _, c = ranked[i]
            j = i + 1
            while j < n and ranked[j][0] == k:
                j += 1
            i, first = j, i
            if j == first + 1 and c.fits == 1:  # one candidate, one VM per host: in order
                hosts = c.group if c.group is not None else [c.host]
                chosen.extend(hosts[:left])
                left -= min(left, len(hosts))
                if not left:
                    return tuple(chosen)
                continue
            # Equal scores: the hosts of every group among them, in host order.
            members = [(h, cc.fits) for _, _, cc in ranked[first:j]
                       for h in (cc.group or (cc.host,))]
            if j > first + 1:
                members.sort()
            for h, fits in members:
                if fits >= left:
                    chosen.extend([h] * left)
                    return tuple(chosen)
                chosen.extend([h] * fits)
                left -= fits
        return None if most is None else tuple(chosen)

    def _find_victims(self, lease: Lease, start: int, end: int,
                      allowed: set[int] | None) -> tuple[list[Lease] | None, list[str]]:
        """Preemption as a what-if: take candidate victims out one at a time (policy order)
        until the lease fits, then give back those that were not needed."""
        overlapping: dict[int, Lease] = {}
        for h in range(len(self.hosts)):
            if allowed is not None and h not in allowed:
                continue
            for b in self.table.overlapping(h, start, end):
                owner = b.owner.lease  # type: ignore[attr-defined]
                overlapping[owner.id] = owner
        need = f"{lease.nodes} x {lease.need.cpus} CPU/{lease.need.memory_mib} MiB"
        reasons = [f"no room for {need} during [{self._t(start)}, {self._t(end)})"]
        policy = self.policies.preemption
        # A lease partly on a public cloud is not suspended: its instances would go on.
        ranked = [v for v in policy.rank(lease, list(overlapping.values()), start)
                  if v.burst is None]
        for victim in overlapping.values():
            if victim.burst is not None:
                reasons.append(f"burst: lease {victim.id} runs partly on {victim.burst.provider}")
            elif victim not in ranked:
                reasons.append(str(policy.may_preempt(lease, victim, start)))
        if not ranked:
            return None, reasons
        removed: list[tuple[Lease, list[Booking]]] = []
        fits = False
        for victim in ranked:
            assert victim.run is not None
            bookings = list(victim.run.bookings)
            for b in bookings:
                self.table.remove(b)
            removed.append((victim, bookings))
            if self._place_exact(lease, start, end, allowed) is not None:
                fits = True
                break
        if fits and self.config.reprieve:
            # Reprieve: give back, most precious first, every victim the lease can do without.
            for i in range(len(removed) - 2, -1, -1):
                victim, bookings = removed[i]
                for b in bookings:
                    self.table.add(b)
                if self._place_exact(lease, start, end, allowed) is None:
                    for b in bookings:
                        self.table.remove(b)
                else:
                    removed[i] = (victim, [])
        victims = [v for v, bookings in removed if bookings]
        for _victim, bookings in removed:
            for b in bookings:
                self.table.add(b)
        if not fits:
            reasons.append(f"still no room after preempting {len(removed)} lease(s)")
            return None, reasons
        return victims, reasons

    def _preempt(self, victim: Lease, at: int, now: int) -> Preemption:
        """Make `victim` give up its hosts from `at`: suspend it so that it is fully suspended
        exactly at `at`, or kill and requeue it, or (not begun yet) just requeue it."""
        run = victim.run
        assert run is not None
        victim.preempted += 1
        self.preemptions += 1
        if run.hold > now:
            self._release(run, now)
            self._future_be.discard(victim.id)
            why = f"gave up its slot to an AR at {self._t(at)}"
            if victim.state in (LeaseState.SUSPENDED_SCHEDULED, LeaseState.MIGRATING):
                self._move(victim, LeaseState.SUSPENDED_QUEUED, now, why)
            else:
                self._move(victim, LeaseState.QUEUED, now, why)
            self._enqueue(victim)
            return Preemption(victim.id, "requeue", at)
        if self.config.suspension_enabled:
            cfg = self.config
            sus = suspend_time(run.hosts, victim.need.memory_mib, cfg)
            suspend_at = at - sus
            # The threshold: a run too short to be worth its suspend (and resume) is requeued.
            resume = run.run_start - _resume_from(run)
            worth = self._threshold(victim, sus, resume, False)
            end = at
            if cfg.suspend_exclusion == "global":
                slot = self.channel.latest(at, sus, max(now, run.run_start + 1))
                suspend_at = slot if slot is not None else -1
                end = suspend_at + sus
            if suspend_at > run.run_start and suspend_at >= now and at - run.hold >= worth:
                if cfg.suspend_exclusion == "global":
                    self._hold_channel(run, suspend_at, end)
                self._cut(run, suspend_at, end, SUSPEND)
                victim.reason = (f"preempted: suspends at {self._t(suspend_at)} for an AR at "
                                 f"{self._t(at)}")
                return Preemption(victim.id, "suspend", at)
        if self.config.requeue == "at-once" and run.run_start <= now:
            # Haizea: cancelled and requeued as soon as the preemptor is accepted; the work
            # done is lost (Q2).
            if run.run_start < now:
                victim.runs.append((run.run_start, now, run.hosts))
            self._release(run, now)
            victim.remaining = victim.duration
            victim.last_hosts = ()
            self._move(victim, LeaseState.QUEUED, now, f"preempted by an AR at {self._t(at)}: "
                                                       f"cancelled and requeued, starts over")
            self._enqueue(victim)
            return Preemption(victim.id, "requeue", at)
        kill_at = max(at, run.run_start) if run.run_start < at else at
        if run.run_start >= at:
            run.run_start = run.run_end = at
        self._cut(run, kill_at, at, KILL)
        victim.reason = f"preempted: killed at {self._t(at)} and requeued"
        return Preemption(victim.id, "kill", at)

    def _cut(self, run: Run, run_end: int, end: int, post: str) -> None:
        run.run_end = run_end
        run.end = end
        run.post = post
        for b in run.bookings:
            self.table.truncate(b, end)
        run.bookings = [b for b in run.bookings if b.live]
        self._push(run)

    # -- bookkeeping ----------------------------------------------------------------------

    def _book(self, run: Run, now: int) -> None:
        lease = run.lease
        lease.run = run
        if self.config.suspend_exclusion == "global":
            if run.run_start > run.migrated:
                self._hold_channel(run, run.migrated, run.run_start)
            if run.post == SUSPEND:
                self._hold_channel(run, run.run_end, run.end)
        run.bookings.extend(self.table.add_all(
            [Booking(run.hold, run.end, h, lease.need, run) for h in run.hosts]))
        # A resumed lease's disk travels with it (migration) or is still there; only a lease
        # starting from scratch needs its image from the repository.
        if lease.type is LeaseType.BE and lease.image and not lease.last_hosts:
            self._book_transfers(lease, set(run.hosts), run.start, now, latest=False)
        self._push(run)

    def _push(self, run: Run) -> None:
        """Queue the run's phases not yet carried out (in the run's order, one sequence
        number each), written out: every run is pushed at least once."""
        heap = self._heap
        push = heapq.heappush
        step = run.step
        seq = self._seq
        if step < 1:
            seq += 1
            push(heap, (run.start, START, seq, run))
        if step < 2:
            seq += 1
            push(heap, (_resume_from(run), MIGRATED, seq, run))
        if step < 3:
            seq += 1
            push(heap, (run.run_start, RUN_START, seq, run))
        if step < 4:
            seq += 1
            push(heap, (run.run_end, RUN_END, seq, run))
        if step < 5:
            seq += 1
            push(heap, (run.end, END, seq, run))
        self._seq = seq

    def _hold_channel(self, run: Run, start: int, end: int) -> None:
        self.channel.book(start, end)
        run.channel.append((start, end))

    def _release(self, run: Run, now: int) -> None:
        for start, end in run.channel:
            if start >= now:
                self.channel.unbook(start, end)
        run.channel = []
        self.table.truncate_all(run.bookings, now)
        run.bookings = []
        self._drop_run(run)

    def _drop_run(self, run: Run) -> None:
        lease = run.lease
        if lease.run is run:
            lease.run = None
            if lease.type is not LeaseType.BE and run.hosts:  # a burst lease's may be none
                self._fixed_future -= 1

    def _reject(self, lease: Lease, now: int, reason: str) -> Decision:
        lease.reason = reason
        self._move(lease, LeaseState.REJECTED, now, reason)
        return Decision(lease.id, LeaseState.REJECTED, reasons=[reason])

    def _move(self, lease: Lease, new: LeaseState, now: int, reason: str) -> None:
        old = lease.move(new)
        lease.reason = reason
        if self.listener is not None:
            self.listener(lease, old, new, now, reason)
        if self.on_final is not None and new.final:
            # Handed over and forgotten: a long replay keeps only the leases still going.
            self.leases.pop(lease.id, None)
            self.on_final(lease)


    # -- bursting to a public cloud ---------------------------------------------------------

    def _watch_wait(self, lease: Lease) -> None:
        wait = self.burster.max_wait if self.burster is not None else None
        if wait is not None and lease.first_start is None:
            heapq.heappush(self._burst_due, (lease.submit + wait, lease.id))

    def _burst_waiting(self, now: int) -> None:
        """Queued leases that have waited the longest wait a provider allows go there, if
        the policy and the budget say so; the others go on waiting, with the reason."""
        due = self._burst_due
        while due and due[0][0] <= now:
            _, lease_id = heapq.heappop(due)
            found = self.leases.get(lease_id)
            if (found is None or found.state is not LeaseState.QUEUED
                    or found.first_start is not None):
                continue
            lease = found
            waited = now - lease.submit
            reasons: list[str] = []
            if self._burst(lease, "be", now, now, f"waited {waited} s for local hosts",
                           reasons, self._ready_hosts(lease, now)):
                self._dequeue(lease)
            else:
                lease.reason = f"{lease.reason}; not burst: {'; '.join(reasons)}"

    def _burst(self, lease: Lease, trigger: str, start: int, now: int, why: str,
               reasons: list[str], allowed: set[int] | None = None) -> bool:
        """Run the lease on a provider if the burst policy finds one: True when it does (the
        lease is scheduled there, with the nodes our hosts have room for kept at home when
        the provider takes part of a lease), else the providers' reasons are added."""
        assert self.burster is not None
        if lease.no_burst:
            reasons.append(f"not burst: an earlier burst failed ({lease.no_burst})")
            return False

        def local(provider: Provider) -> tuple[int, ...]:
            launch, _, end = provider.timing(trigger, start, now, lease)
            # held until the slowest shutdown the nodes kept here could need
            end = self._burst_run(lease, trigger, launch, end, lease.nodes - 1)[1]
            found = self.table.candidates_at(launch, end, lease.need, allowed)
            return self._assign(lease, found, end, most=lease.nodes - 1) or ()

        found = self.burster.offer(lease, trigger, start, now, why, local)
        if isinstance(found, list):
            reasons.extend(f"not burst: {r}" for r in found)
            return False
        plan, home = found
        self.burster.commit(plan, lease.nodes)
        lease.burst = plan
        run_end, end = self._burst_run(lease, trigger, plan.start, plan.end, len(home))
        run = Run(lease, home, plan.start, plan.start, plan.run_start, run_end, end, SHUTDOWN)
        if home:
            self._book(run, now)
            if lease.type is not LeaseType.BE:
                self._fixed_future += 1
        else:
            lease.run = run
            self._push(run)
        where = f"{plan.nodes} x {plan.instance_type}"
        if home:
            where += f" (and {len(home)} node(s) here)"
        self._move(lease, LeaseState.SCHEDULED, now,
                   f"burst to {plan.provider}: {where} at ${plan.price_per_hour}/h, "
                   f"~${plan.cost:.2f} ({why})")
        return True

    def _burst_run(self, lease: Lease, trigger: str, launch: int, end: int,
                   home: int) -> tuple[int, int]:
        """(run end, reservation end) of a burst lease whose instances run until `end`, with
        `home` nodes on local hosts: those shut down as any VM here does (inside an AR's
        window, after any other lease's run)."""
        if not home:
            return end, end
        shutdown = shutdown_duration(home, self.config)
        if trigger == "ar":
            return end - shutdown, end
        return end, end + shutdown

    def unburst(self, lease_id: int, now: int, reason: str) -> Lease:
        """The provider could not run a burst lease (capacity, limits, credentials, an
        unknown image): a best-effort lease goes back to the local queue and is not burst
        again; an AR is placed locally in its window if it fits; else the lease fails."""
        lease = self.leases[lease_id]
        plan = lease.burst
        if plan is None or lease.state.final:
            return lease
        self._tick(now)
        if lease.run is not None:
            self._release(lease.run, now)  # and the nodes it kept here, if partial
        if self.burster is not None:
            self.burster.settle(plan, 0)
        lease.burst = None
        lease.no_burst = reason
        lease.first_start = None  # its instances never ran
        why = f"burst to {plan.provider} failed: {reason}"
        if lease.type is LeaseType.BE:
            self._move(lease, LeaseState.QUEUED, now, f"{why}; back in the local queue")
            self._enqueue(lease)
            self.schedule(now)
            return lease
        if lease.type is LeaseType.AR and plan.run_start >= now and self._place_ar(
                lease, plan.run_start, now, f"{why}; placed on local hosts"):
            self._replan_future(now)
            return lease
        self._move(lease, LeaseState.FAIL, now, why)
        self._replan_future(now)
        return lease

    def _place_ar(self, lease: Lease, start: int, now: int, reason: str) -> bool:
        """Book an AR's whole window on local hosts, all its nodes, if they have room."""
        end = start + lease.duration
        hosts = self._place_exact(lease, start, end, self._allowed(lease))
        if hosts is None:
            return False
        run = Run(lease, hosts, start, start, start,
                  end - shutdown_duration(lease.nodes, self.config), end, SHUTDOWN)
        self._book(run, now)
        self._fixed_future += 1
        lease.reason = reason
        return True

    def _burst_decision(self, lease: Lease) -> Decision:
        plan = lease.burst
        assert plan is not None
        home = lease.run.hosts if lease.run is not None else ()
        return Decision(lease.id, lease.state, plan.run_start, plan.end, home, burst=plan)

    # -- a scheduler rebuilt from a state store ---------------------------------------------

    def restore(self, saved: Iterable[tuple[Lease, Run | None]]) -> None:
        """Put back leases saved by a state store, each with its current reservation (whose
        `step` says which phases were already carried out)."""
        bookings: list[Booking] = []
        for lease, run in saved:
            self.leases[lease.id] = lease
            if lease.state in (LeaseState.QUEUED, LeaseState.SUSPENDED_QUEUED):
                self._enqueue(lease, again=False)
                if lease.state is LeaseState.QUEUED:
                    self._watch_wait(lease)
            if lease.burst is not None and self.burster is not None:
                self.burster.restore(lease.burst, lease.state.final)
            if run is None:
                continue
            lease.run = run
            held, run.channel = run.channel, []
            for start, end in held:
                self._hold_channel(run, start, end)
            # A burst lease books only the nodes it keeps here (none, unless partial).
            if run.migrated > run.start:  # an early migration holds its hosts from the resume
                resume = resume_time(run.hosts, lease.need.memory_mib, self.config)
                run.hold = max(run.migrated, run.run_start - resume)
            run.bookings = [Booking(run.hold, run.end, h, lease.need, run) for h in run.hosts]
            bookings.extend(run.bookings)
            self._push(run)
            if lease.type is LeaseType.BE:
                if run.step == 0 and run.hold > self.now and lease.burst is None:
                    self._future_be.add(lease.id)
            elif run.hosts:
                self._fixed_future += 1
        self.table.load(bookings)

    def relocate(self, lease_id: int, node: int, host: int, now: int) -> str:
        """Move virtual node `node` of a running lease to `host` for the rest of its
        reservation (a migration an operator asked for): '' when done, else why not."""
        lease = self.leases[lease_id]
        self._tick(now)
        run = lease.run
        if (lease.state is not LeaseState.ACTIVE or run is None
                or not run.run_start <= now < run.run_end):
            return f"lease {lease_id} is {lease.state.value}, not running"
        if not 0 <= node < len(run.hosts):
            return f"lease {lease_id} has no node {node}"
        old = run.hosts[node]
        name = self.hosts[host].name
        if old == host:
            return f"node {node} of lease {lease_id} is on {name} already"
        if not self.table.enabled[host]:
            return f"host {name} is disabled or in error"
        fits, _ = self.table.fit_count(host, now, run.end, lease.need)
        if fits < 1:
            return self.table.shortfall(host, now, run.end, lease.need) or f"{name} is full"
        moving = next(b for b in run.bookings if b.host == old and b.live)
        self.table.truncate(moving, now)
        run.bookings.remove(moving)
        run.bookings.extend(self.table.add_all([Booking(now, run.end, host, lease.need, run)]))
        run.hosts = run.hosts[:node] + (host,) + run.hosts[node + 1:]
        lease.reason = (f"node {node} migrated from {self.hosts[old].name} to {name} at "
                        f"{self._t(now)}")
        self._replan_future(now)
        return ""

    def evict(self, lease_id: int, now: int, reason: str) -> Lease:
        """Take a lease off its hosts (a host is drained, removed or lost). Best-effort leases
        go back to the queue and start over; an AR or IM lease that has not begun is placed
        again in the same window if it can be, else it fails with the reason."""
        lease = self.leases[lease_id]
        if lease.state.final:
            return lease
        self._tick(now)
        run = lease.run
        if lease in self.queue:
            self._dequeue(lease)
        if run is not None:
            if run.run_start < now and run.step >= _step_after(RUN_START):
                lease.runs.append((run.run_start, min(now, run.run_end), run.hosts))
            self._future_be.discard(lease.id)
            self._release(run, now)
        plan = lease.burst
        if plan is not None:  # it ran partly on a public cloud: those instances go too
            if self.burster is not None:
                self.burster.settle(plan, max(0, now - plan.start))
            lease.burst = None
        if plan is not None and lease.type is not LeaseType.BE:
            if not (lease.type is LeaseType.AR and plan.run_start >= now and self._place_ar(
                    lease, plan.run_start, now, f"{reason}; placed on local hosts")):
                self._move(lease, LeaseState.FAIL, now, f"{reason}; its local nodes have no other "
                                               f"host and its instances were let go")
        elif lease.type is LeaseType.BE:
            lease.remaining = lease.duration
            lease.last_hosts = ()
            self._move(lease, LeaseState.QUEUED, now, f"{reason}; requeued, starts over")
            self._enqueue(lease)
        elif run is not None and run.step == 0 and run.start >= now:
            hosts = self._place_exact(lease, run.start, run.end, self._allowed(lease))
            if hosts is None:
                self._move(lease, LeaseState.FAIL, now, f"{reason}; no other host free for "
                                               f"[{self._t(run.start)}, {self._t(run.end)})")
            else:
                again = Run(lease, hosts, run.start, run.start, run.start, run.run_end,
                            run.end, SHUTDOWN)
                self._book(again, now)
                self._fixed_future += 1
                lease.reason = f"{reason}; re-placed on other hosts"
        else:
            self._move(lease, LeaseState.FAIL, now, reason)
        self._replan_future(now)
        self.schedule(now)
        return lease
