"""The lease model: requests and capacities (lease types and the state machine are the
domain's, `cloudctl/domain.py`).

Times are integer seconds on whatever clock the caller passes in (trace seconds in
simulation, Unix seconds in real operation); the scheduler never reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The vocabulary is the domain's; the scheduler's modules import it from here.
from cloudctl.domain import (  # noqa: F401
    FINAL_STATES,
    TRANSITIONS,
    LeaseState,
    LeaseType,
    check_transition,
)


@dataclass(frozen=True, slots=True)
class Capacity:
    """Per-node resources: whole CPUs, memory and disk in MiB."""

    cpus: int
    memory_mib: int
    disk_mib: int = 0
    # Capacities key the slot table's caches, looked up several times per lease in a queue
    # walk: the hash is computed once.
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.cpus, self.memory_mib, self.disk_mib)))

    def __hash__(self) -> int:
        return self._hash

    def fits_in(self, other: Capacity) -> bool:
        return (
            self.cpus <= other.cpus
            and self.memory_mib <= other.memory_mib
            and self.disk_mib <= other.disk_mib
        )


@dataclass(frozen=True, slots=True)
class HostSpec:
    """A physical host as the scheduler sees it."""

    name: str
    capacity: Capacity
    enabled: bool = True


class LeaseRequest:
    """What a user or a trace asks for; the scheduler turns it into a Lease.

    A plain class rather than a dataclass: compiled, its constructor is native code (a
    dataclass's generated __init__ stays interpreted), and a trace makes one per job."""

    __slots__ = ("id", "type", "submit", "nodes", "capacity", "duration", "start",
                 "preemptible", "image", "image_size_mib", "real_duration", "name", "source",
                 "_extra")

    def __init__(self, id: int, type: LeaseType, submit: int, nodes: int, capacity: Capacity,
                 duration: int, start: int | None = None, preemptible: bool = True,
                 image: str | None = None, image_size_mib: int = 0,
                 real_duration: int | None = None, name: str | None = None, source: str = "",
                 extra: dict[str, object] | None = None) -> None:
        self.id = id
        self.type = type
        self.submit = submit
        self.nodes = nodes
        self.capacity = capacity
        self.duration = duration
        self.start = start  # exact start of an AR
        self.preemptible = preemptible
        self.image = image
        self.image_size_mib = image_size_mib
        self.real_duration = real_duration  # simulation only: the lease ends this early
        self.name = name
        self.source = source  # "file:line" where the request came from, for error messages
        # Made when first asked for: a trace's requests seldom carry any.
        self._extra: dict[str, object] | None = extra if extra else None

    @property
    def extra(self) -> dict[str, object]:
        if self._extra is None:
            self._extra = {}
        return self._extra

    @extra.setter
    def extra(self, value: dict[str, object]) -> None:
        self._extra = value

    def renumbered(self, id: int) -> LeaseRequest:
        """A copy under another id (its `extra` copied too)."""
        return LeaseRequest(id, self.type, self.submit, self.nodes, self.capacity,
                            self.duration, self.start, self.preemptible, self.image,
                            self.image_size_mib, self.real_duration, self.name, self.source,
                            dict(self.extra))

    def _fields(self) -> tuple[object, ...]:
        return (self.id, self.type, self.submit, self.nodes, self.capacity, self.duration,
                self.start, self.preemptible, self.image, self.image_size_mib,
                self.real_duration, self.name, self.source, self._extra or {})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LeaseRequest):
            return NotImplemented
        return self._fields() == other._fields()

    def __repr__(self) -> str:
        return (f"LeaseRequest(id={self.id}, type={self.type.value}, submit={self.submit}, "
                f"nodes={self.nodes}, capacity={self.capacity}, duration={self.duration}, "
                f"start={self.start})")
