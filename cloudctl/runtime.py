"""The composition root: the one place that assembles cloudctl for a mode of operation.

`build_real` gives a command its `App` (settings from the environment and config, the real
or a fixed clock, the store, real drivers); `build_simulation` wires a trace, simulated hosts
and the scheduler together, with the policies its config names (`cloudctl.policies.policy_set`);
`build_burster` the public clouds a simulation may burst to. Nothing else in the code base
branches on the mode. Imports are made inside each builder, so a listing command never loads
the scheduler.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from cloudctl.errors import InvalidInput

if TYPE_CHECKING:
    from cloudctl.app import App
    from cloudctl.scheduler.burst import Burster
    from cloudctl.scheduler.config import SchedulerConfig
    from cloudctl.scheduler.core import Scheduler
    from cloudctl.scheduler.model import HostSpec, LeaseRequest
    from cloudctl.sim.traces import Trace

DEFAULT_NODE_CPUS = 1
DEFAULT_NODE_MEMORY_MIB = 1024
# Traces never say how much disk a host has; disk is still checked, so give hosts room for
# any request until a --node-disk option exists.
HOST_DISK_MIB = 10**9


def clock_from(env: Mapping[str, str]) -> Callable[[], int]:
    """The real clock, or a fixed one from CLOUDCTL_NOW (ISO 8601 or Unix seconds) for
    demos and tests that step through time."""
    fixed = env.get("CLOUDCTL_NOW")
    if not fixed:
        return lambda: int(time.time())
    from cloudctl.timefmt import parse_time

    value = int(fixed) if fixed.lstrip("-").isdigit() else \
        parse_time(fixed, int(time.time()), option="CLOUDCTL_NOW")
    return lambda: value


def build_real(env: Mapping[str, str], db: str | None = None) -> App:
    """A command's cloud: settings from `env` and the config file (`db` overrides the
    store's path), the clock `env` asks for, real drivers opened when first used."""
    from cloudctl.app import App
    from cloudctl.config import load_settings

    return App(load_settings(env, db), clock_from(env))


def build_simulation(
    trace_path: str | os.PathLike[str],
    *,
    inject: str | os.PathLike[str] | None = None,
    nodes: int | None = None,
    node_cpus: int | None = None,
    node_memory: int | None = None,
    estimates: str = "requested",
    config: SchedulerConfig,
    burster: Burster | None = None,
) -> tuple[list[LeaseRequest], list[HostSpec], Scheduler, Trace]:
    """Load a trace (plus an injected one) and build hosts `node-1..node-N` and a scheduler.

    Host size comes from the options, else from the trace's header or <site>, else 1 CPU and
    1024 MiB. SWF jobs (which record no memory) each get one CPU's share of a host's memory.
    """
    from cloudctl.policies import policy_set
    from cloudctl.scheduler.core import Scheduler
    from cloudctl.scheduler.model import Capacity, HostSpec
    from cloudctl.sim.traces import load_trace, merge_traces

    name = os.fspath(trace_path)
    for option, value in (("--nodes", nodes), ("--node-cpus", node_cpus),
                          ("--node-memory", node_memory)):
        if value is not None and value <= 0:
            raise InvalidInput(f"{option} must be positive, got {value}")
    # Policies first: an unknown name should fail before a long trace is read.
    policies = policy_set(config)

    job_memory = max(1, (node_memory or DEFAULT_NODE_MEMORY_MIB) // (node_cpus or 1))
    trace = load_trace(name, estimates=estimates, memory_mib=job_memory)
    if inject is not None:
        injected = load_trace(inject, estimates=estimates, memory_mib=job_memory)
        trace = merge_traces(trace, injected)

    count = nodes or trace.nodes
    if count is None:
        raise InvalidInput(f"{name}: the trace does not say how many nodes; pass --nodes N")
    capacity = Capacity(
        cpus=node_cpus or trace.node_cpus or DEFAULT_NODE_CPUS,
        memory_mib=node_memory or trace.node_memory_mib or DEFAULT_NODE_MEMORY_MIB,
        disk_mib=HOST_DISK_MIB,
    )
    hosts = [HostSpec(f"node-{i}", capacity) for i in range(1, count + 1)]
    # The clock starts at the trace origin (second 0), or earlier if a request does.
    origin = min(0, min((r.submit for r in trace.requests), default=0))
    scheduler = Scheduler(hosts, config, policies, now=origin, burster=burster)
    return trace.requests, hosts, scheduler, trace


def build_burster(provider_files: Sequence[str | os.PathLike[str]], epoch: int = 0) -> Burster:
    """The public clouds described by provider files (`simulate --burst-provider`), each with
    the burst policy it names; budgets count calendar months from `epoch` (the Unix time of
    the simulation's second 0)."""
    from cloudctl.config import load_provider_file
    from cloudctl.policies import burst_policies
    from cloudctl.scheduler.burst import Burster, Ledger, calendar_month

    providers = [load_provider_file(os.fspath(path)) for path in provider_files]
    return Burster(providers, burst_policies(providers),
                   ledger=Ledger(calendar_month(epoch)))
