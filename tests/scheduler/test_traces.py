"""Trace readers: the real shared traces, estimates, merging and every error path."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from paths import TRACES

from cloudctl.errors import InvalidInput
from cloudctl.scheduler.model import Capacity, LeaseType
from cloudctl.sim.traces import load_trace, merge_traces

KTH = TRACES / "kth" / "KTH-SP2-1996-2.1-cln.swf"
BLUE_150 = TRACES / "blue" / "150requests.swf"
BLUE_30DAYS = TRACES / "blue" / "30days.swf"
INJECTED = TRACES / "blue" / "injected-30days" / "work_05-dur_1h-size_1small.lwf"
SCENARIOS = TRACES / "haizea" / "scenarios"


def shared(path: Path) -> Path:
    """Return `path`, or skip the test when the shared traces are not checked out."""
    if not path.exists():
        pytest.skip(f"shared trace missing: {path}")
    return path


def lease_request_lines(path: Path) -> list[int]:
    """1-based line numbers of the <lease-request> start tags, found independently."""
    lines = path.read_text().splitlines()
    return [n for n, line in enumerate(lines, 1) if "<lease-request " in line]


# --- real traces ----------------------------------------------------------------------


def test_kth_swf() -> None:
    path = shared(KTH)
    raw = path.read_text().splitlines()
    jobs = [line.split() for line in raw if line.strip() and not line.lstrip().startswith(";")]
    trace = load_trace(path)

    assert trace.format == "swf"
    assert len(jobs) == 28_476
    assert len(trace.requests) + trace.skipped == 28_476
    kept = [f for f in jobs if int(f[3]) > 0 and max(int(f[7]), int(f[4])) > 0]
    assert trace.skipped == len(jobs) - len(kept)
    assert trace.killed == sum(1 for f in kept if int(f[3]) > int(f[8]) > 0)
    assert trace.killed > 0  # the log says some jobs ran longer than requested
    assert (trace.nodes, trace.node_cpus, trace.node_memory_mib) == (100, 1, 1024)
    submits = [r.submit for r in trace.requests]
    assert submits == sorted(submits)
    assert len({r.id for r in trace.requests}) == len(trace.requests)

    # Job 15 is on line 25 (after 24 header lines): run 3477 s of a requested 53940 s.
    assert raw[24].split()[:9] == ["15", "599850", "192180", "3477", "4", "-1", "-1", "4", "53940"]
    job = next(r for r in trace.requests if r.id == 15)
    assert job.source == f"{path}:25"
    assert (job.submit, job.nodes, job.duration, job.real_duration) == (599850, 4, 53940, 3477)
    assert job.type is LeaseType.BE and job.preemptible and job.start is None
    assert job.capacity == Capacity(cpus=1, memory_mib=1024, disk_mib=0)
    assert job.image is None


def test_kth_killed_job_is_cut_at_its_request() -> None:
    path = shared(KTH)
    trace = load_trace(path)
    by_line = {int(r.source.rsplit(":", 1)[1]): r for r in trace.requests}
    raw = path.read_text().splitlines()
    for lineno, request in by_line.items():
        fields = raw[lineno - 1].split()
        run, asked = int(fields[3]), int(fields[8])
        if run > asked:
            assert request.duration == asked and request.real_duration is None
            break
    else:
        pytest.fail("no job in KTH ran past its requested time")


def test_kth_loads_fast() -> None:
    path = shared(KTH)
    best = min(_timed(lambda: load_trace(path)) for _ in range(3))
    assert best < 1.0  # the target is well under 0.2 s; the bound leaves room for slow CI


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def test_blue_swf_has_nodes_in_field_8_and_no_header() -> None:
    path = shared(BLUE_150)
    trace = load_trace(path)
    assert trace.format == "swf"
    assert (trace.nodes, trace.node_cpus, trace.node_memory_mib) == (None, None, None)
    assert len(trace.requests) + trace.skipped == 150
    # Line 1: "13 0 22 43 32 0.03 -1 4 64800 ..." -> 4 nodes (field 8), not 32 processors.
    first = trace.requests[0]
    assert first.source == f"{path}:1"
    assert (first.id, first.submit, first.nodes, first.duration) == (13, 0, 4, 64800)
    assert first.real_duration == 43


def test_injected_line_format_despite_lwf_extension() -> None:
    path = shared(INJECTED)
    lines = path.read_text().splitlines()
    trace = load_trace(path)
    assert trace.format == "lwf-line"
    assert trace.nodes is None
    assert len(trace.requests) == len(lines) == 422
    assert sorted(r.id for r in trace.requests) == list(range(1, 423))

    assert lines[0].split() == [
        "0",
        "0",
        "3948",
        "3948",
        "4",
        "1",
        "1024",
        "0",
        "'NONE.img'",
        "600",
    ]
    first = trace.requests[0]
    assert first.source == f"{path}:1"
    assert (first.id, first.type, first.submit, first.start) == (1, LeaseType.AR, 0, 0)
    assert (first.duration, first.real_duration, first.nodes) == (3948, None, 4)
    assert first.capacity == Capacity(cpus=1, memory_mib=1024, disk_mib=0)
    assert (first.image, first.image_size_mib, first.preemptible) == ("NONE.img", 600, False)

    second = trace.requests[1]
    assert (second.id, second.start, second.duration, second.nodes) == (2, 4383, 2213, 8)


def test_injected_ar_starting_before_the_trace_is_kept_as_ar(tmp_path: Path) -> None:
    # Real injected files hold such ARs; rejecting them is the scheduler's job.
    path = tmp_path / "early.txt"
    path.write_text("0 -1769 3190 3190 3 1 1024 0 'NONE.img' 600\n")
    (request,) = load_trace(path).requests
    assert (request.type, request.start) == (LeaseType.AR, -1769)


def test_xml_preemption_scenario() -> None:
    path = shared(SCENARIOS / "preemption.lwf")
    trace = load_trace(path)
    assert trace.format == "lwf-xml"
    assert (trace.nodes, trace.node_cpus, trace.node_memory_mib) == (4, 1, 1024)
    be, ar = trace.requests
    assert [be.source, ar.source] == [f"{path}:{n}" for n in lease_request_lines(path)]

    assert (be.id, be.type, be.submit, be.start) == (1, LeaseType.BE, 0, None)
    assert (be.nodes, be.duration, be.real_duration, be.preemptible) == (1, 3600, None, True)
    assert be.capacity == Capacity(cpus=1, memory_mib=1024, disk_mib=0)
    assert (be.image, be.image_size_mib) == ("foobar1.img", 1024)

    assert (ar.id, ar.type, ar.submit, ar.start) == (2, LeaseType.AR, 900, 1800)
    assert (ar.nodes, ar.duration, ar.real_duration, ar.preemptible) == (4, 1800, None, False)
    assert (ar.image, ar.image_size_mib) == ("foobar2.img", 1024)


def test_xml_realduration_beside_lease() -> None:
    path = shared(SCENARIOS / "preemption_prematureend.lwf")
    be, ar = load_trace(path).requests
    assert (be.duration, be.real_duration) == (3600, 2700)
    assert (ar.duration, ar.real_duration) == (900, None)


def test_xml_multi_without_site() -> None:
    path = shared(TRACES / "haizea" / "multi" / "withprematureend.lwf")
    trace = load_trace(path)
    assert trace.nodes is None
    assert len(trace.requests) == len(lease_request_lines(path)) == 139
    assert all(r.type is LeaseType.BE for r in trace.requests)
    assert all(r.real_duration is not None for r in trace.requests)
    assert all(r.real_duration < r.duration for r in trace.requests)  # type: ignore[operator]


XML_NOW = """\
<?xml version="1.0"?>
<lease-workload name="now">
  <site>
    <nodes>
      <node-set numnodes="2"><res type="CPU" amount="200"/><res type="Memory" amount="2048"/>
      </node-set>
      <node-set numnodes="1"><res type="CPU" amount="200"/><res type="Memory" amount="2048"/>
      </node-set>
    </nodes>
  </site>
  <lease-requests>
    <lease-request arrival="01:00:00:30.40">
      <lease id="7" preemptible="false">
        <nodes>
          <node-set numnodes="2"><res amount="100" type="CPU"/><res amount="512" type="Memory"/>
          </node-set>
          <node-set numnodes="3"><res amount="100" type="CPU"/><res amount="512" type="Memory"/>
          </node-set>
        </nodes>
        <start><now/></start>
        <duration time="00:10:00.60"/>
        <realduration time="00:05:00"/>
        <software><none/></software>
      </lease>
    </lease-request>
    <lease-request arrival="00:00:10.00">
      <lease id="8" preemptible="true">
        <nodes><node-set numnodes="1"><res amount="50" type="CPU"/></node-set></nodes>
        <start/>
        <duration time="00:01:00"/>
      </lease>
    </lease-request>
  </lease-requests>
