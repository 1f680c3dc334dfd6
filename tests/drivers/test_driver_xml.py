"""Domain XML generated from a VMSpec (the traps of REAL-COMPONENTS.md), and the state table."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import pytest
from cloudctl.drivers.base import VMSpec, VMState
from cloudctl.drivers.libvirt import (
    METADATA_NS,
    NATIVE_STATES,
    QemuDriver,
    map_state,
    node_document,
    write_private,
)

from cloudctl.errors import InvalidInput

FULL = VMSpec(name="cloudctl-12-0", cpus=2, memory_mib=384, lease_id=12, node=0,
              disk_path="/var/lib/cloudctl/12-0.qcow2", serial_log="/var/log/cloudctl/12-0.log",
              kernel="/boot/vmlinuz", initrd="/boot/initrd.gz", cmdline="console=ttyS0",
              nic=True)
BARE = VMSpec(name="cloudctl-13-1", cpus=1, memory_mib=64, lease_id=13, node=1)


def qemu_xml(spec: VMSpec, **options: object) -> ET.Element:
    return ET.fromstring(QemuDriver("qemu:///system", options).domain_xml(spec))


def test_the_key_elements_of_a_full_spec() -> None:
    dom = qemu_xml(FULL)
    assert dom.get("type") == "qemu"
    assert dom.findtext("name") == "cloudctl-12-0"
    assert dom.findtext("vcpu") == "2"
    memory = dom.find("memory")
    assert memory is not None and (memory.get("unit"), memory.text) == ("MiB", "384")
    assert dom.find("features/acpi") is not None
    os_el = dom.find("os")
    assert os_el is not None
    assert [(e.tag, e.text) for e in os_el] == [
        ("type", "hvm"), ("kernel", "/boot/vmlinuz"), ("initrd", "/boot/initrd.gz"),
        ("cmdline", "console=ttyS0")]
    serial = dom.find("devices/serial[@type='file']/source")
    assert serial is not None
    assert serial.attrib == {"path": "/var/log/cloudctl/12-0.log", "append": "on"}
    driver = dom.find("devices/disk[@device='disk']/driver")
    assert driver is not None and driver.get("type") == "qcow2"
    assert dom.find("devices/disk/source").get("file") == FULL.disk_path  # type: ignore[union-attr]
    assert dom.find("devices/disk/target").attrib == {"dev": "vda", "bus": "virtio"}  # type: ignore[union-attr]
    assert [b.get("model") for b in dom.iter("memballoon")] == ["none"]
    assert dom.find("devices/interface").get("type") == "user"  # type: ignore[union-attr]
    meta = dom.find(f"metadata/{{{METADATA_NS}}}vm")
    assert meta is not None and meta.attrib == {"lease": "12", "node": "0"}


def test_a_bare_spec_boots_from_disk_with_no_devices_but_no_balloon() -> None:
    dom = qemu_xml(BARE, domain_type="kvm")
    assert dom.get("type") == "kvm"
    assert dom.find("os/boot").get("dev") == "hd"  # type: ignore[union-attr]
    assert dom.find("os/kernel") is None
    devices = dom.find("devices")
    assert devices is not None and [d.tag for d in devices] == ["memballoon"]
    assert dom.find("devices/memballoon").get("model") == "none"  # type: ignore[union-attr]


def test_a_raw_disk_gets_the_raw_driver_type() -> None:
    raw = VMSpec(name="cloudctl-1-0", cpus=1, memory_mib=64, lease_id=1, node=0,
                 disk_path="/d.img", disk_format="raw")
    assert qemu_xml(raw).find("devices/disk/driver").get("type") == "raw"  # type: ignore[union-attr]


@pytest.mark.parametrize("fields", [
    {"disk_format": "vmdk"}, {"cpus": 0}, {"memory_mib": 0}, {"name": ""},
    {"name": "a/b"}, {"cmdline": "quiet"},
])
def test_bad_specs_are_invalid_input(fields: dict[str, object]) -> None:
    args: dict[str, object] = {"name": "cloudctl-1-0", "cpus": 1, "memory_mib": 64,
                               "lease_id": 1, "node": 0, **fields}
    with pytest.raises(InvalidInput):
        VMSpec(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", [FULL, BARE], ids=["full", "bare"])
def test_libvirt_accepts_the_qemu_xml(spec: VMSpec, tmp_path: Path) -> None:
    """The test driver parses domain XML with libvirt's own parser: a malformed or misplaced
    element fails here without a QEMU host."""
    node_file = tmp_path / "node.xml"
    write_private(node_file, node_document(2, 2048))
    libvirt.registerErrorHandler(lambda *_: None, None)
    conn = libvirt.open(f"test://{node_file}")
    try:
        dom = conn.defineXML(QemuDriver("qemu:///system").domain_xml(spec))
        back = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    finally:
        conn.close()
    assert back.get("type") == "qemu"
    assert back.find("memory").text == str(spec.memory_mib * 1024)  # type: ignore[union-attr]
    assert back.find("features/acpi") is not None
    assert back.find("devices/memballoon").get("model") == "none"  # type: ignore[union-attr]
    if spec.serial_log:
        source = back.find("devices/serial/source")
        assert source is not None and source.get("append") == "on"
    if spec.disk_path:
        assert back.find("devices/disk/driver").get("type") == spec.disk_format  # type: ignore[union-attr]


def test_native_states_map_through_one_table_with_an_unknown_fallback() -> None:
    assert map_state(libvirt.VIR_DOMAIN_RUNNING) is VMState.RUNNING
    assert map_state(libvirt.VIR_DOMAIN_BLOCKED) is VMState.RUNNING
    assert map_state(libvirt.VIR_DOMAIN_PAUSED) is VMState.PAUSED
    assert map_state(libvirt.VIR_DOMAIN_PMSUSPENDED) is VMState.PAUSED
    assert map_state(libvirt.VIR_DOMAIN_SHUTOFF) is VMState.SHUTOFF
    assert map_state(libvirt.VIR_DOMAIN_CRASHED) is VMState.CRASHED
    assert map_state(libvirt.VIR_DOMAIN_NOSTATE) is VMState.UNKNOWN
    assert map_state(99) is VMState.UNKNOWN
    native = {v for k, v in vars(libvirt).items()
              if k.startswith("VIR_DOMAIN_") and k[11:] in {
                  "NOSTATE", "RUNNING", "BLOCKED", "PAUSED", "SHUTDOWN", "SHUTOFF", "CRASHED",
                  "PMSUSPENDED"}}
    assert native == set(NATIVE_STATES)
