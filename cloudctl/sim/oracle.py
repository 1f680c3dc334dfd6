"""Haizea 1.0's recorded runs (`../shared/haizea-oracle/`) replayed through cloudctl.

A run file names its workload and gives Haizea's effective configuration; `config_for` turns
that into a `SchedulerConfig`, `replay` runs it, and `compare` lists every lease whose final
state, first start or end differs from Haizea's, to the second.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cloudctl.scheduler.config import SchedulerConfig
from cloudctl.scheduler.core import Listener
from cloudctl.scheduler.lease import Lease
from cloudctl.scheduler.model import LeaseState
from cloudctl.sim.simulator import SimulationResult

_BACKFILLING = {"aggressive": "easy", "conservative": "conservative", "off": "off"}
_PREEMPTION = {"ar-preempts-everything": "ar-preempts-be", "no-preemption": "no-preemption"}
_STATES = {"Done": "done", "Rejected": "rejected", "Cancelled": "cancelled", "Fail": "fail"}


def _seconds(value: object) -> int:
    """Haizea's TimeDelta options read '<n> s'."""
    return int(str(value).split()[0]) if value is not None else 0


def _optional(value: object) -> int | None:
    return None if value is None else _seconds(value)


def config_for(run: Mapping[str, Any], profile: str = "haizea-1.0") -> SchedulerConfig:
    """The cloudctl configuration equivalent to a recorded run's, under `profile`."""
    cfg = run["effective_config"]
    sched = {k.split(".", 1)[1]: v for k, v in cfg.items() if k.startswith("scheduling.")}
    managed = cfg.get("general.lease-preparation") == "imagetransfer"
    return SchedulerConfig().with_options(
        profile=profile,
        backfilling=_BACKFILLING[sched["backfilling"]],
        suspension=sched["suspension"],
        suspend_rate=float(sched["suspend-rate"]),
        resume_rate=float(sched["resume-rate"]),
        override_suspend_time=_optional(sched.get("override-suspend-time")),
        override_resume_time=_optional(sched.get("override-resume-time")),
        suspend_exclusion=sched["suspendresume-exclusion"],
        enactment_overhead=_seconds(sched["enactment-overhead"]),
        shutdown_time=_seconds(sched["shutdown-time"]),
        migration=sched["migration"] == "yes",
        threshold_factor=float(sched["scheduling-threshold-factor"]),
        preemption_policy=_PREEMPTION[sched["policy-preemption"]]
        if sched["policy-preemption"] == "no-preemption" else None,
        image_transfer=(cfg.get("deploy-imagetransfer.transfer-mechanism", "multicast")
                        if managed else "none"),
        bandwidth=float(cfg.get("simulation.imagetransfer-bandwidth", 100)),
        image_cache=cfg.get("deploy-imagetransfer.diskimage-reuse") == "image-caches",
    )


def workload_paths(run: Mapping[str, Any], traces: Path) -> tuple[Path, Path | None]:
    """(trace, injection file or None) of a recorded run, under `traces` (shared/traces)."""
    info = run["run"]
    haizea = traces / "haizea"
    if run["category"] == "tests":
        return haizea / "scenarios" / info["workload"], None
    if run["category"] == "multi":
        inject = info.get("injectionfile")
        return (haizea / "multi" / info["tracefile"],
                haizea / "multi" / inject if inject else None)
    raise ValueError(f"{run['name']}: category {run['category']!r} is not replayed here")


def replay(run: Mapping[str, Any], traces: Path, profile: str = "haizea-1.0",
           dict_order: bool = False, **options: Any) -> SimulationResult:
    """Replay a recorded run's workload with its configuration under `profile`; with
    `dict_order`, leases queued in one step are queued in the order Haizea queued them (Q8)."""
    from cloudctl import runtime
    from cloudctl.sim.simulator import simulate

    config = config_for(run, profile).with_options(**options)
    trace, inject = workload_paths(run, traces)
    nodes = len(run["site"])
    requests, hosts, scheduler, _ = runtime.build_simulation(
        trace, inject=inject, nodes=nodes, node_cpus=1, node_memory=1024, config=config)
    if dict_order:
        scheduler.listener = _queued_as_haizea(run)
    return simulate(requests, hosts, scheduler)


def _queued_as_haizea(run: Mapping[str, Any]) -> Listener:
    """A listener that gives leases queued in one step Haizea's order (Q8: its CPython-2 dict
    order, which the run records), by swapping their queue keys among them."""
    rank: dict[int, int] = {}
    for case in run["summary"].get("same_step_BE_enqueue_not_in_id_order") or []:
        order = case["enqueue_order"]
        rank.update(zip(order, sorted(order), strict=True))

    def listen(lease: Lease, old: LeaseState, new: LeaseState, now: int, reason: str) -> None:
        if new is LeaseState.PENDING and lease.id in rank:
            lease.queue_key = (lease.submit, rank[lease.id])

    return listen


def haizea_leases(run: Mapping[str, Any]) -> dict[int, tuple[str, int | None, int | None]]:
    """Lease id -> (final state, first start, end) as Haizea recorded them. The first start is
    the first VM run's: Haizea's own `actual_start` is overwritten by a restart (Q2)."""
    out = {}
    for lease in run["leases"]:
        runs = lease["vm_runs"]
        first = runs[0]["start_s"] if runs else lease["actual_start_s"]
        out[lease["id"]] = (_STATES[lease["final_state"]], first, lease["end_s"])
    return out


def cloudctl_leases(result: SimulationResult) -> dict[int, tuple[str, int | None, int | None]]:
    return {lease.id: (lease.state.value, lease.first_start, lease.done_at)
            for lease in result.leases}


def compare(run: Mapping[str, Any], result: SimulationResult) -> list[str]:
    """One line per lease whose final state, first start or end differs from Haizea's."""
    theirs = haizea_leases(run)
    ours = cloudctl_leases(result)
    out = []
    for lease_id in sorted(set(theirs) | set(ours)):
        a, b = theirs.get(lease_id), ours.get(lease_id)
        if a != b:
            out.append(f"lease {lease_id}: haizea {a}, cloudctl {b}")
    return out


def load_run(path: str | os.PathLike[str]) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data
