"""Admission: accept or reject a request before any placement is tried."""

from __future__ import annotations

from collections.abc import Sequence

from cloudctl.scheduler.model import HostSpec, LeaseRequest
from cloudctl.scheduler.policy import Status, cluster_fit


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

