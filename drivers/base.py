"""What every hypervisor driver offers the enactment layer: a small protocol and plain values.

No driver library is imported here, so the CLI and the scheduler can use these types without
paying for (or needing) libvirt.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol, runtime_checkable

from cloudctl.errors import InvalidInput

# Optional abilities a driver may declare; the scheduler checks them before it plans.
CAPABILITIES = frozenset({"suspend", "cold-migration", "live-migration"})
DISK_FORMATS = ("qcow2", "raw")


class VMState(str, Enum):
    """Our VM states; each driver maps its native states into these through one table."""

    RUNNING = "running"
    PAUSED = "paused"
    SHUTOFF = "shutoff"
    CRASHED = "crashed"
    MISSING = "missing"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class VMSpec:
    """One virtual machine as the enactment layer asks for it (lease `lease_id`, node `node`)."""

    name: str
    cpus: int
    memory_mib: int
    lease_id: int
    node: int
    disk_path: str | None = None
    disk_format: str = "qcow2"
    serial_log: str | None = None
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    nic: bool = False

    def __post_init__(self) -> None:
        # Caught here rather than as a libvirt error deep inside a tick.
        if not self.name or any(c in self.name for c in "/<>&'\" \t\n"):
            raise InvalidInput(f"invalid VM name {self.name!r}")
        if self.cpus < 1 or self.memory_mib < 1:
            raise InvalidInput(f"VM {self.name}: cpus and memory_mib must be positive")
        if self.disk_format not in DISK_FORMATS:
            raise InvalidInput(f"VM {self.name}: disk format {self.disk_format!r} is not one of "
                               f"{', '.join(DISK_FORMATS)}")
        if (self.initrd or self.cmdline) and not self.kernel:
            raise InvalidInput(f"VM {self.name}: initrd and cmdline need a kernel")


@dataclass(frozen=True)
class HostInfo:
    cpus: int
    memory_mib: int
    free_memory_mib: int
    running_vms: int  # active domains (running or paused): they hold memory


@dataclass(frozen=True)
class VMStats:
    state: VMState
    cpu_time_ns: int
    memory_mib: int


@runtime_checkable
class HypervisorDriver(Protocol):
    """A hypervisor host. Every call is idempotent where the docstring says so, because the
    enactment layer retries after crashes and cannot know how far a previous attempt got.

    Optional methods, present only on drivers that declare their capability (see the
    protocols below): `migrate` with "live-migration" (LiveMigratingDriver)."""

    name: str
    capabilities: frozenset[str]
    uri: str

    def host_info(self) -> HostInfo: ...

    def create(self, spec: VMSpec) -> None:
        """Define and start; running already -> no-op; defined but shut off -> start."""

    def suspend(self, name: str, path: str) -> None:
        """Save memory to `path`; afterwards the domain is not active. Not active and `path`
        exists -> no-op."""

    def resume(self, name: str, path: str, disk_path: str | None = None) -> None:
        """Restore from `path` (left in place for the caller). Running already -> no-op.
        `disk_path`: where the VM's disk is now, when a cold migration moved it."""

    def shutdown(self, name: str, grace_s: float = 30.0) -> None:
        """ACPI shutdown, destroy after `grace_s`, undefine. Missing -> no-op."""

    def destroy(self, name: str) -> None:
        """Hard stop and undefine. Missing -> no-op."""

    def state(self, name: str) -> VMState:
        """MISSING when there is no such domain."""

    def list_vms(self, prefix: str = "cloudctl-") -> dict[str, VMState]: ...

    def stats(self, name: str) -> VMStats:
        """State MISSING with zero counters when there is no such domain."""

    def close(self) -> None: ...


@runtime_checkable
class LiveMigratingDriver(HypervisorDriver, Protocol):
    """A driver that declares "live-migration". Kept out of HypervisorDriver itself so that a
    driver without the ability need not stub the method."""

    def migrate(self, name: str, dest_uri: str, live: bool = True) -> None:
        """Move the active VM `name` to the host at `dest_uri` (same driver kind): defined
        there, gone from here; `live` keeps it running during the copy. Idempotent: active on
        the destination already -> no-op."""
