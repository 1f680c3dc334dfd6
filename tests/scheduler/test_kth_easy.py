"""EASY on the full KTH-SP2 log agrees with an independent count-based EASY simulator."""

from __future__ import annotations

import importlib.util

import pytest
from paths import REPO as ROOT
from paths import TRACES

from cloudctl.runtime import build_simulation
from cloudctl.scheduler.config import SchedulerConfig
from cloudctl.sim.simulator import simulate

pytestmark = pytest.mark.slow  # the whole KTH-SP2 log

KTH = TRACES / "kth" / "KTH-SP2-1996-2.1-cln.swf"


def reference(estimates: str) -> dict[str, float]:
    spec = importlib.util.spec_from_file_location("easy_reference",
                                                  ROOT / "bench" / "easy_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    jobs, nodes = module.load_swf(str(KTH), estimates)
    return module.easy(jobs, nodes)


@pytest.mark.parametrize("estimates", ["requested", "actual"])
def test_kth_easy_matches_the_textbook_algorithm(estimates: str) -> None:
    if not KTH.exists():
        pytest.skip(f"shared trace missing: {KTH}")
    requests, hosts, scheduler, trace = build_simulation(
        str(KTH), estimates=estimates, config=SchedulerConfig(backfilling=1))
    summary = simulate(requests, hosts, scheduler).summary()
    expected = reference(estimates)
    assert trace.skipped == 9
    assert summary["completed"] == 28_467
    assert summary["utilization"] == pytest.approx(expected["utilization"], abs=5e-4)
    assert summary["mean_wait_s"] == pytest.approx(expected["mean_wait_s"], rel=0.03)
    assert summary["mean_bounded_slowdown"] == pytest.approx(
        expected["mean_bounded_slowdown"], rel=0.05)
