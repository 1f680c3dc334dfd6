"""The same assertions over every hypervisor driver available here (see driver_contract.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cloudctl.drivers.base import CAPABILITIES, HypervisorDriver, VMSpec, VMState
from driver_contract import DRIVER_CASES, DriverCase

from cloudctl.errors import BackendError

VM = "cloudctl-12-0"
NOT_ACTIVE = (VMState.SHUTOFF, VMState.MISSING)


@pytest.fixture(params=DRIVER_CASES, ids=lambda case: case.name)
def case(request: pytest.FixtureRequest) -> DriverCase:
    reason = request.param.unavailable()
    if reason:
        pytest.skip(f"{request.param.name}: {reason}")
    return request.param


@pytest.fixture
def driver(case: DriverCase, tmp_path: Path) -> Iterator[HypervisorDriver]:
    drv = case.open_host(tmp_path / "state", "host-0")
    yield drv
    for name in drv.list_vms():
        drv.destroy(name)
    drv.close()


@pytest.fixture
def spec(case: DriverCase, tmp_path: Path) -> VMSpec:
    return case.spec(tmp_path, VM)


def test_declares_a_name_uri_and_known_capabilities(driver: HypervisorDriver) -> None:
    assert isinstance(driver, HypervisorDriver)
    assert driver.name and driver.uri
    assert driver.capabilities <= CAPABILITIES


def test_lifecycle(driver: HypervisorDriver, spec: VMSpec, tmp_path: Path) -> None:
    image = tmp_path / "vm.save"
    assert driver.state(VM) is VMState.MISSING
    driver.create(spec)
    assert driver.state(VM) is VMState.RUNNING
    assert driver.list_vms() == {VM: VMState.RUNNING}
    assert driver.list_vms(prefix="other-") == {}
    stats = driver.stats(VM)
    assert stats.state is VMState.RUNNING
    assert stats.memory_mib == spec.memory_mib
    assert stats.cpu_time_ns >= 0

    if "suspend" in driver.capabilities:
        driver.suspend(VM, str(image))
        assert image.exists()
        assert driver.state(VM) in NOT_ACTIVE
        assert driver.list_vms().get(VM, VMState.MISSING) in NOT_ACTIVE
        driver.resume(VM, str(image))
        assert driver.state(VM) is VMState.RUNNING
        assert image.exists(), "resume leaves the image for the caller to clean"

    driver.shutdown(VM, grace_s=10)
    assert driver.state(VM) is VMState.MISSING
    assert driver.list_vms() == {}


def test_every_call_is_idempotent(driver: HypervisorDriver, spec: VMSpec, tmp_path: Path) -> None:
    image = str(tmp_path / "vm.save")
    driver.create(spec)
    driver.create(spec)
    assert driver.list_vms() == {VM: VMState.RUNNING}
    if "suspend" in driver.capabilities:
        driver.suspend(VM, image)
        driver.suspend(VM, image)
        assert driver.state(VM) in NOT_ACTIVE
        driver.resume(VM, image)
        driver.resume(VM, image)
        assert driver.state(VM) is VMState.RUNNING
    driver.shutdown(VM, grace_s=10)
    driver.shutdown(VM, grace_s=10)
    assert driver.state(VM) is VMState.MISSING
    driver.create(spec)
    driver.destroy(VM)
    driver.destroy(VM)
    assert driver.state(VM) is VMState.MISSING


def test_create_starts_a_domain_that_is_defined_but_not_running(
        driver: HypervisorDriver, spec: VMSpec, tmp_path: Path) -> None:
    if "suspend" not in driver.capabilities:
        pytest.skip("no way to leave a domain defined and stopped")
    driver.create(spec)
    driver.suspend(VM, str(tmp_path / "vm.save"))
    driver.create(spec)
    assert driver.state(VM) is VMState.RUNNING


def test_destroy_stops_and_forgets_a_running_vm(driver: HypervisorDriver, spec: VMSpec) -> None:
    driver.create(spec)
    driver.destroy(VM)
    assert driver.state(VM) is VMState.MISSING
    assert driver.list_vms() == {}


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
    assert (empty.cpus, empty.memory_mib, empty.running_vms) == (
        case.host_cpus, case.host_memory_mib, 0)
    assert 0 <= empty.free_memory_mib <= empty.memory_mib
    driver.create(spec)
    busy = driver.host_info()
    assert busy.running_vms == 1
    if case.exact_free_memory:
        assert empty.free_memory_mib - busy.free_memory_mib == spec.memory_mib


def test_cold_migration_moves_a_saved_vm_to_another_host(
        driver: HypervisorDriver, case: DriverCase, spec: VMSpec, tmp_path: Path) -> None:
    if "cold-migration" not in driver.capabilities:
        pytest.skip("driver cannot cold-migrate")
    other = case.open_host(tmp_path / "state", "host-1")
    image = str(tmp_path / "vm.save")
    try:
        driver.create(spec)
        driver.suspend(VM, image)
        driver.destroy(VM)  # the caller forgets the VM on its old host
        other.resume(VM, image)
        assert other.state(VM) is VMState.RUNNING
        assert driver.state(VM) is VMState.MISSING
        # Defined on its new host: it can be suspended and resumed again there.
        other.suspend(VM, image)
        assert other.state(VM) is VMState.SHUTOFF
        other.resume(VM, image)
        other.shutdown(VM, grace_s=10)
        assert other.state(VM) is VMState.MISSING
    finally:
        other.destroy(VM)
        other.close()
