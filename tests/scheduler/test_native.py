"""The scheduler's compiled build (setup.py, mypyc) and its pure sources agree, and a compiled
build whose sources changed is never used."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest
from paths import REPO as ROOT
from paths import TESTS

from cloudctl import _native

pytestmark = pytest.mark.slow  # subprocesses, one of them a pytest run

HERE = Path(__file__).resolve().parent

# Random workloads with ARs, IMs, early ends and suspension: prints their schedules.
SCENARIO = f"""
import json, sys
sys.path[:0] = [{str(TESTS)!r}, {str(HERE)!r}]
from conftest import hosts
from test_scheduler_shortcuts import replay, workload
from cloudctl import _native
schedules = [replay(workload(seed), hosts(6, cpus=2, memory=2048), backfilling=b)
             for seed, b in ((0, 1), (1, 3), (2, 0))]
print(json.dumps({{"compiled": _native.is_compiled(), "schedules": schedules}}, default=str))
"""


def run_scenario(pure: bool) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "CLOUDCTL_PURE"}
    if pure:
        env["CLOUDCTL_PURE"] = "1"
    out = subprocess.run([sys.executable, "-c", SCENARIO], env=env, capture_output=True,
                         text=True, check=True, timeout=120)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_pure_and_compiled_builds_schedule_alike() -> None:
    pure, default = run_scenario(True), run_scenario(False)
    assert pure["compiled"] is False
    assert default["compiled"] is _native.is_compiled()
    assert pure["schedules"] == default["schedules"]


@pytest.mark.skipif(not _native.is_compiled(), reason="pure build: ran in this session")
def test_shortcut_tests_pass_on_the_pure_build() -> None:
    """test_scheduler_shortcuts patches scheduler classes, which compiled classes ignore."""
    env = dict(os.environ, CLOUDCTL_PURE="1")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(HERE / "test_scheduler_shortcuts.py")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert " skipped" not in result.stdout.splitlines()[-1]


@pytest.mark.skipif(bool(os.environ.get("CLOUDCTL_PURE")) or shutil.which("cc") is None,
                    reason="pure build asked for, or no C compiler")
def test_this_checkout_runs_compiled() -> None:
    assert _native.is_compiled(), "rebuild with `.venv/bin/pip install -e .`"


def fake_checkout(tmp_path: Path) -> Path:
    """A checkout with a (dummy) compiled build of the current sources."""
    package = tmp_path / "cloudctl"
    suffix = EXTENSION_SUFFIXES[0]
    (tmp_path / "setup.py").write_text("")
    for path in _native.COMPILED:
        source = tmp_path / path
        source.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, source)
        source.with_name(source.stem + suffix).write_bytes(b"")
    (package / (_native.LIBRARY + suffix)).write_bytes(b"")
    stamp = tmp_path / _native.SOURCES_STAMP
    stamp.parent.mkdir(parents=True)
    stamp.write_text(_native.sources_digest(str(tmp_path)) + "\n")
    return package


def test_compiled_build_is_used_only_while_its_sources_are_unchanged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUDCTL_PURE", raising=False)
    package = fake_checkout(tmp_path)
    assert _native.pure_reason(str(package)) is None
    with (tmp_path / _native.COMPILED[0]).open("a") as source:
        source.write("# an edit\n")
    assert "changed" in (_native.pure_reason(str(package)) or "")
    monkeypatch.setenv("CLOUDCTL_PURE", "1")
    assert _native.pure_reason(str(package)) == ""


def test_incomplete_build_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUDCTL_PURE", raising=False)
    package = fake_checkout(tmp_path)
    for so in package.glob("scheduler/core*" + EXTENSION_SUFFIXES[0]):
        so.unlink()
    assert "no compiled cloudctl/scheduler/core.py" == _native.pure_reason(str(package))
