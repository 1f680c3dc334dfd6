"""A scheduler rebuilt from store records is the scheduler that was saved: same bookings,
same queue, same next decisions."""

from __future__ import annotations

import random

from cloudctl.policies import policy_set

from cloudctl.persist import build_scheduler, to_record
from cloudctl.scheduler.config import SchedulerConfig
from cloudctl.scheduler.core import Scheduler
from cloudctl.scheduler.model import Capacity, LeaseRequest, LeaseType
from cloudctl.store.records import HostRecord

HOSTS = [HostRecord(f"h{i}", 4, 8192, 10**6, "test", "test:///x") for i in range(6)]


def _bookings(s: Scheduler) -> list[list[tuple[int, int, int]]]:
    return [sorted((b.start, b.end, b.cpus) for b in s.table.bookings(h))
            for h in range(len(s.hosts))]


def _random_cloud(seed: int, now: int) -> Scheduler:
    rng = random.Random(seed)
    s = build_scheduler(HOSTS, [], SchedulerConfig(), 0, policy_set(SchedulerConfig()))
    for i in range(1, 120):
        t = rng.randrange(0, now)
        kind = rng.choice([LeaseType.AR, LeaseType.BE, LeaseType.BE, LeaseType.IM])
        start = t + rng.randrange(0, 5000) if kind is LeaseType.AR else None
        s.advance(t)
        s.submit(LeaseRequest(i, kind, t, rng.randint(1, 3), Capacity(rng.randint(1, 4), 1024),
                              rng.randint(300, 4000), start=start,
                              preemptible=kind is LeaseType.BE), t)
        s.schedule(t)
    s.advance(now)
    return s


def _round_trip(s: Scheduler) -> Scheduler:
    names = [h.name for h in HOSTS]
    records = [to_record(lease, names) for lease in s.leases.values() if not lease.state.final]
    return build_scheduler(HOSTS, records, SchedulerConfig(), s.now,
                           policy_set(SchedulerConfig()))


def test_rebuilt_scheduler_has_the_same_table_and_queue() -> None:
    for seed in range(5):
        s = _random_cloud(seed, 20_000)
        again = _round_trip(s)
        assert _bookings(again) == _bookings(s)
        assert [lease.id for lease in again.queue] == [lease.id for lease in s.queue]
        assert again.next_event_time() == s.next_event_time()


def test_rebuilt_scheduler_decides_and_runs_the_same() -> None:
    for seed in range(5):
        s = _random_cloud(seed, 20_000)
        again = _round_trip(s)
        for sched in (s, again):
            sched.submit(LeaseRequest(999, LeaseType.AR, 20_000, 2, Capacity(4, 2048), 3600,
                                      start=21_000, preemptible=False), 20_000)
            sched.schedule(20_000)
        assert again.leases[999].state == s.leases[999].state
        assert _bookings(again) == _bookings(s)
        one = Capacity(1, 1024)
        for step, t in enumerate(range(20_500, 30_000, 700)):
            for sched in (s, again):
                sched.advance(t)
                sched.submit(LeaseRequest(1000 + step, LeaseType.BE, t, 1, Capacity(2, 1024),
                                          900), t)
                sched.schedule(t)
            assert again.table.room_now(one) == s.table.room_now(one), t
            assert again.leases[1000 + step].state == s.leases[1000 + step].state, t
        for sched in (s, again):
            sched.advance(60_000)
            sched.schedule(60_000)
        states = {i: lease.state for i, lease in s.leases.items() if i in again.leases}
        assert {i: lease.state for i, lease in again.leases.items()} == states
        assert {i: s.leases[i].runs[-1][:2] for i in again.leases if s.leases[i].runs} == \
            {i: lease.runs[-1][:2] for i, lease in again.leases.items() if lease.runs}
