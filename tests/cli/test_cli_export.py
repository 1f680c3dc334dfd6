"""`cloudctl vm export` through typer's runner: domain XML and xl.cfg of VMs on test and
xen-test hosts, to stdout or a file, and its errors with their exit codes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cli_harness import Cli
from cloudctl.drivers.xlcfg import parse


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """A cloud with a test host `node-1` and a xen-test host `xen-1` whose guests are HVM;
    lease 1 runs on node-1, lease 2 on xen-1."""
    c = Cli(tmp_path, monkeypatch)
    c("init")
    with open(tmp_path / "config.toml", "a", encoding="utf-8") as config:
        config.write('\n[drivers.xen-test]\nguest = "hvm"\n')
    c("host", "add", "node-1", "--cpus", 4, "--memory", 4096)
    c("host", "add", "xen-1", "--cpus", 4, "--memory", 4096, "--driver", "xen-test")
    c("lease", "request", "--type", "be", "--duration", "1h", "--cpus", 4, "--memory", 1024)
    c("lease", "request", "--type", "be", "--duration", "1h", "--cpus", 4, "--memory", 2048)
    c("tick")
    hosts = {vm["name"]: vm["host"] for vm in json.loads(c("vm", "list", "--json").stdout)}
    assert hosts == {"cloudctl-1-0": "node-1", "cloudctl-2-0": "xen-1"}
    return c


def test_xml_is_what_the_host_driver_defines(cli: Cli) -> None:
    test_dom = ET.fromstring(cli("vm", "export", "cloudctl-1-0", "--format", "xml").stdout)
    assert test_dom.get("type") == "test"
    assert test_dom.findtext("name") == "cloudctl-1-0"
    xen_dom = ET.fromstring(cli("vm", "export", "cloudctl-2-0", "--format", "xml").stdout)
    assert (xen_dom.get("type"), xen_dom.findtext("os/type")) == ("xen", "hvm")
    assert xen_dom.findtext("memory") == "2048"
    # The domain enactment defined on xen-1 is that XML.
    node = ET.parse(cli.tmp / "state.d" / "hosts" / "xen-1.xml").getroot()
    defined = node.find("domain")
    assert defined is not None and defined.get("type") == "xen"
    assert defined.findtext("os/loader") == xen_dom.findtext("os/loader")


def test_xl_follows_the_xen_host_guest_type_else_pv(cli: Cli) -> None:
    hvm = parse(cli("vm", "export", "cloudctl-2-0", "--format", "xl").stdout)
    assert (hvm.get("name"), hvm.get("type"), hvm.get("vcpus"), hvm.get("memory")) == (
        "cloudctl-2-0", "hvm", 4, 2048)
    assert hvm.get("boot") == "c"
    pv = cli("vm", "export", "1", "--format", "xl").stdout  # by id, as `vm show` takes it
    assert pv == ('# cloudctl-1-0: lease 1, node 0 (exported by cloudctl)\n'
                  'name = "cloudctl-1-0"\ntype = "pv"\nvcpus = 4\nmemory = 1024\n'
                  'bootloader = "pygrub"\non_poweroff = "destroy"\non_reboot = "restart"\n'
                  'on_crash = "destroy"\n')


def test_output_goes_to_a_file(cli: Cli) -> None:
    target = cli.tmp / "web.cfg"
    result = cli("vm", "export", "cloudctl-2-0", "--format", "xl", "--output", target)
    assert result.stdout == ""
    assert result.stderr == f"wrote {target}\n"
    assert parse(target.read_text()).get("type") == "hvm"


@pytest.mark.parametrize("args, code, message", [
    (["cloudctl-9-0", "--format", "xl"], 3, "cloudctl-9-0"),
    (["cloudctl-1-0", "--format", "yaml"], 2, "--format must be one of xl, xml, got 'yaml'"),
    (["cloudctl-1-0", "--format", "xl", "--output", "/nonexistent/dir/x.cfg"], 2,
     "cannot write /nonexistent/dir/x.cfg: No such file or directory"),
    (["cloudctl-1-0"], 2, "--format"),
])
def test_errors_are_one_line_with_their_exit_code(
        cli: Cli, args: list[str], code: int, message: str) -> None:
    result = cli("vm", "export", *args, code=code)
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_vm_whose_host_is_gone_exports_xl_but_not_xml(cli: Cli) -> None:
    cli("host", "remove", "node-1", "--force")
    assert parse(cli("vm", "export", "cloudctl-1-0", "--format", "xl").stdout).get("type") == "pv"
    result = cli("vm", "export", "cloudctl-1-0", "--format", "xml", code=4)
    assert result.stderr == ("Error: vm cloudctl-1-0: its host node-1 is gone, and its domain "
                             "XML is its host driver's\n")
