"""Public clouds in real operation: the providers the scheduler bursts to (built from the
store's cloud records), what has been spent, and the enactment of burst VMs as instances.

The scheduler only plans a burst; this module launches, watches and terminates the
instances. Every launch is written down with its client token *before* the call, so a tick
killed between `run_instances` and recording its answer leaves a row the next tick finds the
instance by (the same token returns the same instance; tags name the store, lease and VM).
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cloudctl import plugins
from cloudctl.config import parse_duration_field
from cloudctl.domain import VMStatus
from cloudctl.errors import BackendError, CloudctlError, InvalidInput
from cloudctl.scheduler.burst import Burster, InstanceType, Ledger, Provider, calendar_month
from cloudctl.store.records import CloudRecord, InstanceRecord, VMRecord
from cloudctl.store.repositories import Store

if TYPE_CHECKING:
    from cloudctl.drivers.ec2 import EC2Driver

# On-demand Linux prices in us-east-1 (USD per hour), used when neither the config's
# [clouds.NAME.prices] nor `cloud add --price` says otherwise. Sizes come from the provider
# (describe_instance_types) when the cloud is added.
DEFAULT_PRICES: dict[str, float] = {
    "t3.nano": 0.0052, "t3.micro": 0.0104, "t3.small": 0.0208, "t3.medium": 0.0416,
    "t3.large": 0.0832, "t3.xlarge": 0.1664, "t3.2xlarge": 0.3328,
    "m5.large": 0.096, "m5.xlarge": 0.192, "m5.2xlarge": 0.384, "m5.4xlarge": 0.768,
    "c5.large": 0.085, "c5.xlarge": 0.17, "c5.2xlarge": 0.34,
    "r5.large": 0.126, "r5.xlarge": 0.252,
}
OPTION_KEYS = ("ami", "images", "max_wait", "max_preemptions", "boot_time", "burst_im",
               "max_instances", "partial", "policy", "retry_backoff")
TAG_STORE, TAG_LEASE, TAG_VM = "cloudctl:store", "cloudctl:lease", "cloudctl:vm"


def store_uid(store: Store) -> str:
    """This state store's identity, in every instance's tags and client token (two clouds
    sharing an account never take each other's instances)."""
    uid = store.state.uid()
    if uid is None:
        uid = secrets.token_hex(6)
        store.state.set_uid(uid)
    return uid


def provider_of(record: CloudRecord) -> Provider:
    o = record.options
    catalogue = tuple(InstanceType(t["name"], int(t["vcpus"]), int(t["memory_mib"]),
                                   float(t["price_per_hour"])) for t in record.catalogue)
    return Provider(
        name=record.name, catalogue=catalogue, budget_per_month=record.budget_per_month,
        boot_time=int(o.get("boot_time", 0)), max_wait=o.get("max_wait"),
        max_preemptions=o.get("max_preemptions"), burst_im=bool(o.get("burst_im", True)),
        max_instances=o.get("max_instances"), partial=bool(o.get("partial", False)),
        policy=str(o.get("policy", "cheapest-fit")),
        type=record.type, region=record.region, endpoint=record.endpoint,
        profile=record.profile, ami=o.get("ami"), images=dict(o.get("images", {})))


def spent_before(store: Store, live: set[int]) -> dict[tuple[str, str], float]:
    """What instances of leases that are over (not in `live`) were billed, per cloud and
    month."""
    month = calendar_month()
    spent: dict[tuple[str, str], float] = defaultdict(float)
    for inst in store.instances.all():
        if inst.lease_id in live or inst.launched_at is None:
            continue
        end = inst.ended_at if inst.ended_at is not None else inst.launched_at + 60
        spent[(inst.cloud, month(inst.launched_at))] += _cost_between(inst, None, end)
    return dict(spent)


def burster_for(store: Store, live: set[int]) -> Burster | None:
    """The scheduler's burster for this store (`live`: the ids of leases not over): None
    when no cloud is enabled."""
    clouds = [c for c in store.clouds.all() if c.enabled]
    if not clouds:
        return None
    from cloudctl.policies import burst_policies  # the policy modules load only to burst

    providers = [provider_of(c) for c in clouds]
    return Burster(providers, burst_policies(providers),
                   ledger=Ledger(calendar_month(), spent_before(store, live)))


def parse_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """`cloud add` options as stored: durations in seconds, checked."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if key not in OPTION_KEYS:
            raise InvalidInput(f"unknown cloud option {key!r}")
        if key == "policy":
            plugins.load_policy("burst", str(value))  # an unknown name fails here, not in a tick
        if key in ("max_wait", "boot_time"):
            value = parse_duration_field(value, key.replace("_", "-"))
        if key == "retry_backoff" and not 0 <= float(value) <= 600:
            raise InvalidInput("--retry-backoff must be between 0 and 600 seconds")
        if key in ("max_preemptions", "max_instances") and int(value) < 0:
            raise InvalidInput(f"--{key.replace('_', '-')} must not be negative")
        out[key] = value
    return out


def catalogue(driver: EC2Driver, prices: Mapping[str, float]) -> list[dict[str, Any]]:
    """Instance types with the provider's sizes and our prices."""
    sizes = driver.instance_sizes(sorted(prices))
    return [{"name": name, "vcpus": sizes[name].vcpus, "memory_mib": sizes[name].memory_mib,
             "price_per_hour": float(prices[name])} for name in sorted(prices)]


def open_cloud(record: CloudRecord) -> EC2Driver:
    if record.type != "ec2":
        raise InvalidInput(f"cloud {record.name}: unknown type {record.type!r} (known: ec2)")
    from cloudctl.drivers.ec2 import EC2Driver

    return EC2Driver(region=record.region, endpoint_url=record.endpoint,
                     profile=record.profile,
                     backoff=float(record.options.get("retry_backoff", 1.0)))


class CloudEnactment:
    """Burst VMs as instances: launch, start, stop, terminate, and reconcile by tag."""

    def __init__(self, store: Store, now: int) -> None:
        self.store = store
        self.now = now
        self._drivers: dict[str, EC2Driver] = {}
        with store.write():
            self.uid = store_uid(store)
            self.clouds = {c.name: c for c in store.clouds.all()}

    def driver(self, name: str) -> EC2Driver:
        found = self._drivers.get(name)
        if found is None:
            record = self.clouds.get(name)
            if record is None:
                raise BackendError(f"cloud {name!r} is gone (removed while leases used it)")
            found = self._drivers[name] = open_cloud(record)
        return found

    def close(self) -> None:
        for driver in self._drivers.values():
            try:
                driver.close()
            except CloudctlError:
                pass

    def _save(self, inst: InstanceRecord) -> None:
        inst.updated_at = self.now
        with self.store.write():
            self.store.instances.save(inst)

    def _last(self, vm: VMRecord) -> InstanceRecord | None:
        with self.store.read():
            rows = self.store.instances.all(vm=vm.name)
        return rows[-1] if rows else None

    def apply(self, vm: VMRecord, lease_image: str | None, plan: Mapping[str, Any]) -> str:
        """Make the VM's instance match what the schedule wants; its new state."""
        assert vm.cloud is not None
        inst = self._last(vm)
        live = inst if inst is not None and inst.ended_at is None else None
        if vm.want == VMStatus.GONE:
            if live is not None:
                self._terminate(live)
            return VMStatus.GONE
        driver = self.driver(vm.cloud)
        if vm.want == VMStatus.SUSPENDED:
            if live is None or live.instance_id is None:
                raise BackendError(f"{vm.name}: nothing to stop (no instance)")
            driver.stop([live.instance_id])
            live.state = "stopped"
            self._save(live)
            return VMStatus.SUSPENDED
        if live is not None and live.state == "stopped" and live.instance_id:
            driver.start([live.instance_id])
        elif live is None or live.instance_id is None:
            live = self._launch(vm, live, lease_image, plan)
        assert live.instance_id is not None
        found = driver.wait_running([live.instance_id])[0]
        live.state = VMStatus.RUNNING
        live.private_ip, live.public_ip = found.private_ip, found.public_ip
        self._save(live)
        return VMStatus.RUNNING

    def _launch(self, vm: VMRecord, pending: InstanceRecord | None, image: str | None,
                plan: Mapping[str, Any]) -> InstanceRecord:
        assert vm.cloud is not None
        record = self.clouds[vm.cloud]
        ami = provider_of(record).ami_for(image)
        if ami is None:
            raise BackendError(f"cloud {vm.cloud} has no AMI for image {image or '(none)'}: "
                               f"set one with 'cloudctl cloud add ... --ami'")
        if pending is None:
            with self.store.read():
                n = len(self.store.instances.all(vm=vm.name)) + 1
            pending = InstanceRecord(vm.cloud, vm.lease_id, vm.name,
                                     f"cc-{self.uid}-{vm.name}-{n}", None,
                                     str(plan["instance_type"]),
                                     float(plan["price_per_hour"]), "launching")
            self._save(pending)  # written first: a crash from here on is found by token
        tags = {TAG_STORE: self.uid, TAG_LEASE: str(vm.lease_id), TAG_VM: vm.name,
                "Name": vm.name}
        try:
            launched = self.driver(vm.cloud).launch(
                image_id=ami, instance_type=pending.instance_type,
                client_token=pending.client_token, tags=tags)
        except CloudctlError as error:
            pending.state, pending.error, pending.ended_at = "failed", str(error), self.now
            self._save(pending)
            raise
        pending.instance_id = launched[0].id
        pending.state = launched[0].state
        pending.launched_at = self.now
        self._save(pending)
        return pending

    def _terminate(self, inst: InstanceRecord) -> None:
        driver = self.driver(inst.cloud)
        ids = [inst.instance_id] if inst.instance_id else [
            i.id for i in driver.find(client_token=inst.client_token)]
        if ids:
            driver.terminate(ids)
        inst.state = "terminated"
        inst.ended_at = self.now
        self._save(inst)

    def reconcile(self, live_vms: Sequence[VMRecord], reap: bool) -> dict[str, list[str]]:
        """Every instance tagged with this store, against the instances table: adopt one a
        killed tick launched but did not record; report (and with `reap`, terminate) those
        no live lease owns."""
        out: dict[str, list[str]] = {"adopted": [], "unowned": [], "reaped": [],
                                     "unreachable": []}
        wanted = {vm.name for vm in live_vms if vm.cloud and vm.want != VMStatus.GONE}
        with self.store.read():
            rows = self.store.instances.all()
        by_token = {r.client_token: r for r in rows}
        for name in sorted(self.clouds):
            try:
                found = self.driver(name).find(tags={TAG_STORE: self.uid})
            except CloudctlError as error:
                out["unreachable"].append(f"{name}: {error}")
                continue
            for inst in found:
                row = by_token.get(inst.client_token) or by_token.get(
                    inst.tags.get("cloudctl:token", ""))
                if row is not None and row.ended_at is None:
                    if row.instance_id is None:
                        row.instance_id, row.state = inst.id, inst.state
                        row.launched_at = row.launched_at or self.now
                        self._save(row)
                        out["adopted"].append(f"{name}: {inst.id} ({row.vm})")
                    continue
                vm = inst.tags.get(TAG_VM, "?")
                if vm in wanted and row is None:
                    continue  # launched by a tick running now; it records it
                out["unowned"].append(f"{name}: {inst.id} ({inst.state}, vm {vm})")
                if reap:
                    self.driver(name).terminate([inst.id])
                    out["reaped"].append(f"{name}: {inst.id}")
                    if row is not None and row.ended_at is None:
                        row.state, row.ended_at = "terminated", self.now
                        self._save(row)
        return out


# -- the inventory and the bill -----------------------------------------------------------

def cloud_view(record: CloudRecord, instances: Sequence[InstanceRecord],
               now: int) -> dict[str, Any]:
    month = calendar_month()
    this = month(now)
    mine = [i for i in instances if i.cloud == record.name]
    spent = sum(_cost_between(i, None, now) for i in mine
                if i.launched_at is not None and month(i.launched_at) == this)
    budget = record.budget_per_month
    return {"name": record.name, "type": record.type, "region": record.region,
            "endpoint": record.endpoint, "profile": record.profile,
            "budget_per_month": budget, "month": this, "spent_month_usd": round(spent, 4),
            "budget_left_usd": None if budget is None else round(budget - spent, 4),
            "instances_running": sum(1 for i in mine if i.ended_at is None
                                     and i.instance_id is not None),
            "instance_types": len(record.catalogue), "catalogue": record.catalogue,
            **{k: record.options.get(k) for k in OPTION_KEYS},
            "enabled": record.enabled, "added": record.added_at}


def _cost_between(inst: InstanceRecord, since: int | None, until: int) -> float:
    """What the instance was billed for inside [since, until) (the 60 s minimum applies to
    an instance that began inside the window)."""
    if inst.launched_at is None:
        return 0.0
    end = min(inst.ended_at if inst.ended_at is not None else until, until)
    start = inst.launched_at if since is None else max(inst.launched_at, since)
    if end <= start:
        return 0.0
    seconds = end - start
    if start == inst.launched_at:
        seconds = max(60, seconds)
    return inst.price_per_hour * seconds / 3600


def _seconds(cost: float, inst: InstanceRecord) -> int:
    return round(cost / inst.price_per_hour * 3600) if inst.price_per_hour else 0


def cost_report(instances: Sequence[InstanceRecord], clouds: Sequence[CloudRecord],
                lease_ends: Mapping[int, int | None], now: int, since: int | None,
                by: str) -> dict[str, Any]:
    """Spend so far (since `since`) grouped by lease, provider or day, and the month's spend
    so far and projected (running instances billed to their lease's end)."""
    import time as _time

    month = calendar_month()
    this = month(now)
    rows: dict[str, dict[str, Any]] = {}

    def add(key: str, cost: float, seconds: int, inst: InstanceRecord) -> None:
        row = rows.setdefault(key, {by: key, "spent_usd": 0.0, "instances": set(),
                                    "instance_hours": 0.0})
        row["spent_usd"] += cost
        row["instance_hours"] += seconds / 3600
        row["instances"].add(inst.instance_id or inst.client_token)

    for inst in instances:
        if inst.launched_at is None:
            continue
        if by == "day":
            end = inst.ended_at if inst.ended_at is not None else now
            day = max(inst.launched_at, since or 0)
            day -= day % 86400
            while day < max(end, inst.launched_at + 60):
                cost = _cost_between(inst, max(day, since or day), min(day + 86400, now))
                if cost > 0:
                    add(_time.strftime("%Y-%m-%d", _time.gmtime(day)), cost,
                        _seconds(cost, inst), inst)
                day += 86400
            continue
        cost = _cost_between(inst, since, now)
        if cost <= 0 and since is not None:
            continue
        key = f"lease {inst.lease_id}" if by == "lease" else inst.cloud
        add(key, cost, _seconds(cost, inst), inst)
    out_rows = []
    for key in sorted(rows, key=lambda k: (len(k), k)):
        row = rows[key]
        out_rows.append({by: key, "spent_usd": round(row["spent_usd"], 4),
                         "instances": len(row["instances"]),
                         "instance_hours": round(row["instance_hours"], 3)})
    providers = []
    for record in clouds:
        mine = [i for i in instances if i.cloud == record.name and i.launched_at is not None]
        spent = sum(_cost_between(i, None, now) for i in mine if month(i.launched_at) == this)
        ahead = 0.0
        for i in mine:
            if i.ended_at is None and i.instance_id is not None:
                end = lease_ends.get(i.lease_id) or now
                ahead += i.price_per_hour * max(0, end - now) / 3600
        budget = record.budget_per_month
        providers.append({"provider": record.name, "month": this,
                          "spent_month_usd": round(spent, 4),
                          "projected_month_usd": round(spent + ahead, 4),
                          "budget_per_month": budget,
                          "budget_left_usd": None if budget is None
                          else round(budget - spent - ahead, 4)})
    return {"by": by, "since": since, "total_usd": round(sum(r["spent_usd"] for r in out_rows),
                                                         4),
            "rows": out_rows, "providers": providers}
