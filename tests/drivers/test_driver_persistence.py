"""The test driver remembers its VMs across processes, as a CLI needs, and concurrent
processes do not lose each other's changes."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cloudctl.drivers.base import VMState
from cloudctl.drivers.libvirt import TEST_NS, node_document, write_private
from cloudctl.drivers.registry import default_uri, open_driver

# Runs in a fresh interpreter: one CLI command's worth of driver calls. Prints the states.
SCRIPT = """
import json, sys
from cloudctl.drivers.base import VMSpec
from cloudctl.drivers.registry import open_driver
uri, action, image, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
drv = open_driver("test", uri)
for name in names:
    if action == "create":
        drv.create(VMSpec(name=name, cpus=1, memory_mib=128, lease_id=1, node=0))
    elif action == "suspend":
        drv.suspend(name, image)
    elif action == "resume":
        drv.resume(name, image)
print(json.dumps({name: state.value for name, state in drv.list_vms().items()}))
"""


def in_process(uri: str, action: str, image: Path, *names: str) -> dict[str, str]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, uri, action, str(image), *names],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", "libvirt must not print on its own"
    return json.loads(done.stdout)


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return default_uri("test", "host-0", 4, 4096, tmp_path / "state")


@pytest.mark.slow
def test_a_vm_outlives_the_process_that_created_it(uri: str, tmp_path: Path) -> None:
    image = tmp_path / "vm.save"
    assert in_process(uri, "create", image, "cloudctl-1-0") == {"cloudctl-1-0": "running"}
    assert in_process(uri, "list", image) == {"cloudctl-1-0": "running"}
    assert in_process(uri, "suspend", image, "cloudctl-1-0") == {"cloudctl-1-0": "shutoff"}
    assert image.exists()
    assert in_process(uri, "list", image) == {"cloudctl-1-0": "shutoff"}
    assert in_process(uri, "resume", image, "cloudctl-1-0") == {"cloudctl-1-0": "running"}
    with open_driver("test", uri) as drv:
        assert drv.state("cloudctl-1-0") is VMState.RUNNING
        assert drv.host_info().running_vms == 1


def test_an_open_driver_sees_what_other_processes_did(uri: str, tmp_path: Path) -> None:
    with open_driver("test", uri) as drv:
        assert drv.list_vms() == {}
        in_process(uri, "create", tmp_path / "vm.save", "cloudctl-2-0")
        assert drv.state("cloudctl-2-0") is VMState.RUNNING
        drv.destroy("cloudctl-2-0")
    assert in_process(uri, "list", tmp_path / "vm.save") == {}


@pytest.mark.slow
def test_concurrent_processes_lose_no_vm(uri: str, tmp_path: Path) -> None:
    workers = [[f"cloudctl-{w}-{n}" for n in range(8)] for w in range(4)]
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, uri, "create",
                               str(tmp_path / "unused"), *names],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for names in workers]
    for proc in procs:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    with open_driver("test", uri) as drv:
        assert drv.list_vms() == {name: VMState.RUNNING for names in workers for name in names}


def test_the_node_file_keeps_host_info_and_only_existing_domains(uri: str) -> None:
    node_file = Path(uri.removeprefix("test://"))
    with open_driver("test", uri) as drv:
        in_process(uri, "create", node_file, "cloudctl-3-0", "cloudctl-3-1")
        drv.destroy("cloudctl-3-0")
    root = ET.parse(node_file).getroot()
    assert [d.findtext("name") for d in root.findall("domain")] == ["cloudctl-3-1"]
    assert root.findtext(f"domain/{{{TEST_NS}}}runstate") == "1"
    assert root.findtext("cpu/cores") == "4"
    assert root.findtext("memory") == str(4096 * 1024)
    assert node_file.stat().st_mode & 0o777 == 0o600
    assert not list(node_file.parent.glob(".*.tmp"))


def test_a_paused_domain_in_the_node_file_is_paused_and_create_resumes_it(
        tmp_path: Path) -> None:
    node_file = tmp_path / "node.xml"
    domain = ("<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
              "<name>cloudctl-4-0</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>"
              "<os><type>hvm</type></os><test:runstate>3</test:runstate></domain>")
    write_private(node_file, node_document(2, 1024).replace("</node>", domain + "</node>"))
    with open_driver("test", f"test://{node_file}") as drv:
        assert drv.state("cloudctl-4-0") is VMState.PAUSED
        assert drv.host_info().running_vms == 1
    assert in_process(f"test://{node_file}", "create", tmp_path / "x", "cloudctl-4-0") == {
        "cloudctl-4-0": "running"}
