"""The wheel ships drivers/ and policies/ inside cloudctl, and nothing at the top level."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from paths import REPO as ROOT

pytestmark = pytest.mark.slow  # builds a wheel



def test_wheel_has_only_the_cloudctl_namespace(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("cloudctl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.startswith("cloudctl-")}
    assert tops == {"cloudctl"}
    assert "cloudctl/policies/preemption.py" in names
    assert "cloudctl/drivers/__init__.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[cloudctl.policies.preemption]" in text
    assert "ar-preempts-be = cloudctl.policies.preemption:ARPreemptsBE" in text
    assert "cloudctl = cloudctl.cli.entry:main" in text
