"""Bursting for real: cloudctl commands against two libvirt test hosts and an EC2 endpoint
(moto's server over real HTTP on loopback, started by the suite). The local cloud fills up,
the next lease bursts, its instance runs and is terminated at the end; the budget stops
bursting; refused launches fall back; a crash after run_instances leaks nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cli_harness import Cli, two_host_cloud
from cloud_helpers import in_process
from cloudctl.drivers.ec2 import EC2Driver
from moto_ec2 import EC2Env, inject

T0 = "2026-11-23T13:00:00Z"
T_1H = "2026-11-23T14:00:00Z"


class Crash(BaseException):
    """The process dies here (not an error any handler would catch)."""


def ec2_cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ec2: EC2Env,
              *extra: object) -> Cli:
    """Two 4-CPU / 8 GiB test hosts and a cloud `ec2` on moto with three priced types."""
    c = two_host_cloud(tmp_path, monkeypatch)
    c("cloud", "add", "ec2", "--region", ec2.region, "--endpoint", ec2.url, "--ami", ec2.ami,
      "--price", "t3.micro=0.0104", "--price", "m5.large=0.096", "--price", "m5.xlarge=0.192",
      "--retry-backoff", "0.01", *extra)
    return c


def fill(c: Cli) -> None:
    """Both hosts busy for an hour."""
    lease = c.json("lease", "request", "--type", "im", "--nodes", "2", "--cpus", "4",
                   "--memory", "8192", "--duration", "1h")
    assert sorted(lease["hosts"]) == ["node-1", "node-2"]


def instances(ec2: EC2Env, **tags: str) -> list[Any]:
    driver = EC2Driver(region=ec2.region, endpoint_url=ec2.url)
    try:
        return driver.find(tags=tags or None, include_terminated=True)
    finally:
        driver.close()


def test_cloud_add_reads_sizes_from_the_provider_and_keeps_no_credentials(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ec2_env: EC2Env) -> None:
    c = ec2_cloud(tmp_path, monkeypatch, ec2_env, "--budget-per-month", "25")
    shown = c.json("cloud", "show", "ec2")
    assert {t["name"]: (t["vcpus"], t["memory_mib"], t["price_per_hour"])
            for t in shown["catalogue"]} == {"t3.micro": (2, 1024, 0.0104),
                                             "m5.large": (2, 8192, 0.096),
                                             "m5.xlarge": (4, 16384, 0.192)}
    assert shown["budget_per_month"] == 25 and shown["budget_left_usd"] == 25
    assert [v["name"] for v in c.json("cloud", "list")] == ["ec2"]
    raw = (tmp_path / "state.db").read_bytes()
    assert b"testing" not in raw  # the access key and secret of the environment
    c("cloud", "add", "ec2", "--region", "us-east-1", "--endpoint", ec2_env.url, code=4)
    bad = c("cloud", "add", "other", "--region", "us-east-1", "--endpoint", ec2_env.url,
            "--ami", "ami-00000000deadbeef0", code=5)
    assert "image" in bad.stderr.lower() and "\n" not in bad.stderr.strip()
    c("cloud", "remove", "ec2")
    c("cloud", "show", "ec2", code=3)


def test_a_full_cloud_bursts_an_immediate_lease_which_runs_ends_and_is_terminated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ec2_env: EC2Env) -> None:
    c = ec2_cloud(tmp_path, monkeypatch, ec2_env)
    fill(c)
    ask = ("lease", "request", "--type", "im", "--cpus", "2", "--memory", "4096",
           "--duration", "1h")
    what_if = c.json(*ask, "--dry-run")
    assert what_if["accepted"] and what_if["lease"]["hosts"] == []
    assert {k: what_if["burst"][k] for k in ("provider", "instance_type", "nodes", "cost")} == {
        "provider": "ec2", "instance_type": "m5.large", "nodes": 1, "cost": 0.096}
    assert instances(ec2_env) == []  # a dry run launches nothing

    lease = c.json(*ask)
    assert lease["burst"]["instance_type"] == "m5.large" and lease["hosts"] == []
    tick = c.json("tick")
    assert tick["failed"] == [] and tick["burst_failed"] == {}
    running = instances(ec2_env, **{"cloudctl:lease": str(lease["id"])})
    assert [(i.state, i.instance_type, i.tags["cloudctl:vm"]) for i in running] == [
        ("running", "m5.large", f"cloudctl-{lease['id']}-0")]
    vm = c.json("vm", "show", f"cloudctl-{lease['id']}-0")
    assert vm["state"] == "running" and vm["cloud"] == "ec2" and vm["host"] is None
    shown = c.json("cloud", "show", "ec2")
    assert shown["instances_running"] == 1
    assert shown["instances"][0]["instance_id"] == running[0].id
    assert shown["instances"][0]["private_ip"]

    c.at(T_1H)
    c.json("tick")
    assert c.json("lease", "show", str(lease["id"]))["state"] == "done"
    assert [i.state for i in instances(ec2_env)] == ["terminated"]
    report = c.json("cost", "report", "--by", "lease")
    assert report["rows"] == [{"lease": f"lease {lease['id']}", "spent_usd": 0.096,
                               "instances": 1, "instance_hours": 1.0}]
    assert report["providers"][0]["spent_month_usd"] == 0.096
    assert report["providers"][0]["projected_month_usd"] == 0.096


def test_the_budget_stops_bursting_with_a_clear_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ec2_env: EC2Env) -> None:
    c = ec2_cloud(tmp_path, monkeypatch, ec2_env, "--budget-per-month", "0.15")
    fill(c)
    ask = ("lease", "request", "--type", "im", "--cpus", "2", "--memory", "4096",
           "--duration", "1h")
    c.json(*ask)  # $0.096 of $0.15
    refused = c(*ask, code=6)
    assert ("budget: ec2 has $0.05 of $0.15 left for 2026-11, the lease would cost $0.10"
            in refused.stderr)
    c.json("tick")
    assert len(instances(ec2_env)) == 1
    # A cheaper lease still fits what is left.
    small = c.json("lease", "request", "--type", "im", "--cpus", "1", "--memory", "1024",
                   "--duration", "1h")
    assert small["burst"]["instance_type"] == "t3.micro"


def test_capacity_refused_after_retries_fails_an_immediate_lease_and_leaks_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ec2_env: EC2Env) -> None:
    c = ec2_cloud(tmp_path, monkeypatch, ec2_env)
    fill(c)
    lease = c.json("lease", "request", "--type", "im", "--cpus", "2", "--memory", "4096",
                   "--duration", "1h")
    with inject("RunInstances", ["InsufficientInstanceCapacity"] * 4) as injected:
        tick = c.json("tick")
    assert injected.calls == 4  # retried with backoff, then given up
    assert "InsufficientInstanceCapacity" in tick["burst_failed"][str(lease["id"])]
    shown = c.json("lease", "show", str(lease["id"]))
    assert shown["state"] == "fail"
    assert "burst to ec2 failed" in shown["reason"]
    assert instances(ec2_env) == []
    assert c.json("cost", "report")["total_usd"] == 0


def test_a_best_effort_lease_whose_burst_hits_the_instance_limit_falls_back_to_the_queue(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ec2_env: EC2Env) -> None:
    c = ec2_cloud(tmp_path, monkeypatch, ec2_env, "--max-wait", "10m")
    fill(c)
    lease = c.json("lease", "request", "--type", "be", "--cpus", "2", "--memory", "4096",
                   "--duration", "30m")
    # Its local start (in an hour) is further off than the 10 minutes it may wait.
    assert lease["burst"]["trigger"] == "be" and lease["hosts"] == []
    with inject("RunInstances", ["InstanceLimitExceeded"]) as injected:
        tick = c.json("tick")
    assert injected.calls == 1  # a limit is not retried
    assert "InstanceLimitExceeded" in tick["burst_failed"][str(lease["id"])]
    shown = c.json("lease", "show", str(lease["id"]))
    # back home: the first in the queue, it holds the hosts' next free slot (EASY)
    assert shown["state"] == "scheduled" and shown["burst"] is None
    assert shown["start"] == T_1H
    assert any("InstanceLimitExceeded" in e["reason"] and "back in the local queue" in
               e["reason"] for e in shown["events"])
    assert instances(ec2_env) == []
    c.at(T_1H)
    c.json("tick")
    shown = c.json("lease", "show", str(lease["id"]))
    assert shown["state"] == "active" and len(shown["hosts"]) == 1  # at home, and not burst


def test_a_crash_between_run_instances_and_its_record_does_not_leak_an_instance(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ec2_env: EC2Env) -> None:
    c = ec2_cloud(tmp_path, monkeypatch, ec2_env)
    fill(c)
    lease = c.json("lease", "request", "--type", "im", "--cpus", "2", "--memory", "4096",
                   "--duration", "1h")

    def die(**_: Any) -> None:
        raise Crash()

    hook = ("after-call.ec2.RunInstances", die)
    EC2Driver.client_hooks.append(hook)
    try:
        with in_process(c.env) as cloud, pytest.raises(Crash):
            cloud.ticks.tick()
    finally:
        EC2Driver.client_hooks.remove(hook)
    assert len(instances(ec2_env)) == 1  # it was launched; nothing recorded its id
    tick = c.json("tick")
    assert len(tick["instances"]["adopted"]) == 1
    found = instances(ec2_env)
    assert [i.state for i in found] == ["running"]
    shown = c.json("cloud", "show", "ec2")
    assert [i["instance_id"] for i in shown["instances"]] == [found[0].id]
    c.at(T_1H)
    c.json("tick")
    assert [i.state for i in instances(ec2_env)] == ["terminated"]
    assert c.json("lease", "show", str(lease["id"]))["state"] == "done"


def test_tick_reports_instances_no_lease_owns_and_reaps_them_when_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ec2_env: EC2Env) -> None:
    c = ec2_cloud(tmp_path, monkeypatch, ec2_env)
    with in_process(c.env) as cloud, cloud.store.write():
        from cloudctl.clouds import store_uid

        uid = store_uid(cloud.store)
    driver = EC2Driver(region=ec2_env.region, endpoint_url=ec2_env.url)
    try:
        stray = driver.launch(image_id=ec2_env.ami, instance_type="t3.micro",
                              client_token="stray-1",
                              tags={"cloudctl:store": uid, "cloudctl:vm": "cloudctl-99-0"})
        other = driver.launch(image_id=ec2_env.ami, instance_type="t3.micro",
                              client_token="other-store", tags={"cloudctl:store": "else"})
    finally:
        driver.close()
    tick = c.json("tick")
    assert tick["instances"]["unowned"] == [f"ec2: {stray[0].id} (running, vm cloudctl-99-0)"]
    assert tick["instances"]["reaped"] == []
    tick = c.json("tick", "--reap")
    assert tick["instances"]["reaped"] == [f"ec2: {stray[0].id}"]
    states = {i.id: i.state for i in instances(ec2_env)}
    assert states == {stray[0].id: "terminated", other[0].id: "running"}


def test_a_lease_bursts_in_part_its_local_node_runs_here_and_both_halves_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ec2_env: EC2Env) -> None:
    c = ec2_cloud(tmp_path, monkeypatch, ec2_env, "--partial")
    assert c.json("cloud", "show", "ec2")["partial"] is True
    c.json("lease", "request", "--type", "im", "--cpus", "4", "--memory", "8192",
           "--duration", "2h")  # one host busy
    ask = ("lease", "request", "--type", "im", "--nodes", "3", "--cpus", "4", "--memory",
           "8192", "--duration", "1h")
    what_if = c.json(*ask, "--dry-run")
    assert what_if["lease"]["hosts"] == ["node-2"]
    assert {k: what_if["burst"][k] for k in ("instance_type", "nodes", "cost")} == {
        "instance_type": "m5.xlarge", "nodes": 2, "cost": 0.384}  # 2, not 3, instances
    text = c(*ask, "--dry-run").stdout
    assert "hosts: node-2" in text and "burst to ec2: 2 x m5.xlarge" in text

    lease = c.json(*ask)
    tick = c.json("tick")
    assert tick["failed"] == [] and tick["burst_failed"] == {}
    vms = {v["name"]: (v["state"], v["host"], v["cloud"])
           for v in c.json("vm", "list") if v["lease"] == lease["id"]}
    n = lease["id"]
    assert vms == {f"cloudctl-{n}-0": ("running", "node-2", None),
                   f"cloudctl-{n}-1": ("running", None, "ec2"),
                   f"cloudctl-{n}-2": ("running", None, "ec2")}
    running = instances(ec2_env, **{"cloudctl:lease": str(n)})
    assert sorted(i.tags["cloudctl:vm"] for i in running if i.state == "running") == [
        f"cloudctl-{n}-1", f"cloudctl-{n}-2"]
    # The node kept here counts against the host: node-2 has no room left for an hour.
    assert c.json("lease", "request", "--type", "im", "--cpus", "4", "--memory", "8192",
                  "--duration", "1h", "--dry-run")["burst"] is not None

    c.at(T_1H)
    c.json("tick")
    assert c.json("lease", "show", str(n))["state"] == "done"
    assert {i.state for i in instances(ec2_env)} == {"terminated"}
    assert [v for v in c.json("vm", "list") if v["lease"] == n and v["state"] != "gone"] == []
    report = c.json("cost", "report", "--by", "lease")
    assert report["rows"] == [{"lease": f"lease {n}", "spent_usd": 0.384, "instances": 2,
                               "instance_hours": 2.0}]


def test_a_burst_vm_suspends_as_a_stopped_instance_and_resumes_by_starting_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ec2_env: EC2Env) -> None:
    # The scheduler never preempts a lease on a cloud (that frees no host of ours); the
    # enactment still maps a suspend to stop and a resume to start, keeping the instance.
    from cloudctl.clouds import CloudEnactment

    c = ec2_cloud(tmp_path, monkeypatch, ec2_env)
    fill(c)
    lease = c.json("lease", "request", "--type", "im", "--cpus", "2", "--memory", "4096",
                   "--duration", "1h")
    c.json("tick")
    [launched] = instances(ec2_env, **{"cloudctl:lease": str(lease["id"])})
    with in_process(c.env) as cloud:
        enact = CloudEnactment(cloud.store, 0)
        try:
            with cloud.store.read():
                vm = cloud.store.vms.get(f"cloudctl-{lease['id']}-0")
            plan = lease["burst"]
            vm.want = "suspended"
            assert enact.apply(vm, None, plan) == "suspended"
            assert [(i.id, i.state) for i in instances(ec2_env)] == [(launched.id, "stopped")]
            vm.want = "running"
            assert enact.apply(vm, None, plan) == "running"
            assert [(i.id, i.state) for i in instances(ec2_env)] == [(launched.id, "running")]
        finally:
            enact.close()
