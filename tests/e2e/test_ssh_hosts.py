"""Hosts reached over SSH (real sshds, one per network namespace): an image is sent to a
host once and reused from its cache after that; VM disks are made and removed there."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cli_harness import Cli
from sshd import SSHTestHost


def qcow2(path: Path) -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    with open(path, "ab") as f:  # something to send: a couple of MiB of data
        f.write(os.urandom(2 << 20))
    return path


def add_ssh_hosts(c: Cli, ssh_hosts: list[SSHTestHost]) -> None:
    """host-a and host-b (4 CPUs, 8 GiB each), reached over SSH."""
    for name, host in zip(("host-a", "host-b"), ssh_hosts, strict=False):
        c("host", "add", name, "--cpus", 4, "--memory", 8192, "--ssh", host.target,
          "--image-dir", host.image_dir, "--key-file", host.key_file,
          "--known-hosts", host.known_hosts)


@pytest.fixture
def ssh_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            ssh_hosts: list[SSHTestHost]) -> Cli:
    c = Cli(tmp_path, monkeypatch)
    c("init")
    add_ssh_hosts(c, ssh_hosts)
    return c


def test_image_sent_once_per_host_then_reused(ssh_cli: Cli, tmp_path: Path,
                                              ssh_hosts: list[SSHTestHost]) -> None:
    cli = ssh_cli
    image = cli.json("image", "add", "base", "--path", qcow2(tmp_path / "base.qcow2"))
    first = [cli.json("lease", "request", "--type", "im", "--duration", "1h", "--cpus", 4,
                      "--image", "base") for _ in range(2)]
    assert [lease["hosts"] for lease in first] == [["host-a"], ["host-b"]]
    cli("tick")
    for lease, host in zip(first, ssh_hosts, strict=False):
        vm = cli.json("vm", "list", "--lease", lease["id"])[0]
        disk = Path(vm["disk_path"])
        assert disk.parent == Path(host.image_dir).parent / "disks" and disk.exists()
        cached = Path(host.image_dir) / f"{image['sha256']}.qcow2"
        assert cached.stat().st_size == image["size_bytes"]
        info = subprocess.run(["qemu-img", "info", "-U", str(disk)], capture_output=True,
                              text=True, check=True).stdout
        assert f"backing file: {cached}" in info
    stats = {row["host"]: row for row in cli.json("image", "stats")}
    assert {h: (r["transfers"], r["reused"], r["bytes"]) for h, r in stats.items()} == {
        "host-a": (1, 0, image["size_bytes"]), "host-b": (1, 0, image["size_bytes"])}
    assert stats["host-a"]["planned_s"] == 1.0 and stats["host-a"]["actual_s"] > 0
    for lease in first:
        cli("lease", "cancel", lease["id"])
    cli("tick")
    assert not list((Path(ssh_hosts[0].image_dir).parent / "disks").glob("cloudctl-*"))
    again = cli.json("lease", "request", "--type", "im", "--duration", "1h", "--cpus", 4,
                     "--image", "base")
    assert again["hosts"] == ["host-a"]
    cli("tick")
    stats = {row["host"]: row for row in cli.json("image", "stats", "base")}
    assert (stats["host-a"]["transfers"], stats["host-a"]["reused"]) == (1, 1)
    assert "host-a" in cli("image", "stats").stdout


def test_unknown_host_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     ssh_hosts: list[SSHTestHost]) -> None:
    cli = Cli(tmp_path, monkeypatch)
    cli("init")
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    host = ssh_hosts[0]
    error = cli("host", "add", "stranger", "--cpus", 1, "--memory", 512, "--ssh", host.target,
                "--key-file", host.key_file, "--known-hosts", empty, code=5).stderr
    assert "unknown host key" in error and "Traceback" not in error
    assert cli.json("host", "list", "--no-probe") == []
    assert "go with --ssh" in cli("host", "add", "x", "--cpus", 1, "--memory", 512,
                                  "--image-dir", "/tmp", code=2).stderr
