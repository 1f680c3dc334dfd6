"""Bursting: whether a lease the private cloud cannot serve in time goes to a public cloud,
on which instance type, and whether the provider's monthly budget allows it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloudctl.scheduler.policy import Status

if TYPE_CHECKING:
    from cloudctl.scheduler.burst import BurstPlan, Ledger, Provider
    from cloudctl.scheduler.lease import Lease


class CheapestFit:
    """Burst when the provider's triggers say so (an IM lease with no local room, a BE lease
    past its longest wait, an AR that would preempt more than allowed), on the cheapest
    instance type that holds one virtual node, if the nodes' cost fits this month's budget
    and the provider's instance limit."""

    name = "cheapest-fit"

    def plan(self, lease: Lease, trigger: str, provider: Provider, start: int, now: int,
             ledger: Ledger, nodes: int) -> BurstPlan | Status:
        """`nodes` of the lease's virtual nodes on `provider` (all of them, or the part local
        hosts have no room for)."""
        from cloudctl.scheduler.burst import BurstPlan

        p = provider.name
        if trigger == "im" and not provider.burst_im:
            return Status.unschedulable(f"{p}: does not take immediate leases", self.name)
        if trigger == "ar" and provider.max_preemptions is None:
            return Status.unschedulable(f"{p}: does not take advance reservations", self.name)
        if trigger == "be" and provider.max_wait is None:
            return Status.unschedulable(f"{p}: does not take best-effort leases", self.name)
        if (provider.ami is not None or provider.images) and not provider.ami_for(lease.image):
            return Status.unresolvable(
                f"no-image: {p} has no AMI for image {lease.image or '(none)'}", self.name)
        need = lease.need
        kind = provider.cheapest(need)
        if kind is None:
            return Status.unresolvable(
                f"no-instance-type: {p} has no type with {need.cpus} vCPU and "
                f"{need.memory_mib} MiB", self.name)
        limit = provider.max_instances
        running = ledger.running[p]
        if limit is not None and running + nodes > limit:
            return Status.unschedulable(
                f"instance-limit: {p} runs {running} of {limit} instances, the lease needs "
                f"{nodes}", self.name)
        launch, run_start, end = provider.timing(trigger, start, now, lease)
        cost = provider.cost(kind, nodes, end - launch)
        budget = provider.budget_per_month
        if budget is not None:
            spent = ledger.committed(p, launch)
            if spent + cost > budget + 1e-9:
                return Status.unschedulable(
                    f"budget: {p} has ${budget - spent:.2f} of ${budget:.2f} left for "
                    f"{ledger.period(launch)}, the lease would cost ${cost:.2f}", self.name)
        return BurstPlan(p, kind.name, kind.price_per_hour, nodes, launch, run_start, end,
                         cost, trigger)


class Never:
    """Never burst (bursting switched off without removing the providers)."""

    name = "never"

    def plan(self, lease: Lease, trigger: str, provider: Provider, start: int, now: int,
             ledger: Ledger, nodes: int) -> Status:
        return Status.unschedulable(f"{provider.name}: the burst policy is 'never'", self.name)
