"""Throwaway SSH hosts for tests and benchmarks: real `sshd`s, one per host.

Preferred: one network namespace per host, joined through a bridge namespace, addresses from a
private /24 that exists only inside the namespaces (the root namespace reaches it through one
veth; a guard `unreachable` route for the /24 goes in first, at a lower priority, so nothing
for that /24 ever leaves the machine, even while the namespaces are torn down). Each host's
sshd listens on port 22 of its own address. When namespaces cannot be made (not root, no
`ip`, or CLOUDCTL_TEST_SSH_NET=loopback), the hosts are sshds on 127.0.0.1 with random ports,
and `SSHNetwork.reason` says why.

Every host has its own image directory; all share one client key and one known_hosts file.
A run killed with SIGKILL leaves its namespaces (`cc<pid>..`), their sshds and its guard route
(metric 4242) behind: `ip netns pids NS`, `ip netns del NS`, `ip route del unreachable ...`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
GUARD_METRIC = 4242  # below the connected route's priority: it only catches what has no veth


@dataclass(frozen=True)
class SSHTestHost:
    """One test host as cloudctl would register it: `target` plus `options()`."""

    name: str
    target: str            # USER@HOST:PORT
    address: str
    port: int
    key_file: str
    known_hosts: str
    image_dir: str
    namespace: str | None = None
    pid: int = 0           # the listening sshd's

    def sessions(self) -> set[int]:
        """The pids of the sshd processes serving this host's open connections."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = set(), list(children.get(self.pid, []))
        while todo:
            pid = todo.pop()
            found.add(pid)
            todo.extend(children.get(pid, []))
        return found

    def options(self, **extra: object) -> dict[str, object]:
        return {"key_file": self.key_file, "known_hosts": self.known_hosts,
                "image_dir": self.image_dir, "connect_timeout": 5, **extra}


class StoppedProcesses:
    """Processes a test stops with SIGSTOP (an sshd and its sessions: a host that takes
    connections and answers nothing), later continued or killed. The test did not start them
    and they may exit at any moment (a session closing): one gone before it is stopped is
    skipped, and each is held by a pidfd, so that a PID reused meanwhile is never signalled."""

    def __init__(self) -> None:
        self._held: dict[int, int] = {}  # pid -> pidfd

    @property
    def pids(self) -> list[int]:
        return list(self._held)

    def stop(self, pids: Iterable[int]) -> list[int]:
        """SIGSTOP each of `pids` that still runs; the ones stopped."""
        stopped = []
        for pid in pids:
            if pid in self._held:
                continue
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue  # exited between being listed and now
            if self._signal(fd, signal.SIGSTOP):
                self._held[pid] = fd
                stopped.append(pid)
            else:
                os.close(fd)
        return stopped

    def release(self, cont: Iterable[int] = ()) -> None:
        """SIGCONT the pids in `cont`, SIGKILL the others; the gone are skipped."""
        keep = set(cont)
        for pid, fd in self._held.items():
            self._signal(fd, signal.SIGCONT if pid in keep else signal.SIGKILL)
            os.close(fd)
        self._held.clear()

    @staticmethod
    def _signal(pidfd: int, signum: int) -> bool:
        try:
            signal.pidfd_send_signal(pidfd, signum)
        except ProcessLookupError:
            return False
        return True


@dataclass
class SSHNetwork:
    mode: str                      # "netns" or "loopback"
    reason: str                    # why loopback, or how the namespaces were made
    hosts: list[SSHTestHost]
    setup_seconds: float
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _teardown: list[list[str]] = field(default_factory=list)


def _run(*cmd: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise OSError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.returncode}")


def _keygen(path: Path) -> None:
    _run(SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "cloudctl-test", "-f", str(path))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_banner(address: str, port: int, proc: subprocess.Popen[bytes], log: Path,
                     timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise OSError(f"sshd exited ({proc.returncode}): {log.read_text().strip()[-500:]}")
        try:
            with socket.create_connection((address, port), timeout=1) as s:
                if s.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.02)
    raise OSError(f"sshd on {address}:{port} did not answer within {timeout:.0f} s")


