"""One shape per thing on the way out: a lease and an event as `show`, `list`, `--json` and
the store's kept list text all give them (stable keys, ISO 8601 UTC times)."""

from __future__ import annotations

import json
from typing import Any

from cloudctl.store.records import EventRecord, LeaseRecord
from cloudctl.timefmt import iso


def lease_view(record: LeaseRecord) -> dict[str, Any]:
    """A lease as scripts see it."""
    return {"id": record.id, "name": record.name, "type": record.type,
            "state": record.state, "start": iso(record.start), "end": iso(record.end),
            "duration_s": record.duration, "nodes": record.nodes, "cpus": record.cpus,
            "memory_mib": record.memory_mib, "image": record.image,
            "preemptible": record.preemptible, "hosts": record.hosts,
            "submitted": iso(record.submitted), "start_requested": iso(record.start_req),
            "remaining_s": record.remaining, "preempted": record.preempted,
            "reason": record.reason, "burst": record.history.get("burst")}


def lease_list_text(record: LeaseRecord) -> str:
    """`lease_view` as one compact JSON object: what the store keeps with each lease so that
    `lease list --json` prints ten thousand leases without building them again."""
    return json.dumps(lease_view(record), separators=(",", ":"), ensure_ascii=False)


def event_view(e: EventRecord) -> dict[str, Any]:
    return {"time": e.time, "entity": e.entity, "from": e.from_state, "to": e.to_state,
            "reason": e.reason}
