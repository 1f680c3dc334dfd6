"""Every libvirt connection is bounded (issue 14, finding 6): a host that takes the TCP
connection (or a daemon that takes the socket connection) and never answers costs a bounded
time and ends in one line with exit 5; Ctrl-C interrupts the wait (exit 130); once connected,
libvirt's keep-alive fails a call to a daemon that stops answering.

The silent hosts are listeners of this test on loopback or on a socket file of its own; the
daemon that stops answering is a private libvirtd (its own socket and run directory, an
unprivileged user's) that this test starts, stops with SIGSTOP and ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import Cli
from cloudctl.drivers.libvirt import ConnectionBounds, LibvirtDriver, bounded_uri

from cloudctl.errors import BackendError, InvalidInput

# Silent listeners, private libvirtds and child processes: real daemons and processes.
pytestmark = pytest.mark.real

CONNECT_TIMEOUT = 2


def default_sigint() -> None:
    """In a child: SIGINT as a foreground shell gives it. A test run in the background (or
    under nohup) has SIGINT ignored, and a child would inherit that: Python would then never
    raise KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class SilentListener:
    """Takes connections and never answers (holds them open until closed)."""

    def __init__(self, family: int = socket.AF_INET, path: Path | None = None) -> None:
        self.server = socket.socket(family, socket.SOCK_STREAM)
        self.server.bind(str(path) if path is not None else ("127.0.0.1", 0))
        self.server.listen(16)
        self.accepted = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.server.getsockname()[1])

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # closed
            self._held.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self.server.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentListener]:
    listener = SilentListener()
    yield listener
    listener.close()


def bounded_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                connect_timeout: float = CONNECT_TIMEOUT) -> Cli:
    cli = Cli(tmp_path, monkeypatch)
    cli("init")
    with open(tmp_path / "config.toml", "a") as config:
        for driver in ("qemu", "xen"):
            config.write(f"\n[drivers.{driver}]\nconnect_timeout = {connect_timeout}\n")
    return cli


def timed_host_add(cli: Cli, uri: str, driver: str = "qemu"
                   ) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = cli.process("host", "add", "silent", "--cpus", 1, "--memory", 512,
                       "--driver", driver, "--uri", uri)
    return done, time.monotonic() - started


@pytest.mark.parametrize(("driver", "transport"),
                         [("qemu", "ssh"), ("qemu", "tcp"), ("xen", "ssh")])
def test_a_silent_host_costs_a_bounded_time_and_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, silent: SilentListener,
        driver: str, transport: str) -> None:
    """ssh: ssh itself is bounded too (its ConnectTimeout); tcp: libvirt's own protocol,
    bounded by the worker thread's deadline alone."""
    cli = bounded_cli(tmp_path, monkeypatch)
    uri = f"{driver}+{transport}://{'root@' if transport == 'ssh' else ''}127.0.0.1:" \
          f"{silent.port}/system"
    done, seconds = timed_host_add(cli, uri, driver)
    print(f"host add {uri}: exit {done.exit_code} after {seconds:.2f} s "
          f"(connect_timeout {CONNECT_TIMEOUT} s)")
    assert done.exit_code == 5, done.stderr
    assert silent.accepted.is_set()
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {uri}: connect: "), done.stderr
    assert "SystemError" not in done.stderr and "Traceback" not in done.stderr
    # The timeout, plus a command's start on a loaded 2-core machine.
    assert seconds < CONNECT_TIMEOUT + 8
    assert cli.json("host", "list", "--no-probe") == []


