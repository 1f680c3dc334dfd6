"""The slot table: every host's reservations of resources over time.

A booking holds (cpus, memory, disk) on one host during [start, end). A changepoint is any
time a booking starts or ends; between two changepoints availability is constant.

The table keeps enough incremental state that the questions the scheduler asks most often
cost in proportion to what is free, not to the size of the cluster:
- hosts with some capacity free *now* (``_free_now``) answer "can it start now?";
- a sorted list of booking ends lets ``sweep`` find the earliest time k virtual nodes fit,
  releasing bookings in end order instead of re-checking every host at every changepoint.
Hosts holding a booking that starts after ``now`` ("future" hosts) are checked directly.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from operator import attrgetter
from typing import Final

from cloudctl.scheduler.model import Capacity, HostSpec

# Module constants are Final: compiled, they are C constants rather than module lookups.
INFINITY: Final = 1 << 62
# How `sweep` may hand over hosts alike but for their index, as one candidate: not at all;
# the hosts without future bookings; every host (for callers that read no `Candidate.until`,
# which only hosts with future bookings have).
GROUP_NONE: Final = 0
GROUP_SIMPLE: Final = 1
GROUP_ALL: Final = 2


class Booking:
    """One virtual node's hold on one host during [start, end)."""

    __slots__ = ("start", "end", "host", "cpus", "mem", "disk", "owner", "seq", "counted", "live")

    def __init__(self, start: int, end: int, host: int, need: Capacity, owner: object) -> None:
        self.start = start
        self.end = end
        self.host = host
        self.cpus = need.cpus
        self.mem = need.memory_mib
        self.disk = need.disk_mib
        self.owner = owner  # the run (VMRR) that holds it
        self.seq = 0
        self.counted = False  # included in the host's usage-now
        self.live = False  # in the table

    def __repr__(self) -> str:
        return f"Booking(h{self.host} [{self.start},{self.end}) {self.cpus}c/{self.mem}M)"


class Candidate:
    """A host that can hold `fits` virtual nodes of a lease from a given time.

    A plain class rather than a dataclass: compiled, its constructor is native code (a
    dataclass's generated __init__ stays interpreted), and placements make many."""

    __slots__ = ("host", "fits", "overlapping", "until", "blocked_by_fixed", "free_since",
                 "group")

    def __init__(self, host: int, fits: int, overlapping: int, until: int = INFINITY,
                 blocked_by_fixed: bool = True, free_since: int = -INFINITY,
                 group: list[int] | None = None) -> None:
        self.host = host
        self.fits = fits
        # Bookings on the host overlapping the window (Haizea: "fewer leases").
        self.overlapping = overlapping
        self.until = until  # how long the capacity stays free (for runs that may be suspended)
        self.blocked_by_fixed = blocked_by_fixed  # the booking that ends the window cannot move
        self.free_since = free_since  # when the host's last booking before the window ends
        # With `sweep(group=...)`: every host (`host` first, in host order) that is this very
        # candidate but for its index, `fits` vnodes each; None for a single host.
        self.group = group

    def __repr__(self) -> str:
        return (f"Candidate(host={self.host}, fits={self.fits}, "
                f"overlapping={self.overlapping}, until={self.until}, "
                f"free_since={self.free_since}, group={self.group})")


def vnodes_fitting(free_cpu: int, free_mem: int, free_disk: int, need: Capacity) -> int:
    """How many virtual nodes of `need` fit in the given free capacity."""
    if free_cpu < 0 or free_mem < 0 or free_disk < 0:
        return 0
    n = 1 << 20
    if need.cpus > 0:
        n = free_cpu // need.cpus
    if need.memory_mib > 0:
        m = free_mem // need.memory_mib
        if m < n:
            n = m
    if need.disk_mib > 0:
        m = free_disk // need.disk_mib
        if m < n:
            n = m
    return n


def usage_at(bookings: Iterable[Booking], t: int) -> tuple[int, int, int]:
    """(cpus, memory, disk) the bookings hold at instant t."""
    cpu = mem = disk = 0
    for b in bookings:
        if b.start <= t < b.end:
            cpu += b.cpus
            mem += b.mem
            disk += b.disk
    return cpu, mem, disk


def _same_span(bookings: list[Booking], start: int, end: int) -> bool:
    for b in bookings:
        if b.start != start or b.end != end:
            return False
    return True


def _any_counted(bookings: list[Booking]) -> bool:
    for b in bookings:
        if b.counted:
            return True
    return False


def _all_counted(bookings: list[Booking]) -> bool:
    for b in bookings:
        if not b.counted:
            return False
    return True


_start_and_seq = attrgetter("start", "seq")
_end_and_seq = attrgetter("end", "seq")


