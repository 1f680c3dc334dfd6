"""Storage: the image repository and each VM's own disk.

Images are copied (or linked) into the repository once, with their size and checksum; a VM
never writes to one. Each VM gets its own disk: a qcow2 overlay backed by the image (cheap,
`qemu-img create -b`) or, for a raw image, a full copy. A disk outlives suspensions and moves
and is removed when its lease is over.

Every file is written under a temporary name (created 0600) and renamed into place. A process
killed half-way leaves its temporary behind: `check` (each tick) removes those whose writer is
dead, and a VM's own are removed with its disk.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from cloudctl.errors import BackendError, InvalidInput

QCOW2_MAGIC = b"QFI\xfb"
FORMATS = ("qcow2", "raw")
# `.NAME.PID.tmp` (or `.NAME.PID.part-HEX`, a local copy's): a local temporary and the process
# writing it.
_PID_TEMP = re.compile(r"^\..+\.([0-9]+)\.(?:tmp|part-[0-9a-f]+)$")
# A remote temporary (`.NAME.tmp`, or an upload's `.NAME.part-HEX`) untouched this long belongs
# to a writer that died: a copy in progress keeps touching it.
STALE_REMOTE_TEMP_S = 600.0
_REMOTE_TEMP = re.compile(r"^\..+(\.tmp|\.part-[0-9a-f]+)$")


class ImageLike(Protocol):
    name: str
    path: str
    format: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class ImportedImage:
    path: str
    format: str
    size_bytes: int
    sha256: str


def detect_format(path: Path) -> str:
    with open(path, "rb") as f:
        return "qcow2" if f.read(4) == QCOW2_MAGIC else "raw"


def import_file(source: Path, repository: Path, stem: str, link: bool) -> tuple[Path, str]:
    """Copy (or symlink) `source` to `repository/stem`, hashing it on the way: (path, sha256).
    The copy appears under its final name only once it is complete."""
    try:
        return _import_file(source, repository, stem, link)
    except OSError as exc:
        raise BackendError(f"cannot store {source} in {repository}: {exc.strerror}") from exc


def private_temp(target: Path) -> tuple[Path, int]:
    """A new temporary file `.NAME.PID.tmp` beside `target`, readable by its owner only, and its
    descriptor open for writing. One a dead process of the same PID left is replaced."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)


