"""The plan: what the schedule wants of each of a lease's VMs now, read by enactment.

One answer per virtual node: where it should be (a host index, or a public cloud) and in
which state (running, suspended, gone). It is worked out here, from the lease's current run
and the phases of it already carried out, so that nothing above the scheduler has to work
out again what a lease state means for its VMs.
"""

from __future__ import annotations

from cloudctl.domain import (
    RUNNING_STATES,
    STEP_RAN,
    SUSPENDED_STATES,
    LeaseState,
    VMStatus,
)
from cloudctl.scheduler.lease import Lease


class VMPlan:
    """Virtual node `node` of a lease: `want` on host index `host` (None: no host, e.g. it
    runs on public cloud `cloud`, or is to be gone)."""

    __slots__ = ("node", "host", "cloud", "want")

    def __init__(self, node: int, host: int | None, cloud: str | None, want: VMStatus) -> None:
        self.node = node
        self.host = host
        self.cloud = cloud
        self.want = want

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VMPlan) and (self.node, self.host, self.cloud, self.want) == (
            other.node, other.host, other.cloud, other.want)

    def __repr__(self) -> str:
        where = self.cloud if self.cloud is not None else self.host
        return f"VMPlan(node {self.node}: {self.want.value} on {where})"


def vm_plans(lease: Lease) -> list[VMPlan]:
    """What the schedule wants of each of `lease`'s VMs now."""
    run = lease.run
    state = lease.state
    hosts: tuple[int, ...] = ()
    burst = lease.burst
    # A burst lease's last `burst.nodes` nodes run on the cloud, the others (if any) here.
    home = lease.nodes - burst.nodes if burst is not None else lease.nodes
    if burst is not None and state is LeaseState.PREPARING and run is not None:
        want = VMStatus.RUNNING  # launched: it boots
        hosts = run.hosts
    elif state in RUNNING_STATES and run is not None:
        want = VMStatus.GONE if run.step >= STEP_RAN else VMStatus.RUNNING
        hosts = run.hosts
    elif state in SUSPENDED_STATES:
        want = VMStatus.SUSPENDED
        hosts = run.hosts if run is not None else lease.last_hosts
    else:
        want = VMStatus.GONE
    return [VMPlan(node, hosts[node] if node < len(hosts) else None,
                   burst.provider if burst is not None and node >= home else None, want)
            for node in range(lease.nodes)]
