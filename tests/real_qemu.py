"""Real libvirt + QEMU for the tests: the system libvirtd, two session libvirtds to live-migrate
between, and the tiny guest that counts on its serial console.

Everything is set up by the repo's own scripts (scripts/real-libvirt.sh, scripts/build-guest.sh),
so a fresh machine needs nothing by hand: plain functions, cached per process (the contract
suite's DriverCase uses them), and pytest fixtures over them at the end of this module, a plugin
that tests/conftest.py loads, so every test can ask for them:

    system_libvirt    the URI of the machine's libvirtd, started if need be ("qemu:///system")
    tiny_guest        real_qemu.TinyGuest: .kernel .initrd .disk .cmdline .boot_disk (paths,
                      and the kernel command line), and .spec(work_dir, name, lease_id,
                      from_disk=False) -> a VMSpec with its own overlay disk and serial log
                      (work_dir/NAME.log); from_disk boots from an overlay of boot_disk alone
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

import functools
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cloudctl.drivers.base import HypervisorDriver, VMSpec
from cloudctl.drivers.registry import open_driver

REPO = Path(__file__).resolve().parents[1]
GUEST_DIR = Path(os.environ.get("CLOUDCTL_TEST_GUEST_DIR", "/var/cache/cloudctl-test/guest"))
# Not under /tmp: pytest's tmp dirs are private to root, and the session libvirtds run their
# QEMUs as unprivileged users who must read and write a migrating VM's disk and serial log.
SHARED_ROOT = Path("/var/lib/cloudctl-test/shared")
SYSTEM_URI = "qemu:///system"
# Both session libvirtds live on this machine: the migration stream goes over loopback.
MIGRATE_URI = "tcp://127.0.0.1"
GUEST_MEMORY_MIB = 128
# Whole lines only: the serial port writes byte by byte, so a read can end mid-line.
TICK = re.compile(rb"^cloudctl-guest tick (\d+)\r?\n", re.MULTILINE)


class SetupFailed(RuntimeError):
    """A setup script failed; the message carries the end of its output."""


def unavailable() -> str | None:
    """Why real QEMU cannot work on this machine at all, else None. Only what setup cannot fix:
    a script failing on a machine where it could work is an error, not a skip."""
    if os.geteuid() != 0:
        return "needs root: scripts/real-libvirt.sh installs packages and starts libvirtd"
    if not shutil.which("libvirtd") and not shutil.which("apt-get"):
        return "no libvirtd and no apt-get to install it (not a Debian machine)"
    return None


def _run(*argv: str, timeout: float = 600) -> str:
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise SetupFailed(f"{' '.join(argv)} exited {done.returncode}: {' | '.join(tail)}")
    return done.stdout


@functools.cache
def ensure_system_libvirt() -> str:
    """Start (if need be) virtlogd and the system libvirtd; its URI."""
    _run("bash", "scripts/real-libvirt.sh", "start")
    return SYSTEM_URI


def start_session_libvirts() -> tuple[str, str]:
    """Start (if need be) the two session libvirtds; their URIs."""
    uris = _run("bash", "scripts/real-libvirt.sh", "session-start").split()
    if len(uris) != 2:
        raise SetupFailed(f"session-start printed {uris!r}, not two URIs")
    return uris[0], uris[1]


def session_libvirts_running() -> bool:
    users = _run("bash", "scripts/real-libvirt.sh", "session-users").split()
    return all(_pid_alive(Path(f"/run/cloudctl-test/{user}/libvirtd.pid")) for user in users)


def stop_session_libvirts() -> None:
    _run("bash", "scripts/real-libvirt.sh", "session-stop")


def _pid_alive(pid_file: Path) -> bool:
    """Whether the libvirtd a pid file names still runs. Not by signalling the PID: the daemon
    is not ours, and after it exits its PID may belong to any other process."""
    try:
        pid = int(pid_file.read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except (OSError, ValueError):
        return False
    return Path(command.decode(errors="replace")).name == "libvirtd"


@dataclass(frozen=True)
class TinyGuest:
    """The tiny guest's files; `spec` makes one VM of it with its own disk and serial log."""

    kernel: str
    initrd: str
    disk: str  # empty; each VM gets a qcow2 overlay on it
    cmdline: str
    boot_disk: str  # the same guest on a disk that boots by itself (syslinux)

    def spec(self, work: Path, name: str, lease_id: int, node: int = 0,
             memory_mib: int = GUEST_MEMORY_MIB, from_disk: bool = False) -> VMSpec:
        """A VM `name` whose overlay disk and serial log (`work/NAME.log`) are in `work`. It
        boots the kernel directly, or with `from_disk` from an overlay of `boot_disk` alone,
        as a VM of a cloudctl image does."""
        work.mkdir(parents=True, exist_ok=True)
        overlay = work / f"{name}.qcow2"
        if not overlay.exists():
            _run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                 self.boot_disk if from_disk else self.disk, str(overlay))
        log = work / f"{name}.log"
        log.touch()
        # Readable and writable by whichever daemon's user runs the VM (see SHARED_ROOT).
        os.chmod(overlay, 0o666)
        os.chmod(log, 0o666)
        if from_disk:
            return VMSpec(name=name, cpus=1, memory_mib=memory_mib, lease_id=lease_id,
                          node=node, disk_path=str(overlay), serial_log=str(log))
        return VMSpec(name=name, cpus=1, memory_mib=memory_mib, lease_id=lease_id, node=node,
                      disk_path=str(overlay), serial_log=str(log), kernel=self.kernel,
                      initrd=self.initrd, cmdline=self.cmdline)


