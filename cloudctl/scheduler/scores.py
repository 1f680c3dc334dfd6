"""The built-in host scores' keys, compiled with the scheduler (`cloudctl/_native.py`).

The policies in `policies/host_score.py` hold them: a placement ranks every candidate host by
its key, so the key is on the scheduler's hottest path, and compiled it reads a candidate's
fields without Python's attribute lookups. A plug-in's key may be any callable.
"""

from __future__ import annotations

from cloudctl.scheduler.lease import Lease
from cloudctl.scheduler.slottable import Candidate


def greedy_key(lease: Lease, candidate: Candidate, end: int) -> tuple[int, int, int, int]:
    """Hosts free for the whole run first, then fewer leases, then the hosts whose capacity
    lasts longest, then those that freed up last."""
    return (0 if candidate.until >= end else 1, candidate.overlapping, -candidate.until,
            -candidate.free_since)


def greedy_index_key(lease: Lease, candidate: Candidate, end: int) -> tuple[int, int, int]:
    """`greedy_key` as Haizea's greedy mapper ranks: every host free for the whole run alike
    (however long after), and ties left to the host order."""
    until = candidate.until
    if until >= end:
        return (0, candidate.overlapping, 0)
    return (1, candidate.overlapping, -until)


def pack_key(lease: Lease, candidate: Candidate, end: int) -> tuple[int, int, int]:
    """Hosts free for the whole run first, then the busiest, then the fullest."""
    return (0 if candidate.until >= end else 1, -candidate.overlapping, candidate.fits)
