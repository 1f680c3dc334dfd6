"""The schedule as a picture: every reservation and past run in a window, host by host."""

from __future__ import annotations

from typing import Any

from cloudctl.app.context import Room
from cloudctl.domain import STEP_RUNNING
from cloudctl.errors import InvalidInput


class Schedule(Room):
    def view(self, start: int | None, end: int | None) -> dict[str, Any]:
        """Every reservation and past run overlapping [start, end), host by host."""
        now = self.clock()
        with self.store.read():
            hosts = self.store.hosts.all()
            leases = self.store.leases.all()
            reservations = {r.id: r for r in self.store.leases.live()}
        bars = []
        for lease in leases:
            for s0, e0, names in lease.history.get("runs", []):
                for node, name in enumerate(names):
                    bars.append({"lease": lease.id, "host": name, "node": node, "start": s0,
                                 "end": e0, "kind": "ran", "type": lease.type})
            r = reservations.get(lease.id)
            if r is not None and r.reservation is not None:
                res = r.reservation
                begin = max(res.start, res.run_start if res.step >= STEP_RUNNING else res.start)
                for node, name in enumerate(res.hosts):
                    bars.append({"lease": lease.id, "host": name, "node": node,
                                 "start": begin, "end": res.end,
                                 "kind": "running" if res.step >= STEP_RUNNING else "planned",
                                 "type": lease.type})
        if start is None:
            start = min([b["start"] for b in bars if b["end"] > now - 3600] + [now])
        if end is None:
            end = max([b["end"] for b in bars] + [start + 3600])
        if end <= start:
            raise InvalidInput("--to must be later than --from")
        bars = [b for b in bars if b["end"] > start and b["start"] < end]
        return {"from": start, "to": end, "now": now, "hosts": [h.name for h in hosts],
                "bars": bars}
