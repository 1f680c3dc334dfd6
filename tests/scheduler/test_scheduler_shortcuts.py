"""The scheduler's shortcuts are exact: with each of them turned off, random workloads get the
very same schedules, and the slot table's quick answers agree with counting host by host."""

from __future__ import annotations

import random
from typing import Any

import pytest
from cloudctl.policies import policy_set
from cloudctl.policies.host_score import Greedy
from conftest import be, hosts, request, timeline

from cloudctl._native import is_compiled
from cloudctl.scheduler.config import SchedulerConfig
from cloudctl.scheduler.core import Scheduler
from cloudctl.scheduler.model import Capacity, HostSpec, LeaseRequest, LeaseType
from cloudctl.scheduler.slottable import GROUP_ALL, INFINITY, Booking, SlotTable
from cloudctl.sim.simulator import simulate


def workload(seed: int, n: int = 160, with_ars: bool = True) -> list[LeaseRequest]:
    """Best-effort leases of mixed shapes that mostly end early, with some ARs and IMs."""
    rng = random.Random(seed)
    out: list[LeaseRequest] = []
    t = 0
    for i in range(1, n + 1):
        t += rng.choice([0, 0, 5, 30, 120, 600])
        duration = rng.choice([60, 300, 900, 1800, 3600])
        cpus, memory = rng.choice([(1, 512), (1, 1024), (2, 1024), (1, 2048)])
        kind = LeaseType.BE
        if with_ars and rng.random() < 0.08:
            kind = rng.choice([LeaseType.AR, LeaseType.AR, LeaseType.IM])
        real = rng.choice([None, duration // 3, duration // 2, duration - 1])
        out.append(request(i, kind, t, duration, rng.randint(1, 5), cpus=cpus, memory=memory,
                           start=t + rng.choice([0, 300, 1200]) if kind is LeaseType.AR
                           else (t if kind is LeaseType.IM else None),
                           real_duration=real if kind is LeaseType.BE else None))
    return out


def replay(requests: list[LeaseRequest], host_list: list[HostSpec],
           **options: Any) -> list[dict[str, Any]]:
    config = SchedulerConfig(**options)
    sched = Scheduler(host_list, config, policy_set(config))
    simulate(requests, host_list, sched)
    return [timeline(sched.leases[r.id]) | {"reason": sched.leases[r.id].reason}
            for r in requests]


# Compiled classes ignore patched methods: test_native.py runs these on the pure build.
patches_the_scheduler = pytest.mark.skipif(is_compiled(), reason="patches compiled classes")


def without_shortcuts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the long way everywhere: no quiet-walk memo, no re-plan proofs, the future
    hosts' fits counted host by host, the fits now counted afresh at every question, and
    candidates one host at a time, never grouped."""
    monkeypatch.setattr(Scheduler, "_walk_state", lambda self: (object(),))
    monkeypatch.setattr(SlotTable, "freed_since", lambda self, mark: None)
    monkeypatch.setattr(Greedy, "host_blind", False)
    now_entry = SlotTable._now_entry

    def afresh(self: SlotTable, need: Capacity) -> Any:
        self._now_fits.clear()
        return now_entry(self, need)

    monkeypatch.setattr(SlotTable, "_now_entry", afresh)

    def future_fits(self: SlotTable, need: Capacity, end: int) -> int:
        fits_now = self._fits_now(need)[0]
        return sum(self.fit_count(h, self.now, end, need)[0]
                   for h in self._future_set if fits_now.get(h, 0) > 0)

    monkeypatch.setattr(SlotTable, "_future_fits", future_fits)

    def fit_from_now(self: SlotTable, entry: Any, h: int, end: int) -> tuple[int, int]:
        need = next(n for n, e in self._now_fits.items() if e is entry)
        return self.fit_count(h, self.now, end, need)

    monkeypatch.setattr(SlotTable, "_fit_from_now", fit_from_now)


CONFIGS = [
    dict(backfilling=1),
    dict(backfilling=1, suspension="none"),
    dict(backfilling=3, enactment_overhead=2, shutdown_time=5),
    dict(backfilling=8, override_suspend_time=0, enactment_overhead=1),
    dict(backfilling=1, suspend_exclusion="global", migration=True),
    dict(backfilling=0),
]


@patches_the_scheduler
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("options", CONFIGS, ids=lambda o: ",".join(f"{k}={v}" for k, v in
                                                                      o.items()))
def test_shortcuts_do_not_change_schedules(seed: int, options: dict[str, Any],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    host_list = hosts(6, cpus=2, memory=2048)
    requests = workload(seed)
    fast = replay(requests, host_list, **options)
    with monkeypatch.context() as m:
        without_shortcuts(m)
        slow = replay(requests, host_list, **options)
    assert fast == slow


@patches_the_scheduler
@pytest.mark.parametrize("seed", range(4))
def test_easy_on_whole_hosts_is_unchanged(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The KTH shape: one-CPU hosts, every lease takes whole hosts, most end early."""
    rng = random.Random(seed)
    requests = [be(i, i * rng.choice([1, 10, 60]), rng.choice([100, 1000, 5000]),
                   nodes=rng.randint(1, 8), real_duration=rng.randint(1, 5000))
                for i in range(1, 400)]
    calls = [0, 0]  # host-by-host fit counts, with and without the shortcuts
    fit_count = SlotTable.fit_count

    def counting(mode: int) -> Any:
        def counted(self: SlotTable, *args: Any, **kw: Any) -> Any:
            calls[mode] += 1
            return fit_count(self, *args, **kw)
        return counted

    with monkeypatch.context() as m:
        m.setattr(SlotTable, "fit_count", counting(0))
        fast = replay(requests, hosts(16), backfilling=1)
    with monkeypatch.context() as m:
        without_shortcuts(m)
        m.setattr(SlotTable, "fit_count", counting(1))
        slow = replay(requests, hosts(16), backfilling=1)
    assert fast == slow
    assert calls[0] < calls[1]  # the shortcuts were taken


@pytest.mark.parametrize("seed", range(20))
def test_fits_now_agrees_with_counting_host_by_host(seed: int) -> None:
    rng = random.Random(seed)
    table = SlotTable([HostSpec(f"h{i}", Capacity(4, 4096, 0)) for i in range(8)])
    for _ in range(40):
        start = rng.randrange(0, 2000)
        table.add(Booking(start, start + rng.randrange(1, 1500), rng.randrange(8),
                          Capacity(rng.randint(1, 2), rng.choice([512, 1024, 2048])), object()))
    table.set_enabled(rng.randrange(8), False)
    for now in (0, 300, 900):
        table.advance(now)
        for need in (Capacity(1, 512), Capacity(2, 1024), Capacity(1, 2048)):
            for duration in (1, 100, 700, 3000):
                fits = sum(table.fit_count(h, now, now + duration, need)[0]
                           for h in range(8) if table.enabled[h])
                for k in (1, 3, 8, 20):
                    found = next(table.sweep(need, k, duration, now, future=False), None)
                    assert (found is not None) == (fits >= k)
                    if found is not None:
                        got = {(c.host, c.fits, c.overlapping) for c in found[1]}
                        want = {(h, *table.fit_count(h, now, now + duration, need))
                                for h in range(8) if table.enabled[h]}
                        assert got == {w for w in want if w[1] > 0}


def test_freed_since_spans_what_came_back() -> None:
    table = SlotTable(hosts(2))
    a = table.add(Booking(0, 100, 0, Capacity(1, 1024), object()))
    b = table.add(Booking(200, 300, 1, Capacity(1, 1024), object()))
    mark = table.freed
    assert table.freed_since(mark) is not None
    table.advance(50)
    table.truncate(a, 60)
    assert table.freed_since(mark) == (60, 100)
    table.remove(b)
    assert table.freed_since(mark) == (60, 300)
    assert table.freed_since(table.freed)[0] > table.freed_since(table.freed)[1]  # nothing
    for _ in range(300):  # the log is bounded; a mark it no longer reaches gets None
        c = table.add(Booking(400, 500, 0, Capacity(1, 1024), object()))
        table.remove(c)
    assert table.freed_since(mark) is None


@pytest.mark.parametrize("seed", range(12))
def test_kept_future_fits_agree_with_counting_host_by_host(seed: int) -> None:
    """The fits of hosts holding future bookings, kept per host between changes (bookings
    added, cut short, removed; the clock moving; hosts disabled and enabled), are what
    `fit_count` finds afresh; so are the grouped candidates, group by group."""
    rng = random.Random(seed)
    n = 6
    table = SlotTable([HostSpec(f"h{i}", Capacity(4, 4096, 0)) for i in range(n)])
    live: list[Booking] = []
    needs = (Capacity(1, 512), Capacity(2, 1024))
    now = 0
    for step in range(120):
        action = rng.random()
        if action < 0.45 or not live:
            start = now + rng.choice([0, 0, rng.randrange(1, 900)])
            live.append(table.add(Booking(start, start + rng.randrange(1, 1200),
                                          rng.randrange(n), rng.choice(needs), object())))
        elif action < 0.6:
            b = live.pop(rng.randrange(len(live)))
            if b.live:
                table.truncate(b, rng.randrange(max(now, b.start), b.end + 1))
        elif action < 0.7:
            b = live.pop(rng.randrange(len(live)))
            if b.live:
                table.remove(b)
        elif action < 0.8:
            table.set_enabled(rng.randrange(n), rng.random() < 0.7)
        else:
            now += rng.randrange(1, 400)
            table.advance(now)
            live = [b for b in live if b.live]
        for need in needs:
            for duration in (1, 300, 2000):
                end = now + duration
                future = [h for h in range(n) if table.has_future(h) and table.enabled[h]]
                want = sum(table.fit_count(h, now, end, need)[0] for h in future)
                assert table._future_fits(need, end) == want, (step, need, duration)
                found = next(table.sweep(need, 1, duration, now, future=False,
                                         group=GROUP_ALL), None)
                exact = {h: table.fit_count(h, now, end, need) for h in range(n)
                         if table.enabled[h]}
                if found is None:
                    assert all(f <= 0 for f, _ in exact.values())
                    continue
                got: dict[int, tuple[int, int]] = {}
                for c in found[1]:
                    assert c.until == INFINITY
                    for h in c.group or [c.host]:
                        got[h] = (c.fits, c.overlapping)
                    assert c.group is None or c.group == sorted(c.group)
                assert got == {h: fo for h, fo in exact.items() if fo[0] > 0}
