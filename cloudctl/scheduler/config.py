"""Scheduler options: one frozen value passed in, never read from a global.

The field names are the ones `cloudctl simulate` takes as flags and the config file's
[scheduler] table takes as keys (with dashes for underscores).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from cloudctl.errors import InvalidInput

BACKFILLING_NAMES = {"off": 0, "easy": 1, "aggressive": 1, "conservative": None}


def parse_backfilling(value: str | int | None) -> int | None:
    """'off' -> 0, 'easy' -> 1, 'conservative' -> None (unbounded), 'N' -> N."""
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip().lower()
    if text in BACKFILLING_NAMES:
        return BACKFILLING_NAMES[text]
    if text.isdigit():
        return int(text)
    raise InvalidInput(
        f"--backfilling: expected off, easy, conservative or a number, got {value!r}")


def backfilling_name(limit: int | None) -> str:
    return {0: "off", 1: "easy", None: "conservative"}.get(limit, str(limit))


# Named sets of options; options given beside a profile win over it. "haizea-1.0" is Haizea
# 1.0 as it ran (see ../shared/haizea-oracle/README.md), quirks included:
# - split: a BE lease may run up to any future reservation, another BE lease's too, and be
#   suspended there (Q14), not only up to an AR's or IM's;
# - requeue at-once: a running lease that an AR preempts without suspension is cancelled and
#   requeued when the AR is accepted (Q2), not killed when the AR starts;
# - migration allowance: a suspended lease waits for its memory (and disk) image to be
#   copied even when it resumes where it is (Q10);
# - oldest-first: ARs preempt the oldest best-effort lease first (Q1);
# - threshold estimate haizea: the scheduling threshold counts nodes x (the memory of all the
#   lease's nodes / rate + overhead) for a suspension (and as much for a resumption);
# - requeue order behind: a lease queued again (suspended, requeued) goes behind the leases
#   queued with the same submit time, not by its id among them;
# - reserved until run: a future reservation counts against the backfilling limit until the
#   lease's VMs run, its resumption included;
# - no replan after preemption: future reservations move earlier only after early ends, not
#   when a preemption frees capacity;
# - host ties index: among hosts the greedy score ranks alike, the lowest index first, not
#   the hosts that freed up last;
# - no reprieve: every victim taken out until the preemptor fits is preempted, even those it
#   turns out not to need.
PROFILES: dict[str, dict[str, Any]] = {
    "cloudctl": {},
    "haizea-1.0": {
        "split": "any",
        "requeue": "at-once",
        "migration_allowance": True,
        "preemption_policy": "oldest-first",
        "threshold_estimate": "haizea",
        "requeue_order": "behind",
        "reserved_until": "run",
        "replan_after_preemption": False,
        "host_ties": "index",
        "reprieve": False,
    },
}


@dataclass(frozen=True)
class SchedulerConfig:
    # How many queued best-effort leases may hold a future reservation (None = all).
    backfilling: int | None = 1
    suspension: str = "all"  # none | all
    suspend_rate: float = 32.0  # MiB/s
    resume_rate: float = 32.0  # MiB/s
    override_suspend_time: int | None = None  # s, replaces ceil(memory/rate)
    override_resume_time: int | None = None
    suspend_exclusion: str = "local"  # local | global
    enactment_overhead: int = 0  # s per command per VM
    shutdown_time: int = 0  # s
    migration: bool = False  # cold-migrate suspended leases to other hosts
    threshold_factor: float = 1.0
    preemption_policy: str = "ar-preempts-be"
    host_score_policy: str = "greedy"
    host_filter_policy: str = "enabled"
    admission_policy: str = "accept-all"
    image_transfer: str = "none"  # none | multicast | unicast
    bandwidth: float = 100.0  # Mbit/s from the image repository
    image_cache: bool = True
    profile: str = "cloudctl"  # the named set of options these started from (PROFILES)
    # Split a BE lease (run, then suspend) against future reservations of fixed leases only
    # (AR, IM), or against any, best-effort ones too (Haizea, Q14).
    split: str = "fixed"  # fixed | any
    # A running lease preempted without suspension: killed when the preemptor starts, or
    # cancelled and requeued when the preemptor is accepted (Haizea, Q2).
    requeue: str = "at-start"  # at-start | at-once
    # A suspended lease's memory image moves as soon as the network allows (the destination
    # may still be busy), not when the destination frees.
    early_migration: bool = True
    # Add the migration time before a resumption even when the lease stays put (Haizea, Q10).
    migration_allowance: bool = False
    # The suspend/resume times the scheduling threshold counts: the planned layout's, or
    # Haizea's per-lease overestimate.
    threshold_estimate: str = "layout"  # layout | haizea
    # Where a lease queued again goes among those of its submit time: by id, or behind them.
    requeue_order: str = "by-id"  # by-id | behind
    # A BE lease's future reservation counts against the backfilling limit until the
    # reservation starts (its migration or resumption, if any), or until its VMs run.
    reserved_until: str = "start"  # start | run
    # When a preemption frees capacity (a victim requeued), future reservations that could
    # now start earlier are placed again.
    replan_after_preemption: bool = True
    # Among hosts the greedy score ranks alike: those that freed up last first (leaving the
    # hosts free now to backfilling), or the lowest index (Haizea).
    host_ties: str = "free-last"  # free-last | index
    # After victims are taken out one at a time until a preemptor fits, those it can do
    # without are given back.
    reprieve: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.suspension not in ("none", "all"):
            problems.append(f"suspension must be none or all, got {self.suspension!r}")
        if self.suspend_exclusion not in ("local", "global"):
            problems.append(
                f"suspend-exclusion must be local or global, got {self.suspend_exclusion!r}")
        if self.image_transfer not in ("none", "multicast", "unicast"):
            problems.append(
                f"image-transfer must be none, multicast or unicast, got {self.image_transfer!r}"
            )
        for name in ("suspend_rate", "resume_rate", "bandwidth"):
            if getattr(self, name) <= 0:
                problems.append(f"{name.replace('_', '-')} must be positive")
        for name in ("enactment_overhead", "shutdown_time", "override_suspend_time",
                     "override_resume_time"):
            value = getattr(self, name)
            if value is not None and value < 0:
                problems.append(f"{name.replace('_', '-')} must not be negative")
        if self.threshold_factor < 0:
            problems.append("threshold-factor must not be negative")
        if self.backfilling is not None and self.backfilling < 0:
            problems.append("backfilling must not be negative")
        if self.profile not in PROFILES:
            problems.append(f"profile must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        if self.split not in ("fixed", "any"):
            problems.append(f"split must be fixed or any, got {self.split!r}")
        if self.threshold_estimate not in ("layout", "haizea"):
            problems.append(
                f"threshold-estimate must be layout or haizea, got {self.threshold_estimate!r}")
        if self.requeue_order not in ("by-id", "behind"):
            problems.append(f"requeue-order must be by-id or behind, got {self.requeue_order!r}")
        if self.reserved_until not in ("start", "run"):
            problems.append(f"reserved-until must be start or run, got {self.reserved_until!r}")
        if self.host_ties not in ("free-last", "index"):
            problems.append(f"host-ties must be free-last or index, got {self.host_ties!r}")
        if self.requeue not in ("at-start", "at-once"):
            problems.append(f"requeue must be at-start or at-once, got {self.requeue!r}")
        if problems:
            raise InvalidInput("; ".join(problems))

    @property
    def suspension_enabled(self) -> bool:
        return self.suspension == "all"

    def with_options(self, **options: Any) -> SchedulerConfig:
        """A copy with the given options; None values leave a field as it is. A `profile`
        sets its options first; the other options given win over it."""
        known = {f.name for f in fields(self)}
        changes: dict[str, Any] = {}
        profile = options.get("profile")
        if profile is not None:
            if profile not in PROFILES:
                raise InvalidInput(f"unknown profile {profile!r} (known: {', '.join(PROFILES)})")
            changes.update(PROFILES[profile])
        for key, value in options.items():
            name = key.replace("-", "_")
            if name not in known:
                raise InvalidInput(f"unknown scheduler option {key!r}")
            if value is not None:
                changes[name] = parse_backfilling(value) if name == "backfilling" else value
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        out = {f.name.replace("_", "-"): getattr(self, f.name) for f in fields(self)}
        out["backfilling"] = backfilling_name(self.backfilling)
        out["migration"] = "yes" if self.migration else "no"
        return out

    @property
    def split_any(self) -> bool:
        return self.split == "any"
