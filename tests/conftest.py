"""The suite's markers, applied by folder and by fixture; the fixture plugins; and helpers for
the scheduler tests: terse hosts and requests, and a whole run in one call.

Times are seconds from 0; every host and request is 1 CPU / 1024 MiB unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cloudctl.policies import policy_set
from paths import SCENARIOS
from sshd import ssh_hosts, ssh_network  # noqa: F401  (fixtures: real sshd test hosts)

from cloudctl.scheduler.config import SchedulerConfig, parse_backfilling
from cloudctl.scheduler.core import Scheduler
from cloudctl.scheduler.lease import Lease
from cloudctl.scheduler.model import Capacity, HostSpec, LeaseRequest, LeaseType
from cloudctl.scheduler.policy import PolicySet
from cloudctl.sim.simulator import simulate

# Fixtures for tests on real libvirt + QEMU (system_libvirt, tiny_guest, session_libvirts, ...),
# on moto's EC2 server, and the CLI harness's `cli` (a cloud of two test hosts).
pytest_plugins = ["real_qemu", "moto_ec2", "cli_harness"]

# -- markers (registered in pyproject.toml) -------------------------------------------------
# `real`: needs a real daemon or process; `slow`: takes more than about 2 s. The fast lane is
# `pytest -m "not slow and not real"`. Slow tests carry `pytestmark`/decorators in their files.
FOLDER_MARKERS = {"real": "real"}  # tests/<folder>/: every test there
# A test asking for one of these fixtures talks to a real sshd, moto server or libvirtd.
REAL_FIXTURES = {"ssh_network", "ssh_hosts", "moto_server", "ec2_env", "system_libvirt",
                 "tiny_guest", "session_libvirts", "shared_dir", "qemu_host"}
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        folder = item.path.resolve().relative_to(TESTS).parts[0]
        if folder in FOLDER_MARKERS:
            item.add_marker(FOLDER_MARKERS[folder])
        if REAL_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker("real")


# REFERENCE.md's scenario setup: 2 s per command, a suspend takes only its command (override
# 0 s), a resume reads 1024 MiB at 32 MiB/s plus its command, EASY backfilling.
HAIZEA = dict(enactment_overhead=2, shutdown_time=0, override_suspend_time=0, resume_rate=32,
              backfilling=1, suspension="all")


def hosts(n: int, cpus: int = 1, memory: int = 1024, disk: int = 0,
          prefix: str = "host") -> list[HostSpec]:
    return [HostSpec(f"{prefix}-{i}", Capacity(cpus, memory, disk)) for i in range(n)]


def request(lease_id: int, kind: LeaseType, submit: int, duration: int, nodes: int = 1, *,
            start: int | None = None, cpus: int = 1, memory: int = 1024, disk: int = 0,
            **fields: Any) -> LeaseRequest:
    return LeaseRequest(id=lease_id, type=kind, submit=submit, nodes=nodes,
                        capacity=Capacity(cpus, memory, disk), duration=duration, start=start,
                        **fields)


def be(lease_id: int, submit: int, duration: int, nodes: int = 1, **kw: Any) -> LeaseRequest:
    return request(lease_id, LeaseType.BE, submit, duration, nodes, **kw)


def ar(lease_id: int, submit: int, start: int, duration: int, nodes: int = 1,
       **kw: Any) -> LeaseRequest:
    return request(lease_id, LeaseType.AR, submit, duration, nodes, start=start, **kw)


def im(lease_id: int, submit: int, duration: int, nodes: int = 1, **kw: Any) -> LeaseRequest:
    return request(lease_id, LeaseType.IM, submit, duration, nodes, start=submit, **kw)


def config(**options: Any) -> SchedulerConfig:
    """SchedulerConfig with `backfilling` also given by name ("off", "easy", "conservative",
    "N"); None means conservative, as in the config itself."""
    if "backfilling" in options:
        options["backfilling"] = parse_backfilling(options["backfilling"])
    return SchedulerConfig(**options)


def scheduler(host_list: list[HostSpec], policies: PolicySet | None = None,
              **options: Any) -> Scheduler:
    """A scheduler with the policies given, else those its options name."""
    settings = config(**options)
    return Scheduler(host_list, settings,
                     policy_set(settings) if policies is None else policies)


def run(requests: list[LeaseRequest], host_list: list[HostSpec],
        policies: PolicySet | None = None, **options: Any) -> Scheduler:
    """Simulate the whole workload to the end; the leases are in the returned scheduler."""
    sched = scheduler(host_list, policies, **options)
    simulate(requests, host_list, sched)
    return sched


def timeline(lease: Lease) -> dict[str, Any]:
    """Everything a lease did as one comparable value: state, runs as (start, end, hosts),
    done time, and the suspensions, resumptions, migrations and transfers it had (only
    those it had, so an unexpected one makes the comparison fail). A run's hosts are
    sorted: which virtual node sits where does not matter, how many go to each host does."""
    runs = [(start, end, tuple(sorted(where))) for start, end, where in lease.runs]
    out: dict[str, Any] = {"state": lease.state.value, "runs": runs, "done": lease.done_at}
    for name in ("suspensions", "resumptions", "migrations", "transfers"):
        if getattr(lease, name):
            out[name] = getattr(lease, name)
    return out


def planned(lease: Lease) -> tuple[int, int, int, tuple[int, ...]] | None:
    """The lease's current or next reservation: (start, run start, run end, sorted hosts)."""
    r = lease.run
    return None if r is None else (r.start, r.run_start, r.run_end, tuple(sorted(r.hosts)))


@pytest.fixture
def scenarios() -> Path:
    if not SCENARIOS.is_dir():
        pytest.skip(f"shared scenarios missing: {SCENARIOS}")
    return SCENARIOS
