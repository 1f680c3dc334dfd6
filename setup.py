"""Compiles the scheduler's hot pure modules with mypyc; everything else is in pyproject.toml.

The compiled modules are the same source built to C: identical results, about twice as fast.
They are optional: with CLOUDCTL_PURE=1, without mypy, or when the C build fails, cloudctl
installs as pure Python (and CLOUDCTL_PURE=1 at run time ignores a compiled build).
"""

from __future__ import annotations

import importlib.util
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

_spec = importlib.util.spec_from_file_location("cloudctl_native", "cloudctl/_native.py")
assert _spec is not None and _spec.loader is not None
native = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(native)


class OptionalBuildExt(build_ext):
    """A failed C build leaves pure Python instead of failing the install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as err:  # any compiler failure means "stay pure"
            print(f"cloudctl: compiling with mypyc failed ({err}); installing pure Python",
                  file=sys.stderr)
            # Half a build is no build (cloudctl/_native.py refuses one too).
            for path in self.get_outputs():
                if os.path.exists(path):
                    os.remove(path)
            if os.path.exists(native.SOURCES_STAMP):
                os.remove(native.SOURCES_STAMP)


def ext_modules() -> list:  # type: ignore[type-arg]
    if os.environ.get("CLOUDCTL_PURE"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("cloudctl: mypy is not installed; installing pure Python", file=sys.stderr)
        return []
    try:
        # The group's library lands inside the package (cloudctl/_native__mypyc*.so): the
        # wheel still installs nothing at the top level.
        modules = mypycify(["--ignore-missing-imports", *native.COMPILED],
                           group_name="cloudctl._native", target_dir=os.path.join("build", "mypyc"))
    except (Exception, SystemExit) as err:  # mypy's type errors exit
        print(f"cloudctl: mypyc could not compile ({err}); installing pure Python",
              file=sys.stderr)
        return []
    with open(native.SOURCES_STAMP, "w") as stamp:
        stamp.write(native.sources_digest(".") + "\n")
    return modules


setup(ext_modules=ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
