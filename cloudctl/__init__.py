"""cloudctl: a command-line private/hybrid cloud manager with a Haizea-style lease scheduler."""

__version__ = "0.1.0"
