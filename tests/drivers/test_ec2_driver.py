"""The EC2 driver over real HTTP against moto's server: lifecycle, idempotent launches, retries,
error kinds, instance sizes, and that importing the driver costs no boto3."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from cloudctl.drivers.ec2 import CloudError, CloudInstance, EC2Driver
from moto_ec2 import EC2Env, inject

from cloudctl.errors import BackendError

TAGS = {"cloudctl:lease": "7", "cloudctl:node": "0"}


class Sleeps(list[float]):
    """A `sleep` that records the delays it was asked for instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def ec2(ec2_env: EC2Env, sleeps: Sleeps) -> Iterator[EC2Driver]:
    driver = EC2Driver(region=ec2_env.region, endpoint_url=ec2_env.url, sleep=sleeps)
    yield driver
    driver.close()


def launch(ec2: EC2Driver, ami: str, token: str = "lease-7-node-0",
           count: int = 1) -> list[CloudInstance]:
    return ec2.launch(image_id=ami, instance_type="t3.micro", client_token=token,
                      tags=TAGS, count=count)


def test_launch_runs_with_tags_and_addresses_then_terminates(ec2: EC2Driver,
                                                             ec2_env: EC2Env) -> None:
    ec2.probe()
    ec2.check_image(ec2_env.ami)
    [launched] = launch(ec2, ec2_env.ami)
    [running] = ec2.wait_running([launched.id])
    assert running.id == launched.id and running.state == "running"
    assert running.instance_type == "t3.micro" and running.image_id == ec2_env.ami
    assert running.tags == {**TAGS, "cloudctl:token": "lease-7-node-0"}
    assert running.client_token == "lease-7-node-0"
    assert running.private_ip and running.public_ip and running.launched_at
    assert [i.id for i in ec2.find(tags={"cloudctl:lease": "7"})] == [launched.id]
    assert ec2.find(tags={"cloudctl:lease": "8"}) == []

    ec2.terminate([launched.id])
    ec2.terminate([launched.id])  # twice is fine
    ec2.terminate([launched.id, "i-0123456789abcdef0"])  # and so is an unknown id
    assert ec2.find(tags=TAGS) == []
    [gone] = ec2.find(tags=TAGS, include_terminated=True)
    assert gone.id == launched.id and gone.state == "terminated"


def test_stop_and_start_are_idempotent(ec2: EC2Driver, ec2_env: EC2Env) -> None:
    [instance] = launch(ec2, ec2_env.ami)
    ec2.stop([instance.id])
    ec2.stop([instance.id])
    assert [i.state for i in ec2.find(tags=TAGS)] == ["stopped"]
    ec2.start([instance.id])
    ec2.start([instance.id])
    assert [i.state for i in ec2.wait_running([instance.id])] == ["running"]


def test_wait_running_fails_at_once_on_a_terminated_instance(ec2: EC2Driver,
                                                             ec2_env: EC2Env,
                                                             sleeps: Sleeps) -> None:
    [instance] = launch(ec2, ec2_env.ami)
    ec2.terminate([instance.id])
    with pytest.raises(CloudError) as err:
        ec2.wait_running([instance.id], timeout=60)
    assert (err.value.kind, err.value.code) == ("other", "InstanceTerminated")
    assert instance.id in str(err.value) and sleeps == []


def test_wait_running_times_out_on_the_sleeps_it_made(ec2: EC2Driver, ec2_env: EC2Env,
                                                     sleeps: Sleeps) -> None:
    [instance] = launch(ec2, ec2_env.ami)
    ec2.stop([instance.id])
    with pytest.raises(CloudError) as err:
        ec2.wait_running([instance.id], timeout=5)
    assert (err.value.kind, err.value.code) == ("other", "WaitTimeout")
    assert sleeps == [2.0, 2.0, 2.0]


def test_a_repeated_launch_with_one_token_makes_one_instance(ec2: EC2Driver,
                                                             ec2_env: EC2Env) -> None:
    [first] = launch(ec2, ec2_env.ami)
    [again] = launch(ec2, ec2_env.ami)
    assert again.id == first.id
    assert [i.id for i in ec2.find(tags=TAGS)] == [first.id]
    [other] = launch(ec2, ec2_env.ami, token="lease-7-node-1")
    assert other.id != first.id
    assert sorted(i.id for i in ec2.find(tags=TAGS)) == sorted([first.id, other.id])
    assert [i.id for i in ec2.find(client_token="lease-7-node-1")] == [other.id]


def test_a_launch_repeated_after_a_crash_finds_the_first(ec2_env: EC2Env) -> None:
    crashed = EC2Driver(region=ec2_env.region, endpoint_url=ec2_env.url)
    launch(crashed, ec2_env.ami, count=2)  # the reply is lost with the process
    del crashed
    restarted = EC2Driver(region=ec2_env.region, endpoint_url=ec2_env.url)
    with inject("RunInstances", []) as runs:
        again = launch(restarted, ec2_env.ami, count=2)
    assert runs.calls == 0, "found by its token, not launched again"
    assert len(again) == 2
    assert sorted(i.id for i in restarted.find(tags=TAGS)) == [i.id for i in again]


