"""Helpers for tests that drive a whole cloud through `cloudctl` processes (cli_harness's `Cli`
in process mode): a private cloud set up in process, the test driver's node files read
directly, and the two invariants every operating test checks (no host over-committed; store
and hypervisors agree).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli_harness import Cli

TEST_NS = "{http://libvirt.org/schemas/domain/test/1.0}"
ACTIVE_RUNSTATES = {1, 2, 3, 4, 7}  # running, blocked, paused, shutting down, pmsuspended


@contextmanager
def in_process(env: Mapping[str, str]) -> Iterator[Any]:
    """The App a CLI command would build from `env`, in this process (set-up is ~50 times
    faster than through subprocesses)."""
    from cloudctl.runtime import build_real

    cloud = build_real(env)
    try:
        yield cloud
    finally:
        cloud.close()


def make_cloud(tmp: Path, hosts: Iterable[tuple[str, int, int]],
               now: str | int | None = None) -> Cli:
    """`init` and `host add` for each (name, cpus, memory MiB), in process; the cloud, whose
    commands run as `cloudctl` processes."""
    cli = Cli(tmp, now=now, process=True)
    with in_process(cli.environ()) as cloud:
        cloud.admin.init()
        for name, cpus, memory in hosts:
            cloud.hosts.add(name, cpus, memory, None, None, None)
    return cli


def request(cli: Cli, kind: str, duration: int, nodes: int = 1, cpus: int = 1,
            memory: int = 512, start: int | None = None) -> Any:
    """Request a lease in process; its LeaseRecord (raises Unsatisfiable when rejected)."""
    from cloudctl.app.leases import LeaseSpec
    from cloudctl.domain import LeaseType

    with in_process(cli.environ()) as cloud:
        spec = LeaseSpec(LeaseType(kind), duration, nodes, cpus, memory, start)
        return cloud.leases.request(spec).lease


def node_file(tmp: Path, host: str) -> Path:
    return tmp / "state.d" / "hosts" / f"{host}.xml"


@dataclass(frozen=True)
class Domain:
    name: str
    runstate: int
    cpus: int
    memory_mib: int

    @property
    def active(self) -> bool:
        return self.runstate in ACTIVE_RUNSTATES


def domains(path: Path) -> dict[str, Domain]:
    """The domains a test driver node file holds (it is replaced atomically, so a read
    without its lock still sees one whole version)."""
    found = {}
    for dom in ET.parse(path).getroot().findall("domain"):
        name = dom.findtext("name") or ""
        runstate = dom.findtext(f"{TEST_NS}runstate")
        memory = dom.find("memory")
        assert memory is not None
        unit = memory.get("unit", "KiB")
        mib = int(memory.text or 0) // (1024 if unit == "KiB" else 1)
        found[name] = Domain(name, 1 if runstate is None else int(runstate),
                             int(dom.findtext("vcpu") or 0), mib)
    return found


def active_usage(path: Path) -> tuple[int, int]:
    """(CPUs, MiB) held by the active cloudctl domains in one node file."""
    active = [d for d in domains(path).values() if d.active and d.name.startswith("cloudctl-")]
    return sum(d.cpus for d in active), sum(d.memory_mib for d in active)


# -- the schedule never over-commits a host ----------------------------------------------------

def _segments(lease: Any, live: Any | None) -> list[tuple[int, int, list[str]]]:
    """Every interval during which the lease held hosts: its past runs, suspensions and
    resumptions (on the hosts of the run they follow or precede), its current reservation."""
    history = lease.history
    runs = [(s, e, list(h)) for s, e, h in history.get("runs", [])]
    out = list(runs)
    res = live.reservation if live is not None else None
    for s, e in history.get("suspensions", []):
        before = [h for rs, re_, h in runs if re_ == s]
        hosts = before[0] if before else list(history.get("last_hosts", []))
        out.append((s, e, hosts))
    for s, e in history.get("resumptions", []) + history.get("migrations", []):
        after = [h for rs, _, h in runs if rs == e]
        hosts = after[0] if after else (res.hosts if res is not None else [])
        out.append((s, e, hosts))
    if res is not None:
        out.append((res.start, res.end, list(res.hosts)))
    return [(s, e, h) for s, e, h in out if e > s]


def overcommits(hosts: Iterable[Any], leases: Iterable[Any],
                live: Iterable[Any]) -> list[str]:
    """Every (host, instant) where the leases' intervals ask for more than the host has.
    Within one lease overlapping intervals are the same VMs (a run inside its reservation),
    so a lease counts the most nodes any of its intervals puts on the host."""
    live_by_id = {lease.id: lease for lease in live}
    per_host: dict[str, list[tuple[int, int, int, int]]] = defaultdict(list)  # s, e, lease, n
    need = {}
    for lease in leases:
        need[lease.id] = (lease.cpus, lease.memory_mib)
        for s, e, names in _segments(lease, live_by_id.get(lease.id)):
            for name in set(names):
                per_host[name].append((s, e, lease.id, names.count(name)))
    problems = []
    for host in hosts:
        segs = per_host.get(host.name, [])
        points = sorted({s for s, _, _, _ in segs})
        for t in points:
            nodes: dict[int, int] = {}
            for s, e, lease_id, n in segs:
                if s <= t < e:
                    nodes[lease_id] = max(nodes.get(lease_id, 0), n)
            cpus = sum(need[i][0] * n for i, n in nodes.items())
            memory = sum(need[i][1] * n for i, n in nodes.items())
            if cpus > host.cpus or memory > host.memory_mib:
                problems.append(f"{host.name} at {t}: {cpus}/{host.cpus} CPUs, "
                                f"{memory}/{host.memory_mib} MiB from leases {sorted(nodes)}")
    return problems


def store_records(db: Path) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """(hosts, all leases, live leases with reservations, all VMs) in one snapshot."""
    from cloudctl.store.db import open_store

    store = open_store(db)
    try:
        with store.read():
            return store.hosts.all(), store.leases.all(), store.leases.live(), store.vms.all()
    finally:
        store.close()


# -- the store and the hypervisors agree ------------------------------------------------------

def disagreements(cli: Cli) -> list[str]:
    """What `vm list` and the node files disagree on: a VM the store calls running that is not
    active on its host, an active cloudctl domain no running VM owns, a VM whose state is
    not what it wants, a host whose active domains exceed its size."""
    vms = cli.json("vm", "list", "--all")
    hosts = cli.json("host", "list")
    problems = []
    on_host = {h["name"]: domains(node_file(cli.tmp, h["name"])) for h in hosts}
    running = {vm["name"]: vm for vm in vms if vm["state"] == "running"}
    for vm in running.values():
        dom = on_host.get(vm["host"], {}).get(vm["name"])
        if dom is None or not dom.active:
            problems.append(f"{vm['name']} is running in the store but "
                            f"{'missing' if dom is None else dom.runstate} on {vm['host']}")
    for host, doms in on_host.items():
        for dom in doms.values():
            if dom.active and dom.name.startswith("cloudctl-"):
                vm = running.get(dom.name)
                if vm is None or vm["host"] != host:
                    problems.append(f"{dom.name} is active on {host} but the store has "
                                    f"{'no running VM' if vm is None else vm['host']}")
        cpus = sum(d.cpus for d in doms.values() if d.active)
        memory = sum(d.memory_mib for d in doms.values() if d.active)
        size = next(h for h in hosts if h["name"] == host)
        if cpus > size["cpus"] or memory > size["memory_mib"]:
            problems.append(f"{host}: active domains hold {cpus} CPUs / {memory} MiB")
    for vm in vms:
        if vm["state"] != vm["want"]:
            problems.append(f"{vm['name']}: state {vm['state']} but wants {vm['want']} "
                            f"({vm['error']})")
    return problems


def vanished_image(cli: Cli) -> tuple[Path, bytes]:
    """Add image `base` and delete its repository copy, so that making a VM's disk from it
    fails (a driver failure that leaves the host reachable); (copy's path, its bytes)."""
    source = cli.tmp / "disk.img"
    source.write_bytes(b"\1" * 4096)
    copy = Path(cli.json("image", "add", "base", "--path", str(source))["path"])
    copy.unlink()
    return copy, source.read_bytes()
