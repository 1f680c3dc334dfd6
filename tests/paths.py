"""Where tests find the repository and the shared traces, from whichever folder they run."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The traces and references shared by the project's checkouts, beside the repository.
SHARED = REPO.parent / "shared"
TRACES = SHARED / "traces"
SCENARIOS = TRACES / "haizea" / "scenarios"
TESTS = REPO / "tests"
