"""`vm export`: a VM as its host's libvirt driver defines it (domain XML) or as Xen's xl.cfg.

Nothing here connects to a hypervisor: both formats are made from the store's records and the
host driver's options.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloudctl.enact import vm_spec
from cloudctl.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from cloudctl.app import App

FORMATS = ("xl", "xml")


def export_vm(cloud: App, key: str, fmt: str) -> str:
    """The text of VM `key` (name or id) in `fmt`: "xml" needs the VM's host; "xl" takes the
    guest type of a Xen host's driver and is PV for any other host."""
    from cloudctl.drivers.xen import DEFAULT_BRIDGE, XenGuests
    from cloudctl.drivers.xlconvert import xl_from_spec

    if fmt not in FORMATS:
        raise InvalidInput(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    store = cloud.store
    with store.read():
        vm = store.vms.get(key)
        host = next((h for h in store.hosts.all() if h.name == vm.host), None)
        image = next((i for i in store.images.all() if i.name == vm.image), None)
    spec = vm_spec(vm, image, cloud.settings.state_dir / "logs")
    driver = cloud.pool.get(host) if host is not None else None  # opening does not connect
    if fmt == "xl":
        if isinstance(driver, XenGuests):
            return xl_from_spec(spec, driver.guest, driver.bridge)
        return xl_from_spec(spec, "pv", DEFAULT_BRIDGE)
    if host is None:
        where = f"its host {vm.host} is gone" if vm.host else "it has no host yet"
        raise Conflict(f"vm {vm.name}: {where}, and its domain XML is its host driver's")
    domain_xml = getattr(driver, "domain_xml", None)
    if domain_xml is None:
        raise InvalidInput(f"host {host.name}'s driver {host.driver!r} has no domain XML")
    return str(domain_xml(spec))
