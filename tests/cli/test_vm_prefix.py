"""`cloudctl init --vm-prefix`: a store's VMs get names of their own on the hypervisors, so
stores (or test runs) sharing one libvirtd never take each other's domains."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_harness import Cli


def test_vms_are_named_by_the_store_prefix(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    cli = Cli(tmp_path, monkeypatch)
    assert cli.json("init", "--vm-prefix", "cloudctl-lab")["vm_prefix"] == "cloudctl-lab"
    cli("host", "add", "node-1", "--cpus", 2, "--memory", 2048)
    lease = cli.json("lease", "request", "--type", "im", "--duration", "1h")
    cli("tick")
    vm = cli.json("vm", "list")[0]
    assert vm["name"] == f"cloudctl-lab-{lease['id']}-0" and vm["state"] == "running"
    node = Path(cli.env["CLOUDCTL_DB"]).with_suffix(".d") / "hosts" / "node-1.xml"
    assert f"<name>cloudctl-lab-{lease['id']}-0</name>" in node.read_text()
    assert cli.json("tick")["unowned"] == []
    # Idempotent with the same prefix; another one once VMs exist is a conflict.
    assert cli.json("init", "--vm-prefix", "cloudctl-lab")["vm_prefix"] == "cloudctl-lab"
    assert cli.json("init")["vm_prefix"] == "cloudctl-lab"
    error = cli("init", "--vm-prefix", "cloudctl-other", code=4).stderr
    assert "cannot change" in error and error.count("\n") == 1


@pytest.mark.parametrize("bad", ["lab", "cloudctl-", "cloudctl-Lab", "cloudctl_lab",
                                 "cloudctl-" + "x" * 40])
def test_a_bad_prefix_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             bad: str) -> None:
    cli = Cli(tmp_path, monkeypatch)
    error = cli("init", "--vm-prefix", bad, code=2).stderr
    assert "--vm-prefix" in error and error.count("\n") == 1
    assert not (tmp_path / "state.db").exists()


def test_default_names_are_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli = Cli(tmp_path, monkeypatch)
    assert cli.json("init")["vm_prefix"] == "cloudctl"
    cli("host", "add", "node-1", "--cpus", 2, "--memory", 2048)
    lease = cli.json("lease", "request", "--type", "im", "--duration", "1h")
    assert cli.json("vm", "list")[0]["name"] == f"cloudctl-{lease['id']}-0"
