"""Server-side SVG of a plan's memory per device: one stacked bar per GPU (and the host).

Each bar shows weights, KV cache, recurrent state, compute buffers and other overhead, drawn to
scale against the device's capacity (the outlined track, full width for every device). Colours come from CSS classes
(``seg-weights`` …) so the picture follows the page's light or dark theme; the SVG carries a
``<title>`` and ``<desc>`` that state the same figures in words for screen readers.
"""

from __future__ import annotations

from html import escape

from servefit.plan import DeviceUsage, Plan
from servefit.web.fmt import fmt_gb, fmt_gib

__all__ = ["SEGMENTS", "memory_svg"]

# (DeviceUsage field, legend label, CSS class)
SEGMENTS: tuple[tuple[str, str, str], ...] = (
    ("weights_bytes", "Weights", "seg-weights"),
    ("kv_bytes", "KV cache", "seg-kv"),
    ("recurrent_bytes", "Recurrent state", "seg-recurrent"),
    ("compute_bytes", "Compute buffers", "seg-compute"),
    ("other_bytes", "Overhead", "seg-other"),
)

_WIDTH = 720
_LABEL_H = 18
_BAR_H = 22
_ROW_GAP = 16
_LEGEND_H = 28


def _row(device: DeviceUsage, y: int, scale: float) -> list[str]:
    parts: list[str] = []
    used = device.total_bytes
    over = used > device.capacity_bytes
    label = f"{device.name}: {fmt_gb(used)} of {fmt_gb(device.capacity_bytes)}"
    if over:
        label += " (over capacity)"
    parts.append(f'<text class="svg-label" x="0" y="{y + 13}">{escape(label)}</text>')
    bar_y = y + _LABEL_H
    cap_w = max(device.capacity_bytes * scale, 1.0)
    parts.append(f'<rect class="svg-track" x="0" y="{bar_y}" width="{cap_w:.1f}" height="{_BAR_H}" rx="3"/>')
    x = 0.0
    for field, name, css in SEGMENTS:
        nbytes = int(getattr(device, field))
        if nbytes <= 0:
            continue
        w = nbytes * scale
        parts.append(
            f'<rect class="{css}" x="{x:.1f}" y="{bar_y}" width="{max(w, 0.5):.1f}" height="{_BAR_H}">'
            f"<title>{escape(name)}: {fmt_gb(nbytes)} ({fmt_gib(nbytes)})</title></rect>"
        )
        x += w
    parts.append(
        f'<rect class="svg-capacity{" svg-over" if over else ""}" x="0" y="{bar_y}" width="{cap_w:.1f}" '
        f'height="{_BAR_H}" rx="3" fill="none"/>'
    )
    return parts


def memory_svg(plan: Plan) -> str:
    """The memory picture of ``plan`` as an inline ``<svg>`` element (a string of markup)."""
    devices = [d for d in plan.devices if d.capacity_bytes > 0 or d.total_bytes > 0]
    row_h = _LABEL_H + _BAR_H + _ROW_GAP
    height = len(devices) * row_h + _LEGEND_H
    desc = "; ".join(
        f"{d.name}: "
        + ", ".join(f"{name} {fmt_gb(int(getattr(d, f)))}" for f, name, _ in SEGMENTS if int(getattr(d, f)) > 0)
        + f", {fmt_gb(d.total_bytes)} used of {fmt_gb(d.capacity_bytes)}"
        for d in devices
    )
    out = [
        f'<svg class="memory-svg" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {height}" '
        f'width="100%" role="img" aria-labelledby="mem-title mem-desc" preserveAspectRatio="xMinYMin meet">',
        '<title id="mem-title">Memory per device</title>',
        f'<desc id="mem-desc">{escape(desc or "no device memory")}</desc>',
    ]
    for i, device in enumerate(devices):
        # each bar is drawn to its own device's scale: the track is the device's capacity
        scale = _WIDTH / (max(device.capacity_bytes, device.total_bytes) or 1)
        out.extend(_row(device, i * row_h, scale))
    # legend
    lx = 0
    ly = len(devices) * row_h + 6
    for _, name, css in SEGMENTS:
        out.append(f'<rect class="{css}" x="{lx}" y="{ly}" width="12" height="12" rx="2"/>')
        out.append(f'<text class="svg-legend" x="{lx + 17}" y="{ly + 11}">{escape(name)}</text>')
        lx += 30 + 8 * len(name)
    out.append("</svg>")
    return "".join(out)
