"""Hypervisor drivers by name: their classes (found by `cloudctl.plugins`, built-ins and
third-party packages alike, in the entry-point group `cloudctl.drivers.hypervisor`), checked
for the capabilities they declare, and opened for a host.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cloudctl.drivers.base import CAPABILITIES, HypervisorDriver

from cloudctl import plugins
from cloudctl.errors import InvalidInput


def available() -> list[str]:
    return plugins.available(plugins.HYPERVISOR)


def driver_class(name: str) -> Any:
    """The class registered as `name` (its module is imported now, not before), once its
    declared capabilities are checked."""
    cls = plugins.load(plugins.HYPERVISOR, name)
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
