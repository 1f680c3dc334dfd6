"""Bursting to a public cloud, as the scheduler plans it: providers, their price lists, the
spend ledger and the plan a burst lease carries.

Pure like the rest of the scheduler: no cloud library, no clock. A provider is a last-resort
pool with a price (OpenNebula modelled an EC2 region as a host); the burst policy
(`cloudctl.policies.burst`) decides when a lease goes there and on which instance type, and
the enactment layer (or the simulator) carries the plan out.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from cloudctl.errors import InvalidInput
from cloudctl.scheduler.model import Capacity

if TYPE_CHECKING:
    from cloudctl.scheduler.policy import BurstPolicy

MONTH_S = 30 * 86400
TRIGGERS = ("im", "be", "ar")


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_mib: int
    price_per_hour: float  # USD

    def fits(self, need: Capacity) -> bool:
        return need.cpus <= self.vcpus and need.memory_mib <= self.memory_mib


@dataclass(frozen=True)
class Provider:
    """A cloud the scheduler may burst to, and the limits it bursts under."""

    name: str
    catalogue: tuple[InstanceType, ...]
    budget_per_month: float | None = None  # USD; None: no limit
    boot_time: int = 0  # s from launch until the instance runs
    # When to burst: an IM lease with no local room (`im`); a BE lease that would wait
    # longer than max_wait (`be`, None: never); an AR that needs more than max_preemptions
    # victims or finds no room (`ar`, None: never).
    max_wait: int | None = None
    max_preemptions: int | None = None
    burst_im: bool = True
    max_instances: int | None = None  # at once
    # A multi-node lease may run partly here: the nodes local hosts have room for stay
    # home, the rest burst (cheaper than bursting them all).
    partial: bool = False
    min_billed_s: int = 60  # per instance, as EC2 bills Linux instances per second
    policy: str = "cheapest-fit"
    # For the real cloud: where and what to launch (never credentials).
    type: str = "ec2"
    region: str = ""
    endpoint: str | None = None
    profile: str | None = None
    ami: str | None = None
    images: Mapping[str, str] = field(default_factory=dict)  # local image -> AMI

    def cheapest(self, need: Capacity) -> InstanceType | None:
        """The cheapest instance type one virtual node fits in (ties: fewer vCPUs, less
        memory, then name, so the choice is reproducible)."""
        fitting = [t for t in self.catalogue if t.fits(need)]
        if not fitting:
            return None
        return min(fitting, key=lambda t: (t.price_per_hour, t.vcpus, t.memory_mib, t.name))

    def timing(self, trigger: str, start: int, now: int, lease: Any) -> tuple[int, int, int]:
        """(launch, running, end) of instances for `lease` from `start`: an AR runs its whole
        window, launched a boot time ahead; any other lease runs what it has left as soon as
        its instances have booted."""
        if trigger == "ar":
            run_start, length = start, lease.duration
        else:
            run_start, length = max(start, now + self.boot_time), lease.remaining
        return max(now, run_start - self.boot_time), run_start, run_start + length

    def ami_for(self, image: str | None) -> str | None:
        """The machine image a lease's VMs boot on this provider."""
        if image is not None and image in self.images:
            return self.images[image]
        return self.ami

    def cost(self, kind: InstanceType, count: int, seconds: int) -> float:
        billed = max(self.min_billed_s, seconds)
        return round(count * kind.price_per_hour * billed / 3600, 6)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["catalogue"] = [asdict(t) for t in self.catalogue]
        out["images"] = dict(self.images)
        return out


@dataclass
class BurstPlan:
    """Where a burst lease runs: `nodes` instances of `instance_type` on `provider`, launched
    at `start`, running from `run_start` to `end`; its cost as planned, then as billed once
    it ends. A partial burst runs only some of the lease's nodes there: its other nodes are
    the lease's run's local hosts."""

    provider: str
    instance_type: str
    price_per_hour: float
    nodes: int
    start: int  # launch
    run_start: int  # running (after the boot)
    end: int
    cost: float
    trigger: str  # im | be | ar
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BurstPlan:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def calendar_month(origin: int = 0) -> Callable[[int], str]:
    """The budget period of a time: its calendar month in UTC (`origin` is added first, for
    a simulation whose clock starts at 0)."""

    def month(t: int) -> str:
        return time.strftime("%Y-%m", time.gmtime(origin + t))

    return month


class Ledger:
    """Spend per provider and budget period: what earlier leases were billed (given by the
    caller: the store, or nothing in a simulation) plus every burst plan it was told of."""

    def __init__(self, period: Callable[[int], str],
                 spent: Mapping[tuple[str, str], float] | None = None) -> None:
        self.period = period
        self.spent: dict[tuple[str, str], float] = defaultdict(float, spent or {})
        self.running: dict[str, int] = defaultdict(int)  # provider -> instances planned now

    def committed(self, provider: str, t: int) -> float:
        return self.spent[(provider, self.period(t))]

    def add(self, plan: BurstPlan) -> None:
        self.spent[(plan.provider, self.period(plan.start))] += plan.cost
        self.running[plan.provider] += plan.nodes

    def settle(self, plan: BurstPlan, billed: float) -> None:
        """The lease ended: its planned cost is replaced by what it was billed."""
        self.spent[(plan.provider, self.period(plan.start))] += billed - plan.cost
        plan.cost = billed
        self.running[plan.provider] -= plan.nodes


