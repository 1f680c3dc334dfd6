"""Admission: accept or reject a request before any placement is tried."""

from __future__ import annotations

from collections.abc import Sequence

from cloudctl.policies.base import Status

from cloudctl.scheduler.model import HostSpec, LeaseRequest
from cloudctl.scheduler.slottable import vnodes_fitting


class AcceptAll:
    """Accept anything the cluster could ever hold (the scheduler always checks that)."""

    name = "accept-all"

    def admit(self, request: LeaseRequest, hosts: Sequence[HostSpec]) -> Status:
        return Status.success(self.name)


class FitsCluster:
    """Reject a request that could not run even on an empty cluster."""

    name = "fits-cluster"

    def admit(self, request: LeaseRequest, hosts: Sequence[HostSpec]) -> Status:
        return cluster_fit(request, hosts, self.name)


def cluster_fit(request: LeaseRequest, hosts: Sequence[HostSpec], policy: str = "") -> Status:
    # Disabled hosts count: they may come back, and a lease waiting for them is not absurd
    # (one that cannot be placed now is refused by placement, with the host's reason).
    need = request.capacity
    room = sum(
        vnodes_fitting(h.capacity.cpus, h.capacity.memory_mib, h.capacity.disk_mib, need)
        for h in hosts
    )
    if room >= request.nodes:
        return Status.success(policy)
    largest = max((h.capacity for h in hosts), default=None,
                  key=lambda c: (c.cpus, c.memory_mib))
    detail = (
        f"{request.nodes} nodes of {need.cpus} CPU/{need.memory_mib} MiB/{need.disk_mib} MiB disk;"
        f" the cluster holds at most {room}"
    )
    if largest is not None and room == 0:
        detail += (f" (largest host: {largest.cpus} CPU/{largest.memory_mib} MiB/"
                   f"{largest.disk_mib} MiB disk)")
    return Status.unresolvable(f"larger than the cluster: {detail}", policy)
