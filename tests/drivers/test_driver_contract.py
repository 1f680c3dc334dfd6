"""The same assertions over every hypervisor driver available here (see driver_contract.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cloudctl.drivers.base import CAPABILITIES, HypervisorDriver, VMSpec, VMState
from driver_contract import DRIVER_CASES, DriverCase

from cloudctl.errors import BackendError

NOT_ACTIVE = (VMState.SHUTOFF, VMState.MISSING)


@pytest.fixture(params=[pytest.param(case, marks=[pytest.mark.real] if case.real else [])
                        for case in DRIVER_CASES], ids=lambda case: case.name)
def case(request: pytest.FixtureRequest) -> DriverCase:
    reason = request.param.unavailable()
    if reason:
        pytest.skip(f"{request.param.name}: {reason}")
    return request.param


@pytest.fixture
def vm(case: DriverCase) -> str:
    return f"cloudctl-{case.lease_id}-0"


@pytest.fixture
def ours(case: DriverCase) -> str:
    """The prefix of the VMs this test may see and touch."""
    return f"cloudctl-{case.lease_id}-" if case.shared_host else "cloudctl-"


@pytest.fixture
def driver(case: DriverCase, tmp_path: Path, ours: str) -> Iterator[HypervisorDriver]:
    drv = case.open_host(tmp_path / "state", "host-0")
    yield drv
    for name in drv.list_vms(prefix=ours):
        drv.destroy(name)
    drv.close()


@pytest.fixture
def spec(case: DriverCase, tmp_path: Path, vm: str) -> VMSpec:
    return case.spec(tmp_path, vm)


def test_declares_a_name_uri_and_known_capabilities(driver: HypervisorDriver) -> None:
    assert isinstance(driver, HypervisorDriver)
    assert driver.name and driver.uri
    assert driver.capabilities <= CAPABILITIES


def test_lifecycle(driver: HypervisorDriver, spec: VMSpec, tmp_path: Path, vm: str,
                   ours: str) -> None:
    image = tmp_path / "vm.save"
    assert driver.state(vm) is VMState.MISSING
    driver.create(spec)
    assert driver.state(vm) is VMState.RUNNING
    assert driver.list_vms(prefix=ours) == {vm: VMState.RUNNING}
    assert driver.list_vms(prefix="other-") == {}
    stats = driver.stats(vm)
    assert stats.state is VMState.RUNNING
    assert stats.memory_mib == spec.memory_mib
    assert stats.cpu_time_ns >= 0

    if "suspend" in driver.capabilities:
        driver.suspend(vm, str(image))
        assert image.exists()
        assert driver.state(vm) in NOT_ACTIVE
        assert driver.list_vms(prefix=ours).get(vm, VMState.MISSING) in NOT_ACTIVE
        driver.resume(vm, str(image))
        assert driver.state(vm) is VMState.RUNNING
        assert image.exists(), "resume leaves the image for the caller to clean"

    driver.shutdown(vm, grace_s=10)
    assert driver.state(vm) is VMState.MISSING
    assert driver.list_vms(prefix=ours) == {}


def test_every_call_is_idempotent(driver: HypervisorDriver, spec: VMSpec, tmp_path: Path,
                                  vm: str, ours: str) -> None:
    image = str(tmp_path / "vm.save")
    driver.create(spec)
    driver.create(spec)
    assert driver.list_vms(prefix=ours) == {vm: VMState.RUNNING}
    if "suspend" in driver.capabilities:
        driver.suspend(vm, image)
        driver.suspend(vm, image)
        assert driver.state(vm) in NOT_ACTIVE
        driver.resume(vm, image)
        driver.resume(vm, image)
        assert driver.state(vm) is VMState.RUNNING
    driver.shutdown(vm, grace_s=10)
    driver.shutdown(vm, grace_s=10)
    assert driver.state(vm) is VMState.MISSING
    driver.create(spec)
    driver.destroy(vm)
    driver.destroy(vm)
    assert driver.state(vm) is VMState.MISSING


def test_create_starts_a_domain_that_is_defined_but_not_running(
        driver: HypervisorDriver, spec: VMSpec, tmp_path: Path, vm: str) -> None:
    if "suspend" not in driver.capabilities:
        pytest.skip("no way to leave a domain defined and stopped")
    driver.create(spec)
    driver.suspend(vm, str(tmp_path / "vm.save"))
    driver.create(spec)
    assert driver.state(vm) is VMState.RUNNING


def test_destroy_stops_and_forgets_a_running_vm(driver: HypervisorDriver, spec: VMSpec, vm: str,
                                                ours: str) -> None:
    driver.create(spec)
    driver.destroy(vm)
    assert driver.state(vm) is VMState.MISSING
    assert driver.list_vms(prefix=ours) == {}


def test_missing_domains_are_no_ops_or_missing(driver: HypervisorDriver) -> None:
    driver.destroy("cloudctl-404-0")
    driver.shutdown("cloudctl-404-0", grace_s=0)
    assert driver.state("cloudctl-404-0") is VMState.MISSING
    assert driver.stats("cloudctl-404-0").state is VMState.MISSING


def test_suspend_and_resume_without_an_image_fail_in_one_line(
        driver: HypervisorDriver, tmp_path: Path) -> None:
    if "suspend" not in driver.capabilities:
        pytest.skip("driver cannot suspend")
    for call in (driver.suspend, driver.resume):
        with pytest.raises(BackendError) as err:
            call("cloudctl-404-0", str(tmp_path / "none.save"))
        message = str(err.value)
        assert "\n" not in message
        assert message.startswith(f"{driver.uri}: ")
        assert "cloudctl-404-0" in message
        assert err.value.exit_code == 5


def test_host_info_reflects_the_host_and_its_vms(
        driver: HypervisorDriver, case: DriverCase, spec: VMSpec) -> None:
    empty = driver.host_info()
    if case.host_cpus is None:
        assert empty.cpus >= 1 and empty.memory_mib >= 1
    else:
        assert (empty.cpus, empty.memory_mib) == (case.host_cpus, case.host_memory_mib)
    if not case.shared_host:
        assert empty.running_vms == 0
    assert 0 <= empty.free_memory_mib <= empty.memory_mib
    driver.create(spec)
    busy = driver.host_info()
    if case.shared_host:  # others may start and stop VMs meanwhile
        assert busy.running_vms >= 1
    else:
        assert busy.running_vms == empty.running_vms + 1
    if case.exact_free_memory:
        assert empty.free_memory_mib - busy.free_memory_mib == spec.memory_mib


def test_cold_migration_moves_a_saved_vm_to_another_host(
        driver: HypervisorDriver, case: DriverCase, spec: VMSpec, tmp_path: Path,
        vm: str) -> None:
    if "cold-migration" not in driver.capabilities:
        pytest.skip("driver cannot cold-migrate")
    other = case.open_host(tmp_path / "state", "host-1")
    image = str(tmp_path / "vm.save")
    try:
        driver.create(spec)
        driver.suspend(vm, image)
        driver.destroy(vm)  # the caller forgets the VM on its old host
        other.resume(vm, image)
        assert other.state(vm) is VMState.RUNNING
        if case.distinct_hosts:
            assert driver.state(vm) is VMState.MISSING
        # Defined on its new host: it can be suspended and resumed again there.
        other.suspend(vm, image)
        assert other.state(vm) is VMState.SHUTOFF
        other.resume(vm, image)
        other.shutdown(vm, grace_s=10)
        assert other.state(vm) is VMState.MISSING
    finally:
        other.destroy(vm)
        other.close()
