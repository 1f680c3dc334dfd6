"""Operating the cloud from the CLI: every command and every exit code, through typer's runner
and as real processes, against a private store and libvirt test-driver hosts."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cli_harness import T0, Cli, invoke, run
from cloud_helpers import vanished_image
from paths import REPO as ROOT
from typer.main import get_command

from cloudctl.cli.app import app


def test_init_is_idempotent_and_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = Cli(tmp_path, monkeypatch)
    first = c.json("init")
    assert first["created"]
    assert first["migrations_applied"] == ["0001-initial", "0002-vm-old-host", "0003-storage",
                                           "0004-clouds", "0005-lease-list-json"]
    assert first["config_created"]
    again = c.json("init")
    assert not again["created"] and again["migrations_applied"] == []
    assert stat.S_IMODE((tmp_path / "state.db").stat().st_mode) == 0o600
    assert "[scheduler]" in (tmp_path / "config.toml").read_text()
    db = sqlite3.connect(tmp_path / "state.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_commands_before_init_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = Cli(tmp_path, monkeypatch)
    result = c("lease", "list", code=3)
    assert "cloudctl init" in result.stderr
    assert c("db", "status", code=3).stderr.startswith("Error: no state store")


def test_db_status_and_migrate(cli: Cli) -> None:
    status = cli.json("db", "status")
    assert [m["name"] for m in status["applied"]] == ["0001-initial", "0002-vm-old-host",
                                                      "0003-storage", "0004-clouds",
                                                      "0005-lease-list-json"]
    assert status["pending"] == [] and status["counts"]["hosts"] == 2
    assert cli.json("db", "migrate") == {"applied": []}
    assert "applied: 0001-initial" in cli("db", "status").stdout


def test_events_are_append_only(cli: Cli) -> None:
    db = sqlite3.connect(cli.env["CLOUDCTL_DB"])
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM events")


def test_config_show_merges_file_and_defaults(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[scheduler]\nbackfilling = "conservative"\n'
                                          'suspend-rate = 64.0\n[policies]\n'
                                          'preemption = "oldest-first"\n')
    shown = cli.json("config", "show")
    assert shown["scheduler"]["backfilling"] == "conservative"
    assert shown["scheduler"]["suspend-rate"] == 64.0
    assert shown["policies"]["preemption"] == "oldest-first"
    assert shown["store"]["db"] == cli.env["CLOUDCTL_DB"]
    assert 'backfilling = "conservative"' in cli("config", "show").stdout


@pytest.mark.parametrize("text, message", [
    ("[scheduler]\nbackfiling = 1\n", "unknown scheduler option 'backfiling'"),
    ("[policies]\npreemption = 'nope'\n", "unknown preemption policy 'nope'"),
    ("[scheduler\n", "config.toml"),
    ("[enactment]\nmax-attempts = 0\n", "max-attempts must be at least 1"),
])
def test_bad_config_is_one_line_exit_2(cli: Cli, tmp_path: Path, text: str,
                                       message: str) -> None:
    (tmp_path / "config.toml").write_text(text)
    result = cli("lease", "list", code=2)
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_host_inventory(cli: Cli) -> None:
    hosts = cli.json("host", "list")
    assert [h["name"] for h in hosts] == ["node-1", "node-2"]
    assert hosts[0]["uri"].startswith("test:///") and hosts[0]["driver"] == "test"
    assert cli("host", "list", "-q").stdout == "node-1\nnode-2\n"
    csv_out = cli("host", "list", "-o", "csv").stdout.splitlines()
    assert csv_out[0].startswith("name,cpus,memory_mib")
    shown = cli.json("host", "show", "node-1")
    assert shown["hypervisor"]["cpus"] == 4 and shown["hypervisor"]["memory_mib"] == 8192
    assert cli("host", "add", "node-1", "--cpus", 1, "--memory", 1, code=4).stderr.count(
        "already exists") == 1
    cli("host", "add", "bad/name", "--cpus", 1, "--memory", 1, code=2)
    cli("host", "add", "n3", "--cpus", 1, "--memory", 1, "--driver", "nope", code=2)
    cli("host", "add", "n3", "--cpus", 1, "--memory", 1, "--uri", "test:///nonexistent.xml",
        code=5)
    cli("host", "show", "nope", code=3)
    assert [h["name"] for h in cli.json("host", "list")] == ["node-1", "node-2"]


def test_disabled_host_gets_nothing_new(cli: Cli) -> None:
    cli("host", "disable", "node-1")
    assert cli.json("host", "show", "node-1")["enabled"] is False
    lease = cli.json("lease", "request", "--type", "be", "--duration", "1h", "--nodes", 2,
                     "--cpus", 4, "--memory", 1024)
    assert lease["state"] == "queued"
    explained = cli.json("lease", "explain", lease["id"])
    verdicts = {h["host"]: h["verdict"] for h in explained["hosts"]}
    assert "disabled" in verdicts["node-1"]
    cli("host", "enable", "node-1")
    assert cli.json("lease", "show", lease["id"])["state"] == "active"


def test_remove_host_refused_then_drained(cli: Cli) -> None:
    be = cli.json("lease", "request", "--type", "be", "--duration", "2h", "--cpus", 4,
                  "--memory", 1024)
    cli("tick")
    host = cli.json("lease", "show", be["id"])["hosts"][0]
    result = cli("host", "remove", host, code=4)
    assert f"live lease(s) {be['id']}" in result.stderr
    cli.at("2026-11-23T13:10:00Z")
    drained = cli.json("host", "remove", host, "--force")
    assert drained["drained"][0]["id"] == be["id"]
    assert host not in [h["name"] for h in cli.json("host", "list")]
    moved = cli.json("lease", "show", be["id"])
    other = ({"node-1", "node-2"} - {host}).pop()
    assert moved["state"] == "active" and moved["hosts"] == [other]
    assert "removed" in " ".join(e["reason"] for e in moved["events"])
    cli("tick")
    vms = cli.json("vm", "list")
    assert [(v["host"], v["state"]) for v in vms] == [(other, "running")]
    cli("host", "remove", "nope", code=3)


def test_images(cli: Cli, tmp_path: Path) -> None:
    raw = tmp_path / "disk.img"
    raw.write_bytes(b"\0" * 3 * 1024 * 1024 + b"x")
    image = cli.json("image", "add", "base", "--path", raw)
    assert image["format"] == "raw" and image["size_bytes"] == 3 * 1024 * 1024 + 1
    assert image["size_mib"] == 4 and len(image["sha256"]) == 64
    cli("image", "add", "base", "--path", raw, code=4)
    cli("image", "add", "q", "--path", raw, "--format", "qcow2", code=2)
    cli("image", "add", "missing", "--path", tmp_path / "nope", code=2)
    assert cli("image", "list", "-q").stdout == "base\n"
    lease = cli.json("lease", "request", "--type", "be", "--duration", "1h", "--image", "base")
    assert lease["image"] == "base"
    cli("lease", "request", "--type", "be", "--duration", "1h", "--image", "nope", code=3)
    assert "used by live lease" in cli("image", "remove", "base", code=4).stderr
    cli("lease", "cancel", lease["id"])
    cli("image", "remove", "base")
    cli("image", "show", "base", code=3)


def test_lease_request_validation(cli: Cli) -> None:
    cases = [
        (["--type", "xx", "--duration", "1h"], 2, "--type"),
        (["--type", "be", "--duration", "soon"], 2, "cannot read 'soon' as a duration"),
        (["--type", "be", "--duration", "0s"], 2, "longer than zero"),
        (["--type", "ar", "--duration", "1h"], 2, "needs --start"),
        (["--type", "be", "--duration", "1h", "--start", "+1h"], 2, "advance reservations"),
        (["--type", "ar", "--duration", "1h", "--start", "tomorrow"], 2, "as a time"),
        (["--type", "ar", "--duration", "1h", "--start", "2020-01-01T00:00"], 6, "in the past"),
        (["--type", "im", "--duration", "1h", "--cpus", 64], 6, "rejected"),
        (["--type", "be", "--duration", "1h", "--nodes", 0], 2, "positive"),
    ]
    for args, code, message in cases:
        result = cli("lease", "request", *args, code=code)
        assert message in result.stderr, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    error = json.loads(cli("lease", "request", "--type", "im", "--duration", "1h",
                           "--cpus", 64, "--json", code=6).stderr)
    assert error["exit_code"] == 6 and error["error"] == "unsatisfiable"
    assert "cpus: need 64" in error["message"] or "CPU" in error["message"]


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("1h30m", 5400),
                                           ("2d", 172800), ("01:02:03", 3723), ("45", 45)])
def test_durations(cli: Cli, text: str, seconds: int) -> None:
    lease = cli.json("lease", "request", "--type", "be", "--duration", text)
    assert lease["duration_s"] == seconds


def test_times_local_offset_and_relative(cli: Cli) -> None:
    rel = cli.json("lease", "request", "--type", "ar", "--start", "+2h", "--duration", "1h")
    assert rel["start"] == "2026-11-23T15:00:00Z" and rel["end"] == "2026-11-23T16:00:00Z"
    off = cli.json("lease", "request", "--type", "ar", "--start", "2026-11-23T18:00:00+02:00",
                   "--duration", "1h")
    assert off["start"] == "2026-11-23T16:00:00Z"


def test_lease_json_keys_are_stable(cli: Cli) -> None:
    lease = cli.json("lease", "request", "--type", "be", "--duration", "1h", "--name", "job")
    for key in ("id", "name", "type", "state", "start", "end", "duration_s", "nodes", "cpus",
                "memory_mib", "image", "preemptible", "hosts", "submitted"):
        assert key in lease
    assert lease["submitted"] == T0 and lease["preemptible"] is True
    listed = cli.json("lease", "list")
    assert listed == [{k: v for k, v in lease.items()}]
    assert cli("lease", "list", "-q").stdout == f"{lease['id']}\n"
    assert cli("lease", "list", "-o", "csv").stdout.splitlines()[0].startswith("id,name,type")
    assert cli.json("lease", "list", "--state", "done") == []
    assert cli.json("lease", "list", "--type", "be")[0]["id"] == lease["id"]
    cli("lease", "list", "--state", "bogus", code=2)
    cli("lease", "list", "-o", "yaml", code=2)
    cli("lease", "show", 999, code=3)


def test_preemption_story_end_to_end(cli: Cli) -> None:
    be = cli.json("lease", "request", "--type", "be", "--name", "batch", "--duration", "3h",
                  "--nodes", 2, "--cpus", 4, "--memory", 4096)
    assert be["state"] == "active" and be["hosts"] == ["node-1", "node-2"]
    cli("tick")
    cli.at("2026-11-23T13:30:00Z")
    before = sqlite3.connect(cli.env["CLOUDCTL_DB"]).execute(
        "SELECT count(*) FROM events").fetchone()[0]
    dry = cli.json("lease", "request", "--type", "ar", "--start", "2026-11-23T14:00:00Z",
                   "--duration", "1h", "--cpus", 4, "--memory", 4096, "--dry-run")
    assert dry["accepted"] and dry["lease"]["start"] == "2026-11-23T14:00:00Z"
    assert dry["preempted"] == [{"id": be["id"], "how": "suspend", "at": dry["preempted"][0]["at"],
                                 "state": "active",
                                 "reason": "preempted: suspends at 2026-11-23T13:57:52Z for an "
                                           "AR at 2026-11-23T14:00:00Z"}]
    after = sqlite3.connect(cli.env["CLOUDCTL_DB"]).execute(
        "SELECT count(*) FROM events").fetchone()[0]
    assert before == after and len(cli.json("lease", "list")) == 1  # nothing changed
    ar = cli.json("lease", "request", "--type", "ar", "--start", "2026-11-23T14:00:00Z",
                  "--duration", "1h", "--cpus", 4, "--memory", 4096)
    assert ar["state"] == "scheduled" and ar["preemptible"] is False
    states = {}
    for t in ("13:58", "14:00", "15:00", "17:30"):
        cli.at(f"2026-11-23T{t}:00Z")
        cli("tick")
        states[t] = (cli.json("lease", "show", be["id"])["state"],
                     cli.json("lease", "show", ar["id"])["state"],
                     sorted((v["name"], v["state"]) for v in cli.json("vm", "list", "--all")))
    assert states["13:58"][:2] == ("suspending", "scheduled")
    assert ("cloudctl-1-0", "suspended") in states["13:58"][2]
    assert states["14:00"][:2] == ("suspended-scheduled", "active")
    assert ("cloudctl-2-0", "running") in states["14:00"][2]
    assert states["15:00"][:2] == ("resuming", "done")
    assert ("cloudctl-1-0", "running") in states["15:00"][2]
    assert states["17:30"][0] == "done"
    assert all(state == "gone" for _, state in states["17:30"][2])
    story = cli.json("lease", "show", be["id"])
    moves = [(e["from"], e["to"]) for e in story["events"] if e["entity"] == "lease 1"]
    assert moves == [("new", "pending"), ("pending", "queued"), ("queued", "scheduled"),
                     ("scheduled", "active"), ("active", "suspending"),
                     ("suspending", "suspended-pending"),
                     ("suspended-pending", "suspended-queued"),
                     ("suspended-queued", "suspended-scheduled"),
                     ("suspended-scheduled", "resuming"), ("resuming", "active"),
                     ("active", "done")]
    # 3 h of work: 57m52s before, 128 s to resume 4096 MiB at 32 MiB/s, 2h2m8s after.
    assert story["end"] == "2026-11-23T17:04:16Z"
    gantt = cli("schedule", "show", "--from", "2026-11-23T13:00:00Z", "--to",
                "2026-11-23T17:30:00Z", "--width", 54).stdout.splitlines()
    node1 = next(line for line in gantt if line.startswith("node-1"))
    assert node1.split()[1] == "0" * 12 + "1" * 12 + "0" * 25 + "." * 5
    assert "legend: 0=lease 1 (be)  1=lease 2 (ar)" in gantt
    bars = cli.json("schedule", "show", "--from", "2026-11-23T13:00:00Z")
    assert {(b["lease"], b["host"], b["start"], b["end"]) for b in bars} >= {
        (2, "node-1", "2026-11-23T14:00:00Z", "2026-11-23T15:00:00Z")}


def test_schedule_svg(cli: Cli, tmp_path: Path) -> None:
    cli("lease", "request", "--type", "be", "--duration", "1h")
    cli("schedule", "show", "--svg", tmp_path / "s.svg")
    assert (tmp_path / "s.svg").read_text().startswith("<?xml")
    cli("schedule", "show", "--from", "+2h", "--to", "+1h", code=2)


def test_dry_run_reports_delayed_best_effort(cli: Cli) -> None:
    first = cli.json("lease", "request", "--type", "be", "--duration", "2h", "--nodes", 2,
                     "--cpus", 4)
    waiting = cli.json("lease", "request", "--type", "be", "--duration", "1h", "--nodes", 2,
                       "--cpus", 4)
    # EASY: the first waiting lease holds a reservation for when the first one ends.
    assert (first["state"], waiting["state"]) == ("active", "scheduled")
    dry = cli.json("lease", "request", "--type", "ar", "--start", "2026-11-23T15:00:00Z",
                   "--duration", "1h", "--nodes", 2, "--cpus", 4, "--dry-run")
    assert dry["accepted"]
    assert [(p["id"], p["how"]) for p in dry["preempted"]] == [(waiting["id"], "requeue")]
    assert dry["delayed"] == [{"id": waiting["id"], "expected_start": "2026-11-23T15:00:00Z",
                               "new_expected_start": "2026-11-23T16:00:00Z", "delay_s": 3600}]
    text = cli("lease", "request", "--type", "ar", "--start", "2026-11-23T15:00:00Z",
               "--duration", "1h", "--nodes", 2, "--cpus", 4, "--dry-run").stdout
    assert "delays lease 2" in text
    assert len(cli.json("lease", "list")) == 2


def test_cancel_is_idempotent(cli: Cli) -> None:
    lease = cli.json("lease", "request", "--type", "be", "--duration", "1h")
    cli("tick")
    cancelled = cli.json("lease", "cancel", lease["id"])
    assert cancelled["cancelled"] and cancelled["state"] == "cancelled"
    assert cli.json("vm", "list", "--all")[0]["state"] == "gone"  # stopped at once
    again = cli.json("lease", "cancel", lease["id"])
    assert again["cancelled"] is False and again["state"] == "cancelled"
    assert "already cancelled" in cli("lease", "cancel", lease["id"]).stderr
    cli("lease", "cancel", 42, code=3)


def test_explain_rejected_and_queued(cli: Cli) -> None:
    cli("lease", "request", "--type", "im", "--duration", "1h", "--nodes", 2, "--cpus", 4,
        "--no-preemptible")
    rejected = cli("lease", "request", "--type", "im", "--duration", "1h", "--cpus", 2,
                   code=6)
    lease_id = int(re.search(r"lease (\d+) rejected", rejected.stderr).group(1))
    explained = cli.json("lease", "explain", lease_id)
    assert explained["state"] == "rejected"
    assert {h["host"]: h["verdict"] for h in explained["hosts"]} == {
        "node-1": "cpu: need 2, free 0", "node-2": "cpu: need 2, free 0"}
    text = cli("lease", "explain", lease_id).stdout
    assert "node-1  cpu: need 2, free 0" in text
    queued = cli.json("lease", "request", "--type", "be", "--duration", "1h", "--cpus", 2)
    explained = cli.json("lease", "explain", queued["id"])
    assert explained["state"] == "scheduled" and explained["window"]["start"] == \
        "2026-11-23T14:00:00Z"


def test_wait(cli: Cli) -> None:
    lease = cli.json("lease", "request", "--type", "be", "--duration", "1h")
    assert cli.json("lease", "wait", lease["id"], "--state", "active")["state"] == "active"
    assert "timed out" in cli("lease", "wait", lease["id"], "--state", "done", "--timeout",
                              "1s", code=4).stderr
    cli("lease", "wait", lease["id"], "--state", "nope", code=2)
    done = cli.json("lease", "request", "--type", "be", "--duration", "1h", "--wait")
    assert done["state"] == "active"
    cli.at("2026-11-23T14:00:01Z")
    assert cli.json("lease", "wait", lease["id"], "--state", "done")["state"] == "done"


def test_vm_list_and_show(cli: Cli) -> None:
    cli("lease", "request", "--type", "be", "--duration", "1h", "--nodes", 2)
    cli("tick")
    vms = cli.json("vm", "list")
    assert [v["name"] for v in vms] == ["cloudctl-1-0", "cloudctl-1-1"]
    assert cli("vm", "list", "-q").stdout == "cloudctl-1-0\ncloudctl-1-1\n"
    shown = cli.json("vm", "show", "cloudctl-1-0")
    assert shown["state"] == "running" and shown["events"][-1]["to"] == "running"
    assert cli.json("vm", "show", str(vms[1]["id"]))["name"] == "cloudctl-1-1"
    cli("vm", "show", "nope", code=3)


def test_tick_is_exclusive(cli: Cli) -> None:
    import fcntl

    lock = Path(cli.env["CLOUDCTL_DB"]).with_suffix(".d") / "tick.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        result = cli.process("tick")
        assert result.exit_code == 0 and "another tick is running" in result.stderr
        assert json.loads(cli.process("tick", "--json").stdout)["ran"] is False
    finally:
        os.close(fd)
    assert cli.json("tick")["ran"] is True


def test_real_processes_and_exit_codes(cli: Cli) -> None:
    ok = cli.process("lease", "request", "--type", "be", "--duration", "1h", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["state"] == "active"
    assert cli.process("lease", "show", "99").exit_code == 3
    bad = cli.process("lease", "request", "--type", "be", "--duration", "x", "--json")
    assert bad.exit_code == 2 and json.loads(bad.stderr)["exit_code"] == 2
    assert cli.process("host", "add", "node-1", "--cpus", "1", "--memory", "1").exit_code == 4
    assert cli.process("host", "add", "x", "--cpus", "1", "--memory", "1", "--uri",
                       "test:///missing.xml").exit_code == 5
    big = cli.process("lease", "request", "--type", "im", "--duration", "1h", "--cpus", "99")
    assert big.exit_code == 6 and big.stderr.startswith("Error: lease")
    broken = cli.process("lease", "list", "--db", "/nonexistent/dir/x.db")
    assert broken.exit_code == 2  # --db is a root option: usage error here
    missing = cli.process("--db", str(cli.tmp / "nope.db"), "lease", "list")
    assert missing.exit_code == 3


def test_driver_failure_is_recorded_and_retried(cli: Cli, tmp_path: Path) -> None:
    copy, data = vanished_image(cli)
    lease = cli.json("lease", "request", "--type", "be", "--duration", "1h", "--cpus", 4,
                     "--image", "base")
    assert lease["hosts"] == ["node-1"]
    tick = cli.json("tick")
    assert tick["failed"] and "cloudctl-1-0" in tick["failed"][0]
    vm = cli.json("vm", "show", "cloudctl-1-0")
    assert vm["state"] == "error" and vm["attempts"] == 1 and vm["retry_at"] is not None
    assert "cannot create disk" in vm["error"]
    copy.write_bytes(data)
    assert cli.json("tick")["done"] == []  # waits for its retry time
    cli.at("2026-11-23T13:01:00Z")
    assert cli.json("tick")["done"] == ["cloudctl-1-0: running on node-1"]
    assert cli.json("vm", "show", "cloudctl-1-0")["error"] is None


def test_driver_failures_exhausted_fail_the_lease(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[enactment]\nmax-attempts = 2\n"
                                          "retry-backoff = '10s'\n")
    vanished_image(cli)
    lease = cli.json("lease", "request", "--type", "be", "--duration", "1h", "--cpus", 4,
                     "--image", "base")
    cli("tick")
    cli.at("2026-11-23T13:00:10Z")
    tick = cli.json("tick")
    assert tick["failed_leases"] == [lease["id"]]
    failed = cli.json("lease", "show", lease["id"])
    assert failed["state"] == "fail" and "gave up after 2 attempts" in failed["reason"]
    assert "cannot create disk" in failed["reason"]


def test_reconcile_reports_unowned_and_recreates_missing(cli: Cli) -> None:
    from cloudctl.drivers.base import VMSpec
    from cloudctl.drivers.registry import open_driver

    cli("lease", "request", "--type", "be", "--duration", "1h", "--cpus", 4)
    cli("tick")
    host = cli.json("host", "show", "node-1")
    driver = open_driver("test", host["uri"])
    driver.destroy("cloudctl-1-0")
    driver.create(VMSpec(name="cloudctl-99-0", cpus=1, memory_mib=64, lease_id=99, node=0))
    driver.close()
    tick = cli.json("tick")
    assert tick["missing"] == ["cloudctl-1-0 on node-1"]
    assert tick["unowned"] == ["node-1: cloudctl-99-0 (running)"]
    assert "cloudctl-1-0: running on node-1" in tick["done"]
    assert "not owned" in cli.json("host", "show", "node-1")["events"][-1]["reason"]


def test_every_command_has_help_and_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    root = get_command(app)
    missing, no_help = [], []

    def walk(group: object, path: list[str]) -> None:
        for name, command in getattr(group, "commands", {}).items():
            full = path + [name]
            if not (command.help or command.short_help):
                no_help.append(" ".join(full))
            if hasattr(command, "commands"):
                walk(command, full)
            elif f"cloudctl {' '.join(full)}" not in readme:
                missing.append(" ".join(full))
            result = invoke(*full, "--help")
            assert result.exit_code == 0 and "Usage" in result.stdout

    walk(root, [])
    assert not no_help, no_help
    assert not missing, f"not in README: {missing}"
    for code in range(7):
        assert re.search(rf"\|\s*`?{code}`?\s*\|", readme), code


def test_help_and_version_do_not_import_heavy_libraries() -> None:
    code = ("import sys; from cloudctl.cli.app import main; main(['lease', 'list', '--help']); "
            "print(sorted(m for m in ('libvirt', 'boto3', 'paramiko', 'sqlite3') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().endswith("[]"), out.stdout[-200:]


def test_lease_list_request_and_simulate_do_not_import_pydantic(cli: Cli,
                                                                 tmp_path: Path) -> None:
    # typer coerces option values through pydantic; the plain values of these commands
    # (text, numbers in bounds, flags, paths, choices, defaults) are converted without it
    # (see cloudctl.cli.coercion), and start-up stays short.
    code = ("import sys; from cloudctl.cli.entry import main; sys.stdout = open('/dev/null', "
            "'w'); main(sys.argv[1:]); sys.stdout = sys.__stdout__; "
            "print('pydantic' in sys.modules)")
    trace = tmp_path / "one.swf"
    trace.write_text("1 0 0 10 1 -1 -1 1 10 -1 1 1 1 1 1 1 -1 -1\n")
    for args in (["lease", "list", "--json"],
                 ["lease", "request", "--type", "ar", "--start", "2026-11-24T10:00:00Z",
                  "--duration", "1h", "--nodes", "2", "--json"],
                 ["simulate", str(trace), "--nodes", "1", "--suspension", "none",
                  "--bandwidth", "50", "--json"]):
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                             text=True, env={**os.environ, **cli.env})
        assert out.stdout.strip() == "False", (args, out.stderr)
    assert cli.json("lease", "list")[0]["nodes"] == 2


def test_commands_built_when_named_are_those_typer_builds() -> None:
    import typer

    from cloudctl.cli.app import NOUNS, TOP_LEVEL, root_command

    def described(group: object) -> list[object]:
        out = []
        for command in [group, *getattr(group, "commands", {}).values()]:
            fields = {k: v for k, v in vars(command).items()
                      if k not in ("commands", "callback", "params", "get_help_option")}
            params = [(p.name, p.opts, p.secondary_opts, p.default, p.required, p.help)
                      for p in command.params]
            out.append((re.sub(r" at 0x[0-9a-f]+", "", repr(fields)), params))
        return out

    def load(module: str, attribute: str) -> object:
        return getattr(__import__(f"cloudctl.cli.{module}", fromlist=["x"]), attribute)

    eager = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    for name, where in TOP_LEVEL.items():
        eager.command(name)(load(*where))  # type: ignore[arg-type]
    for name, where in NOUNS.items():
        eager.add_typer(load(*where), name=name)  # type: ignore[arg-type]
    built = get_command(eager).commands  # type: ignore[attr-defined]
    assert list(built) == list(get_command(app).commands)  # type: ignore[attr-defined]
    for name, command in built.items():
        assert described(root_command(name)) == described(command), name


def test_version_fast_path_skips_typer() -> None:
    code = ("import sys; from cloudctl.cli.entry import main; main(['--version']); "
            "print('typer' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.splitlines() == ["cloudctl 0.1.0", "False"]
    assert run("--version").stdout.startswith("cloudctl ")


def test_vm_moved_before_its_kill_was_enacted_leaves_nothing_behind(cli: Cli,
                                                                     tmp_path: Path) -> None:
    from cloudctl.drivers.registry import open_driver

    (tmp_path / "config.toml").write_text('[scheduler]\nsuspension = "none"\n')
    im = cli.json("lease", "request", "--type", "im", "--duration", "1h", "--cpus", 4)
    be = cli.json("lease", "request", "--type", "be", "--duration", "3h", "--cpus", 4)
    assert (im["hosts"], be["hosts"]) == (["node-1"], ["node-2"])
    cli("tick")
    cli.at("2026-11-23T13:10:00Z")
    ar = cli.json("lease", "request", "--type", "ar", "--start", "2026-11-23T13:30:00Z",
                  "--duration", "2h", "--cpus", 4)
    assert ar["hosts"] == ["node-2"]  # the BE lease is killed there at 13:30 and requeued
    cli.at("2026-11-23T14:00:00Z")  # no tick in between: kill and restart in one pass
    cli("tick")
    moved = cli.json("lease", "show", be["id"])
    assert moved["state"] == "active" and moved["hosts"] == ["node-1"]
    domains = {}
    for host in ("node-1", "node-2"):
        driver = open_driver("test", cli.json("host", "show", host)["uri"])
        domains[host] = {name: state.value for name, state in driver.list_vms().items()}
        driver.close()
    assert domains == {"node-1": {"cloudctl-2-0": "running"},
                       "node-2": {"cloudctl-3-0": "running"}}
