"""Tests for cloudctl.sim.plot: the SVG/PNG schedule plot of a simulation."""

from __future__ import annotations

import random
import re
import struct
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest

from cloudctl.errors import InvalidInput
from cloudctl.sim.plot import COLORS, plot_layout, utilization, write_plot

SVG = "{http://www.w3.org/2000/svg}"
HOSTS = ["n1", "n2", "n3", "n4"]


def lease(
    ident: int,
    kind: str,
    runs: list[tuple[int, int, list[str]]],
    *,
    suspensions: list[tuple[int, int]] = (),  # type: ignore[assignment]
    resumptions: list[tuple[int, int]] = (),  # type: ignore[assignment]
    transfers: list[tuple[int, int]] = (),  # type: ignore[assignment]
) -> dict[str, object]:
    """A record shaped like the simulator's output."""
    hosts = sorted({h for _, _, on in runs for h in on})
    return {
        "id": ident,
        "type": kind,
        "state": "done" if runs else "rejected",
        "submit_s": 0,
        "start_s": runs[0][0] if runs else None,
        "end_s": runs[-1][1] if runs else None,
        "nodes": len(runs[0][2]) if runs else 1,
        "hosts": hosts,
        "runs": [{"start_s": s, "end_s": e, "hosts": on} for s, e, on in runs],
        "suspensions": [{"start_s": s, "end_s": e} for s, e in suspensions],
        "resumptions": [{"start_s": s, "end_s": e} for s, e in resumptions],
        "transfers": [{"start_s": s, "end_s": e} for s, e in transfers],
    }


# A BE lease on n1 from 10 to 40 min, idle on n1 from 40 to 60 min; the trace spans 100 min.
RECORDS = [
    lease(1, "be", [(600, 2400, ["n1"])]),
    lease(2, "ar", [(1200, 3000, ["n2", "n3"])]),
    lease(3, "im", [(3600, 6000, ["n1", "n1"])]),
    lease(4, "ar", []),
]