@dataclass
class BurstStats:
    bursts: int = 0
    partial: int = 0  # bursts that sent only some of a lease's nodes
    instances: int = 0
    instance_seconds: int = 0
    cost: float = 0.0
    by_trigger: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Burster:
    """The providers, the burst policy and the ledger, handed to the Scheduler."""

    def __init__(self, providers: Sequence[Provider], policies: Mapping[str, BurstPolicy],
                 ledger: Ledger | None = None) -> None:
        """`policies`: each provider's burst policy by provider name, built by the caller
        (`cloudctl.policies.burst_policies` loads the one each provider names)."""
        if not providers:
            raise InvalidInput("bursting needs at least one provider")
        names = [p.name for p in providers]
        if len(set(names)) != len(names):
            raise InvalidInput(f"provider names repeat: {', '.join(names)}")
        missing = [name for name in names if name not in policies]
        if missing:
            raise InvalidInput(f"no burst policy for provider(s) {', '.join(missing)}")
        self.providers = list(providers)
        self.policies = {name: policies[name] for name in names}
        self.ledger = ledger or Ledger(calendar_month())
        self.stats = BurstStats()
        waits = [p.max_wait for p in providers if p.max_wait is not None]
        self.max_wait = min(waits) if waits else None  # BE leases are looked at from then

    def provider(self, name: str) -> Provider:
        for p in self.providers:
            if p.name == name:
                return p
        raise InvalidInput(f"no burst provider {name!r}")

    def offer(self, lease: Any, trigger: str, start: int, now: int, detail: str = "",
              local: Callable[[Provider], tuple[int, ...]] | None = None
              ) -> tuple[BurstPlan, tuple[int, ...]] | list[str]:
        """A plan to run the lease on a provider from `start` and the local hosts of its
        other nodes, or why not (one reason per provider). Where a provider allows it and
        `local` finds room for some nodes (one host per node, for the provider's timing), only
        the rest burst; else the whole lease does."""
        reasons = []
        for provider in self.providers:
            policy = self.policies[provider.name]
            home: tuple[int, ...] = ()
            if provider.partial and local is not None and lease.nodes > 1:
                home = local(provider)[:lease.nodes - 1]
            found = policy.plan(lease, trigger, provider, start, now, self.ledger,
                                lease.nodes - len(home))
            if home and not isinstance(found, BurstPlan):
                home = ()
                found = policy.plan(lease, trigger, provider, start, now, self.ledger,
                                    lease.nodes)
            if isinstance(found, BurstPlan):
                found.why = detail
                return found, home
            reasons.append(str(found))
            # Stats by reason code ("budget", "instance-limit", ...), without the policy.
            first = found.reasons[0] if getattr(found, "reasons", ()) else str(found)
            self.stats.refused[first.split(":")[0]] += 1
        return reasons

    def commit(self, plan: BurstPlan, lease_nodes: int) -> None:
        self.ledger.add(plan)
        self.stats.bursts += 1
        self.stats.partial += plan.nodes < lease_nodes
        self.stats.instances += plan.nodes
        self.stats.by_trigger[plan.trigger] += 1

    def restore(self, plan: BurstPlan, final: bool) -> None:
        """A plan read back from a store: a live one counts against its provider's
        instances and budget (leases already over are in the ledger's `spent`)."""
        if not final:
            self.ledger.add(plan)

    def settle(self, plan: BurstPlan, ran: int) -> float:
        provider = self.provider(plan.provider)
        kind = next((t for t in provider.catalogue if t.name == plan.instance_type), None)
        if ran <= 0:
            billed = 0.0  # never launched
        else:
            billed = provider.cost(kind, plan.nodes, ran) if kind is not None else plan.cost
        self.ledger.settle(plan, billed)
        if ran > 0:
            self.stats.instance_seconds += plan.nodes * max(provider.min_billed_s, ran)
        self.stats.cost += billed
        return billed


def summary(burster: Burster | None) -> dict[str, Any] | None:
    if burster is None:
        return None
    s = burster.stats
    return {"providers": [p.name for p in burster.providers], "bursts": s.bursts,
            "partial": s.partial,
            "instances": s.instances, "instance_hours": round(s.instance_seconds / 3600, 3),
            "cost_usd": round(s.cost, 2), "by_trigger": dict(sorted(s.by_trigger.items())),
            "refused": dict(sorted(s.refused.items()))}
