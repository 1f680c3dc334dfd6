"""Between the scheduler and the store: a scheduler rebuilt from stored records, and its
leases turned back into records. Hosts are stored by name; the scheduler knows them by
index, in the order the store lists them."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from cloudctl.domain import HostStatus, LeaseState, LeaseType
from cloudctl.scheduler.config import SchedulerConfig
from cloudctl.scheduler.core import Listener, Scheduler
from cloudctl.scheduler.lease import Lease, Run
from cloudctl.scheduler.model import Capacity, HostSpec, LeaseRequest
from cloudctl.scheduler.policy import PolicySet
from cloudctl.store.records import HostRecord, LeaseRecord, ReservationRecord

if TYPE_CHECKING:  # bursting loads only where a cloud is configured
    from cloudctl.scheduler.burst import Burster

_PAIRS = ("suspensions", "resumptions", "migrations", "transfers")


def host_specs(hosts: Sequence[HostRecord]) -> list[HostSpec]:
    """A host in error is out of the scheduler's reach, like a disabled one."""
    return [HostSpec(h.name, Capacity(h.cpus, h.memory_mib, h.disk_mib),
                     enabled=h.enabled and h.status == HostStatus.OK) for h in hosts]


def build_scheduler(hosts: Sequence[HostRecord], leases: Sequence[LeaseRecord],
                    config: SchedulerConfig, clock: int, policies: PolicySet, *,
                    listener: Listener | None = None,
                    burster: Burster | None = None) -> Scheduler:
    """The scheduler exactly as the store left it at `clock` (the last time it ran)."""
    from cloudctl.timefmt import iso

    scheduler = Scheduler(host_specs(hosts), config, policies, now=clock,
                          time_label=lambda t: iso(t) or "", burster=burster)
    index = {host.name: i for i, host in enumerate(hosts)}
    scheduler.restore(to_lease(record, index) for record in leases)
    scheduler.listener = listener
    return scheduler


_STATES = {state.value: state for state in LeaseState}
_TYPES = {kind.value: kind for kind in LeaseType}


def request_of(record: LeaseRecord) -> LeaseRequest:
    return LeaseRequest(
        id=record.id, type=_TYPES[record.type], submit=record.submitted, nodes=record.nodes,
        capacity=_capacity(record.cpus, record.memory_mib, record.disk_mib),
        duration=record.duration, start=record.start_req, preemptible=record.preemptible,
        image=record.image, image_size_mib=record.image_size_mib, name=record.name)


@lru_cache(maxsize=1024)
def _capacity(cpus: int, memory_mib: int, disk_mib: int) -> Capacity:
    return Capacity(cpus, memory_mib, disk_mib)  # leases share a few shapes


def to_lease(record: LeaseRecord, index: dict[str, int]) -> tuple[Lease, Run | None]:
    lease = Lease(request_of(record))
    lease.state = _STATES[record.state]
    lease.remaining = record.remaining
    lease.first_start = record.first_start
    lease.done_at = record.done_at
    lease.preempted = record.preempted
    lease.reason = record.reason
    history = record.history
    lease.runs = [(s, e, _indices(hosts, index)) for s, e, hosts in history.get("runs", [])]
    for name in _PAIRS:
        setattr(lease, name, [tuple(pair) for pair in history.get(name, [])])
    lease.last_hosts = _indices(history.get("last_hosts", []), index)
    if "burst" in history:
        from cloudctl.scheduler.burst import BurstPlan

        lease.burst = BurstPlan.from_dict(history["burst"])
    lease.no_burst = history.get("no_burst", "")
    r = record.reservation
    if r is None:
        return lease, None
    run = Run(lease, _indices(r.hosts, index), r.start, r.migrated, r.run_start, r.run_end,
              r.end, r.post)
    run.step = r.step
    run.channel = [tuple(c) for c in r.channel]  # type: ignore[misc]
    return lease, run


def _indices(names: Sequence[str], index: dict[str, int]) -> tuple[int, ...]:
    # A host that is gone leaves no index: its leases were evicted before it went.
    return tuple(index[n] for n in names if n in index)


def to_record(lease: Lease, names: Sequence[str]) -> LeaseRecord:
    run = lease.run
    request = lease.request
    history = {
        "runs": [[s, e, [names[h] for h in hosts]] for s, e, hosts in lease.runs],
        "last_hosts": [names[h] for h in lease.last_hosts],
        **{name: [list(pair) for pair in getattr(lease, name)] for name in _PAIRS},
        "burst": lease.burst.as_dict() if lease.burst is not None else None,
        "no_burst": lease.no_burst,
    }
    history = {key: value for key, value in history.items() if value}  # most are empty
    reservation = None
    if run is not None:
        reservation = ReservationRecord([names[h] for h in run.hosts], run.start, run.migrated,
                                        run.run_start, run.run_end, run.end, run.post,
                                        run.step, [list(c) for c in run.channel])
        hosts = [names[h] for h in run.hosts]
        start = lease.first_start if lease.first_start is not None else run.start
        end: int | None = run.end
    else:
        last = lease.runs[-1][2] if lease.runs else ()
        hosts = [names[h] for h in last]
        start = lease.first_start
        end = lease.done_at
    return LeaseRecord(
        id=lease.id, name=request.name, type=lease.type.value, state=lease.state.value,
        submitted=lease.submit, start_req=lease.start_req, duration=lease.duration,
        nodes=lease.nodes, cpus=lease.need.cpus, memory_mib=lease.need.memory_mib,
        disk_mib=lease.need.disk_mib, image=lease.image, image_size_mib=lease.image_size,
        preemptible=lease.preemptible, remaining=lease.remaining,
        first_start=lease.first_start, done_at=lease.done_at, preempted=lease.preempted,
        reason=lease.reason, history=history, start=start, end=end, hosts=hosts,
        reservation=reservation)
