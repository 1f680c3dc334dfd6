"""Xen hosts through libvirt (`xen:///system`, `xen+ssh://...`): only the domain XML and the
declared capabilities differ from the rest of the libvirt family.

A guest is paravirtualized (PV) or fully virtualized (HVM) as the host's options say
(`guest = "pv"|"hvm"`, PV unless told): the hypervisor could run either, so it is never guessed.
`XenTestDriver` (`xen-test`) runs the same XML on libvirt's test driver, which accepts
type='xen' domains, so the contract suite covers Xen where Xen cannot run.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

from cloudctl.drivers.base import VMSpec
from cloudctl.drivers.libvirt import (
    LibvirtDriver,
    TestDriver,
    add_disk,
    add_kernel_boot,
    add_log_source,
    domain_skeleton,
    xml_text,
)

from cloudctl.errors import InvalidInput

GUESTS = ("pv", "hvm")
DEFAULT_BRIDGE = "xenbr0"
# libxl resolves a bare bootloader name in Xen's own libexec directory.
PYGRUB = "pygrub"
HVMLOADER = "/usr/lib/xen/boot/hvmloader"
HVM_FEATURES = ("acpi", "apic", "pae")


def guest_type(options: Mapping[str, object], driver: str = "xen") -> str:
    """The `guest` option, checked: "pv" (the default) or "hvm"."""
    guest = options.get("guest", "pv")
    if guest not in GUESTS:
        raise InvalidInput(f"{driver} driver: guest {guest!r} is not one of {', '.join(GUESTS)}")
    return str(guest)


def xen_domain_xml(spec: VMSpec, guest: str, bridge: str = DEFAULT_BRIDGE) -> str:
    """Domain XML of type 'xen' for a PV or HVM guest, after libvirt's libxl conventions."""
    hvm = guest == "hvm"
    # A PV guest has no firmware and shuts down through xenstore, not ACPI.
    dom, os_el, devices = domain_skeleton(spec, "xen", features=HVM_FEATURES if hvm else ())
    ET.SubElement(os_el, "type").text = "hvm" if hvm else "xen"
    if hvm:
        ET.SubElement(os_el, "loader", type="rom").text = HVMLOADER
        if not add_kernel_boot(os_el, spec):
            ET.SubElement(os_el, "boot", dev="hd")
    elif not add_kernel_boot(os_el, spec):
        # No kernel to boot directly: pygrub reads it from the guest's disk. The schema
        # wants <bootloader> before <os>.
        bootloader = ET.Element("bootloader")
        bootloader.text = PYGRUB
        dom.insert(list(dom).index(os_el), bootloader)
    add_disk(devices, spec, "hda" if hvm else "xvda", "ide" if hvm else "xen")
    if spec.nic:
        nic = ET.SubElement(devices, "interface", type="bridge")
        ET.SubElement(nic, "source", bridge=bridge)
    if hvm:
        console = ET.SubElement(devices, "serial", type="file" if spec.serial_log else "pty")
        target = {"port": "0"}
    else:
        console = ET.SubElement(devices, "console", type="file" if spec.serial_log else "pty")
        target = {"type": "xen", "port": "0"}
    if spec.serial_log:
        add_log_source(console, spec.serial_log)
    ET.SubElement(console, "target", target)
    ET.SubElement(devices, "memballoon", model="xen")
    return xml_text(dom)


class XenGuests:
    """Mixed into a libvirt driver: Xen domain XML, PV or HVM from the `guest` option."""

    name: str
    known_options = frozenset({"guest", "bridge"})
    domain_type = "xen"
    options: dict[str, object]

    def __init__(self, uri: str, options: Mapping[str, object] | None = None) -> None:
        super().__init__(uri, options)  # type: ignore[call-arg]
        self.guest = guest_type(self.options, self.name)
        self.bridge = str(self.options.get("bridge", DEFAULT_BRIDGE))

    def domain_xml(self, spec: VMSpec) -> str:
        return xen_domain_xml(spec, self.guest, self.bridge)


class XenDriver(XenGuests, LibvirtDriver):
    """A Xen host through libvirt's libxl driver."""

    name = "xen"
    capabilities = frozenset({"suspend", "cold-migration", "live-migration"})

    @classmethod
    def default_uri(cls, host_name: str, cpus: int, memory_mib: int, state_dir: Path) -> str:
        return "xen:///system"


class XenTestDriver(XenGuests, TestDriver):
    """Xen domain XML on libvirt's test driver, persisted in its node file like `test`."""

    __test__ = False  # not a pytest class, whatever its name says
    name = "xen-test"
