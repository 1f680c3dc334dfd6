"""VMs: list and show them, and move a running one to another host (live or cold), with
the settling of a move that was killed half-way."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cloudctl.app.context import Room
from cloudctl.domain import VMStatus
from cloudctl.errors import CloudctlError, Conflict, InvalidInput, Unsatisfiable
from cloudctl.limits import MAX_ID
from cloudctl.store.records import EventRecord, HostRecord, VMRecord


class VMs(Room):
    def all(self, lease_id: int | None = None, host: str | None = None) -> list[VMRecord]:
        if lease_id is not None and abs(lease_id) > MAX_ID:
            return []  # no lease has it, as for any ID the store does not know
        with self.store.read():
            return self.store.vms.all(lease_id=lease_id, host=host)

    def show(self, key: str) -> tuple[VMRecord, list[EventRecord]]:
        with self.store.read():
            vm = self.store.vms.get(key)
            return vm, self.store.events.about([f"vm {vm.name}"])

    def export(self, key: str, fmt: str) -> str:
        """VM `key` as its host's driver defines it ("xml") or as a Xen xl.cfg ("xl")."""
        from cloudctl.app.export import export_vm

        return export_vm(self.app, key, fmt)

    def migrate(self, key: str, to: str, live: bool) -> dict[str, Any]:
        """Move a running VM to host `to`: live (the guest keeps running) or cold (saved to
        a memory image, restored there). The schedule and the hypervisors change together:
        the store's transaction is held across the move and rolled back if it fails. The
        intent is recorded first and no tick runs meanwhile, so a move killed half-way is
        finished or undone by the next tick (`finish_interrupted_moves`)."""
        from cloudctl.drivers.registry import driver_class

        with self.store.read():
            vm = self.store.vms.get(key)
            source = self.store.hosts.get(vm.host) if vm.host else None
            dest = self.store.hosts.get(to)
        if source is None or vm.state != VMStatus.RUNNING or vm.want != VMStatus.RUNNING:
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
        if self.app.pool.storage(source).location != self.app.pool.storage(dest).location:
            # Its disk would stay behind; the scheduler's cold migration of a suspended lease
            # is what moves disks and memory images between hosts.
            raise InvalidInput(f"cannot migrate vm {vm.name}: {source.name} and {to} do not "
                               "share storage")
        how = "live" if live else "cold"
        started = time.monotonic()
        with self.store.lock.hold(blocking=True):
            with self.store.write():
                self.store.moves.record(vm.name, {"from": source.name, "to": to, "live": live})
            try:
                with self.app.session() as s:
                    scheduler = s.need_scheduler()
                    refused = scheduler.relocate(vm.lease_id, vm.node, s.names.index(to), s.now)
                    if refused:
                        raise Unsatisfiable(f"vm {vm.name} cannot move to {to}: {refused}")
                    self._move_domain(vm.name, source, dest, live)
                    vm.host, vm.old_host, vm.updated_at = to, None, s.now
                    self.store.vms.save(vm)
                    self.store.moves.forget(vm.name)
                    s.events.append(EventRecord(s.now, f"vm {vm.name}", "running", "running",
                                                f"migrated ({how}) from {source.name} to {to}"))
            except CloudctlError as error:
                with self.store.write():
                    self.store.moves.forget(vm.name)  # it stayed where it was
                    if not isinstance(error, Unsatisfiable):
                        self.store.events.add([EventRecord(
                            self.clock(), f"vm {vm.name}", None, None,
                            f"{how} migration to {to} failed, still on {source.name}: "
                            f"{error}")])
                raise
        return {"vm": vm.name, "lease": vm.lease_id, "from": source.name, "to": to,
                "live": live, "seconds": round(time.monotonic() - started, 3)}

    def _move_domain(self, name: str, source: HostRecord, dest: HostRecord,
                     live: bool) -> None:
        src, dst = self.app.pool.get(source), self.app.pool.get(dest)
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

    def finish_interrupted_moves(self) -> None:
        """`vm migrate`s killed half-way (their intent is still recorded): where the domain
        runs now decides. On the destination, the move is completed in the schedule (or,
        with no room left there, undone); on the source, or saved to the move's memory
        image, it stays on (or is restored to) the source. Reached by ticks only, which
        never run during a `vm migrate`."""
        with self.store.read():
            intents = self.store.moves.intents()
        for name, intent in intents.items():
            try:
                outcome = self._finish_move(name, intent)
            except CloudctlError as error:  # a host that does not answer: the next tick
                outcome = f"interrupted migration not settled yet: {error}"
                with self.store.write():
                    self.store.events.add([EventRecord(self.clock(), f"vm {name}", None,
                                                       None, outcome)])
                continue
            with self.store.write():
                self.store.moves.forget(name)
                self.store.events.add([EventRecord(self.clock(), f"vm {name}", None, None,
                                                   outcome)])

    def _finish_move(self, name: str, intent: dict[str, Any]) -> str:
        from cloudctl.drivers.base import VMState

        with self.store.read():
            vm = self.store.vms.get(name)
            hosts = {h.name: h for h in self.store.hosts.all()}
        source, dest = hosts.get(intent["from"]), hosts.get(intent["to"])
        live, how = bool(intent.get("live")), "live" if intent.get("live") else "cold"
        if source is None or dest is None or vm.host != source.name:
            return f"interrupted {how} migration: nothing left to settle"
        src, dst = self.app.pool.get(source), self.app.pool.get(dest)
        here, there = src.state(name), dst.state(name)
        image = self._move_image(name)
        active = (VMState.RUNNING, VMState.PAUSED)
        try:
            if there is VMState.RUNNING and here is not VMState.RUNNING:
                src.destroy(name)  # what is left here: a definition, or a paused copy
                with self.app.session() as s:
                    refused = s.need_scheduler().relocate(vm.lease_id, vm.node,
                                                         s.names.index(dest.name), s.now)
                    if not refused:
                        vm.host, vm.updated_at = dest.name, s.now
                        self.store.vms.save(vm)
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