class TimeIndex:
    """Bookings sorted by (time, seq), `time` being each booking's start or end: the times in
    one list (plain ints, for bisect) and the bookings beside them in another."""

    __slots__ = ("times", "items")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.items: list[Booking] = []

    def insert(self, t: int, b: Booking) -> None:
        times = self.times
        i = bisect_left(times, t)
        items = self.items
        n = len(times)
        seq = b.seq
        while i < n and times[i] == t and items[i].seq < seq:
            i += 1
        times.insert(i, t)
        items.insert(i, b)

    def insert_newest(self, t: int, bookings: list[Booking]) -> None:
        """Insert bookings of time t whose sequence numbers are the highest yet, in order:
        they go after every entry with the same time."""
        i = bisect_right(self.times, t)
        self.times[i:i] = [t] * len(bookings)
        self.items[i:i] = bookings

    def find(self, t: int, b: Booking) -> int:
        """Where booking b sits, filed under time t (-1 if it is not there)."""
        times = self.times
        items = self.items
        i = bisect_left(times, t)
        n = len(times)
        while i < n and times[i] == t:
            if items[i] is b:
                return i
            i += 1
        for k, item in enumerate(items):  # filed under another time: fall back to a scan
            if item is b:
                return k
        return -1

    def delete(self, t: int, b: Booking) -> None:
        i = self.find(t, b)
        if i >= 0:
            del self.times[i]
            del self.items[i]

    def rebuild(self, bookings: list[Booking], ends: bool) -> None:
        bookings.sort(key=_end_and_seq if ends else _start_and_seq)
        self.items = bookings
        self.times = [b.end for b in bookings] if ends else [b.start for b in bookings]


def _append_alike(alike: dict[tuple[int, int, int], list[int]],
                  append: Callable[[Candidate], None]) -> None:
    """One candidate per group of hosts alike now but for their index, keyed by (vnodes that
    fit, bookings overlapping, free since); the group's hosts go with it in host order."""
    for (f, overlapping, since), hosts in alike.items():
        if len(hosts) > 1:
            hosts.sort()
            append(Candidate(hosts[0], f, overlapping, INFINITY, True, since, hosts))
        else:
            append(Candidate(hosts[0], f, overlapping, INFINITY, True, since))


def _add_alike(alike: dict[tuple[int, int, int], list[int]], sig: tuple[int, int, int],
               h: int) -> None:
    hosts = alike.get(sig)
    if hosts is None:
        alike[sig] = [h]
    else:
        hosts.append(h)


class NowFits:
    """One need's fits now (see `SlotTable._now_entry`), up to date as of `seen` changes:
    vnodes per host where some fit, their total, and the hosts without future bookings
    grouped by (vnodes that fit, bookings held) with their total.

    Alongside, as of `future_seen` changes, what `SlotTable._future_fits` counts: for each
    host free now that holds future bookings, its fit now and where its future bookings
    lower it, and over them all, `steps` (None until asked again after a change)."""

    __slots__ = ("fits", "simple_of", "total", "simple", "seen", "groups", "future",
                 "future_seen", "steps")

    def __init__(self) -> None:
        self.fits: dict[int, int] = {}
        self.simple_of: dict[int, tuple[int, int]] = {}
        self.groups: dict[tuple[int, int], set[int]] = {}
        self.total = 0
        self.simple = 0
        self.seen = 0
        # host -> (vnodes that fit now, [(a future booking's start, vnodes lost there)])
        self.future: dict[int, tuple[int, list[tuple[int, int]]]] = {}
        self.future_seen = -1  # none looked at yet
        # (vnodes that fit from now on those hosts, drop times, totals after each drop)
        self.steps: tuple[int, list[int], list[int]] | None = None

    def add(self, h: int, fits: int, alike: tuple[int, int] | None) -> None:
        """Host `h` fits `fits` vnodes now; `alike` is its group (None: it holds future
        bookings)."""
        self.fits[h] = fits
        self.total += fits
        if alike is not None:
            self.simple += fits
            self.simple_of[h] = alike
            members = self.groups.get(alike)
            if members is None:
                self.groups[alike] = {h}
            else:
                members.add(h)

    def drop(self, h: int) -> None:
        old = self.fits.pop(h, 0)
        if old:
            self.total -= old
            alike = self.simple_of.pop(h, None)
            if alike is not None:
                self.simple -= old
                self.groups[alike].discard(h)


