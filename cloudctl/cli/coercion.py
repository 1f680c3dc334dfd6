"""Plain option values without pydantic.

typer turns every option value (even an absent one) into its Python type through a pydantic
TypeAdapter; importing pydantic and building the adapters costs more than a whole `lease
list`. Most of our values are text or whole numbers, or not given at all: those are
converted here. Anything else (a path, a float, a choice, a malformed number, which then gets
typer's own error message) goes to typer's coercion, built when first needed.

This reaches into typer's private `_runtime_param`; when typer changes it, nothing is
replaced and typer coerces everything as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

try:
    from typer._coercion import RuntimeParam, build_runtime_param
except ImportError:  # another typer: leave its coercion alone
    RuntimeParam = None  # type: ignore[assignment,misc]

# Whole numbers any int parser reads the same way (no sign, spaces, underscores or zeros).
_WHOLE = re.compile(r"0|-?[1-9][0-9]{0,17}")


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class PlainParam(RuntimeParam):
        """An absent value, text and whole numbers as they are; the rest through typer's
        coercion."""

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            kind = self.annotation
            info = self.parameter_info
            if info.parser is None:
                if kind is str and isinstance(value, str):
                    return value
                if (kind is int and info.min is None and info.max is None
                        and (type(value) is int
                             or (isinstance(value, str) and _WHOLE.fullmatch(value)))):
                    return int(value)
            # From now on typer's own coercion serves this parameter.
            param._runtime_param = typer_own = build_runtime_param(param.type_descriptor)
            return typer_own._coerce_value(value, param=param, ctx=ctx)


def plain_values(command: Any) -> Any:
    """Give the command's own parameters (not its subcommands') plain coercion, its help
    option included (click makes that one when first asked); returns the command."""
    if RuntimeParam is None:
        return command
    for param in getattr(command, "params", ()):
        _plain(param)
    help_option = command.get_help_option

    def plain_help_option(ctx: Any) -> Any:
        option = help_option(ctx)
        if option is not None:
            _plain(option)
        return option

    command.get_help_option = plain_help_option
    return command


def _plain(param: Any) -> None:
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None and getattr(param, "_runtime_param", False) is None:
        param._runtime_param = PlainParam(parameter_info=descriptor.parameter_info,
                                          annotation=descriptor.annotation)