</lease-workload>
"""


def test_xml_immediate_lease_days_and_summed_node_sets(tmp_path: Path) -> None:
    path = tmp_path / "now.xml"
    path.write_text(XML_NOW)
    trace = load_trace(path, memory_mib=4096)
    assert (trace.nodes, trace.node_cpus, trace.node_memory_mib) == (3, 2, 2048)
    early, immediate = trace.requests  # re-sorted by arrival

    assert (immediate.id, immediate.type) == (7, LeaseType.IM)
    assert immediate.submit == immediate.start == 86_400 + 30  # DD:HH:MM:SS.ss, rounded
    assert (immediate.duration, immediate.real_duration) == (601, 300)
    assert immediate.nodes == 5
    assert immediate.capacity == Capacity(cpus=1, memory_mib=512, disk_mib=0)
    assert (immediate.image, immediate.preemptible) == (None, False)
    assert [immediate.source, early.source] == [f"{path}:{n}" for n in lease_request_lines(path)]
    assert immediate.source == f"{path}:12"

    assert (early.id, early.type, early.submit, early.duration) == (8, LeaseType.BE, 10, 60)
    # Half a CPU still takes a whole one; memory the file omits comes from memory_mib.
    assert early.capacity == Capacity(cpus=1, memory_mib=4096, disk_mib=0)


def test_format_is_detected_by_content_not_extension(tmp_path: Path) -> None:
    swf = tmp_path / "jobs.lwf"
    swf.write_text("1 0 0 10 1 -1 -1 1 20 -1 1 1 1 -1 -1 -1 -1 -1\n")
    line = tmp_path / "ars.swf"
    line.write_text("0 5 10 10 1 1 1024 0 'a.img' 1\n")
    xml = tmp_path / "scenario.txt"
    xml.write_text(XML_NOW)
    assert load_trace(swf).format == "swf"
    assert load_trace(line).format == "lwf-line"
    assert load_trace(xml).format == "lwf-xml"


# --- SWF estimates ----------------------------------------------------------------------

TINY_SWF = """\
; MaxProcs: 8
;
 1  100 0  50 2 -1 -1  2  60 -1 1 1 1 -1 -1 -1 -1 -1
 2   50 0  90 1 -1 -1  1  60 -1 1 1 1 -1 -1 -1 -1 -1
 3   50 0  60 4 -1 -1 -1  60 -1 1 1 1 -1 -1 -1 -1 -1
 4   70 0  40 3 -1 -1  3  -1 -1 1 1 1 -1 -1 -1 -1 -1
 5   80 0   0 1 -1 -1  1  60 -1 0 1 1 -1 -1 -1 -1 -1
 6   80 0  30 0 -1 -1  0  60 -1 0 1 1 -1 -1 -1 -1 -1
 7   80 0  -1 1 -1 -1  1  60 -1 5 1 1 -1 -1 -1 -1 -1
