"""`cloudctl simulate` and the root app, driven through typer's runner and as real processes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cli_harness import PYTHON_M_CLOUDCTL, Result, invoke, run
from paths import REPO, SCENARIOS
from typer.main import get_command

from cloudctl import __version__
from cloudctl.cli.app import app
from cloudctl.cli.simulate import LazyProgress
from cloudctl.errors import EXIT_CODES
from cloudctl.scheduler.config import SchedulerConfig

PREEMPTION = SCENARIOS / "preemption.lwf"
RESERVATION = SCENARIOS / "reservation.lwf"
# REFERENCE.md's setup for the two scenarios.
HAIZEA_FLAGS = ["--enactment-overhead", "2", "--override-suspend-time", "0",
                "--resume-rate", "32"]
SUMMARY_KEYS = {"leases", "completed", "rejected", "ar_accepted", "ar_rejected", "preemptions",
                "mean_wait_s", "mean_bounded_slowdown", "utilization", "makespan_s",
                "all_best_effort_s", "sim_wall_s"}

needs_traces = pytest.mark.skipif(not SCENARIOS.is_dir(), reason="shared traces not present")


def read_records(path: Path) -> dict[int, dict]:
    lines = path.read_text().splitlines()
    return {record["id"]: record for record in map(json.loads, lines)}


def spans(items: list[dict]) -> list[list[int]]:
    return [[item["start_s"], item["end_s"]] for item in items]


def assert_one_line_error(result, *needles: str, code: int = 2) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def swf_job(job: int, submit: int, run: int, procs: int) -> str:
    fields = [job, submit, 0, run, procs, -1, -1, procs, run, -1, 1, -1, -1, -1, -1, -1, -1, -1]
    return " ".join(map(str, fields))


# -- the scenarios of REFERENCE.md, to the second ----------------------------------------------


@needs_traces
def test_preemption_scenario_to_the_second(tmp_path: Path) -> None:
    out = tmp_path / "leases.jsonl"
    result = invoke("simulate", PREEMPTION, *HAIZEA_FLAGS, "--json", "--per-lease", out)
    assert result.exit_code == 0, result.stderr
    leases = read_records(out)
    first, second = leases[1], leases[2]
    assert spans(first["runs"]) == [[0, 1798], [3634, 5436]]
    assert spans(first["suspensions"]) == [[1798, 1800]]
    assert spans(first["resumptions"]) == [[3600, 3634]]
    assert first["end_s"] == 5438
    assert first["state"] == "done"
    assert spans(second["runs"]) == [[1800, 3592]]
    assert second["end_s"] == 3600
    assert second["type"] == "ar"
    summary = json.loads(result.stdout)
    assert summary["preemptions"] == 1
    assert summary["ar_accepted"] == 1


@needs_traces
def test_reservation_scenario_to_the_second(tmp_path: Path) -> None:
    out = tmp_path / "leases.jsonl"
    result = invoke("simulate", RESERVATION, *HAIZEA_FLAGS, "--json", "--per-lease", out)
    assert result.exit_code == 0, result.stderr
    second = read_records(out)[2]
    assert second["start_s"] == 3602
    assert second["end_s"] == 4510
    assert second["hosts"] == ["node-1", "node-2", "node-3", "node-4"]


# -- output ---------------------------------------------------------------------------------


@needs_traces
def test_json_prints_one_object_with_every_summary_key() -> None:
    result = invoke("simulate", PREEMPTION, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert len(result.stdout.splitlines()) == 1
    summary = json.loads(result.stdout)
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["leases"] == 2 and summary["completed"] == 2


@needs_traces
def test_summary_without_json_is_plain_key_value_lines_off_a_terminal() -> None:
    result = invoke("simulate", PREEMPTION, *HAIZEA_FLAGS)
    assert result.exit_code == 0, result.stderr
    rows = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert SUMMARY_KEYS <= rows.keys()
    assert rows["makespan_s"] == "5438"
    assert "\x1b[" not in result.stdout  # no colour codes when not a TTY


@needs_traces
def test_start_adds_iso_utc_times(tmp_path: Path) -> None:
    out = tmp_path / "leases.jsonl"
    result = invoke("simulate", PREEMPTION, *HAIZEA_FLAGS, "--json", "--per-lease", out,
                    "--start", "2024-05-01T13:00:00Z")
    assert result.exit_code == 0, result.stderr
    leases = read_records(out)
    assert (leases[1]["submit"], leases[1]["start"], leases[1]["end"]) == (
        "2024-05-01T13:00:00Z", "2024-05-01T13:00:00Z", "2024-05-01T14:30:38Z")
    assert (leases[2]["submit"], leases[2]["start"], leases[2]["end"]) == (
        "2024-05-01T13:15:00Z", "2024-05-01T13:30:00Z", "2024-05-01T14:00:00Z")
    assert leases[1]["end_s"] == 5438  # the second offsets stay


@needs_traces
def test_start_with_an_offset_is_converted_to_utc(tmp_path: Path) -> None:
    out = tmp_path / "leases.jsonl"
    result = invoke("simulate", PREEMPTION, "--per-lease", out, "--start",
                    "2024-05-01T15:00:00+02:00")
    assert result.exit_code == 0, result.stderr
    assert read_records(out)[1]["submit"] == "2024-05-01T13:00:00Z"


@needs_traces
def test_without_start_records_have_only_seconds(tmp_path: Path) -> None:
    out = tmp_path / "leases.jsonl"
    assert invoke("simulate", PREEMPTION, "--per-lease", out).exit_code == 0
    assert "submit" not in read_records(out)[1]


@needs_traces
def test_plot_writes_a_valid_svg(tmp_path: Path) -> None:
    out = tmp_path / "schedule.svg"
    result = invoke("simulate", PREEMPTION, *HAIZEA_FLAGS, "--json", "--plot", out)
    assert result.exit_code == 0, result.stderr
    root = ET.parse(out).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "preemption.lwf" in out.read_text()
    json.loads(result.stdout)  # the plot does not disturb stdout


def test_lease_larger_than_the_cluster_is_rejected_and_counted(tmp_path: Path) -> None:
    trace = write(tmp_path, "tiny.swf", "\n".join([
        "; a job wider than the cluster must be rejected, not crash the run",
        swf_job(1, 0, 100, 2),
        swf_job(2, 10, 100, 5),
        swf_job(3, 20, 50, 1),
    ]) + "\n")
    result = invoke("simulate", trace, "--nodes", "4", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["leases"] == 3
    assert summary["rejected"] == 1
    assert summary["completed"] == 2


def test_inject_adds_the_second_files_leases(tmp_path: Path) -> None:
    trace = write(tmp_path, "base.swf", swf_job(1, 0, 100, 1) + "\n" + swf_job(2, 0, 100, 1) + "\n")
    # Haizea line format: submit start duration real nodes cpu memory disk image size
    ars = write(tmp_path, "ars.lwf", "10 50 100 100 2 1 1024 0 img 0\n")
    out = tmp_path / "leases.jsonl"
    result = invoke("simulate", trace, "--inject", ars, "--nodes", "2", "--json",
                    "--per-lease", out)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["leases"], summary["ar_accepted"], summary["preemptions"]) == (3, 1, 2)
    assert read_records(out)[3]["type"] == "ar"  # injected ids follow the base trace's


def test_node_options_override_and_fill_in_the_site(tmp_path: Path) -> None:
    trace = write(tmp_path, "wide.lwf", "0 -1 100 100 2 1 2048 0 img 0\n")
    out = tmp_path / "leases.jsonl"
    result = invoke("simulate", trace, "--nodes", "1", "--node-cpus", "2",
                    "--node-memory", "4096", "--json", "--per-lease", out)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["completed"] == 1
    assert read_records(out)[1]["runs"][0]["hosts"] == ["node-1", "node-1"]


# -- errors: one line naming the file (and line), exit 2 ----------------------------------------


def test_missing_trace(tmp_path: Path) -> None:
    missing = tmp_path / "nope.swf"
    assert_one_line_error(invoke("simulate", missing), f"{missing}: no such file")


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    trace = write(tmp_path, "bad.lwf", "0 -1 100 100 1 1 1024 0 img 0\n0 -1 100 100\n")
    assert_one_line_error(invoke("simulate", trace, "--nodes", "2"), f"{trace}:2:")


def test_negative_duration_names_file_and_line(tmp_path: Path) -> None:
    trace = write(tmp_path, "neg.lwf", "# comment\n0 -1 -5 100 1 1 1024 0 img 0\n")
    line = assert_one_line_error(invoke("simulate", trace, "--nodes", "2"), f"{trace}:2:")
    assert "duration" in line


def test_trace_without_site_needs_nodes(tmp_path: Path) -> None:
    trace = write(tmp_path, "nosite.lwf", "0 -1 100 100 1 1 1024 0 img 0\n")
    assert_one_line_error(invoke("simulate", trace), f"{trace}:", "--nodes N")


@needs_traces
def test_unknown_policy_lists_the_known_names() -> None:
    line = assert_one_line_error(invoke("simulate", PREEMPTION, "--preemption-policy", "nope"),
                                 "--preemption-policy", "'nope'")
    for name in ("ar-preempts-be", "no-preemption", "oldest-first"):
        assert name in line


@needs_traces
def test_unknown_host_score_policy() -> None:
    assert_one_line_error(invoke("simulate", PREEMPTION, "--host-score-policy", "nope"),
                          "greedy", "pack")


@needs_traces
@pytest.mark.parametrize("args, needle", [
    (["--backfilling", "sometimes"], "--backfilling"),
    (["--suspension", "some"], "--suspension"),
    (["--migration", "maybe"], "--migration"),
    (["--nodes", "0"], "--nodes"),
    (["--suspend-rate", "0"], "suspend-rate"),
    (["--enactment-overhead", "-1"], "enactment-overhead"),
    (["--start", "yesterday"], "--start"),
    (["--per-lease", "-"], "--per-lease"),
    (["--plot", "schedule.pdf"], "--plot"),
    (["--no-such-option"], "--no-such-option"),
])
def test_bad_options_exit_2_with_one_line(args: list[str], needle: str) -> None:
    assert_one_line_error(invoke("simulate", PREEMPTION, *args), needle)


def test_missing_trace_argument_is_a_usage_error() -> None:
    assert_one_line_error(invoke("simulate"), "TRACE")


def test_json_errors_are_a_json_object_on_stderr(tmp_path: Path) -> None:
    missing = tmp_path / "nope.swf"
    result = invoke("simulate", missing, "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    error = json.loads(result.stderr)
    assert error == {"error": "invalid-input", "message": f"{missing}: no such file",
                     "exit_code": 2}


@needs_traces
def test_internal_error_is_one_line_and_traceback_only_with_verbose(monkeypatch) -> None:
    import cloudctl.runtime

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cloudctl.runtime, "build_simulation", broken)
    quiet = invoke("simulate", PREEMPTION)
    assert_one_line_error(quiet, "internal: RuntimeError: boom", code=1)
    loud = invoke("-v", "simulate", PREEMPTION)
    assert loud.exit_code == 1
    assert "Traceback" in loud.stderr
    assert loud.stderr.splitlines()[-1] == "Error: internal: RuntimeError: boom"


@needs_traces
def test_option_defaults_are_the_scheduler_defaults(monkeypatch) -> None:
    import cloudctl.runtime

    seen: dict[str, object] = {}

    class Stop(Exception):
        pass

    def capture(*args: object, **kwargs: object) -> None:
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(cloudctl.runtime, "build_simulation", capture)
    invoke("simulate", PREEMPTION)
    assert seen["config"] == SchedulerConfig()
    assert seen["estimates"] == "requested"
    assert seen["nodes"] is None


# -- the root app ---------------------------------------------------------------------------


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout == f"cloudctl {__version__}\n"


def test_help_lists_simulate_and_the_exit_codes() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert "simulate" in result.stdout
    for code, meaning in EXIT_CODES.items():
        assert f"{code}  {meaning}" in result.stdout


def test_every_simulate_option_has_help() -> None:
    command = get_command(app).commands["simulate"]  # type: ignore[attr-defined]
    assert command.help
    for param in command.params:
        assert getattr(param, "help", None), param.name


def test_simulate_has_the_documented_option_names() -> None:
    command = get_command(app).commands["simulate"]  # type: ignore[attr-defined]
    names = {opt for param in command.params for opt in param.opts + param.secondary_opts}
    assert names >= {
        "--inject", "--nodes", "--node-cpus", "--node-memory", "--backfilling", "--estimates",
        "--suspension", "--suspend-rate", "--resume-rate", "--override-suspend-time",
        "--override-resume-time", "--suspend-exclusion", "--enactment-overhead",
        "--shutdown-time", "--migration", "--threshold-factor", "--preemption-policy",
        "--host-score-policy", "--image-transfer", "--bandwidth", "--image-cache",
        "--no-image-cache", "--start", "--per-lease", "--json", "--plot",
    }


# -- progress ---------------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_silent_off_a_terminal() -> None:
    stream = io.StringIO()
    clock = iter([0.0, 5.0, 10.0])
    progress = LazyProgress("x", stream=stream, clock=lambda: next(clock))
    progress(1, 10)
    progress(10, 10)
    progress.close()
    assert stream.getvalue() == ""


def test_progress_starts_only_after_the_delay() -> None:
    stream = FakeTerminal()
    now = [0.0]
    with LazyProgress("simulating", stream=stream, clock=lambda: now[0]) as progress:
        now[0] = 0.5
        progress(1, 10)
        assert progress.bar is None and stream.getvalue() == ""
        now[0] = 1.5
        progress(5, 10)
        assert progress.bar is not None
    assert "simulating" in stream.getvalue()


# -- real processes ---------------------------------------------------------------------------


def run_cloudctl(*args: object) -> Result:
    """`python -m cloudctl ARGS`, from the repository."""
    return run(*args, command=PYTHON_M_CLOUDCTL, cwd=REPO)


@needs_traces
def test_process_preemption_scenario(tmp_path: Path) -> None:
    out = tmp_path / "leases.jsonl"
    proc = run_cloudctl("simulate", PREEMPTION, *HAIZEA_FLAGS, "--json", "--per-lease", out)
    assert proc.exit_code == 0, proc.stderr
    assert proc.stderr == ""
    assert SUMMARY_KEYS <= json.loads(proc.stdout).keys()
    leases = read_records(out)
    assert spans(leases[1]["runs"]) == [[0, 1798], [3634, 5436]]
    assert spans(leases[1]["suspensions"]) == [[1798, 1800]]
    assert spans(leases[1]["resumptions"]) == [[3600, 3634]]
    assert leases[1]["end_s"] == 5438
    assert spans(leases[2]["runs"]) == [[1800, 3592]]
    assert leases[2]["end_s"] == 3600


@needs_traces
def test_process_reservation_scenario(tmp_path: Path) -> None:
    out = tmp_path / "leases.jsonl"
    proc = run_cloudctl("simulate", RESERVATION, *HAIZEA_FLAGS, "--json", "--per-lease", out)
    assert proc.exit_code == 0, proc.stderr
    second = read_records(out)[2]
    assert (second["start_s"], second["end_s"]) == (3602, 4510)


def test_process_bad_trace_exits_2_with_one_line(tmp_path: Path) -> None:
    trace = write(tmp_path, "bad.lwf", "0 -1 100 100 1 1 1024 0 img 0\n1 2 3\n")
    proc = run_cloudctl("simulate", trace, "--nodes", "2")
    assert proc.exit_code == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(f"Error: {trace}:2:")


def test_process_version_and_usage_error() -> None:
    proc = run_cloudctl("--version")
    assert (proc.exit_code, proc.stdout) == (0, f"cloudctl {__version__}\n")
    proc = run_cloudctl("no-such-command")
    assert proc.exit_code == 2
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("Error: ")


def test_help_path_imports_no_scheduler_or_driver_modules() -> None:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import cloudctl.cli.app"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    modules = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    heavy = {m for m in modules if m.split(".")[0] in ("boto3", "libvirt", "paramiko")
             or m.startswith(("cloudctl.scheduler", "cloudctl.sim", "cloudctl.runtime",
                              "cloudctl.policies"))}
    assert heavy == set()