class SlotTable:
    def __init__(self, hosts: Iterable[HostSpec], now: int = 0) -> None:
        self.hosts: list[HostSpec] = list(hosts)
        n = len(self.hosts)
        self.cap = [(h.capacity.cpus, h.capacity.memory_mib, h.capacity.disk_mib)
                    for h in self.hosts]
        self.enabled = [h.enabled for h in self.hosts]
        # Each host's bookings sorted by (start, seq), with their starts alongside for bisect
        # (a new booking has the highest seq yet: it goes after those with the same start).
        self.by_host: list[list[Booking]] = [[] for _ in range(n)]
        self._keys: list[list[int]] = [[] for _ in range(n)]
        self._max_len = 0  # longest booking ever: bounds how far back an overlap can start
        self.now = now
        self._seq = 0
        self._ends = TimeIndex()  # every booking by (end, seq)
        self._starts = TimeIndex()  # bookings that have not started, by (start, seq)
        self._used_now = [[0, 0, 0] for _ in range(n)]
        self._nfuture = [0] * n
        self._future_set: set[int] = set()
        self._free_now: set[int] = {i for i in range(n) if self.enabled[i]}
        self.version = 0  # bumped on every change, for callers' caches
        # Per need, its fits now (see NowFits). Kept across changes: `_now_log` lists the hosts
        # whose bookings, usage now or enabled flag changed, and a lookup re-counts only those
        # (a change touches a few hosts; a queue walk asks after every change).
        self._now_fits: dict[Capacity, NowFits] = {}
        self._now_log: list[int] = []
        # Capacity given back from now on (a booking removed or cut short, a host enabled):
        # `freed` counts these events; the log keeps the (start, end) of the latest ones.
        self.freed = 0
        self._freed_log: list[tuple[int, int]] = []

    # -- changes ---------------------------------------------------------------------------

    def add(self, booking: Booking) -> Booking:
        self._seq += 1
        booking.seq = self._seq
        booking.live = True
        self._host_insert(booking)
        self._max_len = max(self._max_len, booking.end - booking.start)
        self._ends.insert(booking.end, booking)
        if booking.start <= self.now:
            self._count_now(booking)
        else:
            self._nfuture[booking.host] += 1
            self._now_log.append(booking.host)
            self._future_set.add(booking.host)
            self._starts.insert(booking.start, booking)
        self.version += 1
        return booking

    def add_all(self, bookings: list[Booking]) -> list[Booking]:
        """`add` each booking, in order; the bookings of one run start and end together, so
        they go into the time-ordered lists in one piece."""
        if not bookings:
            return bookings
        first = bookings[0]
        start, end = first.start, first.end
        if not _same_span(bookings, start, end):
            for b in bookings:
                self.add(b)
            return bookings
        future = start > self.now
        nfuture = self._nfuture
        # `_host_insert` and `_count_now` written out: a run books a host per virtual node.
        keys_of = self._keys
        by_host = self.by_host
        used_now = self._used_now
        cap = self.cap
        enabled = self.enabled
        free_now = self._free_now
        seq = self._seq
        self._now_log.extend([b.host for b in bookings])
        for b in bookings:
            seq += 1
            b.seq = seq
            b.live = True
            h = b.host
            keys = keys_of[h]
            if not keys or keys[-1] <= start:
                keys.append(start)
                by_host[h].append(b)
            else:
                i = bisect_right(keys, start)
                keys.insert(i, start)
                by_host[h].insert(i, b)
            if future:
                nfuture[h] += 1
                self._future_set.add(h)
            else:
                u = used_now[h]
                u[0] += b.cpus
                u[1] += b.mem
                u[2] += b.disk
                b.counted = True
                c = cap[h]
                if enabled[h] and c[0] - u[0] > 0 and c[1] - u[1] > 0:
                    free_now.add(h)
                else:
                    free_now.discard(h)
        self._seq = seq
        self._max_len = max(self._max_len, end - start)
        self._ends.insert_newest(end, bookings)
        if future:
            self._starts.insert_newest(start, bookings)
        self.version += 1
        return bookings

    def load(self, bookings: Iterable[Booking]) -> None:
        """`add` for many bookings of any times (a table rebuilt from a store), each list
        sorted once at the end rather than one insertion per booking."""
        touched: set[int] = set()
        ends = list(self._ends.items)
        starts = list(self._starts.items)
        for b in bookings:
            self._seq += 1
            b.seq = self._seq
            b.live = True
            self.by_host[b.host].append(b)
            touched.add(b.host)
            self._max_len = max(self._max_len, b.end - b.start)
            ends.append(b)
            if b.start <= self.now:
                self._count_now(b)
            else:
                self._nfuture[b.host] += 1
                self._now_log.append(b.host)
                self._future_set.add(b.host)
                starts.append(b)
        for h in touched:
            self.by_host[h].sort(key=_start_and_seq)
            self._keys[h] = [b.start for b in self.by_host[h]]
        self._ends.rebuild(ends, ends=True)
        self._starts.rebuild(starts, ends=False)
        self.version += 1

    def remove(self, booking: Booking) -> None:
        self._log_freed(booking.start, booking.end)
        h = booking.host
        self._host_delete(booking)
        self._ends.delete(booking.end, booking)
        if booking.counted:
            self._uncount_now(booking)
        elif booking.start > self.now:
            self._nfuture[h] -= 1
            self._now_log.append(h)
            if not self._nfuture[h]:
                self._future_set.discard(h)
            self._starts.delete(booking.start, booking)
        self.version += 1

    def truncate(self, booking: Booking, end: int) -> None:
        """Shorten a booking to end at `end` (a preempted or early-ended run)."""
        if end <= booking.start:
            self.remove(booking)
            return
        if end < booking.end:
            self._log_freed(end, booking.end)
        if booking.counted and end <= self.now:  # it is over (a run ending early): it goes
            self._ends.delete(booking.end, booking)
            booking.end = end
            self._uncount_now(booking)
            self._host_delete(booking)
            self.version += 1
            return
        self._ends.delete(booking.end, booking)
        booking.end = end
        self._now_log.append(booking.host)  # its future profile changed
        self._ends.insert(booking.end, booking)
        self.version += 1

    def truncate_all(self, bookings: list[Booking], end: int) -> None:
        """`truncate` every live booking of the list to `end`. The bookings of one run (one
        start, one end, sequence numbers in a row) sit side by side in the time-ordered lists:
        when the run is over by `end` or has not begun, they leave those lists in one piece."""
        live = [b for b in bookings if b.live]
        if not live:
            return
        first = live[0]
        start, old_end = first.start, first.end
        n = len(live)
        if _same_span(live, start, old_end):
            ends = self._ends
            i = ends.find(old_end, first)
            if start > self.now and end <= start:  # not begun: every booking goes
                starts = self._starts
                j = starts.find(start, first)
                if (i >= 0 and j >= 0 and ends.items[i:i + n] == live
                        and starts.items[j:j + n] == live and not _any_counted(live)):
                    del ends.times[i:i + n]
                    del ends.items[i:i + n]
                    del starts.times[j:j + n]
                    del starts.items[j:j + n]
                    self._log_freed(start, old_end)
                    nfuture = self._nfuture
                    self._now_log.extend([b.host for b in live])
                    for b in live:
                        self._host_delete(b)
                        h = b.host
                        nfuture[h] -= 1
                        if not nfuture[h]:
                            self._future_set.discard(h)
                    self.version += 1
                    return
            elif (start < end < old_end and end <= self.now and i >= 0
                  and ends.items[i:i + n] == live
                  and _all_counted(live)):  # ended early: every booking goes
                del ends.times[i:i + n]
                del ends.items[i:i + n]
                self._log_freed(end, old_end)
                # `_uncount_now` written out, as in `add_all`.
                used_now = self._used_now
                cap = self.cap
                enabled = self.enabled
                free_now = self._free_now
                self._now_log.extend([b.host for b in live])
                for b in live:
                    b.end = end
                    h = b.host
                    u = used_now[h]
                    u[0] -= b.cpus
                    u[1] -= b.mem
                    u[2] -= b.disk
                    b.counted = False
                    c = cap[h]
                    if enabled[h] and c[0] - u[0] > 0 and c[1] - u[1] > 0:
                        free_now.add(h)
                    else:
                        free_now.discard(h)
                    self._host_delete(b)
                self.version += 1
                return
        for b in live:
            self.truncate(b, end)

    def advance(self, now: int) -> None:
        """Move the table's clock: bookings that started count as used, ended ones go."""
        if now < self.now:
            return
        self.now = now
        start_times = self._starts.times
        end_times = self._ends.times
        if ((not start_times or start_times[0] > now)
                and (not end_times or end_times[0] > now)):
            return  # nothing starts or ends by now (the usual case: the scheduler asks often)
        i = 0
        n = len(start_times)
        starting = self._starts.items
        while i < n and start_times[i] <= now:
            b = starting[i]
            self._nfuture[b.host] -= 1
            if not self._nfuture[b.host]:
                self._future_set.discard(b.host)
            self._count_now(b)
            i += 1
        if i:
            del start_times[:i]
            del starting[:i]
        j = 0
        n = len(end_times)
        ending = self._ends.items
        while j < n and end_times[j] <= now:
            b = ending[j]
            self._host_delete(b)
            if b.counted:
                self._uncount_now(b)
            j += 1
        if j:
            del end_times[:j]
            del ending[:j]
        if i or j:
            self.version += 1

    def _host_insert(self, b: Booking) -> None:
        """File a booking whose seq is the highest yet under its host."""
        keys = self._keys[b.host]
        i = bisect_right(keys, b.start)
        keys.insert(i, b.start)
        self.by_host[b.host].insert(i, b)

    def _host_delete(self, b: Booking) -> None:
        keys = self._keys[b.host]
        on_host = self.by_host[b.host]
        i = bisect_left(keys, b.start)
        while on_host[i] is not b:
            i += 1
        del keys[i]
        del on_host[i]
        b.live = False

    def overlapping(self, h: int, start: int, end: int) -> list[Booking]:
        """Bookings on host h that overlap [start, end)."""
        keys = self._keys[h]
        lo = bisect_left(keys, start - self._max_len)
        hi = bisect_left(keys, end)
        return [b for b in self.by_host[h][lo:hi] if b.end > start]

    def set_enabled(self, host: int, enabled: bool) -> None:
        if enabled and not self.enabled[host]:
            self._log_freed(self.now, INFINITY)
        self.enabled[host] = enabled
        self._refresh_free(host)
        self.version += 1

    def _log_freed(self, start: int, end: int) -> None:
        start = max(start, self.now)
        if start >= end:
            return  # nothing from now on
        self.freed += 1
        log = self._freed_log
        log.append((start, end))
        if len(log) > 256:
            del log[:128]

    def freed_since(self, mark: int) -> tuple[int, int] | None:
        """(earliest start, latest end) of the capacity given back since `freed` was `mark`
        ((INFINITY, -INFINITY) if none), or None if the log no longer reaches back that far.
        Only there can a lease that did not fit at `mark` fit now."""
        n = self.freed - mark
        if n > len(self._freed_log):
            return None
        if n <= 0:
            return INFINITY, -INFINITY
        recent = self._freed_log[-n:]
        return min(a for a, _ in recent), max(b for _, b in recent)

    def _count_now(self, b: Booking) -> None:
        used = self._used_now[b.host]
        used[0] += b.cpus
        used[1] += b.mem
        used[2] += b.disk
        b.counted = True
        self._refresh_free(b.host)

    def _uncount_now(self, b: Booking) -> None:
        used = self._used_now[b.host]
        used[0] -= b.cpus
        used[1] -= b.mem
        used[2] -= b.disk
        b.counted = False
        self._refresh_free(b.host)

    def _refresh_free(self, h: int) -> None:
        self._now_log.append(h)
        cpu, mem, _disk = self.cap[h]
        used = self._used_now[h]
        if self.enabled[h] and cpu - used[0] > 0 and mem - used[1] > 0:
            self._free_now.add(h)
        else:
            self._free_now.discard(h)

    # -- questions -------------------------------------------------------------------------

    def changepoints(self, after: int) -> list[int]:
        """Distinct booking end times strictly after `after`, in order."""
        times = self._ends.times
        out: list[int] = []
        for i in range(bisect_right(times, after), len(times)):
            t = times[i]
            if not out or out[-1] != t:
                out.append(t)
        return out

    def bookings(self, host: int) -> list[Booking]:
        return self.by_host[host]

    def usage_at(self, host: int, t: int) -> tuple[int, int, int]:
        return usage_at(self.by_host[host], t)

    def fit_count(self, h: int, start: int, end: int, need: Capacity,
                  ignore: object = None) -> tuple[int, int]:
        """(virtual nodes of `need` that fit on host h throughout [start, end), bookings
        overlapping), leaving out the bookings of `ignore` (a run being re-planned)."""
        cap_cpu, cap_mem, cap_disk = self.cap[h]
        keys = self._keys[h]
        lo = bisect_left(keys, start - self._max_len)
        hi = bisect_left(keys, end)
        overlapping = [b for b in self.by_host[h][lo:hi]
                       if b.end > start and b.owner is not ignore]
        if not overlapping:
            return vnodes_fitting(cap_cpu, cap_mem, cap_disk, need), 0
        best = 1 << 30
        # Usage is piecewise constant; its peaks are at the starts of overlapping bookings.
        for p in {max(start, b.start) for b in overlapping}:
            cpu, mem, disk = usage_at(overlapping, p)
            best = min(best, vnodes_fitting(cap_cpu - cpu, cap_mem - mem, cap_disk - disk, need))
        return best, len(overlapping)

    def shortfall(self, h: int, start: int, end: int, need: Capacity, count: int = 1) -> str:
        """Why host h cannot hold `count` vnodes of `need` during [start, end) ('' if it can),
        e.g. 'memory: need 2048 MiB, free 1024 MiB'."""
        if not self.enabled[h]:
            return "disabled"
        cap_cpu, cap_mem, cap_disk = self.cap[h]
        peak = [0, 0, 0]
        overlapping = self.overlapping(h, start, end)
        for p in {max(start, b.start) for b in overlapping} or {start}:
            used = usage_at(overlapping, p)
            peak = [max(x, y) for x, y in zip(peak, used, strict=True)]
        wants = (need.cpus * count, need.memory_mib * count, need.disk_mib * count)
        free = (cap_cpu - peak[0], cap_mem - peak[1], cap_disk - peak[2])
        for label, unit, want, have in zip(("cpu", "memory", "disk"), ("", " MiB", " MiB"),
                                           wants, free, strict=True):
            if want > have:
                return f"{label}: need {want}{unit}, free {max(have, 0)}{unit}"
        return ""

    def free_until(self, h: int, start: int, need: Capacity, count: int,
                   limit: int) -> tuple[int, bool]:
        """How long from `start` host h can keep `count` vnodes of `need` (capped at `limit`),
        and whether the booking that cuts it short is fixed (cannot move)."""
        cap_cpu, cap_mem, cap_disk = self.cap[h]
        later = sorted((b for b in self.by_host[h] if b.end > start and b.start < limit),
                       key=lambda b: b.start)
        cpu0, mem0, disk0 = need.cpus * count, need.memory_mib * count, need.disk_mib * count
        for p_booking in later:
            p = max(start, p_booking.start)
            cpu, mem, disk = usage_at(later, p)
            if cpu + cpu0 > cap_cpu or mem + mem0 > cap_mem or disk + disk0 > cap_disk:
                owner = p_booking.owner
                fixed = not getattr(owner, "movable", False)
                return p, fixed
        return limit, True

    def room_now(self, need: Capacity) -> int:
        """Virtual nodes of `need` that fit now, ignoring bookings that have not started
        (an upper bound on what can start now)."""
        return self._fits_now(need)[1]

    def _fits_now(self, need: Capacity) -> tuple[dict[int, int], int, int]:
        """({host: vnodes of `need` that fit on it now, counting only bookings that have
        started} for hosts where some fit, their total, the total over hosts without future
        bookings). Kept up to date by re-counting only the hosts changed since the last
        lookup: a queue walk asks it for many leases, between changes to a few hosts."""
        got = self._now_entry(need)
        return got.fits, got.total, got.simple

    def _now_entry(self, need: Capacity) -> NowFits:
        """The `_now_fits` entry of `need`, brought up to date. Besides the fits it groups the
        hosts without future bookings by (vnodes that fit, bookings held): the hosts of a group
        are alike now but for their index."""
        log = self._now_log
        got = self._now_fits.get(need)
        if got is not None and got.seen == len(log):
            return got
        free_now = self._free_now
        if got is None or len(log) - got.seen > len(free_now):
            if len(log) > 4096:  # every entry starts over from here
                log.clear()
                self._now_fits.clear()
            if len(self._now_fits) >= 64:
                self._now_fits.clear()
            got = self._now_fits[need] = NowFits()
            for h in free_now:
                self._recount_now(got, h, need)
        else:
            # Once asked for, the parts of hosts with future bookings are kept in step.
            tracked = got.future_seen == got.seen
            for h in set(log[got.seen:]):
                got.drop(h)
                if h in free_now:
                    self._recount_now(got, h, need)
                if tracked:
                    self._refresh_future(got, h, need)
            if tracked:
                got.future_seen = len(log)
        got.seen = len(log)
        return got

    def _recount_now(self, entry: NowFits, h: int, need: Capacity) -> None:
        c = self.cap[h]
        u = self._used_now[h]
        fits = vnodes_fitting(c[0] - u[0], c[1] - u[1], c[2] - u[2], need)
        if fits > 0:
            entry.add(h, fits, None if self._nfuture[h] else (fits, len(self.by_host[h])))

    def _future_fits(self, need: Capacity, end: int) -> int:
        """Vnodes of `need` that fit throughout [now, end) on the enabled hosts holding
        future bookings: the sum of their `fit_count`s, from a step function of `end`. Each
        host's part is kept with the fits now and re-derived only when the host is in the
        change log (see `_now_entry`); the sum only when a part changed."""
        entry = self._future_entry(need)
        steps = entry.steps
        if steps is None:
            base = 0
            drops: list[tuple[int, int]] = []
            for low, lost in entry.future.values():
                base += low
                drops.extend(lost)
            drops.sort()
            starts = [p for p, _ in drops]
            totals = []
            total = base
            for _, lost_there in drops:
                total -= lost_there
                totals.append(total)
            steps = entry.steps = (base, starts, totals)
        base, starts, totals = steps
        j = bisect_left(starts, end)  # the drops at starts before `end`
        return totals[j - 1] if j else base

    def _fit_from_now(self, entry: NowFits, h: int, end: int) -> tuple[int, int]:
        """`fit_count(h, now, end, need)` for a host free now with future bookings, from its
        part of `entry` (brought up to date by `_future_entry`); the table is advanced to now,
        so every booking on h ends after now and those starting before `end` overlap."""
        fits, drops = entry.future[h]
        for start, lost in drops:
            if start >= end:
                break
            fits -= lost
        return fits, bisect_left(self._keys[h], end)

    def _future_entry(self, need: Capacity) -> NowFits:
        """The `_now_fits` entry of `need` with its hosts with future bookings up to date."""
        entry = self._now_entry(need)
        if entry.future_seen != entry.seen:  # first asked: every such host, from here on
            for h in self._future_set.intersection(entry.fits):
                self._refresh_future(entry, h, need)
            entry.future_seen = entry.seen
        return entry

    def _refresh_future(self, entry: NowFits, h: int, need: Capacity) -> None:
        """Re-derive host h's part of `entry.future` (its fits now are up to date)."""
        old = entry.future.pop(h, None)
        low = entry.fits.get(h, 0)  # disabled hosts are never free now
        if low > 0 and self._nfuture[h]:
            part = (low, self._future_drops(h, need, low))
            entry.future[h] = part
            if part != old:
                entry.steps = None
        elif old is not None:
            entry.steps = None

    def _future_drops(self, h: int, need: Capacity, low: int) -> list[tuple[int, int]]:
        """Where host h's future bookings lower the vnodes of `need` it holds from `low` now:
        [(the booking's start, vnodes lost there)]."""
        drops: list[tuple[int, int]] = []
        bookings = self.by_host[h]
        c = self.cap[h]
        for b in bookings[bisect_right(self._keys[h], self.now):]:
            cpu, mem, disk = usage_at(bookings, b.start)
            f = vnodes_fitting(c[0] - cpu, c[1] - mem, c[2] - disk, need)
            if f < low:
                drops.append((b.start, low - f))
                low = f
                if not low:
                    break
        return drops

    def best_single_now(self, need: Capacity, duration: int) -> int:
        """Where one vnode of `need` goes now for `duration`, over every enabled host, as the
        built-in greedy scores rank them: the host holding the fewest bookings, then the
        lowest index (what `sweep` at now and `_assign` would choose, without a candidate per
        host). -1: it fits nowhere now; -2: the table has not moved past now (use `sweep`)."""
        if self._ends.times and self._ends.times[0] <= self.now:
            return -2
        entry = self._future_entry(need)
        best_over = INFINITY
        best = -1
        for (_, overlapping), members in entry.groups.items():
            if members and overlapping <= best_over:
                h = min(members)
                if overlapping < best_over or h < best:
                    best_over, best = overlapping, h
        if entry.future:
            end = self.now + duration
            for h in entry.future:
                fits, overlapping = self._fit_from_now(entry, h, end)
                if fits > 0 and (overlapping < best_over or (overlapping == best_over
                                                             and h < best)):
                    best_over, best = overlapping, h
        return best

    def fits_now_hosts(self) -> set[int]:
        return self._free_now

    def future_hosts(self) -> list[int]:
        """Hosts holding a booking that has not started yet, in host order."""
        return sorted(h for h in self._future_set if self.enabled[h])

    def has_future(self, h: int) -> bool:
        return self._nfuture[h] > 0

    def candidates_at(self, start: int, end: int, need: Capacity,
                      hosts: Iterable[int] | None = None) -> list[Candidate]:
        """Every host (or one of `hosts`) that holds at least one vnode during [start, end)."""
        out = []
        for h in (range(len(self.hosts)) if hosts is None else hosts):
            if not self.enabled[h]:
                continue
            fits, overlapping = self.fit_count(h, start, end, need)
            if fits > 0:
                out.append(Candidate(h, fits, overlapping))
        return out

    def sweep(self, need: Capacity, k: int, duration: int, t0: int,
              hosts: set[int] | None = None, ready: dict[int, int] | None = None,
              future: bool = True, before: int = INFINITY,
              ignore: object = None, collect: bool = True,
              group: int = GROUP_NONE) -> Iterator[tuple[int, list[Candidate]]]:
        """Yield (T, candidates) for each changepoint T >= t0, in order, at which at least k
        vnodes of `need` fit for [T, T+duration); with future=False only T = t0 is tried.

        `hosts` restricts the hosts used; `ready` gives hosts that may be used only from a
        given time (an image still in transit); the sweep stops before `before`; bookings of
        `ignore` (a future run being re-planned) are treated as absent; with collect=False
        the candidates are left out (an empty list), for callers that only ask whether; with
        group=GROUP_SIMPLE hosts without future bookings that differ only in their index come
        as one candidate (see `Candidate.group`), for host scores that never look at the
        index; with GROUP_ALL hosts with future bookings too (their `until` is left unset).
        """
        if (not future and hosts is None and not ready and ignore is None
                and t0 <= self.now and not (self._ends.times and self._ends.times[0] <= self.now)):
            return iter(self._fit_now(need, k, duration, collect, group))
        return self._sweep(need, k, duration, t0, hosts, ready, future, before, ignore,
                           collect, group)

    def _fit_now(self, need: Capacity, k: int, duration: int, collect: bool,
                 group: int) -> tuple[tuple[int, list[Candidate]], ...]:
        """`sweep` at now only, over every enabled host, nothing ignored: what the cached fits
        now answer (nothing ends by now: the table has moved past it)."""
        t = self.now
        fits_now, upper_total, simple_total = self._fits_now(need)
        if upper_total < k:
            return ()
        exact: dict[int, Candidate] = {}
        if simple_total < k:
            if simple_total + self._future_fits(need, t + duration) < k:
                return ()  # the hosts with future bookings cannot make up the rest (exact)
            total = simple_total
            entry = self._future_entry(need)  # up to date: `_future_fits` just asked
            for h in sorted(entry.future):
                f, overlapping = self._fit_from_now(entry, h, t + duration)
                if f > 0:
                    exact[h] = Candidate(h, f, overlapping)
                    total += f
            if total < k:
                return ()
        if not collect:
            return ((t, []),)
        return ((t, self._collect(t, duration, need, fits_now, exact, {}, {}, None,
                                  self._nfuture, None, group)),)

    def _sweep(self, need: Capacity, k: int, duration: int, t0: int,
               hosts: set[int] | None, ready: dict[int, int] | None, future: bool,
               before: int, ignore: object, collect: bool,
               group: int) -> Iterator[tuple[int, list[Candidate]]]:
        t0 = max(t0, self.now)
        ready = ready or {}
        enabled = self.enabled
        nfuture = self._nfuture
        cap = self.cap
        if ignore is not None:
            # A host whose only future bookings are ignored ones is as simple as a host with
            # none: its fit is exactly what its started bookings leave.
            nfuture = list(nfuture)
            for b in self._starts.items:
                if b.owner is ignore:
                    nfuture[b.host] -= 1

        if hosts is None and not ready:
            def allowed(h: int, t: int) -> bool:
                return enabled[h]
        else:
            def allowed(h: int, t: int) -> bool:
                return enabled[h] and (hosts is None or h in hosts) and ready.get(h, -1) <= t

        # Every host's fit counting only bookings that have started is an upper bound; it is
        # exact for hosts without future bookings ("simple"), whose usage only falls from now.
        scratch: dict[int, list[int]] = {}
        released: dict[int, int] = {}
        n_released: dict[int, int] = {}  # bookings ended by t, per host
        contrib: dict[int, int]
        whole = hosts is None and not ready  # every enabled host, from now: the cached case
        if whole:
            fits_now, upper_total, simple_total = self._fits_now(need)
            contrib = dict(fits_now)
            if ignore is not None:
                simple_total = sum(f for h, f in contrib.items() if not nfuture[h])
        else:
            pool: Iterable[int] = self._free_now if hosts is None else (
                h for h in hosts if h in self._free_now)
            contrib = {}
            simple_total = 0
            upper_total = 0
            for h in pool:
                used = self._used_now[h]
                c = cap[h]
                f = vnodes_fitting(c[0] - used[0], c[1] - used[1], c[2] - used[2], need)
                if f > 0:
                    contrib[h] = f
                    if allowed(h, t0):
                        upper_total += f
                        if not nfuture[h]:
                            simple_total += f
        pending_ready = sorted((t, h) for h, t in ready.items() if t > t0)

        end_times = self._ends.times
        ending = self._ends.items
        n_ends = len(end_times)
        i = 0
        t = t0
        while True:
            # Hosts whose image arrives by t start to count...
            while pending_ready and pending_ready[0][0] <= t:
                _, h = pending_ready.pop(0)
                if enabled[h] and (hosts is None or h in hosts):
                    f = contrib.get(h, 0)
                    upper_total += f
                    if not nfuture[h]:
                        simple_total += f
            # ...and bookings that end by t give their capacity back.
            while i < n_ends and end_times[i] <= t:
                b = ending[i]
                i += 1
                if not b.counted:
                    continue
                h = b.host
                u = scratch.get(h)
                if u is None:
                    u = scratch[h] = list(self._used_now[h])
                u[0] -= b.cpus
                u[1] -= b.mem
                u[2] -= b.disk
                released[h] = b.end
                n_released[h] = n_released.get(h, 0) + 1
                c = cap[h]
                f = vnodes_fitting(c[0] - u[0], c[1] - u[1], c[2] - u[2], need)
                old = contrib.get(h, 0)
                if f != old:
                    contrib[h] = f
                    if enabled[h] if whole else allowed(h, t):
                        upper_total += f - old
                        if not nfuture[h]:
                            simple_total += f - old
            if (upper_total >= k and simple_total < k and whole and ignore is None
                    and t == self.now
                    and simple_total + self._future_fits(need, t + duration) < k):
                pass  # the hosts with future bookings cannot make up the rest (exact)
            elif upper_total >= k:
                exact: dict[int, Candidate] = {}
                total = simple_total
                if simple_total < k:
                    for h in sorted(self._future_set.intersection(contrib)):
                        if (nfuture[h] and contrib[h] > 0
                                and (enabled[h] if whole else allowed(h, t))):
                            f, overlapping = self.fit_count(h, t, t + duration, need, ignore)
                            if f > 0:
                                exact[h] = Candidate(h, f, overlapping)
                                total += f
                if total >= k:
                    yield t, (self._collect(t, duration, need, contrib, exact, released,
                                            n_released, None if whole else allowed, nfuture,
                                            ignore, group)
                              if collect else [])
            if not future:
                return
            if i >= n_ends and not pending_ready:
                return
            t = end_times[i] if i < n_ends else INFINITY
            if pending_ready:
                t = min(t, pending_ready[0][0])
            if t >= before:
                return

    def _collect_grouped(self, t: int, duration: int, need: Capacity,
                         contrib: dict[int, int], exact: dict[int, Candidate],
                         released: dict[int, int], n_released: dict[int, int],
                         groups: dict[tuple[int, int], set[int]], group: int,
                         append: Callable[[Candidate], None]) -> None:
        """`_collect` for every enabled host, nothing ignored, grouped, while the table is as
        `groups` (kept with the fits now) saw it. A host without future bookings that gave
        nothing back by t is as it is now: it is in its group, with the same fits; the hosts
        that gave something back and those with future bookings are looked at one by one."""
        enabled = self.enabled
        none = -INFINITY
        alike: dict[tuple[int, int, int], list[int]] = {}
        # At now, with nothing ended by now, the hosts with future bookings have their fits
        # from now kept with the fits now (see `_fit_from_now`).
        kept = (self._future_entry(need) if t == self.now and not released
                and not (self._ends.times and self._ends.times[0] <= t) else None)
        for h in sorted(self._future_set.intersection(contrib)):
            if contrib[h] > 0 and enabled[h]:
                c = exact.get(h)
                if c is None:
                    if kept is not None and h in kept.future:
                        fits, overlapping = self._fit_from_now(kept, h, t + duration)
                    else:
                        fits, overlapping = self.fit_count(h, t, t + duration, need)
                    if fits <= 0:
                        continue
                    if group == GROUP_ALL:
                        _add_alike(alike, (fits, overlapping, released.get(h, none)), h)
                        continue
                    c = Candidate(h, fits, overlapping)
                elif group == GROUP_ALL:
                    _add_alike(alike, (c.fits, c.overlapping, released.get(h, none)), h)
                    continue
                c.free_since = released.get(h, none)
                append(c)
        if released:
            nfuture = self._nfuture
            by_host = self.by_host
            for h, since in released.items():
                f = contrib.get(h, 0)
                if f > 0 and enabled[h] and not nfuture[h]:
                    _add_alike(alike, (f, len(by_host[h]) - n_released[h], since), h)
        for (f, overlapping), members in groups.items():
            if released:
                members = members.difference(released)
            if group == GROUP_ALL and members:
                sig = (f, overlapping, none)
                hosts = alike.get(sig)
                if hosts is not None:  # hosts with future bookings alike: one candidate
                    hosts.extend(members)
                    continue
            if len(members) > 1:
                hosts = sorted(members)
                append(Candidate(hosts[0], f, overlapping, INFINITY, True, none, hosts))
            elif members:
                append(Candidate(next(iter(members)), f, overlapping))
        _append_alike(alike, append)

    def _collect(self, t: int, duration: int, need: Capacity, contrib: dict[int, int],
                 exact: dict[int, Candidate], released: dict[int, int],
                 n_released: dict[int, int], allowed: Callable[[int, int], bool] | None,
                 nfuture: list[int], ignore: object = None,
                 group: int = GROUP_NONE) -> list[Candidate]:
        """The candidates at t; `allowed` None means every enabled host."""
        out: list[Candidate] = []
        append = out.append
        if group and allowed is None and ignore is None:
            entry = self._now_fits.get(need)
            if entry is not None and entry.seen == len(self._now_log):
                self._collect_grouped(t, duration, need, contrib, exact, released, n_released,
                                      entry.groups, group, append)
                return out
        by_host = self.by_host
        enabled = self.enabled
        released_at = released.get
        n_released_of = n_released.get
        none = -INFINITY
        # Hosts whose bookings have all started, by (fits, overlapping, free since).
        alike: dict[tuple[int, int, int], list[int]] = {}
        for h, f in contrib.items():
            if f <= 0 or not (enabled[h] if allowed is None else allowed(h, t)):
                continue
            if nfuture[h]:
                c = exact.get(h)
                if c is None:
                    fits, overlapping = self.fit_count(h, t, t + duration, need, ignore)
                    if fits <= 0:
                        continue
                    c = Candidate(h, fits, overlapping)
                if group == GROUP_ALL and ignore is None:
                    _add_alike(alike, (c.fits, c.overlapping, released_at(h, none)), h)
                    continue
                c.free_since = released_at(h, none)
            elif ignore is None:
                # All its bookings have started; those that end by t are the released ones.
                if group:
                    _add_alike(alike, (f, len(by_host[h]) - n_released_of(h, 0),
                                       released_at(h, none)), h)
                    continue
                c = Candidate(h, f, len(by_host[h]) - n_released_of(h, 0), INFINITY, True,
                              released_at(h, none))
            else:  # as fit_count counts them: without the ignored run's bookings
                overlapping = sum(1 for b in by_host[h] if b.end > t and b.owner is not ignore)
                c = Candidate(h, f, overlapping, INFINITY, True, released_at(h, none))
            append(c)
        _append_alike(alike, append)
        return out
