"""Image transfer to hosts over real SSH (sshd per network namespace, else on loopback), and
the per-host image cache: hits, LRU eviction, pinning, host keys, interrupted transfers."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cloudctl.drivers.image_cache import (
    FileImageCache,
    ImageCache,
    open_image_cache,
    parse_size,
    sha256_of,
)
from cloudctl.drivers.ssh import SSHConnection, SSHTarget
from paths import REPO as ROOT
from sshd import SSHNetwork, SSHTestHost, StoppedProcesses

from cloudctl.errors import BackendError, InvalidInput, NotFound, Unsatisfiable

MIB = 1 << 20


def image(tmp: Path, name: str, mib: float, fmt: str = "qcow2") -> tuple[Path, str, int]:
    """A local image file of random bytes: (path, sha256, size)."""
    path = tmp / f"{name}.{fmt}"
    path.write_bytes(os.urandom(int(mib * MIB)))
    return path, sha256_of(path), path.stat().st_size


def cache(host: SSHTestHost, **options: object) -> FileImageCache:
    return open_image_cache(host.target, host.options(progress=False, **options))


def connection(host: SSHTestHost, **options: object) -> SSHConnection:
    return SSHConnection(SSHTarget.parse(host.target, host.options(**options)))


def test_two_independent_hosts(ssh_network: SSHNetwork, ssh_hosts: list[SSHTestHost]) -> None:
    assert len(ssh_hosts) >= 2
    print(f"ssh test hosts: {ssh_network.mode} ({ssh_network.reason}), set up in "
          f"{ssh_network.setup_seconds:.2f} s")
    dirs = {h.image_dir for h in ssh_hosts}
    assert len(dirs) == len(ssh_hosts)
    if ssh_network.mode == "netns":
        seen = set()
        for host in ssh_hosts:
            with connection(host) as conn:
                # SSH_CONNECTION: client address, client port, server address, server port
                seen.add(conn.check_output("echo $SSH_CONNECTION").split()[2])
        assert seen == {h.address for h in ssh_hosts}


def test_transfer_verified_by_remote_sha256(ssh_hosts: list[SSHTestHost],
                                            tmp_path: Path) -> None:
    path, sha, size = image(tmp_path, "base", 4)
    seen: list[tuple[int, int]] = []
    with cache(ssh_hosts[0]) as host_cache:
        assert isinstance(host_cache, ImageCache)
        result = host_cache.ensure("base", path, sha, size, progress=lambda s, t:
                                   seen.append((s, t)))
        remote_path, transferred, seconds, sent = result
        assert transferred and sent == size and seconds > 0
        assert remote_path == f"{ssh_hosts[0].image_dir}/{sha}.qcow2"
        assert seen[-1] == (size, size)
    with connection(ssh_hosts[0]) as conn:
        assert conn.sha256(remote_path) == sha
        assert conn.stat(remote_path).size == size  # type: ignore[union-attr]
        assert [f.name for f in conn.listdir(ssh_hosts[0].image_dir)
                if ".part-" in f.name] == []


def test_second_ensure_is_a_hit_and_another_host_transfers(ssh_hosts: list[SSHTestHost],
                                                           tmp_path: Path) -> None:
    path, sha, size = image(tmp_path, "base", 2)
    first, second = cache(ssh_hosts[0]), cache(ssh_hosts[1], verify="sha256")
    with first, second:
        assert first.ensure("base", path, sha, size).transferred
        before = first.contents()[0].last_used
        time.sleep(0.01)
        hit = first.ensure("base", path, sha, size)
        assert not hit.transferred and hit.bytes == 0 and hit.seconds < 0.5
        assert first.contents()[0].last_used > before
        assert first.contents()[0].names == ("base",)
        other = second.ensure("base", path, sha, size)
        assert other.transferred and other.bytes == size
        assert not second.ensure("base", path, sha, size).transferred  # checksum checked


def test_damaged_copy_is_replaced(ssh_hosts: list[SSHTestHost], tmp_path: Path) -> None:
    path, sha, size = image(tmp_path, "base", 1)
    with cache(ssh_hosts[0]) as host_cache:
        remote = host_cache.ensure("base", path, sha, size).remote_path
        with connection(ssh_hosts[0]) as conn:
            conn.check_output(f"truncate -s 100 {remote}")
        again = host_cache.ensure("base", path, sha, size)
        assert again.transferred
        with connection(ssh_hosts[0]) as conn:
            assert conn.sha256(remote) == sha


def test_checksum_mismatch_never_lands(ssh_hosts: list[SSHTestHost], tmp_path: Path) -> None:
    path, _, size = image(tmp_path, "base", 1)
    claimed = "0" * 64
    with cache(ssh_hosts[0], verify="sha256") as host_cache:
        with pytest.raises(BackendError, match="expected 000000000000") as error:
            host_cache.ensure("base", path, claimed, size)
        assert "\n" not in str(error.value)
    assert os.listdir(ssh_hosts[0].image_dir) == []


def test_lru_eviction_keeps_pinned_and_refuses_too_big(ssh_hosts: list[SSHTestHost],
                                                       tmp_path: Path) -> None:
    images = {name: image(tmp_path, name, 1) for name in "abcd"}
    clock = iter(range(1000, 2000))
    with open_image_cache(ssh_hosts[0].target,
                          ssh_hosts[0].options(cache_limit="3.5M", progress=False),
                          clock=lambda: float(next(clock))) as host_cache:
        for name in "abc":
            assert host_cache.ensure(name, *images[name]).transferred
        assert not host_cache.ensure("a", *images["a"]).transferred  # a is now the newest
        result = host_cache.ensure("d", *images["d"])  # b is the least recently used
        assert result.evicted == (f"{ssh_hosts[0].image_dir}/{images['b'][1]}.qcow2",)
        assert sorted(n for e in host_cache.contents() for n in e.names) == ["a", "c", "d"]
        # c is now the oldest, but pinned (by name): a goes instead.
        result = host_cache.ensure("b", *images["b"], pinned={"c"})
        assert [e.names for e in host_cache.contents()] == [("c",), ("d",), ("b",)]
        # pinned by path and by checksum: nothing may go, so no room.
        pins = {host_cache.contents()[0].path, images["d"][1], "b"}
        with pytest.raises(Unsatisfiable, match="no room"):
            host_cache.ensure("a", *images["a"], pinned=pins)
        big = image(tmp_path, "big", 4)
        with pytest.raises(Unsatisfiable, match="exceeds the cache limit of 3.5 MiB"):
            host_cache.ensure("big", *big)
        assert len(host_cache.contents()) == 3


def test_unknown_host_key_is_rejected(ssh_hosts: list[SSHTestHost], tmp_path: Path) -> None:
    host = ssh_hosts[0]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(BackendError) as error:
        connection(host, known_hosts=str(empty)).connect()
    message = str(error.value)
    assert "unknown host key" in message and str(empty) in message
    assert host.address in message and "\n" not in message
    # Accepting new keys is explicit, records the key, and the recorded key then verifies.
    with connection(host, known_hosts=str(empty), accept_new_host_keys="true") as conn:
        assert conn.exec("true").status == 0
    assert host.address in empty.read_text()
    with connection(host, known_hosts=str(empty)) as conn:
        assert conn.exec("true").status == 0


def test_changed_host_key_is_rejected_even_when_accepting_new(ssh_hosts: list[SSHTestHost],
                                                             tmp_path: Path) -> None:
    host, other = ssh_hosts[0], ssh_hosts[1]
    other_key = Path(other.known_hosts).read_text().splitlines()[1].split()[1:]
    name = host.address if host.port == 22 else f"[{host.address}]:{host.port}"
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{name} {' '.join(other_key)}\n")
    with pytest.raises(BackendError, match="does not match"):
        connection(host, known_hosts=str(wrong), accept_new_host_keys=True).connect()


def test_connection_failures_are_one_line(ssh_hosts: list[SSHTestHost], tmp_path: Path) -> None:
    host = ssh_hosts[0]
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
                   check=True)
    with pytest.raises(BackendError, match="authentication failed") as error:
        connection(host, key_file=str(stranger)).connect()
    assert "\n" not in str(error.value)
    closed = SSHTarget.parse(f"root@127.0.0.1:{_closed_port()}", host.options())
    with pytest.raises(BackendError, match="cannot connect") as error:
        SSHConnection(closed).connect()
    assert "\n" not in str(error.value)


@pytest.fixture
def stopped(ssh_hosts: list[SSHTestHost]) -> Iterator[StoppedProcesses]:
    """Processes a test stops with SIGSTOP; afterwards killed (connections) or continued (the
    listener), so the host serves the next test."""
    processes = StoppedProcesses()
    yield processes
    processes.release(cont=[ssh_hosts[0].pid])


def test_a_wedged_connection_is_replaced_not_waited_on(ssh_hosts: list[SSHTestHost],
                                                       stopped: StoppedProcesses) -> None:
    host = ssh_hosts[0]
    before = host.sessions()
    with connection(host, connect_timeout=1) as conn:
        assert conn.check_output("echo one").strip() == "one"
        wedged = host.sessions() - before
        assert wedged
        # The server side of this connection stops answering (its shell may be gone already).
        assert stopped.stop(wedged)
        started = time.monotonic()
        # paramiko alone waits an hour for the channel; this gives up after connect_timeout
        # and carries on over a new connection.
        assert conn.check_output("echo two").strip() == "two"
        assert time.monotonic() - started < 5
        assert conn.listdir(host.image_dir) == []


def test_a_silent_host_fails_in_bounded_time_in_one_line(ssh_hosts: list[SSHTestHost],
                                                         stopped: StoppedProcesses) -> None:
    host = ssh_hosts[0]
    with connection(host, connect_timeout=1) as conn:
        conn.connect()
        # It takes connections and answers nothing. A session of an earlier test may end
        # between being listed and being stopped: it is skipped, not an error.
        assert stopped.stop([host.pid]) == [host.pid]
        stopped.stop(host.sessions())
        started = time.monotonic()
        with pytest.raises(BackendError) as error:
            conn.listdir(host.image_dir)
        assert time.monotonic() - started < 5
    message = str(error.value)
    assert message.startswith(f"ssh {host.target}") and "\n" not in message, message
    assert message.endswith("cannot connect: no SSH answer within 1 s"), message


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_failed_transfer_leaves_no_file_under_the_final_name(ssh_hosts: list[SSHTestHost],
                                                             tmp_path: Path) -> None:
    path, sha, size = image(tmp_path, "base", 3)

    def fail_midway(sent: int, total: int) -> None:
        if sent > total // 2:
            raise BackendError("link dropped")

    with cache(ssh_hosts[0]) as host_cache:
        with pytest.raises(BackendError, match="link dropped"):
            host_cache.ensure("base", path, sha, size, progress=fail_midway)
        assert host_cache.contents() == []
    assert os.listdir(ssh_hosts[0].image_dir) == []  # the temporary file was removed too


def test_killed_transfer_leaves_no_file_under_the_final_name(ssh_hosts: list[SSHTestHost],
                                                             tmp_path: Path) -> None:
    host = ssh_hosts[0]
    path, sha, size = image(tmp_path, "base", 16)
    final = Path(host.image_dir) / f"{sha}.qcow2"
    script = (
        "import sys, time\n"
        "from cloudctl.drivers.ssh import SSHConnection, SSHTarget\n"
        f"target = SSHTarget.parse({host.target!r}, {host.options()!r})\n"
        "def slow(sent, total):\n"
        "    if sent >= 4 << 20:\n"
        "        print('halfway', flush=True); time.sleep(60)\n"
        f"SSHConnection(target).put({str(path)!r}, {str(final)!r}, slow)\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "halfway\n"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert not final.exists()
    parts = [name for name in os.listdir(host.image_dir) if ".part-" in name]
    assert len(parts) == 1  # the dead transfer's temporary file, never under the final name
    with cache(host) as host_cache:
        assert host_cache.contents() == []
        assert host_cache.ensure("base", path, sha, size).transferred
    assert hashlib.sha256(final.read_bytes()).hexdigest() == sha


@pytest.mark.parametrize("text", ["", "host", "root@", "@host", "root@host:0",
                                  "root@host:99999", "root@host:ssh", "root@ho st",
                                  "root@host:22:/x", "root@[::1"])
def test_bad_targets_are_one_line_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput) as error:
        SSHTarget.parse(text)
    assert "\n" not in str(error.value)


def test_target_parsing_and_options() -> None:
    target = SSHTarget.parse("root@10.0.0.2:2222", {"key-file": "/k", "image_dir": "/img/",
                                                     "accept_new_host_keys": "yes"})
    assert (target.user, target.host, target.port, target.key_file, target.image_dir,
            target.accept_new_host_keys) == ("root", "10.0.0.2", 2222, "/k", "/img", True)
    assert target.known_hosts_name == "[10.0.0.2]:2222"
    assert str(SSHTarget.parse("ssh://admin@[fd00::2]")) == "admin@[fd00::2]:22"
    assert SSHTarget.parse("admin@host-1.example").known_hosts_name == "host-1.example"
    with pytest.raises(InvalidInput, match="unknown option"):
        SSHTarget.parse("root@h", {"keyfile": "/k"})
    with pytest.raises(InvalidInput, match="absolute"):
        SSHTarget.parse("root@h", {"image_dir": "images"})
    with pytest.raises(InvalidInput, match="true or false"):
        SSHTarget.parse("root@h", {"accept_new_host_keys": "maybe"})
    with pytest.raises(InvalidInput, match="unknown option"):
        open_image_cache("root@h", {"cache-limit": "1G", "bogus": 1})
    assert parse_size("1.5G") == 3 * 512 * MIB and parse_size("512MiB") == 512 * MIB
    assert parse_size(4096) == 4096 and parse_size("100") == 100
    with pytest.raises(InvalidInput):
        parse_size("lots")


def test_local_cache_looks_the_same(tmp_path: Path) -> None:
    path, sha, size = image(tmp_path, "base", 1, fmt="raw")
    other = image(tmp_path, "other", 1)
    with open_image_cache("local", {"image_dir": str(tmp_path / "cache"),
                                    "cache_limit": "1.5M"}) as local:
        assert isinstance(local, ImageCache)
        remote_path, transferred, _, sent = local.ensure("base", path, sha, size)
        assert transferred and sent == size and remote_path.endswith(f"{sha}.raw")
        assert sha256_of(remote_path) == sha
        assert not local.ensure("base", path, sha, size).transferred
        assert local.ensure("other", *other).evicted == (remote_path,)
        assert local.remove("other") and local.contents() == []
        assert not local.remove("other")
    with pytest.raises(InvalidInput, match="image_dir is required"):
        open_image_cache("local", {})
    with pytest.raises(NotFound):
        open_image_cache("local", {"image_dir": str(tmp_path)}).ensure(
            "gone", tmp_path / "gone.qcow2", sha, size)
    with pytest.raises(InvalidInput, match="not the 5 recorded"):
        open_image_cache("local", {"image_dir": str(tmp_path)}).ensure("base", path, sha, 5)


def test_progress_bar_goes_to_stderr_only(ssh_hosts: list[SSHTestHost], tmp_path: Path) -> None:
    path, sha, size = image(tmp_path, "base", 2)
    host = ssh_hosts[0]
    script = (
        "from cloudctl.drivers.image_cache import open_image_cache\n"
        f"c = open_image_cache({host.target!r}, {host.options(progress=True)!r})\n"
        f"c.ensure('base', {str(path)!r}, {sha!r}, {size})\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "base" in proc.stderr and "MB" in proc.stderr


def test_importing_the_drivers_does_not_import_paramiko() -> None:
    code = ("import sys, cloudctl.drivers.image_cache, cloudctl.drivers.ssh\n"
            "assert 'paramiko' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_measured_timings(ssh_hosts: list[SSHTestHost], tmp_path: Path) -> None:
    """Connect, 1 MiB and 64 MiB transfer times (medians), printed for the record (-s)."""
    host = ssh_hosts[0]
    connects = []
    for _ in range(3):
        with connection(host) as conn:
            conn.connect()
            connects.append(conn.connect_seconds or 0.0)
    rows = [f"connect {sorted(connects)[1] * 1000:.0f} ms"]
    for mib in (1, 64):
        path, _, size = image(tmp_path, f"t{mib}", mib)
        times = []
        with connection(host) as conn:
            conn.connect()
            for i in range(3):
                started = time.perf_counter()
                assert conn.put(path, f"{host.image_dir}/t{mib}-{i}") == size
                times.append(time.perf_counter() - started)
        rows.append(f"{mib} MiB put {sorted(times)[1] * 1000:.0f} ms")
    print("ssh timings: " + ", ".join(rows))
