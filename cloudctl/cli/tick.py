"""`cloudctl tick` (one pass, for cron) and `cloudctl run` (the same, in a loop)."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Annotated, Any

import typer

from cloudctl.cli.common import Json, Output, cloud, emit_one, output_format, say


def _data(outcome: Any) -> dict[str, Any]:
    from cloudctl.timefmt import iso

    return {"ran": outcome.ran, "now": iso(outcome.now), "busy": outcome.holder or None,
            "leases_changed": [{"id": r.id, "state": r.state, "reason": r.reason}
                               for r in outcome.changed],
            **outcome.report.as_dict(), "next_event": iso(outcome.next_event)}


def _print(outcome: Any, fmt: str) -> None:
    data = _data(outcome)
    if fmt != "table":
        emit_one(data, fmt, [(k, k) for k in data])
        return
    if not outcome.ran:
        say(f"another tick is running ({outcome.holder}); nothing to do")
        return
    for r in outcome.changed:
        say(f"lease {r.id}: {r.state} ({r.reason})")
    report = outcome.report
    for line in report.done:
        say(f"  {line}")
    for label, items in (("failed", report.failed), ("waiting to retry", report.waiting),
                         ("missing, re-created", report.missing),
                         ("unowned domain, left alone", report.unowned),
                         ("unreachable", report.unreachable),
                         ("host in error, its leases moved or failed",
                          sorted(report.lost_hosts.values())),
                         ("host back in service", report.recovered_hosts),
                         ("burst failed, lease sent back",
                          [f"lease {k}: {v}" for k, v in sorted(report.unburst.items())]),
                         ("instance adopted", report.instances.get("adopted", [])),
                         ("instance no lease owns", report.instances.get("unowned", [])),
                         ("instance terminated (--reap)", report.instances.get("reaped", [])),
                         ("cloud unreachable", report.instances.get("unreachable", []))):
        for item in items:
            say(f"  {label}: {item}")
    if data["next_event"]:
        say(f"next change at {data['next_event']}")


def tick(
    ctx: typer.Context,
    wait: Annotated[bool, typer.Option(
        "--wait", help="If another tick is running, wait for it instead of exiting 0.")
    ] = False,
    reap: Annotated[bool, typer.Option(
        "--reap", help="Terminate cloud instances tagged with this store that no lease "
                       "owns (without it they are only reported).")] = False,
    output: Output = None, as_json: Json = False,
) -> None:
    """One scheduling-and-enactment pass at the current time, for cron: start what is due,
    suspend what an AR preempts, resume, end leases whose time is up, retry what failed,
    launch and terminate burst instances and reconcile them by tag.
    If another tick is running it exits 0 saying so."""
    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        outcome = c.ticks.tick(blocking=wait, reap=reap)
    _print(outcome, fmt)


def run(
    ctx: typer.Context,
    max_sleep: Annotated[int, typer.Option(
        "--max-sleep", metavar="SECONDS", min=1,
        help="Wake at least this often even when nothing is due.")] = 60,
    output: Output = None, as_json: Json = False,
) -> None:
    """Tick in a loop until SIGINT or SIGTERM, sleeping until the next changepoint."""
    from cloudctl.limits import check_range

    fmt = output_format(output, as_json)
    check_range(max_sleep, 1, 86400, "--max-sleep", " s")  # a longer wait overflows the timer
    stop = threading.Event()

    def handle(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    with cloud(ctx) as c:
        while not stop.is_set():
            outcome = c.ticks.tick(blocking=True)
            if outcome.changed or outcome.report.done or outcome.report.failed:
                _print(outcome, fmt)
                sys.stdout.flush()
            now = c.clock()
            due = outcome.next_event
            delay = max_sleep if due is None else min(max_sleep, max(1, due - now))
            stop.wait(delay)
    say("stopped")

