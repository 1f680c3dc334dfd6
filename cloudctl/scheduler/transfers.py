"""One-at-a-time resources booked as busy intervals: the image repository's link, and the
cluster-wide suspend/resume channel of global exclusion."""

from __future__ import annotations

from bisect import insort


class TransferLink:
    def __init__(self) -> None:
        self.busy: list[tuple[int, int]] = []  # sorted, non-overlapping [start, end)

    def earliest(self, after: int, length: int) -> int:
        """Earliest start >= after of a free gap of `length` (first come, first served)."""
        t = after
        for start, end in self.busy:
            if end <= t:
                continue
            if start >= t + length:
                break
            t = max(t, end)
        return t

    def latest(self, deadline: int, length: int, not_before: int) -> int | None:
        """Latest start of a free gap of `length` that ends by `deadline`, or None."""
        t = deadline - length
        for start, end in reversed(self.busy):
            if start >= t + length:
                continue
            if end <= t:
                break
            t = start - length
        return t if t >= not_before else None

    def book(self, start: int, end: int) -> None:
        insort(self.busy, (start, end))

    def unbook(self, start: int, end: int) -> None:
        if (start, end) in self.busy:
            self.busy.remove((start, end))

    def prune(self, before: int) -> None:
        self.busy = [b for b in self.busy if b[1] > before]
