"""Remote hosts over SSH: where a host is (`SSHTarget`) and one connection to it (`SSHConnection`).

paramiko is imported inside the functions that connect, so parsing a target, or importing this
module to read its types, costs nothing. Host keys are always verified against the known_hosts
file the target names; an unknown key is accepted (and recorded there) only when the target
says `accept_new_host_keys = true`. A changed key is never accepted. Every failure surfaces as
a one-line `BackendError` naming the host.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, cast

from cloudctl.errors import BackendError, CloudctlError, InvalidInput

DEFAULT_IMAGE_DIR = "/var/lib/cloudctl/images"
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
# Option names as `host add --option` and config tables give them; `-` and `_` both work.
TARGET_OPTIONS = frozenset({"key_file", "known_hosts", "image_dir", "accept_new_host_keys",
                            "connect_timeout", "io_timeout"})
_TARGET = re.compile(r"^(?:ssh://)?(?P<user>[A-Za-z0-9_.][A-Za-z0-9_.-]*)@"
                     r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]+))?/?$")
CHUNK = 256 * 1024
# What paramiko says when a server takes the TCP connection but never speaks SSH.
_SILENT = re.compile(r"protocol banner|No existing session")

Progress = Callable[[int, int], None]  # (bytes sent so far, total bytes)


def normalize_options(options: Mapping[str, object] | None) -> dict[str, object]:
    return {str(k).replace("-", "_"): v for k, v in (options or {}).items()}


def parse_bool(value: object, option: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise InvalidInput(f"option {option} must be true or false, not {value!r}")


@dataclass(frozen=True)
class SSHTarget:
    """A host reached over SSH, and where cloudctl keeps its images there."""

    user: str
    host: str
    port: int = 22
    key_file: str | None = None
    known_hosts: str = DEFAULT_KNOWN_HOSTS
    image_dir: str = DEFAULT_IMAGE_DIR
    accept_new_host_keys: bool = False
    connect_timeout: float = 10.0  # TCP connect, SSH banner, authentication, opening a channel
    io_timeout: float = 120.0      # the longest silence of the host mid-transfer

    @classmethod
    def parse(cls, text: str, options: Mapping[str, object] | None = None) -> SSHTarget:
        """`USER@HOST[:PORT]` (also `ssh://...`, `[IPv6]`), plus options: key_file, known_hosts,
        image_dir, accept_new_host_keys, connect_timeout, io_timeout (seconds)."""
        match = _TARGET.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise InvalidInput(f"invalid SSH target {text!r}: expected USER@HOST[:PORT]")
        port = int(match["port"] or 22)
        if not 1 <= port <= 65535:
            raise InvalidInput(f"invalid SSH target {text!r}: port {port} is not in 1-65535")
        opts = normalize_options(options)
        unknown = sorted(set(opts) - TARGET_OPTIONS)
        if unknown:
            raise InvalidInput(f"SSH target {text}: unknown option(s) {', '.join(unknown)} "
                               f"(known: {', '.join(sorted(TARGET_OPTIONS))})")
        image_dir = str(opts.get("image_dir", DEFAULT_IMAGE_DIR))
        if not image_dir.startswith("/"):
            raise InvalidInput(f"SSH target {text}: image_dir must be an absolute path, "
                               f"not {image_dir!r}")
        key_file = opts.get("key_file")
        return cls(user=match["user"], host=match["host"].strip("[]"), port=port,
                   key_file=None if key_file is None else str(key_file),
                   known_hosts=str(opts.get("known_hosts", DEFAULT_KNOWN_HOSTS)),
                   image_dir=image_dir.rstrip("/") or "/",
                   accept_new_host_keys=parse_bool(opts.get("accept_new_host_keys", False),
                                                   "accept_new_host_keys"),
                   connect_timeout=_seconds(opts, "connect_timeout", 10.0, text),
                   io_timeout=_seconds(opts, "io_timeout", 120.0, text))

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """The host as known_hosts spells it (`[host]:port` off port 22)."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def __str__(self) -> str:
        return self.address


def _seconds(opts: Mapping[str, object], option: str, default: float, target: str) -> float:
    try:
        value = float(opts.get(option, default))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput(f"SSH target {target}: {option} must be a number of "
                           f"seconds") from None
    if not value > 0:
        raise InvalidInput(f"SSH target {target}: {option} must be positive")
    return value


@dataclass(frozen=True)
class FileStat:
    name: str
    size: int
    mtime: float


@dataclass(frozen=True)
class ExecResult:
    status: int
    stdout: str
    stderr: str


def _paramiko() -> Any:
    import logging

    import paramiko  # type: ignore[import-untyped]

    # paramiko logs transport errors with tracebacks; ours is one line on the way out.
    logger = logging.getLogger("paramiko")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
    return paramiko


