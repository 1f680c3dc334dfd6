"""Each of Haizea 1.0's behaviours that cloudctl's default does not follow, measured both ways.

    .venv/bin/python bench/defaults.py            # the README's table (markdown)
    .venv/bin/python bench/defaults.py --json

For every option the `haizea-1.0` profile sets differently from cloudctl's default, the same
workloads are replayed with cloudctl's value and with Haizea's, everything else at cloudctl's
defaults: 30 days of SDSC Blue Horizon (144 nodes) with three of its injected AR sets, the
`multi` traces (4 nodes; with and without premature ends, with and without inj1's ARs), and
the KTH-SP2 log (100 nodes, EASY, user estimates); ARs preempt best-effort leases everywhere
(cloudctl's default). Figures are means over the runs of a workload: best-effort wait and
bounded slowdown, ARs rejected, suspended VM-hours.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cloudctl import runtime  # noqa: E402
from cloudctl.scheduler.config import PROFILES, SchedulerConfig  # noqa: E402
from cloudctl.sim.simulator import simulate  # noqa: E402

TRACES = ROOT.parent / "shared" / "traces"
BLUE = TRACES / "blue"
MULTI = TRACES / "haizea" / "multi"

# (workload, [(trace, inject, nodes, extra options)])
WORKLOADS: list[tuple[str, list[tuple[Path, Path | None, int | None, dict[str, Any]]]]] = [
    ("Blue 30 d + ARs (3 sets)", [
        (BLUE / "30days.swf", BLUE / "injected-30days" / name, 144, {})
        for name in ("work_10-dur_3h-size_2medium.lwf", "work_20-dur_2h-size_3large.lwf",
                     "work_05-dur_1h-size_1small.lwf")]),
    ("multi + inj1 (2)", [
        (MULTI / trace, MULTI / "inj1.lwf", 4, {"suspend_rate": 50.0, "resume_rate": 50.0})
        for trace in ("withprematureend.lwf", "withoutprematureend.lwf")]),
    ("multi, no ARs (2)", [
        (MULTI / trace, None, 4, {"suspend_rate": 50.0, "resume_rate": 50.0})
        for trace in ("withprematureend.lwf", "withoutprematureend.lwf")]),
    ("KTH-SP2, EASY", [(TRACES / "kth" / "KTH-SP2-1996-2.1-cln.swf", None, None, {})]),
]

# What each option means, for the table; options that need migration get it turned on.
OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "requeue": ("cancel and requeue a preempted lease when the AR is accepted (Q2)",
                {"suspension": "none"}),
    "migration_allowance": ("wait a migration's time even when resuming in place (Q10)",
                            {"migration": True}),
    "early_migration": ("memory image moved when the destination frees (late), not at once",
                        {"migration": True}),
    "preemption_policy": ("ARs preempt the oldest BE lease first (Q1)", {}),
    "threshold_estimate": ("threshold from Haizea's per-lease suspend/resume overestimate", {}),
    "requeue_order": ("a lease queued again goes behind those of its submit time", {}),
    "reserved_until": ("a future reservation counts until its VMs run", {}),
    "replan_after_preemption": ("no re-plan of future reservations after a preemption", {}),
    "host_ties": ("greedy host ties broken by host index", {}),
    "reprieve": ("no reprieve of victims the AR turns out not to need", {}),
    "split": ("split BE leases around any future reservation (Q14)", {}),
}
HAIZEA_VALUE = {**PROFILES["haizea-1.0"], "early_migration": False}


def one_run(trace: Path, inject: Path | None, nodes: int | None,
            options: dict[str, Any]) -> dict[str, Any]:
    config = SchedulerConfig().with_options(**options)
    requests, hosts, scheduler, _ = runtime.build_simulation(
        trace, inject=inject, nodes=nodes, config=config)
    return simulate(requests, hosts, scheduler).summary()


def measure(option: str, extra: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for workload, runs in WORKLOADS:
        both = {}
        for side, value in (("cloudctl", getattr(SchedulerConfig(), option)),
                            ("haizea", HAIZEA_VALUE[option])):
            summaries = []
            for trace, inject, nodes, options in runs:
                opts = {**options, **extra, option: value}
                summaries.append(one_run(trace, inject, nodes, opts))
            both[side] = {
                "wait": statistics.mean(float(s["mean_wait_s"]) for s in summaries),
                "bsld": statistics.mean(float(s["mean_bounded_slowdown"]) for s in summaries),
                "ar_rejected": statistics.mean(int(s["ar_rejected"]) for s in summaries),
                "suspended_vm_h": statistics.mean(float(s["suspended_vm_hours"])
                                                  for s in summaries),
            }
        rows.append({"option": option, "workload": workload, **both})
    return rows


def fmt(a: float, b: float, digits: int = 0) -> str:
    if a == b:
        return f"{a:,.{digits}f} (same)"
    return f"{a:,.{digits}f} → {b:,.{digits}f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", default="", help="options whose name contains this")
    args = parser.parse_args()
    options = [o for o in OPTIONS if args.only in o]
    if args.json:
        print(json.dumps([r for o in options for r in measure(o, OPTIONS[o][1])], indent=2))
        return 0
    print("| Haizea's behaviour (option: cloudctl → haizea-1.0) | workload | mean wait (s) | "
          "bounded slowdown | ARs rejected | suspended VM-h |")
    print("|---|---|---|---|---|---|", flush=True)
    for r in (r for o in options for r in measure(o, OPTIONS[o][1])):
        option = r["option"]
        label, _ = OPTIONS[option]
        name = option.replace("_", "-")
        c, h = r["cloudctl"], r["haizea"]
        print(f"| {label} (`{name}`: {getattr(SchedulerConfig(), option)} → "
              f"{HAIZEA_VALUE[option]}) | {r['workload']} | {fmt(c['wait'], h['wait'])} | "
              f"{fmt(c['bsld'], h['bsld'], 2)} | {fmt(c['ar_rejected'], h['ar_rejected'], 1)} | "
              f"{fmt(c['suspended_vm_h'], h['suspended_vm_h'], 1)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
