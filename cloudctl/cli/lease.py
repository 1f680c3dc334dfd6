"""`cloudctl lease`: ask for capacity, follow it, explain it, give it back."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from cloudctl.cli.common import (
    LEASE_COLUMNS,
    Json,
    Output,
    Quiet,
    cloud,
    emit,
    emit_one,
    local_times,
    output_format,
    say,
)
from cloudctl.domain import LISTED_STATES, LeaseType
from cloudctl.views import lease_view

app = typer.Typer(help="Request, list, show, explain, wait for and cancel leases.",
                  no_args_is_help=True)
LeaseId = Annotated[int, typer.Argument(metavar="ID", help="The lease's ID.",
                                        show_default=False)]
TYPES = tuple(t.value for t in LeaseType)
STATES = LISTED_STATES


def _table_row(data: dict[str, Any], record: Any) -> dict[str, Any]:
    return local_times(data, ["start", "end"], {"start": record.start, "end": record.end})


@app.command("request")
def request(
    ctx: typer.Context,
    type_: Annotated[str, typer.Option(
        "--type", metavar="ar|be|im", show_default=False,
        help="ar: advance reservation at --start; be: best-effort, queued, may be "
             "preempted; im: immediate, now or rejected.")],
    duration: Annotated[str, typer.Option(
        "--duration", metavar="DURATION", show_default=False,
        help="How long the VMs run: 90s, 30m, 1h30m, 2d or HH:MM:SS.")],
    nodes: Annotated[int, typer.Option("--nodes", metavar="N", help="Number of VMs.")] = 1,
    cpus: Annotated[int | None, typer.Option(
        "--cpus", metavar="C", show_default=False,
        help="CPUs per VM (default: the template's vcpus, else 1).")] = None,
    memory: Annotated[int | None, typer.Option(
        "--memory", metavar="MIB", show_default=False,
        help="Memory per VM in MiB (default: the template's memory, else 1024).")] = None,
    template: Annotated[Path | None, typer.Option(
        "--template", metavar="XL.CFG", show_default=False,
        help="Take vcpus, memory, name and image from a Xen xl.cfg file (the image is the "
             "registered one whose file is the template's first disk); flags win.")] = None,
    start: Annotated[str | None, typer.Option(
        "--start", metavar="ISO8601|now|+DURATION", show_default=False,
        help="When an advance reservation begins (local time unless an offset is "
             "given).")] = None,
    image: Annotated[str | None, typer.Option("--image", metavar="NAME", show_default=False,
                                              help="Image the VMs boot from.")] = None,
    preemptible: Annotated[bool | None, typer.Option(
        "--preemptible/--no-preemptible", show_default=False,
        help="May an advance reservation suspend this lease? (default: yes for be, no "
             "otherwise)")] = None,
    name: Annotated[str | None, typer.Option("--name", metavar="NAME", show_default=False,
                                             help="A name to find the lease by.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Change nothing: print the decision, the leases it would preempt "
                          "and how, and the best-effort leases it would delay.")] = False,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Return once the lease is active (ticking while nobody else does), "
                       "or fails.")] = False,
    output: Output = None, as_json: Json = False, quiet: Quiet = False,
) -> None:
    """Ask for a lease. An AR or IM lease that cannot be placed exits 6 with the reason."""
    from cloudctl.app.leases import LeaseSpec
    from cloudctl.timefmt import parse_duration, parse_time

    fmt = output_format(output, as_json)
    if type_ not in TYPES:
        from cloudctl.errors import InvalidInput

        raise InvalidInput(f"--type must be ar, be or im, got {type_!r}")
    with cloud(ctx) as c:
        base = ({} if template is None
                else c.images.template_defaults(template, find_image=image is None))
        cpus = cpus if cpus is not None else base.get("cpus", 1)
        memory = memory if memory is not None else base.get("memory_mib", 1024)
        image = image if image is not None else base.get("image")
        name = name if name is not None else base.get("name")
        spec = LeaseSpec(type=LeaseType(type_),
                         duration=parse_duration(duration, option="--duration"),
                         nodes=nodes, cpus=cpus, memory_mib=memory,
                         start=None if start is None else parse_time(start, c.clock(),
                                                                      option="--start"),
                         image=image, preemptible=preemptible, name=name)
        outcome = c.leases.request(spec, dry_run=dry_run)
        record = outcome.lease
        if wait and not dry_run:
            record = c.leases.wait_state(record.id, {"active"}, None, time.sleep)
    data = lease_view(record)
    if dry_run:
        data = {"dry_run": True, "accepted": outcome.decision.accepted, "lease": data,
                "reasons": outcome.decision.reasons, "burst": data["burst"],
                "preempted": outcome.preempted, "delayed": _delayed(outcome.delayed)}
        if fmt == "table":
            _print_dry_run(data, record)
            return
        emit_one(data, fmt, [(k, k) for k in data])
        return
    if fmt == "table" and not quiet:
        where = f" on {', '.join(record.hosts)}" if record.hosts else ""
        say(f"lease {record.id} {record.state}{where}: {record.reason}")
        for p in outcome.preempted:
            say(f"  preempts lease {p['id']} ({p['how']}): {p['reason']}")
        sys.stdout.write(f"{record.id}\n")
        return
    emit_one(data, fmt, LEASE_COLUMNS, quiet=quiet)


def _delayed(delayed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from cloudctl.timefmt import iso

    return [{**d, "expected_start": iso(d["expected_start"]),
             "new_expected_start": iso(d["new_expected_start"])} for d in delayed]


def _print_dry_run(data: dict[str, Any], record: Any) -> None:
    from cloudctl.timefmt import local

    out = sys.stdout.write
    lease = data["lease"]
    if not data["accepted"]:
        out(f"would be REJECTED: {'; '.join(data['reasons'])}\n")
        return
    out(f"would be {lease['state']}: {record.reason}\n")
    if record.hosts:
        out(f"  hosts: {', '.join(record.hosts)}\n")
    burst = data["burst"]
    if burst:
        out(f"  burst to {burst['provider']}: {burst['nodes']} x {burst['instance_type']} at "
            f"${burst['price_per_hour']}/h, about ${burst['cost']:.2f}\n")
    out(f"  start: {local(record.start)}   end: {local(record.end)}\n")
    for p in data["preempted"]:
        out(f"  preempts lease {p['id']}: {p['how']} ({p['reason']})\n")
    for d in data["delayed"]:
        out(f"  delays lease {d['id']}: expected start {d['expected_start']} -> "
            f"{d['new_expected_start']}\n")
    if not data["preempted"] and not data["delayed"]:
        out("  no other lease is preempted or delayed\n")


@app.command("list")
def list_(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option("--state", metavar="STATE", show_default=False,
                                              help="Only leases in this state.")] = None,
    type_: Annotated[str | None, typer.Option("--type", metavar="ar|be|im",
                                              show_default=False,
                                              help="Only leases of this type.")] = None,
    output: Output = None, as_json: Json = False, quiet: Quiet = False,
) -> None:
    """Every lease, oldest first."""
    from cloudctl.errors import InvalidInput

    fmt = output_format(output, as_json)
    if state is not None and state not in STATES:
        raise InvalidInput(f"--state: unknown state {state!r} (known: {', '.join(STATES)})")
    if type_ is not None and type_ not in TYPES:
        raise InvalidInput(f"--type must be ar, be or im, got {type_!r}")
    with cloud(ctx) as c:
        if fmt == "json" and not quiet:
            objects = c.leases.list_json(state=state, type=type_)
            sys.stdout.write("[" + ",\n".join(objects) + "]\n")
            return
        records = c.leases.all(state=state, type=type_)
    rows = [lease_view(r) for r in records]
    table_rows = [_table_row(row, r) for row, r in zip(rows, records, strict=True)] \
        if fmt == "table" else None
    emit(rows, LEASE_COLUMNS, fmt, quiet, table_rows=table_rows)


@app.command("show")
def show(ctx: typer.Context, lease_id: LeaseId, output: Output = None,
         as_json: Json = False) -> None:
    """One lease, its VMs and its story (every transition, with the reason)."""
    from cloudctl.timefmt import iso

    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        record, vms, events = c.leases.show(lease_id)
    data = lease_view(record)
    data["vms"] = [{"name": v.name, "host": v.host, "state": v.state, "want": v.want,
                    "error": v.error} for v in vms]
    data["events"] = [{"time": iso(e.time), "entity": e.entity, "from": e.from_state,
                       "to": e.to_state, "reason": e.reason} for e in events]

    def story() -> None:
        from cloudctl.timefmt import local

        for v in vms:
            error = f"  error: {v.error}" if v.error else ""
            sys.stdout.write(f"vm {v.name} on {v.host or '-'}: {v.state} "
                             f"(wants {v.want}){error}\n")
        sys.stdout.write("story:\n")
        for e in events:
            move = f"{e.from_state or ''} -> {e.to_state or ''}" if e.to_state else ""
            sys.stdout.write(f"  {local(e.time)}  {e.entity:<18} {move:<28} {e.reason}\n")

    fields = LEASE_COLUMNS + [("duration_s", "DURATION S"), ("preemptible", "PREEMPTIBLE"),
                              ("image", "IMAGE"), ("submitted", "SUBMITTED"),
                              ("reason", "REASON")]
    shown = _table_row(data, record) if fmt == "table" else data
    emit_one(shown, fmt, fields, extra=story)


@app.command("cancel")
def cancel(ctx: typer.Context, lease_id: LeaseId, output: Output = None,
           as_json: Json = False, quiet: Quiet = False) -> None:
    """Give a lease back; its VMs are stopped at the next tick. Cancelling a finished
    lease changes nothing and exits 0."""
    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        record, cancelled = c.leases.cancel(lease_id)
        if cancelled:
            c.ticks.tick(blocking=False)  # stop its VMs now if no other tick is busy
    if fmt == "table" and not quiet:
        if cancelled:
            say(f"lease {lease_id} cancelled")
        else:
            say(f"lease {lease_id} is already {record.state}; nothing to cancel")
        return
    data = lease_view(record)
    data["cancelled"] = cancelled
    emit_one(data, fmt, LEASE_COLUMNS, quiet=quiet)


@app.command("explain")
def explain(ctx: typer.Context, lease_id: LeaseId, output: Output = None,
            as_json: Json = False) -> None:
    """Why a lease is queued, rejected or placed where it is, host by host."""
    from cloudctl.timefmt import iso, local

    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        result = c.leases.explain(lease_id)
    record = result.pop("lease")
    window = result["window"]
    if fmt != "table":
        if window is not None:
            result["window"] = {k: iso(v) for k, v in window.items()}
        result["events"] = [{**e, "time": iso(e["time"])} for e in result["events"]]
        emit_one(result, fmt, [(k, k) for k in result])
        return
    out = sys.stdout.write
    out(f"lease {lease_id} ({record.type}, {record.nodes} x {record.cpus} CPU / "
        f"{record.memory_mib} MiB) is {result['state']}: {result['reason']}\n")
    if window is not None:
        out(f"window: {local(window['start'])} .. {local(window['end'])}\n")
    if result["hosts"]:
        out("hosts:\n")
        width = max(len(h["host"]) for h in result["hosts"])
        for h in result["hosts"]:
            out(f"  {h['host']:<{width}}  {h['verdict']}\n")
    out("story:\n")
    for e in result["events"]:
        out(f"  {local(e['time'])}  {e['entity']:<18} {e['to'] or '':<20} {e['reason']}\n")


@app.command("wait")
def wait(
    ctx: typer.Context, lease_id: LeaseId,
    state: Annotated[list[str], typer.Option(
        "--state", metavar="STATE", show_default=False,
        help="The state to wait for (repeat for any of several).")],
    timeout: Annotated[str | None, typer.Option(
        "--timeout", metavar="DURATION", show_default=False,
        help="Give up after this long (exit 4).")] = None,
    output: Output = None, as_json: Json = False, quiet: Quiet = False,
) -> None:
    """Block until the lease reaches STATE, ticking while no one else does. Exits 4 on
    timeout or when the lease ends in another final state."""
    from cloudctl.errors import InvalidInput
    from cloudctl.timefmt import parse_duration

    fmt = output_format(output, as_json)
    unknown = [s for s in state if s not in STATES]
    if unknown:
        raise InvalidInput(f"--state: unknown state {unknown[0]!r} (known: {', '.join(STATES)})")
    limit = None if timeout is None else parse_duration(timeout, option="--timeout")
    with cloud(ctx) as c:
        record = c.leases.wait_state(lease_id, set(state), limit, time.sleep)
    if fmt == "table" and not quiet:
        say(f"lease {lease_id} is {record.state}")
        return
    emit_one(lease_view(record), fmt, LEASE_COLUMNS, quiet=quiet)
