"""The image repository: add (copied or linked, with a kernel and initrd to boot), list,
show, remove, transfer statistics, and the lease defaults an xl.cfg template gives."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cloudctl.app.context import Room, check_name
from cloudctl.errors import Conflict, InvalidInput
from cloudctl.store.records import EventRecord, ImageRecord


class Images(Room):
    def add(self, name: str, path: Path, fmt: str | None, link: bool = False,
            kernel: Path | None = None, initrd: Path | None = None,
            cmdline: str | None = None) -> ImageRecord:
        """Copy (or link) the image, and a kernel and initrd to boot it with, into the
        repository; recorded only once every file is in place."""
        from cloudctl.drivers.storage import import_file, import_image

        check_name("image", name)
        if (initrd or cmdline) and not kernel:
            raise InvalidInput("--initrd and --cmdline need --kernel")
        with self.store.read():
            if any(i.name == name for i in self.store.images.all()):
                raise Conflict(f"an image named {name!r} already exists")
        boot_files = {key: file.expanduser().absolute()
                      for key, file in (("kernel", kernel), ("initrd", initrd)) if file}
        for key, file in boot_files.items():
            if not file.is_file():
                raise InvalidInput(f"--{key} {file}: no such file")
        repository = self.settings.state_dir / "images"
        source = path.expanduser().absolute()
        imported = import_image(source, repository, name, fmt, link)
        boot = {key: str(import_file(file, repository, f"{name}.{key}", link)[0])
                for key, file in boot_files.items()}
        if cmdline:
            boot["cmdline"] = cmdline
        image = ImageRecord(name, imported.path, imported.format, imported.size_bytes,
                            imported.sha256, added_at=self.clock(), boot=boot,
                            source=str(source))
        how = "linked" if link else "copied"
        with self.store.write():
            self.store.images.add(image)
            self.store.events.add([EventRecord(
                image.added_at, f"image {name}", None, "added",
                f"{image.format}, {image.size_bytes} bytes {how} from {source}")])
        return image

    def all(self) -> list[ImageRecord]:
        with self.store.read():
            return self.store.images.all()

    def show(self, name: str) -> ImageRecord:
        with self.store.read():
            return self.store.images.get(name)

    def remove(self, name: str) -> ImageRecord:
        """Forget an image and delete its repository files (a linked original is kept)."""
        from cloudctl.drivers.storage import remove_files

        with self.store.write():
            image = self.store.images.get(name)
            users = self.store.leases.using_image(name)
            if users:
                raise Conflict(f"image {name} is used by live lease(s) "
                               f"{', '.join(map(str, users))}")
            self.store.images.remove(name)
            self.store.events.add([EventRecord(self.clock(), f"image {name}", "added",
                                               "removed", "removed by user")])
        repository = self.settings.state_dir / "images"
        remove_files(*(p for p in (image.path, *image.boot.values())
                       if Path(p).parent == repository))
        return image

    def stats(self, name: str | None = None) -> list[dict[str, Any]]:
        """Per image and host: transfers planned against measured, and cache reuse."""
        with self.store.read():
            if name is not None:
                self.store.images.get(name)
            transfers = self.store.transfers.all(name)
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for t in transfers:
            row = rows.setdefault((t.image, t.host), {
                "image": t.image, "host": t.host, "transfers": 0, "reused": 0, "bytes": 0,
                "planned_s": 0.0, "actual_s": 0.0})
            if t.reused:
                row["reused"] += 1
                continue
            row["transfers"] += 1
            row["bytes"] += t.bytes
            row["planned_s"] += t.planned_s
            row["actual_s"] += t.actual_s
        for row in rows.values():
            row["planned_s"] = round(row["planned_s"], 3)
            row["actual_s"] = round(row["actual_s"], 3)
        return list(rows.values())

    def template_defaults(self, path: Path, find_image: bool = True) -> dict[str, Any]:
        """Lease defaults from a Xen xl.cfg: cpus, memory, name, and the registered image
        whose file (or original) is the template's first disk."""
        from cloudctl.drivers.xlconvert import template_from_xl

        template = template_from_xl(str(path))
        found: dict[str, Any] = {"cpus": template["cpus"], "memory_mib": template["memory_mib"],
                                 "name": template.get("name")}
        disks = [d["path"] for d in template.get("disks", []) if d.get("path")]
        if disks and find_image:
            with self.store.read():
                images = self.store.images.all()
            wanted = os.path.abspath(disks[0])
            match = [i.name for i in images if wanted in (i.path, i.source)]
            if not match:
                raise InvalidInput(f"--template {path}: its disk {disks[0]} is not a registered "
                                   "image (add it with 'cloudctl image add', or give --image)")
            found["image"] = match[0]
        return found
