"""End to end on a real libvirtd with QEMU software emulation, driven only through `cloudctl`:
a tiny guest boots from an image added with `image add`, an AR's preemption suspends it to
disk, it is resumed and keeps counting, and when its lease ends its disk is cleaned up."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import Cli
from real_qemu import TinyGuest, ticks, wait_for_tick

T0 = "2026-11-23T13:00:00Z"


def domain_state(name: str) -> str:
    from cloudctl.drivers.registry import open_driver

    with open_driver("qemu", "qemu:///system", {"domain_type": "qemu"}) as driver:
        return driver.state(name).value


@pytest.fixture
def qemu_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             system_libvirt: str) -> Iterator[Cli]:
    c = Cli(tmp_path, monkeypatch)
    (tmp_path / "config.toml").write_text('[drivers.qemu]\ndomain_type = "qemu"\n'
                                          "[enactment]\nshutdown-grace = '20s'\n")
    # qemu:///system is the machine's, shared with any other test run: names of our own.
    c("init", "--vm-prefix", f"cloudctl-run{secrets.token_hex(4)}")
    c("host", "add", "qemu-1", "--cpus", 2, "--memory", 1024, "--driver", "qemu",
      "--uri", system_libvirt)
    yield c
    from cloudctl.drivers.registry import open_driver

    ours = {vm["name"] for vm in c.json("vm", "list", "--all")}
    with open_driver("qemu", system_libvirt, {"domain_type": "qemu"}) as driver:
        for name in set(driver.list_vms(prefix="cloudctl-")) & ours:  # left by a failure
            driver.destroy(name)


def test_guest_preempted_by_an_ar_is_suspended_resumed_and_cleaned_up(
        qemu_cli: Cli, tiny_guest: TinyGuest, tmp_path: Path) -> None:
    cli = qemu_cli
    state = Path(cli.env["CLOUDCTL_DB"]).with_suffix(".d")
    cli("image", "add", "tiny", "--path", tiny_guest.disk, "--kernel", tiny_guest.kernel,
        "--initrd", tiny_guest.initrd, "--cmdline", tiny_guest.cmdline)
    be = cli.json("lease", "request", "--type", "be", "--duration", "3h", "--cpus", 2,
                  "--memory", 128, "--image", "tiny")
    prefix = cli.json("init")["vm_prefix"]
    name = f"{prefix}-{be['id']}-0"
    log = state / "logs" / f"{name}.log"
    cli("tick")
    vm = cli.json("vm", "show", name)
    assert vm["state"] == "running" and Path(vm["disk_path"]).exists()
    wait_for_tick(log, 3, timeout_s=60)

    ar = cli.json("lease", "request", "--type", "ar", "--start", "2026-11-23T14:00:00Z",
                  "--duration", "1h", "--cpus", 2, "--memory", 128, "--image", "tiny")
    cli.at("2026-11-23T13:59:58Z")("tick")  # suspends at 13:59:56 (128 MiB at 32 MiB/s)
    suspended = cli.json("vm", "show", name)
    assert suspended["state"] == "suspended" and Path(suspended["save_path"]).exists()
    frozen = ticks(log)
    time.sleep(1.5)
    assert ticks(log) == frozen, "a suspended guest must not run"
    assert domain_state(name) in ("shutoff", "missing")  # saved: not active

    cli.at("2026-11-23T14:00:00Z")("tick")
    assert cli.json("lease", "show", ar["id"])["state"] == "active"
    ar_vm = cli.json("vm", "show", f"{prefix}-{ar['id']}-0")
    assert ar_vm["state"] == "running"

    cli.at("2026-11-23T15:00:00Z")("tick")  # the AR ends; the best-effort lease resumes
    assert cli.json("lease", "show", ar["id"])["state"] == "done"
    assert not Path(ar_vm["disk_path"]).exists()
    resumed = cli.json("vm", "show", name)
    assert resumed["state"] == "running" and resumed["disk_path"] == vm["disk_path"]
    assert not Path(suspended["save_path"]).exists()
    wait_for_tick(log, frozen[-1] + 2, timeout_s=30)
    seen = ticks(log)
    assert seen == list(range(len(seen))), "the guest went on counting, it did not reboot"

    cli.at("2026-11-23T18:00:00Z")("tick")
    assert cli.json("lease", "show", be["id"])["state"] == "done"
    assert cli.json("vm", "show", name)["state"] == "gone"
    assert not Path(vm["disk_path"]).exists()
    assert not list((state / "disks").iterdir()) and not list((state / "saves").iterdir())
    assert domain_state(name) == "missing"  # shut down and undefined
