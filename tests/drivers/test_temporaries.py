"""A killed command leaves no files behind for long (issue 14, finding 14): its temporaries
(a partial VM disk, a node file's, a repository copy's) are private (0600) from their first
byte, and the next tick removes them; a VM's own go with its disk when its lease ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_harness import Cli
from cloudctl.drivers.storage import (
    STALE_REMOTE_TEMP_S,
    LocalStorage,
    make_disk,
    remove_dead_temporaries,
)
from sshd import SSHTestHost

MIB = 1 << 20

# A tick whose raw disk copy stops half-way (and says so), to be killed there.
COPY_STOPS_HALF_WAY = """
import shutil, sys, time
from cloudctl.drivers import storage

def copy_half(src, out, length=0):
    out.write(src.read(4 << 20))
    out.flush()
    print("halfway", flush=True)
    time.sleep(120)

storage.shutil.copyfileobj = copy_half
from cloudctl.cli.app import main
main(["tick"])
"""


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def raw_cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    cli = Cli(tmp_path, monkeypatch)
    cli("init")
    cli("host", "add", "node-1", "--cpus", 4, "--memory", 8192)
    raw = tmp_path / "base.raw"
    raw.write_bytes(os.urandom(12 * MIB))
    cli("image", "add", "base", "--path", raw, "--format", "raw")
    return cli


def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state.d"


def test_a_raw_copy_killed_half_way_is_removed_by_the_next_tick(raw_cloud: Cli,
                                                                 tmp_path: Path) -> None:
    cli = raw_cloud
    lease = cli.json("lease", "request", "--type", "be", "--duration", "1h", "--cpus", 2,
                     "--memory", 1024, "--image", "base")
    child = subprocess.Popen([sys.executable, "-c", COPY_STOPS_HALF_WAY],
                             env={**os.environ, **cli.env}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "halfway\n", child.stderr.read()  # type: ignore
        disks = state_dir(tmp_path) / "disks"
        partial = disks / f".cloudctl-{lease['id']}-0.raw.{child.pid}.tmp"
        assert partial.stat().st_size == 4 * MIB
        assert partial.stat().st_mode & 0o777 == 0o600
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL
    assert partial.exists()  # what the killed tick left
    cli("tick")
    assert not partial.exists()
    vm = cli.json("vm", "list", "--lease", lease["id"])[0]
    assert vm["state"] == "running"
    disk = Path(vm["disk_path"])
    assert disk.stat().st_size == 12 * MIB and disk.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in disks.iterdir()) == [disk.name]


def test_leftovers_of_killed_commands_are_removed_by_the_next_tick(raw_cloud: Cli,
                                                                    tmp_path: Path) -> None:
    cli = raw_cloud
    pid = _dead_pid()
    state = state_dir(tmp_path)
    (state / "disks").mkdir(exist_ok=True)
    (state / "saves").mkdir(exist_ok=True)
    left = [state / "disks" / f".cloudctl-7-0.qcow2.{pid}.tmp",      # make_disk
            state / "saves" / f".cloudctl-7-0.save.{pid}.part-0a1b2c3d",  # a local move
            state / "images" / f".other.raw.{pid}.tmp",               # image add
            state / "hosts" / f".node-1.xml.{pid}.tmp"]               # the node file
    for path in left:
        path.write_bytes(b"partial")
    alive = state / "disks" / f".cloudctl-8-0.qcow2.{os.getpid()}.tmp"  # a live writer's
    alive.write_bytes(b"in progress")
    cli("tick")
    assert [p for p in left if p.exists()] == []
    assert alive.exists()
    assert cli.json("host", "list", "--no-probe")[0]["status"] == "ok"


def test_a_cancelled_lease_takes_its_partial_disk_with_it(raw_cloud: Cli,
                                                          tmp_path: Path) -> None:
    cli = raw_cloud
    lease = cli.json("lease", "request", "--type", "be", "--duration", "1h", "--cpus", 2,
                     "--memory", 1024, "--image", "base")
    cli("tick")
    vm = cli.json("vm", "list", "--lease", lease["id"])[0]
    # As a killed copy would leave it, by a process whose PID is alive again (reused).
    partial = Path(vm["disk_path"]).with_name(f".{vm['name']}.raw.1.tmp")
    partial.write_bytes(b"x" * MIB)
    cli("lease", "cancel", lease["id"])
    cli("tick")
    assert not partial.exists() and not Path(vm["disk_path"]).exists()


def test_disks_and_copies_are_private_from_their_first_byte(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        _make_files(tmp_path)
    finally:
        os.umask(old_umask)


def _make_files(tmp_path: Path) -> None:
    base = tmp_path / "base.raw"
    base.write_bytes(b"\0" * MIB)
    for fmt in ("raw", "qcow2"):
        if fmt == "qcow2":
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "16M"],
                           check=True)
        disk = Path(make_disk(str(base), fmt, tmp_path / "disks" / f"vm.{fmt}"))
        assert disk.stat().st_mode & 0o777 == 0o600
    storage = LocalStorage(tmp_path)
    storage.files.write_bytes(str(tmp_path / "copy"), b"data")
    assert (tmp_path / "copy").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in (tmp_path / "disks").iterdir() if p.name.startswith(".")] == []


def test_only_dead_writers_temporaries_are_removed(tmp_path: Path) -> None:
    dead, live = _dead_pid(), os.getppid()
    names = [f".a.qcow2.{dead}.tmp", f".b.qcow2.{live}.tmp", f".c.save.{dead}.part-00ff",
             "d.qcow2", f".e.qcow2.{dead}.tmp.keep"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    started = time.monotonic()
    removed = remove_dead_temporaries(tmp_path)
    assert time.monotonic() - started < 1
    assert sorted(removed) == sorted([names[0], names[2]])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:2] + names[3:])
    assert remove_dead_temporaries(tmp_path / "missing") == []


def test_an_ssh_hosts_stale_temporaries_are_removed_by_a_tick(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ssh_hosts: list[SSHTestHost]) -> None:
    host = ssh_hosts[0]
    cli = Cli(tmp_path, monkeypatch)
    cli("init")
    cli("host", "add", "far", "--cpus", 4, "--memory", 8192, "--ssh", host.target,
        "--image-dir", host.image_dir, "--key-file", host.key_file,
        "--known-hosts", host.known_hosts)
    root = Path(host.image_dir).parent
    old = time.time() - STALE_REMOTE_TEMP_S - 60
    stale = [root / "disks" / ".cloudctl-9-0.tmp", root / "saves" / ".x.save.part-0badc0de"]
    fresh = root / "disks" / ".cloudctl-9-1.tmp"  # maybe another store's copy in progress
    for path in [*stale, fresh]:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"partial")
    for path in stale:
        os.utime(path, (old, old))
    cli("tick")
    assert [p for p in stale if p.exists()] == [] and fresh.exists()
    assert host_status(cli) == "ok"


def host_status(cli: Cli) -> str:
    (host,) = cli.json("host", "list", "--no-probe")
    return str(host["status"])
