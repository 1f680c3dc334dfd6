"""Draw a simulated schedule: a Gantt chart of hosts over time above a utilization curve.

Pure Python on purpose (hand-written SVG, a tiny PNG rasterizer): `simulate --plot` must
work wherever cloudctl installs, without matplotlib or Pillow. Both formats are rendered
from one backend-neutral scene, so they always show the same picture.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple
from xml.sax.saxutils import escape

from cloudctl.errors import InvalidInput

__all__ = ["COLORS", "Layout", "plot_layout", "utilization", "write_plot"]

RGB = tuple[int, int, int]

COLORS: dict[str, RGB] = {
    "background": (255, 255, 255),
    "ar": (214, 39, 40),
    "be": (31, 119, 180),
    "im": (44, 160, 44),
    "suspend": (45, 45, 45),
    "resume": (125, 125, 125),
    "transfer": (255, 127, 14),
    "grid": (228, 228, 228),
    "axis": (0, 0, 0),
    "text": (0, 0, 0),
    "util": (174, 199, 232),
    "util-line": (31, 119, 180),
}
LEASE_TYPES = ("ar", "be", "im")
LEGEND = (
    ("ar", "AR"),
    ("be", "BE"),
    ("im", "IM"),
    ("suspend", "suspend"),
    ("resume", "resume"),
    ("transfer", "transfer"),
)

WIDTH = 1200
MAX_UTIL_POINTS = 2000
# A bar narrower than this would vanish in SVG; a zero-length transfer is still an event.
MIN_BAR_WIDTH = 0.5
MAX_LABEL_CHARS = 24
# Geometry of the built-in 5x7 font; SVG text uses the same box so layouts agree.
CHAR_W = 6
CHAR_H = 7
GANTT_TOP = 52
AXIS_H = 34
PANEL_GAP = 24
UTIL_H = 150
BOTTOM = 6
RIGHT = 24


# -- input --------------------------------------------------------------------------------


class _Run(NamedTuple):
    start: int
    end: int
    hosts: tuple[str, ...]


Span = tuple[int, int]


class _Lease(NamedTuple):
    type: str
    submit: int
    runs: tuple[_Run, ...]
    suspensions: tuple[Span, ...]
    resumptions: tuple[Span, ...]
    transfers: tuple[Span, ...]


def _spans(record: Mapping[str, object], key: str) -> tuple[Span, ...]:
    items = record.get(key) or ()
    return tuple((int(s["start_s"]), int(s["end_s"])) for s in items)  # type: ignore[attr-defined, index]


def _lease(record: Mapping[str, object]) -> _Lease:
    kind = str(record["type"])
    if kind not in LEASE_TYPES:
        raise ValueError(f"unknown lease type {kind!r}")
    runs = tuple(
        _Run(int(r["start_s"]), int(r["end_s"]), tuple(str(h) for h in r["hosts"]))
        for r in record.get("runs") or ()  # type: ignore[attr-defined]
    )
    return _Lease(
        kind,
        int(record["submit_s"]),  # type: ignore[call-overload]
        runs,
        _spans(record, "suspensions"),
        _spans(record, "resumptions"),
        _spans(record, "transfers"),
    )


def _normalize(records: Sequence[Mapping[str, object]]) -> list[_Lease]:
    """Check and convert the simulator's records once, so drawing code can trust them."""
    leases = []
    for index, record in enumerate(records):
        try:
            leases.append(_lease(record))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            ident = record.get("id", index) if isinstance(record, Mapping) else index
            reason = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise InvalidInput(f"lease {ident}: malformed record for --plot: {reason}") from None
    return leases


