"""`cloudctl schedule show`: the slot table as a Gantt chart, hosts down and time across."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from cloudctl.cli.common import Json, Output, cloud, emit, output_format, say

app = typer.Typer(help="Show the schedule: what runs where, and when.", no_args_is_help=True)
SYMBOLS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@app.command("show")
def show(
    ctx: typer.Context,
    from_: Annotated[str | None, typer.Option(
        "--from", metavar="T", show_default=False,
        help="Start of the view: ISO 8601, now or +DURATION (default: the earliest "
             "reservation still of interest).")] = None,
    to: Annotated[str | None, typer.Option(
        "--to", metavar="T", show_default=False,
        help="End of the view (default: the last reservation's end).")] = None,
    svg: Annotated[Path | None, typer.Option(
        "--svg", metavar="FILE", show_default=False,
        help="Also save the chart with a utilization curve as SVG (or PNG by suffix).")
    ] = None,
    width: Annotated[int | None, typer.Option(
        "--width", metavar="COLUMNS", min=10, show_default=False,
        help="Columns of the time axis (default: fit the terminal).")] = None,
    output: Output = None, as_json: Json = False,
) -> None:
    """Gantt view of the slot table: past runs, running VMs and planned reservations."""
    from cloudctl.timefmt import iso, parse_time

    fmt = output_format(output, as_json)
    if width is not None:
        from cloudctl.limits import check_range

        check_range(width, 10, 10_000, "--width")  # each column is drawn for every host
    with cloud(ctx) as c:
        now = c.clock()
        start = None if from_ is None else parse_time(from_, now, option="--from")
        end = None if to is None else parse_time(to, now, option="--to")
        view = c.schedule.view(start, end)
    if svg is not None:
        _write_svg(svg, view)
        say(f"wrote {svg}")
    if fmt != "table":
        rows = [{**b, "start": iso(b["start"]), "end": iso(b["end"])} for b in view["bars"]]
        emit(rows, [(k, k) for k in ("lease", "type", "host", "node", "kind", "start", "end")],
             fmt)
        return
    cols = width or max(20, shutil.get_terminal_size((100, 24)).columns - 16)
    sys.stdout.write(render(view, cols))


def render(view: Mapping[str, Any], cols: int) -> str:
    """Hosts down, time across; one symbol per lease (legend below), '.' for free time."""
    from cloudctl.timefmt import local

    start, end, now = view["from"], view["to"], view["now"]
    hosts: Sequence[str] = view["hosts"]
    span = (end - start) / cols
    symbols: dict[int, str] = {}
    types: dict[int, str] = {}
    for bar in sorted(view["bars"], key=lambda b: (b["start"], b["lease"])):
        symbols.setdefault(bar["lease"], SYMBOLS[len(symbols) % len(SYMBOLS)])
        types[bar["lease"]] = bar["type"]
    name_w = max([len(h) for h in hosts] + [4])
    lines = [f"{'':<{name_w}}  {local(start)} .. {local(end)}  ({_unit(span)} per column)"]
    marker = [" "] * cols
    if start <= now < end:
        marker[min(cols - 1, int((now - start) / span))] = "v"
        lines.append(f"{'now':<{name_w}}  {''.join(marker).rstrip()}")
    for host in hosts:
        cells = []
        bars = [b for b in view["bars"] if b["host"] == host]
        for i in range(cols):
            c0, c1 = start + i * span, start + (i + 1) * span
            best, cover = None, 0.0
            for b in bars:
                overlap = min(c1, b["end"]) - max(c0, b["start"])
                if overlap > cover:
                    best, cover = b, overlap
            if best is None:
                cells.append(".")
            else:
                symbol = symbols[best["lease"]]
                cells.append(symbol if best["kind"] != "planned" else _planned(symbol))
        lines.append(f"{host:<{name_w}}  {''.join(cells)}")
    if symbols:
        legend = "  ".join(f"{s}=lease {i} ({types[i]})" for i, s in symbols.items())
        lines += ["", f"legend: {legend}"]
        if any(b["kind"] == "planned" for b in view["bars"]) and sys.stdout.isatty():
            lines.append("dimmed: reserved, not running yet")
    return "\n".join(lines) + "\n"


def _planned(symbol: str) -> str:
    return symbol if not sys.stdout.isatty() else f"\x1b[2m{symbol}\x1b[0m"


def _unit(seconds: float) -> str:
    from cloudctl.timefmt import human_duration

    return human_duration(max(1, round(seconds)))


def _write_svg(path: Path, view: Mapping[str, Any]) -> None:
    from cloudctl.sim.plot import write_plot
    from cloudctl.timefmt import local

    origin = view["from"]
    leases: dict[int, dict[str, Any]] = {}
    for b in view["bars"]:
        record = leases.setdefault(b["lease"], {
            "id": b["lease"], "type": b["type"], "submit_s": b["start"] - origin, "runs": []})
        record["runs"].append({"start_s": max(0, b["start"] - origin),
                               "end_s": min(view["to"], b["end"]) - origin,
                               "hosts": [b["host"]]})
    write_plot(path, list(leases.values()), view["hosts"],
               title=f"cloudctl schedule from {local(origin)}")
