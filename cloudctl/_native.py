"""Chooses between the compiled (mypyc) and the pure build of the scheduler's hot modules.

setup.py compiles COMPILED into one library, ``cloudctl/_native__mypyc``. On ``import
cloudctl`` this module makes Python import their ``.py`` sources instead when CLOUDCTL_PURE is
set, when the build is incomplete, or, in a source checkout, when a source changed since it was
compiled, so an edit never runs stale compiled code (rebuild: ``.venv/bin/pip install -e .``).
Standard library only: setup.py loads it before cloudctl is installed.
"""

from __future__ import annotations

import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES, SOURCE_SUFFIXES, FileFinder, SourceFileLoader

# Paths relative to the repository root, as mypyc takes them.
COMPILED = (
    "cloudctl/domain.py",
    "cloudctl/scheduler/slottable.py",
    "cloudctl/scheduler/core.py",
    "cloudctl/scheduler/lease.py",
    "cloudctl/scheduler/timing.py",
    "cloudctl/scheduler/model.py",
    "cloudctl/scheduler/config.py",
    "cloudctl/scheduler/scores.py",
    "cloudctl/sim/simulator.py",
    "cloudctl/sim/traces.py",
)
LIBRARY = "_native__mypyc"
# Where setup.py records what it compiled, in a checkout (gitignored build/).
SOURCES_STAMP = os.path.join("build", "mypyc", "cloudctl-sources.crc32")


def sources_digest(root: str) -> str:
    import zlib  # cheaper to import than hashlib, and enough to notice an edit

    digest = 0
    for path in COMPILED:
        with open(os.path.join(root, path), "rb") as source:
            digest = zlib.crc32(source.read(), digest)
    return f"{digest:08x}"


def _has_extension(directory: str, name: str) -> bool:
    return any(os.path.exists(os.path.join(directory, name + s)) for s in EXTENSION_SUFFIXES)


def pure_reason(package: str) -> str | None:
    """Why the compiled modules must not be used ("" when there is no compiled build)."""
    if os.environ.get("CLOUDCTL_PURE"):
        return ""
    if not _has_extension(package, LIBRARY):
        return ""
    root = os.path.dirname(package)
    for path in COMPILED:
        directory, name = os.path.split(os.path.join(root, path[: -len(".py")]))
        if not _has_extension(directory, name):
            return f"no compiled {path}"
    if os.path.exists(os.path.join(root, "setup.py")):  # a checkout, maybe an editable install
        try:
            with open(os.path.join(root, SOURCES_STAMP)) as stamp:
                built = stamp.read().strip()
        except OSError:
            built = ""
        if built != sources_digest(root):
            return "its sources changed since it was compiled"
    return None


def is_compiled() -> bool:
    """Whether the scheduler's hot modules run compiled in this process."""
    from cloudctl.scheduler import slottable

    return not slottable.__file__.endswith(".py")


def choose(package: str) -> None:
    """Make the compiled modules' sources importable in their place when they must not run."""
    reason = pure_reason(package)
    if reason is None:
        return
    if reason:
        import warnings

        warnings.warn(f"cloudctl: not using the compiled scheduler ({reason}); running pure "
                      "Python (rebuild with `.venv/bin/pip install -e .`)", RuntimeWarning,
                      stacklevel=3)
    for sub in {path.split("/")[1] for path in COMPILED}:
        directory = os.path.join(package, sub)
        sys.path_importer_cache[directory] = FileFinder(
            directory, (SourceFileLoader, SOURCE_SUFFIXES))
