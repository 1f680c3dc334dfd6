"""Find policies by name: built-ins and third-party packages alike, through entry points.

A third-party package registers, in its pyproject.toml,
    [project.entry-points."cloudctl.policies.preemption"]
    my-policy = "my_package.module:MyPolicy"
and `--preemption-policy my-policy` (or the config key) picks it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from cloudctl.errors import InvalidInput

KINDS = ("admission", "host_filter", "host_score", "preemption", "burst")

# The same names the package registers as entry points; used when running from a source
# tree that has not been installed, so the built-ins never depend on packaging metadata.
BUILTIN: dict[str, dict[str, str]] = {
    "admission": {"accept-all": "cloudctl.policies.admission:AcceptAll",
                  "fits-cluster": "cloudctl.policies.admission:FitsCluster"},
    "host_filter": {"enabled": "cloudctl.policies.host_filter:EnabledHosts"},
    "host_score": {"greedy": "cloudctl.policies.host_score:Greedy",
                   "pack": "cloudctl.policies.host_score:Pack"},
    "preemption": {"ar-preempts-be": "cloudctl.policies.preemption:ARPreemptsBE",
                   "no-preemption": "cloudctl.policies.preemption:NoPreemption",
                   "oldest-first": "cloudctl.policies.preemption:OldestFirst"},
    "burst": {"cheapest-fit": "cloudctl.policies.burst:CheapestFit",
              "never": "cloudctl.policies.burst:Never"},
}


def entry_points(group: str) -> Any:
    """Installed packages' entry points in `group` (importlib.metadata is slow to import,
    and the built-in policies never need it)."""
    from importlib.metadata import entry_points as installed

    return installed(group=group)


def _registered(kind: str) -> dict[str, str]:
    found = dict(BUILTIN[kind])
    for ep in entry_points(group=f"cloudctl.policies.{kind}"):
        found.setdefault(ep.name, ep.value)
    return found


def available(kind: str) -> list[str]:
    return sorted(_registered(kind))


def load_policy(kind: str, name: str) -> Any:
    """An instance of the policy registered as `name` for the extension point `kind`."""
    if kind not in KINDS:
        raise InvalidInput(f"unknown policy kind {kind!r}")
    target = BUILTIN[kind].get(name)
    if target is None:
        target = _registered(kind).get(name)
    if target is None:
        known = ", ".join(available(kind))
        raise InvalidInput(f"unknown {kind.replace('_', '-')} policy {name!r} (known: {known})")
    module_name, _, attr = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(f"{kind} policy {name!r} cannot be loaded from {target}: {exc}") from exc
    return factory()


@dataclass(frozen=True)
class PolicySet:
    admission: Any
    host_filter: Any
    host_score: Any
    preemption: Any

    @classmethod
    def from_names(cls, admission: str = "accept-all", host_filter: str = "enabled",
                   host_score: str = "greedy", preemption: str = "ar-preempts-be") -> PolicySet:
        return cls(
            admission=load_policy("admission", admission),
            host_filter=load_policy("host_filter", host_filter),
            host_score=load_policy("host_score", host_score),
            preemption=load_policy("preemption", preemption),
        )
