"""The one way tests drive `cloudctl`: in process through typer's CliRunner (fast, the default),
or, where a test needs a separate process (to kill it, to run several at once, to see what a
real start-up does), as a `cloudctl` process, with the same calls and the same result fields.

`Cli` is a private cloud (store, config, node files in one directory) at a fixed clock; the
fixture `cli` is such a cloud with two test hosts. `invoke` and `run` drive commands that need
no cloud (`simulate`, `--version`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cloudctl.cli.app import app

T0 = "2026-11-23T13:00:00Z"
_SCRIPT = Path(sys.executable).with_name("cloudctl")
CLOUDCTL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "cloudctl"]
PYTHON_M_CLOUDCTL = [sys.executable, "-m", "cloudctl"]
_runner = CliRunner()


@dataclass
class Result:
    """A finished `cloudctl` process, with the fields of typer's in-process result."""

    exit_code: int
    stdout: str
    stderr: str


def environ(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a `cloudctl` process: this one's without any cloud's settings
    (CLOUDCTL_PURE, which build to run, is kept), plain output, and `env` over it."""
    full = {k: v for k, v in os.environ.items()
            if not k.startswith("CLOUDCTL_") or k == "CLOUDCTL_PURE"}
    return {**full, "NO_COLOR": "1", **(env or {})}


def invoke(*args: object, env: Mapping[str, str] | None = None) -> Any:
    """`cloudctl ARGS` in this process (`env` set while it runs); typer's result."""
    return _runner.invoke(app, [str(a) for a in args], env=env)


def run(*args: object, env: Mapping[str, str] | None = None,
        command: Sequence[str] = CLOUDCTL, cwd: Path | None = None,
        timeout: float = 120) -> Result:
    """`cloudctl ARGS` as a separate process (see `environ`)."""
    proc = subprocess.run([*command, *map(str, args)], env=environ(env), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


class Cli:
    """`cloudctl` against a private cloud in `tmp`, its clock at `now` (None: the real clock).
    Commands run in process unless `process`; with a `monkeypatch` the cloud's variables are
    also set for whatever the test calls directly."""

    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch | None = None, *,
                 now: str | int | None = T0, process: bool = False) -> None:
        self.tmp = tmp
        self.env = {"CLOUDCTL_DB": str(tmp / "state.db"),
                    "CLOUDCTL_CONFIG": str(tmp / "config.toml")}
        if now is not None:
            self.env["CLOUDCTL_NOW"] = str(now)
        self.monkeypatch = monkeypatch
        self.separate = process
        if monkeypatch is not None:
            for key, value in self.env.items():
                monkeypatch.setenv(key, value)

    def at(self, when: str | int) -> Cli:
        """Set the clock to `when` for every later command; this harness."""
        self.env["CLOUDCTL_NOW"] = str(when)
        if self.monkeypatch is not None:
            self.monkeypatch.setenv("CLOUDCTL_NOW", str(when))
        return self

    def copy(self, *, now: str | int) -> Cli:
        """Another harness on the same cloud, its clock at `now` (this one's stays)."""
        other = Cli(self.tmp, process=self.separate)
        other.env = {**self.env, "CLOUDCTL_NOW": str(now)}
        return other

    def __call__(self, *args: object, code: int | None = 0) -> Any:
        """Run a command; its result, whose exit code must be `code` (None: any)."""
        result = run(*args, env=self.env) if self.separate else invoke(*args, env=self.env)
        if code is not None:
            assert result.exit_code == code, (args, result.exit_code, result.stdout,
                                              result.stderr)
        return result

    def json(self, *args: object, code: int = 0) -> Any:
        """Run a command with `--json`; its parsed output."""
        return json.loads(self(*args, "--json", code=code).stdout)

    def process(self, *args: object) -> Result:
        """Run a command as a separate process, whatever this harness's mode; any exit code."""
        return run(*args, env=self.env, timeout=60)

    def environ(self) -> dict[str, str]:
        """The whole environment of a `cloudctl` process on this cloud, for a test that starts
        (and kills) its own."""
        return environ(self.env)


def two_host_cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """A cloud of two 4-CPU, 8 GiB test hosts, node-1 and node-2, at T0."""
    c = Cli(tmp_path, monkeypatch)
    c("init")
    c("host", "add", "node-1", "--cpus", 4, "--memory", 8192)
    c("host", "add", "node-2", "--cpus", 4, "--memory", 8192)
    return c


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """A cloud of two test hosts at T0, driven in process (see `two_host_cloud`)."""
    return two_host_cloud(tmp_path, monkeypatch)
