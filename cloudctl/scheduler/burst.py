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
from typing import Any

from cloudctl.errors import InvalidInput
from cloudctl.scheduler.model import Capacity

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

    def __init__(self, providers: Sequence[Provider], policy: Any | None = None,
                 ledger: Ledger | None = None) -> None:
        if not providers:
            raise InvalidInput("bursting needs at least one provider")
        names = [p.name for p in providers]
        if len(set(names)) != len(names):
            raise InvalidInput(f"provider names repeat: {', '.join(names)}")
        self.providers = list(providers)
        from cloudctl.policies.registry import load_policy

        # Each provider's own policy, unless one is given for all (tests, plug-ins).
        self.policies = {p.name: policy if policy is not None else load_policy("burst", p.policy)
                         for p in providers}
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


# -- provider files (simulate --burst-provider, cloud add --catalogue) -------------------------

def parse_duration_field(value: Any, what: str) -> int:
    from cloudctl.timefmt import parse_duration

    if isinstance(value, bool):
        raise InvalidInput(f"{what} must be a duration, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise InvalidInput(f"{what} must not be negative")
        return int(value)
    return parse_duration(str(value), option=what)


def catalogue_from(data: Mapping[str, Any], where: str,
                   sizes: Mapping[str, tuple[int, int]] | None = None
                   ) -> tuple[InstanceType, ...]:
    """Instance types from a provider table: `[prices]` (name = USD per hour) with sizes from
    `[[instance_types]]` entries (name, vcpus, memory_mib[, price_per_hour]) or `sizes`."""
    prices = data.get("prices", {})
    if not isinstance(prices, Mapping):
        raise InvalidInput(f"{where}: [prices] must be a table of instance type = USD/hour")
    listed: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(data.get("instance_types", [])):
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise InvalidInput(f"{where}: instance_types[{i}] needs at least a name")
        listed[str(entry["name"])] = dict(entry)
    out = []
    for name in sorted(set(prices) | set(listed)):
        entry = listed.get(name, {})
        price = entry.get("price_per_hour", prices.get(name))
        size = sizes.get(name) if sizes else None
        vcpus = entry.get("vcpus", size[0] if size else None)
        memory = entry.get("memory_mib", size[1] if size else None)
        if price is None:
            raise InvalidInput(f"{where}: instance type {name} has no price")
        if vcpus is None or memory is None:
            raise InvalidInput(f"{where}: instance type {name} has no size (vcpus, memory_mib)")
        try:
            kind = InstanceType(name, int(vcpus), int(memory), float(price))
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{where}: instance type {name}: {exc}") from exc
        if kind.vcpus <= 0 or kind.memory_mib <= 0 or kind.price_per_hour < 0:
            raise InvalidInput(f"{where}: instance type {name} needs positive vcpus and "
                               f"memory_mib and a price of at least 0")
        out.append(kind)
    if not out:
        raise InvalidInput(f"{where}: no instance types (add a [prices] table)")
    return tuple(out)


_PROVIDER_KEYS = {"name", "type", "region", "endpoint", "profile", "budget_per_month",
                  "boot_time", "max_wait", "max_preemptions", "burst_im",
                  "max_instances", "min_billed", "partial", "policy", "prices",
                  "instance_types", "ami", "images"}


def provider_from(data: Mapping[str, Any], where: str,
                  sizes: Mapping[str, tuple[int, int]] | None = None) -> Provider:
    unknown = sorted(set(data) - _PROVIDER_KEYS)
    if unknown:
        raise InvalidInput(f"{where}: unknown key(s) {', '.join(unknown)} "
                           f"(known: {', '.join(sorted(_PROVIDER_KEYS))})")
    name = str(data.get("name", "")).strip()
    if not name:
        raise InvalidInput(f"{where}: a provider needs a name")
    budget = data.get("budget_per_month")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float))
                               or budget < 0):
        raise InvalidInput(f"{where}: budget_per_month must be a number of USD >= 0")
    wait = data.get("max_wait")
    pre = data.get("max_preemptions")
    if pre is not None and (isinstance(pre, bool) or not isinstance(pre, int) or pre < 0):
        raise InvalidInput(f"{where}: max_preemptions must be a whole number >= 0")
    limit = data.get("max_instances")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise InvalidInput(f"{where}: max_instances must be a whole number >= 1")
    images = data.get("images", {})
    if not isinstance(images, Mapping):
        raise InvalidInput(f"{where}: [images] must map local image names to AMI ids")
    return Provider(
        name=name, catalogue=catalogue_from(data, where, sizes),
        budget_per_month=None if budget is None else float(budget),
        boot_time=parse_duration_field(data.get("boot_time", 0), f"{where}: boot_time"),
        max_wait=None if wait is None else parse_duration_field(wait, f"{where}: max_wait"),
        max_preemptions=pre, burst_im=_flag(data.get("burst_im", True), f"{where}: burst_im"),
        max_instances=limit, partial=_flag(data.get("partial", False), f"{where}: partial"),
        min_billed_s=parse_duration_field(data.get("min_billed", 60), f"{where}: min_billed"),
        policy=str(data.get("policy", "cheapest-fit")), type=str(data.get("type", "ec2")),
        region=str(data.get("region", "")), endpoint=data.get("endpoint"),
        profile=data.get("profile"), ami=data.get("ami"),
        images={str(k): str(v) for k, v in images.items()})


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{what} must be true or false, got {value!r}")
    return value


def load_provider_file(path: Any) -> Provider:
    """A provider from a TOML file (`simulate --burst-provider FILE.toml`)."""
    from pathlib import Path

    from cloudctl.config import read_toml

    return provider_from(read_toml(Path(path)), str(path))


def summary(burster: Burster | None) -> dict[str, Any] | None:
    if burster is None:
        return None
    s = burster.stats
    return {"providers": [p.name for p in burster.providers], "bursts": s.bursts,
            "partial": s.partial,
            "instances": s.instances, "instance_hours": round(s.instance_seconds / 3600, 3),
            "cost_usd": round(s.cost, 2), "by_trigger": dict(sorted(s.by_trigger.items())),
            "refused": dict(sorted(s.refused.items()))}