def remove_dead_temporaries(directory: Path) -> list[str]:
    """Remove the `.NAME.PID.tmp` (and `.NAME.PID.part-HEX`) files in `directory` whose process
    is gone (a killed command left them); the names removed."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []  # no such directory yet
    for entry in entries:
        match = _PID_TEMP.match(entry.name)
        if match is None or _alive(int(match[1])):
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        removed.append(entry.name)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # this process may be writing it now
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone, or a PID no process can have
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _import_file(source: Path, repository: Path, stem: str, link: bool) -> tuple[Path, str]:
    repository.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = repository / stem
    digest = hashlib.sha256()
    if link:
        with open(source, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        tmp = target.with_name(f".{stem}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(source)
        os.replace(tmp, target)
        return target, digest.hexdigest()
    tmp, fd = private_temp(target)
    try:
        with open(source, "rb") as src, os.fdopen(fd, "wb") as out:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target, digest.hexdigest()


def import_image(source: Path, repository: Path, name: str, fmt: str | None,
                 link: bool = False) -> ImportedImage:
    """Bring the image at `source` into the repository as `name`; checks the format first."""
    if not source.is_file():
        raise InvalidInput(f"--path {source}: no such file")
    detected = detect_format(source)
    fmt = fmt or detected
    if fmt not in FORMATS:
        raise InvalidInput(f"--format must be qcow2 or raw, got {fmt!r}")
    if fmt == "qcow2" and detected != "qcow2":
        raise InvalidInput(f"{source} is not a qcow2 image (no QFI magic)")
    path, sha256 = import_file(source, repository, f"{name}.{fmt}", link)
    return ImportedImage(str(path), fmt, source.stat().st_size, sha256)


def qemu_img(*args: str) -> None:
    if shutil.which("qemu-img") is None:
        raise BackendError("qemu-img not found (Debian package qemu-utils)")
    # umask 077: what it creates is private from its first byte.
    done = subprocess.run(["qemu-img", *args], capture_output=True, text=True, umask=0o077)
    if done.returncode != 0:
        message = " ".join((done.stderr or done.stdout).split())
        raise BackendError(f"qemu-img {args[0]}: {message}")


def make_disk(base: str, fmt: str, disk: Path) -> str:
    """The VM's own disk at `disk`, backed by (qcow2) or copied from (raw) `base`. An existing
    disk is kept: it holds the VM's writes from before a suspension or a crash."""
    if disk.exists():
        return str(disk)
    disk.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp, fd = private_temp(disk)
    try:
        with os.fdopen(fd, "wb") as out:
            if fmt == "qcow2":
                # Always name the backing format: without -F qemu-img probes it (unsafe). It
                # writes over the empty private file.
                qemu_img("create", "-q", "-f", "qcow2", "-F", "qcow2",
                         "-b", str(Path(base).resolve()), str(tmp))
            else:
                with open(base, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, disk)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BackendError(f"cannot create disk {disk}: {exc.strerror}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return str(disk)


def remove_files(*paths: str | None) -> None:
    for path in paths:
        if path:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


class LocalStorage:
    """VM disks and memory images on this machine's filesystem, under `state_dir/disks` and
    `state_dir/saves`; images are read from the repository in place (no transfer)."""

    def __init__(self, state_dir: Path) -> None:
        from cloudctl.drivers.image_cache import LocalFiles

        self.disks = Path(state_dir) / "disks"
        self.saves = Path(state_dir) / "saves"
        self.images = Path(state_dir) / "images"  # the image repository
        self.location = f"local:{Path(state_dir).resolve()}"  # equal -> the same files
        self.files = LocalFiles()

    def check(self) -> list[str]:
        """Remove the temporaries killed commands left here (partial disks, memory images,
        repository copies); the names removed."""
        removed = []
        for directory in (self.disks, self.saves, self.images):
            removed += remove_dead_temporaries(directory)
        return removed

    def disk_path(self, vm_name: str, fmt: str) -> Path:
        return self.disks / f"{vm_name}.{fmt}"

    def save_path(self, vm_name: str) -> str:
        return str(self.saves / f"{vm_name}.save")

    def disk(self, vm_name: str, image: ImageLike,
             pinned: Collection[str] = ()) -> tuple[str, Any]:
        """(the VM's disk, the image transfer it took or None); made now unless it exists."""
        return make_disk(image.path, image.format, self.disk_path(vm_name, image.format)), None

    def base_for(self, image: ImageLike, pinned: Collection[str] = ()) -> tuple[str, Any]:
        """(where a disk of `image` finds its base here, the transfer that took or None)."""
        return str(Path(image.path).resolve()), None

    def prepare(self) -> None:
        """The directories disks and memory images go to."""
        for path in (self.disks, self.saves):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def rebase(self, disk: str, base: str) -> None:
        """Point the qcow2 overlay `disk` at `base`, a copy of the base it was made on."""
        qemu_img("rebase", "-u", "-f", "qcow2", "-F", "qcow2", "-b", base, disk)

    def remove_disk(self, vm_name: str, recorded: str | None) -> None:
        """Remove the VM's disk, also one a killed tick made but did not record, or left
        half-made under its temporary name."""
        partial = [str(p) for fmt in FORMATS for p in self.disks.glob(f".{vm_name}.{fmt}.*.tmp")]
        remove_files(recorded, *(str(self.disk_path(vm_name, fmt)) for fmt in FORMATS),
                     *partial)

    def remove_save(self, vm_name: str, recorded: str | None) -> None:
        remove_files(recorded, self.save_path(vm_name))

    def close(self) -> None:
        pass


class RemoteStorage:
    """VM disks on a host reached over SSH (host option `ssh`). The image comes through the
    host's image cache (sent once, then reused; least recently used evicted past its
    cache_limit) and the disk is made there, next to the cache, by the host's qemu-img."""

    def __init__(self, options: Mapping[str, object]) -> None:
        from cloudctl.drivers.image_cache import open_image_cache

        opts = dict(options)
        self.target = str(opts.pop("ssh"))
        self.cache = open_image_cache(self.target, opts)
        self.disks = str(PurePosixPath(self.cache.image_dir).parent / "disks")
        self.saves = str(PurePosixPath(self.cache.image_dir).parent / "saves")
        self.location = f"{self.target}:{self.disks}"

    @property
    def files(self) -> Any:
        return self.cache.files  # the SSH connection

    def check(self) -> list[str]:
        """Connect and read the cache: a host we cannot reach is refused when added, and put
        in error by a tick (a changed host key, say). Removes the temporaries writers that
        died left in its disks and saves directories; the names removed."""
        self.cache.contents()
        removed = []
        now = time.time()  # the host's clock may differ: the margin is ten minutes
        for directory in (self.disks, self.saves):
            for found in self.files.listdir(directory):
                if _REMOTE_TEMP.match(found.name) and now - found.mtime > STALE_REMOTE_TEMP_S:
                    self.files.remove(f"{directory}/{found.name}")
                    removed.append(found.name)
        return removed

    def disk_path(self, vm_name: str, fmt: str) -> str:
        return f"{self.disks}/{vm_name}.{fmt}"

    def save_path(self, vm_name: str) -> str:
        return f"{self.saves}/{vm_name}.save"

    def base_for(self, image: ImageLike, pinned: Collection[str] = ()) -> tuple[str, Any]:
        sent = self.cache.ensure(image.name, image.path, image.sha256, image.size_bytes,
                                 pinned=pinned)
        return sent.remote_path, sent

    def disk(self, vm_name: str, image: ImageLike,
             pinned: Collection[str] = ()) -> tuple[str, Any]:
        base, sent = self.base_for(image, pinned)
        disk = self.disk_path(vm_name, image.format)
        if self.files.exists(disk):
            return disk, sent
        tmp, q = self._temp_disk(vm_name), shlex.quote
        make = (f"qemu-img create -q -f qcow2 -F qcow2 -b {q(base)} {q(tmp)}"
                if image.format == "qcow2" else f"cp {q(base)} {q(tmp)}")
        # umask 077: the temporary is private from its first byte.
        done = self.files.exec(f"umask 077 && mkdir -p {q(self.disks)} && rm -f {q(tmp)} && "
                               f"{make} && chmod 600 {q(tmp)} && mv {q(tmp)} {q(disk)}")
        if done.status != 0:
            message = " ".join((done.stderr or done.stdout).split())
            raise BackendError(f"{self.target}: cannot create disk {disk}: {message}")
        return disk, sent

    def prepare(self) -> None:
        self.files.makedirs(self.disks)
        self.files.makedirs(self.saves)

    def exists(self, path: str) -> bool:
        return self.files.exists(path)

    def rebase(self, disk: str, base: str) -> None:
        q = shlex.quote
        done = self.files.exec(f"qemu-img rebase -u -f qcow2 -F qcow2 -b {q(base)} {q(disk)}")
        if done.status != 0:
            message = " ".join((done.stderr or done.stdout).split())
            raise BackendError(f"{self.target}: qemu-img rebase: {message}")

    def _temp_disk(self, vm_name: str) -> str:
        return f"{self.disks}/.{vm_name}.tmp"

    def remove_disk(self, vm_name: str, recorded: str | None) -> None:
        for path in {recorded, self._temp_disk(vm_name),
                     *(self.disk_path(vm_name, fmt) for fmt in FORMATS)}:
            if path:
                self.files.remove(path)

    def remove_save(self, vm_name: str, recorded: str | None) -> None:
        for path in {recorded, self.save_path(vm_name)}:
            if path:
                self.files.remove(path)

    def close(self) -> None:
        self.cache.close()


Storage = LocalStorage | RemoteStorage


@dataclass(frozen=True)
class MovedFiles:
    """Where a cold migration put a VM's files on its new host, and what it took."""

    disk: str | None
    save: str
    bytes: int
    seconds: float
    image_sent: Any  # the image sent to (or found in) the new host's cache, or None


def move_vm_files(source: Storage, dest: Storage, vm_name: str, image: ImageLike | None,
                  disk: str | None, save: str, pinned: Collection[str] = ()) -> MovedFiles:
    """Copy a suspended VM's disk (when it has an image) and memory image from `source` to
    `dest`. Each copy lands whole: it goes to a temporary name, its checksum is compared with
    the original's, a qcow2 overlay is pointed at the new host's copy of its base image, and
    only then is it renamed into place; a copy already in place is kept, so a move cut short
    is carried on. The originals are left for the caller to remove once it has recorded the
    new places."""
    started = time.perf_counter()
    dest.prepare()
    sent_bytes, image_sent, new_disk = 0, None, None
    if image is not None and disk is not None:
        new_disk = str(dest.disk_path(vm_name, image.format))
        if not dest.exists(new_disk):
            base, image_sent = dest.base_for(image, pinned)
            sent_bytes += _copy_between(source, disk, dest, new_disk,
                                        base if image.format == "qcow2" else None)
    new_save = dest.save_path(vm_name)
    if not dest.exists(new_save):
        sent_bytes += _copy_between(source, save, dest, new_save, None)
    return MovedFiles(new_disk, new_save, sent_bytes, time.perf_counter() - started,
                      image_sent)


def _copy_between(source: Storage, path: str, dest: Storage, target: str,
                  rebase_on: str | None) -> int:
    expected = source.files.sha256(path)

    def check(temp: str) -> None:
        found = dest.files.sha256(temp)
        if found != expected:
            raise BackendError(f"{dest.location}: the copy of {path} has sha256 "
                               f"{found[:12]}..., the original {expected[:12]}...")
        dest.files.chmod(temp, 0o600)
        if rebase_on is not None:
            dest.rebase(temp, rebase_on)

    with source.files.reader(path) as (stream, size):
        return dest.files.put_stream(stream, size, target, before_rename=check)
