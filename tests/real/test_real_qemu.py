"""The libvirt driver against real QEMU: a tiny guest boots, counts on its serial console, and
keeps counting, never from 0 again, across save/restore and live migration.

Few and short on purpose (each boots a guest under software emulation); the bulk of the
driver's behaviour is covered on test:/// files and by the contract suite.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cloudctl.drivers.base import HypervisorDriver, LiveMigratingDriver, VMState
from cloudctl.drivers.registry import open_driver
from real_qemu import MIGRATE_URI, TinyGuest, ticks, wait_for_tick

from cloudctl.errors import BackendError


def persistent(uri: str, name: str) -> bool:
    import libvirt

    conn = libvirt.open(uri)
    try:
        return bool(conn.lookupByName(name).isPersistent())
    finally:
        conn.close()


def assert_counts_without_a_restart(log: Path) -> list[int]:
    """Every tick once, in order, from 0: the guest never rebooted and the log was never cut."""
    seen = ticks(log)
    assert seen == list(range(len(seen))), f"ticks out of order in {log}: {seen}"
    return seen


def test_the_guest_boots_counts_and_powers_off_on_acpi(
        qemu_host: HypervisorDriver, tiny_guest: TinyGuest, vm_lease: int, tmp_path: Path) -> None:
    spec = tiny_guest.spec(tmp_path, f"cloudctl-{vm_lease}-0", vm_lease)
    log = Path(str(spec.serial_log))
    qemu_host.create(spec)
    wait_for_tick(log, 2)
    assert_counts_without_a_restart(log)
    assert qemu_host.stats(spec.name).cpu_time_ns > 0

    started = time.monotonic()
    qemu_host.shutdown(spec.name, grace_s=30)
    # Well under the grace: the guest powered itself off; a destroy would come after 30 s.
    assert time.monotonic() - started < 10
    assert b"reboot: Power down" in log.read_bytes()
    assert qemu_host.state(spec.name) is VMState.MISSING


def test_save_and_restore_keep_the_guest_counting(
        qemu_host: HypervisorDriver, tiny_guest: TinyGuest, vm_lease: int, tmp_path: Path) -> None:
    spec = tiny_guest.spec(tmp_path, f"cloudctl-{vm_lease}-0", vm_lease)
    log, image = Path(str(spec.serial_log)), tmp_path / "vm.save"
    qemu_host.create(spec)
    wait_for_tick(log, 1)
    qemu_host.suspend(spec.name, str(image))
    assert qemu_host.state(spec.name) is VMState.SHUTOFF
    frozen = ticks(log)
    time.sleep(0.7)  # more than a tick's time
    assert ticks(log) == frozen, "a saved guest must not run"

    qemu_host.resume(spec.name, str(image))
    assert qemu_host.state(spec.name) is VMState.RUNNING
    wait_for_tick(log, frozen[-1] + 1)
    assert_counts_without_a_restart(log)


def test_live_migration_between_two_daemons_keeps_the_guest_counting(
        session_libvirts: tuple[str, str], tiny_guest: TinyGuest, vm_lease: int,
        shared_dir: Path) -> None:
    source_uri, dest_uri = session_libvirts
    options = {"domain_type": "qemu", "migrate_uri": MIGRATE_URI}
    source = open_driver("qemu", source_uri, options)
    dest = open_driver("qemu", dest_uri, options)
    assert isinstance(source, LiveMigratingDriver)
    spec = tiny_guest.spec(shared_dir, f"cloudctl-{vm_lease}-0", vm_lease)
    log = Path(str(spec.serial_log))
    try:
        source.create(spec)
        before = wait_for_tick(log, 1)
        source.migrate(spec.name, dest_uri, live=True)
        assert source.state(spec.name) is VMState.MISSING, "undefined on the source"
        assert dest.state(spec.name) is VMState.RUNNING
        wait_for_tick(log, before + 2)
        assert_counts_without_a_restart(log)

        source.migrate(spec.name, dest_uri, live=True)  # there already: a no-op
        assert dest.state(spec.name) is VMState.RUNNING
        # A VM that is nowhere, and a "migration" onto the daemon it is on: one-line errors.
        for caller, bad_name in ((source, "cloudctl-404-0"), (dest, spec.name)):
            with pytest.raises(BackendError) as err:
                caller.migrate(bad_name, dest_uri, live=True)
            assert "\n" not in str(err.value) and bad_name in str(err.value)
        assert persistent(dest_uri, spec.name), "defined on the destination, not transient"
    finally:
        for driver in (source, dest):
            driver.destroy(spec.name)
            driver.close()