class SSHConnection:
    """One SSH connection (opened on first use) with an SFTP channel for files."""

    def __init__(self, target: SSHTarget) -> None:
        self.target = target
        self._client: Any = None
        self._sftp: Any = None
        self.connect_seconds: float | None = None

    def __enter__(self) -> SSHConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connecting ---------------------------------------------------------------------------

    def connect(self) -> None:
        if self._client is not None:
            return
        paramiko = _paramiko()
        target = self.target
        known_hosts = Path(target.known_hosts).expanduser()
        if target.key_file and not Path(target.key_file).expanduser().is_file():
            raise BackendError(f"ssh {target}: key file {target.key_file} not found")
        client = paramiko.SSHClient()
        try:
            if known_hosts.exists():
                client.load_host_keys(str(known_hosts))
        except (OSError, paramiko.SSHException) as error:
            raise BackendError(f"ssh {target}: cannot read known_hosts {known_hosts}: "
                               f"{_reason(error)}") from None
        client.set_missing_host_key_policy(
            _record_new_key_policy(known_hosts) if target.accept_new_host_keys
            else paramiko.RejectPolicy())
        started = time.perf_counter()
        try:
            client.connect(target.host, port=target.port, username=target.user,
                           key_filename=(str(Path(target.key_file).expanduser())
                                         if target.key_file else None),
                           look_for_keys=target.key_file is None,
                           allow_agent=target.key_file is None,
                           timeout=target.connect_timeout,
                           banner_timeout=target.connect_timeout,
                           auth_timeout=target.connect_timeout)
        except paramiko.BadHostKeyException:
            client.close()
            raise BackendError(f"ssh {target}: host key for {target.known_hosts_name} does "
                               f"not match {known_hosts} (changed key; refusing to "
                               f"connect)") from None
        except paramiko.AuthenticationException as error:
            client.close()
            raise BackendError(f"ssh {target}: authentication failed"
                               f"{' with key ' + target.key_file if target.key_file else ''}: "
                               f"{_reason(error)}") from None
        except paramiko.SSHException as error:
            client.close()
            if "not found in known_hosts" in str(error):
                raise BackendError(
                    f"ssh {target}: unknown host key for {target.known_hosts_name}: not in "
                    f"{known_hosts} (add it, e.g. with ssh-keyscan, or set "
                    f"accept_new_host_keys=true)") from None
            if isinstance(error, paramiko.SSHException) and _SILENT.search(str(error)):
                raise BackendError(f"ssh {target}: cannot connect: no SSH answer within "
                                   f"{target.connect_timeout:g} s") from None
            raise BackendError(f"ssh {target}: {_reason(error)}") from None
        except (OSError, EOFError) as error:
            client.close()
            raise BackendError(f"ssh {target}: cannot connect: {_reason(error)}") from None
        except BaseException:
            client.close()
            raise
        self.connect_seconds = time.perf_counter() - started
        try:  # many small requests, each waiting for its answer: Nagle would hold each ~40 ms
            client.get_transport().sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass  # not a TCP socket
        self._client = client

    def _channel(self, action: str) -> Any:
        """A new session channel whose reads and writes give up after `io_timeout` of silence.
        A host that does not answer the channel's opening within `connect_timeout` (a wedged
        connection: paramiko alone would wait an hour) gets one fresh connection; nothing was
        sent on the channel yet, so trying again is safe. A host that refuses the channel is
        not asked twice."""
        paramiko = _paramiko()
        for attempt in (1, 2):
            self.connect()
            try:
                channel = self._client.get_transport().open_session(
                    timeout=self.target.connect_timeout)
                channel.settimeout(self.target.io_timeout)
                return channel
            except paramiko.ChannelException as error:
                raise BackendError(f"ssh {self.target}: {action}: refused: "
                                   f"{_reason(error)}") from None
            except Exception as error:  # SSHException (timeout), EOFError, OSError
                self.close()
                if attempt == 2:
                    raise BackendError(f"ssh {self.target}: {action}: "
                                       f"{_reason(error)}") from None
        raise AssertionError("unreachable")

    @contextmanager
    def _answered_within(self, seconds: float, action: str) -> Iterator[None]:
        """paramiko waits for the answer to a channel request (exec, subsystem) without a
        limit; a host silent for `seconds` has its connection closed, which ends the wait."""
        transport, silent = self._client.get_transport(), threading.Event()

        def give_up() -> None:
            silent.set()
            transport.close()

        watchdog = threading.Timer(seconds, give_up)
        watchdog.daemon = True
        watchdog.start()
        try:
            yield
        except Exception:
            if silent.is_set():
                raise BackendError(f"ssh {self.target}: {action}: no answer within "
                                   f"{seconds:g} s") from None
            raise
        finally:
            watchdog.cancel()

    def _sftp_client(self) -> Any:
        if self._sftp is None:
            channel = self._channel("cannot open SFTP")
            try:
                with self._answered_within(self.target.connect_timeout, "cannot open SFTP"):
                    channel.invoke_subsystem("sftp")
                self._sftp = _paramiko().SFTPClient(channel)
            except Exception as error:  # paramiko raises SSHException or OSError here
                channel.close()
                if isinstance(error, CloudctlError):
                    raise
                raise BackendError(f"ssh {self.target}: cannot open SFTP: "
                                   f"{_reason(error)}") from None
        return self._sftp

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        if self._client is not None:
            self._client.close()
            self._client = None

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Whatever paramiko or the socket raises while doing `action`, as one line."""
        try:
            yield
        except CloudctlError:
            raise
        except Exception as error:  # IOError, SSHException, EOFError, socket.timeout ...
            raise BackendError(f"ssh {self.target}: {action}: {_reason(error)}") from None

    # -- commands -----------------------------------------------------------------------------

    def exec(self, cmd: str, timeout: float | None = 300.0) -> ExecResult:
        """Run `cmd` in the remote shell; a non-zero exit status is returned, not raised.
        `timeout` bounds the wait for its output (None: `io_timeout`)."""
        channel = self._channel(f"exec {cmd!r}")
        with self._errors(f"exec {cmd!r}"), channel:
            channel.settimeout(self.target.io_timeout if timeout is None else timeout)
            with self._answered_within(self.target.connect_timeout, f"exec {cmd!r}"):
                channel.exec_command(cmd)
            stdout, stderr = channel.makefile("rb"), channel.makefile_stderr("rb")
            out = stdout.read().decode(errors="replace")
            err = stderr.read().decode(errors="replace")
            status = channel.recv_exit_status()
        return ExecResult(status, out, err)

    def check_output(self, cmd: str, timeout: float | None = 300.0) -> str:
        result = self.exec(cmd, timeout)
        if result.status != 0:
            detail = (result.stderr.strip().splitlines() or [f"exit status {result.status}"])
            raise BackendError(f"ssh {self.target}: {cmd!r} failed: {detail[-1]}")
        return result.stdout

    def sha256(self, path: str) -> str:
        out = self.check_output(f"sha256sum -b -- {shlex.quote(path)}")
        return out.split()[0] if out.split() else ""

    # -- files --------------------------------------------------------------------------------

    def put(self, local_path: str | os.PathLike[str], remote_path: str,
            progress: Progress | None = None,
            before_rename: Callable[[str], None] | None = None) -> int:
        """Copy a local file to `remote_path`; returns bytes sent. The data goes to a temporary
        name in the same directory, is fsynced and then renamed, so the final name only ever
        holds a complete file. `before_rename(temp_path)` may check the temporary file first."""
        try:
            source = open(local_path, "rb")
        except OSError as error:
            raise BackendError(f"ssh {self.target}: cannot read {local_path}: "
                               f"{_reason(error)}") from None
        with source:
            total = os.fstat(source.fileno()).st_size
            return self._upload(source, total, remote_path, progress, before_rename)

    def write_bytes(self, path: str, data: bytes) -> None:
        """Replace `path` atomically (temporary name, fsync, rename)."""
        self._upload(io.BytesIO(data), len(data), path)

    def put_stream(self, source: BinaryIO, total: int, remote_path: str,
                   progress: Progress | None = None,
                   before_rename: Callable[[str], None] | None = None) -> int:
        """As `put`, from an open file (another host's, say) of `total` bytes."""
        return self._upload(source, total, remote_path, progress, before_rename)

    @contextmanager
    def reader(self, path: str) -> Iterator[tuple[BinaryIO, int]]:
        """The file at `path` open for reading, and its size. A read that fails raises a
        BackendError naming this host, even inside another host's upload."""
        sftp = self._sftp_client()
        with self._errors(f"read {path}"):
            handle = sftp.open(path, "rb")
            size = int(handle.stat().st_size or 0)
            handle.prefetch(size)
        try:
            yield cast(BinaryIO, _NamedReads(handle, self, path)), size
        finally:
            handle.close()

    def chmod(self, path: str, mode: int) -> None:
        with self._errors(f"chmod {path}"):
            self._sftp_client().chmod(path, mode)

    def _upload(self, source: BinaryIO, total: int, remote_path: str,
                progress: Progress | None = None,
                before_rename: Callable[[str], None] | None = None) -> int:
        sftp = self._sftp_client()
        temp = temp_name(remote_path)
        try:
            with self._errors(f"write {remote_path}"):
                sent = self._send(sftp, source, temp, total, progress)
            if before_rename is not None:
                before_rename(temp)
            with self._errors(f"rename {temp} to {remote_path}"):
                sftp.posix_rename(temp, remote_path)
        except BaseException:
            self._discard(temp)
            raise
        return sent

    def _send(self, sftp: Any, source: BinaryIO, temp: str, total: int,
              progress: Progress | None) -> int:
        sent = 0
        with sftp.open(temp, "wb") as out:
            out.chmod(0o600)  # before any byte of it is written
            out.set_pipelined(True)
            while True:
                chunk = source.read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                sent += len(chunk)
                if progress is not None:
                    progress(sent, total)
            out.flush()
            _fsync(sftp, out)
        return sent

    def _discard(self, path: str) -> None:
        try:
            self._sftp_client().remove(path)
        except Exception:  # the connection may be what failed; a stale temp name is harmless
            pass

    def stat(self, path: str) -> FileStat | None:
        """None when there is no such file."""
        sftp = self._sftp_client()
        try:
            attrs = sftp.stat(path)
        except FileNotFoundError:
            return None
        except Exception as error:
            raise BackendError(f"ssh {self.target}: stat {path}: {_reason(error)}") from None
        return FileStat(PurePosixPath(path).name, int(attrs.st_size or 0),
                        float(attrs.st_mtime or 0))

    def exists(self, path: str) -> bool:
        return self.stat(path) is not None

    def remove(self, path: str) -> None:
        """Missing -> no-op."""
        sftp = self._sftp_client()
        try:
            sftp.remove(path)
        except FileNotFoundError:
            pass
        except Exception as error:
            raise BackendError(f"ssh {self.target}: remove {path}: {_reason(error)}") from None

    def listdir(self, path: str) -> list[FileStat]:
        """The entries of directory `path` with sizes and mtimes; a missing directory is empty."""
        sftp = self._sftp_client()
        try:
            entries = sftp.listdir_attr(path)
        except FileNotFoundError:
            return []
        except Exception as error:
            raise BackendError(f"ssh {self.target}: list {path}: {_reason(error)}") from None
        return sorted((FileStat(e.filename, int(e.st_size or 0), float(e.st_mtime or 0))
                       for e in entries), key=lambda f: f.name)

    def makedirs(self, path: str) -> None:
        self.check_output(f"mkdir -p -- {shlex.quote(path)}")

    def read_bytes(self, path: str) -> bytes | None:
        """None when there is no such file."""
        sftp = self._sftp_client()
        try:
            with sftp.open(path, "rb") as f:
                return bytes(f.read())
        except FileNotFoundError:
            return None
        except Exception as error:
            raise BackendError(f"ssh {self.target}: read {path}: {_reason(error)}") from None


class _NamedReads:
    """A remote file whose read errors name the host it is read from."""

    def __init__(self, handle: Any, connection: SSHConnection, path: str) -> None:
        self._handle, self._connection, self._path = handle, connection, path

    def read(self, size: int = -1) -> bytes:
        with self._connection._errors(f"read {self._path}"):
            return bytes(self._handle.read(size))


def temp_name(path: str, tag: str = "") -> str:
    """Where a file is written before it is renamed to `path`: hidden, same directory
    (`.NAME.TAGpart-HEX`)."""
    final = PurePosixPath(path)
    return str(final.with_name(f".{final.name}.{tag}part-{secrets.token_hex(4)}"))


def _fsync(sftp: Any, handle: Any) -> None:
    """OpenSSH's fsync@openssh.com extension; a server without it only loses durability
    across a power cut, never atomicity (the rename still publishes whole files only)."""
    from paramiko.sftp import CMD_EXTENDED  # type: ignore[import-untyped]

    try:
        sftp._request(CMD_EXTENDED, "fsync@openssh.com", handle.handle)
    except OSError:
        pass


def _record_new_key_policy(known_hosts: Path) -> Any:
    paramiko = _paramiko()

    class RecordNewKey(paramiko.MissingHostKeyPolicy):  # type: ignore[misc,name-defined]
        """Accept a key never seen before and append it to `known_hosts`. (A key that differs
        from a recorded one raises BadHostKeyException before any policy is asked.)"""

        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            client.get_host_keys().add(hostname, key.get_name(), key)
            try:
                known_hosts.parent.mkdir(parents=True, exist_ok=True)
                with open(known_hosts, "a") as f:
                    f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as error:
                raise BackendError(f"ssh {hostname}: cannot record its host key in "
                                   f"{known_hosts}: {_reason(error)}") from None

    return RecordNewKey()


def _reason(error: BaseException) -> str:
    """An exception as one short line."""
    if isinstance(error, socket.timeout):
        return "timed out"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = " ".join(str(error).split())
    return text or type(error).__name__
