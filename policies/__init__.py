"""Scheduling policies, one small object per extension point (the extension points and
`Status` are the scheduler's: `cloudctl.scheduler.policy`), and the sets a configuration names,
loaded by name through `cloudctl.plugins` for the composition root to hand to the scheduler.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cloudctl import plugins
from cloudctl.scheduler.policy import PolicySet

if TYPE_CHECKING:
    from cloudctl.scheduler.burst import Provider
    from cloudctl.scheduler.config import SchedulerConfig


def policy_set(config: SchedulerConfig) -> PolicySet:
    """The policies `config` names, loaded, for the Scheduler."""
    return PolicySet(
        admission=plugins.load_policy("admission", config.admission_policy),
        host_filter=plugins.load_policy("host_filter", config.host_filter_policy),
        host_score=plugins.load_policy("host_score", config.host_score_policy),
        preemption=plugins.load_policy("preemption", config.preemption_policy),
    )


def burst_policies(providers: Sequence[Provider]) -> dict[str, Any]:
    """Each provider's burst policy, loaded, by provider name, for the Burster."""
    return {p.name: plugins.load_policy("burst", p.policy) for p in providers}