# -- geometry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Pixel geometry shared by the SVG and PNG renderers."""

    width: int
    height: int
    left: int
    plot_width: int
    t0: int
    t1: int
    rows: int
    row_height: int
    util_top: int

    def x(self, t_s: float) -> float:
        """The x pixel of a time in seconds from the trace origin."""
        return self.left + (t_s - self.t0) * self.plot_width / (self.t1 - self.t0)

    def row_top(self, row: int) -> int:
        return GANTT_TOP + row * self.row_height

    @property
    def gantt_bottom(self) -> int:
        return self.row_top(self.rows)

    @property
    def util_bottom(self) -> int:
        return self.util_top + UTIL_H

    def util_y(self, fraction: float) -> float:
        return self.util_top + (1.0 - fraction) * UTIL_H

    @property
    def unit_s(self) -> int:
        """Seconds per axis unit: hours for spans over two hours, else minutes."""
        return 3600 if self.t1 - self.t0 > 7200 else 60

    @property
    def unit_name(self) -> str:
        return "h" if self.unit_s == 3600 else "min"

    @property
    def bar_pad(self) -> int:
        # Rows too thin to spare a pixel are drawn edge to edge.
        return 1 if self.row_height >= 6 else 0


def _time_span(leases: Sequence[_Lease]) -> tuple[int, int]:
    t0 = t1 = 0  # the trace origin is always on the axis
    for lease in leases:
        t0, t1 = min(t0, lease.submit), max(t1, lease.submit)
        for run in lease.runs:
            t0, t1 = min(t0, run.start), max(t1, run.end)
        for start, end in lease.suspensions + lease.resumptions + lease.transfers:
            t0, t1 = min(t0, start), max(t1, end)
    return t0, (t1 if t1 > t0 else t0 + 60)