def test_an_unknown_image_is_an_image_error_and_not_retried(ec2_env: EC2Env,
                                                            sleeps: Sleeps) -> None:
    with inject("RunInstances", []) as runs:
        ec2 = EC2Driver(region=ec2_env.region, endpoint_url=ec2_env.url, sleep=sleeps)
        with pytest.raises(CloudError) as err:
            launch(ec2, "ami-12345678")
    assert (err.value.kind, err.value.code, err.value.retryable) == (
        "image", "InvalidAMIID.NotFound", False)
    assert runs.calls == 1 and sleeps == []
    assert isinstance(err.value, BackendError) and err.value.exit_code == 5
    assert str(err.value).startswith("RunInstances: InvalidAMIID.NotFound: ")
    for bad in ("ami-12345678", "not-an-ami"):
        with pytest.raises(CloudError) as err:
            ec2.check_image(bad)
        assert err.value.kind == "image"
    assert ec2.find() == []


def test_an_unknown_instance_type_is_an_instance_type_error(ec2: EC2Driver,
                                                            ec2_env: EC2Env) -> None:
    with pytest.raises(CloudError) as err:
        ec2.launch(image_id=ec2_env.ami, instance_type="t9.huge", client_token="t", tags={})
    assert err.value.kind == "instance-type" and not err.value.retryable
    with pytest.raises(CloudError) as err:
        ec2.instance_sizes(["t3.micro", "t9.huge"])
    assert err.value.kind == "instance-type" and "t9.huge" in str(err.value)


def test_instance_sizes_match_aws(ec2: EC2Driver) -> None:
    sizes = ec2.instance_sizes(["t3.micro", "m5.large", "t3.micro"])
    assert {n: (s.vcpus, s.memory_mib) for n, s in sizes.items()} == {
        "t3.micro": (2, 1024), "m5.large": (2, 8192)}
    assert sizes["m5.large"].name == "m5.large"


def test_a_capacity_shortage_is_retried_with_backoff(ec2: EC2Driver, ec2_env: EC2Env,
                                                     sleeps: Sleeps) -> None:
    codes = ["InsufficientInstanceCapacity"] * 2
    with inject("RunInstances", codes) as runs:
        [instance] = launch(ec2, ec2_env.ami)
    assert runs.calls == 3
    assert sleeps == [1, 2]
    assert [i.id for i in ec2.find(tags=TAGS)] == [instance.id]


def test_a_lasting_capacity_shortage_fails_after_every_attempt(ec2_env: EC2Env,
                                                               sleeps: Sleeps) -> None:
    with inject("RunInstances", ["InsufficientInstanceCapacity"] * 3) as runs:
        ec2 = EC2Driver(region=ec2_env.region, endpoint_url=ec2_env.url, attempts=3,
                        backoff=0.5, sleep=sleeps)
        with pytest.raises(CloudError) as err:
            launch(ec2, ec2_env.ami)
    assert (err.value.kind, err.value.code, err.value.retryable) == (
        "capacity", "InsufficientInstanceCapacity", True)
    assert runs.calls == 3 and sleeps == [0.5, 1.0]
    assert ec2.find(include_terminated=True) == []


def test_an_instance_limit_is_not_retried(ec2: EC2Driver, ec2_env: EC2Env,
                                          sleeps: Sleeps) -> None:
    with inject("RunInstances", ["InstanceLimitExceeded"]) as runs:
        with pytest.raises(CloudError) as err:
            launch(ec2, ec2_env.ami)
    assert (err.value.kind, err.value.retryable) == ("limit", False)
    assert runs.calls == 1 and sleeps == []
    assert ec2.find() == []


def test_throttling_is_retried_on_any_call(ec2: EC2Driver, ec2_env: EC2Env,
                                           sleeps: Sleeps) -> None:
    with inject("RunInstances", ["RequestLimitExceeded"]) as runs:
        [instance] = launch(ec2, ec2_env.ami)
    assert runs.calls == 2 and sleeps == [1]
    with inject("DescribeInstances", ["Throttling", "RequestLimitExceeded"]) as describes:
        fresh = EC2Driver(region=ec2_env.region, endpoint_url=ec2_env.url, sleep=sleeps)
        assert [i.id for i in fresh.find(tags=TAGS)] == [instance.id]
    assert describes.calls == 3 and sleeps == [1, 1, 2]


def test_expired_credentials_fail_at_once_without_the_secret(ec2_env: EC2Env,
                                                             sleeps: Sleeps,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             ) -> None:
    secret = "wJalrXUtnFEMI-example-secret"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    with inject("DescribeAvailabilityZones", ["ExpiredToken"],
                message=f"The security token {secret} has expired") as probes:
        ec2 = EC2Driver(region=ec2_env.region, endpoint_url=ec2_env.url, sleep=sleeps)
        with pytest.raises(CloudError) as err:
            ec2.probe()
    assert (err.value.kind, err.value.retryable) == ("credentials", False)
    assert probes.calls == 1 and sleeps == []
    assert secret not in str(err.value) and "\n" not in str(err.value)
    assert str(err.value) == "DescribeAvailabilityZones: ExpiredToken: The security token *** " \
                             "has expired"


def test_missing_credentials_are_a_credentials_error(ec2_env: EC2Env,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    ec2 = EC2Driver(region=ec2_env.region, endpoint_url=ec2_env.url)
    with pytest.raises(CloudError) as err:
        ec2.probe()
    assert (err.value.kind, err.value.code) == ("credentials", "NoCredentialsError")


def test_importing_the_driver_does_not_import_boto3() -> None:
    code = ("import cloudctl.drivers.ec2, sys; "
            "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
