"""The composition root: the one place that assembles cloudctl for a mode of operation.

`build_simulation` wires a trace, simulated hosts and the scheduler together, with the
policies its config names (`cloudctl.policies.policy_set`); `build_burster` the public clouds
a simulation may burst to. `build_real` will join them for real drivers. Nothing else in the
code base branches on the mode.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cloudctl.errors import InvalidInput
from cloudctl.policies import burst_policies, policy_set
from cloudctl.scheduler.burst import Burster, Ledger, calendar_month
from cloudctl.scheduler.config import SchedulerConfig
from cloudctl.scheduler.core import Scheduler
from cloudctl.scheduler.model import Capacity, HostSpec, LeaseRequest
from cloudctl.sim.traces import Trace, load_trace, merge_traces

DEFAULT_NODE_CPUS = 1
DEFAULT_NODE_MEMORY_MIB = 1024
# Traces never say how much disk a host has; disk is still checked, so give hosts room for
# any request until a --node-disk option exists.
HOST_DISK_MIB = 10**9


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

    providers = [load_provider_file(os.fspath(path)) for path in provider_files]
    return Burster(providers, burst_policies(providers),
                   ledger=Ledger(calendar_month(epoch)))
