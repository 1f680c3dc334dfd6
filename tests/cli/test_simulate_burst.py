"""`cloudctl simulate --burst-provider`: what bursting would have cost on 30 days of SDSC Blue
Horizon with injected ARs, and how much best-effort waiting it saved (Armbrust et al.'s
'pay for the peak', measured)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_harness import invoke
from paths import REPO as ROOT
from paths import TRACES

pytestmark = pytest.mark.slow  # replays 30 days of Blue Horizon, twice per budget

BLUE = TRACES / "blue" / "30days.swf"
ARS = TRACES / "blue" / "injected-30days" / "work_10-dur_3h-size_2medium.lwf"


Run = tuple[dict, list[dict]]


@pytest.fixture(scope="module")
def blue(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Run]:
    """The simulation's summary and per-lease rows for a monthly budget (each budget and
    provider run once per module: a run replays the trace twice, with and without)."""
    done: dict[tuple[float, bool], Run] = {}

    def run(budget: float, partial: bool = False) -> Run:
        if (budget, partial) not in done:
            done[(budget, partial)] = _simulate(tmp_path_factory.mktemp("blue"), budget, partial)
        return done[(budget, partial)]

    return run


def _simulate(tmp_path: Path, budget: float, partial: bool) -> Run:
    provider = tmp_path / "ec2.toml"
    text = (ROOT / "examples" / "ec2-burst.toml").read_text()
    text = text.replace("budget_per_month = 500.0", f"budget_per_month = {budget}")
    if partial:
        text = text.replace("# partial = true ", "partial = true")
    provider.write_text(text)
    per_lease = tmp_path / "leases.jsonl"
    result = invoke(
        "simulate", str(BLUE), "--nodes", "144", "--inject", str(ARS), "--burst-provider",
        str(provider), "--per-lease", str(per_lease), "--json")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in per_lease.read_text().splitlines()]
    return json.loads(result.stdout), rows


def test_bursting_blue_shortens_waits_within_its_budget(blue: Callable[..., Run]) -> None:
    summary, rows = blue(500.0)
    burst = summary["burst"]
    alone = burst["without_bursting"]
    assert burst["bursts"] > 0 and 0 < burst["cost_usd"] <= 500
    assert summary["mean_wait_s"] < alone["mean_wait_s"] / 2
    assert summary["mean_bounded_slowdown"] < alone["mean_bounded_slowdown"]
    assert burst["mean_wait_saved_s"] == round(alone["mean_wait_s"] - summary["mean_wait_s"], 3)
    assert summary["completed"] == alone["completed"] == summary["leases"]
    # every burst lease is in the per-lease records, with its price; they add up
    burst_rows = [r for r in rows if r["burst"]]
    assert len(burst_rows) == burst["bursts"]
    assert round(sum(r["burst"]["cost"] for r in burst_rows), 2) == burst["cost_usd"]
    assert all(r["hosts"] == [] and r["runs"][0]["hosts"] == [] for r in burst_rows)
    assert max(months(rows).values()) <= 500


def months(rows: list[dict]) -> dict[str, float]:
    """Burst spend per calendar month of launch (the trace starts on 1970-01-01 and runs
    into February: each month has its own budget)."""
    import time

    out: dict[str, float] = {}
    for r in rows:
        if r["burst"]:
            key = time.strftime("%Y-%m", time.gmtime(r["burst"]["start"]))
            out[key] = out.get(key, 0.0) + r["burst"]["cost"]
    return out


def test_a_smaller_budget_buys_less_and_says_why(blue: Callable[..., Run]) -> None:
    rich, _ = blue(500.0)
    poor, rows = blue(20.0)
    spent = months(rows)
    assert len(spent) == 2 and max(spent.values()) <= 20 + 1e-6
    assert poor["burst"]["bursts"] < rich["burst"]["bursts"]
    assert poor["burst"]["refused"]["budget"] > 0
    assert rich["mean_wait_s"] < poor["mean_wait_s"] < poor["burst"]["without_bursting"][
        "mean_wait_s"]


def test_bursting_in_part_buys_more_leases_with_the_same_money(
        blue: Callable[..., Run]) -> None:
    whole, _ = blue(20.0)
    part, rows = blue(20.0, partial=True)
    assert max(months(rows).values()) <= 20 + 1e-6
    assert 0 < part["burst"]["partial"] < part["burst"]["bursts"]
    assert whole["burst"]["partial"] == 0
    assert part["burst"]["bursts"] > whole["burst"]["bursts"]
    # a partial burst's local nodes show in its hosts; the rest are the cloud's instances
    split = [r for r in rows if r["burst"] and r["hosts"]]
    assert len(split) == part["burst"]["partial"]
    assert all(len(r["hosts"]) + r["burst"]["nodes"] == r["nodes"] for r in split)
    # with money to spare, bursting in part rents fewer instance-hours for less
    rich_whole, _ = blue(500.0)
    rich_part, _ = blue(500.0, partial=True)
    assert rich_part["burst"]["cost_usd"] < rich_whole["burst"]["cost_usd"]
    assert rich_part["burst"]["instance_hours"] < rich_whole["burst"]["instance_hours"]
