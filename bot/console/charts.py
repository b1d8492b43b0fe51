"""Geometry of the server-rendered SVG charts; templates/console/_charts.html draws it."""
from __future__ import annotations

import math

# One colour per request type, and a grey for requests not yet classified.
PALETTE = {"government": "#c62828", "self_governance": "#ef6c00", "market_service": "#1565c0",
           "public_welfare": "#2e7d32", None: "#9e9e9e"}


def nice_max(value: int) -> int:
    """A round axis maximum at or above value (1, 2, 5 × 10ⁿ)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def stacked_columns(labels: list[str], series: list, values: dict, width: int = 720, height: int = 260) -> dict:
    """Vertical stacked columns: one per label, one segment per series key."""
    left, bottom, top = 48, 28, 10
    plot_h, plot_w = height - bottom - top, width - left - 10
    totals = [sum(values.get((label, key), 0) for key in series) for label in labels]
    ymax = nice_max(max(totals, default=0))
    slot = plot_w / max(len(labels), 1)
    bar_w = max(2.0, slot * 0.7)
    bars = []
    for i, label in enumerate(labels):
        y = top + plot_h
        x = left + i * slot + (slot - bar_w) / 2
        for key in series:
            v = values.get((label, key), 0)
            if not v:
                continue
            h = plot_h * v / ymax
            y -= h
            bars.append({"x": round(x, 1), "y": round(y, 1), "w": round(bar_w, 1), "h": round(h, 1),
                         "color": PALETTE.get(key, "#757575"), "value": v, "label": label, "key": key})
    ticks = [{"y": round(top + plot_h - plot_h * f, 1), "value": int(ymax * f)} for f in (0, 0.25, 0.5, 0.75, 1)]
    every = max(1, math.ceil(len(labels) / 12))
    xlabels = [{"x": round(left + i * slot + slot / 2, 1), "text": label}
               for i, label in enumerate(labels) if i % every == 0]
    return {"width": width, "height": height, "left": left, "base": top + plot_h, "right": width - 10,
            "bars": bars, "ticks": ticks, "xlabels": xlabels, "totals": totals}


def stacked_rows(labels: list[str], series: list, values: dict, width: int = 720, row_h: int = 26) -> dict:
    """Horizontal stacked bars, one row per label (communities), longest scale on the widest."""
    left, right = 120, 60
    plot_w = width - left - right
    totals = [sum(values.get((label, key), 0) for key in series) for label in labels]
    xmax = max(totals, default=0) or 1
    rows = []
    for i, label in enumerate(labels):
        x = float(left)
        y = 6 + i * row_h
        segments = []
        for key in series:
            v = values.get((label, key), 0)
            if not v:
                continue
            w = plot_w * v / xmax
            segments.append({"x": round(x, 1), "w": round(w, 1), "color": PALETTE.get(key, "#757575"),
                             "value": v, "key": key})
            x += w
        rows.append({"label": label, "y": y, "h": row_h - 8, "segments": segments, "total": totals[i],
                     "end": round(x + 6, 1)})
    return {"width": width, "height": 12 + len(labels) * row_h, "left": left, "rows": rows}


def histogram(buckets: list[tuple[str, int]], width: int = 720, height: int = 220) -> dict:
    """Columns of a distribution, with each count and share printed above its column."""
    left, bottom, top = 48, 28, 22
    plot_h, plot_w = height - bottom - top, width - left - 10
    total = sum(v for _, v in buckets) or 1
    ymax = nice_max(max((v for _, v in buckets), default=0))
    slot = plot_w / max(len(buckets), 1)
    bars = []
    for i, (key, v) in enumerate(buckets):
        h = plot_h * v / ymax
        x = left + i * slot + slot * 0.15
        bars.append({"key": key, "x": round(x, 1), "y": round(top + plot_h - h, 1), "w": round(slot * 0.7, 1),
                     "h": round(h, 1), "value": v, "share": round(100 * v / total),
                     "cx": round(left + i * slot + slot / 2, 1)})
    return {"width": width, "height": height, "left": left, "base": top + plot_h, "right": width - 10,
            "bars": bars}
