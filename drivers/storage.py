"""Storage: the image repository and each VM's own disk.

Images are copied (or linked) into the repository once, with their size and checksum; a VM
never writes to one. Each VM gets its own disk: a qcow2 overlay backed by the image (cheap,
`qemu-img create -b`) or, for a raw image, a full copy. A disk outlives suspensions and moves
and is removed when its lease is over.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from cloudctl.errors import BackendError, InvalidInput

QCOW2_MAGIC = b"QFI\xfb"
FORMATS = ("qcow2", "raw")


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
    tmp = target.with_name(f".{stem}.{os.getpid()}.tmp")
    try:
        with open(source, "rb") as src, open(tmp, "wb") as out:
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
    done = subprocess.run(["qemu-img", *args], capture_output=True, text=True)
    if done.returncode != 0:
        message = " ".join((done.stderr or done.stdout).split())
        raise BackendError(f"qemu-img {args[0]}: {message}")


def make_disk(base: str, fmt: str, disk: Path) -> str:
    """The VM's own disk at `disk`, backed by (qcow2) or copied from (raw) `base`. An existing
    disk is kept: it holds the VM's writes from before a suspension or a crash."""
    if disk.exists():
        return str(disk)
    disk.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = disk.with_name(f".{disk.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        if fmt == "qcow2":
            # Always name the backing format: without -F qemu-img probes it, which is unsafe.
            qemu_img("create", "-q", "-f", "qcow2", "-F", "qcow2",
                     "-b", str(Path(base).resolve()), str(tmp))
        else:
            shutil.copyfile(base, tmp)
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
    """VM disks on this machine's filesystem, under `state_dir/disks`; images are read from
    the repository in place (no transfer)."""

    def __init__(self, state_dir: Path) -> None:
        self.disks = Path(state_dir) / "disks"

    def disk_path(self, vm_name: str, fmt: str) -> Path:
        return self.disks / f"{vm_name}.{fmt}"

    def disk(self, vm_name: str, image: ImageLike,
             pinned: Collection[str] = ()) -> tuple[str, Any]:
        """(the VM's disk, the image transfer it took or None); made now unless it exists."""
        return make_disk(image.path, image.format, self.disk_path(vm_name, image.format)), None

    def remove_disk(self, vm_name: str, recorded: str | None) -> None:
        """Remove the VM's disk, also one a killed tick made but did not record."""
        remove_files(recorded, *(str(self.disk_path(vm_name, fmt)) for fmt in FORMATS))

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

    @property
    def files(self) -> Any:
        return self.cache.files  # the SSH connection

    def check(self) -> None:
        """Connect and read the cache: a host we cannot reach is refused when added."""
        self.cache.contents()

    def disk_path(self, vm_name: str, fmt: str) -> str:
        return f"{self.disks}/{vm_name}.{fmt}"

    def disk(self, vm_name: str, image: ImageLike,
             pinned: Collection[str] = ()) -> tuple[str, Any]:
        sent = self.cache.ensure(image.name, image.path, image.sha256, image.size_bytes,
                                 pinned=pinned)
        disk = self.disk_path(vm_name, image.format)
        if self.files.exists(disk):
            return disk, sent
        base, tmp, q = sent.remote_path, f"{self.disks}/.{vm_name}.tmp", shlex.quote
        make = (f"qemu-img create -q -f qcow2 -F qcow2 -b {q(base)} {q(tmp)}"
                if image.format == "qcow2" else f"cp {q(base)} {q(tmp)}")
        done = self.files.exec(f"mkdir -p {q(self.disks)} && {make} && chmod 600 {q(tmp)} "
                               f"&& mv {q(tmp)} {q(disk)}")
        if done.status != 0:
            message = " ".join((done.stderr or done.stdout).split())
            raise BackendError(f"{self.target}: cannot create disk {disk}: {message}")
        return disk, sent

    def remove_disk(self, vm_name: str, recorded: str | None) -> None:
        for path in {recorded, *(self.disk_path(vm_name, fmt) for fmt in FORMATS)}:
            if path:
                self.files.remove(path)

    def close(self) -> None:
        self.cache.close()
