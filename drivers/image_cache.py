"""The per-host image cache: a host keeps the images its VMs boot from, named by checksum.

An image lives on a host as `<image_dir>/<sha256>.<format>`; `ensure` makes sure it is there
(transferring it only when it is not), least-recently-used images are evicted to stay under a
size limit, and images a caller pins (in use) are never evicted. What is cached is read from
the directory itself, so it is always what is really there; a small index file next to the
images (`.cloudctl-index.json`, replaced atomically) only adds the images' names and when
each was last used. Local hosts and SSH hosts share one implementation over two file backends,
so they look the same to the enactment layer. No SQL here: callers record transfers.

Callers pass every image in use on the host as `pinned` (only they know which VMs use what).
Two processes updating one host's index at once may lose one's last-use times (the later
write wins); the images themselves are always whole, as each arrives under a temporary name
and is renamed into place. One cache object per thread: an SSH connection is not shared.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol, runtime_checkable

from cloudctl.drivers.ssh import (
    TARGET_OPTIONS,
    FileStat,
    Progress,
    SSHConnection,
    SSHTarget,
    normalize_options,
    parse_bool,
    temp_name,
)

from cloudctl.errors import BackendError, InvalidInput, NotFound, Unsatisfiable

INDEX = ".cloudctl-index.json"
CACHE_OPTIONS = frozenset({"image_dir", "cache_limit", "verify", "progress"})
VERIFY_MODES = ("size", "sha256")
IMAGE_FORMATS = ("qcow2", "raw", "img", "iso")
STALE_PART_SECONDS = 600.0  # a temporary file untouched this long belongs to a dead transfer
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PART = re.compile(r"^\..+\.part-[0-9a-f]+$")
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(i?B?)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class EnsureResult:
    """What `ensure` did; unpacks as (remote_path, transferred, seconds, bytes)."""

    remote_path: str
    transferred: bool
    seconds: float
    bytes: int
    evicted: tuple[str, ...] = ()  # paths removed to make room

    def __iter__(self) -> Iterator[object]:
        return iter((self.remote_path, self.transferred, self.seconds, self.bytes))


@dataclass(frozen=True)
class CachedImage:
    path: str
    sha256: str
    size: int
    last_used: float           # epoch seconds
    names: tuple[str, ...] = ()


@runtime_checkable
class ImageCache(Protocol):
    """A host's image cache, local or remote."""

    location: str               # for messages: "root@10.0.0.2:22:/var/lib/cloudctl/images"
    limit_bytes: int | None

    def ensure(self, image_name: str, local_path: str | os.PathLike[str], sha256: str,
               size: int, *, pinned: Collection[str] = (),
               progress: bool | Progress | None = None) -> EnsureResult:
        """The image on this host, transferred first unless already there (same name and
        size; also checksum with verify=sha256). Evicts least-recently-used unpinned images
        to stay under the limit. `pinned` holds names, sha256s or paths never to evict."""

    def contents(self) -> list[CachedImage]:
        """What the host holds, least recently used first."""

    def remove(self, key: str) -> bool:
        """Drop the image with this name, sha256 or path; False when there was none."""

    def close(self) -> None: ...


class FileBackend(Protocol):
    """The file operations a cache needs; `SSHConnection` and `LocalFiles` both have them."""

    def listdir(self, path: str) -> list[FileStat]: ...
    def remove(self, path: str) -> None: ...
    def makedirs(self, path: str) -> None: ...
    def read_bytes(self, path: str) -> bytes | None: ...
    def write_bytes(self, path: str, data: bytes) -> None: ...
    def sha256(self, path: str) -> str: ...
    def put(self, local_path: str | os.PathLike[str], remote_path: str,
            progress: Progress | None = None,
            before_rename: Callable[[str], None] | None = None) -> int: ...
    def close(self) -> None: ...


