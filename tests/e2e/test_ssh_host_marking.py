"""A host whose SSH fails is in error (issue 14, finding 15): with a changed host key the tick
refuses to talk to it, marks it `error` with the reason and handles its leases as for any
unreachable host (a best-effort lease is re-queued, never `done` without running); when it
answers again (its new key known), it is back in service.

The host is a real sshd of this test alone (on loopback), whose host key is replaced and
re-read (SIGHUP) half-way.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import Cli
from sshd import (
    SSHD,
    SSHNetwork,
    _keygen,
    _known_host_line,
    _wait_for_banner,
    start_network,
    stop_network,
)
from test_ssh_hosts import qcow2


@pytest.fixture
def own_sshd(tmp_path: Path) -> Iterator[SSHNetwork]:
    if not Path(SSHD).exists():
        pytest.skip("sshd is not installed (scripts/setup.sh installs openssh-server)")
    net = start_network(tmp_path / "net", count=1, mode="loopback")
    try:
        yield net
    finally:
        stop_network(net)


def change_host_key(net: SSHNetwork) -> str:
    """A new host key for the (only) host, re-read by its sshd; its known_hosts line."""
    host, proc = net.hosts[0], net._procs[0]
    host_dir = Path(host.image_dir).parent
    key = host_dir / "ssh_host_ed25519_key"
    key.unlink()
    Path(f"{key}.pub").unlink()
    _keygen(key)
    proc.send_signal(signal.SIGHUP)  # our own child: sshd re-executes itself, same pid
    _wait_for_banner(host.address, host.port, proc, host_dir / "sshd.log")
    return _known_host_line(host.address, host.port, host_dir)


def host_view(cli: Cli) -> dict[str, object]:
    (far,) = cli.json("host", "list", "--no-probe")
    return far  # type: ignore[no-any-return]


def test_a_changed_host_key_puts_the_host_in_error_and_requeues_its_lease(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_sshd: SSHNetwork) -> None:
    host = own_sshd.hosts[0]
    cli = Cli(tmp_path, monkeypatch)
    cli("init")
    cli("host", "add", "far", "--cpus", 4, "--memory", 8192, "--ssh", host.target,
        "--image-dir", host.image_dir, "--key-file", host.key_file,
        "--known-hosts", host.known_hosts)
    cli("image", "add", "base", "--path", qcow2(tmp_path / "base.qcow2"))
    lease = cli.json("lease", "request", "--type", "be", "--duration", "1h", "--cpus", 4,
                     "--memory", 1024, "--image", "base")
    cli("tick")
    assert cli.json("lease", "show", lease["id"])["state"] == "active"

    new_line = change_host_key(own_sshd)
    cli.at("2026-11-23T13:10:00Z")
    cli.process("tick")  # its exit code is the tick's own business (issue 14, finding 5)
    far = host_view(cli)
    assert far["status"] == "error", far
    reason = far["status_reason"]
    assert "host key" in reason and "changed key" in reason and "\n" not in reason, reason
    shown = cli.json("lease", "show", lease["id"])
    assert shown["state"] == "queued", shown
    assert any("far in error" in event["reason"] for event in shown["events"]), shown

    # Past the lease's planned end: it never ran again, so it is not done.
    cli.at("2026-11-23T14:30:00Z")
    cli.process("tick")
    assert cli.json("lease", "show", lease["id"])["state"] == "queued"

    # The new key is made known: the host answers again and the lease runs there.
    Path(host.known_hosts).write_text(new_line)
    cli.at("2026-11-23T14:31:00Z")
    cli("tick")
    assert host_view(cli)["status"] == "ok"
    cli("tick")
    assert cli.json("lease", "show", lease["id"])["state"] == "active"