@functools.cache
def build_tiny_guest() -> TinyGuest:
    """Build the guest once (cached in GUEST_DIR across runs)."""
    _run("bash", "scripts/build-guest.sh", str(GUEST_DIR))
    return TinyGuest(kernel=str(GUEST_DIR / "vmlinuz"), initrd=str(GUEST_DIR / "initrd.gz"),
                     disk=str(GUEST_DIR / "disk.qcow2"),
                     cmdline=(GUEST_DIR / "cmdline").read_text().strip(),
                     boot_disk=str(GUEST_DIR / "boot.qcow2"))


def make_shared_dir() -> Path:
    """A fresh directory every daemon's user can read and write; the caller removes it.
    Not sticky: protected_regular would stop one user from opening another's log there."""
    SHARED_ROOT.mkdir(parents=True, exist_ok=True)
    for parent in (SHARED_ROOT, SHARED_ROOT.parent):
        os.chmod(parent, 0o755)
    path = Path(tempfile.mkdtemp(prefix="vm-", dir=SHARED_ROOT))
    os.chmod(path, 0o777)
    return path


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def unique_lease_id() -> int:
    """A lease number no other test process on this machine uses now: VM names on a shared
    daemon must not collide."""
    return 900_000_000 + (os.getpid() % 100_000) * 1000 + next(_counter)


_counter = iter(range(1000))


# -- reading the guest's serial console ------------------------------------------------------

def ticks(log: Path | str) -> list[int]:
    """The counter values the guest has written to its serial log, in order."""
    return [int(n) for n in TICK.findall(Path(log).read_bytes())]


def wait_for_tick(log: Path | str, at_least: int, timeout_s: float = 15.0) -> int:
    """Wait until the guest has counted to `at_least`; the last value seen."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = ticks(log)
        last = seen[-1] if seen else -1
        if last >= at_least:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"guest counted only to {last} in {timeout_s} s, "
                                 f"not {at_least} ({log})")
        time.sleep(0.1)


# -- pytest fixtures ---------------------------------------------------------------------------


def _skip_unless_possible() -> None:
    reason = unavailable()
    if reason:
        pytest.skip(f"real QEMU: {reason}")


@pytest.fixture(scope="session")
def system_libvirt() -> str:
    _skip_unless_possible()
    return ensure_system_libvirt()


@pytest.fixture(scope="session")
def tiny_guest() -> TinyGuest:
    _skip_unless_possible()
    return build_tiny_guest()


@pytest.fixture(scope="session")
def session_libvirts() -> Iterator[tuple[str, str]]:
    _skip_unless_possible()
    started_here = not session_libvirts_running()
    uris = start_session_libvirts()
    yield uris
    if started_here:  # one started by hand (or another run) is left as it was
        stop_session_libvirts()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    _skip_unless_possible()
    path = make_shared_dir()
    yield path
    remove_tree(path)


@pytest.fixture
def vm_lease() -> int:
    return unique_lease_id()


@pytest.fixture
def qemu_host(system_libvirt: str, vm_lease: int) -> Iterator[HypervisorDriver]:
    driver = open_driver("qemu", system_libvirt, {"domain_type": "qemu"})
    yield driver
    for name in driver.list_vms(prefix=f"cloudctl-{vm_lease}-"):
        driver.destroy(name)
    driver.close()
