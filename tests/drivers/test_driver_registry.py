"""Finding drivers by name, default URIs, option checking, errors, and import cost."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cloudctl.drivers import registry
from cloudctl.drivers.base import LiveMigratingDriver, VMSpec, VMState
from cloudctl.drivers.libvirt import QemuDriver, TestDriver

from cloudctl.errors import BackendError, InvalidInput


def test_builtin_drivers_are_registered() -> None:
    assert {"test", "qemu", "kvm"} <= set(registry.available())
    assert registry.driver_class("test") is TestDriver
    assert registry.driver_class("kvm") is QemuDriver


def test_an_unknown_driver_names_the_known_ones() -> None:
    with pytest.raises(InvalidInput) as err:
        registry.open_driver("vmware", "vpx://nowhere")
    assert "'vmware'" in str(err.value)
    assert "known: kvm, qemu, test" in str(err.value)
    assert err.value.exit_code == 2


def test_open_driver_keeps_the_registry_name_and_does_not_connect() -> None:
    drv = registry.open_driver("kvm", "qemu:///nonexistent", {"domain_type": "kvm"})
    assert drv.name == "kvm"
    assert drv.capabilities == {"suspend", "cold-migration", "live-migration"}
    assert drv.domain_type == "kvm"  # type: ignore[attr-defined]
    assert QemuDriver("qemu:///system").domain_type == "qemu", "never guessed"


def test_only_drivers_that_declare_live_migration_can_migrate(tmp_path: Path) -> None:
    qemu = registry.open_driver("qemu", "qemu:///nonexistent", {"migrate_uri": "tcp://10.0.0.2"})
    assert isinstance(qemu, LiveMigratingDriver) and "live-migration" in qemu.capabilities
    test = registry.open_driver("test", f"test://{tmp_path}/node.xml")
    assert not isinstance(test, LiveMigratingDriver) and "live-migration" not in test.capabilities


@pytest.mark.parametrize("name, options", [
    ("qemu", {"domain_type": "xen"}),
    ("qemu", {"domian_type": "kvm"}),
    ("test", {"domain_type": "qemu"}),
    ("qemu", {"migrate_uri": "127.0.0.1"}),
    ("qemu", {"migrate_uri": 49152}),
])
def test_bad_options_are_invalid_input(name: str, options: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        registry.open_driver(name, "test:///tmp/node.xml", options)


@pytest.mark.parametrize("uri", ["test:///default", "test://relative/node.xml", "qemu:///system"])
def test_the_test_driver_needs_a_node_file(uri: str) -> None:
    with pytest.raises(InvalidInput, match="ABSOLUTE"):
        registry.open_driver("test", uri)


def test_default_uri_creates_a_private_node_file(tmp_path: Path) -> None:
    uri = registry.default_uri("test", "host-3", 6, 12288, tmp_path / "state")
    node_file = tmp_path / "state" / "hosts" / "host-3.xml"
    assert uri == f"test://{node_file}"
    assert node_file.stat().st_mode & 0o777 == 0o600
    root = ET.parse(node_file).getroot()
    assert root.tag == "node"
    with registry.open_driver("test", uri) as drv:
        info = drv.host_info()
        assert (info.cpus, info.memory_mib, info.free_memory_mib) == (6, 12288, 12288)
        drv.create(VMSpec(name="cloudctl-1-0", cpus=1, memory_mib=64, lease_id=1, node=0))
    # Asking again must not wipe the host's VMs; it updates the host's size.
    assert registry.default_uri("test", "host-3", 8, 16384, tmp_path / "state") == uri
    with registry.open_driver("test", uri) as drv:
        assert drv.list_vms() == {"cloudctl-1-0": VMState.RUNNING}
        info = drv.host_info()
        assert (info.cpus, info.memory_mib, info.free_memory_mib) == (8, 16384, 16384 - 64)
    assert node_file.stat().st_mode & 0o777 == 0o600


def test_default_uri_of_qemu_is_the_system_daemon(tmp_path: Path) -> None:
    for name in ("qemu", "kvm"):
        assert registry.default_uri(name, "h", 2, 1024, tmp_path) == "qemu:///system"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("host_name", ["../escape", "", ".hidden", "a/b"])
def test_default_uri_refuses_host_names_that_are_not_file_names(
        host_name: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        registry.default_uri("test", host_name, 2, 1024, tmp_path)


def test_a_connection_failure_is_one_backend_line(capfd: pytest.CaptureFixture[str]) -> None:
    drv = registry.open_driver("test", "test:///nonexistent/file.xml")
    with pytest.raises(BackendError) as err:
        drv.state("cloudctl-1-0")
    message = str(err.value)
    assert message.startswith("test:///nonexistent/file.xml: connect: ")
    assert "\n" not in message
    assert err.value.exit_code == 5
    with pytest.raises(BackendError):
        registry.open_driver("qemu", "qemu+unix:///system?socket=/nonexistent/sock").host_info()
    assert capfd.readouterr().err == "", "libvirt's own error printing is silenced"


def test_a_missing_node_file_is_a_backend_error_and_creates_nothing(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    drv = registry.open_driver("test", f"test://{tmp_path}/gone.xml")
    with pytest.raises(BackendError, match="connect: no node file"):
        drv.create(VMSpec(name="cloudctl-1-0", cpus=1, memory_mib=64, lease_id=1, node=0))
    assert list(tmp_path.iterdir()) == []
    assert capfd.readouterr().err == ""


def test_a_libvirt_failure_names_host_and_operation(tmp_path: Path) -> None:
    uri = registry.default_uri("test", "h", 1, 512, tmp_path)
    with registry.open_driver("test", uri) as drv:
        drv.create(VMSpec(name="cloudctl-1-0", cpus=1, memory_mib=64, lease_id=1, node=0))
        # The saved image cannot be written into a directory that does not exist.
        with pytest.raises(BackendError) as err:
            drv.suspend("cloudctl-1-0", str(tmp_path / "no" / "such" / "dir" / "vm.save"))
        assert str(err.value).startswith(f"{uri}: suspend cloudctl-1-0: ")
        assert "\n" not in str(err.value)
        assert drv.state("cloudctl-1-0") is VMState.RUNNING


def test_importing_the_driver_layer_does_not_import_libvirt(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import cloudctl.drivers.base, cloudctl.drivers.registry as r\n"
        "assert 'libvirt' not in sys.modules, 'base/registry imported libvirt'\n"
        "r.available()\n"
        f"drv = r.open_driver('test', r.default_uri('test', 'h', 1, 64, {str(tmp_path)!r}))\n"
        "assert drv.capabilities\n"
        "assert 'libvirt' not in sys.modules, 'choosing a driver imported libvirt'\n"
        "drv.host_info()\n"
        "assert 'libvirt' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
