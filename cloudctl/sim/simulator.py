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
    leases: list[Lease]
    origin: int
    wall_s: float
    skipped: int = 0
    killed: int = 0

    def summary(self) -> dict[str, object]:
        out = summarize(self.leases, len(self.scheduler.hosts), self.scheduler.preemptions,
                        self.wall_s, self.skipped, self.killed)
        if self.scheduler.burster is not None:
            from cloudctl.scheduler.burst import summary

            out["burst"] = summary(self.scheduler.burster)
        return out

    def per_lease(self) -> list[dict[str, object]]:
        names = [h.name for h in self.scheduler.hosts]
        return [lease_record(lease, names) for lease in self.leases]


def simulate(requests: Sequence[LeaseRequest], hosts: Sequence[HostSpec], scheduler: Scheduler,
             progress: Progress | None = None) -> SimulationResult:
    """Run every request through `scheduler` (built by the caller with the simulated clock's
    origin as its `now`) until nothing is left to happen."""
    started = time.perf_counter()
    reqs = sorted(requests, key=lambda r: r.submit)
    real_left: dict[int, int] = {r.id: r.real_duration for r in reqs if r.real_duration is not None}
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
    try:
        while True:
            t_next = sched.next_event_time()
            if i < n and (t_next is None or reqs[i].submit < t_next):
                t_next = reqs[i].submit
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
                lease = leases[lease_id]
                run = lease.run
                if (lease.state is LeaseState.ACTIVE and run is not None
                        and run.run_start == run_start and run.run_start <= when < run.run_end):
                    sched.end_early(lease_id, when)
            while i < n and reqs[i].submit <= t:
                sched.submit(reqs[i], t)
                i += 1
            sched.schedule(t)
            if progress is not None:
                tick += 1
                if tick % 2048 == 0:
                    progress(i, n)
    finally:
        gc.set_threshold(*thresholds)
    if progress is not None:
        progress(n, n)
    wall = time.perf_counter() - started
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


def summarize(leases: Sequence[Lease], n_hosts: int, preemptions: int, wall_s: float,
              skipped: int = 0, killed: int = 0) -> dict[str, object]:
    completed = [lease for lease in leases if lease.state is LeaseState.DONE]
    rejected = [lease for lease in leases if lease.state is LeaseState.REJECTED]
    ars = [lease for lease in leases if lease.type is LeaseType.AR]
    waited = [lease for lease in completed if lease.type is not LeaseType.AR]
    waits = [lease.first_start - lease.submit for lease in waited if lease.first_start is not None]
    slowdowns = []
    busy = 0
    for lease in completed:
        ran = lease.ran
        # A burst lease kept only the nodes it did not send away busy here.
        busy += (lease.nodes - (lease.burst.nodes if lease.burst is not None else 0)) * ran
        if lease.type is not LeaseType.AR and lease.done_at is not None:
            slowdowns.append(max(1.0, (lease.done_at - lease.submit) / max(ran, BOUND_S)))
    first_submit = min((lease.submit for lease in leases), default=0)
    last_end = max((lease.done_at for lease in completed if lease.done_at is not None),
                   default=first_submit)
    span = last_end - first_submit
    be_done = [lease.done_at for lease in completed
               if lease.type is LeaseType.BE and lease.done_at is not None]
    return {
        "leases": len(leases),
        "completed": len(completed),
        "rejected": len(rejected),
        "ar_accepted": sum(1 for lease in ars if lease.state is not LeaseState.REJECTED),
        "ar_rejected": sum(1 for lease in ars if lease.state is LeaseState.REJECTED),
        "preemptions": preemptions,
        "mean_wait_s": round(sum(waits) / len(waits), 3) if waits else 0.0,
        "mean_bounded_slowdown": round(sum(slowdowns) / len(slowdowns), 3) if slowdowns else 0.0,
        "utilization": round(busy / (n_hosts * span), 6) if span > 0 else 0.0,
        "makespan_s": span,
        "all_best_effort_s": max(be_done) if be_done else 0,
        "suspended_vm_hours": round(sum(lease.nodes * (e - s) for lease in leases
                                        for s, e in _suspended_spans(lease)) / 3600, 3),
        "skipped": skipped,
        "killed": killed,
        "sim_wall_s": round(wall_s, 3),
    }


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
