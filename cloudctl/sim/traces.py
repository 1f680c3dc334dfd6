"""Workload traces: SWF, Haizea's LWF XML and Haizea's line format, read into LeaseRequests.

The format is recognised by content, not by extension (the injected Blue files are named
`.lwf` but use the line format). Every request remembers `file:line` so the simulator and
the CLI can point at the job behind a problem, and every malformed input raises
InvalidInput with one line naming that place.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from xml.parsers import expat

from cloudctl.errors import InvalidInput
from cloudctl.limits import (
    MAX_CPUS,
    MAX_DISK_MIB,
    MAX_DURATION_S,
    MAX_ID,
    MAX_MEMORY_MIB,
    MAX_NODES,
    MAX_TIME,
)
from cloudctl.scheduler.model import Capacity, LeaseRequest, LeaseType

ESTIMATES = ("requested", "actual")
SWF_FIELDS = 18
LINE_FIELDS = 10
LINE_COLUMNS = "submit start duration real_duration nodes cpu memory disk image image_size"
CPU_UNIT = 100  # Haizea counts CPU in percent of one processor

_by_submit = attrgetter("submit")
_BOM = b"\xef\xbb\xbf"
_GZIP = b"\x1f\x8b"


@dataclass
class Trace:
    """A workload read from a file: requests sorted by submit time plus the site it ran on."""

    path: str
    format: str  # "swf" | "lwf-xml" | "lwf-line"
    requests: list[LeaseRequest]  # sorted by (submit, original order)
    nodes: int | None = None  # from the SWF header (MaxNodes, else MaxProcs) or LWF <site>
    node_cpus: int | None = None
    node_memory_mib: int | None = None
    skipped: int = 0  # SWF jobs without a positive size or run time
    killed: int = 0  # SWF jobs that ran past their request and are cut there


def load_trace(
    path: str | os.PathLike[str], *, estimates: str = "requested", memory_mib: int = 1024
) -> Trace:
    """Read an SWF, LWF XML or Haizea line-format trace; raise InvalidInput on any bad input.

    `estimates` (SWF only): "requested" reserves the user's requested time and ends the job
    early at its real run time; "actual" reserves exactly the run time. `memory_mib` is the
    per-node memory given to SWF jobs (which do not record it) and to XML leases without
    a Memory resource.
    """
    name = os.fspath(path)
    if estimates not in ESTIMATES:
        raise InvalidInput(
            f"{name}: unknown estimates {estimates!r} (expected 'requested' or 'actual')"
        )
    if memory_mib <= 0:
        raise InvalidInput(f"{name}: memory_mib must be positive, got {memory_mib}")
    data = _read(name)
    body = data.lstrip()
    if body.startswith(_BOM):
        body = body[len(_BOM) :].lstrip()
    if not body:
        raise InvalidInput(f"{name}: empty file")
    if body.startswith(b"<"):
        return _load_xml(name, data, memory_mib)
    text = _decode(name, data)
    del data, body  # a cloud trace is tens of MB: keep one copy of it
    if _detect_text_format(name, _iter_lines(text)) == "swf":
        return _load_swf(name, text.splitlines(), estimates, memory_mib)
    return _load_line_format(name, _iter_lines(text))


def _iter_lines(text: str) -> Iterator[str]:
    """The lines of `text` one at a time (not a list of them all)."""
    start = 0
    end_of_text = len(text)
    while start < end_of_text:
        end = text.find("\n", start)
        if end < 0:
            end = end_of_text
        yield text[start:end]
        start = end + 1


def merge_traces(base: Trace, injected: Trace) -> Trace:
    """Add `injected`'s requests to `base` (whose site info wins), keeping ids unique.

    Injected ids are shifted by the largest base id (further if some are not positive);
    the requests are re-sorted by submit time, base before injected on ties.
    """
    shift = max((r.id for r in base.requests), default=0)
    lowest = min((r.id for r in injected.requests), default=1)
    if lowest < 1:
        shift += 1 - lowest
    # Copies, so the injected trace keeps its own ids.
    shifted = [r.renumbered(r.id + shift) for r in injected.requests]
    requests = [*base.requests, *shifted]
    requests.sort(key=_by_submit)
    return Trace(
        path=base.path,
        format=base.format,
        requests=requests,
        nodes=base.nodes,
        node_cpus=base.node_cpus,
        node_memory_mib=base.node_memory_mib,
        skipped=base.skipped + injected.skipped,
        killed=base.killed + injected.killed,
    )


# --- reading and recognising a file ---------------------------------------------------


def _read(name: str) -> bytes:
    """The file's bytes; a FIFO, device or directory is refused before a byte is read (a
    FIFO would block, a device never end); gzipped files (as the Parallel Workloads Archive
    ships its logs) are read through gzip."""
    try:
        # Non-blocking open: opening a FIFO with no writer must not hang.
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InvalidInput(f"{name}: no such file") from None
    except OSError as error:
        raise InvalidInput(f"{name}: cannot read: {error.strerror or error}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise InvalidInput(f"{name}: is a directory, not a trace file")
        if not stat.S_ISREG(mode):
            raise InvalidInput(f"{name}: not a regular file (a pipe or device); give a file")
        with open(fd, "rb", closefd=False) as stream:
            data = stream.read()
    except OSError as error:
        raise InvalidInput(f"{name}: cannot read: {error.strerror or error}") from None
    finally:
        os.close(fd)
    if data[:2] == _GZIP:
        import gzip

        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise InvalidInput(f"{name}: not a readable gzip file: {error}") from None
    return data


def _decode(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise InvalidInput(f"{name}:{line}: not a text file (invalid UTF-8)") from None


def _detect_text_format(name: str, lines: Iterable[str]) -> str:
    """Return "swf" or "lwf-line" from the first line that is not blank or a # comment."""
    for lineno, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0].startswith(";"):
            return "swf"
        if len(fields) == SWF_FIELDS and all(_number(f) is not None for f in fields):
            return "swf"
        if len(fields) == LINE_FIELDS:
            return "lwf-line"
        raise InvalidInput(
            f"{name}:{lineno}: unrecognised trace format: expected SWF ({SWF_FIELDS} fields), "
            f"Haizea line format ({LINE_FIELDS} fields) or LWF XML, got {len(fields)} fields"
        )
    raise InvalidInput(f"{name}: empty file (only comments)")


