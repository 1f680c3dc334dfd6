"""The image repository and VM disks: copies and links, qcow2 overlays and raw copies made
for each VM, kept across a suspension, and removed with their lease."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cli_harness import Cli
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
    assert all(Path(d).name == f"{vm['name']}.qcow2" for d, vm in zip(disks, vms, strict=True))
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


def test_host_that_stops_answering_is_in_error_and_its_leases_move(cli: Cli) -> None:
    be = cli.json("lease", "request", "--type", "be", "--duration", "3h", "--cpus", 4,
                  "--memory", 4096)
    ar = cli.json("lease", "request", "--type", "ar", "--start", "2026-11-23T15:00:00Z",
                  "--duration", "1h", "--nodes", 2, "--cpus", 3, "--memory", 2048)
    cli("tick")
    lost = be["hosts"][0]
    assert lost in ar["hosts"]
    listed = {h["name"]: h for h in cli.json("host", "list")}
    assert listed[lost]["hypervisor"] == {"cpus": 4, "memory_mib": 8192,
                                          "free_memory_mib": 4096, "running_vms": 1}
    node = Path(cli.env["CLOUDCTL_DB"]).with_suffix(".d") / "hosts" / f"{lost}.xml"
    hidden = node.with_suffix(".away")
    node.rename(hidden)
    cli.at("2026-11-23T13:10:00Z")
    assert "unreachable" in cli("host", "list").stdout
    tick = cli.json("tick")
    assert tick["hosts_lost"] == [lost]
    host = cli.json("host", "show", lost)
    assert host["status"] == "error" and "stopped answering" in host["status_reason"]
    moved = cli.json("lease", "show", be["id"])
    other = "node-2" if lost == "node-1" else "node-1"
    assert moved["state"] == "active" and moved["hosts"] == [other]
    assert any(f"host {lost} in error; requeued" in e["reason"] for e in moved["events"])
    failed = cli.json("lease", "show", ar["id"])  # two nodes no longer fit on one host
    assert failed["state"] == "fail"
    assert failed["reason"].startswith(f"host {lost} in error; no other host free for")
    vm = cli.json("vm", "show", f"cloudctl-{be['id']}-0")
    assert vm["state"] == "running" and vm["host"] == other
    # The host answers again: back in service, and what was left on it is destroyed.
    hidden.rename(node)
    cli.at("2026-11-23T13:20:00Z")
    assert cli.json("tick")["hosts_back"] == [lost]
    assert cli.json("host", "show", lost)["status"] == "ok"
    assert f"cloudctl-{be['id']}-0" not in node.read_text()
    assert cli.json("host", "show", lost)["hypervisor"]["running_vms"] == 0


def test_lease_from_an_xl_cfg_template(cli: Cli, tmp_path: Path) -> None:
    source = qcow2(tmp_path / "web.qcow2")
    cli("image", "add", "web", "--path", source)
    template = tmp_path / "web.cfg"
    template.write_text(f'# a web server\nname = "web"\ntype = "pv"\nvcpus = 2\nmemory = 2048\n'
                        f'disk = [ "format=qcow2, vdev=xvda, access=rw, target={source}" ]\n')
    lease = cli.json("lease", "request", "--type", "be", "--duration", "1h",
                     "--template", template)
    assert (lease["cpus"], lease["memory_mib"], lease["image"], lease["name"]) == \
        (2, 2048, "web", "web")
    flags = cli.json("lease", "request", "--type", "be", "--duration", "1h", "--template",
                     template, "--cpus", 1, "--name", "small")
    assert (flags["cpus"], flags["memory_mib"], flags["name"]) == (1, 2048, "small")
    template.write_text('vcpus = 1\nmemory = 512\ndisk = [ "/srv/unknown.img,raw,xvda,rw" ]\n')
    error = cli("lease", "request", "--type", "be", "--duration", "1h", "--template", template,
                code=2).stderr
    assert "not a registered image" in error
    template.write_text("vcpus = \n")
    assert "line 1" in cli("lease", "request", "--type", "be", "--duration", "1h",
                           "--template", template, code=2).stderr


def test_vm_migrate_cold_between_test_hosts(cli: Cli, tmp_path: Path) -> None:
    cli("image", "add", "base", "--path", qcow2(tmp_path / "base.qcow2"))
    lease = cli.json("lease", "request", "--type", "im", "--duration", "2h", "--cpus", 2,
                     "--memory", 2048, "--image", "base")
    filler = cli.json("lease", "request", "--type", "im", "--duration", "1h", "--cpus", 4,
                      "--memory", 1024)
    assert (lease["hosts"], filler["hosts"]) == (["node-1"], ["node-2"])
    cli("tick")
    vm = f"cloudctl-{lease['id']}-0"
    disk = cli.json("vm", "show", vm)["disk_path"]
    error = cli("vm", "migrate", vm, "node-2", code=6).stderr
    assert "cannot move to node-2" in error and "cpu" in error
    assert "without --live it moves cold" in cli("vm", "migrate", vm, "node-2", "--live",
                                                 code=2).stderr
    cli.at("2026-11-23T14:00:00Z")("tick")  # the filler is done: node-2 is free
    hosts_dir = Path(cli.env["CLOUDCTL_DB"]).with_suffix(".d") / "hosts"
    node2 = hosts_dir / "node-2.xml"
    node2.rename(node2.with_suffix(".away"))
    assert "no node file" in cli("vm", "migrate", vm, "node-2", code=5).stderr
    node2.with_suffix(".away").rename(node2)
    still = cli.json("vm", "show", vm)
    assert still["host"] == "node-1" and still["state"] == "running"
    assert "cold migration to node-2 failed, still on node-1" in still["events"][-1]["reason"]
    assert cli.json("lease", "show", lease["id"])["hosts"] == ["node-1"]
    assert vm in (hosts_dir / "node-1.xml").read_text()

    moved = cli.json("vm", "migrate", vm, "node-2")
    assert (moved["from"], moved["to"], moved["live"]) == ("node-1", "node-2", False)
    assert vm not in (hosts_dir / "node-1.xml").read_text()
    assert vm in node2.read_text()
    shown = cli.json("lease", "show", lease["id"])
    assert shown["hosts"] == ["node-2"] and "migrated from node-1 to node-2" in shown["reason"]
    assert cli.json("vm", "show", vm)["disk_path"] == disk and Path(disk).exists()
    assert not list((hosts_dir.parent / "saves").glob("*"))
    tick = cli.json("tick")
    assert tick["missing"] == [] and tick["failed"] == [] and tick["unowned"] == []
    # The schedule counts it on node-2 now: a 4-CPU lease no longer fits there.
    late = cli.json("lease", "request", "--type", "im", "--duration", "10m", "--cpus", 4,
                    "--memory", 1024)
    assert late["hosts"] == ["node-1"]
    cli("vm", "migrate", "cloudctl-99-0", "node-1", code=3)
    cli("lease", "cancel", lease["id"])
    assert "only a running VM" in cli("vm", "migrate", vm, "node-1", code=4).stderr


def test_a_tick_stops_before_it_starts(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """At 15:00 the AR's VM stops and the suspended lease resumes on the same host: the stop
    comes first, so the host never holds both."""
    from cloudctl.drivers.libvirt import TestDriver

    calls: list[tuple[str, str]] = []
    for method in ("create", "resume", "shutdown", "destroy", "suspend"):
        original = getattr(TestDriver, method)

        def spy(self, name_or_spec, *args, _original=original, _method=method, **kwargs):
            name = getattr(name_or_spec, "name", name_or_spec)
            calls.append((_method, name))
            return _original(self, name_or_spec, *args, **kwargs)

        monkeypatch.setattr(TestDriver, method, spy)
    cli("lease", "request", "--type", "im", "--duration", "6h", "--cpus", 4)  # fills node-1
    be = cli.json("lease", "request", "--type", "be", "--duration", "3h", "--cpus", 4,
                  "--memory", 4096)
    ar = cli.json("lease", "request", "--type", "ar", "--start", "2026-11-23T14:00:00Z",
                  "--duration", "1h", "--cpus", 4, "--memory", 4096)
    assert be["hosts"] == ar["hosts"] == ["node-2"]
    for t in ("13:00", "13:58", "14:00"):
        cli.at(f"2026-11-23T{t}:00Z")("tick")
    calls.clear()
    cli.at("2026-11-23T15:00:00Z")("tick")
    assert calls[:2] == [("shutdown", f"cloudctl-{ar['id']}-0"),
                         ("resume", f"cloudctl-{be['id']}-0")]
