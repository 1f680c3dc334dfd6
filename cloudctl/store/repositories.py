"""What the layers above the store may ask of it: one small repository per kind of thing,
reached as an attribute of the store (`store.leases.live()`, `store.vms.get(name)`), and the
store's own transactions. Only an implementation (today `cloudctl.store.sqlite`) knows how
they are kept; a second one (PostgreSQL) implements these protocols and nothing above changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from cloudctl.store.records import (
    CloudRecord,
    EventRecord,
    HostRecord,
    ImageRecord,
    InstanceRecord,
    LeaseRecord,
    TransferRecord,
    VMRecord,
)


class Hosts(Protocol):
    def add(self, host: HostRecord) -> HostRecord: ...
    def all(self) -> list[HostRecord]: ...
    def get(self, name: str) -> HostRecord: ...
    def update(self, host: HostRecord) -> None:
        """Write the host's enabled flag and status."""
    def remove(self, name: str) -> None: ...


class Images(Protocol):
    def add(self, image: ImageRecord) -> ImageRecord: ...
    def all(self) -> list[ImageRecord]: ...
    def get(self, name: str) -> ImageRecord: ...
    def remove(self, name: str) -> None: ...


class Transfers(Protocol):
    """Image transfers to hosts, as carried out (append-only)."""

    def add(self, transfer: TransferRecord) -> None: ...
    def all(self, image: str | None = None) -> list[TransferRecord]: ...


class Leases(Protocol):
    def next_id(self) -> int: ...
    def save(self, lease: LeaseRecord, final: bool, *, list_text: str) -> None:
        """Insert or update a lease and its current reservation; `list_text` is the lease as
        `lease list --json` prints it (`cloudctl.views.lease_list_text`)."""
    def get(self, lease_id: int) -> LeaseRecord: ...
    def all(self, *, state: str | None = None, type: str | None = None,
            live: bool = False) -> list[LeaseRecord]:
        """Leases without their reservations, by id."""
    def list_text(self, *, state: str | None = None, type: str | None = None) -> list[str]:
        """Each lease's kept `list_text`, by id."""
    def live(self) -> list[LeaseRecord]:
        """Every lease not in a final state, with its reservation: what the scheduler needs."""
    def around(self, start: int, end: int, now: int) -> tuple[list[LeaseRecord], int | None]:
        """The live leases a decision about [start, end) taken at `now` can touch, and the
        earliest start among the others."""
    def live_ids(self) -> set[int]: ...
    def using_image(self, image: str) -> list[int]:
        """The ids of the live leases that boot `image`."""


class VMs(Protocol):
    def all(self, *, lease_id: int | None = None, host: str | None = None,
            live: bool = False) -> list[VMRecord]: ...
    def get(self, key: str) -> VMRecord:
        """A VM by id (all digits) or name."""
    def save(self, vm: VMRecord) -> None:
        """Insert (setting `vm.id`) or update every column."""
    def record_result(self, vm: VMRecord) -> None:
        """What enactment achieved; leaves `want` alone (the schedule may have moved on)."""


class Events(Protocol):
    """The append-only story of every entity ("lease 3", "vm cloudctl-3-0", "host node-1")."""

    def add(self, events: Iterable[EventRecord]) -> None: ...
    def about(self, entities: Iterable[str] | None = None,
              limit: int | None = None) -> list[EventRecord]:
        """The events of `entities` (all: None) in order; the last `limit` of them."""


class Clouds(Protocol):
    def add(self, cloud: CloudRecord) -> CloudRecord: ...
    def all(self) -> list[CloudRecord]: ...
    def get(self, name: str) -> CloudRecord: ...
    def remove(self, name: str) -> None: ...


class Instances(Protocol):
    """Public-cloud instances launched for VMs."""

    def save(self, inst: InstanceRecord) -> InstanceRecord: ...
    def all(self, *, cloud: str | None = None, vm: str | None = None,
            lease_id: int | None = None, live: bool = False,
            since: int | None = None) -> list[InstanceRecord]: ...


class State(Protocol):
    """The store's own settings and the scheduler's bookkeeping between commands."""

    def clock(self) -> int | None:
        """When the schedule last ran (it never goes back)."""
    def set_clock(self, now: int) -> None: ...
    def next_event(self) -> int | None:
        """When the schedule next wants a tick (None: nothing planned)."""
    def set_next_event(self, at: int | None) -> None: ...
    def vm_prefix(self) -> str | None:
        """What `init --vm-prefix` named this store's VMs (None: never set)."""
    def set_vm_prefix(self, prefix: str) -> None: ...
    def uid(self) -> str | None:
        """This store's identity in cloud instance tags (None: not made yet)."""
    def set_uid(self, uid: str) -> None: ...


class Moves(Protocol):
    """`vm migrate` intents, recorded before a VM moves and forgotten once it has."""

    def record(self, vm: str, intent: dict[str, Any]) -> None: ...
    def intents(self) -> dict[str, dict[str, Any]]:
        """Every recorded intent by VM name, in name order."""
    def forget(self, vm: str) -> None: ...


class Lock(Protocol):
    def hold(self, blocking: bool) -> AbstractContextManager[str]:
        """One tick (or VM move) at a time across every process using this store: yields ''
        when this process holds the lock, else who holds it (without `blocking`)."""


class Store(Protocol):
    """One connection to a state store: its repositories and its transactions."""

    hosts: Hosts
    images: Images
    transfers: Transfers
    leases: Leases
    vms: VMs
    events: Events
    clouds: Clouds
    instances: Instances
    state: State
    moves: Moves
    lock: Lock

    def write(self) -> AbstractContextManager[Store]:
        """A write transaction holding the store's lock from its first statement (nested:
        part of the outer one)."""
    def read(self) -> AbstractContextManager[Store]:
        """A consistent snapshot for several reads."""
    def close(self) -> None: ...
    def applied_migrations(self) -> list[tuple[str, int]]: ...
    def pending_migrations(self) -> list[str]: ...
    def migrate(self, now: int) -> list[str]:
        """Apply every pending migration, each in one transaction with its record."""
    def journal_mode(self) -> str: ...
    def counts(self) -> dict[str, int]:
        """Rows per table (hosts, images, leases, vms, events), for `db status`."""
