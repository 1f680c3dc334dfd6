"""Enactment: make the hypervisors match what the schedule wants, and record what happened.

The schedule writes, per VM, what it *wants* (running, suspended, gone); enactment compares
that with what the VM *is* and calls the host's driver. Every driver call is idempotent, so a
tick killed half-way is simply carried on by the next one. Each result is recorded in its own
short transaction; a failure is recorded with its reason and retried with backoff, and after
too many failures the lease is failed and its capacity given back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudctl.config import Settings
from cloudctl.domain import HostStatus, LeaseState, VMStatus
from cloudctl.errors import BackendError, CloudctlError
from cloudctl.store.records import EventRecord, HostRecord, ImageRecord, TransferRecord, VMRecord
from cloudctl.store.repositories import Store

if TYPE_CHECKING:
    from cloudctl.drivers.base import HypervisorDriver, VMSpec
    from cloudctl.drivers.storage import LocalStorage, RemoteStorage

# Lease states in which a suspended lease planned elsewhere has not begun to move.
WAITING_TO_MIGRATE = frozenset({LeaseState.SUSPENDING, LeaseState.SUSPENDED_PENDING,
                                LeaseState.SUSPENDED_QUEUED, LeaseState.SUSPENDED_SCHEDULED})
# What a VM is before its domain exists (or when it vanished, or its creation failed).
NOT_CREATED = (VMStatus.PENDING, VMStatus.MISSING, VMStatus.ERROR)


def vm_spec(vm: VMRecord, image: ImageRecord | None, logs: Path | None = None) -> VMSpec:
    """What a driver is asked to create for `vm` (its own disk made from `image`, if any, and
    the image's kernel); `vm export` shows the same."""
    from cloudctl.drivers.base import VMSpec

    boot = image.boot if image is not None else {}
    return VMSpec(name=vm.name, cpus=vm.cpus, memory_mib=vm.memory_mib, lease_id=vm.lease_id,
                  node=vm.node, disk_path=vm.disk_path if image is not None else None,
                  disk_format=image.format if image is not None else "qcow2",
                  serial_log=str(logs / f"{vm.name}.log") if logs is not None else None,
                  kernel=boot.get("kernel"), initrd=boot.get("initrd"),
                  cmdline=boot.get("cmdline"))


class DriverPool:
    """One open driver per host, opened on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._open: dict[str, HypervisorDriver] = {}
        self._storage: dict[str, LocalStorage | RemoteStorage] = {}

    def get(self, host: HostRecord) -> HypervisorDriver:
        driver = self._open.get(host.name)
        if driver is None:
            from cloudctl.drivers.registry import open_driver

            driver = open_driver(host.driver, host.uri, self.settings.drivers.get(host.driver))
            self._open[host.name] = driver
        return driver

    def storage(self, host: HostRecord) -> LocalStorage | RemoteStorage:
        """Where `host`'s VM disks are made: over SSH for a host with an `ssh` option, else
        the local filesystem (shared by local hosts)."""
        from cloudctl.drivers.storage import LocalStorage, RemoteStorage

        found = self._storage.get(host.name)
        if found is None:
            found = (RemoteStorage(host.options) if host.options.get("ssh")
                     else LocalStorage(self.settings.state_dir))
            self._storage[host.name] = found
        return found

    def close(self) -> None:
        for opened in [*self._open.values(), *self._storage.values()]:
            try:
                opened.close()
            except CloudctlError:
                pass
        self._open.clear()
        self._storage.clear()


@dataclass
class EnactReport:
    done: list[str] = field(default_factory=list)  # "vm cloudctl-3-0: running on node-1"
    failed: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # failures waiting for their retry
    exhausted: dict[int, str] = field(default_factory=dict)  # lease id -> why it must fail
    unowned: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    lost_hosts: dict[str, str] = field(default_factory=dict)  # host -> why it is in error
    recovered_hosts: list[str] = field(default_factory=list)
    unburst: dict[int, str] = field(default_factory=dict)  # lease id -> why its burst failed
    instances: dict[str, list[str]] = field(default_factory=dict)  # adopted, unowned, reaped

    def as_dict(self) -> dict[str, Any]:
        return {"done": self.done, "failed": self.failed, "waiting": self.waiting,
                "failed_leases": sorted(self.exhausted), "unowned": self.unowned,
                "missing": self.missing, "unreachable": self.unreachable,
                "hosts_lost": sorted(self.lost_hosts), "hosts_back": self.recovered_hosts,
                "burst_failed": {str(k): v for k, v in sorted(self.unburst.items())},
                "instances": self.instances}


class Enactor:
    def __init__(self, store: Store, settings: Settings, pool: DriverPool,
                 now: Callable[[], int]) -> None:
        self.store = store
        self.settings = settings
        self.pool = pool
        self.now = now
        self.logs = settings.state_dir / "logs"
        self._live: list[VMRecord] = []
        self._clouds: Any = None  # CloudEnactment, opened for the first burst VM

    # -- reconciliation ------------------------------------------------------------------

    def reconcile(self, report: EnactReport) -> None:
        """Compare each host's domains with the store: adopt what a killed tick did, report
        VMs that vanished (they are created again) and domains no lease owns (left alone)."""
        with self.store.read():
            hosts = self.store.hosts.all()
            vms = self.store.vms.all(live=True)
        by_host: dict[str, dict[str, VMRecord]] = {}
        for vm in vms:
            if vm.host is not None:
                by_host.setdefault(vm.host, {})[vm.name] = vm
        known = {vm.name for vm in vms}
        checked: set[str] = set()  # storage locations that answered (local hosts share one)
        for host in hosts:
            try:
                domains = self.pool.get(host).list_vms()
                # A host answers when its storage does too: one whose SSH fails (a changed
                # host key, say) is in error like a silent hypervisor. The check also removes
                # the temporary files a killed command left there.
                storage = self.pool.storage(host)
                if storage.location not in checked:
                    storage.check()
                    checked.add(storage.location)
            except CloudctlError as error:
                report.unreachable.append(f"{host.name}: {error}")
                if host.status == HostStatus.OK:
                    report.lost_hosts[host.name] = f"host {host.name} stopped answering: {error}"
                continue
            if host.status != HostStatus.OK:
                report.recovered_hosts.append(host.name)
            mine = by_host.get(host.name, {})
            for name, vm in mine.items():
                self._reconcile_vm(vm, domains.get(name), report)
            for name in sorted(set(domains) - set(mine)):
                if name in known:
                    continue  # a VM of ours that the schedule has on another host
                report.unowned.append(f"{host.name}: {name} ({domains[name].value})")
                self._note_once(f"host {host.name}", f"domain {name} is not owned by any lease")

    def _reconcile_vm(self, vm: VMRecord, seen: Any, report: EnactReport) -> None:
        from cloudctl.drivers.base import VMState

        state = seen if seen is not None else VMState.MISSING
        active = state in (VMState.RUNNING, VMState.PAUSED)
        before = vm.state
        if vm.state == VMStatus.RUNNING and not active:
            vm.state = VMStatus.MISSING
            report.missing.append(f"{vm.name} on {vm.host}")
        elif vm.state in NOT_CREATED and active and vm.want == VMStatus.RUNNING:
            vm.state = VMStatus.RUNNING  # created by a tick that did not live to record it
        elif vm.state == VMStatus.SUSPENDED and active and vm.want == VMStatus.SUSPENDED:
            vm.state = VMStatus.RUNNING  # its save never happened: enactment will do it
        if vm.state != before:
            self._record(vm, before, f"hypervisor reports {state.value}")

    # -- enactment -------------------------------------------------------------------------

    def enact(self, report: EnactReport, lease_id: int | None = None) -> None:
        with self.store.read():
            hosts = {h.name: h for h in self.store.hosts.all()}
            vms = self.store.vms.all(lease_id=lease_id, live=True)
            # Images these VMs use stay in their hosts' caches (never evicted under them).
            self._live = vms if lease_id is None else self.store.vms.all(live=True)
            images = {i.name: i for i in self.store.images.all()}
        now = self.now()
        # Stops and suspensions first: what starts or resumes in this tick may need the room
        # they free on the same host (a host is never over-committed, even for a moment).
        for vm in sorted(vms, key=lambda v: v.want == VMStatus.RUNNING):
            if vm.state == vm.want and vm.old_host is None:
                continue
            if vm.retry_at is not None and vm.retry_at > now:
                report.waiting.append(f"{vm.name}: {vm.error} (retry at {vm.retry_at})")
                continue
            if vm.old_host is not None:
                moved_from, old = vm.old_host, hosts.get(vm.old_host)
                if old is not None and old.status == HostStatus.OK:
                    try:
                        self._suspend_where_it_ran(vm, old)
                    except CloudctlError as error:
                        self._failed(vm, vm.state, error, report)
                        continue
                if old is not None and old.status != HostStatus.OK:
                    # Fenced: what is left of it there is destroyed when the host is back.
                    report.waiting.append(f"{vm.name}: left on {old.name}, which is in error")
                    if vm.state == vm.want or self._files_to_move(vm, old, hosts):
                        continue
                elif old is not None and self._before_migration(vm, old, hosts):
                    report.waiting.append(f"{vm.name}: to move from {old.name} to {vm.host} "
                                          "when its migration starts")
                    continue
                else:
                    try:
                        if old is not None:
                            self._leave(vm, old, hosts.get(vm.host or ""), images)
                    except CloudctlError as error:
                        self._failed(vm, vm.state, error, report)
                        continue
                    vm.old_host = None
                    if vm.state == vm.want:
                        self._done(vm, vm.state, f"left {moved_from}", report)
                        continue
            if vm.cloud is not None:
                self._enact_cloud(vm, report)
                continue
            host = hosts.get(vm.host or "")
            if host is not None and host.status != HostStatus.OK:
                report.waiting.append(f"{vm.name}: to be {vm.want}; {host.name} is in error")
                continue
            if host is None:
                if vm.want == VMStatus.GONE:
                    self._done(vm, VMStatus.GONE, "its host is gone", report)
                continue
            before = vm.state
            try:
                state = self._apply(vm, host, images)
            except CloudctlError as error:
                self._failed(vm, before, error, report)
                continue
            self._done(vm, state, f"enacted on {host.name}", report, before=before)

    # -- leaving a host (cold migration) -------------------------------------------------

    def _suspend_where_it_ran(self, vm: VMRecord, old: HostRecord) -> None:
        """A VM the schedule suspended and moved on since the last tick (a late tick) may
        still run on `old`: it is suspended there first, so that its memory goes with it."""
        from cloudctl.drivers.base import VMState

        if vm.want != VMStatus.SUSPENDED or vm.state == VMStatus.SUSPENDED:
            return
        driver = self.pool.get(old)
        if driver.state(vm.name) not in (VMState.RUNNING, VMState.PAUSED):
            return
        storage = self.pool.storage(old)
        path = storage.save_path(vm.name)
        storage.prepare()
        driver.suspend(vm.name, path)
        before, vm.state, vm.save_path = vm.state, VMStatus.SUSPENDED, path
        self._record(vm, before, f"suspended on {old.name}, where it ran, before it moves")

    def _files_to_move(self, vm: VMRecord, old: HostRecord,
                       hosts: dict[str, HostRecord]) -> bool:
        """Whether the suspended VM's disk and memory image are still to go from `old` (whose
        storage is not its new host's) to its new host."""
        new = hosts.get(vm.host or "")
        if (new is None or vm.state != VMStatus.SUSPENDED or vm.want == VMStatus.GONE
                or not vm.save_path):
            return False  # (a lease that ended needs its files removed, not moved)
        source, dest = self.pool.storage(old), self.pool.storage(new)
        return source.location != dest.location and vm.save_path != dest.save_path(vm.name)

    def _before_migration(self, vm: VMRecord, old: HostRecord,
                          hosts: dict[str, HostRecord]) -> bool:
        """Whether its files are to move but the schedule's migration has not begun (the new
        host is reserved for it from then on)."""
        if not self._files_to_move(vm, old, hosts):
            return False
        with self.store.read():
            state = self.store.leases.get(vm.lease_id).state
        return state in WAITING_TO_MIGRATE

    def _leave(self, vm: VMRecord, old: HostRecord, new: HostRecord | None,
               images: dict[str, Any]) -> None:
        """Take the VM off `old`, where the schedule no longer has it. A suspended VM's disk
        and memory image first go to its new host when the two do not share storage (cold
        migration); then its domain there is destroyed and its files there removed."""
        if new is not None and self._files_to_move(vm, old, {new.name: new}):
            self._move_files(vm, old, new, images)
        self.pool.get(old).destroy(vm.name)
        source = self.pool.storage(old)
        if new is not None and source.location != self.pool.storage(new).location:
            # By their derived names: the new places are recorded, the old ones are not.
            source.remove_disk(vm.name, None)
            source.remove_save(vm.name, None)

    def _move_files(self, vm: VMRecord, old: HostRecord, new: HostRecord,
                    images: dict[str, Any]) -> None:
        from cloudctl.drivers.storage import move_vm_files

        image = images.get(vm.image or "") if vm.disk_path else None
        pinned = {v.image for v in self._live if v.host == new.name and v.image}
        try:
            moved = move_vm_files(self.pool.storage(old), self.pool.storage(new), vm.name,
                                  image, vm.disk_path, str(vm.save_path), pinned)
        except CloudctlError as error:
            raise type(error)(f"its disk and memory image are still on {old.name}: "
                              f"{error}") from error
        if moved.image_sent is not None and image is not None:
            self._record_transfer(image, new, moved.image_sent, self.now())
        vm.disk_path, vm.save_path = moved.disk or vm.disk_path, moved.save
        vm.updated_at = self.now()
        with self.store.write():  # recorded before the originals go
            self.store.vms.record_result(vm)
            self.store.events.add([EventRecord(
                vm.updated_at, f"vm {vm.name}", None, None,
                f"disk and memory image moved from {old.name} to {new.name} "
                f"({moved.bytes} bytes in {moved.seconds:.2f} s)")])

    def clouds(self) -> Any:
        if self._clouds is None:
            from cloudctl.clouds import CloudEnactment

            self._clouds = CloudEnactment(self.store, self.now())
        return self._clouds

    def reconcile_clouds(self, report: EnactReport, reap: bool) -> None:
        with self.store.read():
            if not self.store.clouds.all():
                return
            vms = self.store.vms.all(live=True)
        report.instances = self.clouds().reconcile(vms, reap)

    def _enact_cloud(self, vm: VMRecord, report: EnactReport) -> None:
        """A burst VM: its instance launched, stopped or terminated. A launch the provider
        refuses (after the driver's retries) sends the lease back to the scheduler."""
        before = vm.state
        with self.store.read():
            plan = self.store.leases.get(vm.lease_id).history.get("burst") or {}
        try:
            state = self.clouds().apply(vm, vm.image, plan)
        except CloudctlError as error:
            if vm.want == VMStatus.RUNNING and before in (*NOT_CREATED, VMStatus.GONE):
                vm.state, vm.error = VMStatus.ERROR, f"launch on {vm.cloud}: {error}"
                self._record(vm, before, vm.error)
                report.failed.append(f"{vm.name}: {vm.error}")
                report.unburst.setdefault(vm.lease_id, f"{error}")
                return
            self._failed(vm, before, error, report)
            return
        self._done(vm, state, f"enacted on {vm.cloud}", report, before=before)

    def close(self) -> None:
        if self._clouds is not None:
            self._clouds.close()

    def _apply(self, vm: VMRecord, host: HostRecord, images: dict[str, Any]) -> str:
        driver = self.pool.get(host)
        want = vm.want
        storage = self.pool.storage(host)
        if want == VMStatus.GONE:
            if vm.state == VMStatus.RUNNING:
                driver.shutdown(vm.name, float(self.settings.shutdown_grace))
            else:
                driver.destroy(vm.name)
            self._drop_save(vm, storage)
            storage.remove_disk(vm.name, vm.disk_path)
            vm.disk_path = None
            return VMStatus.GONE
        if want == VMStatus.SUSPENDED:
            # A memory image already there is a suspend that a killed tick did not record.
            path = vm.save_path or storage.save_path(vm.name)
            if (vm.state in (VMStatus.PENDING, VMStatus.MISSING, VMStatus.GONE)
                    and not storage.exists(path)):
                raise BackendError(f"{vm.name}: nothing to suspend (it never ran)")
            storage.prepare()
            driver.suspend(vm.name, path)
            vm.save_path = path
            return VMStatus.SUSPENDED
        # want == VMStatus.RUNNING
        if vm.save_path and storage.exists(vm.save_path):
            # The disk is named: a cold migration may have moved it since the save.
            driver.resume(vm.name, vm.save_path, disk_path=vm.disk_path)
            self._drop_save(vm, storage)
            return VMStatus.RUNNING
        image = images.get(vm.image or "")
        if image is not None:
            # Its path is derived from the VM's name: a disk made by a killed tick is reused,
            # or removed when the lease ends, even though it was never recorded.
            pinned = {v.image for v in self._live if v.host == host.name and v.image}
            vm.disk_path, sent = storage.disk(vm.name, image, pinned)
            if sent is not None:
                self._record_transfer(image, host, sent, self.now())
        self.logs.mkdir(parents=True, exist_ok=True, mode=0o700)
        driver.create(vm_spec(vm, image, self.logs))
        return VMStatus.RUNNING

    def _record_transfer(self, image: ImageRecord, host: HostRecord, sent: Any,
                         at: int) -> None:
        from cloudctl.scheduler.timing import transfer_time

        planned = transfer_time(image.size_mib, self.settings.scheduler.bandwidth)
        with self.store.write():
            self.store.transfers.add(TransferRecord(at, image.name, host.name, sent.bytes,
                                                    float(planned), round(sent.seconds, 3),
                                                    reused=not sent.transferred))

    def _drop_save(self, vm: VMRecord, storage: LocalStorage | RemoteStorage) -> None:
        storage.remove_save(vm.name, vm.save_path)
        vm.save_path = None

    def _done(self, vm: VMRecord, state: str, reason: str, report: EnactReport,
              before: str | None = None) -> None:
        old = vm.state if before is None else before
        vm.state, vm.error, vm.attempts, vm.retry_at = state, "", 0, None
        self._record(vm, old, reason)
        where = vm.host or vm.cloud
        report.done.append(f"{vm.name}: {state}" + (f" on {where}" if where else ""))

    def _failed(self, vm: VMRecord, before: str, error: CloudctlError,
                report: EnactReport) -> None:
        now = self.now()
        vm.attempts += 1
        vm.error = f"{vm.want}: {error}"
        delay = self.settings.retry_backoff * 2 ** (vm.attempts - 1)
        vm.retry_at = now + delay
        vm.state = VMStatus.ERROR if before in NOT_CREATED else before
        limit = self.settings.max_attempts
        reason = f"{vm.error} (attempt {vm.attempts}/{limit})"
        self._record(vm, before, reason)
        report.failed.append(f"{vm.name}: {reason}")
        if vm.attempts >= limit and vm.want != VMStatus.GONE:
            report.exhausted[vm.lease_id] = f"vm {vm.name}: {vm.error} " \
                                            f"(gave up after {vm.attempts} attempts)"

    def _record(self, vm: VMRecord, before: str, reason: str) -> None:
        vm.updated_at = self.now()
        with self.store.write():
            self.store.vms.record_result(vm)
            if before != vm.state or vm.error:
                self.store.events.add([EventRecord(vm.updated_at, f"vm {vm.name}", before,
                                                   vm.state, reason)])

    def _note_once(self, entity: str, reason: str) -> None:
        with self.store.write():
            last = self.store.events.about([entity], limit=20)
            if any(e.reason == reason for e in last):
                return
            self.store.events.add([EventRecord(self.now(), entity, None, None, reason)])
