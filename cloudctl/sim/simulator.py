"""Replay a trace through the scheduler on a simulated clock.

The simulated enactment is this loop: it carries out the scheduler's plan instantly and
knows one thing the scheduler does not — each lease's real duration — so it reports early
ends exactly as a real hypervisor driver would report a VM that shut itself down.
"""

from __future__ import annotations

import gc
import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cloudctl.scheduler.core import Scheduler
from cloudctl.scheduler.lease import Lease
from cloudctl.scheduler.model import HostSpec, LeaseRequest, LeaseState, LeaseType

BOUND_S = 10  # bounded slowdown's lower bound on run time

Progress = Callable[[int, int], None]


@dataclass
class SimulationResult:
    scheduler: Scheduler
    leases: list[Lease]  # every lease, by id (empty when the replay kept none: see `simulate`)
    origin: int
    wall_s: float
    skipped: int = 0
    killed: int = 0
    tally: Tally | None = None  # the summary's sums, when the leases were not kept

    def summary(self) -> dict[str, object]:
        tally = self.tally
        if tally is None:
            tally = Tally()
            for lease in self.leases:
                tally.add(lease)
        out = tally.summary(len(self.scheduler.hosts), self.scheduler.preemptions,
                            self.wall_s, self.skipped, self.killed)
        if self.scheduler.burster is not None:
            from cloudctl.scheduler.burst import summary

            out["burst"] = summary(self.scheduler.burster)
        return out

    def per_lease(self) -> list[dict[str, object]]:
        names = [h.name for h in self.scheduler.hosts]
        return [lease_record(lease, names) for lease in self.leases]


def simulate(requests: Sequence[LeaseRequest], hosts: Sequence[HostSpec], scheduler: Scheduler,
             progress: Progress | None = None, keep: bool = True) -> SimulationResult:
    """Run every request through `scheduler` (built by the caller with the simulated clock's
    origin as its `now`) until nothing is left to happen.

    With keep=False only the summary is wanted: each lease is counted and forgotten when it
    ends, and each request dropped once submitted (a `list` passed in is emptied), so memory
    follows the leases in progress, not the length of the trace."""
    started = time.perf_counter()
    by_submit = sorted(requests, key=lambda r: r.submit)
    real_left: dict[int, int] = {r.id: r.real_duration for r in by_submit
                                 if r.real_duration is not None}
    reqs: list[LeaseRequest | None] = list(by_submit)
    del by_submit
    tally = None
    if not keep:
        tally = Tally()
        scheduler.on_final = tally.add
        if isinstance(requests, list):
            requests.clear()
    early: list[tuple[int, int, int]] = []  # (time, lease id, run start)
    i, n = 0, len(reqs)
    sched = scheduler
    leases = sched.leases
    tick = 0
    # The replay makes many short-lived objects and little cyclic garbage: at the default
    # thresholds the collector's passes cost several per cent. (Turned off altogether, the
    # garbage there is would cost KTH's replay with actual run times 40 MB.)
    thresholds = gc.get_threshold()
    gc.set_threshold(20_000, 50, 100)
    # What exists now (the trace's requests, however many) lives through the replay: the
    # collector's full passes need not walk it again and again.
    gc.freeze()
    try:
        while True:
            t_next = sched.next_event_time()
            head = reqs[i] if i < n else None
            if head is not None and (t_next is None or head.submit < t_next):
                t_next = head.submit
            if early and (t_next is None or early[0][0] < t_next):
                t_next = early[0][0]
            if t_next is None:
                break
            t = t_next
            for action in sched.advance(t):
                if action.kind == "running" and action.lease_id in real_left:
                    _plan_early_end(leases[action.lease_id], real_left, early)
            while early and early[0][0] <= t:
                when, lease_id, run_start = heapq.heappop(early)
                lease = leases.get(lease_id)
                if lease is None:
                    continue
                run = lease.run
                if (lease.state is LeaseState.ACTIVE and run is not None
                        and run.run_start == run_start and run.run_start <= when < run.run_end):
                    sched.end_early(lease_id, when)
            while i < n:
                request = reqs[i]
                assert request is not None
                if request.submit > t:
                    break
                sched.submit(request, t)
                if tally is not None:
                    reqs[i] = None
                i += 1
            sched.schedule(t)
            if progress is not None:
                tick += 1
                if tick % 2048 == 0:
                    progress(i, n)
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
    if progress is not None:
        progress(n, n)
    wall = time.perf_counter() - started
    if tally is not None:
        sched.on_final = None
        for lease in list(leases.values()):  # never ended (a queue that cannot drain)
            tally.add(lease)
        return SimulationResult(sched, [], origin=0, wall_s=wall, tally=tally)
    ordered = sorted(leases.values(), key=lambda lease: lease.id)
    return SimulationResult(sched, ordered, origin=0, wall_s=wall)


def _plan_early_end(lease: Lease, real_left: dict[int, int],
                    early: list[tuple[int, int, int]]) -> None:
    """When a run begins, say when the lease's real work would finish inside it."""
    run = lease.run
    if run is None:
        return
    done_work = lease.duration - lease.remaining  # progress before this run
    left = real_left[lease.id] - done_work
    end = run.run_start + max(left, 0)
    if end < run.run_end:
        heapq.heappush(early, (end, lease.id, run.run_start))


