"""One write transaction around the scheduler: load it from the store at a point in time,
let a command change it, and save back exactly what changed (leases, reservations, the VMs
the schedule now wants, and an event per transition).

Everything happens under the store's write lock, so two commands can never schedule from the
same snapshot: no lost or duplicated lease, no host given twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from cloudctl.domain import LeaseState, VMStatus
from cloudctl.errors import Conflict
from cloudctl.persist import build_scheduler, to_record
from cloudctl.policies import policy_set
from cloudctl.scheduler.config import SchedulerConfig
from cloudctl.scheduler.core import Scheduler
from cloudctl.scheduler.lease import Lease
from cloudctl.scheduler.plan import vm_plans
from cloudctl.store.records import EventRecord, HostRecord, LeaseRecord, VMRecord
from cloudctl.store.repositories import Store
from cloudctl.views import lease_list_text

T = TypeVar("T")


def vm_name(lease_id: int, node: int, prefix: str = "cloudctl") -> str:
    return f"{prefix}-{lease_id}-{node}"


def _fingerprint(lease: Lease) -> tuple[Any, ...]:
    run = lease.run
    planned = None if run is None else (id(run), run.start, run.migrated, run.run_start,
                                        run.run_end, run.end, run.post, run.step,
                                        tuple(run.hosts), len(run.channel))
    return (lease.state, lease.reason, lease.remaining, len(lease.runs), lease.preempted,
            tuple(lease.last_hosts), planned)


class Session:
    """The scheduler as the store left it, advanced to `now`."""

    def __init__(self, store: Store, config: SchedulerConfig, now: int,
                 *, include: LeaseRecord | None = None,
                 window: tuple[int, int] | None = None) -> None:
        self.store = store
        self.hosts: list[HostRecord] = store.hosts.all()
        self.names = [h.name for h in self.hosts]
        clock = store.state.clock()
        # The store's clock never goes back: a command run "earlier" acts at the last time.
        self.now = max(now, clock) if clock is not None else now
        self.events: list[EventRecord] = []
        self.vm_prefix = store.state.vm_prefix() or "cloudctl"  # `init --vm-prefix`
        # With a window, only the leases a decision inside it can touch are loaded; the
        # others' earliest next event is kept for `save` (see Leases.around).
        self.partial = window is not None
        self._next_unloaded: int | None = None
        burster = None
        clouds = any(cloud.enabled for cloud in store.clouds.all())
        if clouds:
            from cloudctl.clouds import burster_for
        if window is None:
            records = store.leases.live()
            if clouds:
                burster = burster_for(store, {r.id for r in records})
        else:
            if clouds:
                burster = burster_for(store, store.leases.live_ids())
            if burster is not None:
                # A burst AR launches a boot time ahead, with the nodes it keeps here.
                boot = max(p.boot_time for p in burster.providers)
                window = (window[0] - boot, window[1])
            records, self._next_unloaded = store.leases.around(*window, self.now)
        if include is not None:
            records.append(include)
        self.scheduler = build_scheduler(self.hosts, records, config,
                                         clock if clock is not None else self.now,
                                         policy_set(config), listener=self._moved,
                                         burster=burster) if self.hosts else None
        self._prints: dict[int, tuple[Any, ...]] = {}
        if self.scheduler is not None:
            self._prints = {i: _fingerprint(lease)
                            for i, lease in self.scheduler.leases.items()}
            self.scheduler.advance(self.now)

    def _moved(self, lease: Lease, old: LeaseState, new: LeaseState, at: int,
               reason: str) -> None:
        self.events.append(EventRecord(at, f"lease {lease.id}", old.value, new.value, reason))

    def need_scheduler(self) -> Scheduler:
        """The scheduler, or a conflict when the cloud has nothing to schedule on."""
        if self.scheduler is None:
            raise Conflict("the cloud has no hosts yet; add one with 'cloudctl host add'")
        return self.scheduler

    def confined(self) -> bool:
        """Whether a partial session saw all that mattered: nothing was preempted and no
        lease waits in the queue (a preempted lease is placed again, and a queue walk looks
        at every reservation). Always true of a whole one."""
        scheduler = self.scheduler
        return (not self.partial or scheduler is None
                or (not scheduler.queue and not scheduler.preemptions))

    def settle(self) -> None:
        """Schedule the queue and carry out whatever that starts at once."""
        if self.scheduler is not None:
            self.scheduler.schedule(self.now)
            self.scheduler.advance(self.now)

    def changed(self) -> list[Lease]:
        if self.scheduler is None:
            return []
        return [lease for i, lease in self.scheduler.leases.items()
                if self._prints.get(i) != _fingerprint(lease)]

    def record(self, lease: Lease) -> LeaseRecord:
        return to_record(lease, self.names)

    def save(self) -> list[Lease]:
        """Write every changed lease, the VMs it now wants, the events; return the leases."""
        changed = self.changed()
        for lease in changed:
            record = self.record(lease)
            self.store.leases.save(record, final=lease.state.final,
                                   list_text=lease_list_text(record))
            self._want_vms(lease)
        self.store.events.add(self.events)
        self.events = []
        self.store.state.set_clock(self.now)
        if self.scheduler is not None:
            upcoming = self.scheduler.next_event_time()
            if self._next_unloaded is not None:
                upcoming = min(self._next_unloaded, upcoming or self._next_unloaded)
            self.store.state.set_next_event(upcoming)
        for lease in changed:
            self._prints[lease.id] = _fingerprint(lease)
        return changed

    def _want_vms(self, lease: Lease) -> None:
        """Record what the schedule's plan wants of each of the lease's VMs (enactment
        carries it out after the transaction)."""
        existing = {vm.node: vm for vm in self.store.vms.all(lease_id=lease.id)}
        for plan in vm_plans(lease):
            node, want, cloud = plan.node, plan.want, plan.cloud
            vm = existing.get(node)
            host = self.names[plan.host] if plan.host is not None else None
            if vm is None:
                if want is VMStatus.GONE:
                    continue
                vm = VMRecord(lease.id, node, vm_name(lease.id, node, self.vm_prefix), host,
                              VMStatus.PENDING.value, want.value, updated_at=self.now, cloud=cloud)
            elif vm.want == want and (host is None or vm.host == host) and (
                    cloud is None or vm.cloud == cloud):
                continue
            else:
                if want is VMStatus.RUNNING and vm.state == VMStatus.GONE:
                    vm.state, vm.save_path = VMStatus.PENDING.value, None  # starts over anew
                if host is not None and host != vm.host and vm.state != VMStatus.GONE:
                    # Moved: whatever is left of it on the old host (a running domain, or a
                    # suspended one's definition) goes before it appears on the new one.
                    if vm.old_host is None:
                        vm.old_host = vm.host
                    if vm.state != VMStatus.SUSPENDED:
                        vm.state = VMStatus.PENDING.value
                vm.host = host or vm.host
                if host is not None:
                    vm.cloud = None  # runs at home now (a failed burst)
                elif cloud is not None:
                    vm.cloud = cloud
                vm.want = want.value
                vm.error, vm.attempts, vm.retry_at = "", 0, None
                vm.updated_at = self.now
            if vm.want != vm.state:
                self.events.append(EventRecord(self.now, f"vm {vm.name}", None, None,
                                               f"to be {vm.want} on {vm.host or vm.cloud}: lease "
                                               f"{lease.id} is {lease.state.value}"))
            self.store.vms.save(vm)


def decide(store: Store, config: SchedulerConfig, now: int, act: Callable[[Session], T], *,
           window: tuple[int, int] | None = None, save: bool = True) -> T:
    """`act` on a session in a write transaction, saved on success (unless `save` is False,
    for a what-if) and rolled back on any error. With a `window`, the session holds only the
    leases that matter inside it, unless `act` reached further (see `Session.confined`):
    then it acts again on the whole state."""
    try:
        with store.write():
            current = Session(store, config, now, window=window)
            if current.confined():  # else a queue waits already: no use acting on a part
                result = act(current)
            if not current.confined():
                current = Session(store, config, now)
                result = act(current)
            if not save:
                raise _WhatIf(result)
            current.save()
    except _WhatIf as rolled_back:
        return cast(T, rolled_back.result)
    return result


@contextmanager
def session(store: Store, config: SchedulerConfig, now: int, *, save: bool = True,
            include: LeaseRecord | None = None) -> Iterator[Session]:
    """A Session inside a write transaction; saved on success (unless `save` is False, for
    a what-if), rolled back on any error."""
    with store.write():
        current = Session(store, config, now, include=include)
        yield current
        if save:
            current.save()
        else:
            raise _WhatIf


class _WhatIf(Exception):
    """Raised inside the transaction to roll a what-if back (with what it found)."""

    def __init__(self, result: Any = None) -> None:
        super().__init__()
        self.result = result


@contextmanager
def what_if(store: Store, config: SchedulerConfig, now: int,
            include: LeaseRecord | None = None) -> Iterator[Session]:
    """A session whose every change is rolled back."""
    try:
        with session(store, config, now, save=False, include=include) as current:
            yield current
    except _WhatIf:
        pass
