"""Fixtures for tests on real libvirt + QEMU (see tests/real_qemu.py for how they are set up).

    system_libvirt    the URI of the machine's libvirtd, started if need be ("qemu:///system")
    tiny_guest        real_qemu.TinyGuest: .kernel .initrd .disk .cmdline paths/strings, and
                      .spec(work_dir, name, lease_id) -> a VMSpec with its own overlay disk and
                      serial log (work_dir/NAME.log)
    session_libvirts  (uri_a, uri_b): two session libvirtds of two unprivileged users, to
                      live-migrate between; started once, stopped at the end of the session
    shared_dir        a fresh directory the session daemons' users can read and write (put a
                      migrating VM's disk and log there; pytest's tmp_path is root's only)
    vm_lease          a lease number unique on this machine now; VMs cloudctl-<it>-N
    qemu_host         a QemuDriver on system_libvirt; its cloudctl-<vm_lease>-* VMs are
                      destroyed afterwards

They skip only where real QEMU cannot work at all (not root, not Debian); a setup script that
fails on a machine where it could work is an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import real_qemu
from cloudctl.drivers.base import HypervisorDriver
from cloudctl.drivers.registry import open_driver


def _skip_unless_possible() -> None:
    reason = real_qemu.unavailable()
    if reason:
        pytest.skip(f"real QEMU: {reason}")


@pytest.fixture(scope="session")
def system_libvirt() -> str:
    _skip_unless_possible()
    return real_qemu.system_libvirt()


@pytest.fixture(scope="session")
def tiny_guest() -> real_qemu.TinyGuest:
    _skip_unless_possible()
    return real_qemu.tiny_guest()


@pytest.fixture(scope="session")
def session_libvirts() -> Iterator[tuple[str, str]]:
    _skip_unless_possible()
    started_here = not real_qemu.session_libvirts_running()
    uris = real_qemu.start_session_libvirts()
    yield uris
    if started_here:  # one started by hand (or another run) is left as it was
        real_qemu.stop_session_libvirts()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    _skip_unless_possible()
    path = real_qemu.shared_dir()
    yield path
    real_qemu.remove_tree(path)


@pytest.fixture
def vm_lease() -> int:
    return real_qemu.unique_lease_id()


@pytest.fixture
def qemu_host(system_libvirt: str, vm_lease: int) -> Iterator[HypervisorDriver]:
    driver = open_driver("qemu", system_libvirt, {"domain_type": "qemu"})
    yield driver
    for name in driver.list_vms(prefix=f"cloudctl-{vm_lease}-"):
        driver.destroy(name)
    driver.close()
