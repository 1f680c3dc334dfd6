"""Plain records the store reads and writes; nothing above the store sees a SQL row."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class HostRecord:
    name: str
    cpus: int
    memory_mib: int
    disk_mib: int
    driver: str
    uri: str
    enabled: bool = True
    status: str = "ok"  # ok | error
    status_reason: str = ""
    added_at: int = 0
    id: int = 0
    # Per-host settings: ssh (where images are sent), image_dir, cache_limit_mib, ...
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImageRecord:
    name: str
    path: str
    format: str
    size_bytes: int
    sha256: str
    added_at: int = 0
    id: int = 0
    # Direct kernel boot: kernel, initrd (paths in the repository) and cmdline; empty = disk
    boot: dict[str, str] = field(default_factory=dict)
    source: str = ""  # the file it was added from

    @property
    def size_mib(self) -> int:
        return max(1, -(-self.size_bytes // (1 << 20)))


@dataclass
class ReservationRecord:
    """A lease's current reservation (the scheduler's Run), hosts by name."""

    hosts: list[str]
    start: int
    migrated: int
    run_start: int
    run_end: int
    end: int
    post: str
    step: int
    channel: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class LeaseRecord:
    id: int
    name: str | None
    type: str
    state: str
    submitted: int
    start_req: int | None
    duration: int
    nodes: int
    cpus: int
    memory_mib: int
    disk_mib: int
    image: str | None
    image_size_mib: int
    preemptible: bool
    remaining: int
    first_start: int | None = None
    done_at: int | None = None
    preempted: int = 0
    reason: str = ""
    # runs, suspensions, resumptions, migrations, transfers, last_hosts: the lease's story
    history: dict[str, Any] = field(default_factory=dict)
    # What people and scripts see: the planned or actual window and hosts.
    start: int | None = None
    end: int | None = None
    hosts: list[str] = field(default_factory=list)
    reservation: ReservationRecord | None = None


@dataclass
class VMRecord:
    """One virtual node of a lease. `state` is what the hypervisor last reported or what
    enactment last achieved; `want` is what the schedule asks for."""

    lease_id: int
    node: int
    name: str
    host: str | None
    state: str  # pending | running | suspended | gone | missing | error
    want: str  # running | suspended | gone
    save_path: str | None = None
    error: str = ""
    attempts: int = 0
    retry_at: int | None = None
    updated_at: int = 0
    cpus: int = 0
    memory_mib: int = 0
    image: str | None = None
    # Where a domain of this VM may still exist after the schedule moved it elsewhere: it is
    # destroyed there before the VM is created or resumed on `host`.
    old_host: str | None = None
    disk_path: str | None = None  # this VM's own disk (overlay or copy) on its host
    cloud: str | None = None  # the public cloud it was burst to (then `host` is None)
    id: int = 0


@dataclass
class EventRecord:
    time: int
    entity: str  # "lease 12", "vm cloudctl-12-0", "host node-1"
    from_state: str | None
    to_state: str | None
    reason: str
    id: int = 0


@dataclass
class TransferRecord:
    """An image sent to (or found already on) a host: planned against measured time."""

    time: int
    image: str
    host: str
    bytes: int
    planned_s: float
    actual_s: float
    reused: bool
    id: int = 0


@dataclass
class CloudRecord:
    """A public cloud leases may burst to. Credentials are never stored: they come from the
    standard AWS chain (environment, shared files, `profile`)."""

    name: str
    type: str  # ec2
    region: str
    endpoint: str | None = None
    profile: str | None = None
    budget_per_month: float | None = None  # USD
    # [{name, vcpus, memory_mib, price_per_hour}]: the instance types it may launch
    catalogue: list[dict[str, Any]] = field(default_factory=list)
    # ami, images (local image -> AMI), max_wait, max_preemptions, boot_time, burst_im,
    # max_instances, policy
    options: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    added_at: int = 0
    id: int = 0


@dataclass
class InstanceRecord:
    """One instance launched (or being launched) for a burst VM: written before the launch
    with its client token, so a crash in between leaves a row the next tick finds it by."""

    cloud: str
    lease_id: int
    vm: str
    client_token: str
    instance_id: str | None
    instance_type: str
    price_per_hour: float
    state: str  # launching | pending | running | stopped | terminated | failed
    launched_at: int | None = None
    ended_at: int | None = None
    private_ip: str | None = None
    public_ip: str | None = None
    error: str = ""
    updated_at: int = 0
    id: int = 0
