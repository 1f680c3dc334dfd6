"""The hypervisor drivers the contract suite runs over, one `DriverCase` each.

Adding a driver (real QEMU, say) is one more entry in DRIVER_CASES: how to open a host on it,
what a VM spec for it looks like, and why to skip it when it cannot run here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import real_qemu
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
    # The host's size, or None for a real host (whatever the machine has).
    host_cpus: int | None
    host_memory_mib: int | None
    # Free memory drops by exactly a VM's memory (fake accounting) rather than roughly.
    exact_free_memory: bool = True
    # None when the driver can run here, else the reason to skip. It may set things up first.
    unavailable: Callable[[], str | None] = lambda: None
    # The test's VM is cloudctl-<lease_id>-0.
    lease_id: int = 12
    # Other processes may run VMs on the same host (a machine-wide daemon): tests look only
    # at their own VMs and count the host's relative to what was there before.
    shared_host: bool = False
    # Two hosts opened on it are two hypervisors (False: both reach one daemon).
    distinct_hosts: bool = True
    # It needs a real daemon: its cases are marked `real` (out of the fast lane).
    real: bool = False


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


def _qemu_unavailable() -> str | None:
    reason = real_qemu.unavailable()
    if reason is None:
        # Set up here rather than skipped: a machine of the project's kind must run these.
        real_qemu.ensure_system_libvirt()
        real_qemu.build_tiny_guest()
    return reason


def _open_qemu_host(state_dir: Path, host_name: str) -> HypervisorDriver:
    # Every host is the one system libvirtd (tests/real migrates between two daemons).
    return open_driver("qemu", real_qemu.ensure_system_libvirt(), {"domain_type": "qemu"})


def _qemu_spec(work: Path, name: str) -> VMSpec:
    lease, node = (int(part) for part in name.rsplit("-", 2)[-2:])
    return real_qemu.build_tiny_guest().spec(work, name, lease, node)


DRIVER_CASES = [
    DriverCase("test", _test_host("test"), _test_spec, HOST_CPUS, HOST_MEMORY_MIB),
    # Xen's domain XML (PV and HVM) on libvirt's test driver: Xen cannot run here.
    DriverCase("xen-test-pv", _test_host("xen-test", {"guest": "pv"}), _test_spec, HOST_CPUS,
               HOST_MEMORY_MIB),
    DriverCase("xen-test-hvm", _test_host("xen-test", {"guest": "hvm"}), _test_spec, HOST_CPUS,
               HOST_MEMORY_MIB),
    DriverCase("qemu", _open_qemu_host, _qemu_spec, None, None, exact_free_memory=False,
               unavailable=_qemu_unavailable, lease_id=real_qemu.unique_lease_id(),
               shared_host=True, distinct_hosts=False, real=True),
]
