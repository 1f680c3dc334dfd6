"""What every room of one command shares: settings, the clock, the store, the open drivers,
and the rooms themselves (each built when first used, so a command imports only its own)."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from cloudctl.config import Settings
from cloudctl.errors import InvalidInput, NotFound
from cloudctl.limits import MAX_ID
from cloudctl.store.db import open_store

if TYPE_CHECKING:  # the scheduler and the drivers load only for commands that use them
    from cloudctl.app.admin import Admin
    from cloudctl.app.clouds import Clouds
    from cloudctl.app.hosts import Hosts
    from cloudctl.app.images import Images
    from cloudctl.app.leases import Leases
    from cloudctl.app.schedule import Schedule
    from cloudctl.app.tick import Ticks
    from cloudctl.app.vms import VMs
    from cloudctl.enact import DriverPool
    from cloudctl.store.repositories import Store

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def check_name(kind: str, name: str) -> str:
    if not NAME.fullmatch(name):
        raise InvalidInput(f"{kind} name {name!r}: use letters, digits, '.', '_' or '-' "
                           "(at most 63, starting with a letter or digit)")
    return name


def check_id(kind: str, value: int) -> int:
    """An ID the store can look up: none is outside SQLite's integers (nor below 1)."""
    if not 0 < value <= MAX_ID:
        raise NotFound(f"no {kind} {value}")
    return value


class App:
    """One command's cloud: opened lazily, closed once."""

    def __init__(self, settings: Settings, clock: Callable[[], int],
                 store: Store | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self._store = store
        self._pool: DriverPool | None = None

    @property
    def store(self) -> Store:
        return self._store if self._store is not None else self.open_store()

    def open_store(self, **options: Any) -> Store:
        """Open the store (`options`: e.g. create the file), kept as `store` from now on."""
        self._store = open_store(self.settings.db,
                                 lock_path=self.settings.state_dir / "tick.lock", **options)
        return self._store

    @property
    def pool(self) -> DriverPool:
        """The hypervisor drivers, opened when a command first needs one."""
        if self._pool is None:
            from cloudctl.enact import DriverPool

            self._pool = DriverPool(self.settings)
        return self._pool

    def session(self, **options: Any) -> Any:
        """A scheduling session on the store at the current time (see cloudctl.session)."""
        from cloudctl.session import session

        return session(self.store, self.settings.scheduler, self.clock(), **options)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._store is not None:
            self._store.close()

    # -- the rooms -------------------------------------------------------------------------

    @cached_property
    def admin(self) -> Admin:
        from cloudctl.app.admin import Admin

        return Admin(self)

    @cached_property
    def hosts(self) -> Hosts:
        from cloudctl.app.hosts import Hosts

        return Hosts(self)

    @cached_property
    def images(self) -> Images:
        from cloudctl.app.images import Images

        return Images(self)

    @cached_property
    def leases(self) -> Leases:
        from cloudctl.app.leases import Leases

        return Leases(self)

    @cached_property
    def vms(self) -> VMs:
        from cloudctl.app.vms import VMs

        return VMs(self)

    @cached_property
    def schedule(self) -> Schedule:
        from cloudctl.app.schedule import Schedule

        return Schedule(self)

    @cached_property
    def clouds(self) -> Clouds:
        from cloudctl.app.clouds import Clouds

        return Clouds(self)

    @cached_property
    def ticks(self) -> Ticks:
        from cloudctl.app.tick import Ticks

        return Ticks(self)


class Room:
    """A room works on its app's store, settings, clock and drivers."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.settings = app.settings
        self.clock = app.clock

    @property
    def store(self) -> Store:
        return self.app.store
