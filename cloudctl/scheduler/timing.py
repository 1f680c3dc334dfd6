"""Haizea's timing model: overheads are reservations of their own, computed here."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from cloudctl.scheduler.config import SchedulerConfig


def per_vm_time(memory_mib: int, rate: float, override: int | None) -> int:
    """Seconds to write (or read) one VM's memory image, without the command overhead."""
    if override is not None:
        return override
    return math.ceil(memory_mib / rate)


def stepped_time(hosts: Sequence[int], per_vm: int, overhead: int, exclusion: str) -> int:
    """Suspend or resume the VMs of one lease placed on `hosts` (one entry per VM).

    Local exclusion: VMs on one host go one after another, VMs on different hosts form one
    parallel step; commands still go out one by one, so a step lasts per_vm + overhead x VMs.
    Global exclusion: every VM in turn.
    """
    if not hosts:
        return 0
    if exclusion == "global":
        return len(hosts) * (per_vm + overhead)
    per_host = Counter(hosts).values()
    total = 0
    for step in range(max(per_host)):
        in_step = sum(1 for n in per_host if n > step)
        total += per_vm + overhead * in_step
    return total


def suspend_time(hosts: Sequence[int], memory_mib: int, config: SchedulerConfig) -> int:
    per_vm = per_vm_time(memory_mib, config.suspend_rate, config.override_suspend_time)
    return stepped_time(hosts, per_vm, config.enactment_overhead, config.suspend_exclusion)


def resume_time(hosts: Sequence[int], memory_mib: int, config: SchedulerConfig) -> int:
    per_vm = per_vm_time(memory_mib, config.resume_rate, config.override_resume_time)
    return stepped_time(hosts, per_vm, config.enactment_overhead, config.suspend_exclusion)


def shutdown_duration(nodes: int, config: SchedulerConfig) -> int:
    return config.shutdown_time + config.enactment_overhead * nodes


def transfer_time(size_mib: int, bandwidth_mbps: float) -> int:
    """1024 MiB at 100 Mbit/s takes 82 s."""
    return math.ceil(size_mib * 8 / bandwidth_mbps)
