"""Find plug-ins by name: hypervisor drivers and policies, built-in or from installed packages,
through entry points.

A third-party package registers, in its pyproject.toml,
    [project.entry-points."cloudctl.policies.preemption"]
    my-policy = "my_package.module:MyPolicy"
and `--preemption-policy my-policy` (or the config key) picks it; a driver registers in
`cloudctl.drivers.hypervisor` and `host add --driver NAME` picks it. A plug-in's module is
imported only when it is used.

It sits beside the drivers, below the scheduler: it knows names and import paths, not what it
loads (`cloudctl.policies.policy_set` builds the scheduler's PolicySet from it).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cloudctl.errors import InvalidInput

HYPERVISOR = "cloudctl.drivers.hypervisor"
POLICY_KINDS = ("admission", "host_filter", "host_score", "preemption", "burst")


def policy_group(kind: str) -> str:
    """The entry-point group of a policy extension point (`host_score`, ...)."""
    return f"cloudctl.policies.{kind}"


# The same names pyproject.toml registers as entry points; used when running from a source
# tree that has not been installed, so the built-ins never depend on packaging metadata.
BUILTIN: dict[str, dict[str, str]] = {
    HYPERVISOR: {
        "test": "cloudctl.drivers.libvirt:TestDriver",
        "qemu": "cloudctl.drivers.libvirt:QemuDriver",
        "kvm": "cloudctl.drivers.libvirt:QemuDriver",
        "xen": "cloudctl.drivers.xen:XenDriver",
        "xen-test": "cloudctl.drivers.xen:XenTestDriver",
    },
    policy_group("admission"): {
        "accept-all": "cloudctl.policies.admission:AcceptAll",
        "fits-cluster": "cloudctl.policies.admission:FitsCluster",
    },
    policy_group("host_filter"): {
        "enabled": "cloudctl.policies.host_filter:EnabledHosts",
    },
    policy_group("host_score"): {
        "greedy": "cloudctl.policies.host_score:Greedy",
        "pack": "cloudctl.policies.host_score:Pack",
    },
    policy_group("preemption"): {
        "ar-preempts-be": "cloudctl.policies.preemption:ARPreemptsBE",
        "no-preemption": "cloudctl.policies.preemption:NoPreemption",
        "oldest-first": "cloudctl.policies.preemption:OldestFirst",
    },
    policy_group("burst"): {
        "cheapest-fit": "cloudctl.policies.burst:CheapestFit",
        "never": "cloudctl.policies.burst:Never",
    },
}


@dataclass(frozen=True)
class _Wording:
    unknown: str  # "unknown {unknown} {name!r} (known: ...)"
    unloadable: str  # "{unloadable} {name!r} cannot be loaded from ...: ..."


# How errors name a plug-in of each group (the texts users and tests already know).
_WORDING: dict[str, _Wording] = {
    HYPERVISOR: _Wording("hypervisor driver", "hypervisor driver"),
    **{policy_group(kind): _Wording(f"{kind.replace('_', '-')} policy", f"{kind} policy")
       for kind in POLICY_KINDS},
}


def entry_points(group: str) -> Iterable[Any]:
    """Installed packages' entry points in `group` (importlib.metadata is slow to import,
    and the built-ins never need it)."""
    from importlib.metadata import entry_points as installed

    return installed(group=group)


def registered(group: str) -> dict[str, str]:
    """Every name in `group` and the `module:attr` it loads, built-ins first."""
    found = dict(BUILTIN[group])
    for ep in entry_points(group):
        found.setdefault(ep.name, ep.value)
    return found


def available(group: str) -> list[str]:
    return sorted(registered(group))


def is_registered(group: str, name: str) -> bool:
    """Whether `name` can be loaded from `group` (a built-in never scans installed packages)."""
    return name in BUILTIN[group] or name in registered(group)


def load(group: str, name: str) -> Any:
    """The object registered as `name` in `group` (its module is imported now, not before)."""
    wording = _WORDING[group]
    target = BUILTIN[group].get(name)
    if target is None:
        target = registered(group).get(name)
    if target is None:
        known = ", ".join(available(group))
        raise InvalidInput(f"unknown {wording.unknown} {name!r} (known: {known})")
    module_name, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(f"{wording.unloadable} {name!r} cannot be loaded from {target}: "
                           f"{exc}") from exc


# -- policies ----------------------------------------------------------------------------------

def load_policy(kind: str, name: str) -> Any:
    """An instance of the policy registered as `name` for the extension point `kind`."""
    if kind not in POLICY_KINDS:
        raise InvalidInput(f"unknown policy kind {kind!r}")
    return load(policy_group(kind), name)()

