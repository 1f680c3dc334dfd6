"""The `cloudctl` command: the root app, its global options and the one error handler.

Kept light on purpose: a command line imports and builds only the command it names (see
cli/lazy.py), `--version` does not even load typer, and each command imports the scheduler,
drivers or simulator in its body, when it runs.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from cloudctl import __version__
from cloudctl.cli import lazy
from cloudctl.cli.coercion import plain_values
from cloudctl.errors import EXIT_CODES, CloudctlError

INTERRUPTED = 130  # the shell's code for a process stopped by Ctrl-C (128 + SIGINT)


def _epilog() -> str:
    codes = [f"{code}  {meaning}" for code, meaning in sorted(EXIT_CODES.items())]
    return "Exit codes:\n" + "\n".join(codes)


def _flag(argv: Sequence[str], *names: str) -> bool:
    """Whether a flag appears on the command line (before a `--` end of options)."""
    for arg in argv:
        if arg == "--":
            return False
        if arg in names:
            return True
    return False


def _one_line(text: str) -> str:
    return " ".join(text.split())


# The root's own commands and its noun groups (name: module in cloudctl.cli, attribute);
# each is imported and built the first time a command line or a help page names it:
# `cloudctl lease list` does not pay for the signatures of sixty other commands. Typer lists
# a group's commands before its subgroups, and so do we.
TOP_LEVEL: dict[str, tuple[str, str]] = {
    "init": ("init", "init"), "tick": ("tick", "tick"), "run": ("tick", "run"),
    "simulate": ("simulate", "simulate"),
}
NOUNS: dict[str, tuple[str, str]] = {
    "host": ("host", "app"), "image": ("image", "app"), "lease": ("lease", "app"),
    "vm": ("vm", "app"), "schedule": ("schedule", "app"), "cloud": ("clouds", "app"),
    "cost": ("clouds", "cost_app"), "db": ("init", "db_app"), "config": ("init", "config_app"),
}


def root_command(name: str) -> Any:
    """The root's command or noun group `name`, as typer would build it."""
    if name in NOUNS:
        return lazy.group(_load(NOUNS[name]), name, app)
    holder = typer.Typer()  # registers it as `app.command(name)` would
    holder.command(name)(_load(TOP_LEVEL[name]))
    return lazy.command(holder.registered_commands, name, app)


def _load(where: tuple[str, str]) -> Any:
    module, attribute = where
    return getattr(importlib.import_module(f"cloudctl.cli.{module}"), attribute)


class CloudctlGroup(TyperGroup):
    """The root command group; it turns every failure into one line and an exit code.

    Doing this here rather than in `main()` makes typer's test runner see exactly what a
    user of the console script sees.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain_values(self)
        self.commands = lazy.LazyCommands(self.commands, [*TOP_LEVEL, *NOUNS], root_command)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            result = super().main(args=argv, prog_name=prog_name, complete_var=complete_var,
                                  standalone_mode=False,
                                  windows_expand_args=windows_expand_args, **extra)
            code = result if isinstance(result, int) else 0
        except KeyboardInterrupt:
            code = INTERRUPTED
        except typer.Abort:
            code = _report(argv, "aborted", "aborted", 1)
        except CloudctlError as error:
            code = _report(argv, error.kind, str(error), error.exit_code)
        except typer.TyperException as error:  # click's usage and file errors
            message = error.format_message()
            context = getattr(error, "ctx", None)
            if context is not None and error.exit_code == 2:
                message = f"{message} (see '{context.command_path} --help')"
            kind = "usage" if error.exit_code == 2 else "error"
            code = _report(argv, kind, message, error.exit_code)
        except Exception as error:
            if _flag(argv, "-v", "--verbose"):
                import traceback

                traceback.print_exc(file=sys.stderr)
            code = _report(argv, "internal", f"internal: {type(error).__name__}: {error}", 1)
        if standalone_mode:
            sys.exit(code)
        return code


def _report(argv: Sequence[str], kind: str, message: str, exit_code: int) -> int:
    """Print one error line on stderr (a JSON object under --json); return the exit code."""
    message = _one_line(message)
    if _flag(argv, "--json"):
        line = json.dumps({"error": kind, "message": message, "exit_code": exit_code})
    else:
        line = f"Error: {message}"
    typer.echo(line, err=True)
    return exit_code


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"cloudctl {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="cloudctl",
    cls=CloudctlGroup,
    help="Manage a private cloud: hosts, VMs and leases, scheduled the Haizea way "
         "(advance reservations, best-effort queues, backfilling, suspend/resume).",
    epilog=_epilog(),
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option(
        "-v", "--verbose", help="Explain more; print the traceback of an internal error.")
    ] = False,
    db: Annotated[str | None, typer.Option(
        "--db", metavar="PATH", show_default=False,
        help="The state store (default: $CLOUDCTL_DB, the config's store.db, else "
             "~/.local/share/cloudctl/state.db).")] = None,
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_show_version,
        help="Print cloudctl's version and exit.")] = False,
) -> None:
    """Manage a private cloud with a Haizea-style lease scheduler."""
    ctx.obj = {"verbose": verbose, "db": db}
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


# Its commands and noun groups: see `top_level` and NOUNS.


def main(argv: Sequence[str] | None = None) -> int:
    """Run cloudctl; return its exit code (the console script exits with it)."""
    command = typer.main.get_command(app)
    code: int = command.main(args=argv, prog_name="cloudctl", standalone_mode=False)
    return code
