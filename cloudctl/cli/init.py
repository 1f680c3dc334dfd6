"""`cloudctl init`, `cloudctl config show`, `cloudctl db status|migrate`."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import typer

from cloudctl.cli.common import Json, Output, cloud, emit, emit_one, output_format, say

config_app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)
db_app = typer.Typer(help="Inspect and upgrade the state store.", no_args_is_help=True)


def init(ctx: typer.Context,
         vm_prefix: Annotated[str | None, typer.Option(
             "--vm-prefix", metavar="PREFIX", show_default=False,
             help="Name this store's VMs PREFIX-LEASE-NODE (default cloudctl-LEASE-NODE): "
                  "stores sharing a hypervisor need distinct prefixes, e.g. cloudctl-lab. "
                  "Fixed once the store has VMs.")] = None,
         output: Output = None, as_json: Json = False) -> None:
    """Create the state store and a commented default config; safe to run again."""
    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        result = c.admin.init(vm_prefix)
    if fmt == "table":
        applied = ", ".join(result["migrations_applied"])
        state = "created" if result["created"] else "exists"
        say(f"store: {result['db']} ({state}{', migrated: ' + applied if applied else ''})")
        state = "created" if result["config_created"] else "exists"
        say(f"config: {result['config']} ({state})")
        return
    emit_one(result, fmt, [(k, k) for k in result])


@config_app.command("show")
def config_show(ctx: typer.Context, output: Output = None, as_json: Json = False) -> None:
    """Print the effective configuration: config file, environment and defaults merged."""
    from cloudctl.config import load_settings

    fmt = output_format(output, as_json)
    db = (ctx.find_root().obj or {}).get("db")
    data = load_settings(os.environ, db).as_dict()
    if fmt == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    if fmt == "csv":
        rows = [{"section": section, "key": key, "value": value}
                for section, table in data.items() if isinstance(table, dict)
                for key, value in table.items()]
        emit(rows, [("section", "section"), ("key", "key"), ("value", "value")], "csv")
        return
    sys.stdout.write(f"# effective configuration; file: {data.pop('config')}\n")
    for section, table in data.items():
        sys.stdout.write(f"\n[{section}]\n")
        for key, value in table.items():
            sys.stdout.write(f"{key} = {_toml(value)}\n")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if value is None:
        return '"" # unset'
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


@db_app.command("status")
def db_status(ctx: typer.Context, output: Output = None, as_json: Json = False) -> None:
    """Where the store is, which migrations it has and which it still needs."""
    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        status = c.admin.db_status()
    if fmt != "table":
        emit_one(status, fmt, [(k, k) for k in status])
        return
    sys.stdout.write(f"store:   {status['db']} ({status['size_bytes']} bytes, "
                     f"journal {status['journal_mode']})\n")
    for m in status["applied"]:
        sys.stdout.write(f"applied: {m['name']}\n")
    for name in status["pending"]:
        sys.stdout.write(f"pending: {name}  (run 'cloudctl db migrate')\n")
    if status["counts"]:
        counts = ", ".join(f"{v} {k}" for k, v in status["counts"].items())
        sys.stdout.write(f"rows:    {counts}\n")


@db_app.command("migrate")
def db_migrate(ctx: typer.Context, output: Output = None, as_json: Json = False) -> None:
    """Apply pending migrations, each in its own transaction."""
    fmt = output_format(output, as_json)
    with cloud(ctx) as c:
        applied = c.admin.db_migrate()
    if fmt == "table":
        say("applied: " + ", ".join(applied) if applied else "nothing to do: store is current")
        return
    emit_one({"applied": applied}, fmt, [("applied", "applied")])