class LocalFiles:
    """`FileBackend` on this machine's filesystem: copy to a temporary name, fsync, rename."""

    def listdir(self, path: str) -> list[FileStat]:
        try:
            with os.scandir(path) as entries:
                stats = [(e.name, e.stat()) for e in entries if e.is_file()]
        except FileNotFoundError:
            return []
        except OSError as error:
            raise BackendError(f"cannot list {path}: {error.strerror}") from None
        return sorted((FileStat(name, st.st_size, st.st_mtime) for name, st in stats),
                      key=lambda f: f.name)

    def remove(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as error:
            raise BackendError(f"cannot remove {path}: {error.strerror}") from None

    def makedirs(self, path: str) -> None:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as error:
            raise BackendError(f"cannot create {path}: {error.strerror}") from None

    def read_bytes(self, path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise BackendError(f"cannot read {path}: {error.strerror}") from None

    def write_bytes(self, path: str, data: bytes) -> None:
        self._copy(io.BytesIO(data), len(data), path)

    def sha256(self, path: str) -> str:
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        except OSError as error:
            raise BackendError(f"cannot read {path}: {error.strerror}") from None
        return digest.hexdigest()

    def put(self, local_path: str | os.PathLike[str], remote_path: str,
            progress: Progress | None = None,
            before_rename: Callable[[str], None] | None = None) -> int:
        try:
            source = open(local_path, "rb")
        except OSError as error:
            raise BackendError(f"cannot read {local_path}: {error.strerror}") from None
        with source:
            total = os.fstat(source.fileno()).st_size
            return self._copy(source, total, remote_path, progress, before_rename)

    def put_stream(self, source: BinaryIO, total: int, path: str,
                   progress: Progress | None = None,
                   before_rename: Callable[[str], None] | None = None) -> int:
        return self._copy(source, total, path, progress, before_rename)

    @contextmanager
    def reader(self, path: str) -> Iterator[tuple[BinaryIO, int]]:
        try:
            source = open(path, "rb")
        except OSError as error:
            raise BackendError(f"cannot read {path}: {error.strerror}") from None
        with source:
            yield source, os.fstat(source.fileno()).st_size

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def chmod(self, path: str, mode: int) -> None:
        try:
            os.chmod(path, mode)
        except OSError as error:
            raise BackendError(f"cannot chmod {path}: {error.strerror}") from None

    def _copy(self, source: BinaryIO, total: int, path: str, progress: Progress | None = None,
              before_rename: Callable[[str], None] | None = None) -> int:
        # Named with this process's PID, so that one a killed process left is known as such
        # (`storage.remove_dead_temporaries`); private from its first byte.
        temp = temp_name(path, f"{os.getpid()}.")
        sent = 0
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
                    sent += len(chunk)
                    if progress is not None:
                        progress(sent, total)
                out.flush()
                os.fsync(out.fileno())
            if before_rename is not None:
                before_rename(temp)
            os.replace(temp, path)
        except OSError as error:
            self.remove(temp)
            raise BackendError(f"cannot write {path}: {error.strerror}") from None
        except BaseException:
            self.remove(temp)
            raise
        return sent

    def close(self) -> None:
        pass


@dataclass
class _Index:
    """Names and last-use times by file name; advisory (the directory is the truth)."""

    entries: dict[str, dict[str, object]] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: bytes | None) -> _Index:
        try:
            images = json.loads(data or b"{}").get("images", {})
        except (ValueError, AttributeError):
            return cls()  # a damaged index only loses names and use times
        return cls({k: v for k, v in images.items() if isinstance(v, dict)}
                   if isinstance(images, dict) else {})

    def dump(self) -> bytes:
        return json.dumps({"version": 1, "images": self.entries}, indent=1,
                          sort_keys=True).encode()

    def last_used(self, name: str, fallback: float) -> float:
        value = self.entries.get(name, {}).get("last_used")
        return float(value) if isinstance(value, (int, float)) else fallback

    def names(self, name: str) -> tuple[str, ...]:
        value = self.entries.get(name, {}).get("names", [])
        return tuple(str(n) for n in value) if isinstance(value, list) else ()

    def used(self, name: str, image_name: str, now: float) -> None:
        names = sorted({*self.names(name), image_name})
        self.entries[name] = {"names": names, "last_used": now}


class FileImageCache:
    """`ImageCache` over a `FileBackend`; see the module docstring."""

    def __init__(self, files: FileBackend, image_dir: str, location: str,
                 limit_bytes: int | None = None, verify: str = "size",
                 progress: bool | None = None, clock: Callable[[], float] = time.time) -> None:
        if verify not in VERIFY_MODES:
            raise InvalidInput(f"image cache: verify must be one of {', '.join(VERIFY_MODES)}, "
                               f"not {verify!r}")
        if limit_bytes is not None and limit_bytes <= 0:
            raise InvalidInput("image cache: cache_limit must be positive")
        self.files = files
        self.image_dir = image_dir.rstrip("/") or "/"
        self.location = location
        self.limit_bytes = limit_bytes
        self.verify = verify
        self.progress = progress
        self.clock = clock
        self._dir_made = False

    def __enter__(self) -> FileImageCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def path_of(self, name: str) -> str:
        return f"{self.image_dir}/{name}"

    # -- reading what is there -----------------------------------------------------------------

    def _scan(self) -> tuple[list[FileStat], list[FileStat], _Index]:
        """(images, temporary files, index)."""
        images, parts = [], []
        for f in self.files.listdir(self.image_dir):
            if _PART.match(f.name):
                parts.append(f)
            elif _image_file(f.name):
                images.append(f)
        return images, parts, _Index.parse(self.files.read_bytes(self.path_of(INDEX)))

    def _entries(self, images: list[FileStat], index: _Index) -> list[CachedImage]:
        entries = [CachedImage(self.path_of(f.name), f.name.partition(".")[0], f.size,
                               index.last_used(f.name, f.mtime), index.names(f.name))
                   for f in images]
        return sorted(entries, key=lambda e: (e.last_used, e.path))

    def contents(self) -> list[CachedImage]:
        images, _, index = self._scan()
        return self._entries(images, index)

    def _save_index(self, index: _Index, images: list[FileStat]) -> None:
        present = {f.name for f in images}
        index.entries = {k: v for k, v in index.entries.items() if k in present}
        self.files.write_bytes(self.path_of(INDEX), index.dump())

    # -- ensure, evict, remove -----------------------------------------------------------------

    def ensure(self, image_name: str, local_path: str | os.PathLike[str], sha256: str,
               size: int, *, pinned: Collection[str] = (),
               progress: bool | Progress | None = None) -> EnsureResult:
        started = time.perf_counter()
        file_name = self._check_request(image_name, local_path, sha256, size)
        path = self.path_of(file_name)
        images, parts, index = self._scan()
        held = next((f for f in images if f.name == file_name), None)
        if held is not None and held.size == size and (
                self.verify == "size" or self.files.sha256(path) == sha256):
            index.used(file_name, image_name, self.clock())
            self._save_index(index, images)
            return EnsureResult(path, False, time.perf_counter() - started, 0)
        if held is not None:  # wrong size or checksum: a damaged copy, never used again
            self.files.remove(path)
            images.remove(held)
        parts = self._drop_stale_parts(parts)
        evicted = self._make_room(size, images, parts, index, pinned)
        if not self._dir_made:
            self.files.makedirs(self.image_dir)
            self._dir_made = True
        check = self._checker(sha256) if self.verify == "sha256" else None
        with self._progress_callback(progress, image_name, size) as callback:
            sent = self.files.put(local_path, path, callback, check)
        images.append(FileStat(file_name, size, self.clock()))
        index.used(file_name, image_name, self.clock())
        self._save_index(index, images)
        return EnsureResult(path, True, time.perf_counter() - started, sent, evicted)

    def _check_request(self, image_name: str, local_path: str | os.PathLike[str], sha256: str,
                       size: int) -> str:
        if not _SHA256.match(sha256):
            raise InvalidInput(f"image {image_name}: sha256 must be 64 lowercase hex digits")
        try:
            actual = os.stat(local_path).st_size
        except FileNotFoundError:
            raise NotFound(f"image {image_name}: no file {local_path}") from None
        except OSError as error:
            raise BackendError(f"image {image_name}: {local_path}: {error.strerror}") from None
        if actual != size:
            raise InvalidInput(f"image {image_name}: {local_path} holds {actual} bytes, "
                               f"not the {size} recorded")
        suffix = Path(local_path).suffix.lstrip(".").lower()
        return f"{sha256}.{suffix if suffix in IMAGE_FORMATS else 'img'}"

    def _checker(self, sha256: str) -> Callable[[str], None]:
        def check(temp_path: str) -> None:
            found = self.files.sha256(temp_path)
            if found != sha256:
                raise BackendError(f"{self.location}: transferred image has sha256 "
                                   f"{found[:12]}..., expected {sha256[:12]}...")
        return check

    def _drop_stale_parts(self, parts: list[FileStat]) -> list[FileStat]:
        now, live = self.clock(), []
        for part in parts:
            if now - part.mtime > STALE_PART_SECONDS:
                self.files.remove(self.path_of(part.name))
            else:
                live.append(part)  # maybe another transfer in flight: it takes room too
        return live

    def _make_room(self, size: int, images: list[FileStat], parts: list[FileStat],
                   index: _Index, pinned: Collection[str]) -> tuple[str, ...]:
        limit = self.limit_bytes
        if limit is None:
            return ()
        if size > limit:
            raise Unsatisfiable(f"{self.location}: image of {_mib(size)} exceeds the cache "
                                f"limit of {_mib(limit)}")
        used = sum(f.size for f in images) + sum(p.size for p in parts)
        evicted: list[str] = []
        protected = set(pinned)
        for entry in self._entries(images, index):
            if used + size <= limit:
                break
            keys = {entry.path, PurePosixPath(entry.path).name, entry.sha256, *entry.names}
            if keys & protected:
                continue
            self.files.remove(entry.path)
            evicted.append(entry.path)
            used -= entry.size
            images[:] = [f for f in images if self.path_of(f.name) != entry.path]
        if used + size > limit:
            raise Unsatisfiable(f"{self.location}: no room for an image of {_mib(size)}: "
                                f"{_mib(used)} of the {_mib(limit)} limit is pinned or in "
                                f"transfer")
        return tuple(evicted)

    def remove(self, key: str) -> bool:
        images, _, index = self._scan()
        gone = [e for e in self._entries(images, index)
                if key in (e.path, PurePosixPath(e.path).name, e.sha256, *e.names)]
        for entry in gone:
            self.files.remove(entry.path)
        if gone:
            paths = {e.path for e in gone}
            self._save_index(index, [f for f in images if self.path_of(f.name) not in paths])
        return bool(gone)

    @staticmethod
    def _progress_bar_wanted(progress: bool | None) -> bool:
        return progress if progress is not None else sys.stderr.isatty()

    def _progress_callback(self, progress: bool | Progress | None, image_name: str,
                           size: int) -> _ProgressBar:
        if callable(progress):
            return _ProgressBar(None, progress)
        wanted = self._progress_bar_wanted(progress if progress is not None else self.progress)
        host = self.location.rpartition(":/")[0] or self.location  # the host, not the dir
        return _ProgressBar(f"{image_name} -> {host}" if wanted else None, None, size)

    def close(self) -> None:
        self.files.close()


class _ProgressBar:
    """A rich progress bar on stderr (never stdout), or a plain callback, or nothing."""

    def __init__(self, label: str | None, callback: Progress | None, total: int = 0) -> None:
        self.label, self.callback, self.total = label, callback, total
        self._bar: object = None

    def __enter__(self) -> Progress | None:
        if self.label is None:
            return self.callback
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                       TransferSpeedColumn(), TimeRemainingColumn(),
                       console=Console(stderr=True), transient=False)
        task = bar.add_task(self.label, total=self.total)
        bar.start()
        self._bar = bar
        return lambda sent, total: bar.update(task, completed=sent, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()  # type: ignore[attr-defined]


def _image_file(name: str) -> bool:
    stem, _, suffix = name.partition(".")
    return bool(_SHA256.match(stem)) and suffix in IMAGE_FORMATS


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def parse_size(value: object, option: str = "cache_limit") -> int:
    """Bytes from an int or text like `512M`, `10GiB`, `1.5G`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value))
    if match is None:
        raise InvalidInput(f"option {option} must be a size such as 10G or 512MiB, "
                           f"not {value!r}")
    number, unit = float(match[1]), match[2].upper()
    return int(number * 1024 ** ("KMGT".index(unit) + 1)) if unit else int(number)


def open_image_cache(target: str, options: Mapping[str, object] | None = None,
                     clock: Callable[[], float] = time.time) -> FileImageCache:
    """The image cache of the host at `target`: `local` (this machine; needs image_dir) or an
    SSH target `USER@HOST[:PORT]`. Options: image_dir, cache_limit, verify (size | sha256),
    progress, and the SSH target's options. Connects on first use."""
    opts = normalize_options(options)
    cache_opts = {k: opts.pop(k) for k in list(opts) if k in CACHE_OPTIONS - {"image_dir"}}
    limit = parse_size(cache_opts["cache_limit"]) if "cache_limit" in cache_opts else None
    verify = str(cache_opts.get("verify", "size"))
    progress = (parse_bool(cache_opts["progress"], "progress")
                if "progress" in cache_opts else None)
    if target == "local":
        unknown = sorted(set(opts) - {"image_dir"})
        if unknown:
            raise InvalidInput(f"local image cache: unknown option(s) {', '.join(unknown)} "
                               f"(known: {', '.join(sorted(CACHE_OPTIONS))})")
        if "image_dir" not in opts:
            raise InvalidInput("local image cache: image_dir is required")
        image_dir = str(Path(str(opts["image_dir"])).expanduser().absolute())
        return FileImageCache(LocalFiles(), image_dir, f"local:{image_dir}", limit, verify,
                              progress, clock)
    unknown = sorted(set(opts) - TARGET_OPTIONS)
    if unknown:
        raise InvalidInput(f"SSH image cache {target}: unknown option(s) {', '.join(unknown)} "
                           f"(known: {', '.join(sorted(TARGET_OPTIONS | CACHE_OPTIONS))})")
    ssh = SSHTarget.parse(target, opts)
    return FileImageCache(SSHConnection(ssh), ssh.image_dir, f"{ssh}:{ssh.image_dir}", limit,
                          verify, progress, clock)


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The checksum `ensure` expects, computed locally."""
    return LocalFiles().sha256(os.fspath(path))


__all__ = ["CachedImage", "EnsureResult", "FileImageCache", "ImageCache", "LocalFiles",
           "open_image_cache", "parse_size", "sha256_of"]
