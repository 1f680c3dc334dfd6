"""Host scoring: which of the hosts that fit a lease to use first."""

from __future__ import annotations

from cloudctl.scheduler.scores import greedy_key, pack_key


class Greedy:
    """Haizea's greedy mapping: hosts that stay free for the whole run first, then hosts with
    fewer leases; several virtual nodes go to one host when they fit.  Among equals, a future
    reservation takes the hosts that free up last, leaving the hosts free now to backfilling
    (what count-based EASY does implicitly)."""

    name = "greedy"
    # The key never reads `candidate.host`: hosts alike but for their index may be ranked as
    # one group (the slot table's `sweep(group=True)`).
    host_blind = True
    # A host with nothing overlapping beats any other: lets AR placement stop early.
    idle_first = True

    # (0 if free for the whole run else 1, overlapping, -until, -free_since), compiled.
    key = staticmethod(greedy_key)


class Pack:
    """Fill busy hosts first, keeping whole hosts free for wide leases."""

    name = "pack"
    host_blind = True  # see Greedy

    # (0 if free for the whole run else 1, -overlapping, fits), compiled.
    key = staticmethod(pack_key)
