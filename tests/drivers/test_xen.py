"""The Xen driver: PV and HVM domain XML, its options, its registration, and `xen-test`
(the same XML on libvirt's test driver)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cloudctl.drivers import registry
from cloudctl.drivers.base import VMSpec, VMState
from cloudctl.drivers.libvirt import METADATA_NS, LibvirtDriver, TestDriver
from cloudctl.drivers.xen import XenDriver, XenTestDriver
from paths import REPO
from test_domain_schema import BARE, FULL

from cloudctl import plugins
from cloudctl.errors import InvalidInput


def xen_xml(spec: VMSpec, **options: object) -> ET.Element:
    return ET.fromstring(XenDriver("xen:///system", options).domain_xml(spec))


def test_pv_with_a_kernel_boots_it_directly_from_a_xen_disk() -> None:
    dom = xen_xml(FULL)
    assert dom.get("type") == "xen"
    assert [(e.tag, e.text) for e in dom.find("os")] == [  # type: ignore[union-attr]
        ("type", "xen"), ("kernel", "/boot/vmlinuz"), ("initrd", "/boot/initrd.gz"),
        ("cmdline", "console=hvc0")]
    assert dom.find("bootloader") is None
    assert dom.find("features") is None, "a PV guest has no ACPI"
    assert dom.find("devices/disk/target").attrib == {"dev": "xvda", "bus": "xen"}  # type: ignore[union-attr]
    assert dom.find("devices/disk/driver").attrib == {"name": "qemu", "type": "qcow2"}  # type: ignore[union-attr]
    console = dom.find("devices/console")
    assert console is not None and console.get("type") == "file"
    assert console.find("source").attrib == {"path": FULL.serial_log, "append": "on"}  # type: ignore[union-attr]
    assert console.find("target").attrib == {"type": "xen", "port": "0"}  # type: ignore[union-attr]
    assert dom.find("devices/serial") is None
    assert dom.find("devices/interface/source").get("bridge") == "xenbr0"  # type: ignore[union-attr]
    assert dom.find("devices/memballoon").get("model") == "xen"  # type: ignore[union-attr]
    meta = dom.find(f"metadata/{{{METADATA_NS}}}vm")
    assert meta is not None and meta.attrib == {"lease": "12", "node": "0"}


def test_pv_without_a_kernel_uses_pygrub_before_os() -> None:
    dom = xen_xml(BARE, guest="pv")
    tags = [child.tag for child in dom]
    assert dom.findtext("bootloader") == "pygrub"
    assert tags.index("bootloader") < tags.index("os")
    assert [e.tag for e in dom.find("os")] == ["type"]  # type: ignore[union-attr]
    assert dom.find("devices/console").get("type") == "pty"  # type: ignore[union-attr]


def test_hvm_has_hvmloader_ide_disk_serial_and_acpi() -> None:
    dom = xen_xml(FULL, guest="hvm", bridge="br1")
    os_el = dom.find("os")
    assert os_el is not None and os_el.findtext("type") == "hvm"
    assert os_el.find("loader").attrib == {"type": "rom"}  # type: ignore[union-attr]
    assert os_el.findtext("loader") == "/usr/lib/xen/boot/hvmloader"
    assert os_el.findtext("kernel") == "/boot/vmlinuz"
    assert [f.tag for f in dom.find("features")] == ["acpi", "apic", "pae"]  # type: ignore[union-attr]
    assert dom.find("devices/disk/target").attrib == {"dev": "hda", "bus": "ide"}  # type: ignore[union-attr]
    serial = dom.find("devices/serial")
    assert serial is not None and serial.find("target").attrib == {"port": "0"}  # type: ignore[union-attr]
    assert dom.find("devices/console") is None
    assert dom.find("devices/interface/source").get("bridge") == "br1"  # type: ignore[union-attr]
    bare = xen_xml(BARE, guest="hvm")
    assert bare.find("os/boot").get("dev") == "hd"  # type: ignore[union-attr]
    assert bare.find("bootloader") is None


def test_the_guest_type_is_an_option_never_guessed() -> None:
    assert XenDriver("xen:///system").guest == "pv"
    assert registry.open_driver("xen", "xen+ssh://root@xen-1/system", {"guest": "hvm"}).guest \
        == "hvm"  # type: ignore[attr-defined]
    for options in ({"guest": "pvh"}, {"guest": "HVM"}, {"domain_type": "xen"}):
        with pytest.raises(InvalidInput) as err:
            registry.open_driver("xen", "xen:///system", options)
        assert "\n" not in str(err.value) and err.value.exit_code == 2


def test_xen_and_xen_test_are_registered_and_reuse_the_libvirt_lifecycle() -> None:
    assert {"xen", "xen-test"} <= set(registry.available())
    assert registry.driver_class("xen") is XenDriver
    assert registry.driver_class("xen-test") is XenTestDriver
    assert issubclass(XenDriver, LibvirtDriver) and issubclass(XenTestDriver, TestDriver)
    assert XenDriver.create is LibvirtDriver.create
    assert XenDriver.capabilities == {"suspend", "cold-migration", "live-migration"}
    assert XenTestDriver.capabilities == TestDriver.capabilities
    assert registry.default_uri("xen", "x", 2, 1024, Path("/nonexistent")) == "xen:///system"


def test_xen_test_keeps_xen_domains_in_its_node_file(tmp_path: Path) -> None:
    uri = registry.default_uri("xen-test", "xen-1", 2, 2048, tmp_path)
    with registry.open_driver("xen-test", uri, {"guest": "hvm"}) as drv:
        drv.create(FULL)
        assert drv.name == "xen-test"
    node = ET.parse(tmp_path / "hosts" / "xen-1.xml").getroot()
    dom = node.find("domain")
    assert dom is not None and dom.get("type") == "xen"
    assert dom.findtext("os/type") == "hvm"
    assert dom.findtext("os/loader") == "/usr/lib/xen/boot/hvmloader"
    # A later process (a new driver) sees it running.
    with registry.open_driver("xen-test", uri, {"guest": "hvm"}) as drv:
        assert drv.list_vms() == {FULL.name: VMState.RUNNING}


def test_pyproject_registers_the_builtins_exactly_as_the_plugin_loader_knows_them() -> None:
    tomllib = pytest.importorskip("tomllib")
    pyproject = REPO / "pyproject.toml"
    groups = tomllib.loads(pyproject.read_text())["project"]["entry-points"]
    assert groups == plugins.BUILTIN  # every group: drivers and policies alike
    table = groups[plugins.HYPERVISOR]
    assert table["xen"] == "cloudctl.drivers.xen:XenDriver"
    assert table["xen-test"] == "cloudctl.drivers.xen:XenTestDriver"
