"""`cloudctl simulate`: replay a workload trace through the lease scheduler.

Only typer is imported at module level so that `cloudctl --help` stays fast; the scheduler,
the simulator and rich load when the command runs.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Annotated, Any, Literal

import typer

from cloudctl.errors import InvalidInput

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

PROGRESS_DELAY_S = 1.0  # a run shorter than this shows no progress bar at all

CLUSTER = "Cluster (default: the trace's header or <site>)"
SCHEDULING = "Scheduling"
PREEMPTION = "Preemption: suspend and resume"
IMAGES = "Image transfers"
BURST = "Bursting to a public cloud"
OUTPUT = "Output"


def _policy_name(kind: str) -> Callable[[str], str]:
    """A typer callback that accepts only the names registered for a policy extension point."""

    def check(value: str | None) -> str | None:
        from cloudctl import plugins

        if value is None:
            return value  # the profile's choice
        group = plugins.policy_group(kind)
        if not plugins.is_registered(group, value):
            known = ", ".join(plugins.available(group))
            raise typer.BadParameter(f"unknown policy {value!r} (known: {known})")
        return value

    return check


def simulate(
    trace: Annotated[Path, typer.Argument(
        metavar="TRACE", show_default=False,
        help="Workload to replay: SWF, Haizea LWF XML or Haizea line format "
             "(recognised by content, not by extension).")],
    inject: Annotated[Path | None, typer.Option(
        "--inject", metavar="FILE", show_default=False,
        help="Add this file's leases (any trace format, e.g. injected advance reservations) "
             "to TRACE; their ids are shifted past TRACE's.")] = None,
    nodes: Annotated[int | None, typer.Option(
        "--nodes", metavar="N", min=1, show_default=False, rich_help_panel=CLUSTER,
        help="Number of hosts, named node-1..node-N. Default: SWF MaxNodes (else MaxProcs) "
             "or the LWF <site>; required when the trace has neither.")] = None,
    node_cpus: Annotated[int | None, typer.Option(
        "--node-cpus", metavar="C", min=1, show_default=False, rich_help_panel=CLUSTER,
        help="Whole CPUs per host. Default: the trace's <site>, else 1.")] = None,
    node_memory: Annotated[int | None, typer.Option(
        "--node-memory", metavar="MIB", min=1, show_default=False, rich_help_panel=CLUSTER,
        help="Memory per host in MiB. Default: the trace's <site>, else 1024. SWF jobs, which "
             "record no memory, each use one CPU's share of it.")] = None,
    profile: Annotated[str, typer.Option(
        "--profile", metavar="cloudctl|haizea-1.0", rich_help_panel=SCHEDULING,
        help="A named set of the options below, which options given beside it override: "
             "cloudctl (the defaults shown), or haizea-1.0 (Haizea 1.0's schedules: "
             "--split any --requeue at-once --migration-allowance --preemption-policy "
             "oldest-first).")] = "cloudctl",
    backfilling: Annotated[str, typer.Option(
        "--backfilling", metavar="off|easy|conservative|N", rich_help_panel=SCHEDULING,
        help="How many queued best-effort leases may hold a future reservation: off = none "
             "(strict FIFO), easy = the first (EASY), conservative = all, N = the first N.")
    ] = "easy",
    estimates: Annotated[Literal["requested", "actual"], typer.Option(
        "--estimates", rich_help_panel=SCHEDULING,
        help="SWF only: plan with each job's requested time and end it early at its real run "
             "time (requested; a job that ran longer is killed at its request), or plan with "
             "the real run time (actual: perfect estimates).")] = "requested",
    threshold_factor: Annotated[float, typer.Option(
        "--threshold-factor", metavar="F", rich_help_panel=SCHEDULING,
        help="Do not start a best-effort lease in a gap shorter than its suspend + resume "
             "time times (1 + F).")] = 1.0,
    host_score_policy: Annotated[str, typer.Option(
        "--host-score-policy", metavar="NAME", rich_help_panel=SCHEDULING,
        callback=_policy_name("host_score"),
        help="How hosts are chosen among those that fit: greedy (Haizea's: hosts free for the "
             "whole run and with fewer leases first), pack, or a registered plug-in.")
    ] = "greedy",
    preemption_policy: Annotated[str | None, typer.Option(
        "--preemption-policy", metavar="NAME", rich_help_panel=PREEMPTION,
        callback=_policy_name("preemption"),
        help="Which leases may be pushed aside: ar-preempts-be (advance reservations preempt "
             "preemptible best-effort leases, youngest first), no-preemption, oldest-first, "
             "or a registered plug-in. Default: the profile's (ar-preempts-be).")
    ] = None,
    split: Annotated[Literal["fixed", "any"] | None, typer.Option(
        "--split", rich_help_panel=PREEMPTION, show_default=False,
        help="With suspension, a best-effort lease may run up to a future reservation and be "
             "suspended there: only an advance or immediate lease's (fixed), or any, another "
             "best-effort lease's too (any, Haizea). Default: the profile's (fixed).")] = None,
    requeue: Annotated[Literal["at-start", "at-once"] | None, typer.Option(
        "--requeue", rich_help_panel=PREEMPTION, show_default=False,
        help="A running lease preempted without suspension is killed when the preemptor "
             "starts (at-start), or cancelled and requeued when the preemptor is accepted "
             "(at-once, Haizea). Default: the profile's (at-start).")] = None,
    early_migration: Annotated[bool | None, typer.Option(
        "--early-migration/--late-migration", rich_help_panel=PREEMPTION, show_default=False,
        help="With --migration yes, copy a suspended lease's memory image as soon as it is "
             "suspended (early), or only once the destination hosts are free (late). "
             "Default: the profile's (early).")] = None,
    migration_allowance: Annotated[bool | None, typer.Option(
        "--migration-allowance/--no-migration-allowance", rich_help_panel=PREEMPTION,
        show_default=False,
        help="With --migration yes, a suspended lease waits the time of a migration even when "
             "it resumes where it is (Haizea). Default: the profile's (no).")] = None,
    suspension: Annotated[Literal["none", "all"], typer.Option(
        "--suspension", rich_help_panel=PREEMPTION,
        help="all: a preempted lease is suspended and later resumed with the time it has "
             "left; none: it is cancelled and requeued to start over.")] = "all",
    suspend_rate: Annotated[float, typer.Option(
        "--suspend-rate", metavar="MIBPS", rich_help_panel=PREEMPTION,
        help="MiB of VM memory saved per second: a suspend takes ceil(memory / rate) s plus "
             "the enactment overhead.")] = 32.0,
    resume_rate: Annotated[float, typer.Option(
        "--resume-rate", metavar="MIBPS", rich_help_panel=PREEMPTION,
        help="MiB of VM memory restored per second: a resume takes ceil(memory / rate) s plus "
             "the enactment overhead.")] = 32.0,
    override_suspend_time: Annotated[int | None, typer.Option(
        "--override-suspend-time", metavar="S", show_default=False, rich_help_panel=PREEMPTION,
        help="Seconds to use instead of ceil(memory / suspend rate); the enactment overhead is "
             "still added. Default: computed from the rate.")] = None,
    override_resume_time: Annotated[int | None, typer.Option(
        "--override-resume-time", metavar="S", show_default=False, rich_help_panel=PREEMPTION,
        help="Seconds to use instead of ceil(memory / resume rate); the enactment overhead is "
             "still added. Default: computed from the rate.")] = None,
    suspend_exclusion: Annotated[Literal["local", "global"], typer.Option(
        "--suspend-exclusion", rich_help_panel=PREEMPTION,
        help="local: VMs on one host suspend or resume one after another, hosts in parallel; "
             "global: one at a time in the whole cluster.")] = "local",
    migration: Annotated[Literal["no", "yes"], typer.Option(
        "--migration", rich_help_panel=PREEMPTION,
        help="yes: a suspended lease may resume on other hosts, its memory image copied there "
             "(cold migration); no: it resumes where it was suspended.")] = "no",
    enactment_overhead: Annotated[int, typer.Option(
        "--enactment-overhead", metavar="S", rich_help_panel=PREEMPTION,
        help="Seconds one command (start, stop, suspend, resume) costs per VM.")] = 0,
    shutdown_time: Annotated[int, typer.Option(
        "--shutdown-time", metavar="S", rich_help_panel=PREEMPTION,
        help="Seconds a lease's VMs take to shut down, plus the enactment overhead per VM: "
             "after the run of a best-effort lease, inside the window of a reservation.")] = 0,
    image_transfer: Annotated[Literal["none", "multicast", "unicast"], typer.Option(
        "--image-transfer", rich_help_panel=IMAGES,
        help="none: disk images are already on every host; multicast: one transfer per lease "
             "reaches all its hosts; unicast: one transfer per host.")] = "none",
    bandwidth: Annotated[float, typer.Option(
        "--bandwidth", metavar="MBPS", rich_help_panel=IMAGES,
        help="Bandwidth of the image repository's link in Mbit/s: S MiB take "
             "ceil(S * 8 / MBPS) s.")] = 100.0,
    image_cache: Annotated[bool, typer.Option(
        "--image-cache/--no-image-cache", rich_help_panel=IMAGES,
        help="Keep transferred images on hosts and reuse them instead of transferring again.")
    ] = True,
    burst_provider: Annotated[list[Path] | None, typer.Option(
        "--burst-provider", metavar="FILE.toml", show_default=False, rich_help_panel=BURST,
        help="A public cloud to burst to (repeat for several, tried in order): a TOML file "
             "with name, budget_per_month (USD), boot_time, max_wait (best-effort leases "
             "waiting longer burst), max_preemptions (ARs that would preempt more burst), "
             "burst_im, max_instances, partial (true: a multi-node lease may burst only the "
             "nodes local hosts have no room for), and [prices] with [[instance_types]] "
             "sizes. The run is "
             "compared with one without bursting: the summary's 'burst' object says what it "
             "cost and how much waiting it saved.")] = None,
    start: Annotated[str | None, typer.Option(
        "--start", metavar="ISO", show_default=False, rich_help_panel=OUTPUT,
        help="Wall-clock time of trace second 0, ISO 8601 (UTC unless an offset is given), "
             "e.g. 2024-05-01T13:00:00Z; adds submit, start and end date-times to the "
             "--per-lease records.")] = None,
    per_lease: Annotated[Path | None, typer.Option(
        "--per-lease", metavar="FILE", show_default=False, rich_help_panel=OUTPUT,
        help="Write one JSON object per lease to FILE (JSON lines): type, state, times in "
             "seconds from the trace origin, hosts, runs, suspensions, resumptions, "
             "transfers.")] = None,
    json_output: Annotated[bool, typer.Option(
        "--json", rich_help_panel=OUTPUT,
        help="Print the summary as one JSON object (errors too, on stderr) instead of a "
             "table.")] = False,
    plot: Annotated[Path | None, typer.Option(
        "--plot", metavar="FILE.svg|png", show_default=False, rich_help_panel=OUTPUT,
        help="Draw the schedule (a Gantt chart of hosts over time) and a utilization curve to "
             "an SVG or PNG file.")] = None,
) -> None:
    """Replay a workload trace through the lease scheduler and report how it went.

    A lease larger than the cluster is rejected and counted in the summary, not an error.
    """
    from cloudctl import runtime
    from cloudctl.scheduler.config import SchedulerConfig
    from cloudctl.sim.simulator import simulate as run_simulation

    _check_output_paths(per_lease, plot)
    _check_numbers(nodes, node_cpus, node_memory, {
        "suspend-rate": suspend_rate, "resume-rate": resume_rate, "bandwidth": bandwidth,
        "threshold-factor": threshold_factor, "override-suspend-time": override_suspend_time,
        "override-resume-time": override_resume_time,
        "enactment-overhead": enactment_overhead, "shutdown-time": shutdown_time})
    origin = parse_origin(start) if start is not None else None
    config = SchedulerConfig().with_options(
        profile=profile, split=split, requeue=requeue, early_migration=early_migration,
        migration_allowance=migration_allowance,
        backfilling=backfilling, suspension=suspension, suspend_rate=suspend_rate,
        resume_rate=resume_rate, override_suspend_time=override_suspend_time,
        override_resume_time=override_resume_time, suspend_exclusion=suspend_exclusion,
        enactment_overhead=enactment_overhead, shutdown_time=shutdown_time,
        migration=migration == "yes", threshold_factor=threshold_factor,
        preemption_policy=preemption_policy, host_score_policy=host_score_policy,
        image_transfer=image_transfer, bandwidth=bandwidth, image_cache=image_cache,
    )
    burster = None
    if burst_provider:
        epoch = int(origin.timestamp()) if origin is not None else 0
        burster = runtime.build_burster(burst_provider, epoch)
    requests, hosts, scheduler, loaded = runtime.build_simulation(
        trace, inject=inject, nodes=nodes, node_cpus=node_cpus, node_memory=node_memory,
        estimates=estimates, config=config, burster=burster)

    # Without per-lease output the replay keeps no finished lease (nor submitted request):
    # memory follows the leases in progress, not the length of the trace.
    keep = per_lease is not None or plot is not None
    baseline = None
    if burster is not None:
        # The same trace on the private cloud alone: what bursting is measured against.
        _, _, alone, _ = runtime.build_simulation(
            trace, inject=inject, nodes=nodes, node_cpus=node_cpus, node_memory=node_memory,
            estimates=estimates, config=config)
        with LazyProgress(f"simulating {trace.name} without bursting") as progress:
            baseline = run_simulation(list(requests), hosts, alone, progress, keep).summary()
    with LazyProgress(f"simulating {trace.name}") as progress:
        result = run_simulation(requests, hosts, scheduler, progress, keep)
    result.skipped, result.killed = loaded.skipped, loaded.killed

    if per_lease is not None or plot is not None:
        records = result.per_lease()
        if per_lease is not None:
            write_per_lease(per_lease, records, origin)
        if plot is not None:
            from cloudctl.sim.plot import write_plot

            write_plot(plot, records, [host.name for host in hosts], title=trace.name)

    summary = result.summary()
    if baseline is not None:
        summary["burst"] = burst_economics(summary, baseline)
    if json_output:
        typer.echo(json.dumps(summary))
    else:
        render_summary(summary, title=trace.name)


def burst_economics(summary: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict[str, Any]:
    """What bursting cost against what it bought: waits and slowdowns with and without."""
    out = dict(summary["burst"])
    saved = round(float(baseline["mean_wait_s"]) - float(summary["mean_wait_s"]), 3)
    hours_saved = saved * int(summary["completed"]) / 3600
    out["without_bursting"] = {k: baseline[k] for k in (
        "completed", "rejected", "ar_rejected", "preemptions", "mean_wait_s",
        "mean_bounded_slowdown", "utilization", "all_best_effort_s")}
    out["mean_wait_saved_s"] = saved
    out["usd_per_wait_hour_saved"] = (round(out["cost_usd"] / hours_saved, 4)
                                      if hours_saved > 0 else None)
    return out


# -- options ------------------------------------------------------------------------------


def _check_output_paths(per_lease: Path | None, plot: Path | None) -> None:
    """Refuse unusable output paths before a long run rather than after it."""
    if per_lease is not None and str(per_lease) == "-":
        raise InvalidInput("--per-lease: '-' (stdout) is not allowed: stdout carries the "
                           "summary; give a file name")
    if plot is not None and plot.suffix.lower() not in (".svg", ".png"):
        raise InvalidInput(f"{plot}: --plot needs a .svg or .png file")


def _check_numbers(nodes: int | None, node_cpus: int | None, node_memory: int | None,
                   scheduler: Mapping[str, Any]) -> None:
    """Refuse a cluster or a timing model beyond the documented limits before any work."""
    from cloudctl.config import check_scheduler_numbers
    from cloudctl.limits import MAX_CPUS, MAX_MEMORY_MIB, MAX_NODES, check_range

    for option, value, high in (("--nodes", nodes, MAX_NODES),
                                ("--node-cpus", node_cpus, MAX_CPUS),
                                ("--node-memory", node_memory, MAX_MEMORY_MIB)):
        if value is not None:
            check_range(value, 1, high, option)
    check_scheduler_numbers(scheduler, lambda key: f"--{key}")


def parse_origin(text: str) -> datetime:
    """An ISO 8601 date-time as an aware UTC datetime; a time without offset is taken as UTC."""
    value = text.strip()
    if value.endswith(("Z", "z")):  # Python 3.10's fromisoformat does not know "Z"
        value = value[:-1] + "+00:00"
    try:
        if not value.isascii():
            raise ValueError(value)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"--start: {text[:40]!r} is not an ISO 8601 date-time (e.g. 2024-05-01T13:00:00Z)"
        ) from None
    from cloudctl.limits import MAX_TIME, MIN_TIME
    from cloudctl.timefmt import check_time

    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        moment = moment.astimezone(timezone.utc)
        seconds = int(moment.timestamp())
    except OverflowError:  # years 1 and 9999 at the calendar's ends
        seconds = MIN_TIME - 1 if moment.year < 1970 else MAX_TIME + 1
    check_time(seconds, text, "--start")
    return moment


# -- output -------------------------------------------------------------------------------


def _iso(origin: datetime, seconds: object) -> str | None:
    if not isinstance(seconds, int):
        return None  # a lease that never started or never ended
    try:
        return (origin + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    except OverflowError:  # past year 9999: ISO 8601's expanded years
        from cloudctl.timefmt import iso

        return iso(int(origin.timestamp()) + seconds)


def with_wall_clock(record: Mapping[str, Any], origin: datetime) -> dict[str, Any]:
    """The record plus ISO 8601 UTC `submit`, `start` and `end` for its second offsets."""
    out = dict(record)
    for key in ("submit", "start", "end"):
        out[key] = _iso(origin, record.get(f"{key}_s"))
    return out


def write_per_lease(path: Path, records: Sequence[Mapping[str, Any]],
                    origin: datetime | None) -> None:
    try:
        with open(path, "w", encoding="utf-8") as out:
            for record in records:
                row = with_wall_clock(record, origin) if origin is not None else record
                out.write(json.dumps(row) + "\n")
    except OSError as exc:
        reason = (exc.strerror or str(exc)).replace("\n", " ")
        raise InvalidInput(f"{path}: cannot write per-lease records: {reason}") from None


def render_summary(summary: Mapping[str, object], *, title: str) -> None:
    """A table on a terminal; `key value` lines otherwise, easy to grep and diff."""
    if not sys.stdout.isatty():
        width = max(len(key) for key in summary)
        for key, value in summary.items():
            typer.echo(f"{key:<{width}}  {value}")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, str(value))
    Console().print(table)  # rich honours NO_COLOR itself


class LazyProgress:
    """A progress callback that shows a bar on stderr only once a run has taken
    PROGRESS_DELAY_S, and only when stderr is a terminal: short runs print nothing."""

    def __init__(self, label: str, *, stream: IO[str] | None = None,
                 delay_s: float = PROGRESS_DELAY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.delay_s = delay_s
        self.clock = clock
        self.started_at = clock()
        self.enabled = self.stream.isatty()
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if self.clock() - self.started_at < self.delay_s:
                return
            self._start(total)
        assert self.bar is not None and self.task is not None
        self.bar.update(self.task, completed=done, total=total)

    def _start(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        console = Console(file=self.stream)
        self.bar = Progress("{task.description}", BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console, transient=True)
        self.bar.start()
        self.task = self.bar.add_task(self.label, total=total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __enter__(self) -> LazyProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
