"""Hypervisor drivers built on libvirt: real QEMU/KVM hosts and libvirt's test driver.

`import libvirt` happens inside the functions that talk to libvirt, so importing this module
(for example to read a class's capabilities) stays cheap and works without the binding.

The test driver keeps its state in the memory of one process, while cloudctl is a CLI whose
every command is a new process. `TestDriver` therefore writes its domains, with their run
states, back into the node file after each change and reloads it before each call, under a
lock on a sibling file so that concurrent commands serialize.

Every other connection is bounded (see `open_connection`): it opens in a worker thread within
`connect_timeout` (the caller's wait is interruptible by SIGINT), libvirt's ssh transport gets
ssh's own connect timeout and keep-alive, and once open, libvirt's keep-alive fails any call to
a host or daemon that stops answering after about `keepalive_interval * (keepalive_count + 1)`
seconds.
"""

from __future__ import annotations

import fcntl
import functools
import math
import os
import re
import signal
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from cloudctl.drivers.base import HostInfo, VMSpec, VMState, VMStats

from cloudctl.errors import BackendError, InvalidInput

MIB = 1024 * 1024
TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
METADATA_NS = "https://cloudctl.invalid/schemas/vm/1.0"
ET.register_namespace("test", TEST_NS)
ET.register_namespace("cloudctl", METADATA_NS)

# virDomainState numbers -> our states (the one table; anything else is UNKNOWN).
NATIVE_STATES: dict[int, VMState] = {
    0: VMState.UNKNOWN,   # NOSTATE
    1: VMState.RUNNING,   # RUNNING
    2: VMState.RUNNING,   # BLOCKED: running, waiting on I/O
    3: VMState.PAUSED,    # PAUSED
    4: VMState.RUNNING,   # SHUTDOWN: still active while the guest shuts down
    5: VMState.SHUTOFF,   # SHUTOFF
    6: VMState.CRASHED,   # CRASHED
    7: VMState.PAUSED,    # PMSUSPENDED: guest-initiated suspend to RAM
}
_PAUSED_NATIVE = (3, 7)


# Options every libvirt driver takes (config table `[drivers.NAME]`), with their defaults: the
# same 10 s per step that SSH hosts get, and a dead peer noticed within 20 s.
CONNECT_TIMEOUT_S = 10.0
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3
CONNECTION_OPTIONS = frozenset({"connect_timeout", "keepalive_interval", "keepalive_count"})


def map_state(native: int) -> VMState:
    return NATIVE_STATES.get(native, VMState.UNKNOWN)


def domain_skeleton(spec: VMSpec, domain_type: str, features: Sequence[str] = ("acpi",)
                    ) -> tuple[ET.Element, ET.Element, ET.Element]:
    """What every domain of ours shares (name, lease metadata, memory, CPUs, lifecycle);
    returns it with its <os> and <devices> empty, for each hypervisor's XML to fill."""
    dom = ET.Element("domain", type=domain_type)
    ET.SubElement(dom, "name").text = spec.name
    metadata = ET.SubElement(dom, "metadata")
    # Which lease and node a domain serves, recoverable from the hypervisor alone.
    ET.SubElement(metadata, f"{{{METADATA_NS}}}vm", lease=str(spec.lease_id), node=str(spec.node))
    ET.SubElement(dom, "memory", unit="MiB").text = str(spec.memory_mib)
    ET.SubElement(dom, "currentMemory", unit="MiB").text = str(spec.memory_mib)
    ET.SubElement(dom, "vcpu").text = str(spec.cpus)
    os_el = ET.SubElement(dom, "os")
    if features:
        feature_el = ET.SubElement(dom, "features")
        for feature in features:
            ET.SubElement(feature_el, feature)
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "restart"
    ET.SubElement(dom, "on_crash").text = "destroy"
    return dom, os_el, ET.SubElement(dom, "devices")


def add_kernel_boot(os_el: ET.Element, spec: VMSpec) -> bool:
    """Direct kernel boot when `spec` names a kernel; False when it does not."""
    if not spec.kernel:
        return False
    ET.SubElement(os_el, "kernel").text = spec.kernel
    if spec.initrd:
        ET.SubElement(os_el, "initrd").text = spec.initrd
    if spec.cmdline:
        ET.SubElement(os_el, "cmdline").text = spec.cmdline
    return True


