"""xl.cfg files to lease templates, and our VMs to xl.cfg files.

A template is a plain dict: name, guest ("pv"|"hvm"), cpus, memory_mib, kernel, initrd,
cmdline, bootloader, disks (path, format, vdev, access[, devtype]) and vifs (key -> value).
"""

from __future__ import annotations

import re
from typing import Any

from cloudctl.drivers.base import VMSpec
from cloudctl.drivers.xen import DEFAULT_BRIDGE, GUESTS, PYGRUB
from cloudctl.drivers.xlcfg import Value, XlConfig, load, render_value

from cloudctl.errors import InvalidInput

DISK_FORMATS = ("raw", "qcow", "qcow2", "vhd", "qed", "empty")
# Legacy disk targets name their backend and format in a prefix: phy:/dev/vg/lv, tap:qcow2:/x.
_LEGACY_PREFIX = re.compile(r"(?:tap2?:)?(phy|file|aio|raw|qcow|qcow2|vhd|qed):")
_ACCESS = {"w": "rw", "rw": "rw", "r": "ro", "ro": "ro"}
# Xen's names for how a guest is built: `type` (xl 4.10 on) or the older `builder`.
_TYPES = {"pv": "pv", "hvm": "hvm"}
_BUILDERS = {"generic": "pv", "hvm": "hvm"}


class _Reader:
    """Typed access to an XlConfig's settings; a wrong type is an error naming its line."""

    def __init__(self, config: XlConfig, source: str) -> None:
        self.config, self.source = config, source

    def fail(self, key: str, message: str) -> InvalidInput:
        setting = self.config.setting(key)
        where = f"line {setting.line}: " if setting is not None and setting.line else ""
        return InvalidInput(f"{self.source}: {where}{key} {message}")

    def get(self, key: str, kind: type, default: Any = None) -> Any:
        value = self.config.get(key)
        if value is None:
            return default
        if kind is int and isinstance(value, int) and value > 0:
            return value
        if kind is str and isinstance(value, str):
            return value
        if kind is list:
            if isinstance(value, str):
                value = [value]  # xl takes a lone string for a one-item list
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
        wanted = {int: "a positive number", str: "a quoted string",
                  list: "a list of quoted strings"}[kind]
        raise self.fail(key, f"must be {wanted}, not {render_value(value)}")


def guest_of(reader: _Reader) -> str:
    kind = reader.get("type", str)
    if kind is not None:
        if kind not in _TYPES:
            raise reader.fail("type", f"{kind!r} is not supported (use {', '.join(GUESTS)})")
        return _TYPES[kind]
    builder = reader.get("builder", str, "generic")
    if builder not in _BUILDERS:
        raise reader.fail("builder", f"{builder!r} is not one of {', '.join(_BUILDERS)}")
    return _BUILDERS[builder]


def cmdline_of(reader: _Reader) -> str | None:
    """`cmdline`, else xl's older spelling: "root=ROOT EXTRA"."""
    cmdline = reader.get("cmdline", str)
    if cmdline is not None:
        return str(cmdline)
    root, extra = reader.get("root", str), reader.get("extra", str)
    parts = ([f"root={root}"] if root else []) + ([extra] if extra else [])
    return " ".join(parts) or None


def parse_disk(text: str) -> dict[str, str]:
    """One xl disk spec (xl-disk-configuration(5)): `key=value` parameters and flags, or the
    positional `target[,format][,vdev][,access]` of older files; `target=` takes the rest."""
    disk: dict[str, str] = {}
    positional: list[str] = []
    parts = text.split(",")
    for index, raw in enumerate(parts):
        part = raw.strip()
        if part.startswith("target="):
            disk["target"] = ",".join([part[len("target="):], *parts[index + 1:]]).strip()
            break
        key, equals, value = part.partition("=")
        if equals:
            disk[key.strip()] = value.strip()
        elif part == "cdrom":
            disk["devtype"] = "cdrom"
        elif part or index == 0:  # an empty first target: a cdrom drive with no media
            positional.append(part)
    if positional:
        disk.setdefault("target", positional.pop(0))
    for part in positional:
        slot = "format" if part in DISK_FORMATS and "format" not in disk else \
            "vdev" if "vdev" not in disk else "access"
        disk.setdefault(slot, part)
    if disk.get("vdev", "").endswith(":cdrom"):  # xm's spelling: hdc:cdrom
        disk["vdev"], disk["devtype"] = disk["vdev"][:-len(":cdrom")], "cdrom"
    legacy = _LEGACY_PREFIX.match(disk.get("target", ""))
    if legacy:
        disk["target"] = disk["target"][legacy.end():]
        if legacy.group(1) in DISK_FORMATS:
            disk.setdefault("format", legacy.group(1))
    if "vdev" not in disk:
        raise InvalidInput(f"{text!r} names no virtual device (vdev)")
    if disk.get("access", "rw") not in _ACCESS:
        raise InvalidInput(f"{text!r}: access {disk['access']!r} is not one of "
                           f"{', '.join(_ACCESS)}")
    found = {"path": disk.get("target", ""), "format": disk.get("format", "raw"),
             "vdev": disk["vdev"], "access": _ACCESS[disk.get("access", "rw")]}
    if "devtype" in disk:
        found["devtype"] = disk["devtype"]
    return found


