"""What every command shares: the output options, one renderer for lists and shows, and
how a command gets its App (from the composition root, `cloudctl.runtime.build_real`)."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cloudctl.errors import InvalidInput

if TYPE_CHECKING:
    from cloudctl.app import App

Output = Annotated[str | None, typer.Option(
    "-o", "--output", metavar="table|json|csv",
    help="Output format: table for people (default), json or csv for scripts.")]
Json = Annotated[bool, typer.Option("--json", help="Same as -o json.")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Print IDs (or names) only.")]


def output_format(output: str | None, as_json: bool) -> str:
    fmt = "json" if as_json else (output or "table")
    if fmt not in ("table", "json", "csv"):
        raise InvalidInput(f"-o/--output must be table, json or csv, got {fmt!r}")
    if as_json and output not in (None, "json"):
        raise InvalidInput(f"--json and -o {output} contradict each other")
    return fmt


@contextmanager
def cloud(ctx: typer.Context) -> Iterator[App]:
    """Build the App for this invocation: settings from the environment and config."""
    from cloudctl.runtime import build_real

    root = ctx.find_root()
    app = build_real(os.environ, (root.obj or {}).get("db"))
    try:
        yield app
    finally:
        app.close()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(_cell(v) for v in value) or "-"
    return str(value)


def emit(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]], fmt: str,
         quiet: bool = False, key: str = "id",
         table_rows: Sequence[Mapping[str, Any]] | None = None) -> None:
    """Print a list: one JSON array, CSV with a header, or a table (`table_rows` may give
    friendlier values for people, e.g. local times)."""
    if quiet:
        sys.stdout.write("".join(f"{row[key]}\n" for row in rows))
        return
    if fmt == "json":
        sys.stdout.write(json.dumps(list(rows), indent=None if len(rows) > 50 else 2) + "\n")
        return
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([name for name, _ in columns])
        for row in rows:
            writer.writerow(["" if row.get(name) is None else
                             (" ".join(map(str, row[name])) if isinstance(row[name], list)
                              else row[name]) for name, _ in columns])
        return
    shown = table_rows if table_rows is not None else rows
    cells = [[_cell(row.get(name)) for name, _ in columns] for row in shown]
    table(columns, cells)


def table(columns: Sequence[tuple[str, str]], cells: Sequence[Sequence[str]]) -> None:
    headers = [header for _, header in columns]
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        from rich.console import Console
        from rich.table import Table

        view = Table(*headers, box=None, header_style="bold", pad_edge=False)
        for row in cells:
            view.add_row(*row)
        Console().print(view)
        return
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
              for row in cells]
    sys.stdout.write("\n".join(lines) + "\n")


def emit_one(data: Mapping[str, Any], fmt: str, fields: Sequence[tuple[str, str]],
             quiet: bool = False, key: str = "id",
             extra: Callable[[], None] | None = None) -> None:
    """Print one object: JSON, a one-row CSV, or `field: value` lines plus `extra`."""
    if quiet:
        sys.stdout.write(f"{data[key]}\n")
        return
    if fmt == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    if fmt == "csv":
        emit([data], fields, "csv")
        return
    width = max(len(label) for _, label in fields)
    for name, label in fields:
        sys.stdout.write(f"{label + ':':<{width + 1}} {_cell(data.get(name))}\n")
    if extra is not None:
        extra()


def say(message: str) -> None:
    """A human note on stderr, so stdout stays data."""
    typer.echo(message, err=True)


LEASE_COLUMNS = [("id", "ID"), ("name", "NAME"), ("type", "TYPE"), ("state", "STATE"),
                 ("start", "START"), ("end", "END"), ("nodes", "NODES"), ("cpus", "CPUS"),
                 ("memory_mib", "MEM MiB"), ("hosts", "HOSTS")]


def local_times(row: Mapping[str, Any], keys: Sequence[str], raw: Mapping[str, Any]
                ) -> dict[str, Any]:
    """A copy of `row` whose time keys show local time from the raw Unix seconds."""
    from cloudctl.timefmt import local

    out = dict(row)
    for k in keys:
        out[k] = local(raw.get(k))
    return out
