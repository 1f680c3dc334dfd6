"""Cold migration between hosts reached over SSH (real sshds): when the scheduler moves a
suspended lease to another host, its VM's disk and memory image go there over SFTP, the VM is
restored there on its own disk, and the old host keeps nothing. A move that fails leaves
everything where it was, recorded, and is carried on by a later tick."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cli_harness import Cli
from sshd import SSHTestHost
from test_ssh_hosts import add_ssh_hosts, qcow2

MARK = "0xab"  # a pattern the guest "wrote" to its disk before it was suspended


def qemu_io(disk: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qemu-io", "-f", "qcow2", "-c", command, disk],
                          capture_output=True, text=True, check=False)


def host_dirs(host: SSHTestHost) -> tuple[Path, Path]:
    root = Path(host.image_dir).parent
    return root / "disks", root / "saves"


@pytest.fixture
def migrating_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  ssh_hosts: list[SSHTestHost]) -> Cli:
    c = Cli(tmp_path, monkeypatch)
    # Late migration: these tests step through the wait before a move starts.
    (tmp_path / "config.toml").write_text('[scheduler]\nmigration = "yes"\n'
                                          'early-migration = false\n'
                                          '[enactment]\nretry-backoff = "1m"\n')
    c("init")
    add_ssh_hosts(c, ssh_hosts)
    return c


def suspended_on_host_a(cli: Cli, tmp_path: Path) -> tuple[dict, str]:
    """A best-effort lease suspended on host-a by an AR on both hosts, and planned to resume
    on host-b (host-a is another AR's from 15:00): the lease and its VM's name."""
    cli("image", "add", "base", "--path", qcow2(tmp_path / "base.qcow2"))
    be = cli.json("lease", "request", "--type", "be", "--duration", "3h", "--cpus", 4,
                  "--memory", 1024, "--image", "base")
    cli("tick")
    cli.json("lease", "request", "--type", "ar", "--start", "2026-11-23T14:00:00Z",
             "--duration", "1h", "--nodes", 2, "--cpus", 4)
    cli.json("lease", "request", "--type", "ar", "--start", "2026-11-23T15:00:00Z",
             "--duration", "3h", "--cpus", 4)
    cli.at("2026-11-23T14:00:00Z")("tick")
    return be, f"cloudctl-{be['id']}-0"


def test_a_lease_that_ends_before_its_files_move_leaves_nothing_behind(
        migrating_cli: Cli, tmp_path: Path, ssh_hosts: list[SSHTestHost]) -> None:
    cli = migrating_cli
    (a_disks, a_saves), (b_disks, b_saves) = map(host_dirs, ssh_hosts[:2])
    be, name = suspended_on_host_a(cli, tmp_path)
    assert cli.json("vm", "show", name)["host"] == "host-b"
    assert len(list(a_disks.glob("*"))) == len(list(a_saves.glob("*"))) == 1
    b_saves.parent.mkdir(parents=True, exist_ok=True)
    b_saves.write_text("in the way")  # the move fails ...
    assert cli.at("2026-11-23T15:00:00Z").json("tick")["failed"]
    b_saves.unlink()
    cli("lease", "cancel", be["id"])  # ... and the lease ends meanwhile: nothing is moved
    cli("tick")
    assert cli.json("vm", "show", name)["state"] == "gone"
    assert not list(a_disks.glob("*")) and not list(a_saves.glob("*"))
    assert not list(b_disks.glob("*")) and not list(b_saves.glob("*"))


def test_suspended_lease_moves_with_its_disk_and_memory_image(
        migrating_cli: Cli, tmp_path: Path, ssh_hosts: list[SSHTestHost]) -> None:
    cli = migrating_cli
    (a_disks, a_saves), (b_disks, b_saves) = map(host_dirs, ssh_hosts[:2])
    image = cli.json("image", "add", "base", "--path", qcow2(tmp_path / "base.qcow2"))
    be = cli.json("lease", "request", "--type", "be", "--duration", "3h", "--cpus", 4,
                  "--memory", 1024, "--image", "base")
    name = f"cloudctl-{be['id']}-0"
    assert be["hosts"] == ["host-a"]
    cli("tick")
    disk = cli.json("vm", "show", name)["disk_path"]
    assert Path(disk).parent == a_disks
    assert qemu_io(disk, f"write -P {MARK} 0 64k").returncode == 0
    # An operator's `vm migrate` does not move disks: refused, in one line, nothing moves.
    error = cli("vm", "migrate", name, "host-b", code=2).stderr
    assert "do not share storage" in error and error.count("\n") == 1
    assert cli.json("vm", "show", name)["host"] == "host-a"

    # An AR on both hosts suspends it; another keeps host-a busy afterwards, so the lease
    # resumes sooner on host-b after a cold migration.
    cli.json("lease", "request", "--type", "ar", "--start", "2026-11-23T14:00:00Z",
             "--duration", "1h", "--nodes", 2, "--cpus", 4)
    later = cli.json("lease", "request", "--type", "ar", "--start", "2026-11-23T15:00:00Z",
                     "--duration", "3h", "--cpus", 4)
    assert later["hosts"] == ["host-a"]
    cli.at("2026-11-23T13:59:50Z")("tick")
    suspended = cli.json("vm", "show", name)
    assert suspended["state"] == "suspended" and Path(suspended["save_path"]).parent == a_saves
    tick = cli.at("2026-11-23T14:00:00Z").json("tick")
    plan = cli.json("lease", "show", be["id"])
    assert plan["hosts"] == ["host-b"] and plan["state"] == "suspended-scheduled", plan
    # Not before its migration starts (host-b is the AR's until 15:00).
    assert f"{name}: to move from host-a to host-b when its migration starts" in \
        tick["waiting"]
    assert not b_disks.exists() and Path(suspended["save_path"]).exists()

    # The move fails: host-b cannot take the memory image. Nothing has moved, and it says so.
    b_saves.parent.mkdir(parents=True, exist_ok=True)
    b_saves.write_text("in the way")
    cli.at("2026-11-23T15:00:00Z")
    tick = cli.json("tick")
    assert [f for f in tick["failed"] if f.startswith(name)], tick
    failed = cli.json("vm", "show", name)
    assert failed["state"] == "suspended" and failed["host"] == "host-b"
    assert "still on host-a" in failed["error"] and "\n" not in failed["error"]
    assert Path(failed["save_path"]).exists() and Path(failed["disk_path"]) == Path(disk)
    assert Path(disk).exists() and not list(b_disks.glob("*"))  # no partial copy
    assert cli.json("lease", "show", be["id"])["state"] == "migrating"
    b_saves.unlink()

    # Retried after its backoff: the files move, checked, and the old host keeps nothing.
    cli.at("2026-11-23T15:01:00Z")
    tick = cli.json("tick")
    assert tick["failed"] == [], tick
    moved = cli.json("vm", "show", name)
    assert moved["state"] == "suspended" and moved["error"] is None
    assert Path(moved["disk_path"]).parent == b_disks
    assert Path(moved["save_path"]).parent == b_saves
    assert Path(moved["save_path"]).exists()
    assert not list(a_disks.glob("*")) and not list(a_saves.glob("*"))
    assert any("moved from host-a to host-b" in e["reason"] for e in moved["events"])
    new_disk = moved["disk_path"]
    cached = Path(ssh_hosts[1].image_dir) / f"{image['sha256']}.qcow2"
    info = subprocess.run(["qemu-img", "info", "-U", new_disk], capture_output=True,
                          text=True, check=True).stdout
    assert f"backing file: {cached}" in info  # its base is host-b's own copy
    assert qemu_io(new_disk, f"read -P {MARK} 0 64k").returncode == 0  # the same disk

    # It resumes on host-b, on the disk that came with it.
    cli.at("2026-11-23T16:00:00Z")("tick")
    resumed = cli.json("vm", "show", name)
    assert resumed["state"] == "running" and resumed["host"] == "host-b"
    assert resumed["save_path"] is None and not list(b_saves.glob("*"))
    node_files = Path(cli.env["CLOUDCTL_DB"]).with_suffix(".d") / "hosts"
    assert name not in (node_files / "host-a.xml").read_text()
    defined = (node_files / "host-b.xml").read_text()
    assert f'file="{new_disk}"' in defined and disk not in defined
    assert cli.json("lease", "show", be["id"])["state"] == "active"
    cli("lease", "cancel", be["id"])
    cli("tick")
    assert not list(b_disks.glob("*"))