def parse_vif(text: str) -> dict[str, str]:
    """One xl vif spec: `key=value` pairs separated by commas (all optional)."""
    vif = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, equals, value = part.partition("=")
        if not equals:
            raise InvalidInput(f"{text!r}: {part!r} is not key=value")
        vif[key.strip()] = value.strip()
    return vif


def template_from_config(config: XlConfig, source: str = "<xl.cfg>") -> dict[str, Any]:
    """What a lease needs to know from an xl.cfg file, checked."""
    reader = _Reader(config, source)
    memory = reader.get("memory", int)
    if memory is None:
        raise InvalidInput(f"{source}: memory is not set")
    guest, kernel = guest_of(reader), reader.get("kernel", str)
    if guest == "hvm" and kernel and kernel.rsplit("/", 1)[-1] == "hvmloader":
        kernel = None  # xm named the HVM firmware `kernel`; xl loads it by itself
    template: dict[str, Any] = {
        "name": reader.get("name", str), "guest": guest,
        "cpus": reader.get("vcpus", int, 1), "memory_mib": memory,
        "kernel": kernel, "initrd": reader.get("ramdisk", str),
        "cmdline": cmdline_of(reader), "bootloader": reader.get("bootloader", str)}
    if (template["initrd"] or template["cmdline"]) and not kernel:
        raise InvalidInput(f"{source}: ramdisk and cmdline/extra need a kernel")
    for key, item_parser in (("disk", parse_disk), ("vif", parse_vif)):
        items = []
        for text in reader.get(key, list, []):
            try:
                items.append(item_parser(text))
            except InvalidInput as error:
                raise reader.fail(key, str(error)) from error
        template[f"{key}s"] = items
    return template


def template_from_xl(path: str) -> dict[str, Any]:
    """The template an xl.cfg file describes (see the module's docstring for its keys)."""
    return template_from_config(load(path), path)


def config_from_spec(spec: VMSpec, guest: str, bridge: str = DEFAULT_BRIDGE) -> XlConfig:
    """An xl.cfg for `spec` as a PV or HVM guest; the same choices as its domain XML."""
    if guest not in GUESTS:
        raise InvalidInput(f"guest {guest!r} is not one of {', '.join(GUESTS)}")
    hvm = guest == "hvm"
    config = XlConfig([f"# {spec.name}: lease {spec.lease_id}, node {spec.node} "
                       "(exported by cloudctl)\n"])
    settings: list[tuple[str, Value | None]] = [
        ("name", spec.name), ("type", guest), ("vcpus", spec.cpus),
        ("memory", spec.memory_mib), ("kernel", spec.kernel), ("ramdisk", spec.initrd),
        ("cmdline", spec.cmdline),
        ("bootloader", PYGRUB if not (hvm or spec.kernel) else None),
        ("boot", "c" if hvm and not spec.kernel else None),
        ("disk", [f"format={spec.disk_format}, vdev={'hda' if hvm else 'xvda'}, access=rw, "
                  f"target={spec.disk_path}"] if spec.disk_path else None),
        ("vif", [f"bridge={bridge}"] if spec.nic else None),
        # A PV console is logged by xenconsoled; an HVM serial port goes where we say.
        ("serial", f"file:{spec.serial_log}" if hvm and spec.serial_log else None),
        ("on_poweroff", "destroy"), ("on_reboot", "restart"), ("on_crash", "destroy"),
    ]
    for key, value in settings:
        if value is not None:
            config[key] = value
    return config


def xl_from_spec(spec: VMSpec, guest: str, bridge: str = DEFAULT_BRIDGE) -> str:
    return config_from_spec(spec, guest, bridge).text()