def svg_tree(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def group(root: ET.Element, name: str) -> ET.Element:
    found = root.find(f"{SVG}g[@class='{name}']")
    assert found is not None, name
    return found


def bars(root: ET.Element, kind: str) -> list[dict[str, float]]:
    return [
        {k: float(rect.get(k, "nan")) for k in ("x", "y", "width", "height")}
        for rect in group(root, "bars").iter(f"{SVG}rect")
        if rect.get("class") == kind
    ]


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB scanlines of a PNG this module wrote (8-bit RGB, filter 0)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(tag + body), tag
        chunks.append((tag, body))
        pos += 12 + length
    assert [tag for tag, _ in chunks][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, color_type = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (depth, color_type) == (8, 2)
    raw = zlib.decompress(b"".join(body for tag, body in chunks if tag == b"IDAT"))
    stride = 1 + width * 3
    assert len(raw) == stride * height
    rows = [raw[y * stride : (y + 1) * stride] for y in range(height)]
    assert all(row[0] == 0 for row in rows)
    return width, height, [row[1:] for row in rows]


def pixel(rows: list[bytes], x: int, y: int) -> tuple[int, int, int]:
    r, g, b = rows[y][x * 3 : x * 3 + 3]
    return (r, g, b)


# -- scale --------------------------------------------------------------------------------


def test_scale_maps_trace_span_onto_plot_width() -> None:
    layout = plot_layout(RECORDS, HOSTS)
    assert (layout.t0, layout.t1) == (0, 6000)
    assert layout.x(0) == layout.left
    assert layout.x(6000) == pytest.approx(layout.left + layout.plot_width)
    assert layout.x(3000) == pytest.approx(layout.left + layout.plot_width / 2)
    assert layout.row_top(1) - layout.row_top(0) == layout.row_height


@pytest.mark.parametrize(("end_s", "unit"), [(7200, "min"), (7201, "h")])
def test_axis_is_in_hours_only_beyond_two_hours(tmp_path: Path, end_s: int, unit: str) -> None:
    records = [lease(1, "be", [(0, end_s, ["n1"])])]
    assert plot_layout(records, HOSTS).unit_name == unit
    write_plot(tmp_path / "p.svg", records, HOSTS)
    texts = [t.text for t in svg_tree(tmp_path / "p.svg").iter(f"{SVG}text")]
    assert f"time ({unit})" in texts


# -- SVG ----------------------------------------------------------------------------------


def test_svg_parses_with_one_labelled_row_per_host_in_order(tmp_path: Path) -> None:
    write_plot(tmp_path / "p.svg", RECORDS, HOSTS, title="trace <1>")
    root = svg_tree(tmp_path / "p.svg")
    layout = plot_layout(RECORDS, HOSTS)
    labels = [t for t in group(root, "hosts").iter(f"{SVG}text") if t.text in HOSTS]
    assert [t.text for t in labels] == HOSTS
    for row, label in enumerate(labels):
        assert layout.row_top(row) < float(label.get("y", "nan")) <= layout.row_top(row + 1)
    assert root.findtext(f"{SVG}title") == "trace <1>"
    legend = [t.text for t in group(root, "legend").iter(f"{SVG}text")]
    assert legend == ["AR", "BE", "IM", "suspend", "resume", "transfer"]


def test_svg_bar_sits_at_the_run_start_and_end(tmp_path: Path) -> None:
    write_plot(tmp_path / "p.svg", RECORDS, HOSTS)
    layout = plot_layout(RECORDS, HOSTS)
    [bar] = bars(svg_tree(tmp_path / "p.svg"), "be")
    assert bar["x"] == pytest.approx(layout.x(600), abs=0.06)
    assert bar["width"] == pytest.approx(layout.x(2400) - layout.x(600), abs=0.06)
    assert layout.row_top(0) <= bar["y"] < bar["y"] + bar["height"] <= layout.row_top(1)


def test_svg_draws_a_run_once_on_each_of_its_distinct_hosts(tmp_path: Path) -> None:
    write_plot(tmp_path / "p.svg", RECORDS, HOSTS)
    root = svg_tree(tmp_path / "p.svg")
    layout = plot_layout(RECORDS, HOSTS)
    ar_rows = sorted(
        int((b["y"] - layout.row_top(0)) // layout.row_height) for b in bars(root, "ar")
    )
    assert ar_rows == [1, 2]  # n2 and n3; the rejected AR lease draws nothing
    # Two virtual nodes on n1 are one bar on n1's row.
    [im] = bars(root, "im")
    assert layout.row_top(0) <= im["y"] < layout.row_top(1)


def test_svg_marks_suspensions_resumptions_and_transfers(tmp_path: Path) -> None:
    records = [
        lease(
            1,
            "be",
            [(600, 1800, ["n2"]), (3000, 4200, ["n4"])],
            suspensions=[(1800, 2100)],
            resumptions=[(2700, 3000)],
            transfers=[(300, 600)],
        )
    ]
    write_plot(tmp_path / "p.svg", records, HOSTS)
    root = svg_tree(tmp_path / "p.svg")
    layout = plot_layout(records, HOSTS)

    def row_of(bar: dict[str, float]) -> int:
        return int((bar["y"] - layout.row_top(0)) // layout.row_height)

    [suspend] = bars(root, "suspend")
    [resume] = bars(root, "resume")
    [transfer] = bars(root, "transfer")
    # A suspension belongs to the run before it, a resumption to the run after it.
    assert (row_of(suspend), row_of(resume), row_of(transfer)) == (1, 3, 1)
    assert suspend["x"] == pytest.approx(layout.x(1800), abs=0.06)
    assert resume["x"] == pytest.approx(layout.x(2700), abs=0.06)
    assert transfer["height"] < bars(root, "be")[0]["height"] / 2


def test_svg_merges_bars_less_than_a_pixel_apart(tmp_path: Path) -> None:
    # 1000 runs of 90 s every 150 s; over a 201,000 s axis a gap is about 0.34 px.
    records = [lease(i, "be", [(150 * i, 150 * i + 90, ["n1"])]) for i in range(1000)]
    records.append(lease(1000, "be", [(200_000, 201_000, ["n1"])]))
    write_plot(tmp_path / "p.svg", records, HOSTS)
    drawn = bars(svg_tree(tmp_path / "p.svg"), "be")
    layout = plot_layout(records, HOSTS)
    assert len(drawn) == 2
    assert drawn[0]["x"] == pytest.approx(layout.x(0), abs=0.06)
    assert drawn[0]["x"] + drawn[0]["width"] == pytest.approx(layout.x(150 * 999 + 90), abs=0.06)


def test_svg_utilization_curve_is_sampled_to_at_most_2000_points(tmp_path: Path) -> None:
    rng = random.Random(1)
    records = []
    for i in range(5000):
        start = rng.randrange(0, 10_000_000)
        records.append(lease(i, "be", [(start, start + rng.randrange(60, 600), ["n1"])]))
    write_plot(tmp_path / "p.svg", records, HOSTS)
    [stroke] = [
        p
        for p in group(svg_tree(tmp_path / "p.svg"), "util").iter(f"{SVG}path")
        if p.get("class") == "util-stroke"
    ]
    assert 2 < len(re.findall("[MHV]", stroke.get("d", ""))) <= 2 * 2000 + 2


# -- utilization --------------------------------------------------------------------------


def test_utilization_counts_virtual_nodes_per_host_and_clips_at_one() -> None:
    records = [
        lease(1, "be", [(0, 100, ["n1", "n1"])]),
        lease(2, "ar", [(50, 100, ["n2", "n3", "n4"])]),
    ]
    # Buckets of 25 s over [0, 100).
    assert utilization(records, 4, 0, 100, 4) == [0.5, 0.5, 1.0, 1.0]
    assert utilization(records, 8, 0, 100, 4) == [0.25, 0.25, 0.625, 0.625]
    assert utilization(records, 0, 0, 100, 4) == [0.0] * 4


def test_utilization_keeps_the_peak_of_a_short_burst_in_a_bucket() -> None:
    records = [lease(1, "be", [(10, 11, ["n1"])]), lease(2, "be", [(50, 100, ["n2"])])]
    assert utilization(records, 2, 0, 100, 2) == [0.5, 0.5]
    # Back-to-back runs on one host never count twice.
    chained = [lease(1, "be", [(0, 50, ["n1"])]), lease(2, "be", [(50, 100, ["n1"])])]
    assert utilization(chained, 1, 0, 100, 4) == [1.0] * 4


# -- PNG ----------------------------------------------------------------------------------


def test_png_has_header_size_and_paints_bars_in_type_colours(tmp_path: Path) -> None:
    write_plot(tmp_path / "p.png", RECORDS, HOSTS, title="png")
    layout = plot_layout(RECORDS, HOSTS)
    width, height, rows = read_png(tmp_path / "p.png")
    assert (width, height) == (layout.width, layout.height)
    middle_of_n1 = layout.row_top(0) + layout.row_height // 2
    assert pixel(rows, round(layout.x(1500)), middle_of_n1) == COLORS["be"]
    assert pixel(rows, round(layout.x(3000)), middle_of_n1) == COLORS["background"]
    assert pixel(rows, round(layout.x(4800)), middle_of_n1) == COLORS["im"]
    middle_of_n3 = layout.row_top(2) + layout.row_height // 2
    assert pixel(rows, round(layout.x(2000)), middle_of_n3) == COLORS["ar"]


def test_extension_is_case_insensitive(tmp_path: Path) -> None:
    write_plot(tmp_path / "p.SVG", RECORDS, HOSTS)
    write_plot(str(tmp_path / "p.Png"), RECORDS, HOSTS)
    assert ET.parse(tmp_path / "p.SVG").getroot().tag == f"{SVG}svg"
    assert (tmp_path / "p.Png").read_bytes()[:4] == b"\x89PNG"


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["p.jpg", "p", "p.svg.txt"])
def test_other_extensions_are_invalid_input(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with pytest.raises(InvalidInput) as caught:
        write_plot(path, RECORDS, HOSTS)
    assert str(caught.value) == f"{path}: --plot needs a .svg or .png file"
    assert caught.value.exit_code == 2
    assert not path.exists()


@pytest.mark.parametrize(
    ("parent", "reason"), [("missing", "No such file"), ("a-file", "Not a directory")]
)
def test_unwritable_path_is_invalid_input_with_the_os_reason(
    tmp_path: Path, parent: str, reason: str
) -> None:
    (tmp_path / "a-file").write_text("")
    path = tmp_path / parent / "p.png"
    with pytest.raises(InvalidInput) as caught:
        write_plot(path, RECORDS, HOSTS)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and reason in message
    assert "\n" not in message


def test_malformed_record_is_invalid_input(tmp_path: Path) -> None:
    bad = lease(7, "be", [(0, 60, ["n1"])])
    del bad["runs"][0]["end_s"]  # type: ignore[index, attr-defined]
    with pytest.raises(InvalidInput, match="lease 7: .*end_s"):
        write_plot(tmp_path / "p.svg", [bad], HOSTS)
    with pytest.raises(InvalidInput, match="lease 8: .*unknown lease type"):
        write_plot(tmp_path / "p.svg", [lease(8, "xx", [])], HOSTS)


# -- scale --------------------------------------------------------------------------------


def synthetic_trace(leases: int, n_hosts: int) -> tuple[list[dict[str, object]], list[str]]:
    """A month-scale trace shaped like a simulator's output, with every kind of event."""
    rng = random.Random(7)
    hosts = [f"host-{i:03d}" for i in range(n_hosts)]
    free = [0] * n_hosts
    records: list[dict[str, object]] = []
    submit = 0
    for ident in range(leases):
        submit += rng.randint(0, 200)
        kind = rng.choice(["ar", "be", "be", "im"])
        if rng.random() < 0.03:
            records.append(lease(ident, kind, []))
            continue
        chosen = rng.sample(range(n_hosts), rng.randint(1, 4))
        on = [hosts[h] for h in chosen]
        start = max(submit, *(free[h] for h in chosen)) + rng.randint(0, 600)
        length = rng.randint(600, 4 * 3600)
        extra: dict[str, list[tuple[int, int]]] = {"transfers": [(start - 120, start)]}
        if kind == "be" and rng.random() < 0.2:
            resume = start + length // 2 + 60 + rng.randint(0, 3600)
            runs = [(start, start + length // 2, on), (resume + 60, resume + 60 + length // 2, on)]
            extra["suspensions"] = [(start + length // 2, start + length // 2 + 60)]
            extra["resumptions"] = [(resume, resume + 60)]
        else:
            runs = [(start, start + length, on)]
        for h in chosen:
            free[h] = runs[-1][1]
        records.append(lease(ident, kind, runs, **extra))
    return records, hosts


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_28000_leases_on_100_hosts_write_quickly_and_compactly(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    records, hosts = synthetic_trace(28_000, 100)
    path = tmp_path / f"big{suffix}"
    started = time.perf_counter()
    write_plot(path, records, hosts, title="28k leases")
    elapsed = time.perf_counter() - started
    size = path.stat().st_size
    with capsys.disabled():
        print(f"\n28,000 leases / 100 hosts -> {suffix}: {elapsed:.2f} s, {size / 1e6:.2f} MB")
    # Generous guard (the target is 2 s) so a noisy machine does not fail the suite.
    assert elapsed < 10
    assert size < 15_000_000
    if suffix == ".svg":
        labels = [t.text for t in group(svg_tree(path), "hosts").iter(f"{SVG}text")]
        assert set(hosts) <= set(labels)
