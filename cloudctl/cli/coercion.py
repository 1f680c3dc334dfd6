"""Plain option values without pydantic.

typer turns every option value (even an absent one) into its Python type through a pydantic
TypeAdapter; importing pydantic and building the adapters costs more than a whole `lease
list`. Most of our values are text, whole numbers, flags, numbers given as defaults, paths or
choices, or not given at all: those are converted here. Anything else (a number out of its
bounds or written otherwise, a malformed one, which then gets typer's own error message) goes
to typer's coercion, built when first needed.

This reaches into typer's private `_runtime_param`; when typer changes it, nothing is
replaced and typer coerces everything as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

try:
    from typer._coercion import RuntimeParam, build_runtime_param
except ImportError:  # another typer: leave its coercion alone
    RuntimeParam = None  # type: ignore[assignment,misc]

# Whole numbers any int parser reads the same way (no sign, spaces, underscores or zeros).
_WHOLE = re.compile(r"0|-?[1-9][0-9]{0,17}")
# Plain decimals, which float() and typer read alike (no exponent, inf, nan or underscores).
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]{0,14})(\.[0-9]{1,15})?")


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class PlainParam(RuntimeParam):
        """An absent value, text and whole numbers as they are; the rest through typer's
        coercion."""

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            kind = self.annotation
            info = self.parameter_info
            if info.parser is None:
                if value is None:  # an absent option: typer gives None of any type too
                    return None
                if kind is str and isinstance(value, str):
                    return value
                if kind is int and (type(value) is int
                                    or (isinstance(value, str) and _WHOLE.fullmatch(value))):
                    number = int(value)
                    if _within(number, info):
                        return number
                if kind is bool and type(value) is bool:
                    return value
                if kind is float and (type(value) in (int, float) or (
                        isinstance(value, str) and _DECIMAL.fullmatch(value))):
                    number = float(value)
                    if _within(number, info):
                        return number
                if kind is Path and isinstance(value, str):  # click checked it already
                    return Path(value)
                if get_origin(kind) is Literal and value in get_args(kind):  # a choice
                    return value
            # From now on typer's own coercion serves this parameter.
            param._runtime_param = typer_own = build_runtime_param(param.type_descriptor)
            return typer_own._coerce_value(value, param=param, ctx=ctx)


def _within(number: float, info: Any) -> bool:
    """Inside the option's bounds (outside, typer's coercion clamps it or says why not)."""
    return ((info.min is None or number >= info.min)
            and (info.max is None or number <= info.max))


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
