"""The hypervisor drivers the contract suite runs over, one `DriverCase` each.

Adding a driver (real QEMU, say) is one more entry in DRIVER_CASES: how to open a host on it,
what a VM spec for it looks like, and why to skip it when it cannot run here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cloudctl.drivers.base import HypervisorDriver, VMSpec
from cloudctl.drivers.registry import default_uri, open_driver

HOST_CPUS = 4
HOST_MEMORY_MIB = 8192


@dataclass(frozen=True)
class DriverCase:
    name: str
    # (state dir, host name) -> an open driver for a fresh, empty host
    open_host: Callable[[Path, str], HypervisorDriver]
    # (work dir, VM name) -> a VM this driver can run
    spec: Callable[[Path, str], VMSpec]
    host_cpus: int
    host_memory_mib: int
    # Free memory drops by exactly a VM's memory (fake accounting) rather than roughly.
    exact_free_memory: bool = True
    # None when the driver can run here, else the reason to skip.
    unavailable: Callable[[], str | None] = lambda: None


def _test_host(driver: str, options: Mapping[str, object] | None = None
               ) -> Callable[[Path, str], HypervisorDriver]:
    """Opens fresh hosts of a driver that keeps them in test:/// node files."""
    def open_host(state_dir: Path, host_name: str) -> HypervisorDriver:
        uri = default_uri(driver, host_name, HOST_CPUS, HOST_MEMORY_MIB, state_dir)
        return open_driver(driver, uri, options)

    return open_host


def _test_spec(work: Path, name: str) -> VMSpec:
    lease, node = (int(part) for part in name.rsplit("-", 2)[-2:])
    return VMSpec(name=name, cpus=1, memory_mib=256, lease_id=lease, node=node,
                  disk_path=str(work / f"{name}.qcow2"), serial_log=str(work / f"{name}.log"))


DRIVER_CASES = [
    DriverCase("test", _test_host("test"), _test_spec, HOST_CPUS, HOST_MEMORY_MIB),
    # Xen's domain XML (PV and HVM) on libvirt's test driver: Xen cannot run here.
    DriverCase("xen-test-pv", _test_host("xen-test", {"guest": "pv"}), _test_spec, HOST_CPUS,
               HOST_MEMORY_MIB),
    DriverCase("xen-test-hvm", _test_host("xen-test", {"guest": "hvm"}), _test_spec, HOST_CPUS,
               HOST_MEMORY_MIB),
]