def _layout(leases: Sequence[_Lease], hosts: Sequence[str]) -> Layout:
    label_chars = min(MAX_LABEL_CHARS, max((len(h) for h in hosts), default=0))
    left = 16 + CHAR_W * max(label_chars, 4)
    rows = len(hosts)
    row_height = max(3, min(24, 1000 // max(rows, 1)))
    util_top = GANTT_TOP + rows * row_height + AXIS_H + PANEL_GAP
    t0, t1 = _time_span(leases)
    return Layout(
        width=WIDTH,
        height=util_top + UTIL_H + AXIS_H + BOTTOM,
        left=left,
        plot_width=WIDTH - left - RIGHT,
        t0=t0,
        t1=t1,
        rows=rows,
        row_height=row_height,
        util_top=util_top,
    )


def plot_layout(records: Sequence[Mapping[str, object]], hosts: Sequence[str]) -> Layout:
    """The geometry `write_plot` uses for these records and hosts."""
    return _layout(_normalize(records), hosts)


def _ticks(layout: Layout) -> list[tuple[float, str]]:
    """Time ticks at a 1-2-5 step giving at most about ten labels."""
    unit = layout.unit_s
    span = (layout.t1 - layout.t0) / unit
    step = 10.0 ** math.floor(math.log10(span / 10))
    for factor in (1, 2, 5, 10):
        if span / (step * factor) <= 10:
            step *= factor
            break
    first = math.ceil(layout.t0 / unit / step)
    ticks = []
    value = first * step
    while value <= layout.t1 / unit + 1e-9:
        ticks.append((value * unit, f"{round(value, 6):g}"))
        first += 1
        value = first * step
    return ticks


# -- data ---------------------------------------------------------------------------------


def _utilization(
    leases: Sequence[_Lease], n_hosts: int, t0: int, t1: int, buckets: int
) -> list[float]:
    deltas: dict[int, int] = {}
    for lease in leases:
        for run in lease.runs:
            deltas[run.start] = deltas.get(run.start, 0) + len(run.hosts)
            deltas[run.end] = deltas.get(run.end, 0) - len(run.hosts)
    if n_hosts <= 0 or buckets <= 0:
        return [0.0] * max(buckets, 0)
    # Deltas are summed per instant, so a run ending as another starts makes no spike.
    events = sorted(deltas.items())
    width = (t1 - t0) / buckets
    values = []
    level = 0
    i = 0
    for b in range(buckets):
        start, end = t0 + b * width, t0 + (b + 1) * width
        while i < len(events) and events[i][0] <= start:
            level += events[i][1]
            i += 1
        peak = level
        # Max within the bucket: a short burst must stay visible after sampling.
        while i < len(events) and events[i][0] < end:
            level += events[i][1]
            peak = max(peak, level)
            i += 1
        values.append(min(1.0, peak / n_hosts))
    return values


def utilization(
    records: Sequence[Mapping[str, object]], n_hosts: int, t0: int, t1: int, buckets: int
) -> list[float]:
    """Fraction of hosts busy (virtual nodes / hosts, at most 1), the max in each of
    `buckets` equal slices of [t0, t1)."""
    return _utilization(_normalize(records), n_hosts, t0, t1, buckets)


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Join spans less than a pixel apart: dense schedules emit only what can be seen."""
    spans.sort()
    merged = []
    lo, hi = spans[0]
    for x0, x1 in spans[1:]:
        if x0 - hi < 1.0:
            hi = max(hi, x1)
        else:
            merged.append((lo, hi))
            lo, hi = x0, x1
    merged.append((lo, hi))
    return merged


def _hosts_near(lease: _Lease, t: int, *, after: bool) -> tuple[str, ...]:
    """Hosts a suspension (the run before it) or a resumption or transfer (the run after
    it) happens on; records give those events times but no hosts."""
    if after:
        later = [r for r in lease.runs if r.start >= t]
        run = min(later, key=lambda r: r.start) if later else lease.runs[-1]
    else:
        earlier = [r for r in lease.runs if r.start <= t]
        run = max(earlier, key=lambda r: r.start) if earlier else lease.runs[0]
    return run.hosts


# -- scene --------------------------------------------------------------------------------

# x0, y0, x1, y1, colour key (also the SVG class)
_Rect = tuple[float, float, float, float, str]
# x, top, text, anchor ("start" | "middle" | "end"), scale, colour key
_Text = tuple[float, float, str, str, int, str]


class _Layer(NamedTuple):
    name: str
    rects: list[_Rect]
    texts: list[_Text]
    steps: list[float]  # utilization samples, drawn across the plot width


def _layer(name: str, rects: list[_Rect] | None = None, texts: list[_Text] | None = None) -> _Layer:
    return _Layer(name, rects or [], texts or [], [])


def _bars(layout: Layout, leases: Sequence[_Lease], hosts: Sequence[str]) -> list[_Rect]:
    row_of = {host: row for row, host in enumerate(hosts)}
    scale = layout.plot_width / (layout.t1 - layout.t0)
    left, t0 = layout.left, layout.t0
    spans: dict[tuple[str, int], list[tuple[float, float]]] = {}

    def add(kind: str, start: int, end: int, on: tuple[str, ...]) -> None:
        x0 = left + (start - t0) * scale
        x1 = max(left + (end - t0) * scale, x0 + MIN_BAR_WIDTH)
        # set(): several virtual nodes on one host are still one bar on its row.
        for host in set(on):
            row = row_of.get(host)
            if row is not None:  # hosts left out of the plot are skipped, not an error
                spans.setdefault((kind, row), []).append((x0, x1))

    for lease in leases:
        for run in lease.runs:
            add(lease.type, run.start, run.end, run.hosts)
        if not lease.runs:
            continue
        for start, end in lease.suspensions:
            add("suspend", start, end, _hosts_near(lease, start, after=False))
        for start, end in lease.resumptions:
            add("resume", start, end, _hosts_near(lease, start, after=True))
        for start, end in lease.transfers:
            add("transfer", start, end, _hosts_near(lease, start, after=True))

    pad = layout.bar_pad
    thin = 2 if layout.row_height >= 8 else 1
    rects: list[_Rect] = []
    # Overlays (suspend, resume, transfer) come after the run bars so they stay visible.
    for kind in (*LEASE_TYPES, "suspend", "resume", "transfer"):
        for row in range(layout.rows):
            row_spans = spans.get((kind, row))
            if not row_spans:
                continue
            y1 = layout.row_top(row) + layout.row_height - pad
            y0 = y1 - thin if kind == "transfer" else layout.row_top(row) + pad
            rects.extend((x0, y0, x1, y1, kind) for x0, x1 in _merge(row_spans))
    return rects


def _time_axis(layout: Layout, y: int) -> tuple[list[_Rect], list[_Text]]:
    right = layout.left + layout.plot_width
    rects: list[_Rect] = [(layout.left, y, right + 1, y + 1, "axis")]
    texts: list[_Text] = []
    for t, label in _ticks(layout):
        x = round(layout.x(t))
        rects.append((x, y + 1, x + 1, y + 5, "axis"))
        texts.append((x, y + 8, label, "middle", 1, "text"))
    texts.append((right, y + 20, f"time ({layout.unit_name})", "end", 1, "text"))
    return rects, texts


def _scene(
    layout: Layout, leases: Sequence[_Lease], hosts: Sequence[str], title: str
) -> list[_Layer]:
    left, right = layout.left, layout.left + layout.plot_width
    layers = [_layer("title", texts=[(left, 10, title or "Lease schedule", "start", 2, "text")])]

    legend_rects: list[_Rect] = []
    legend_texts: list[_Text] = []
    x = left
    for key, label in LEGEND:
        legend_rects.append((x, 32, x + 10, 42, key))
        legend_texts.append((x + 14, 34, label, "start", 1, "text"))
        x += 14 + CHAR_W * len(label) + 16
    layers.append(_layer("legend", legend_rects, legend_texts))

    separators: list[_Rect] = []
    if layout.bar_pad:
        separators = [
            (left, layout.row_top(row), right, layout.row_top(row) + 1, "grid")
            for row in range(layout.rows)
        ]
    layers.append(_layer("rows", separators))
    layers.append(_layer("bars", _bars(layout, leases, hosts)))

    # Thin rows cannot fit a label each in the PNG font; label every k-th row there.
    every = max(1, math.ceil((CHAR_H + 1) / layout.row_height))
    labels: list[_Text] = []
    for row, host in enumerate(hosts):
        if row % every == 0:
            top = layout.row_top(row) + (layout.row_height - CHAR_H) / 2
            labels.append((left - 6, top, host[:MAX_LABEL_CHARS], "end", 1, "text"))
    border: list[_Rect] = [(left, GANTT_TOP, left + 1, layout.gantt_bottom, "axis")]
    axis_rects, axis_texts = _time_axis(layout, layout.gantt_bottom)
    layers.append(_layer("hosts", border + axis_rects, labels + axis_texts))

    top, bottom = layout.util_top, layout.util_bottom
    grid: list[_Rect] = []
    y_labels: list[_Text] = []
    for fraction, label in ((0.0, "0"), (0.5, "0.5"), (1.0, "1")):
        y = round(layout.util_y(fraction))
        grid.append((left, y, right, y + 1, "grid"))
        y_labels.append((left - 6, y - CHAR_H // 2, label, "end", 1, "text"))
    y_labels.append((left, top - 14, "utilization", "start", 1, "text"))
    layers.append(_layer("util-grid", grid, y_labels))

    buckets = min(MAX_UTIL_POINTS, layout.plot_width)
    steps = _utilization(leases, len(hosts), layout.t0, layout.t1, buckets)
    layers.append(_Layer("util", [], [], steps))

    axis_rects, axis_texts = _time_axis(layout, bottom)
    axis_rects.append((left, top, left + 1, bottom, "axis"))
    layers.append(_layer("util-axis", axis_rects, axis_texts))
    return layers


# -- SVG ----------------------------------------------------------------------------------


def _num(value: float) -> str:
    # Tenths of a pixel are finer than any screen, and keep a 28,000-lease SVG small.
    return str(int(value)) if value == int(value) else f"{value:.1f}"


def _hex(key: str) -> str:
    red, green, blue = COLORS[key]
    return f"#{red:02x}{green:02x}{blue:02x}"


def _svg(layout: Layout, layers: Sequence[_Layer], title: str) -> bytes:
    styles = " ".join(f".{key}{{fill:{_hex(key)}}}" for key in COLORS if key != "background")
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{layout.width}" height="{layout.height}"'
        f' viewBox="0 0 {layout.width} {layout.height}">\n',
        f"<title>{escape(title or 'Lease schedule')}</title>\n",
        f"<style>text{{font-family:monospace;font-size:10px}} {styles}"
        f" .util-stroke{{fill:none;stroke:{_hex('util-line')};stroke-width:1}}</style>\n",
        f'<rect width="100%" height="100%" fill="{_hex("background")}"/>\n',
    ]
    for layer in layers:
        out.append(f'<g class="{layer.name}">\n')
        out.extend(_svg_rect(*rect) for rect in layer.rects)
        for x, top, text, anchor, scale, key in layer.texts:
            # The PNG font's glyphs sit on the baseline CHAR_H px below their top.
            size = f' style="font-size:{10 * scale}px"' if scale != 1 else ""
            out.append(
                f'<text class="{key}" x="{_num(x)}" y="{_num(top + CHAR_H * scale)}"'
                f' text-anchor="{anchor}"{size}>{escape(text)}</text>\n'
            )
        if layer.steps:
            out.extend(_svg_steps(layout, layer.steps))
        out.append("</g>\n")
    out.append("</svg>\n")
    return "".join(out).encode()


def _svg_rect(x0: float, y0: float, x1: float, y1: float, key: str) -> str:
    # Round the edges, not the width, so a bar ends within 0.05 px of its true end.
    x0, x1 = round(x0, 1), round(x1, 1)
    return (
        f'<rect class="{key}" x="{_num(x0)}" y="{_num(y0)}" width="{_num(x1 - x0)}"'
        f' height="{_num(y1 - y0)}"/>\n'
    )


def _svg_steps(layout: Layout, steps: Sequence[float]) -> list[str]:
    width = layout.plot_width / len(steps)
    left, right = layout.left, layout.left + layout.plot_width
    line = [f"M{left} {layout.util_y(steps[0]):.1f}"]
    # Only changes become path commands: long idle or saturated stretches cost nothing.
    for i in range(1, len(steps)):
        if steps[i] != steps[i - 1]:
            line.append(f"H{left + i * width:.1f}V{layout.util_y(steps[i]):.1f}")
    line.append(f"H{right}")
    outline = "".join(line)
    return [
        f'<path class="util" d="{outline}V{layout.util_bottom}H{left}Z"/>\n',
        f'<path class="util-stroke" d="{outline}"/>\n',
    ]


# -- PNG ----------------------------------------------------------------------------------

# 5x7 glyphs, one hex byte per row, bit 4 is the leftmost column (HD44780 style).
_GLYPHS = {
    "0": "0E11131519110E",
    "1": "040C040404040E",
    "2": "0E11010204081F",
    "3": "1F02040201110E",
    "4": "02060A121F0202",
    "5": "1F101E0101110E",
    "6": "0608101E11110E",
    "7": "1F010204080808",
    "8": "0E11110E11110E",
    "9": "0E11110F01020C",
    "A": "0E1111111F1111",
    "B": "1E11111E11111E",
    "C": "0E11101010110E",
    "D": "1C12111111121C",
    "E": "1F10101E10101F",
    "F": "1F10101E101010",
    "G": "0E11101711110F",
    "H": "1111111F111111",
    "I": "0E04040404040E",
    "J": "0702020202120C",
    "K": "11121418141211",
    "L": "1010101010101F",
    "M": "111B1515111111",
    "N": "11111915131111",
    "O": "0E11111111110E",
    "P": "1E11111E101010",
    "Q": "0E11111115120D",
    "R": "1E11111E141211",
    "S": "0F10100E01011E",
    "T": "1F040404040404",
    "U": "1111111111110E",
    "V": "11111111110A04",
    "W": "1111111515150A",
    "X": "11110A040A1111",
    "Y": "1111110A040404",
    "Z": "1F01020408101F",
    "-": "0000001F000000",
    ".": "00000000000C0C",
    ":": "000C0C000C0C00",
    "_": "0000000000001F",
    "/": "00010204081000",
    "%": "18190204081303",
    "(": "02040808080402",
    ")": "08040202020408",
    ",": "000000000C0408",
    "+": "0004041F040400",
    "=": "00001F001F0000",
    " ": "00000000000000",
    "?": "0E110102040004",
    "<": "02040810080402",
    ">": "08040201020408",
    "&": "0C12140815120D",
}
_FONT = {ch: bytes.fromhex(rows) for ch, rows in _GLYPHS.items()}


class _Canvas:
    """An RGB bytearray with just the drawing the plot needs: filled rectangles and text."""

    def __init__(self, width: int, height: int, background: RGB) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def fill(self, x0: int, y0: int, x1: int, y1: int, color: bytes) -> None:
        x0, x1 = max(0, x0), min(self.width, x1)
        y0, y1 = max(0, y0), min(self.height, y1)
        if x0 >= x1 or y0 >= y1:
            return
        line = color * (x1 - x0)
        stride = self.width * 3
        offset = y0 * stride + x0 * 3
        for _ in range(y0, y1):
            self.pixels[offset : offset + len(line)] = line
            offset += stride

    def text(self, x: int, top: int, text: str, scale: int, color: bytes) -> None:
        for ch in text.upper():
            glyph = _FONT.get(ch, _FONT["?"])
            for dy, bits in enumerate(glyph):
                for dx in range(5):
                    if bits & (0x10 >> dx):
                        px, py = x + dx * scale, top + dy * scale
                        self.fill(px, py, px + scale, py + scale, color)
            x += CHAR_W * scale

    def png(self) -> bytes:
        stride = self.width * 3
        view = memoryview(self.pixels)
        # Filter type 0 on every scanline: zlib alone already shrinks flat charts well.
        raw = b"".join(b"\x00" + view[y * stride : (y + 1) * stride] for y in range(self.height))
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw, 6))
            + _chunk(b"IEND", b"")
        )


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _px(value: float) -> int:
    # Half-up rounding: a pixel is painted when its centre lies inside the shape.
    return math.floor(value + 0.5)


def _png(layout: Layout, layers: Sequence[_Layer]) -> bytes:
    canvas = _Canvas(layout.width, layout.height, COLORS["background"])
    colors = {key: bytes(rgb) for key, rgb in COLORS.items()}
    for layer in layers:
        for x0, y0, x1, y1, key in layer.rects:
            px0, py0 = _px(x0), _px(y0)
            canvas.fill(px0, py0, max(px0 + 1, _px(x1)), max(py0 + 1, _px(y1)), colors[key])
        for x, top, text, anchor, scale, key in layer.texts:
            width = CHAR_W * scale * len(text) - scale
            start = x - width if anchor == "end" else x - width / 2 if anchor == "middle" else x
            canvas.text(_px(start), _px(top), text, scale, colors[key])
        if layer.steps:
            _png_steps(canvas, layout, layer.steps, colors)
    return canvas.png()


def _png_steps(
    canvas: _Canvas, layout: Layout, steps: Sequence[float], colors: dict[str, bytes]
) -> None:
    width = layout.plot_width / len(steps)
    base = layout.util_bottom
    previous = _px(layout.util_y(steps[0]))
    for i, value in enumerate(steps):
        x0, x1 = _px(layout.left + i * width), _px(layout.left + (i + 1) * width)
        y = _px(layout.util_y(value))
        canvas.fill(x0, y, max(x1, x0 + 1), base, colors["util"])
        canvas.fill(x0, min(y, previous), x0 + 1, max(y, previous) + 1, colors["util-line"])
        canvas.fill(x0, y, max(x1, x0 + 1), y + 1, colors["util-line"])
        previous = y


# -- entry point --------------------------------------------------------------------------


def write_plot(
    path: str | os.PathLike[str],
    records: Sequence[Mapping[str, object]],
    hosts: Sequence[str],
    *,
    title: str = "",
) -> None:
    """Write a Gantt chart and utilization curve of `records` to a .svg or .png file."""
    name = os.fspath(path)
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in (".svg", ".png"):
        raise InvalidInput(f"{name}: --plot needs a .svg or .png file")
    leases = _normalize(records)
    layout = _layout(leases, hosts)
    layers = _scene(layout, leases, hosts, title)
    data = _svg(layout, layers, title) if suffix == ".svg" else _png(layout, layers)
    try:
        with open(name, "wb") as out:
            out.write(data)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).replace("\n", " ")
        raise InvalidInput(f"{name}: cannot write plot: {reason}") from None
