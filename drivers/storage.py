"""Storage: the image repository and each VM's own disk.

Images are copied (or linked) into the repository once, with their size and checksum; a VM
never writes to one. Each VM gets its own disk: a qcow2 overlay backed by the image (cheap,
`qemu-img create -b`) or, for a raw image, a full copy. A disk outlives suspensions and moves
and is removed when its lease is over.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cloudctl.errors import BackendError, InvalidInput

QCOW2_MAGIC = b"QFI\xfb"
FORMATS = ("qcow2", "raw")


class ImageLike(Protocol):
    path: str
    format: str


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
    try:
        path, sha256 = import_file(source, repository, f"{name}.{fmt}", link)
    except OSError as exc:
        raise BackendError(f"cannot store image {name} in {repository}: {exc.strerror}") from exc
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
    """VM disks on this machine's filesystem, under `state_dir/disks`."""

    def __init__(self, state_dir: Path) -> None:
        self.disks = Path(state_dir) / "disks"

    def disk_path(self, vm_name: str, fmt: str) -> Path:
        return self.disks / f"{vm_name}.{fmt}"

    def disk(self, vm_name: str, image: ImageLike) -> str:
        """The VM's disk, made now unless it exists (idempotent)."""
        return make_disk(image.path, image.format, self.disk_path(vm_name, image.format))

    def remove_disk(self, vm_name: str, recorded: str | None) -> None:
        """Remove the VM's disk, also one a killed tick made but did not record."""
        remove_files(recorded, *(str(self.disk_path(vm_name, fmt)) for fmt in FORMATS))