def test_a_silent_local_socket_costs_a_bounded_time(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    sock = tmp_path / "libvirt-sock"
    listener = SilentListener(socket.AF_UNIX, sock)
    try:
        cli = bounded_cli(tmp_path, monkeypatch)
        uri = f"qemu+unix:///system?socket={sock}"
        done, seconds = timed_host_add(cli, uri)
    finally:
        listener.close()
    print(f"host add {uri}: exit {done.exit_code} after {seconds:.2f} s")
    assert done.exit_code == 5, done.stderr
    assert done.stderr.splitlines() == [
        f"Error: {uri}: connect: no answer within {CONNECT_TIMEOUT} s"]
    assert seconds < CONNECT_TIMEOUT + 8


def test_ctrl_c_interrupts_the_wait_for_a_silent_host(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      silent: SilentListener) -> None:
    cli = bounded_cli(tmp_path, monkeypatch, connect_timeout=120)
    command = shutil.which("cloudctl", path=str(Path(sys.executable).parent))
    assert command is not None
    child = subprocess.Popen([command, "host", "add", "silent", "--cpus", "1", "--memory", "512",
                              "--driver", "qemu", "--uri",
                              f"qemu+tcp://127.0.0.1:{silent.port}/system"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, **cli.env}, preexec_fn=default_sigint)
    try:
        assert silent.accepted.wait(60), "the command never connected"
        time.sleep(0.3)  # inside the wait for libvirt's answer
        interrupted = time.monotonic()
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
        seconds = time.monotonic() - interrupted
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    print(f"SIGINT to exit: {seconds:.2f} s")
    assert child.returncode == 130, stderr
    assert "Traceback" not in stderr and "SystemError" not in stderr
    assert seconds < 5


def test_ssh_transport_gets_ssh_bounds_and_batch_mode() -> None:
    bounds = ConnectionBounds(connect_timeout=7.5, keepalive_interval=4, keepalive_count=2)
    uri = bounded_uri("qemu+ssh://root@kvm-1/system?keyfile=/k", bounds)
    base, _, query = uri.partition("?")
    params = dict(item.split("=", 1) for item in query.split("&"))
    assert base == "qemu+ssh://root@kvm-1/system" and params["keyfile"] == "/k"
    assert params["no_tty"] == "1"
    wrapper = Path(params["command"])
    assert os.stat(wrapper).st_mode & 0o777 == 0o700
    assert ("exec ssh -o ConnectTimeout=8 -o ServerAliveInterval=4 -o ServerAliveCountMax=2 "
            '"$@"') in wrapper.read_text()
    # A command of the user's own is kept; other transports are left alone.
    own = "xen+ssh://root@xen-1/system?command=/usr/local/bin/myssh"
    assert "command=%2Fusr" not in bounded_uri(own, bounds)
    assert bounded_uri(own, bounds).count("command=") == 1
    for other in ("qemu:///system", "qemu+tcp://h/system", "qemu+libssh2://h/system"):
        assert bounded_uri(other, bounds) == other


@pytest.mark.parametrize("options", [{"connect_timeout": 0}, {"connect_timeout": "nan"},
                                     {"keepalive_interval": 1.5}, {"keepalive_count": -1},
                                     {"keepalive_interval": True}])
def test_connection_options_are_checked(options: dict[str, object]) -> None:
    with pytest.raises(InvalidInput, match="driver: keepalive|driver: connect_timeout"):
        LibvirtDriver("qemu:///system", options)


# -- a daemon that stops answering once connected ------------------------------------------

@pytest.fixture
def private_libvirtd() -> Iterator[tuple[str, int]]:
    """A libvirtd of this test alone, as an unprivileged user (a session daemon: its own
    socket and run directory, never the machine's); (its test-driver URI, its pid)."""
    libvirtd = shutil.which("libvirtd") or "/usr/sbin/libvirtd"
    if not Path(libvirtd).exists():
        pytest.skip("libvirtd is not installed (scripts/real-libvirt.sh install)")
    if os.geteuid() != 0:
        pytest.skip("needs root to run libvirtd as another user")
    # Not under pytest's tmp dirs: they are root's only, and the daemon runs as nobody.
    base = Path(tempfile.mkdtemp(prefix="cloudctl-test-libvirtd-"))
    os.chmod(base, 0o755)
    for name in ("home", "run", "config"):
        (base / name).mkdir()
        shutil.chown(base / name, "nobody")
    env = {"HOME": str(base / "home"), "XDG_RUNTIME_DIR": str(base / "run"),
           "XDG_CONFIG_HOME": str(base / "config"), "XDG_CACHE_HOME": str(base / "home"),
           "PATH": "/usr/sbin:/usr/bin:/bin"}
    socket_path = base / "run" / "libvirt" / "libvirt-sock"
    with open(base / "libvirtd.log", "wb") as log:
        daemon = subprocess.Popen([libvirtd], user="nobody", group="nogroup", extra_groups=[],
                                  env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not socket_path.exists():
            assert daemon.poll() is None, (base / "libvirtd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the private libvirtd did not start"
            time.sleep(0.05)
        yield f"test+unix:///default?socket={socket_path}", daemon.pid
    finally:
        daemon.send_signal(signal.SIGCONT)
        daemon.terminate()
        try:
            daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        shutil.rmtree(base, ignore_errors=True)


def test_keepalive_fails_a_call_to_a_daemon_that_stops_answering(
        private_libvirtd: tuple[str, int]) -> None:
    uri, pid = private_libvirtd
    driver = LibvirtDriver(uri, {"keepalive_interval": 1, "keepalive_count": 2})
    try:
        assert driver.list_vms(prefix="test") == {"test": driver.state("test")}
        os.kill(pid, signal.SIGSTOP)  # our own child
        try:
            started = time.monotonic()
            with pytest.raises(BackendError) as error:
                driver.list_vms()
            seconds = time.monotonic() - started
        finally:
            os.kill(pid, signal.SIGCONT)
    finally:
        driver.close()
    print(f"a call to a stopped daemon failed after {seconds:.2f} s")
    message = str(error.value)
    assert message.startswith(f"{uri}: list domains: ") and "keepalive" in message, message
    assert "\n" not in message
    assert seconds < 1 * (2 + 1) + 5


def test_a_tick_on_a_stopped_daemon_is_bounded_and_ctrl_c_ends_it_with_130(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        private_libvirtd: tuple[str, int]) -> None:
    """A tick whose host's daemon stopped answering puts the host in error within the
    connect timeout; Ctrl-C during that wait ends the tick with 130, never a SystemError."""
    uri, pid = private_libvirtd
    cli = bounded_cli(tmp_path, monkeypatch)
    cli("host", "add", "lazy", "--cpus", 1, "--memory", 512, "--driver", "qemu", "--uri", uri)
    os.kill(pid, signal.SIGSTOP)  # our own child
    try:
        started = time.monotonic()
        done = cli.process("tick")
        seconds = time.monotonic() - started
        (host,) = cli.json("host", "list", "--no-probe")
        command = shutil.which("cloudctl", path=str(Path(sys.executable).parent))
        assert command is not None
        child = subprocess.Popen([command, "tick"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, **cli.env}, preexec_fn=default_sigint)
        time.sleep(1.0)  # most likely inside the wait for the daemon
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
    finally:
        os.kill(pid, signal.SIGCONT)
    print(f"tick against a stopped daemon: exit {done.exit_code} after {seconds:.2f} s")
    assert seconds < CONNECT_TIMEOUT + 8, done.stderr
    assert host["status"] == "error", host
    assert host["status_reason"] == (f"host lazy stopped answering: {uri}: connect: no answer "
                                     f"within {CONNECT_TIMEOUT} s"), host
    assert child.returncode == 130, stderr
    assert "SystemError" not in stderr and "Traceback" not in stderr


CALL_ON_GO = """
import sys
from cloudctl.drivers.libvirt import LibvirtDriver
driver = LibvirtDriver(sys.argv[1], {"keepalive_interval": 60})
driver.list_vms()
print("connected", flush=True)
sys.stdin.readline()
try:
    driver.list_vms()
except KeyboardInterrupt:
    sys.exit(130)
sys.exit(0)
"""


def test_ctrl_c_interrupts_a_call_in_flight(private_libvirtd: tuple[str, int]) -> None:
    """A call already sent to a daemon that stopped answering (keep-alive a minute away):
    Ctrl-C ends the wait at once."""
    uri, pid = private_libvirtd
    child = subprocess.Popen([sys.executable, "-c", CALL_ON_GO, uri], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=default_sigint)
    try:
        assert child.stdin is not None and child.stdout is not None
        assert child.stdout.readline() == "connected\n"
        os.kill(pid, signal.SIGSTOP)  # our own child
        child.stdin.write("go\n")
        child.stdin.flush()
        time.sleep(0.5)
        interrupted = time.monotonic()
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
        seconds = time.monotonic() - interrupted
    finally:
        os.kill(pid, signal.SIGCONT)
        if child.poll() is None:
            child.kill()
            child.wait()
    print(f"SIGINT during a call in flight to exit: {seconds:.2f} s")
    assert child.returncode == 130, stderr
    assert seconds < 5