def _sshd_config(host_dir: Path, address: str, port: int, authorized: Path) -> Path:
    host_key = host_dir / "ssh_host_ed25519_key"
    _keygen(host_key)
    config = host_dir / "sshd_config"
    config.write_text("\n".join([
        f"ListenAddress {address}", f"Port {port}", f"HostKey {host_key}",
        f"AuthorizedKeysFile {authorized}", "PidFile none", "UsePAM no", "StrictModes no",
        "PermitRootLogin prohibit-password", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UseDNS no", "MaxStartups 100",
        "Subsystem sftp internal-sftp", "LogLevel ERROR", ""]))
    return config


def _start_sshd(config: Path, log: Path, namespace: str | None) -> subprocess.Popen[bytes]:
    cmd = [SSHD, "-D", "-e", "-f", str(config)]
    if namespace:
        cmd = ["ip", "netns", "exec", namespace, *cmd]  # `ip netns exec` execs: same pid
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out)


def _known_host_line(address: str, port: int, host_dir: Path) -> str:
    name = address if port == 22 else f"[{address}]:{port}"
    key = (host_dir / "ssh_host_ed25519_key.pub").read_text().split()
    return f"{name} {key[0]} {key[1]}\n"


def _make_namespaces(prefix: str, count: int,
                     net: SSHNetwork) -> list[tuple[str | None, str]]:
    """(namespace, address) per host; root reaches them through veth `{prefix}r`."""
    for _ in range(20):
        subnet = f"10.{secrets.choice(range(200, 250))}.{secrets.randbelow(256)}"
        try:  # the guard first: it fails when another run already owns this /24
            _run("ip", "route", "add", "unreachable", f"{subnet}.0/24", "metric",
                 str(GUARD_METRIC))
        except OSError:
            continue
        break
    else:
        raise OSError("no free private /24 for the test namespaces")
    net._teardown.append(["ip", "route", "del", "unreachable", f"{subnet}.0/24", "metric",
                          str(GUARD_METRIC)])
    bridge_ns = f"{prefix}b"
    _run("ip", "netns", "add", bridge_ns)
    net._teardown.insert(0, ["ip", "netns", "del", bridge_ns])
    in_bridge = ["ip", "netns", "exec", bridge_ns, "ip"]
    _run(*in_bridge, "link", "add", "br0", "type", "bridge")
    _run(*in_bridge, "link", "set", "br0", "up")
    _run("ip", "link", "add", f"{prefix}r", "type", "veth", "peer", "name", "root0", "netns",
         bridge_ns)
    _run(*in_bridge, "link", "set", "root0", "master", "br0", "up")
    _run("ip", "addr", "add", f"{subnet}.1/24", "dev", f"{prefix}r")
    _run("ip", "link", "set", f"{prefix}r", "up")
    hosts: list[tuple[str | None, str]] = []
    for i in range(count):
        ns, address = f"{prefix}h{i}", f"{subnet}.{10 + i}"
        _run("ip", "netns", "add", ns)
        net._teardown.insert(0, ["ip", "netns", "del", ns])
        _run("ip", "link", "add", f"{prefix}v{i}", "type", "veth", "peer", "name", "eth0",
             "netns", ns)
        _run("ip", "link", "set", f"{prefix}v{i}", "netns", bridge_ns)
        _run(*in_bridge, "link", "set", f"{prefix}v{i}", "master", "br0", "up")
        in_host = ["ip", "netns", "exec", ns, "ip"]
        _run(*in_host, "addr", "add", f"{address}/24", "dev", "eth0")
        _run(*in_host, "link", "set", "eth0", "up")
        _run(*in_host, "link", "set", "lo", "up")
        hosts.append((ns, address))
    return hosts


