"""Public clouds leases burst to: add (the provider must answer), list, show, remove, and
the cost report."""

from __future__ import annotations

from typing import Any

from cloudctl.app.context import Room, check_name
from cloudctl.config import MAX_PRICE_USD, number_problem
from cloudctl.errors import Conflict, InvalidInput
from cloudctl.limits import MAX_NODES, check_range
from cloudctl.store.records import EventRecord

MAX_BUDGET_USD = 1_000_000_000_000  # per month


class Clouds(Room):
    def add(self, name: str, type: str, region: str, endpoint: str | None,
                  profile: str | None, budget: float | None, prices: dict[str, float],
                  options: dict[str, Any]) -> dict[str, Any]:
        """Register a cloud to burst to. The provider must answer (credentials from the
        standard AWS chain), know every priced instance type and the AMIs given."""
        from cloudctl.clouds import (
            DEFAULT_PRICES,
            catalogue,
            cloud_view,
            open_cloud,
            parse_options,
        )
        from cloudctl.store.records import CloudRecord

        check_name("cloud", name)
        if endpoint is not None:
            check_endpoint(endpoint)
        if not region:
            raise InvalidInput("--region is required (e.g. us-east-1)")
        if budget is not None and budget < 0:
            raise InvalidInput("--budget-per-month must not be negative")
        if budget is not None and (problem := number_problem(budget, 0, MAX_BUDGET_USD)):
            raise InvalidInput(f"--budget-per-month: {problem}")
        for key in ("max_instances", "max_preemptions"):
            if options.get(key) is not None:
                check_range(options[key], 0, MAX_NODES, f"--{key.replace('_', '-')}")
        configured = self.settings.clouds.get(name, {}).get("prices")
        price_list = prices or configured or DEFAULT_PRICES
        for kind, price in price_list.items():
            if not isinstance(price, (int, float)) or isinstance(price, bool) or price < 0:
                raise InvalidInput(f"price of {kind}: {price!r} is not a USD amount >= 0")
            if problem := number_problem(price, 0, MAX_PRICE_USD):
                raise InvalidInput(f"price of {kind}: {problem}")
        record = CloudRecord(name, type, region, endpoint, profile, budget,
                             options=parse_options(options), added_at=self.clock())
        with self.store.read():
            if any(c.name == name for c in self.store.clouds.all()):
                raise Conflict(f"a cloud named {name!r} already exists")
        driver = open_cloud(record)
        try:
            driver.probe()
            record.catalogue = catalogue(driver, price_list)
            amis = {record.options.get("ami"), *record.options.get("images", {}).values()}
            for ami in sorted(a for a in amis if a):
                driver.check_image(ami)
        finally:
            driver.close()
        with self.store.write():
            self.store.clouds.add(record)
            self.store.events.add([EventRecord(self.clock(), f"cloud {name}", None, "added",
                                               f"{type} {region}")])
        return cloud_view(record, [], self.clock())

    def all(self) -> list[dict[str, Any]]:
        from cloudctl.clouds import cloud_view

        with self.store.read():
            records = self.store.clouds.all()
            instances = self.store.instances.all()
        now = self.clock()
        return [_without_credentials(cloud_view(r, instances, now)) for r in records]

    def show(self, name: str) -> dict[str, Any]:
        from cloudctl.clouds import cloud_view

        with self.store.read():
            record = self.store.clouds.get(name)
            instances = self.store.instances.all(cloud=name)
        view = _without_credentials(cloud_view(record, instances, self.clock()))
        view["instances"] = [{"instance_id": i.instance_id, "vm": i.vm, "lease": i.lease_id,
                              "type": i.instance_type, "state": i.state,
                              "launched": i.launched_at, "ended": i.ended_at,
                              "private_ip": i.private_ip, "public_ip": i.public_ip,
                              "error": i.error} for i in instances]
        return view

    def remove(self, name: str) -> dict[str, Any]:
        """Forget a cloud; refused (exit 4) while instances run there."""
        with self.store.write():
            self.store.clouds.get(name)
            running = self.store.instances.all(cloud=name, live=True)
            if running:
                leases = sorted({i.lease_id for i in running})
                raise Conflict(f"cloud {name} still runs {len(running)} instance(s) for "
                               f"lease(s) {', '.join(map(str, leases))}; cancel them first")
            self.store.clouds.remove(name)
            self.store.events.add([EventRecord(self.clock(), f"cloud {name}", "added",
                                               "removed", "removed")])
        return {"name": name, "removed": True}

    def cost_report(self, since: int | None, by: str) -> dict[str, Any]:
        from cloudctl.clouds import cost_report

        if by not in ("lease", "provider", "day"):
            raise InvalidInput(f"--by must be lease, provider or day, not {by!r}")
        with self.store.read():
            instances = self.store.instances.all(since=since)
            clouds = self.store.clouds.all()
            ends = {lease.id: lease.end for lease in self.store.leases.live()}
        return cost_report(instances, clouds, ends, self.clock(), since, by)


def check_endpoint(url: str) -> None:
    """Refuse credentials written into an endpoint URL (`http://KEY:SECRET@host`): they would
    be stored and printed. The URL itself is not repeated in the error, as it holds them."""
    if _userinfo(url):
        raise InvalidInput("--endpoint: credentials in the URL are refused; they come only "
                           "from the standard AWS chain (environment, ~/.aws files, "
                           "--profile) and are never stored")


def _userinfo(url: str) -> str:
    """The `user:password@` part of a URL's authority, or ''."""
    rest = url.split("://", 1)[-1]
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return authority.rpartition("@")[0] + "@" if "@" in authority else ""


def _without_credentials(view: dict[str, Any]) -> dict[str, Any]:
    """A stored endpoint (from before they were refused) shown without its credentials."""
    endpoint = view.get("endpoint")
    if endpoint and (secret := _userinfo(endpoint)):
        view["endpoint"] = endpoint.replace(secret, "", 1)
    return view