def add_disk(devices: ET.Element, spec: VMSpec, dev: str, bus: str) -> None:
    """The spec's disk image (if any) as `dev` on `bus`."""
    if spec.disk_path:
        disk = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type=spec.disk_format)
        ET.SubElement(disk, "source", file=spec.disk_path)
        ET.SubElement(disk, "target", dev=dev, bus=bus)


def add_log_source(char_device: ET.Element, path: str) -> None:
    # append='on' or the log is truncated at every start and restore.
    ET.SubElement(char_device, "source", path=path, append="on")


def xml_text(dom: ET.Element) -> str:
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode")


def domain_xml(spec: VMSpec, domain_type: str) -> str:
    """Domain XML for `spec`; every element guards against a trap listed in REAL-COMPONENTS.md."""
    # Without ACPI a shutdown request only halts the guest.
    dom, os_el, devices = domain_skeleton(spec, domain_type, features=("acpi",))
    ET.SubElement(os_el, "type").text = "hvm"
    if not add_kernel_boot(os_el, spec):
        ET.SubElement(os_el, "boot", dev="hd")
    add_disk(devices, spec, "vda", "virtio")
    if spec.nic:
        # User networking: bridged or NAT networks would need dnsmasq and iptables.
        nic = ET.SubElement(devices, "interface", type="user")
        ET.SubElement(nic, "model", type="virtio")
    if spec.serial_log:
        serial = ET.SubElement(devices, "serial", type="file")
        add_log_source(serial, spec.serial_log)
        ET.SubElement(serial, "target", port="0")
    ET.SubElement(devices, "memballoon", model="none")
    return xml_text(dom)


Method = TypeVar("Method", bound=Callable[..., Any])
_in_call = threading.local()
# Signals a command acts on: never taken by a worker thread of ours, so that the kernel hands
# them to the main thread, whose wait they interrupt.
_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def start_worker(target: Callable[[], None], name: str) -> None:
    """Run `target` in a daemon thread that has `_SIGNALS` blocked (from its first instruction:
    a thread inherits the signal mask it is created with)."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def wait_for(done: threading.Event, timeout: float | None = None) -> bool:
    """`done.wait(timeout)` in short slices: a signal another thread received (one not of
    ours) is seen by this one within a slice."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
        if done.wait(max(0.0, left)):
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False