def start_network(base: Path, count: int = 2, mode: str | None = None) -> SSHNetwork:
    """`count` SSH hosts under `base` (keys, configs, logs, image dirs), in network namespaces
    unless they cannot be made or `mode` (else CLOUDCTL_TEST_SSH_NET) is "loopback". Stop
    with `stop_network`."""
    started = time.perf_counter()
    mode = mode or os.environ.get("CLOUDCTL_TEST_SSH_NET") or "netns"
    base.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation dir
    client_key = base / "client_ed25519"
    _keygen(client_key)
    shutil.copy(f"{client_key}.pub", base / "authorized_keys")
    if mode == "netns":
        net = SSHNetwork(mode="netns", reason="", hosts=[], setup_seconds=0.0)
        try:
            if os.geteuid() != 0:
                raise OSError("not root")
            if not shutil.which("ip"):
                raise OSError("no `ip` command (iproute2)")
            prefix = f"cc{os.getpid()}{secrets.token_hex(1)}"  # `{prefix}v9` fits IFNAMSIZ
            places = _make_namespaces(prefix, count, net)
            net.reason = f"network namespaces {prefix}h0..h{count - 1}"
            _start_hosts(net, base, client_key, places)
        except OSError as error:
            stop_network(net)
            reason = f"network namespaces unavailable ({error})"
        else:
            net.setup_seconds = time.perf_counter() - started
            return net
    else:
        reason = f"loopback requested ({mode})"
    net = SSHNetwork(mode="loopback", reason=reason, hosts=[], setup_seconds=0.0)
    _start_hosts(net, base, client_key, [(None, "127.0.0.1")] * count)
    net.setup_seconds = time.perf_counter() - started
    return net


def _start_hosts(net: SSHNetwork, base: Path, client_key: Path,
                 places: Sequence[tuple[str | None, str]]) -> None:
    """An sshd per (namespace, address); on failure, whatever started is stopped."""
    known_hosts = base / "known_hosts"
    lines = []
    try:
        for i, (namespace, address) in enumerate(places):
            host_dir = base / f"host-{i}"
            shutil.rmtree(host_dir, ignore_errors=True)  # a failed namespace attempt's
            (host_dir / "images").mkdir(parents=True)
            port = 22 if namespace else _free_port()
            config = _sshd_config(host_dir, address, port, base / "authorized_keys")
            log = host_dir / "sshd.log"
            proc = _start_sshd(config, log, namespace)
            net._procs.append(proc)
            _wait_for_banner(address, port, proc, log)
            lines.append(_known_host_line(address, port, host_dir))
            target = f"root@{address}" + ("" if port == 22 else f":{port}")
            net.hosts.append(SSHTestHost(name=f"ssh-{i}", target=target, address=address,
                                         port=port, key_file=str(client_key),
                                         known_hosts=str(known_hosts),
                                         image_dir=str(host_dir / "images"),
                                         namespace=namespace, pid=proc.pid))
        known_hosts.write_text("".join(lines))
    except BaseException:
        stop_network(net)
        raise


def _undo(net: SSHNetwork) -> None:
    for cmd in net._teardown:
        subprocess.run(cmd, capture_output=True)
    net._teardown.clear()


def stop_network(net: SSHNetwork) -> None:
    for proc in net._procs:
        proc.terminate()
    for proc in net._procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    net._procs.clear()
    _undo(net)


# -- fixtures (tests/conftest.py imports them) ---------------------------------------------

@pytest.fixture(scope="session")
def ssh_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHNetwork]:
    """Two real sshds (namespaces, else loopback) for the whole session."""
    if not Path(SSHD).exists():
        pytest.skip("sshd is not installed (scripts/setup.sh installs openssh-server)")
    net = start_network(tmp_path_factory.mktemp("sshnet"))
    try:
        yield net
    finally:
        stop_network(net)


@pytest.fixture
def ssh_hosts(ssh_network: SSHNetwork) -> list[SSHTestHost]:
    """The session's SSH hosts, with what earlier tests left there (images, VM disks, memory
    images) removed: each test starts on empty hosts, even after one failed halfway."""
    for host in ssh_network.hosts:
        root = Path(host.image_dir).parent
        for work in (host.image_dir, root / "disks", root / "saves"):
            shutil.rmtree(work, ignore_errors=True)
        Path(host.image_dir).mkdir(parents=True)
    return list(ssh_network.hosts)
