"""Commands built the first time a command line or a help page names them.

typer builds every command of an app up front, reading each one's signature (sixty-odd
here); a command line needs one. These build a group or command exactly as typer would
(`app.add_typer`, `app.command`), only later.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from typing import Any

import typer
from typer.core import TyperGroup
from typer.models import CommandInfo, TyperInfo

from cloudctl.cli.coercion import plain_values


class LazyCommands(MutableMapping[str, Any]):
    """A group's commands by name, in order; the lazy ones are built when first looked up
    (listing names builds nothing)."""

    def __init__(self, built: MutableMapping[str, Any], lazy: Iterable[str],
                 build: Callable[[str], Any]) -> None:
        self._built = dict(built)
        self._order = list(built) + [name for name in lazy if name not in built]
        self._build = build

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            if name not in self._order:
                raise KeyError(name)
            self._built[name] = self._build(name)
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        if name not in self._order:
            self._order.append(name)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        self._order.remove(name)
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)


def group(sub_app: typer.Typer, name: str, root: typer.Typer) -> TyperGroup:
    """The click group `root.add_typer(sub_app, name=name)` would give; each of its commands
    is built when first looked up."""
    bare = copy.copy(sub_app)  # the group itself, its commands left for later
    bare.registered_commands = []
    info = TyperInfo(bare, name=name, options_metavar="[OPTIONS]", deprecated=False)
    built = typer.main.get_group_from_info(
        info, pretty_exceptions_short=root.pretty_exceptions_short,
        rich_markup_mode=root.rich_markup_mode, suggest_commands=root.suggest_commands)
    commands = sub_app.registered_commands
    built.commands = LazyCommands({}, [c.name for c in commands if c.name],
                                  lambda command_name: command(commands, command_name, root))
    return plain_values(built)


def command(registered: Sequence[CommandInfo], name: str, root: typer.Typer) -> Any:
    """The click command typer builds for the registered command `name` under `root`."""
    info = next(c for c in registered if c.name == name)
    return plain_values(typer.main.get_command_from_info(
        info, pretty_exceptions_short=root.pretty_exceptions_short,
        rich_markup_mode=root.rich_markup_mode))