def interruptible(method: Method) -> Method:
    """Run a public driver call of a remote libvirt in a worker thread while the caller waits:
    a call in flight inside libvirt cannot see a SIGINT, its caller's wait can (the call
    itself ends by keep-alive at the latest). The in-process test driver is called directly."""

    @functools.wraps(method)
    def call(self: LibvirtDriver, *args: Any, **kwargs: Any) -> Any:
        if self.uri.startswith("test:///") or getattr(_in_call, "active", False):
            return method(self, *args, **kwargs)
        done, outcome = threading.Event(), {}

        def work() -> None:
            _in_call.active = True
            try:
                outcome["result"] = method(self, *args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                outcome["error"] = exc
            finally:
                done.set()

        start_worker(work, f"libvirt-{method.__name__}")
        wait_for(done)  # KeyboardInterrupt leaves the worker to end by itself
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    return call  # type: ignore[return-value]


class LibvirtDriver:
    """One libvirt connection (opened on first use) and the lifecycle every libvirt host shares."""

    name = "libvirt"
    capabilities: frozenset[str] = frozenset()
    known_options: frozenset[str] = frozenset()
    domain_type = "qemu"

    def __init__(self, uri: str, options: Mapping[str, object] | None = None) -> None:
        self.uri = uri
        self.options = dict(options or {})
        known_options = self.known_options | CONNECTION_OPTIONS
        unknown = sorted(set(self.options) - known_options)
        if unknown:
            known = ", ".join(sorted(known_options))
            raise InvalidInput(f"{self.name} driver: unknown option(s) {', '.join(unknown)} "
                               f"(known: {known})")
        self.bounds = ConnectionBounds.from_options(self.options, self.name)
        self._conn: Any = None

    @classmethod
    def default_uri(cls, host_name: str, cpus: int, memory_mib: int, state_dir: Path) -> str:
        raise InvalidInput(f"{cls.name} driver has no default URI; give one")

    # -- plumbing ---------------------------------------------------------------------------

    def _fail(self, operation: str, message: str) -> BackendError:
        line = " ".join(str(message).split())
        return BackendError(f"{self.uri}: {operation}: {line}")

    @contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        """Turn libvirt's exceptions into one-line BackendErrors naming host and operation."""
        import libvirt

        try:
            yield
        except libvirt.libvirtError as exc:
            raise self._fail(operation, exc.get_error_message() or str(exc)) from exc
        except Unanswered as exc:
            raise self._fail(operation, str(exc)) from None
        except SystemError as exc:
            # Ctrl-C during a libvirt call surfaces, when the call fails, as "returned a
            # result with an exception set" around the KeyboardInterrupt: it is the interrupt.
            if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
                raise KeyboardInterrupt from None
            raise

    def _connection(self) -> Any:
        if self._conn is None:
            with self._errors("connect"):
                self._conn = open_connection(self.uri, self.bounds)
        return self._conn

    @contextmanager
    def _session(self, mutates: bool) -> Iterator[None]:
        """Around every public call; the test driver loads and saves its node file here."""
        yield

    def _lookup(self, name: str) -> Any:
        """The domain called `name`, or None."""
        return self._lookup_on(self._connection(), name)

    @staticmethod
    def _lookup_on(conn: Any, name: str) -> Any:
        """The domain called `name` on the connection `conn`, or None."""
        import libvirt

        try:
            return conn.lookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    @staticmethod
    def _native_state(dom: Any) -> int | None:
        """virDomainState of `dom`, or None when it vanished (a transient domain that stopped)."""
        import libvirt

        try:
            return int(dom.state()[0])
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    @staticmethod
    def _is_active(dom: Any) -> bool:
        """Running, paused or crashed-and-kept: it holds memory. False once it vanished."""
        import libvirt

        try:
            return bool(dom.isActive())
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return False
            raise

    def _undefine(self, dom: Any) -> None:
        import libvirt

        try:
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                              | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        except libvirt.libvirtError as exc:
            # A transient domain disappears by itself once stopped.
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise

    def _hard_stop(self, dom: Any) -> None:
        import libvirt

        try:
            dom.destroy()
        except libvirt.libvirtError:
            if self._is_active(dom):
                raise

    def domain_xml(self, spec: VMSpec) -> str:
        return domain_xml(spec, self.domain_type)

    def _free_memory_mib(self, total_mib: int) -> int:
        return int(self._connection().getFreeMemory()) // MIB

    # -- the HypervisorDriver protocol ------------------------------------------------------

    @interruptible
    def host_info(self) -> HostInfo:
        with self._session(mutates=False), self._errors("host info"):
            conn = self._connection()
            _model, memory_mib, cpus, *_ = conn.getInfo()
            return HostInfo(cpus=int(cpus), memory_mib=int(memory_mib),
                            free_memory_mib=self._free_memory_mib(int(memory_mib)),
                            running_vms=int(conn.numOfDomains()))

    @interruptible
    def create(self, spec: VMSpec) -> None:
        with self._session(mutates=True), self._errors(f"create {spec.name}"):
            dom = self._lookup(spec.name)
            if dom is None:
                dom = self._connection().defineXML(self.domain_xml(spec))
            native = self._native_state(dom)
            if native in _PAUSED_NATIVE:
                dom.resume()
            elif not self._is_active(dom):
                dom.create()

    @interruptible
    def suspend(self, name: str, path: str) -> None:
        with self._session(mutates=True), self._errors(f"suspend {name}"):
            dom = self._lookup(name)
            if dom is None or not self._is_active(dom):
                if self._saved_image_exists(path):
                    return
                what = "missing" if dom is None else "not running"
                raise self._fail(f"suspend {name}",
                                 f"domain is {what} and there is no saved image at {path}")
            dom.save(path)

    @interruptible
    def resume(self, name: str, path: str, disk_path: str | None = None) -> None:
        import libvirt

        with self._session(mutates=True), self._errors(f"resume {name}"):
            dom = self._lookup(name)
            if dom is not None and self._is_active(dom):
                if self._native_state(dom) in _PAUSED_NATIVE:
                    dom.resume()
                return
            if not self._saved_image_exists(path):
                raise self._fail(f"resume {name}", f"no saved image at {path}")
            conn = self._connection()
            if disk_path is not None:
                self._point_saved_disk(conn, path, disk_path)
            # Not restoreFlags(VIR_DOMAIN_SAVE_RUNNING): the test driver rejects that flag.
            conn.restore(path)
            dom = self._lookup(name)
            if dom is None:
                raise self._fail(f"resume {name}", f"the image at {path} holds another domain")
            if self._native_state(dom) in _PAUSED_NATIVE:
                dom.resume()  # the image was saved from a paused guest
            if not dom.isPersistent():
                # Restored on a host that never defined it (cold migration): keep it defined,
                # so that it behaves like any other domain here.
                conn.defineXML(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE
                                           | libvirt.VIR_DOMAIN_XML_SECURE))

    def _saved_image_exists(self, path: str) -> bool:
        """Whether the saved image is there. It is on the hypervisor's machine: looked at
        here only for a local URI; a remote one is asked at restore time."""
        return os.path.exists(path) if not _remote(self.uri) else True

    @staticmethod
    def _point_saved_disk(conn: Any, path: str, disk_path: str) -> None:
        """Make the domain saved at `path` use the disk at `disk_path` (a cold migration
        moved it; the image still names its old place). Already there -> untouched."""
        import libvirt

        flags = libvirt.VIR_DOMAIN_SAVE_IMAGE_XML_SECURE
        dom = ET.fromstring(conn.saveImageGetXMLDesc(path, flags))
        source = dom.find("devices/disk[@device='disk']/source[@file]")
        if source is None or source.get("file") == disk_path:
            return
        source.set("file", disk_path)
        conn.saveImageDefineXML(path, ET.tostring(dom, encoding="unicode"), 0)

    @interruptible
    def shutdown(self, name: str, grace_s: float = 30.0) -> None:
        with self._session(mutates=True), self._errors(f"shutdown {name}"):
            dom = self._lookup(name)
            if dom is None:
                return
            native = self._native_state(dom)
            if native is not None and map_state(native) is VMState.RUNNING:
                self._acpi_shutdown(dom, grace_s)
            elif self._is_active(dom):
                self._hard_stop(dom)  # a paused or crashed guest cannot act on ACPI
            self._undefine(dom)

    def _acpi_shutdown(self, dom: Any, grace_s: float) -> None:
        import libvirt

        deadline = time.monotonic() + grace_s
        next_request = 0.0
        while self._is_active(dom) and time.monotonic() < deadline:
            if time.monotonic() >= next_request:
                # Again every second: a guest still booting drops a power-button press that
                # comes before its ACPI daemon listens.
                next_request = time.monotonic() + 1.0
                try:
                    dom.shutdown()
                except libvirt.libvirtError as exc:
                    # "domain is not running": an earlier press is being acted on (the guest
                    # is shutting down, its QEMU not gone yet), so the wait goes on.
                    if (exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID
                            and self._is_active(dom)):
                        raise
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        if self._is_active(dom):
            self._hard_stop(dom)

    @interruptible
    def destroy(self, name: str) -> None:
        with self._session(mutates=True), self._errors(f"destroy {name}"):
            dom = self._lookup(name)
            if dom is None:
                return
            if self._is_active(dom):
                self._hard_stop(dom)
            self._undefine(dom)

    @interruptible
    def state(self, name: str) -> VMState:
        with self._session(mutates=False), self._errors(f"state {name}"):
            dom = self._lookup(name)
            native = None if dom is None else self._native_state(dom)
            return VMState.MISSING if native is None else map_state(native)

    @interruptible
    def list_vms(self, prefix: str = "cloudctl-") -> dict[str, VMState]:
        with self._session(mutates=False), self._errors("list domains"):
            found: dict[str, VMState] = {}
            for dom in self._connection().listAllDomains(0):
                native = self._native_state(dom)
                if native is not None and dom.name().startswith(prefix):
                    found[dom.name()] = map_state(native)
            return found

    @interruptible
    def stats(self, name: str) -> VMStats:
        with self._session(mutates=False), self._errors(f"stats {name}"):
            dom = self._lookup(name)
            if dom is None:
                return VMStats(VMState.MISSING, 0, 0)
            native, _max_kib, memory_kib, _vcpus, cpu_time_ns = dom.info()
            return VMStats(map_state(native), int(cpu_time_ns), int(memory_kib) // 1024)

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection must not fail
                pass

    def __enter__(self) -> LibvirtDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class QemuDriver(LibvirtDriver):
    """A QEMU host through libvirtd. The domain type comes from options["domain_type"]
    ("qemu" unless told): /dev/kvm can exist and still not work, so it is never guessed."""

    name = "qemu"
    capabilities = frozenset({"suspend", "cold-migration", "live-migration"})
    known_options = frozenset({"domain_type", "migrate_uri"})
    DOMAIN_TYPES = ("qemu", "kvm")

    def __init__(self, uri: str, options: Mapping[str, object] | None = None) -> None:
        super().__init__(uri, options)
        domain_type = self.options.get("domain_type", "qemu")
        if domain_type not in self.DOMAIN_TYPES:
            raise InvalidInput(f"{self.name} driver: domain_type {domain_type!r} is not one of "
                               f"{', '.join(self.DOMAIN_TYPES)}")
        self.domain_type = str(domain_type)
        # Where the destination QEMU listens for the migration stream, e.g. "tcp://127.0.0.1"
        # for two daemons on one machine; None lets libvirt use the destination's hostname.
        migrate_uri = self.options.get("migrate_uri")
        if migrate_uri is not None and (not isinstance(migrate_uri, str)
                                        or not re.fullmatch(r"[a-z][a-z0-9+.-]*://\S+",
                                                            migrate_uri)):
            raise InvalidInput(f"{self.name} driver: migrate_uri {migrate_uri!r} is not a URI "
                               "like tcp://HOST[:PORT]")
        self.migrate_uri: str | None = migrate_uri

    @classmethod
    def default_uri(cls, host_name: str, cpus: int, memory_mib: int, state_dir: Path) -> str:
        return "qemu:///system"

    @interruptible
    def migrate(self, name: str, dest_uri: str, live: bool = True) -> None:
        """Move the active domain `name` to the libvirtd at `dest_uri`: defined there, undefined
        here. `live` keeps the guest running during the copy (else it is paused meanwhile).
        Active on the destination already -> no-op (a leftover definition here is dropped)."""
        import libvirt

        operation = f"migrate {name} to {dest_uri}"
        with self._session(mutates=True), self._errors(operation):
            here_conn = self._connection()
            try:
                dest = open_connection(dest_uri, self.bounds)
            except (libvirt.libvirtError, Unanswered) as exc:
                message = (exc.get_error_message() if isinstance(exc, libvirt.libvirtError)
                           else None) or str(exc)
                raise self._fail(operation, f"connect to {dest_uri}: {message}") from exc
            try:
                if _host_uuid(dest) == _host_uuid(here_conn):
                    # Else the domain "there" would be this very one, and a no-op a lie.
                    raise self._fail(operation, "the destination is this same libvirtd")
                there = self._lookup_on(dest, name)
                here = self._lookup(name)
                if there is not None and self._is_active(there):
                    if here is not None and not self._is_active(here):
                        self._undefine(here)  # an earlier attempt stopped after the copy
                    return
                if here is None or not self._is_active(here):
                    what = "missing" if here is None else "not running"
                    raise self._fail(operation, f"domain is {what} here and not running there")
                # UNSAFE: libvirt calls any disk cache mode but 'none' unsafe to migrate; the
                # disks sit on storage both hosts see at one path, which the caller guarantees.
                flags = (libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
                         | libvirt.VIR_MIGRATE_UNSAFE)
                if live:
                    flags |= libvirt.VIR_MIGRATE_LIVE
                here.migrate(dest, flags, None, self.migrate_uri, 0)
            finally:
                try:
                    dest.close()
                except libvirt.libvirtError:
                    pass


# -- bounded connections ---------------------------------------------------------------------

class ConnectionBounds:
    """How long a connection may take to open, and its keep-alive once open."""

    def __init__(self, connect_timeout: float = CONNECT_TIMEOUT_S,
                 keepalive_interval: int = KEEPALIVE_INTERVAL_S,
                 keepalive_count: int = KEEPALIVE_COUNT) -> None:
        self.connect_timeout = connect_timeout
        self.keepalive_interval = keepalive_interval
        self.keepalive_count = keepalive_count

    @classmethod
    def from_options(cls, options: Mapping[str, object], driver: str) -> ConnectionBounds:
        def number(key: str, default: float, integer: bool) -> Any:
            value = options.get(key, default)
            try:
                parsed = float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                parsed = math.nan
            if (isinstance(value, bool) or not math.isfinite(parsed) or parsed <= 0
                    or (integer and parsed != int(parsed))):
                kind = "a whole number" if integer else "a number of seconds"
                raise InvalidInput(f"{driver} driver: {key} must be {kind} above 0, "
                                   f"not {value!r}")
            return int(parsed) if integer else parsed

        return cls(number("connect_timeout", CONNECT_TIMEOUT_S, False),
                   number("keepalive_interval", KEEPALIVE_INTERVAL_S, True),
                   number("keepalive_count", KEEPALIVE_COUNT, True))


class Unanswered(Exception):
    """A libvirt connection did not open in time."""


_event_loop_lock = threading.Lock()
_event_loop_started = False


def _start_event_loop() -> None:
    """libvirt's keep-alive needs an event loop: registered before the first remote connection
    opens, and run in a daemon thread for the life of the process."""
    global _event_loop_started
    import libvirt

    with _event_loop_lock:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        start_worker(run, "libvirt-events")
        _event_loop_started = True


def open_connection(uri: str, bounds: ConnectionBounds) -> Any:
    """A libvirt connection to `uri` (raises libvirtError, or Unanswered after
    `bounds.connect_timeout`). The in-process test driver opens at once; any other connection
    opens in a worker thread and gets libvirt's keep-alive."""
    import libvirt

    # libvirt prints every error to stderr by default; ours go through BackendError.
    libvirt.registerErrorHandler(lambda *_: None, None)
    if uri.startswith("test:///"):
        return libvirt.open(uri)
    _start_event_loop()
    conn = _open_bounded(bounded_uri(uri, bounds), bounds.connect_timeout)
    try:
        conn.setKeepAlive(bounds.keepalive_interval, bounds.keepalive_count)
    except libvirt.libvirtError:
        conn.close()
        raise
    return conn


def _open_bounded(uri: str, timeout: float) -> Any:
    """libvirt.open(uri) in a worker thread; this thread waits at most `timeout` (a SIGINT
    interrupts the wait). A connection that opens after its caller gave up is closed."""
    import libvirt

    lock, done = threading.Lock(), threading.Event()
    outcome: dict[str, Any] = {}

    def connect() -> None:
        try:
            conn = libvirt.open(uri)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            conn, outcome["error"] = None, exc
        with lock:
            if outcome.get("abandoned"):
                if conn is not None:
                    _close_quietly(conn)
            else:
                outcome["conn"] = conn
            done.set()

    start_worker(connect, "libvirt-connect")
    try:
        answered = wait_for(done, timeout)
    finally:
        with lock:
            if not done.is_set():
                outcome["abandoned"] = True  # on time out, and on KeyboardInterrupt
    if not answered:
        raise Unanswered(f"no answer within {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["conn"]


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - nobody is waiting for this connection any more
        pass


def bounded_uri(uri: str, bounds: ConnectionBounds) -> str:
    """`uri` with ssh's own bounds for libvirt's ssh transport (`qemu+ssh://`, `xen+ssh://`):
    `no_tty=1` (BatchMode: never a password prompt) and `command=` a wrapper that gives ssh a
    connect timeout (TCP, banner and key exchange) and a keep-alive, so that the ssh process
    itself ends when the host is silent. A URI that names its own `command` keeps it."""
    scheme, sep, _ = uri.partition("://")
    if not sep or scheme.partition("+")[2] != "ssh":
        return uri
    base, _, query = uri.partition("?")
    params = urllib.parse.parse_qsl(query, keep_blank_values=True)
    names = {name for name, _ in params}
    if "no_tty" not in names:
        params.append(("no_tty", "1"))
    if "command" not in names:
        params.append(("command", str(ssh_wrapper(bounds))))
    return f"{base}?{urllib.parse.urlencode(params, safe='/')}"


def ssh_wrapper(bounds: ConnectionBounds) -> Path:
    """An executable that runs ssh with a connect timeout and keep-alive (libvirt's `command`
    names one program, no arguments; the environment it passes does not reach ssh's options).
    Written once per set of values, in a directory only this user can write."""
    timeout = max(1, math.ceil(bounds.connect_timeout))
    interval, count = bounds.keepalive_interval, bounds.keepalive_count
    directory = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cloudctl"
    path = directory / f"libvirt-ssh-{timeout}-{interval}-{count}"
    text = ("#!/bin/sh\n"
            "# Written by cloudctl: libvirt's ssh transport, bounded (drivers/libvirt.py).\n"
            f"exec ssh -o ConnectTimeout={timeout} -o ServerAliveInterval={interval} "
            f"-o ServerAliveCountMax={count} \"$@\"\n")
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        owner = directory.lstat()
        if owner.st_uid != os.getuid() or owner.st_mode & 0o022:
            raise BackendError(f"{directory} is writable by others: cloudctl will not run "
                               "programs from it")
        if not path.is_file() or path.read_text() != text:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
            with os.fdopen(fd, "w") as out:
                out.write(text)
            os.chmod(tmp, 0o700)
            os.replace(tmp, path)
    except OSError as exc:
        raise BackendError(f"cannot write the ssh wrapper {path}: {exc.strerror}") from exc
    return path


def _remote(uri: str) -> bool:
    """A URI whose daemon may run on another machine (qemu+ssh://host/..., qemu://host/...)."""
    scheme, _, rest = uri.partition("://")
    return "+" in scheme and not scheme.endswith("+unix") or not rest.startswith("/")


def _host_uuid(conn: Any) -> str:
    """The host UUID a libvirtd reports (session daemons on one machine get distinct ones)."""
    return ET.fromstring(conn.getCapabilities()).findtext("host/uuid", default="")


# -- libvirt's test driver, persisted in its node file -----------------------------------------

_HOST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def node_document(cpus: int, memory_mib: int) -> str:
    """A test-driver <node> file for an empty host with `cpus` CPUs and `memory_mib` MiB."""
    return ("<node>\n"
            f"  <cpu><nodes>1</nodes><sockets>1</sockets><cores>{cpus}</cores>"
            f"<threads>1</threads><active>{cpus}</active><mhz>2000</mhz></cpu>\n"
            f"  <memory>{memory_mib * 1024}</memory>\n"
            "</node>\n")


def node_text(children: list[ET.Element]) -> str:
    """A <node> document of `children`; each serialized alone carries its own namespace
    declarations, so a domain keeps its test: namespace wherever it sits."""
    body = "".join("  " + ET.tostring(child, encoding="unicode").strip() + "\n"
                   for child in children)
    return f"<node>\n{body}</node>\n"


def write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with `text`, readable by its owner only."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a leftover tmp file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def acquire_lock(node_file: Path, exclusive: bool) -> int:
    """flock `node_file`.lock and return its descriptor (closing it releases the lock). The
    node file itself is replaced by rename at each write, so it cannot carry the lock."""
    fd = os.open(node_file.with_name(node_file.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def locked(node_file: Path, exclusive: bool) -> Iterator[None]:
    fd = acquire_lock(node_file, exclusive)
    try:
        yield
    finally:
        os.close(fd)


class TestDriver(LibvirtDriver):
    """libvirt's test driver on `test:///ABS/PATH/node.xml`, persisted across processes.

    The test driver does not migrate, attach devices, run guests or account memory; its CPU
    times are fake. Saved images hold the domain XML and restore in any process and on any
    test host, which is what makes cold migration work here.
    """

    __test__ = False  # not a pytest class, whatever its name says
    name = "test"
    capabilities = frozenset({"suspend", "cold-migration"})
    domain_type = "test"  # the type the test driver's capabilities advertise

    def __init__(self, uri: str, options: Mapping[str, object] | None = None) -> None:
        super().__init__(uri, options)
        path = uri[len("test://"):] if uri.startswith("test:///") else ""
        if not path or path == "/default" or not os.path.isabs(path):
            raise InvalidInput(f"test driver needs test:///ABSOLUTE/PATH/node.xml, got {uri!r} "
                               "(its state is kept in that file)")
        self.node_file = Path(path)
        self._depth = 0
        self._swept = False

    @classmethod
    def default_uri(cls, host_name: str, cpus: int, memory_mib: int, state_dir: Path) -> str:
        """Create (once) the private node file `state_dir/hosts/<host_name>.xml`."""
        if not _HOST_NAME.fullmatch(host_name):
            raise InvalidInput(f"host name {host_name!r} cannot name a node file")
        if cpus < 1 or memory_mib < 1:
            raise InvalidInput(f"host {host_name}: cpus and memory_mib must be positive")
        hosts = Path(state_dir).resolve() / "hosts"
        hosts.mkdir(parents=True, exist_ok=True, mode=0o700)
        node_file = hosts / f"{host_name}.xml"
        with locked(node_file, exclusive=True):
            if not node_file.exists():
                write_private(node_file, node_document(cpus, memory_mib))
            else:
                # It holds the host's domains: keep them, update only the host's size.
                try:
                    old = ET.parse(node_file).getroot()
                except ET.ParseError as exc:
                    raise InvalidInput(f"node file {node_file} is not XML: {exc}") from exc
                size = list(ET.fromstring(node_document(cpus, memory_mib)))
                kept = [child for child in old if child.tag not in ("cpu", "memory")]
                write_private(node_file, node_text([*size, *kept]))
        return f"test://{node_file}"

    @contextmanager
    def _session(self, mutates: bool) -> Iterator[None]:
        if self._depth:  # a second flock from this process would wait for itself
            yield
            return
        if not self.node_file.is_file():
            # Checked here, not left to libvirt: libxml2 would also print a warning on stderr.
            raise self._fail("connect", f"no node file at {self.node_file}")
        try:
            lock_fd = acquire_lock(self.node_file, exclusive=mutates)
        except OSError as exc:
            raise self._fail("lock", f"{exc.strerror}: {exc.filename}") from exc
        self._depth += 1
        try:
            if not self._swept:
                self._remove_dead_temporaries()
            # Another process may have changed the file: reconnecting re-reads it (~0.1 ms).
            self.close()
            self._connection()
            try:
                yield
            finally:
                # Also after a failure: libvirt may have changed state before it failed.
                if mutates and self._conn is not None:
                    self._persist()
        finally:
            self._depth -= 1
            os.close(lock_fd)

    def _remove_dead_temporaries(self) -> None:
        """Every write of the node file goes through a temporary under the exclusive lock: while
        this process holds the lock, any temporary there is one a killed process left."""
        self._swept = True
        for leftover in self.node_file.parent.glob(f".{self.node_file.name}.*.tmp"):
            leftover.unlink(missing_ok=True)

    def _persist(self) -> None:
        """Write every domain, with its run state, back into the node file."""
        import libvirt

        with self._errors("save node file"):
            domains = []
            for dom in self._connection().listAllDomains(0):
                native = self._native_state(dom)
                if native is None:
                    continue
                el = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE
                                               | libvirt.VIR_DOMAIN_XML_SECURE))
                el.attrib.pop("id", None)
                # Read back by the test driver's namespace parser; absent means running.
                ET.SubElement(el, f"{{{TEST_NS}}}runstate").text = str(native)
                if not dom.isPersistent():
                    ET.SubElement(el, f"{{{TEST_NS}}}transient")
                domains.append(el)
        try:
            root = ET.parse(self.node_file).getroot()
            kept = [child for child in root if child.tag != "domain"]
            write_private(self.node_file, node_text([*kept, *domains]))
        except (OSError, ET.ParseError) as exc:
            raise self._fail("save node file", str(exc)) from exc

    def _free_memory_mib(self, total_mib: int) -> int:
        # The test driver reports 0 free memory for file-based nodes; count active domains.
        used_kib = sum(dom.info()[2] for dom in self._connection().listAllDomains(0)
                       if self._is_active(dom))
        return max(0, total_mib - int(used_kib) // 1024)
