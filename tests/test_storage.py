"""The image repository and VM disks: copies and links, qcow2 overlays and raw copies made
for each VM, kept across a suspension, and removed with their lease."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_cli_ops import Cli, cli  # noqa: F401 - the fixture

from cloudctl.drivers.storage import make_disk
from cloudctl.errors import BackendError


def qcow2(path: Path, size: str = "16M") -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return path


def backing_of(disk: str) -> dict:
    info = subprocess.run(["qemu-img", "info", "--output=json", "-U", disk],
                          capture_output=True, text=True, check=True)
    return json.loads(info.stdout)


def domain(cli: Cli, host: str, name: str) -> ET.Element:
    node = ET.parse(Path(cli.env["CLOUDCTL_DB"]).with_suffix(".d") / "hosts" / f"{host}.xml")
    return next(d for d in node.getroot().iter("domain") if d.findtext("name") == name)


def test_image_add_copies_links_and_remove_deletes_only_the_copy(cli: Cli,
                                                                  tmp_path: Path) -> None:
    source = qcow2(tmp_path / "base.qcow2")
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"kernel")
    image = cli.json("image", "add", "base", "--path", source, "--kernel", kernel,
                     "--cmdline", "console=ttyS0")
    repo = Path(cli.env["CLOUDCTL_DB"]).with_suffix(".d") / "images"
    assert image["path"] == str(repo / "base.qcow2") and image["source"] == str(source)
    assert Path(image["path"]).read_bytes() == source.read_bytes()
    assert not Path(image["path"]).is_symlink()
    assert image["boot"] == {"kernel": str(repo / "base.kernel"), "cmdline": "console=ttyS0"}
    linked = cli.json("image", "add", "linked", "--path", source, "--link")
    assert Path(linked["path"]).resolve() == source and linked["sha256"] == image["sha256"]
    assert "--initrd and --cmdline need --kernel" in cli(
        "image", "add", "x", "--path", source, "--cmdline", "quiet", code=2).stderr
    assert "no such file" in cli("image", "add", "y", "--path", source, "--kernel",
                                 tmp_path / "nope", code=2).stderr
    assert not (repo / "y.qcow2").exists()  # checked before anything is copied
    assert [i["name"] for i in cli.json("image", "list")] == ["base", "linked"]
    cli("image", "remove", "base")
    cli("image", "remove", "linked")
    assert not (repo / "base.qcow2").exists() and not (repo / "base.kernel").exists()
    assert not (repo / "linked.qcow2").exists() and source.exists() and kernel.exists()


def test_vm_disk_is_an_overlay_kept_while_suspended_and_removed_at_the_end(cli: Cli,
                                                                          tmp_path: Path) -> None:
    image = cli.json("image", "add", "base", "--path", qcow2(tmp_path / "base.qcow2"))
    be = cli.json("lease", "request", "--type", "be", "--duration", "3h", "--nodes", 2,
                  "--cpus", 4, "--memory", 4096, "--image", "base")
    cli("tick")
    vms = cli.json("vm", "list", "--lease", be["id"])
    disks = [vm["disk_path"] for vm in vms]
    assert all(Path(d).name == f"{vm['name']}.qcow2" for d, vm in zip(disks, vms))
    for disk in disks:
        info = backing_of(disk)
        assert info["format"] == "qcow2" and info["backing-filename"] == image["path"]
        assert info["backing-filename-format"] == "qcow2"
    dom = domain(cli, vms[0]["host"], vms[0]["name"])
    assert dom.find("devices/disk/source").get("file") == disks[0]
    assert dom.find("devices/serial/source").get("path").endswith(f"logs/{vms[0]['name']}.log")
    # The disk (and what the guest wrote to it) survives the suspension an AR forces.
    mtime = Path(disks[0]).stat().st_mtime_ns
    cli.json("lease", "request", "--type", "ar", "--start", "2026-11-23T14:00:00Z",
             "--duration", "1h", "--cpus", 4, "--memory", 4096)
    cli.at("2026-11-23T13:58:00Z")("tick")
    suspended = cli.json("vm", "show", vms[0]["name"])
    assert suspended["state"] == "suspended" and Path(suspended["save_path"]).exists()
    assert suspended["disk_path"] == disks[0] and Path(disks[0]).stat().st_mtime_ns == mtime
    cli.at("2026-11-23T15:00:00Z")("tick")
    resumed = cli.json("vm", "show", vms[0]["name"])
    assert resumed["state"] == "running" and resumed["disk_path"] == disks[0]
    assert not Path(suspended["save_path"]).exists()
    cli.at("2026-11-23T17:30:00Z")("tick")
    assert cli.json("lease", "show", be["id"])["state"] == "done"
    assert not any(Path(d).exists() for d in disks)
    assert all(vm["disk_path"] is None for vm in cli.json("vm", "list", "--all"))


def test_raw_image_gets_a_full_copy(cli: Cli, tmp_path: Path) -> None:
    raw = tmp_path / "disk.img"
    raw.write_bytes(b"\1" * 65536)
    cli("image", "add", "raw", "--path", raw)
    lease = cli.json("lease", "request", "--type", "im", "--duration", "1h", "--image", "raw")
    cli("tick")
    vm = cli.json("vm", "list", "--lease", lease["id"])[0]
    assert Path(vm["disk_path"]).read_bytes() == raw.read_bytes()
    assert domain(cli, vm["host"], vm["name"]).find("devices/disk/driver").get("type") == "raw"
    cli("lease", "cancel", lease["id"])
    cli("tick")
    assert not Path(vm["disk_path"]).exists()


def test_make_disk_is_idempotent_and_fails_cleanly(tmp_path: Path) -> None:
    base = qcow2(tmp_path / "base.qcow2")
    disk = tmp_path / "disks" / "vm.qcow2"
    assert make_disk(str(base), "qcow2", disk) == str(disk)
    disk.write_bytes(disk.read_bytes() + b"written by the guest")
    assert make_disk(str(base), "qcow2", disk) == str(disk)
    assert disk.read_bytes().endswith(b"written by the guest")
    with pytest.raises(BackendError, match="qemu-img create"):
        make_disk(str(tmp_path / "missing.qcow2"), "qcow2", tmp_path / "disks" / "other.qcow2")
    assert sorted(p.name for p in disk.parent.iterdir()) == ["vm.qcow2"]


def test_image_stats_start_empty(cli: Cli, tmp_path: Path) -> None:
    cli("image", "add", "base", "--path", qcow2(tmp_path / "base.qcow2"))
    assert cli.json("image", "stats") == []
    cli("image", "stats", "nope", code=3)