class Tally:
    """The summary's counts and sums, one lease at a time (a lease is added once, when it
    has reached its final state or the replay is over)."""

    def __init__(self) -> None:
        self.leases = 0
        self.completed = 0
        self.rejected = 0
        self.ar_accepted = 0
        self.ar_rejected = 0
        self.waits = 0
        self.wait_sum = 0
        self.slowdowns = 0
        self.slowdown_sum = 0.0
        self.busy = 0
        self.first_submit: int | None = None
        self.last_end: int | None = None
        self.be_done: int | None = None
        self.suspended_s = 0

    def add(self, lease: Lease) -> None:
        self.leases += 1
        state = lease.state
        done = state is LeaseState.DONE
        if self.first_submit is None or lease.submit < self.first_submit:
            self.first_submit = lease.submit
        if state is LeaseState.REJECTED:
            self.rejected += 1
        if lease.type is LeaseType.AR:
            if state is LeaseState.REJECTED:
                self.ar_rejected += 1
            else:
                self.ar_accepted += 1
        for start, end in _suspended_spans(lease):
            self.suspended_s += lease.nodes * (end - start)
        if not done:
            return
        self.completed += 1
        ran = lease.ran
        # A burst lease kept only the nodes it did not send away busy here.
        self.busy += (lease.nodes - (lease.burst.nodes if lease.burst is not None else 0)) * ran
        if lease.type is not LeaseType.AR:
            if lease.first_start is not None:
                self.waits += 1
                self.wait_sum += lease.first_start - lease.submit
            if lease.done_at is not None:
                self.slowdowns += 1
                self.slowdown_sum += max(1.0, (lease.done_at - lease.submit) / max(ran, BOUND_S))
        if lease.done_at is not None:
            if self.last_end is None or lease.done_at > self.last_end:
                self.last_end = lease.done_at
            if lease.type is LeaseType.BE and (self.be_done is None
                                               or lease.done_at > self.be_done):
                self.be_done = lease.done_at

    def summary(self, n_hosts: int, preemptions: int, wall_s: float, skipped: int = 0,
                killed: int = 0) -> dict[str, object]:
        first_submit = self.first_submit if self.first_submit is not None else 0
        last_end = self.last_end if self.last_end is not None else first_submit
        span = last_end - first_submit
        return {
            "leases": self.leases,
            "completed": self.completed,
            "rejected": self.rejected,
            "ar_accepted": self.ar_accepted,
            "ar_rejected": self.ar_rejected,
            "preemptions": preemptions,
            "mean_wait_s": round(self.wait_sum / self.waits, 3) if self.waits else 0.0,
            "mean_bounded_slowdown": (round(self.slowdown_sum / self.slowdowns, 3)
                                      if self.slowdowns else 0.0),
            "utilization": round(self.busy / (n_hosts * span), 6) if span > 0 else 0.0,
            "makespan_s": span,
            "all_best_effort_s": self.be_done if self.be_done is not None else 0,
            "suspended_vm_hours": round(self.suspended_s / 3600, 3),
            "skipped": skipped,
            "killed": killed,
            "sim_wall_s": round(wall_s, 3),
        }


def summarize(leases: Sequence[Lease], n_hosts: int, preemptions: int, wall_s: float,
              skipped: int = 0, killed: int = 0) -> dict[str, object]:
    tally = Tally()
    for lease in leases:
        tally.add(lease)
    return tally.summary(n_hosts, preemptions, wall_s, skipped, killed)


def _suspended_spans(lease: Lease) -> list[tuple[int, int]]:
    """From each suspension's end to the next resumption's start."""
    spans = []
    for k, (_, suspended_at) in enumerate(lease.suspensions):
        if k < len(lease.resumptions):
            spans.append((suspended_at, lease.resumptions[k][0]))
    return spans


def lease_record(lease: Lease, host_names: Sequence[str]) -> dict[str, object]:
    def names(hosts: Sequence[int]) -> list[str]:
        return [host_names[h] for h in hosts]

    return {
        "id": lease.id,
        "type": lease.type.value,
        "state": lease.state.value,
        "submit_s": lease.submit,
        "start_s": lease.first_start,
        "end_s": lease.done_at,
        "nodes": lease.nodes,
        "hosts": sorted(set(names(lease.runs[0][2]))) if lease.runs else [],
        "runs": [{"start_s": s, "end_s": e, "hosts": names(h)} for s, e, h in lease.runs],
        "suspensions": [{"start_s": s, "end_s": e} for s, e in lease.suspensions],
        "resumptions": [{"start_s": s, "end_s": e} for s, e in lease.resumptions],
        "transfers": [{"start_s": s, "end_s": e} for s, e in lease.transfers],
        "migrations": [{"start_s": s, "end_s": e} for s, e in lease.migrations],
        "preempted": lease.preempted,
        "reason": lease.reason,
        "burst": lease.burst.as_dict() if lease.burst is not None else None,
    }
