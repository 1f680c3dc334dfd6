"""cloudctl: a command-line private/hybrid cloud manager with a Haizea-style lease scheduler."""

__version__ = "0.1.0"

from cloudctl import _native  # noqa: E402 - must run before any scheduler module is imported

_native.choose(__path__[0])
