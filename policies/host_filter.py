"""Host filters: which hosts a lease may use at all."""

from __future__ import annotations

from collections.abc import Sequence

from cloudctl.scheduler.lease import Lease
from cloudctl.scheduler.model import HostSpec
from cloudctl.scheduler.policy import Status


class EnabledHosts:
    """Any enabled host (the slot table already skips disabled ones)."""

    name = "enabled"

    def allowed(self, lease: Lease, hosts: Sequence[HostSpec]) -> set[int] | None:
        return None

    def explain(self, lease: Lease, host: HostSpec) -> Status:
        if not host.enabled:
            return Status.unschedulable(f"disabled: {host.name}", self.name)
        return Status.success(self.name)
