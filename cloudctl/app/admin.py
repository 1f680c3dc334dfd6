"""The store itself: `init`, `db status`, `db migrate`."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from cloudctl.app.context import Room
from cloudctl.config import DEFAULT_CONFIG
from cloudctl.errors import Conflict, InvalidInput
from cloudctl.store.db import open_store

VM_PREFIX = re.compile(r"(?=.{8,40}$)cloudctl(-[a-z0-9]+)*", re.ASCII)


class Admin(Room):
    def init(self, vm_prefix: str | None = None) -> dict[str, Any]:
        """Create the store (and a commented config if there is none); safe to repeat.
        `vm_prefix` names the store's VMs (PREFIX-LEASE-NODE) on the hypervisors."""
        if vm_prefix is not None and not VM_PREFIX.fullmatch(vm_prefix):
            raise InvalidInput(f"--vm-prefix {vm_prefix!r}: expected cloudctl or cloudctl-WORD "
                               "(lowercase letters and digits, at most 40 characters)")
        created = not self.settings.db.exists()
        store = self.app.open_store(create=True, check_schema=False)
        applied = store.migrate(self.clock())
        with store.write():
            prefix = store.state.vm_prefix() or "cloudctl"
            if vm_prefix is not None and vm_prefix != prefix:
                if store.vms.all():
                    raise Conflict(f"the store's VMs are named {prefix}-LEASE-NODE already; "
                                   "the prefix cannot change now")
                store.state.set_vm_prefix(prefix := vm_prefix)
        self.settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = self.settings.config_path
        wrote_config = False
        if not config.exists():
            config.parent.mkdir(parents=True, exist_ok=True)
            _write_private(config, DEFAULT_CONFIG.format(db=self.settings.db,
                                                         state_dir=self.settings.state_dir))
            wrote_config = True
        return {"db": str(self.settings.db), "created": created, "migrations_applied": applied,
                "config": str(config), "config_created": wrote_config,
                "state_dir": str(self.settings.state_dir), "vm_prefix": prefix}

    def db_status(self) -> dict[str, Any]:
        store = open_store(self.settings.db, check_schema=False)
        try:
            applied = store.applied_migrations()
            pending = store.pending_migrations()
            counts = store.counts() if not pending else {}
            mode = store.journal_mode()
        finally:
            store.close()
        return {"db": str(self.settings.db), "size_bytes": self.settings.db.stat().st_size,
                "journal_mode": mode,
                "applied": [{"name": n, "applied_at": at} for n, at in applied],
                "pending": pending, "counts": counts}

    def db_migrate(self) -> list[str]:
        store = open_store(self.settings.db, check_schema=False)
        try:
            return store.migrate(self.clock())
        finally:
            store.close()


def _write_private(path: Path, text: str) -> None:
    """Create `path` 0600 whatever the umask (it may hold secrets later); an existing file is
    left alone."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # made meanwhile by a concurrent init: theirs is as good
    try:
        os.fchmod(fd, 0o600)  # the umask may have taken bits from the mode asked for
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            fd = -1
            stream.write(text)
    finally:
        if fd >= 0:
            os.close(fd)
