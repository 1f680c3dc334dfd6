"""Find hypervisor drivers by name: built-ins and third-party packages alike, through entry points.

A third-party package registers, in its pyproject.toml,
    [project.entry-points."cloudctl.drivers.hypervisor"]
    my-hv = "my_package.module:MyDriver"
and `host add --driver my-hv` picks it. A driver's module is imported only when it is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from cloudctl.drivers.base import CAPABILITIES, HypervisorDriver

from cloudctl.errors import InvalidInput

GROUP = "cloudctl.drivers.hypervisor"

# The same names the package registers as entry points; used when running from a source tree
# that has not been installed, so the built-ins never depend on packaging metadata.
BUILTIN: dict[str, str] = {
    "test": "cloudctl.drivers.libvirt:TestDriver",
    "qemu": "cloudctl.drivers.libvirt:QemuDriver",
    "kvm": "cloudctl.drivers.libvirt:QemuDriver",
    "xen": "cloudctl.drivers.xen:XenDriver",
    "xen-test": "cloudctl.drivers.xen:XenTestDriver",
}


def _registered() -> dict[str, str]:
    found = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def available() -> list[str]:
    return sorted(_registered())


def driver_class(name: str) -> Any:
    """The class registered as `name` (its module is imported now, not before)."""
    target = BUILTIN.get(name) or _registered().get(name)
    if target is None:
        raise InvalidInput(f"unknown hypervisor driver {name!r} (known: {', '.join(available())})")
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(f"hypervisor driver {name!r} cannot be loaded from {target}: "
                           f"{exc}") from exc
    extra = set(getattr(cls, "capabilities", ())) - CAPABILITIES
    if extra:
        raise InvalidInput(f"hypervisor driver {name!r} declares unknown capabilities "
                           f"{', '.join(sorted(extra))}")
    return cls


def open_driver(name: str, uri: str,
                options: Mapping[str, object] | None = None) -> HypervisorDriver:
    """A driver for the host at `uri`; it connects on first use, so this never blocks."""
    driver: HypervisorDriver = driver_class(name)(uri, options)
    driver.name = name  # `kvm` and `qemu` share a class; the host keeps the name it was given
    return driver


def default_uri(name: str, host_name: str, cpus: int, memory_mib: int, state_dir: Path) -> str:
    """The URI a new host gets when none is given. For `test` this creates the host's private
    node file under `state_dir/hosts/`; for qemu/kvm it is the local system daemon."""
    cls = driver_class(name)
    if not hasattr(cls, "default_uri"):
        raise InvalidInput(f"hypervisor driver {name!r} has no default URI; give one")
    return str(cls.default_uri(host_name, cpus, memory_mib, Path(state_dir)))
