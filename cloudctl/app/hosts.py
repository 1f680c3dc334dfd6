"""Hosts: add, list and show (with what their hypervisors say now), enable and disable,
remove (draining them), and what a tick does when one stops or starts answering."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cloudctl.app.context import Room, check_name
from cloudctl.domain import HostStatus, VMStatus
from cloudctl.errors import CloudctlError, Conflict, InvalidInput
from cloudctl.limits import MAX_CPUS, MAX_DISK_GIB, MAX_MEMORY_MIB, check_range
from cloudctl.store.records import EventRecord, HostRecord, LeaseRecord, VMRecord
from cloudctl.views import event_view

if TYPE_CHECKING:
    from cloudctl.session import Session

DEFAULT_DISK_GIB = 100


class Hosts(Room):
    def add(self, name: str, cpus: int, memory_mib: int, disk_gib: int | None,
            driver: str | None, uri: str | None,
            options: dict[str, Any] | None = None) -> HostRecord:
        from cloudctl.drivers.registry import available, default_uri

        check_name("host", name)
        if cpus <= 0 or memory_mib <= 0:
            raise InvalidInput("--cpus and --memory must be positive")
        if disk_gib is not None and disk_gib < 0:
            raise InvalidInput("--disk must not be negative")
        check_range(cpus, 1, MAX_CPUS, "--cpus")
        check_range(memory_mib, 1, MAX_MEMORY_MIB, "--memory", " MiB")
        if disk_gib is not None:
            check_range(disk_gib, 0, MAX_DISK_GIB, "--disk", " GiB")
        driver = driver or self.settings.default_driver
        if driver not in available():
            raise InvalidInput(f"unknown driver {driver!r} (known: {', '.join(available())})")
        with self.store.read():
            if any(h.name == name for h in self.store.hosts.all()):
                raise Conflict(f"a host named {name!r} already exists")
        if uri is None:
            uri = default_uri(driver, name, cpus, memory_mib, self.settings.state_dir)
        host = HostRecord(name, cpus, memory_mib, (disk_gib or DEFAULT_DISK_GIB) * 1024,
                          driver, uri, added_at=self.clock(), options=dict(options or {}))
        # Refuse a host we cannot reach; asked before the store is locked, since a remote
        # hypervisor may take its time to answer.
        pool = self.app.pool
        pool.get(host).host_info()
        if host.options.get("ssh"):
            storage = pool.storage(host)
            storage.check()  # type: ignore[union-attr]
        with self.store.write():
            self.store.hosts.add(host)
            self.store.events.add([EventRecord(host.added_at, f"host {name}", None, "enabled",
                                               f"added ({driver} {uri})")])
        return host

    def all(self, probe: bool = False) -> list[dict[str, Any]]:
        with self.store.read():
            hosts = self.store.hosts.all()
            vms = self.store.vms.all(live=True)
            leases = self.store.leases.all(live=True)
        views = [_host_view(h, vms, leases) for h in hosts]
        if probe and hosts:
            from concurrent.futures import ThreadPoolExecutor

            # Asked in parallel: one slow hypervisor must not hold up the whole list.
            with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
                for view, found in zip(views, pool.map(self._probe, hosts), strict=True):
                    view["hypervisor"] = found
        return views

    def show(self, name: str, probe: bool = True) -> dict[str, Any]:
        with self.store.read():
            host = self.store.hosts.get(name)
            vms = self.store.vms.all(live=True)
            leases = self.store.leases.all(live=True)
            events = self.store.events.about([f"host {name}"])
        view = _host_view(host, vms, leases)
        view["vms"] = [vm.name for vm in vms if vm.host == name]
        view["events"] = [event_view(e) for e in events]
        if probe:
            view["hypervisor"] = self._probe(host)
        return view

    def _probe(self, host: HostRecord) -> dict[str, Any]:
        """What the host's hypervisor reports now; a dead host is shown, not raised."""
        from cloudctl.drivers.registry import open_driver

        driver = open_driver(host.driver, host.uri, self.settings.drivers.get(host.driver))
        try:
            info = driver.host_info()
            return {"cpus": info.cpus, "memory_mib": info.memory_mib,
                    "free_memory_mib": info.free_memory_mib, "running_vms": info.running_vms}
        except CloudctlError as error:
            return {"error": str(error)}
        finally:
            driver.close()

    def set_enabled(self, name: str, enabled: bool) -> HostRecord:
        with self.app.session() as s:
            host = self.store.hosts.get(name)
            if host.enabled != enabled:
                host.enabled = enabled
                self.store.hosts.update(host)
                word = "enabled" if enabled else "disabled"
                s.events.append(EventRecord(s.now, f"host {name}", None, word, f"{word} by user"))
                if enabled and s.scheduler is not None:
                    s.scheduler.set_host_enabled(name, True)
                    s.settle()  # queued leases may fit now
        return host

    def users(self, name: str) -> list[int]:
        """Live leases placed on the host, or suspended with their memory there."""
        return sorted({lease.id for lease in self.store.leases.all(live=True)
                       if name in lease.hosts or name in lease.history.get("last_hosts", [])})

    def mark_status(self, s: Session, lost: dict[str, str], back: list[str]) -> None:
        """Hosts that stopped answering go into error and their leases are handled like a
        drain (best-effort re-queued, AR re-placed or failed); hosts that answer again are
        back in service."""
        assert s.scheduler is not None
        for name, reason in lost.items():
            host = self.store.hosts.get(name)
            host.status, host.status_reason = HostStatus.ERROR, reason
            self.store.hosts.update(host)
            s.events.append(EventRecord(s.now, f"host {name}", HostStatus.OK, HostStatus.ERROR,
                                       reason))
            s.scheduler.set_host_enabled(name, False)
            for lease_id in self.users(name):
                s.scheduler.evict(lease_id, s.now, f"host {name} in error")
        for name in back:
            host = self.store.hosts.get(name)
            host.status, host.status_reason = HostStatus.OK, ""
            self.store.hosts.update(host)
            s.events.append(EventRecord(s.now, f"host {name}", HostStatus.ERROR, HostStatus.OK,
                                       "answers again"))
            s.scheduler.set_host_enabled(name, host.enabled)
        s.settle()

    def remove(self, name: str, force: bool) -> dict[str, Any]:
        """Refuse while leases use the host; with force, drain it first: its VMs are stopped
        and its leases re-queued (best-effort) or re-placed / failed (AR, IM)."""
        with self.store.read():
            host = self.store.hosts.get(name)
            users = self.users(name)
            vms = self.store.vms.all(host=name, live=True)
        if users and not force:
            raise Conflict(f"host {name} has live lease(s) {', '.join(map(str, users))}; "
                           "use --force to drain it first")
        stopped = []
        pool = self.app.pool
        for vm in vms:  # nothing may keep running on a host we forget
            if vm.state != VMStatus.GONE:
                try:
                    pool.get(host).destroy(vm.name)
                    pool.storage(host).remove_disk(vm.name, vm.disk_path)
                except Exception as error:
                    stopped.append(f"{vm.name}: not stopped ({error})")
                    continue
                stopped.append(vm.name)
                vm.state, vm.save_path, vm.disk_path = VMStatus.GONE.value, None, None
                vm.updated_at = self.clock()
                with self.store.write():
                    self.store.vms.record_result(vm)
        evicted = []
        with self.app.session() as s:
            if s.scheduler is not None:
                s.scheduler.set_host_enabled(name, False)
                for lease_id in users:
                    lease = s.scheduler.evict(lease_id, s.now, f"host {name} removed")
                    evicted.append({"id": lease_id, "state": lease.state.value,
                                    "reason": lease.reason})
                s.settle()
            s.save()
            self.store.hosts.remove(name)
            s.events.append(EventRecord(s.now, f"host {name}", None, "removed",
                                        "removed by user" + (" (drained)" if users else "")))
            self.store.events.add(s.events)
            s.events = []
        return {"name": name, "removed": True, "drained": evicted, "vms_stopped": stopped}


def _host_view(host: HostRecord, vms: list[VMRecord], leases: list[LeaseRecord]
               ) -> dict[str, Any]:
    mine = [vm for vm in vms if vm.host == host.name]
    running = [vm for vm in mine if vm.state == VMStatus.RUNNING]
    return {"name": host.name, "cpus": host.cpus, "memory_mib": host.memory_mib,
            "disk_mib": host.disk_mib, "driver": host.driver, "uri": host.uri,
            "options": host.options,
            "enabled": host.enabled, "status": host.status,
            "status_reason": host.status_reason,
            "vms_running": len(running),
            "cpus_used": sum(vm.cpus for vm in running),
            "memory_used_mib": sum(vm.memory_mib for vm in running),
            "leases": sorted({lease.id for lease in leases if host.name in lease.hosts}),
            "added": host.added_at}
