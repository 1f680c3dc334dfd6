"""The house's import structure: the CLI on top, the app rooms below it, then enactment, the
policies and the simulator, then the scheduler, the store and the drivers, with the domain
vocabulary at the bottom, and no import running back up. Read from the sources (every import,
also those made inside functions or only for type checking), so a shortcut fails here first.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from paths import REPO as ROOT

# Where each installed package's sources are (pyproject.toml's package-dir).
SOURCES = {"cloudctl": ROOT / "cloudctl", "cloudctl.drivers": ROOT / "drivers",
           "cloudctl.policies": ROOT / "policies"}

# Higher imports lower (or its own level); never the other way. Longest prefix wins.
LEVELS: dict[str, int] = {
    "cloudctl.cli": 7, "cloudctl.__main__": 7,
    "cloudctl.runtime": 6,  # the composition root
    "cloudctl.app": 5,
    "cloudctl.session": 4, "cloudctl.persist": 4, "cloudctl.enact": 4, "cloudctl.clouds": 4,
    "cloudctl.policies": 4, "cloudctl.sim": 4, "cloudctl.config": 4,
    "cloudctl.scheduler": 3, "cloudctl.views": 3,
    "cloudctl.store": 2, "cloudctl.drivers": 2, "cloudctl.plugins": 2,
    "cloudctl": 1,  # the package itself, domain, errors, timefmt, _native
}
# Not a layer: chooses between the compiled and the pure build, so it looks at the scheduler.
OUTSIDE = {"cloudctl._native"}
# The scheduler is pure: it sees only itself and the domain's vocabulary.
SCHEDULER_MAY_IMPORT = ("cloudctl.scheduler", "cloudctl.domain", "cloudctl.errors")
# The CLI reaches the store, the drivers and enactment only through the app rooms.
CLI_MAY_NOT_IMPORT = ("cloudctl.store", "cloudctl.drivers", "cloudctl.session",
                      "cloudctl.persist", "cloudctl.enact", "cloudctl.clouds")


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def level(name: str) -> int:
    best = max((p for p in LEVELS if _within(name, p)), key=len)
    return LEVELS[best]


def modules() -> Iterator[tuple[str, Path]]:
    for package, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join([package, *parts])
            if package == "cloudctl" and parts and parts[0] in ("drivers", "policies"):
                continue  # not a source folder of cloudctl's own
            if name not in OUTSIDE:
                yield name, path


def imports(name: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every cloudctl module that `name` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found = [base]
        else:
            continue
        for module in found:
            if _within(module, "cloudctl"):
                yield node.lineno, module


ALL = list(modules())


def test_the_sources_are_found() -> None:
    names = {name for name, _ in ALL}
    assert {"cloudctl.scheduler.core", "cloudctl.app.leases", "cloudctl.cli.lease",
            "cloudctl.store.db", "cloudctl.drivers.libvirt", "cloudctl.policies.preemption",
            "cloudctl.domain"} <= names


@pytest.mark.parametrize(("name", "path"), ALL, ids=[name for name, _ in ALL])
def test_no_import_runs_back_up(name: str, path: Path) -> None:
    upward = [f"{path.relative_to(ROOT)}:{line} imports {module}"
              for line, module in imports(name, path) if level(module) > level(name)]
    assert not upward, "\n".join(upward)


def test_the_scheduler_imports_only_itself_and_the_domain() -> None:
    found = [f"{path.relative_to(ROOT)}:{line} imports {module}"
             for name, path in ALL if _within(name, "cloudctl.scheduler")
             for line, module in imports(name, path)
             if not any(_within(module, allowed) for allowed in SCHEDULER_MAY_IMPORT)]
    assert not found, "\n".join(found)


def test_the_cli_goes_through_the_app() -> None:
    found = [f"{path.relative_to(ROOT)}:{line} imports {module}"
             for name, path in ALL if _within(name, "cloudctl.cli")
             for line, module in imports(name, path)
             if any(_within(module, banned) for banned in CLI_MAY_NOT_IMPORT)]
    assert not found, "\n".join(found)


def test_a_shortcut_is_caught() -> None:
    """The checks above can fail: an upward import and a scheduler import of a policy."""
    assert level("cloudctl.app.leases") > level("cloudctl.session") > level("cloudctl.store.db")
    assert level("cloudctl.cli.lease") > level("cloudctl.runtime") > level("cloudctl.app")
    assert level("cloudctl.domain") < level("cloudctl.scheduler.core")
    assert not any(_within("cloudctl.policies.base", a) for a in SCHEDULER_MAY_IMPORT)
