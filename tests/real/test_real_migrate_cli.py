"""`cloudctl vm migrate ID HOST --live` end to end, between two real libvirt daemons (the two
session libvirtds of tests/real_qemu.py): the guest keeps counting on its serial console while
it moves, and the store, the schedule and both daemons agree afterwards."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import Cli
from real_qemu import MIGRATE_URI, TinyGuest, ticks, wait_for_tick


def state_of(uri: str, name: str) -> str:
    from cloudctl.drivers.registry import open_driver

    with open_driver("qemu", uri, {"domain_type": "qemu"}) as driver:
        return driver.state(name).value


@pytest.fixture
def session_cli(shared_dir: Path, monkeypatch: pytest.MonkeyPatch,
                session_libvirts: tuple[str, str]) -> Iterator[Cli]:
    """A cloud of the two session daemons, its state in `shared_dir`: their QEMUs run as two
    unprivileged users, who both reach the state dir as they would shared storage."""
    state = shared_dir / "state.d"
    for path in (state, state / "images", state / "disks", state / "logs"):
        path.mkdir(mode=0o755)
        os.chmod(path, 0o755)
    c = Cli(shared_dir, monkeypatch)
    (shared_dir / "config.toml").write_text(
        f'[drivers.qemu]\ndomain_type = "qemu"\nmigrate_uri = "{MIGRATE_URI}"\n'
        "[enactment]\nshutdown-grace = '20s'\n")
    # The session daemons are shared by every test run on this machine: names of our own.
    c("init", "--vm-prefix", f"cloudctl-run{secrets.token_hex(4)}")
    for host, uri in zip(("sess-0", "sess-1"), session_libvirts, strict=True):
        c("host", "add", host, "--cpus", 2, "--memory", 1024, "--driver", "qemu", "--uri", uri)
    yield c
    from cloudctl.drivers.registry import open_driver

    ours = {vm["name"] for vm in c.json("vm", "list", "--all")}
    for uri in session_libvirts:
        with open_driver("qemu", uri, {"domain_type": "qemu"}) as driver:
            for name in set(driver.list_vms(prefix="cloudctl-")) & ours:  # left by a failure
                driver.destroy(name)


def test_vm_migrate_live_moves_a_running_guest_between_two_daemons(
        session_cli: Cli, session_libvirts: tuple[str, str], tiny_guest: TinyGuest) -> None:
    cli, (uri_0, uri_1) = session_cli, session_libvirts
    state = Path(cli.env["CLOUDCTL_DB"]).with_suffix(".d")
    image = cli.json("image", "add", "tiny", "--path", tiny_guest.disk, "--link",
                     "--kernel", tiny_guest.kernel, "--initrd", tiny_guest.initrd,
                     "--cmdline", tiny_guest.cmdline)
    lease = cli.json("lease", "request", "--type", "im", "--duration", "2h", "--cpus", 1,
                     "--memory", 128, "--image", "tiny")
    assert lease["hosts"] == ["sess-0"]
    name = cli.json("vm", "list", "--lease", lease["id"])[0]["name"]
    # Its disk and serial log, where cloudctl makes them, open to both daemons' users (as on
    # shared storage); cloudctl keeps a disk that is there already.
    disk, log = state / "disks" / f"{name}.qcow2", state / "logs" / f"{name}.log"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                    str(Path(image["path"]).resolve()), str(disk)], check=True)
    log.touch()
    for path in (disk, log):
        os.chmod(path, 0o666)
    cli("tick")
    assert cli.json("vm", "show", name)["state"] == "running"
    before = wait_for_tick(log, 1, timeout_s=60)

    moved = cli.json("vm", "migrate", name, "sess-1", "--live")
    assert (moved["from"], moved["to"], moved["live"]) == ("sess-0", "sess-1", True)
    assert (state_of(uri_0, name), state_of(uri_1, name)) == ("missing", "running")
    vm = cli.json("vm", "show", name)
    assert vm["host"] == "sess-1" and vm["state"] == "running"
    assert "migrated (live) from sess-0 to sess-1" in vm["events"][-1]["reason"]
    shown = cli.json("lease", "show", lease["id"])
    assert shown["hosts"] == ["sess-1"] and shown["state"] == "active"
    wait_for_tick(log, before + 2, timeout_s=30)
    seen = ticks(log)
    assert seen == list(range(len(seen))), "the guest went on counting, it did not reboot"
    tick = cli.json("tick")
    assert tick["missing"] == [] and tick["failed"] == [] and tick["unowned"] == []

    # Onto the host it is on already: refused in one line, nothing moves.
    error = cli("vm", "migrate", name, "sess-1", "--live", code=6).stderr
    assert "already" in error and error.count("\n") == 1
    assert state_of(uri_1, name) == "running"

    cli("lease", "cancel", lease["id"])
    cli("tick")
    assert cli.json("vm", "show", name)["state"] == "gone"
    assert (state_of(uri_0, name), state_of(uri_1, name)) == ("missing", "missing")
    assert not disk.exists()