"""


def test_swf_estimates_requested(tmp_path: Path) -> None:
    path = tmp_path / "tiny.swf"
    path.write_text(TINY_SWF)
    trace = load_trace(path, memory_mib=2048)
    assert (trace.nodes, trace.node_cpus, trace.node_memory_mib) == (8, 1, 2048)
    assert (trace.skipped, trace.killed) == (3, 1)
    # Sorted by submit; jobs 2 and 3 share submit 50 and keep file order.
    assert [r.id for r in trace.requests] == [2, 3, 4, 1]
    got = {r.id: (r.submit, r.nodes, r.duration, r.real_duration) for r in trace.requests}
    assert got == {
        1: (100, 2, 60, 50),  # ends early at its run time
        2: (50, 1, 60, None),  # killed: ran 90 s of 60 requested, cut at 60
        3: (50, 4, 60, None),  # ran exactly its request; field 8 unknown -> field 5
        4: (70, 3, 40, None),  # no requested time: the run time is the estimate
    }
    assert all(r.capacity == Capacity(cpus=1, memory_mib=2048) for r in trace.requests)
    assert [r.source for r in trace.requests] == [f"{path}:{n}" for n in (4, 5, 6, 3)]


def test_swf_estimates_actual(tmp_path: Path) -> None:
    path = tmp_path / "tiny.swf"
    path.write_text(TINY_SWF)
    trace = load_trace(path, estimates="actual")
    assert (trace.skipped, trace.killed) == (3, 0)
    got = {r.id: (r.duration, r.real_duration) for r in trace.requests}
    assert got == {1: (50, None), 2: (90, None), 3: (60, None), 4: (40, None)}


def test_swf_max_nodes_preferred_over_max_procs(tmp_path: Path) -> None:
    path = tmp_path / "header.swf"
    path.write_text("; MaxProcs: 800\n; MaxNodes: 100\n" + TINY_SWF.splitlines()[2] + "\n")
    assert load_trace(path).nodes == 100


# --- merging ----------------------------------------------------------------------------


def test_merge_blue_with_injected_ars() -> None:
    base = load_trace(shared(BLUE_30DAYS))
    injected = load_trace(shared(INJECTED))
    merged = merge_traces(base, injected)

    shift = max(r.id for r in base.requests)
    assert len(merged.requests) == len(base.requests) + len(injected.requests)
    assert len({r.id for r in merged.requests}) == len(merged.requests)
    submits = [r.submit for r in merged.requests]
    assert submits == sorted(submits)
    assert (merged.path, merged.format, merged.nodes) == (base.path, "swf", base.nodes)
    assert (merged.skipped, merged.killed) == (base.skipped, base.killed)

    ars = [r for r in merged.requests if r.type is LeaseType.AR]
    assert [r.id for r in ars] == [r.id + shift for r in injected.requests]
    assert [r.source for r in ars] == [r.source for r in injected.requests]
    assert injected.requests[0].id == 1  # the injected trace itself is left alone
    # Ties on submit keep base requests before injected ones.
    at_zero = [r.type for r in merged.requests if r.submit == 0]
    assert at_zero == sorted(at_zero, key=lambda t: t is LeaseType.AR)


def test_merge_site_info_comes_from_base() -> None:
    base = load_trace(shared(SCENARIOS / "preemption.lwf"))
    injected = load_trace(shared(TRACES / "haizea" / "multi" / "inj1.lwf"))
    merged = merge_traces(base, injected)
    assert (merged.nodes, merged.node_cpus, merged.node_memory_mib) == (4, 1, 1024)
    assert sorted(r.id for r in merged.requests) == list(range(1, 2 + 13 + 1))


def test_merge_keeps_ids_unique_when_injected_ids_are_not_positive(tmp_path: Path) -> None:
    base_path = tmp_path / "base.txt"
    base_path.write_text("0 -1 10 10 1 1 1024 0 'a.img' 1\n" * 2)  # ids 1 and 2
    injected_path = tmp_path / "injected.xml"
    injected_path.write_text(XML_NOW.replace('id="7"', 'id="0"').replace('id="8"', 'id="1"'))
    merged = merge_traces(load_trace(base_path), load_trace(injected_path))
    assert sorted(r.id for r in merged.requests) == [1, 2, 3, 4]


# --- errors -----------------------------------------------------------------------------

SWF_OK = "1 0 0 10 1 -1 -1 1 20 -1 1 1 1 -1 -1 -1 -1 -1\n"
LINE_OK = "0 -1 10 10 1 1 1024 0 'a.img' 1\n"


def _xml(lease_body: str, arrival: str = "00:00:00") -> str:
    return (
        "<lease-workload>\n"
        "<lease-requests>\n"
        f'<lease-request arrival="{arrival}">\n'
        '<lease id="1" preemptible="true">\n'
        f"{lease_body}\n"
        "</lease>\n"
        "</lease-request>\n"
        "</lease-requests>\n"
        "</lease-workload>\n"
    )


NODES_1 = '<nodes><node-set numnodes="1"><res type="CPU" amount="100"/></node-set></nodes>'
DURATION = '<duration time="00:10:00"/>'

# (content, line the message must name)
BAD_CONTENT = {
    "swf-too-few-fields": (SWF_OK + "2 5 0 10 1 -1 -1 1 20\n", 2),
    "swf-not-a-number": ("; MaxNodes: 4\n" + SWF_OK + SWF_OK.replace("10", "ten", 1), 3),
    "swf-bad-later-line": (SWF_OK * 3 + "1 2 3\n", 4),
    "line-too-many-fields": (LINE_OK + "0 -1 10 10 1 1 1024 0 'a.img' 1 9\n", 2),
    "line-not-a-number": ("\n" + LINE_OK.replace("1024", "lots"), 2),
    "line-zero-duration": (LINE_OK + "0 -1 0 0 1 1 1024 0 'a.img' 1\n", 2),
    "line-negative-duration": ("0 -1 -5 -5 1 1 1024 0 'a.img' 1\n", 1),
    "line-zero-nodes": (LINE_OK * 2 + "0 -1 10 10 0 1 1024 0 'a.img' 1\n", 3),
    "unrecognised-format": ("# comment\nhello world\n", 2),
    "xml-unclosed": ('<lease-workload>\n<lease-requests>\n<lease-request arrival="0">\n', 4),
    "xml-mismatched-tag": ("<lease-workload>\n<site>\n</nodes>\n</lease-workload>\n", 3),
    "xml-wrong-root": ("\n\n<workload/>\n", 3),
    "xml-zero-duration": (_xml(NODES_1 + '\n<start/>\n<duration time="00:00:00"/>'), 7),
    "xml-zero-nodes": (_xml(NODES_1.replace('"1"', '"0"') + "\n<start/>\n" + DURATION), 5),
    "xml-bad-time": (_xml(NODES_1 + "\n<start/>\n" + DURATION, arrival="soon"), 3),
    "xml-negative-time": (_xml(NODES_1 + '\n<start/>\n<duration time="-1:00:00"/>'), 7),
    "xml-missing-duration": (_xml(NODES_1 + "\n<start/>"), 4),
    "xml-missing-start": (_xml(NODES_1 + "\n" + DURATION), 4),
    "xml-unknown-start": (_xml(NODES_1 + "\n<start><later/></start>\n" + DURATION), 6),
    "xml-bad-numnodes": (_xml(NODES_1.replace('"1"', '"a few"') + "\n<start/>\n" + DURATION), 5),
    "xml-bad-preemptible": (_xml(NODES_1).replace('"true"', '"maybe"'), 4),
    "xml-mixed-node-sets": (
        _xml(
            "<nodes>\n"
            '<node-set numnodes="1"><res type="CPU" amount="100"/></node-set>\n'
            '<node-set numnodes="1"><res type="CPU" amount="200"/></node-set>\n'
            "</nodes>\n<start/>\n" + DURATION
        ),
        7,
    ),
    "not-utf8": (SWF_OK + "\udcff\n", 2),
}


@pytest.mark.parametrize("content,line", BAD_CONTENT.values(), ids=BAD_CONTENT.keys())
def test_bad_content_names_file_and_line(tmp_path: Path, content: str, line: int) -> None:
    path = tmp_path / "bad-trace.txt"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(InvalidInput) as caught:
        load_trace(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: "), message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    "content,expected",
    [("", "empty file"), ("  \n\n\t\n", "empty file"), ("# only a comment\n", "empty file")],
    ids=["empty", "blank", "comments-only"],
)
def test_empty_files(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "empty.swf"
    path.write_text(content)
    with pytest.raises(InvalidInput, match=expected) as caught:
        load_trace(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.swf"
    with pytest.raises(InvalidInput) as caught:
        load_trace(path)
    assert str(caught.value) == f"{path}: no such file"


def test_directory_is_not_a_trace(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_trace(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path}: ")


def test_unknown_estimates(tmp_path: Path) -> None:
    path = tmp_path / "ok.swf"
    path.write_text(SWF_OK)
    with pytest.raises(InvalidInput, match="estimates 'guess'") as caught:
        load_trace(path, estimates="guess")
    assert str(caught.value).startswith(f"{path}: ")