def _number(text: str) -> int | None:
    """Parse an integer, or a finite decimal rounded to the nearest integer; None if neither."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return round(value) if math.isfinite(value) else None


def _numbers(where: str, fields: list[str], indices: Iterable[int]) -> list[int]:
    """Parse the given fields with _number, naming the first bad one (1-based) in the error."""
    values = []
    for index in indices:
        value = _number(fields[index])
        if value is None:
            raise InvalidInput(f"{where}: field {index + 1} is not a number: {fields[index]!r}")
        values.append(value)
    return values


def _within(where: str, what: str, value: int, low: int, high: int) -> int:
    """`value`, if low <= value <= high; else one line naming the place and the field."""
    if not low <= value <= high:
        if value < 0 <= low:
            raise InvalidInput(f"{where}: {what} must not be negative, got {value}")
        shown = value if abs(value) < 10**18 else f"{'more' if value > 0 else 'less'} than 10^18"
        raise InvalidInput(f"{where}: {what} must be between {low:,} and {high:,}, got {shown}")
    return value


# --- SWF ---------------------------------------------------------------------------------

_SWF_USED = (0, 1, 3, 4, 7, 8)  # job id, submit, run, allocated procs, requested procs, time


def _load_swf(name: str, lines: list[str], estimates: str, memory_mib: int) -> Trace:
    # One shared Capacity: it is frozen, and 28k identical objects would only cost time.
    capacity = Capacity(cpus=1, memory_mib=memory_mib, disk_mib=0)
    use_requested = estimates == "requested"
    best_effort = LeaseType.BE
    header: dict[str, tuple[int, int]] = {}  # key: (value, line)
    requests: list[LeaseRequest] = []
    append = requests.append
    skipped = killed = 0
    for lineno, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if fields[0][0] == ";":
            _read_swf_header(line, lineno, header)
            continue
        if len(fields) != SWF_FIELDS:
            raise InvalidInput(
                f"{name}:{lineno}: expected {SWF_FIELDS} SWF fields, got {len(fields)}"
            )
        # Plain int() on the fast path: this loop must stay cheap for 100k-job logs.
        try:
            job = int(fields[0])
            submit = int(fields[1])
            run = int(fields[3])
            allocated = int(fields[4])
            asked = int(fields[7])
            requested = int(fields[8])
        except ValueError:
            job, submit, run, allocated, asked, requested = _numbers(
                f"{name}:{lineno}", fields, _SWF_USED
            )
        nodes = asked if asked > 0 else allocated
        if nodes <= 0 or run <= 0:
            skipped += 1
            continue
        real: int | None = None
        if not use_requested:
            duration = run
        elif requested > 0:
            duration = requested
            if run < requested:
                real = run
            elif run > requested:
                killed += 1  # the scheduler would have killed it at its requested time
        else:
            duration = run
        if (nodes > MAX_NODES or duration > MAX_DURATION_S or not -MAX_TIME <= submit <= MAX_TIME
                or not -MAX_ID <= job <= MAX_ID):
            where = f"{name}:{lineno}"
            _within(where, "job number (field 1)", job, -MAX_ID, MAX_ID)
            _within(where, "submit time (field 2)", submit, -MAX_TIME, MAX_TIME)
            _within(where, "processors (field 5 or 8)", nodes, 1, MAX_NODES)
            _within(where, "run time (field 4 or 9)", duration, 1, MAX_DURATION_S)
        append(
            LeaseRequest(
                id=job,
                type=best_effort,
                submit=submit,
                nodes=nodes,
                capacity=capacity,
                duration=duration,
                preemptible=True,
                real_duration=real,
                source=f"{name}:{lineno}",
            )
        )
    requests.sort(key=_by_submit)
    site_nodes = None
    for key in ("MaxNodes", "MaxProcs"):
        if key in header:
            site_nodes, lineno = header[key]
            # Checked before a single host is made: a MaxProcs of 1e30 must not allocate.
            _within(f"{name}:{lineno}", f"{key} (hosts to simulate)", site_nodes, 1, MAX_NODES)
            break
    return Trace(
        path=name,
        format="swf",
        requests=requests,
        nodes=site_nodes,
        node_cpus=1 if site_nodes else None,
        node_memory_mib=memory_mib if site_nodes else None,
        skipped=skipped,
        killed=killed,
    )


def _read_swf_header(line: str, lineno: int, header: dict[str, tuple[int, int]]) -> None:
    """Record `; MaxNodes: N` and `; MaxProcs: N` with their line; other comments are
    ignored."""
    key, colon, value = line.lstrip()[1:].partition(":")
    key = key.strip()
    if not colon or key not in ("MaxNodes", "MaxProcs"):
        return
    words = value.split()
    number = _number(words[0]) if words else None
    # SWF writes -1 for unknown; an unknown size leaves the site size to the caller.
    if number is not None and number > 0:
        header[key] = (number, lineno)


# --- Haizea line format ------------------------------------------------------------------


def _load_line_format(name: str, lines: Iterable[str]) -> Trace:
    requests: list[LeaseRequest] = []
    # Requests of one shape share their frozen Capacity and image name: a cloud trace has
    # a few flavors and hundreds of thousands of VMs.
    capacities: dict[tuple[int, int, int], Capacity] = {}
    images: dict[str, str] = {}
    for lineno, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):  # Haizea's reader skips # comments
            continue
        where = f"{name}:{lineno}"
        if len(fields) != LINE_FIELDS:
            raise InvalidInput(
                f"{where}: expected {LINE_FIELDS} fields ({LINE_COLUMNS}), got {len(fields)}"
            )
        submit, start, duration, real, nodes, cpu, memory, disk, image_size = _numbers(
            where, fields, (0, 1, 2, 3, 4, 5, 6, 7, 9)
        )
        if duration <= 0:
            raise InvalidInput(f"{where}: duration must be positive, got {duration}")
        if nodes <= 0:
            raise InvalidInput(f"{where}: node count must be positive, got {nodes}")
        _within(where, "submit time", submit, -MAX_TIME, MAX_TIME)
        _within(where, "start time", start, -MAX_TIME, MAX_TIME)
        _within(where, "duration", duration, 1, MAX_DURATION_S)
        _within(where, "node count", nodes, 1, MAX_NODES)
        _within(where, "cpu", cpu, 0, MAX_CPUS)
        _within(where, "memory", memory, 0, MAX_MEMORY_MIB)
        _within(where, "disk", disk, 0, MAX_DISK_MIB)
        _within(where, "image size", image_size, 0, MAX_DISK_MIB)
        # Only -1 means best-effort: two of the injected Blue files hold ARs with a start
        # before the trace begins, which the scheduler (not the reader) must reject.
        best_effort = start == -1
        shape = (max(1, cpu), memory, disk)
        capacity = capacities.get(shape)
        if capacity is None:
            capacity = capacities[shape] = Capacity(*shape)
        image = fields[8].strip("'\"")
        image = images.setdefault(image, image)
        requests.append(
            LeaseRequest(
                id=len(requests) + 1,
                type=LeaseType.BE if best_effort else LeaseType.AR,
                submit=submit,
                nodes=nodes,
                capacity=capacity,
                duration=duration,
                start=None if best_effort else start,
                preemptible=best_effort,
                image=image,
                image_size_mib=image_size,
                real_duration=real if 0 < real < duration else None,
                source=where,
            )
        )
    requests.sort(key=_by_submit)
    return Trace(path=name, format="lwf-line", requests=requests)


# --- Haizea LWF XML ----------------------------------------------------------------------


@dataclass(slots=True)
class _Element:
    """A parsed XML element that remembers the line of its start tag."""

    tag: str
    attrs: dict[str, str]
    line: int
    children: list[_Element] = field(default_factory=list)

    def child(self, tag: str) -> _Element | None:
        return next((c for c in self.children if c.tag == tag), None)

    def all(self, tag: str) -> list[_Element]:
        return [c for c in self.children if c.tag == tag]


def _parse_xml(name: str, data: bytes) -> _Element:
    # expat directly: ElementTree's C parser does not expose line numbers of elements.
    parser = expat.ParserCreate()
    roots: list[_Element] = []
    stack: list[_Element] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        element = _Element(tag, attrs, parser.CurrentLineNumber)
        (stack[-1].children if stack else roots).append(element)
        stack.append(element)

    def end(tag: str) -> None:
        stack.pop()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except expat.ExpatError as error:
        message = expat.ErrorString(error.code)
        raise InvalidInput(f"{name}:{error.lineno}: bad XML: {message}") from None
    return roots[0]


def _load_xml(name: str, data: bytes, memory_mib: int) -> Trace:
    root = _parse_xml(name, data)
    if root.tag != "lease-workload":
        raise InvalidInput(f"{name}:{root.line}: expected <lease-workload>, found <{root.tag}>")
    nodes = node_cpus = node_memory = None
    site = root.child("site")
    if site is not None:
        nodes, per_node, _ = _node_sets(name, _required(name, site, "nodes"), memory_mib)
        node_cpus, node_memory = per_node.cpus, per_node.memory_mib
    container = root.child("lease-requests")
    elements = container.all("lease-request") if container is not None else []
    requests = [
        _xml_request(name, element, index, memory_mib) for index, element in enumerate(elements, 1)
    ]
    requests.sort(key=_by_submit)
    return Trace(
        path=name,
        format="lwf-xml",
        requests=requests,
        nodes=nodes,
        node_cpus=node_cpus,
        node_memory_mib=node_memory,
    )


def _xml_request(name: str, element: _Element, index: int, memory_mib: int) -> LeaseRequest:
    """One <lease-request>; its id defaults to its 1-based position when <lease> has none."""
    arrival = _time(name, element, "arrival")
    lease = _required(name, element, "lease")
    lease_id = _int_attr(name, lease, "id") if "id" in lease.attrs else index
    _within(f"{name}:{lease.line}", "id", lease_id, -MAX_ID, MAX_ID)
    preemptible = _bool_attr(name, lease, "preemptible")
    nodes, capacity, other = _node_sets(name, _required(name, lease, "nodes"), memory_mib)

    start_element = _required(name, lease, "start")
    start: int | None = None
    if not start_element.children:
        kind = LeaseType.BE
    elif (exact := start_element.child("exact")) is not None:
        kind, start = LeaseType.AR, _time(name, exact, "time")
    elif start_element.child("now") is not None:
        kind, start = LeaseType.IM, arrival
    else:
        found = start_element.children[0]
        raise InvalidInput(
            f"{name}:{found.line}: <start> holds <{found.tag}>, expected <exact> or <now>"
        )

    duration_element = _required(name, lease, "duration")
    duration = _time(name, duration_element, "time")
    if duration <= 0:
        raise InvalidInput(f"{name}:{duration_element.line}: duration must be positive")
    _within(f"{name}:{duration_element.line}", "duration", duration, 1, MAX_DURATION_S)
    # Haizea writes <realduration> beside <lease>; accept it inside <lease> too.
    real_element = element.child("realduration")
    if real_element is None:
        real_element = lease.child("realduration")
    real = _time(name, real_element, "time") if real_element is not None else None

    image, image_size = None, 0
    software = lease.child("software")
    disk_image = software.child("disk-image") if software is not None else None
    if disk_image is not None:
        image = _str_attr(name, disk_image, "id")
        image_size = _int_attr(name, disk_image, "size") if "size" in disk_image.attrs else 0
        _within(f"{name}:{disk_image.line}", "size", image_size, 0, MAX_DISK_MIB)

    return LeaseRequest(
        id=lease_id,
        type=kind,
        submit=arrival,
        nodes=nodes,
        capacity=capacity,
        duration=duration,
        start=start,
        preemptible=preemptible,
        image=image,
        image_size_mib=image_size,
        real_duration=real if real and real < duration else None,
        source=f"{name}:{element.line}",
        extra={"resources": other} if other else {},
    )


def _node_sets(name: str, nodes: _Element, memory_mib: int) -> tuple[int, Capacity, dict[str, int]]:
    """Sum the node-sets of a <nodes>; they must all ask for the same per-node resources.

    Returns the node count, the per-node Capacity and any resource types Capacity does not
    model (kept so a policy can still look at them).
    """
    node_sets = nodes.all("node-set")
    if not node_sets:
        raise InvalidInput(f"{name}:{nodes.line}: <nodes> has no <node-set>")
    total = 0
    first: dict[str, int] | None = None
    for node_set in node_sets:
        count = _int_attr(name, node_set, "numnodes")
        if count <= 0:
            raise InvalidInput(f"{name}:{node_set.line}: numnodes must be positive, got {count}")
        _within(f"{name}:{node_set.line}", "numnodes", count, 1, MAX_NODES)
        resources = {
            _str_attr(name, res, "type"): _res_amount(name, res) for res in node_set.all("res")
        }
        if first is None:
            first = resources
        elif resources != first:
            # A lease is one Capacity per node; mixed node shapes cannot be expressed.
            raise InvalidInput(
                f"{name}:{node_set.line}: node-sets ask for different resources "
                f"({resources} vs {first})"
            )
        total += count
        _within(f"{name}:{node_set.line}", "numnodes (all node-sets)", total, 1, MAX_NODES)
    assert first is not None  # node_sets is not empty
    other = dict(first)
    cpu = other.pop("CPU", CPU_UNIT)
    capacity = Capacity(
        cpus=max(1, round(cpu / CPU_UNIT)),
        memory_mib=other.pop("Memory", memory_mib),
        disk_mib=other.pop("Disk", 0),
    )
    return total, capacity, other


# The most of each resource one node may ask for (CPU in percent of a processor).
_RES_LIMITS = {"CPU": MAX_CPUS * CPU_UNIT, "Memory": MAX_MEMORY_MIB, "Disk": MAX_DISK_MIB}


def _res_amount(name: str, res: _Element) -> int:
    """A <res amount=...>: not negative, and within the limit of its type."""
    amount = _int_attr(name, res, "amount")
    kind = res.attrs.get("type", "")
    return _within(f"{name}:{res.line}", f"{kind or 'res'} amount", amount, 0,
                   _RES_LIMITS.get(kind, MAX_MEMORY_MIB))


def _required(name: str, parent: _Element, tag: str) -> _Element:
    child = parent.child(tag)
    if child is None:
        raise InvalidInput(f"{name}:{parent.line}: <{parent.tag}> has no <{tag}>")
    return child


def _str_attr(name: str, element: _Element, attr: str) -> str:
    try:
        return element.attrs[attr]
    except KeyError:
        raise InvalidInput(
            f"{name}:{element.line}: <{element.tag}> has no {attr}= attribute"
        ) from None


def _int_attr(name: str, element: _Element, attr: str) -> int:
    text = _str_attr(name, element, attr)
    value = _number(text)
    if value is None:
        raise InvalidInput(f"{name}:{element.line}: {attr}={text!r} is not a number")
    return value


def _bool_attr(name: str, element: _Element, attr: str) -> bool:
    text = _str_attr(name, element, attr)
    value = {"true": True, "false": False}.get(text.strip().lower())
    if value is None:
        raise InvalidInput(f"{name}:{element.line}: {attr}={text!r} is not true or false")
    return value


def _time(name: str, element: _Element, attr: str) -> int:
    """Parse an attribute like "00:15:00.00" (HH:MM:SS.ss) or "DD:HH:MM:SS.ss" to seconds."""
    text = _str_attr(name, element, attr)
    seconds = _seconds(text)
    if seconds is None:
        raise InvalidInput(
            f"{name}:{element.line}: {attr}={text!r} is not a time (HH:MM:SS or DD:HH:MM:SS)"
        )
    return _within(f"{name}:{element.line}", attr, seconds, 0, MAX_TIME)


def _seconds(text: str) -> int | None:
    parts = text.split(":")
    if len(parts) not in (3, 4):
        return None
    try:
        values = [float(part) for part in parts]
    except ValueError:
        return None
    if not all(0 <= value < math.inf for value in values):  # also rejects nan
        return None
    if len(values) == 3:
        values.insert(0, 0.0)
    days, hours, minutes, secs = values
    return round(((days * 24 + hours) * 60 + minutes) * 60 + secs)
