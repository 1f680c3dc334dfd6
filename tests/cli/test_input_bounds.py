"""Bad input is refused in one line with exit 2 (3 for an ID no lease can have) before any
work, and never reaches the store: issue 14, findings 10, 11, 12, 13 and 16."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cli_harness import Cli as Harness

from cloudctl.limits import MAX_TIME
from cloudctl.timefmt import iso, parse_duration

CLOUDCTL = Path(sys.executable).with_name("cloudctl")
T0 = "2026-12-01T08:00:00Z"


class Cli(Harness):
    """The shared harness at T0, with the checks these tests make of a refusal."""

    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(tmp, monkeypatch, now=T0)

    def refused(self, *args: object, code: int = 2) -> str:
        """Run a command that must fail with `code` and one error line (no traceback); the
        line."""
        result = self(*args, code=code)
        assert result.stdout == "", result.stdout
        assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, \
            result.stderr
        assert "Traceback" not in result.stderr and "internal" not in result.stderr
        return str(result.stderr)

    def leases_in_store(self) -> int:
        db = sqlite3.connect(self.env["CLOUDCTL_DB"])
        try:
            return int(db.execute("SELECT count(*) FROM leases").fetchone()[0])
        finally:
            db.close()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """One 4-CPU, 8 GiB test host, h1, at T0."""
    c = Cli(tmp_path, monkeypatch)
    c("init")
    c("host", "add", "h1", "--cpus", 4, "--memory", 8192)
    return c


# -- finding 10: a huge duration poisons the store ---------------------------------------


@pytest.mark.parametrize("duration", ["3000000d", "9999999999999", "3651d"])
def test_a_huge_duration_is_refused_and_nothing_is_committed(cli: Cli, duration: str) -> None:
    line = cli.refused("lease", "request", "--type", "be", "--duration", duration,
                       "--cpus", 1, "--memory", 512)
    assert "--duration" in line and "10 years" in line
    assert cli.leases_in_store() == 0
    # Everything that failed for everyone afterwards still works.
    assert cli.json("lease", "list") == []
    cli("lease", "show", 1, code=3)
    cli("schedule", "show", "--width", 20)
    cli("tick")


def test_the_longest_and_the_latest_leases_are_accepted_and_every_view_works(cli: Cli) -> None:
    lease = cli.json("lease", "request", "--type", "be", "--duration", "3650d",
                     "--cpus", 1, "--memory", 1024)
    assert lease["duration_s"] == 3650 * 86400 and lease["end"] == "2036-11-28T08:00:00Z"
    latest = cli.json("lease", "request", "--type", "ar", "--start", "9998-12-31T23:00:00Z",
                      "--duration", "1h", "--cpus", 1, "--memory", 1024)
    assert latest["end"] == "9999-01-01T00:00:00Z"
    assert len(cli.json("lease", "list")) == 2
    cli("lease", "show", latest["id"])
    cli("schedule", "show", "--width", 20)
    cli("tick")


def test_times_past_year_9999_still_print() -> None:
    assert iso(MAX_TIME) == "9999-01-01T00:00:00Z"
    assert iso(253_402_300_800) == "+10000-01-01T00:00:00Z"
    assert iso(10**15) == "+31690708-07-05T01:46:40Z"


# -- finding 12: out-of-range input is exit 2 (or 3 for an ID), never exit 1 --------------


@pytest.mark.parametrize("args, option", [
    (["--duration", "²"], "--duration"),
    (["--duration", "١h"], "--duration"),
    (["--duration", "1h٣٠m"], "--duration"),
    (["--duration", "99999999999999999999999"], "--duration"),
    (["--duration", "9" * 5000], "--duration"),
    (["--type", "ar", "--start", "9999-12-31T23:00Z"], "--start"),
    (["--type", "ar", "--start", "9998-12-31T23:30Z"], "--duration"),
    (["--type", "ar", "--start", "0001-01-01T00:00"], "--start"),
    (["--type", "ar", "--start", "0001-01-01T00:00+05:00"], "--start"),
    (["--type", "ar", "--start", "+999999999999d"], "--start"),
    (["--nodes", 2**63], "--nodes"),
    (["--nodes", 200_001], "--nodes"),
    (["--cpus", 2**63], "--cpus"),
    (["--cpus", 2**64 + 1], "--cpus"),
    (["--memory", 2**63], "--memory"),
])
def test_out_of_range_lease_requests_are_exit_2_naming_the_option(
        cli: Cli, args: list[object], option: str) -> None:
    given = dict(zip(args[::2], args[1::2], strict=True))
    full = [*(f"{k} {v}".split(" ", 1) for k, v in {"--type": "be", "--duration": "1h",
                                                     **given}.items())]
    full = [word for pair in full for word in pair]
    for extra in ([], ["--dry-run"]):
        line = cli.refused("lease", "request", *full, *extra)
        assert option in line, line
    assert cli.leases_in_store() == 0


@pytest.mark.parametrize("lease_id", [2**63, 2**63 - 1, 10**30])
def test_lease_ids_no_store_can_hold_are_not_found(cli: Cli, lease_id: int) -> None:
    for command in (["show"], ["cancel"], ["explain"], ["wait", "--state", "active"]):
        line = cli.refused("lease", *command, lease_id, code=3)
        assert f"no lease {lease_id}" in line
    assert cli.json("vm", "list", "--lease", lease_id) == []


def test_schedule_show_far_times_are_exit_2(cli: Cli) -> None:
    assert "--from" in cli.refused("schedule", "show", "--from", "+999999999999d")
    assert "--to" in cli.refused("schedule", "show", "--to", "9999-12-31T23:59:59Z")
    assert "--width" in cli.refused("schedule", "show", "--width", 10**12)


def test_host_add_with_a_huge_disk_is_refused_before_a_node_file_is_made(cli: Cli) -> None:
    hosts_dir = cli.tmp / "state.d" / "hosts"
    before = sorted(p.name for p in hosts_dir.iterdir())
    for args, option in ((["--disk", 2**63], "--disk"), (["--cpus", 2**63], "--cpus"),
                         (["--memory", 2**63], "--memory")):
        full = ["--cpus", 1, "--memory", 1024, *args]
        line = cli.refused("host", "add", "h2", *full)
        assert option in line
    assert sorted(p.name for p in hosts_dir.iterdir()) == before
    assert [h["name"] for h in cli.json("host", "list", "--no-probe")] == ["h1"]


def test_ascii_durations_read_as_before() -> None:
    assert [parse_duration(t) for t in ("90s", "30m", "1h30m", "2d", "01:02:03", "45",
                                        "3650d")] == [90, 1800, 5400, 172800, 3723, 45,
                                                      315_360_000]


# -- finding 11: bad config values are refused when the config is read -------------------


@pytest.mark.parametrize("text, key", [
    ("[scheduler]\nresume-rate = nan\n", "scheduler.resume-rate"),
    ("[scheduler]\nsuspend-rate = nan\n", "scheduler.suspend-rate"),
    ("[scheduler]\nthreshold-factor = nan\n", "scheduler.threshold-factor"),
    ("[scheduler]\nbandwidth = inf\n", "scheduler.bandwidth"),
    ("[scheduler]\nshutdown-time = -1\n", "scheduler.shutdown-time"),
    ("[scheduler]\noverride-resume-time = 1e300\n", "scheduler.override-resume-time"),
    ("[enactment]\nmax-attempts = inf\n", "enactment.max-attempts"),
    ("[enactment]\nmax-attempts = nan\n", "enactment.max-attempts"),
    ("[enactment]\nretry-backoff = -30\n", "enactment.retry-backoff"),
    ("[enactment]\nshutdown-grace = -5\n", "enactment.shutdown-grace"),
    ('[enactment]\nshutdown-grace = "99999999999999999999d"\n', "enactment.shutdown-grace"),
    ('[store]\nstate-dir = "/tmp/a\\u0000b"\n', "store.state-dir"),
    ('[store]\nstate-dir = "relative/dir"\n', "store.state-dir"),
    ('[store]\ndb = "state.db"\n', "store.db"),
    ('[clouds.ec2]\nprices = { "t3.micro" = nan }\n', "clouds.ec2.prices.t3.micro"),
])
def test_bad_config_values_are_one_line_naming_key_and_file(
        cli: Cli, text: str, key: str) -> None:
    config = cli.tmp / "config.toml"
    config.write_text(text)
    for command in (["lease", "list"], ["config", "show"], ["tick"]):
        line = cli.refused(*command)
        assert key in line and str(config) in line, line


def test_good_config_values_still_load(cli: Cli) -> None:
    (cli.tmp / "config.toml").write_text(
        '[store]\nstate-dir = "~/.cloudctl-test-state"\n'
        "[scheduler]\nsuspend-rate = 64\nresume-rate = 16.5\noverride-resume-time = 10\n"
        "threshold-factor = 0\n"
        '[enactment]\nmax-attempts = 3\nretry-backoff = "1m"\nshutdown-grace = 0\n')
    shown = cli.json("config", "show")
    assert shown["scheduler"]["resume-rate"] == 16.5
    assert shown["enactment"] == {"max-attempts": 3, "retry-backoff": 60, "shutdown-grace": 0}
    assert shown["store"]["state-dir"] == str(Path("~/.cloudctl-test-state").expanduser())


@pytest.mark.parametrize("mask", [0o000, 0o022])
def test_init_writes_the_config_0600_whatever_the_umask(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mask: int) -> None:
    c = Cli(tmp_path, monkeypatch)
    old = os.umask(mask)
    try:
        c("init")
    finally:
        os.umask(old)
    config = tmp_path / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert "[scheduler]" in config.read_text()


# -- finding 13: simulate trusts its input less ------------------------------------------

SWF_JOB = "1 0 -1 100 1 -1 -1 1 100 -1 1 1 1 1 1 -1 -1 -1\n"


def _simulate(path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`cloudctl simulate` as a process: a hang or a runaway allocation must not take the
    test run with it."""
    return subprocess.run([str(CLOUDCTL), "simulate", str(path), "--json", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("name, text, where", [
    ("maxprocs.swf", "; MaxProcs: 1e30\n" + SWF_JOB, "maxprocs.swf:1: MaxProcs"),
    ("maxnodes.swf", "; MaxNodes: 1000000\n" + SWF_JOB, "maxnodes.swf:1: MaxNodes"),
    ("job.swf", "; MaxNodes: 10\n1 0 -1 100 1e30 -1 -1 1e30 100 -1 1 1 1 1 1 -1 -1 -1\n",
     "job.swf:2: processors"),
    ("numnodes.lwf",
     '<lease-workload><site><nodes><node-set numnodes="9223372036854775808">'
     '<res type="CPU" amount="100"/><res type="Memory" amount="1024"/></node-set></nodes>'
     "</site></lease-workload>\n", "numnodes.lwf:1: numnodes"),
    ("memory.lwf", "# a comment\n0 -1 100 100 1 1 1024 0 x 0\n0 -1 100 100 1 1 -1024 0 x 0\n",
     "memory.lwf:3: memory must not be negative"),
    ("cpu.lwf", "0 -1 100 100 1 -2 1024 0 x 0\n", "cpu.lwf:1: cpu must not be negative"),
    ("word.lwf", "0 -1 100 100 1 1 lots 0 x 0\n", "word.lwf:1: field 7 is not a number"),
    ("duration.lwf", "0 -1 99999999999 100 1 1 1024 0 x 0\n", "duration.lwf:1: duration"),
    ("xmlmem.lwf",
     '<lease-workload>\n<lease-requests>\n<lease-request arrival="00:00:00">\n'
     '<lease preemptible="true">\n<nodes><node-set numnodes="1"><res type="CPU" amount="100"/>'
     '<res type="Memory" amount="-5"/></node-set></nodes>\n'
     '<start/><duration time="01:00:00"/></lease></lease-request></lease-requests>'
     "</lease-workload>\n", "xmlmem.lwf:5: Memory amount must not be negative"),
])
def test_simulate_refuses_values_beyond_limits_with_file_and_line(
        tmp_path: Path, name: str, text: str, where: str) -> None:
    trace = tmp_path / name
    trace.write_text(text)
    result = _simulate(trace, "--nodes", "2") if "Max" not in where else _simulate(trace)
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and result.stderr.count("\n") == 1
    error = json.loads(result.stderr)
    assert error["error"] == "invalid-input" and where in error["message"], error


def test_simulate_refuses_a_fifo_and_a_directory_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "trace.swf"
    os.mkfifo(fifo)
    for path, message in ((fifo, "not a regular file"), (tmp_path, "is a directory")):
        result = _simulate(path, "--nodes", "2", timeout=30)
        assert result.returncode == 2 and message in json.loads(result.stderr)["message"]


def test_simulate_ignores_an_unused_huge_header_and_refuses_huge_flags(
        tmp_path: Path) -> None:
    trace = tmp_path / "trace.swf"
    trace.write_text("; MaxNodes: 4\n; MaxProcs: 1e30\n" + SWF_JOB)
    result = _simulate(trace)
    assert result.returncode == 0 and json.loads(result.stdout)["completed"] == 1
    for args in (["--nodes", str(2**63)], ["--node-memory", str(2**40)],
                 ["--suspend-rate", "nan"], ["--threshold-factor", "inf"],
                 ["--start", "0001-01-01T00:00Z"]):
        result = _simulate(trace, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert args[0] in json.loads(result.stderr)["message"]


# -- finding 16: credentials in an endpoint URL ------------------------------------------


def test_credentials_in_an_endpoint_url_are_refused_never_stored_or_printed(cli: Cli) -> None:
    for endpoint in ("http://AKIAEXAMPLEKEY:s3cr3tv4lue@127.0.0.1:1",
                     "https://s3cr3tv4lue@ec2.example.test/path"):
        line = cli.refused("cloud", "add", "c1", "--region", "us-east-1",
                           "--endpoint", endpoint)
        assert "AWS chain" in line and "s3cr3tv4lue" not in line
        error = cli("cloud", "add", "c1", "--region", "us-east-1", "--endpoint", endpoint,
                    "--json", code=2).stderr
        assert json.loads(error)["exit_code"] == 2 and "s3cr3tv4lue" not in error
    assert cli.json("cloud", "list") == []
    assert b"s3cr3tv4lue" not in Path(cli.env["CLOUDCTL_DB"]).read_bytes()
