"""Leases: request (or only ask, `--dry-run`), list, show, cancel, explain, wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from cloudctl.app.context import Room, check_id, check_name
from cloudctl.domain import FINAL_STATES, LeaseType
from cloudctl.errors import Conflict, InvalidInput, Unsatisfiable
from cloudctl.limits import (
    MAX_CPUS,
    MAX_DISK_MIB,
    MAX_DURATION_S,
    MAX_MEMORY_MIB,
    MAX_NODES,
    MAX_TIME,
    MIN_TIME,
    check_range,
)
from cloudctl.store.records import EventRecord, LeaseRecord, VMRecord
from cloudctl.views import event_view

if TYPE_CHECKING:  # the scheduler loads only for commands that use it
    from cloudctl.scheduler.config import SchedulerConfig
    from cloudctl.scheduler.core import Decision
    from cloudctl.scheduler.model import LeaseRequest
    from cloudctl.session import Session

T = TypeVar("T")


@dataclass
class LeaseSpec:
    """A lease request as the user wrote it (times already in Unix seconds)."""

    type: LeaseType
    duration: int
    nodes: int
    cpus: int
    memory_mib: int
    start: int | None = None
    disk_mib: int = 0
    image: str | None = None
    preemptible: bool | None = None
    name: str | None = None


@dataclass
class RequestOutcome:
    lease: LeaseRecord
    decision: Decision
    preempted: list[dict[str, Any]] = field(default_factory=list)
    delayed: list[dict[str, Any]] = field(default_factory=list)


class Leases(Room):
    def _request(self, spec: LeaseSpec, lease_id: int, now: int) -> LeaseRequest:
        from cloudctl.scheduler.model import Capacity, LeaseRequest

        size = 0
        if spec.image is not None:
            size = self.store.images.get(spec.image).size_mib
        preemptible = spec.preemptible
        if preemptible is None:  # Haizea's defaults: only best-effort leases yield
            preemptible = spec.type is LeaseType.BE
        return LeaseRequest(id=lease_id, type=spec.type, submit=now, nodes=spec.nodes,
                            capacity=Capacity(spec.cpus, spec.memory_mib, spec.disk_mib),
                            duration=spec.duration, start=spec.start, preemptible=preemptible,
                            image=spec.image, image_size_mib=size, name=spec.name)

    def request(self, spec: LeaseSpec, dry_run: bool = False) -> RequestOutcome:
        check_spec(spec, self.clock())
        if dry_run:
            return self._dry_run(spec)
        outcome = self._decide(spec, self.settings.scheduler, lambda s: self._submit(s, spec))
        decision = outcome.decision
        if not decision.accepted:
            raise Unsatisfiable(f"lease {outcome.lease.id} rejected: "
                                f"{'; '.join(decision.reasons)}")
        return outcome

    def _decide(self, spec: LeaseSpec, config: SchedulerConfig, act: Callable[[Session], T],
                save: bool = True) -> T:
        """`act` in a session; for an AR, one that loads only the leases around its window
        (the decision is the same: see `Session.confined`)."""
        from cloudctl.session import decide

        window = None
        if spec.type is LeaseType.AR and spec.start is not None:
            window = (spec.start, spec.start + spec.duration)
        return decide(self.store, config, self.clock(), act, window=window, save=save)

    def _submit(self, s: Session, spec: LeaseSpec) -> RequestOutcome:
        """Submit the request in session `s` and settle the queue; what was decided."""
        scheduler = s.need_scheduler()
        request = self._request(spec, self.store.leases.next_id(), s.now)
        decision = scheduler.submit(request, s.now)
        s.settle()
        return self._outcome(s, request.id, decision)

    def _outcome(self, s: Session, lease_id: int, decision: Decision) -> RequestOutcome:
        scheduler = s.need_scheduler()
        preempted = []
        for p in decision.preempted:
            victim = scheduler.leases[p.lease_id]
            preempted.append({"id": p.lease_id, "how": p.how, "at": p.at,
                              "state": victim.state.value, "reason": victim.reason})
        return RequestOutcome(s.record(scheduler.leases[lease_id]), decision,
                              preempted=preempted)

    def _dry_run(self, spec: LeaseSpec) -> RequestOutcome:
        """The decision a request would get, and what it would do to everyone else; the
        store is left exactly as it was."""
        from dataclasses import replace

        outcome = self._decide(spec, self.settings.scheduler, lambda s: self._submit(s, spec),
                               save=False)
        if not outcome.decision.accepted:
            return outcome

        def starts(s: Session) -> tuple[dict[int, int | None], dict[int, int | None]]:
            s.settle()
            before = _be_starts(s)
            self._submit(s, spec)
            return before, _be_starts(s)

        # Expected starts with every queued lease planned (conservatively), without and
        # then with the request.
        expected = replace(self.settings.scheduler, backfilling=None)
        before, after = self._decide(spec, expected, starts, save=False)
        for lease_id, old in before.items():
            new = after.get(lease_id)
            if old is not None and (new is None or new > old):
                outcome.delayed.append({"id": lease_id, "expected_start": old,
                                        "new_expected_start": new,
                                        "delay_s": None if new is None else new - old})
        return outcome

    def all(self, state: str | None = None, type: str | None = None) -> list[LeaseRecord]:
        with self.store.read():
            return self.store.leases.all(state=state, type=type)

    def list_json(self, state: str | None = None, type: str | None = None) -> list[str]:
        with self.store.read():
            return self.store.leases.list_text(state=state, type=type)

    def show(self, lease_id: int) -> tuple[LeaseRecord, list[VMRecord], list[EventRecord]]:
        check_id("lease", lease_id)
        with self.store.read():
            lease = self.store.leases.get(lease_id)
            vms = self.store.vms.all(lease_id=lease_id)
            events = self.store.events.about([f"lease {lease_id}"]
                                             + [f"vm {vm.name}" for vm in vms])
        return lease, vms, events

    def cancel(self, lease_id: int) -> tuple[LeaseRecord, bool]:
        """(the lease, whether this call cancelled it); a finished lease is left as it is."""
        check_id("lease", lease_id)
        with self.app.session() as s:
            lease = self.store.leases.get(lease_id)
            if lease.state in FINAL_STATES:
                return lease, False
            scheduler = s.need_scheduler()
            scheduler.cancel(lease_id, s.now, "cancelled by user")
            s.settle()
            record = s.record(scheduler.leases[lease_id])
        return record, True

    def explain(self, lease_id: int) -> dict[str, Any]:
        """Why a lease is where it is: its reason, each host's verdict for its window, and
        the story so far."""
        record, vms, events = self.show(lease_id)
        from cloudctl.session import what_if

        include = record if record.state in FINAL_STATES else None
        if include is not None:
            include.reservation = None
        with what_if(self.store, self.settings.scheduler, self.clock(),
                     include=include) as s:
            hosts: list[dict[str, str]] = []
            window = None
            if s.scheduler is not None and lease_id in s.scheduler.leases:
                lease = s.scheduler.leases[lease_id]
                run = lease.run
                if run is not None:
                    start, end = run.start, run.end
                elif record.start_req is not None:
                    start, end = record.start_req, record.start_req + record.duration
                else:
                    start, end = s.now, s.now + lease.remaining
                window = (start, end)
                chosen = {s.names[h] for h in run.hosts} if run is not None else set()
                for name, why in s.scheduler.explain_placement(lease_id, start, end):
                    verdict = "chosen" if name in chosen else (why or "fits")
                    hosts.append({"host": name, "verdict": verdict})
        return {"id": lease_id, "state": record.state, "reason": record.reason,
                "window": None if window is None else {"start": window[0], "end": window[1]},
                "hosts": hosts, "events": [event_view(e) for e in events],
                "lease": record}

    def wait_state(self, lease_id: int, states: set[str], timeout: int | None,
                   sleep: Callable[[float], None],
                   elapsed: Callable[[], float] = time.monotonic) -> LeaseRecord:
        """Poll until the lease reaches one of `states` (ticking when nobody else is);
        a final state that is not awaited ends the wait with a conflict. The timeout is
        real elapsed time, whatever clock the cloud runs on."""
        check_id("lease", lease_id)
        deadline = None if timeout is None else elapsed() + timeout
        ticked = False
        while True:
            with self.store.read():
                record = self.store.leases.get(lease_id)
            if record.state in states:
                return record
            if record.state in FINAL_STATES:
                raise Conflict(f"lease {lease_id} is {record.state}, it will never be "
                               f"{' or '.join(sorted(states))}: {record.reason}")
            if deadline is not None and elapsed() >= deadline:
                raise Conflict(f"timed out: lease {lease_id} is still {record.state}")
            if ticked:
                sleep(1.0)  # our last tick did not get it there: let time pass
            ticked = self.app.ticks.tick(blocking=False).ran
            if not ticked:
                sleep(1.0)  # someone else is ticking


def check_spec(spec: LeaseSpec, now: int) -> None:
    """Refuse a malformed request, or one outside the documented limits, before anything is
    read or locked."""
    if spec.nodes <= 0 or spec.cpus <= 0 or spec.memory_mib <= 0:
        raise InvalidInput("--nodes, --cpus and --memory must be positive")
    if spec.type is LeaseType.AR and spec.start is None:
        raise InvalidInput("an advance reservation needs --start")
    if spec.type is not LeaseType.AR and spec.start is not None:
        raise InvalidInput(f"--start applies to advance reservations only "
                           f"(a {spec.type.value} lease starts as soon as it can)")
    if spec.name is not None:
        check_name("lease", spec.name)
    check_range(spec.nodes, 1, MAX_NODES, "--nodes")
    check_range(spec.cpus, 1, MAX_CPUS, "--cpus")
    check_range(spec.memory_mib, 1, MAX_MEMORY_MIB, "--memory", " MiB")
    check_range(spec.disk_mib, 0, MAX_DISK_MIB, "disk", " MiB")
    check_range(spec.duration, 1, MAX_DURATION_S, "--duration", " s")
    if spec.start is not None:
        check_range(spec.start, MIN_TIME, MAX_TIME, "--start", " s since 1970")
    if (spec.start if spec.start is not None else now) + spec.duration > MAX_TIME:
        raise InvalidInput("--duration: the lease would end after 9999-01-01 UTC, the latest "
                           "time cloudctl keeps")


def _be_starts(s: Session) -> dict[int, int | None]:
    assert s.scheduler is not None
    return {i: (lease.run.start if lease.run is not None else None)
            for i, lease in s.scheduler.leases.items()
            if lease.type is LeaseType.BE and not lease.state.final
            and (lease.run is None or lease.run.start > s.now)}
