"""Every domain XML we generate is valid against libvirt's own RelaxNG schema (shipped by the
Debian package libvirt0, which scripts/setup.sh installs)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cloudctl.drivers.base import VMSpec
from cloudctl.drivers.libvirt import domain_xml
from cloudctl.drivers.xen import xen_domain_xml

SCHEMA = Path("/usr/share/libvirt/schemas/domain.rng")
FULL = VMSpec(name="cloudctl-12-0", cpus=2, memory_mib=384, lease_id=12, node=0,
              disk_path="/var/lib/cloudctl/12-0.qcow2", serial_log="/var/log/cloudctl/12-0.log",
              kernel="/boot/vmlinuz", initrd="/boot/initrd.gz", cmdline="console=hvc0",
              nic=True)
BARE = VMSpec(name="cloudctl-13-1", cpus=1, memory_mib=64, lease_id=13, node=1)
RAW_DISK = VMSpec(name="cloudctl-14-0", cpus=1, memory_mib=128, lease_id=14, node=0,
                  disk_path="/srv/14.img", disk_format="raw", nic=True)
SPECS = {"full": FULL, "bare": BARE, "raw-disk": RAW_DISK}


@cache
def schema() -> Any:
    from lxml import etree

    return etree.RelaxNG(etree.parse(str(SCHEMA)))


def assert_valid(xml: str) -> None:
    from lxml import etree

    rng = schema()
    assert rng.validate(etree.fromstring(xml.encode())), f"{rng.error_log}\n{xml}"


@pytest.mark.parametrize("guest", ["pv", "hvm"])
@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_xen_xml_is_valid(guest: str, spec: VMSpec) -> None:
    assert_valid(xen_domain_xml(spec, guest))


@pytest.mark.parametrize("domain_type", ["qemu", "kvm"])
@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_qemu_xml_is_valid(domain_type: str, spec: VMSpec) -> None:
    assert_valid(domain_xml(spec, domain_type))


def test_the_schema_rejects_what_libvirt_would() -> None:
    """The validation is real: a PV domain with an HVM-only element fails."""
    from lxml import etree

    bad = xen_domain_xml(BARE, "pv").replace("<os>", "<os><boot dev='hd'/>", 1)
    assert not schema().validate(etree.fromstring(bad.encode()))
