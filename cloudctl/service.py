"""What cloudctl does for each command, above the store and the scheduler and below the CLI.

A command body in the CLI is: parse, call one method here, render what it returns.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cloudctl.config import DEFAULT_CONFIG, Settings
from cloudctl.errors import CloudctlError, Conflict, InvalidInput, Unsatisfiable
from cloudctl.store.db import Store
from cloudctl.store.records import EventRecord, HostRecord, ImageRecord, LeaseRecord, VMRecord

if TYPE_CHECKING:  # the scheduler and the drivers load only for commands that use them
    from cloudctl.enact import DriverPool, Enactor, EnactReport
    from cloudctl.scheduler.config import SchedulerConfig
    from cloudctl.scheduler.core import Decision
    from cloudctl.scheduler.model import LeaseRequest, LeaseType
    from cloudctl.session import Session

T = TypeVar("T")
FINAL_STATES = frozenset({"done", "cancelled", "fail", "rejected"})
# Meta key prefix of a `vm migrate` under way (one per VM name), written before it moves.
MOVE_INTENT = "vm-migrate "

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
VM_PREFIX = re.compile(r"(?=.{8,40}$)cloudctl(-[a-z0-9]+)*", re.ASCII)
DEFAULT_DISK_GIB = 100


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


def _empty_report() -> EnactReport:
    from cloudctl.enact import EnactReport

    return EnactReport()


@dataclass
class TickOutcome:
    ran: bool
    now: int
    holder: str = ""
    changed: list[LeaseRecord] = field(default_factory=list)
    report: EnactReport = field(default_factory=_empty_report)
    next_event: int | None = None


def check_name(kind: str, name: str) -> str:
    if not NAME.fullmatch(name):
        raise InvalidInput(f"{kind} name {name!r}: use letters, digits, '.', '_' or '-' "
                           "(at most 63, starting with a letter or digit)")
    return name


class Cloud:
    def __init__(self, settings: Settings, clock: Callable[[], int],
                 store: Store | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self._store = store
        self._pool: DriverPool | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.settings.db)
        return self._store

    @property
    def pool(self) -> DriverPool:
        """The hypervisor drivers, opened when a command first needs one."""
        if self._pool is None:
            from cloudctl.enact import DriverPool

            self._pool = DriverPool(self.settings)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._store is not None:
            self._store.close()

    def _session(self, **kwargs: Any) -> Any:
        from cloudctl.session import session

        return session(self.store, self.settings.scheduler, self.clock(), **kwargs)

    # -- init and db -----------------------------------------------------------------------

    def init(self, vm_prefix: str | None = None) -> dict[str, Any]:
        """Create the store (and a commented config if there is none); safe to repeat.
        `vm_prefix` names the store's VMs (PREFIX-LEASE-NODE) on the hypervisors."""
        if vm_prefix is not None and not VM_PREFIX.fullmatch(vm_prefix):
            raise InvalidInput(f"--vm-prefix {vm_prefix!r}: expected cloudctl or cloudctl-WORD "
                               "(lowercase letters and digits, at most 40 characters)")
        created = not self.settings.db.exists()
        store = self._store = Store(self.settings.db, create=True, check_schema=False)
        applied = store.migrate(self.clock())
        with store.write():
            prefix = store.get_meta("vm_prefix") or "cloudctl"
            if vm_prefix is not None and vm_prefix != prefix:
                if store.vms():
                    raise Conflict(f"the store's VMs are named {prefix}-LEASE-NODE already; "
                                   "the prefix cannot change now")
                store.set_meta("vm_prefix", prefix := vm_prefix)
        self.settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = self.settings.config_path
        wrote_config = False
        if not config.exists():
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(DEFAULT_CONFIG.format(db=self.settings.db,
                                                    state_dir=self.settings.state_dir))
            wrote_config = True
        return {"db": str(self.settings.db), "created": created, "migrations_applied": applied,
                "config": str(config), "config_created": wrote_config,
                "state_dir": str(self.settings.state_dir), "vm_prefix": prefix}

    def db_status(self) -> dict[str, Any]:
        store = Store(self.settings.db, check_schema=False)
        try:
            applied = store.applied_migrations()
            pending = store.pending_migrations()
            counts = store.counts() if not pending else {}
            mode = store.db.execute("PRAGMA journal_mode").fetchone()[0]
        finally:
            store.close()
        return {"db": str(self.settings.db), "size_bytes": self.settings.db.stat().st_size,
                "journal_mode": mode,
                "applied": [{"name": n, "applied_at": at} for n, at in applied],
                "pending": pending, "counts": counts}

    def db_migrate(self) -> list[str]:
        store = Store(self.settings.db, check_schema=False)
        try:
            return store.migrate(self.clock())
        finally:
            store.close()

    # -- hosts -----------------------------------------------------------------------------

    def add_host(self, name: str, cpus: int, memory_mib: int, disk_gib: int | None,
                 driver: str | None, uri: str | None,
                 options: dict[str, Any] | None = None) -> HostRecord:
        from cloudctl.drivers.registry import available, default_uri

        check_name("host", name)
        if cpus <= 0 or memory_mib <= 0:
            raise InvalidInput("--cpus and --memory must be positive")
        if disk_gib is not None and disk_gib < 0:
            raise InvalidInput("--disk must not be negative")
        driver = driver or self.settings.default_driver
        if driver not in available():
            raise InvalidInput(f"unknown driver {driver!r} (known: {', '.join(available())})")
        with self.store.read():
            if any(h.name == name for h in self.store.hosts()):
                raise Conflict(f"a host named {name!r} already exists")
        if uri is None:
            uri = default_uri(driver, name, cpus, memory_mib, self.settings.state_dir)
        host = HostRecord(name, cpus, memory_mib, (disk_gib or DEFAULT_DISK_GIB) * 1024,
                          driver, uri, added_at=self.clock(), options=dict(options or {}))
        # Refuse a host we cannot reach; asked before the store is locked, since a remote
        # hypervisor may take its time to answer.
        self.pool.get(host).host_info()
        if host.options.get("ssh"):
            storage = self.pool.storage(host)
            storage.check()  # type: ignore[union-attr]
        with self.store.write():
            self.store.add_host(host)
            self.store.add_events([EventRecord(host.added_at, f"host {name}", None, "enabled",
                                               f"added ({driver} {uri})")])
        return host

    def hosts(self, probe: bool = False) -> list[dict[str, Any]]:
        with self.store.read():
            hosts = self.store.hosts()
            vms = self.store.vms(live=True)
            leases = self.store.leases(live=True)
        views = [self._host_view(h, vms, leases) for h in hosts]
        if probe and hosts:
            from concurrent.futures import ThreadPoolExecutor

            # Asked in parallel: one slow hypervisor must not hold up the whole list.
            with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
                for view, found in zip(views, pool.map(self._probe, hosts), strict=True):
                    view["hypervisor"] = found
        return views

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

    def _host_view(self, host: HostRecord, vms: list[VMRecord],
                   leases: list[LeaseRecord]) -> dict[str, Any]:
        mine = [vm for vm in vms if vm.host == host.name]
        running = [vm for vm in mine if vm.state == "running"]
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

    def host(self, name: str, probe: bool = True) -> dict[str, Any]:
        with self.store.read():
            host = self.store.host(name)
            vms = self.store.vms(live=True)
            leases = self.store.leases(live=True)
            events = self.store.events([f"host {name}"])
        view = self._host_view(host, vms, leases)
        view["vms"] = [vm.name for vm in vms if vm.host == name]
        view["events"] = [_event(e) for e in events]
        if probe:
            view["hypervisor"] = self._probe(host)
        return view

    def set_host_enabled(self, name: str, enabled: bool) -> HostRecord:
        with self._session() as s:
            host = self.store.host(name)
            if host.enabled != enabled:
                host.enabled = enabled
                self.store.update_host(host)
                word = "enabled" if enabled else "disabled"
                s.events.append(EventRecord(s.now, f"host {name}", None, word, f"{word} by user"))
                if enabled and s.scheduler is not None:
                    s.scheduler.table.set_enabled(s.names.index(name), True)
                    s.settle()  # queued leases may fit now
        return host

    def _host_users(self, name: str) -> list[int]:
        """Live leases placed on the host, or suspended with their memory there."""
        return sorted({lease.id for lease in self.store.leases(live=True)
                       if name in lease.hosts or name in lease.history.get("last_hosts", [])})

    def _host_status(self, s: Session, lost: dict[str, str], back: list[str]) -> None:
        """Hosts that stopped answering go into error and their leases are handled like a
        drain (best-effort re-queued, AR re-placed or failed); hosts that answer again are
        back in service."""
        assert s.scheduler is not None
        for name, reason in lost.items():
            host = self.store.host(name)
            host.status, host.status_reason = "error", reason
            self.store.update_host(host)
            s.events.append(EventRecord(s.now, f"host {name}", "ok", "error", reason))
            s.scheduler.table.set_enabled(s.names.index(name), False)
            for lease_id in self._host_users(name):
                s.scheduler.evict(lease_id, s.now, f"host {name} in error")
        for name in back:
            host = self.store.host(name)
            host.status, host.status_reason = "ok", ""
            self.store.update_host(host)
            s.events.append(EventRecord(s.now, f"host {name}", "error", "ok", "answers again"))
            s.scheduler.table.set_enabled(s.names.index(name), host.enabled)
        s.settle()

    def remove_host(self, name: str, force: bool) -> dict[str, Any]:
        """Refuse while leases use the host; with force, drain it first: its VMs are stopped
        and its leases re-queued (best-effort) or re-placed / failed (AR, IM)."""
        with self.store.read():
            host = self.store.host(name)
            users = self._host_users(name)
            vms = self.store.vms(host=name, live=True)
        if users and not force:
            raise Conflict(f"host {name} has live lease(s) {', '.join(map(str, users))}; "
                           "use --force to drain it first")
        stopped = []
        for vm in vms:  # nothing may keep running on a host we forget
            if vm.state != "gone":
                try:
                    self.pool.get(host).destroy(vm.name)
                    self.pool.storage(host).remove_disk(vm.name, vm.disk_path)
                except Exception as error:
                    stopped.append(f"{vm.name}: not stopped ({error})")
                    continue
                stopped.append(vm.name)
                vm.state, vm.save_path, vm.disk_path = "gone", None, None
                vm.updated_at = self.clock()
                with self.store.write():
                    self.store.record_vm_result(vm)
        evicted = []
        with self._session() as s:
            if s.scheduler is not None:
                h = s.names.index(name)
                s.scheduler.table.set_enabled(h, False)
                for lease_id in users:
                    lease = s.scheduler.evict(lease_id, s.now, f"host {name} removed")
                    evicted.append({"id": lease_id, "state": lease.state.value,
                                    "reason": lease.reason})
                s.settle()
            s.save()
            self.store.remove_host(name)
            s.events.append(EventRecord(s.now, f"host {name}", None, "removed",
                                        "removed by user" + (" (drained)" if users else "")))
            self.store.add_events(s.events)
            s.events = []
        return {"name": name, "removed": True, "drained": evicted, "vms_stopped": stopped}

    # -- images ----------------------------------------------------------------------------

    def add_image(self, name: str, path: Path, fmt: str | None, link: bool = False,
                  kernel: Path | None = None, initrd: Path | None = None,
                  cmdline: str | None = None) -> ImageRecord:
        """Copy (or link) the image, and a kernel and initrd to boot it with, into the
        repository; recorded only once every file is in place."""
        from cloudctl.drivers.storage import import_file, import_image

        check_name("image", name)
        if (initrd or cmdline) and not kernel:
            raise InvalidInput("--initrd and --cmdline need --kernel")
        with self.store.read():
            if any(i.name == name for i in self.store.images()):
                raise Conflict(f"an image named {name!r} already exists")
        boot_files = {key: file.expanduser().absolute()
                      for key, file in (("kernel", kernel), ("initrd", initrd)) if file}
        for key, file in boot_files.items():
            if not file.is_file():
                raise InvalidInput(f"--{key} {file}: no such file")
        repository = self.settings.state_dir / "images"
        source = path.expanduser().absolute()
        imported = import_image(source, repository, name, fmt, link)
        boot = {key: str(import_file(file, repository, f"{name}.{key}", link)[0])
                for key, file in boot_files.items()}
        if cmdline:
            boot["cmdline"] = cmdline
        image = ImageRecord(name, imported.path, imported.format, imported.size_bytes,
                            imported.sha256, added_at=self.clock(), boot=boot,
                            source=str(source))
        how = "linked" if link else "copied"
        with self.store.write():
            self.store.add_image(image)
            self.store.add_events([EventRecord(
                image.added_at, f"image {name}", None, "added",
                f"{image.format}, {image.size_bytes} bytes {how} from {source}")])
        return image

    def images(self) -> list[ImageRecord]:
        with self.store.read():
            return self.store.images()

    def image(self, name: str) -> ImageRecord:
        with self.store.read():
            return self.store.image(name)

    def remove_image(self, name: str) -> ImageRecord:
        """Forget an image and delete its repository files (a linked original is kept)."""
        from cloudctl.drivers.storage import remove_files

        with self.store.write():
            image = self.store.image(name)
            users = self.store.image_in_use(name)
            if users:
                raise Conflict(f"image {name} is used by live lease(s) "
                               f"{', '.join(map(str, users))}")
            self.store.remove_image(name)
            self.store.add_events([EventRecord(self.clock(), f"image {name}", "added",
                                               "removed", "removed by user")])
        repository = self.settings.state_dir / "images"
        remove_files(*(p for p in (image.path, *image.boot.values())
                       if Path(p).parent == repository))
        return image

    def image_stats(self, name: str | None = None) -> list[dict[str, Any]]:
        """Per image and host: transfers planned against measured, and cache reuse."""
        with self.store.read():
            if name is not None:
                self.store.image(name)
            transfers = self.store.transfers(name)
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for t in transfers:
            row = rows.setdefault((t.image, t.host), {
                "image": t.image, "host": t.host, "transfers": 0, "reused": 0, "bytes": 0,
                "planned_s": 0.0, "actual_s": 0.0})
            if t.reused:
                row["reused"] += 1
                continue
            row["transfers"] += 1
            row["bytes"] += t.bytes
            row["planned_s"] += t.planned_s
            row["actual_s"] += t.actual_s
        for row in rows.values():
            row["planned_s"] = round(row["planned_s"], 3)
            row["actual_s"] = round(row["actual_s"], 3)
        return list(rows.values())

    def template_defaults(self, path: Path, find_image: bool = True) -> dict[str, Any]:
        """Lease defaults from a Xen xl.cfg: cpus, memory, name, and the registered image
        whose file (or original) is the template's first disk."""
        from cloudctl.drivers.xlconvert import template_from_xl

        template = template_from_xl(str(path))
        found: dict[str, Any] = {"cpus": template["cpus"], "memory_mib": template["memory_mib"],
                                 "name": template.get("name")}
        disks = [d["path"] for d in template.get("disks", []) if d.get("path")]
        if disks and find_image:
            with self.store.read():
                images = self.store.images()
            wanted = os.path.abspath(disks[0])
            match = [i.name for i in images if wanted in (i.path, i.source)]
            if not match:
                raise InvalidInput(f"--template {path}: its disk {disks[0]} is not a registered "
                                   "image (add it with 'cloudctl image add', or give --image)")
            found["image"] = match[0]
        return found

    # -- leases ----------------------------------------------------------------------------

    def _request(self, spec: LeaseSpec, lease_id: int, now: int) -> LeaseRequest:
        from cloudctl.scheduler.model import Capacity, LeaseRequest, LeaseType

        if spec.nodes <= 0 or spec.cpus <= 0 or spec.memory_mib <= 0:
            raise InvalidInput("--nodes, --cpus and --memory must be positive")
        if spec.type is LeaseType.AR and spec.start is None:
            raise InvalidInput("an advance reservation needs --start")
        if spec.type is not LeaseType.AR and spec.start is not None:
            raise InvalidInput(f"--start applies to advance reservations only "
                               f"(a {spec.type.value} lease starts as soon as it can)")
        if spec.name is not None:
            check_name("lease", spec.name)
        size = 0
        if spec.image is not None:
            size = self.store.image(spec.image).size_mib
        preemptible = spec.preemptible
        if preemptible is None:  # Haizea's defaults: only best-effort leases yield
            preemptible = spec.type is LeaseType.BE
        return LeaseRequest(id=lease_id, type=spec.type, submit=now, nodes=spec.nodes,
                            capacity=Capacity(spec.cpus, spec.memory_mib, spec.disk_mib),
                            duration=spec.duration, start=spec.start, preemptible=preemptible,
                            image=spec.image, image_size_mib=size, name=spec.name)

    def request_lease(self, spec: LeaseSpec, dry_run: bool = False) -> RequestOutcome:
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
        from cloudctl.scheduler.model import LeaseType
        from cloudctl.session import decide

        window = None
        if spec.type is LeaseType.AR and spec.start is not None:
            window = (spec.start, spec.start + spec.duration)
        return decide(self.store, config, self.clock(), act, window=window, save=save)

    def _submit(self, s: Session, spec: LeaseSpec) -> RequestOutcome:
        """Submit the request in session `s` and settle the queue; what was decided."""
        scheduler = self._need_hosts(s)
        request = self._request(spec, self.store.next_lease_id(), s.now)
        decision = scheduler.submit(request, s.now)
        s.settle()
        return self._outcome(s, request.id, decision)

    def _need_hosts(self, s: Session) -> Any:
        if s.scheduler is None:
            raise Conflict("the cloud has no hosts yet; add one with 'cloudctl host add'")
        return s.scheduler

    def _outcome(self, s: Session, lease_id: int, decision: Decision) -> RequestOutcome:
        assert s.scheduler is not None
        preempted = []
        for p in decision.preempted:
            victim = s.scheduler.leases[p.lease_id]
            preempted.append({"id": p.lease_id, "how": p.how, "at": p.at,
                              "state": victim.state.value, "reason": victim.reason})
        return RequestOutcome(s.record(s.scheduler.leases[lease_id]), decision,
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

    def leases(self, state: str | None = None, type: str | None = None) -> list[LeaseRecord]:
        with self.store.read():
            return self.store.leases(state=state, type=type)

    def lease_list_json(self, state: str | None = None, type: str | None = None) -> list[str]:
        with self.store.read():
            return self.store.lease_list_json(state=state, type=type)

    def lease(self, lease_id: int) -> tuple[LeaseRecord, list[VMRecord], list[EventRecord]]:
        with self.store.read():
            lease = self.store.lease(lease_id)
            vms = self.store.vms(lease_id=lease_id)
            events = self.store.events([f"lease {lease_id}"] + [f"vm {vm.name}" for vm in vms])
        return lease, vms, events

    def cancel(self, lease_id: int) -> tuple[LeaseRecord, bool]:
        """(the lease, whether this call cancelled it); a finished lease is left as it is."""
        with self._session() as s:
            lease = self.store.lease(lease_id)
            if lease.state in FINAL_STATES:
                return lease, False
            assert s.scheduler is not None
            s.scheduler.cancel(lease_id, s.now, "cancelled by user")
            s.settle()
            record = s.record(s.scheduler.leases[lease_id])
        return record, True

    def explain(self, lease_id: int) -> dict[str, Any]:
        """Why a lease is where it is: its reason, each host's verdict for its window, and
        the story so far."""
        record, vms, events = self.lease(lease_id)
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
                # Explain against the table without the lease's own reservation.
                if run is not None:
                    for b in run.bookings:
                        s.scheduler.table.remove(b)
                for name, why in s.scheduler.explain_hosts(lease_id, start, end):
                    verdict = "chosen" if name in chosen else (why or "fits")
                    hosts.append({"host": name, "verdict": verdict})
        return {"id": lease_id, "state": record.state, "reason": record.reason,
                "window": None if window is None else {"start": window[0], "end": window[1]},
                "hosts": hosts, "events": [_event(e) for e in events],
                "lease": record}

    def wait_state(self, lease_id: int, states: set[str], timeout: int | None,
                   sleep: Callable[[float], None],
                   elapsed: Callable[[], float] = time.monotonic) -> LeaseRecord:
        """Poll until the lease reaches one of `states` (ticking when nobody else is);
        a final state that is not awaited ends the wait with a conflict. The timeout is
        real elapsed time, whatever clock the cloud runs on."""
        deadline = None if timeout is None else elapsed() + timeout
        ticked = False
        while True:
            with self.store.read():
                record = self.store.lease(lease_id)
            if record.state in states:
                return record
            if record.state in FINAL_STATES:
                raise Conflict(f"lease {lease_id} is {record.state}, it will never be "
                               f"{' or '.join(sorted(states))}: {record.reason}")
            if deadline is not None and elapsed() >= deadline:
                raise Conflict(f"timed out: lease {lease_id} is still {record.state}")
            if ticked:
                sleep(1.0)  # our last tick did not get it there: let time pass
            ticked = self.tick(blocking=False).ran
            if not ticked:
                sleep(1.0)  # someone else is ticking

    # -- VMs and the schedule --------------------------------------------------------------

    def vms(self, lease_id: int | None = None, host: str | None = None) -> list[VMRecord]:
        with self.store.read():
            return self.store.vms(lease_id=lease_id, host=host)

    def vm(self, key: str) -> tuple[VMRecord, list[EventRecord]]:
        with self.store.read():
            vm = self.store.vm(key)
            return vm, self.store.events([f"vm {vm.name}"])

    def migrate_vm(self, key: str, to: str, live: bool) -> dict[str, Any]:
        """Move a running VM to host `to`: live (the guest keeps running) or cold (saved to
        a memory image, restored there). The schedule and the hypervisors change together:
        the store's transaction is held across the move and rolled back if it fails. The
        intent is recorded first and no tick runs meanwhile, so a move killed half-way is
        finished or undone by the next tick (`_finish_interrupted_moves`)."""
        from cloudctl.drivers.registry import driver_class

        with self.store.read():
            vm = self.store.vm(key)
            source = self.store.host(vm.host) if vm.host else None
            dest = self.store.host(to)
        if source is None or vm.state != "running" or vm.want != "running":
            raise Conflict(f"vm {vm.name} is {vm.state}; only a running VM can be migrated")
        ability = "live-migration" if live else "cold-migration"
        for host in (source, dest):
            if ability not in driver_class(host.driver).capabilities:
                hint = "; without --live it moves cold" if live and "cold-migration" in \
                    driver_class(host.driver).capabilities else ""
                raise InvalidInput(f"host {host.name} ({host.driver} driver) cannot do "
                                   f"{ability}{hint}")
        if source.driver != dest.driver:
            raise InvalidInput(f"cannot migrate from a {source.driver} host to a {dest.driver} "
                               "host")
        if self.pool.storage(source).location != self.pool.storage(dest).location:
            # Its disk would stay behind; the scheduler's cold migration of a suspended lease
            # is what moves disks and memory images between hosts.
            raise InvalidInput(f"cannot migrate vm {vm.name}: {source.name} and {to} do not "
                               "share storage")
        how = "live" if live else "cold"
        intent = MOVE_INTENT + vm.name
        started = time.monotonic()
        with self._tick_lock(blocking=True):
            with self.store.write():
                self.store.set_meta(intent, json.dumps({"from": source.name, "to": to,
                                                        "live": live}))
            try:
                with self._session() as s:
                    scheduler = self._need_hosts(s)
                    refused = scheduler.relocate(vm.lease_id, vm.node, s.names.index(to), s.now)
                    if refused:
                        raise Unsatisfiable(f"vm {vm.name} cannot move to {to}: {refused}")
                    self._move_domain(vm.name, source, dest, live)
                    vm.host, vm.old_host, vm.updated_at = to, None, s.now
                    self.store.save_vm(vm)
                    self.store.delete_meta(intent)
                    s.events.append(EventRecord(s.now, f"vm {vm.name}", "running", "running",
                                                f"migrated ({how}) from {source.name} to {to}"))
            except CloudctlError as error:
                with self.store.write():
                    self.store.delete_meta(intent)  # it stayed where it was
                    if not isinstance(error, Unsatisfiable):
                        self.store.add_events([EventRecord(
                            self.clock(), f"vm {vm.name}", None, None,
                            f"{how} migration to {to} failed, still on {source.name}: "
                            f"{error}")])
                raise
        return {"vm": vm.name, "lease": vm.lease_id, "from": source.name, "to": to,
                "live": live, "seconds": round(time.monotonic() - started, 3)}

    def _move_domain(self, name: str, source: HostRecord, dest: HostRecord,
                     live: bool) -> None:
        src, dst = self.pool.get(source), self.pool.get(dest)
        if live:
            src.migrate(name, dest.uri, live=True)  # type: ignore[attr-defined]
            return
        image = self._move_image(name)
        image.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            src.suspend(name, str(image))
            try:
                dst.resume(name, str(image))
            except CloudctlError:
                src.resume(name, str(image))  # back where it was, still alive
                raise
            src.destroy(name)  # its definition; the guest now runs on dest
        finally:
            image.unlink(missing_ok=True)

    def _move_image(self, name: str) -> Path:
        return self.settings.state_dir / "saves" / f"{name}.migrate"

    def _finish_interrupted_moves(self) -> None:
        """`vm migrate`s killed half-way (their intent is still recorded): where the domain
        runs now decides. On the destination, the move is completed in the schedule (or,
        with no room left there, undone); on the source, or saved to the move's memory
        image, it stays on (or is restored to) the source. Reached by ticks only, which
        never run during a `vm migrate`."""
        with self.store.read():
            intents = self.store.metas(MOVE_INTENT)
        for key, text in intents.items():
            name = key[len(MOVE_INTENT):]
            try:
                outcome = self._finish_move(name, json.loads(text))
            except CloudctlError as error:  # a host that does not answer: the next tick
                outcome = f"interrupted migration not settled yet: {error}"
                with self.store.write():
                    self.store.add_events([EventRecord(self.clock(), f"vm {name}", None,
                                                       None, outcome)])
                continue
            with self.store.write():
                self.store.delete_meta(key)
                self.store.add_events([EventRecord(self.clock(), f"vm {name}", None, None,
                                                   outcome)])

    def _finish_move(self, name: str, intent: dict[str, Any]) -> str:
        from cloudctl.drivers.base import VMState

        with self.store.read():
            vm = self.store.vm(name)
            hosts = {h.name: h for h in self.store.hosts()}
        source, dest = hosts.get(intent["from"]), hosts.get(intent["to"])
        live, how = bool(intent.get("live")), "live" if intent.get("live") else "cold"
        if source is None or dest is None or vm.host != source.name:
            return f"interrupted {how} migration: nothing left to settle"
        src, dst = self.pool.get(source), self.pool.get(dest)
        here, there = src.state(name), dst.state(name)
        image = self._move_image(name)
        active = (VMState.RUNNING, VMState.PAUSED)
        try:
            if there is VMState.RUNNING and here is not VMState.RUNNING:
                src.destroy(name)  # what is left here: a definition, or a paused copy
                with self._session() as s:
                    refused = self._need_hosts(s).relocate(vm.lease_id, vm.node,
                                                           s.names.index(dest.name), s.now)
                    if not refused:
                        vm.host, vm.updated_at = dest.name, s.now
                        self.store.save_vm(vm)
                        return (f"interrupted {how} migration completed: running on "
                                f"{dest.name}")
                self._move_domain(name, dest, source, live)
                return (f"interrupted {how} migration undone: {dest.name} has no room now "
                        f"({refused}); back on {source.name}")
            if here in active:
                dst.destroy(name)  # a copy the move had begun there, if any
                src.resume(name, str(image))  # a guest paused for the copy runs again
                return f"interrupted {how} migration undone: still on {source.name}"
            dst.destroy(name)
            if image.exists():
                src.resume(name, str(image))
                return (f"interrupted {how} migration undone: restored on {source.name} "
                        "from its memory image")
            return f"interrupted {how} migration: the VM is on neither host"
        finally:
            if src.state(name) in active or dst.state(name) in active:
                image.unlink(missing_ok=True)

    def schedule(self, start: int | None, end: int | None) -> dict[str, Any]:
        """Every reservation and past run overlapping [start, end), host by host."""
        now = self.clock()
        with self.store.read():
            hosts = self.store.hosts()
            leases = self.store.leases()
            reservations = {r.id: r for r in self.store.live_leases()}
        bars = []
        for lease in leases:
            for s0, e0, names in lease.history.get("runs", []):
                for node, name in enumerate(names):
                    bars.append({"lease": lease.id, "host": name, "node": node, "start": s0,
                                 "end": e0, "kind": "ran", "type": lease.type})
            r = reservations.get(lease.id)
            if r is not None and r.reservation is not None:
                res = r.reservation
                begin = max(res.start, res.run_start if res.step >= 3 else res.start)
                for node, name in enumerate(res.hosts):
                    bars.append({"lease": lease.id, "host": name, "node": node,
                                 "start": begin, "end": res.end,
                                 "kind": "running" if res.step >= 3 else "planned",
                                 "type": lease.type})
        if start is None:
            start = min([b["start"] for b in bars if b["end"] > now - 3600] + [now])
        if end is None:
            end = max([b["end"] for b in bars] + [start + 3600])
        if end <= start:
            raise InvalidInput("--to must be later than --from")
        bars = [b for b in bars if b["end"] > start and b["start"] < end]
        return {"from": start, "to": end, "now": now, "hosts": [h.name for h in hosts],
                "bars": bars}

    # -- public clouds ---------------------------------------------------------------------

    def add_cloud(self, name: str, type: str, region: str, endpoint: str | None,
                  profile: str | None, budget: float | None, prices: dict[str, float],
                  options: dict[str, Any]) -> dict[str, Any]:
        """Register a cloud to burst to. The provider must answer (credentials from the
        standard AWS chain), know every priced instance type and the AMIs given."""
        from cloudctl.clouds import (
            DEFAULT_PRICES,
            catalogue,
            cloud_view,
            open_cloud,
            parse_options,
        )
        from cloudctl.store.records import CloudRecord

        check_name("cloud", name)
        if not region:
            raise InvalidInput("--region is required (e.g. us-east-1)")
        if budget is not None and budget < 0:
            raise InvalidInput("--budget-per-month must not be negative")
        configured = self.settings.clouds.get(name, {}).get("prices")
        price_list = prices or configured or DEFAULT_PRICES
        for kind, price in price_list.items():
            if not isinstance(price, (int, float)) or isinstance(price, bool) or price < 0:
                raise InvalidInput(f"price of {kind}: {price!r} is not a USD amount >= 0")
        record = CloudRecord(name, type, region, endpoint, profile, budget,
                             options=parse_options(options), added_at=self.clock())
        with self.store.read():
            if any(c.name == name for c in self.store.clouds()):
                raise Conflict(f"a cloud named {name!r} already exists")
        driver = open_cloud(record)
        try:
            driver.probe()
            record.catalogue = catalogue(driver, price_list)
            amis = {record.options.get("ami"), *record.options.get("images", {}).values()}
            for ami in sorted(a for a in amis if a):
                driver.check_image(ami)
        finally:
            driver.close()
        with self.store.write():
            self.store.add_cloud(record)
            self.store.add_events([EventRecord(self.clock(), f"cloud {name}", None, "added",
                                               f"{type} {region}")])
        return cloud_view(record, [], self.clock())

    def clouds(self) -> list[dict[str, Any]]:
        from cloudctl.clouds import cloud_view

        with self.store.read():
            records = self.store.clouds()
            instances = self.store.instances()
        now = self.clock()
        return [cloud_view(r, instances, now) for r in records]

    def cloud(self, name: str) -> dict[str, Any]:
        from cloudctl.clouds import cloud_view

        with self.store.read():
            record = self.store.cloud(name)
            instances = self.store.instances(cloud=name)
        view = cloud_view(record, instances, self.clock())
        view["instances"] = [{"instance_id": i.instance_id, "vm": i.vm, "lease": i.lease_id,
                              "type": i.instance_type, "state": i.state,
                              "launched": i.launched_at, "ended": i.ended_at,
                              "private_ip": i.private_ip, "public_ip": i.public_ip,
                              "error": i.error} for i in instances]
        return view

    def remove_cloud(self, name: str) -> dict[str, Any]:
        """Forget a cloud; refused (exit 4) while instances run there."""
        with self.store.write():
            self.store.cloud(name)
            running = self.store.instances(cloud=name, live=True)
            if running:
                leases = sorted({i.lease_id for i in running})
                raise Conflict(f"cloud {name} still runs {len(running)} instance(s) for "
                               f"lease(s) {', '.join(map(str, leases))}; cancel them first")
            self.store.remove_cloud(name)
            self.store.add_events([EventRecord(self.clock(), f"cloud {name}", "added",
                                               "removed", "removed")])
        return {"name": name, "removed": True}

    def cost_report(self, since: int | None, by: str) -> dict[str, Any]:
        from cloudctl.clouds import cost_report

        if by not in ("lease", "provider", "day"):
            raise InvalidInput(f"--by must be lease, provider or day, not {by!r}")
        with self.store.read():
            instances = self.store.instances(since=since)
            clouds = self.store.clouds()
            ends = {lease.id: lease.end for lease in self.store.live_leases()}
        return cost_report(instances, clouds, ends, self.clock(), since, by)

    # -- time passes -----------------------------------------------------------------------

    @contextmanager
    def _tick_lock(self, blocking: bool) -> Iterator[str]:
        """One tick at a time: '' when this process holds the lock, else who holds it."""
        self.settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.settings.state_dir / "tick.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                yield holder or "another process"
                return
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
            yield ""
        finally:
            os.close(fd)

    def tick(self, blocking: bool = False, reap: bool = False) -> TickOutcome:
        """One scheduling-and-enactment pass at the current time (`reap`: terminate cloud
        instances tagged with this store that no lease owns)."""
        with self._tick_lock(blocking) as holder:
            if holder:
                return TickOutcome(False, self.clock(), holder=holder)
            self._finish_interrupted_moves()
            with self._session() as s:
                s.settle()
                changed = s.save()
                records = [s.record(lease) for lease in changed]
                now = s.now
            from cloudctl.enact import Enactor

            enactor = Enactor(self.store, self.settings, self.pool, lambda: now)
            try:
                return self._enact(enactor, now, records, reap)
            finally:
                enactor.close()

    def _enact(self, enactor: Enactor, now: int, records: list[LeaseRecord],
               reap: bool) -> TickOutcome:
        report = _empty_report()
        enactor.reconcile(report)
        enactor.reconcile_clouds(report, reap)
        if report.lost_hosts or report.recovered_hosts:
            with self._session() as s:
                self._host_status(s, report.lost_hosts, report.recovered_hosts)
                records += [s.record(lease) for lease in s.save()]
        enactor.enact(report)
        if report.exhausted or report.unburst:
            with self._session() as s:
                assert s.scheduler is not None
                for lease_id, reason in report.exhausted.items():
                    s.scheduler.fail(lease_id, s.now, reason)
                for lease_id, reason in report.unburst.items():
                    s.scheduler.unburst(lease_id, s.now, reason)
                s.settle()
                records += [s.record(lease) for lease in s.save()]
            enactor.enact(report)
        with self.store.read():
            upcoming = self.store.get_meta("next_event") or ""
            retry = [vm.retry_at for vm in self.store.vms(live=True)
                     if vm.retry_at is not None and vm.state != vm.want]
        times = [int(upcoming)] if upcoming else []
        times += retry
        return TickOutcome(True, now, changed=records, report=report,
                           next_event=min(times) if times else None)


def _be_starts(s: Session) -> dict[int, int | None]:
    from cloudctl.scheduler.model import LeaseType

    assert s.scheduler is not None
    return {i: (lease.run.start if lease.run is not None else None)
            for i, lease in s.scheduler.leases.items()
            if lease.type is LeaseType.BE and not lease.state.final
            and (lease.run is None or lease.run.start > s.now)}


def _event(e: EventRecord) -> dict[str, Any]:
    return {"time": e.time, "entity": e.entity, "from": e.from_state, "to": e.to_state,
            "reason": e.reason}

