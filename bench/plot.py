"""A grouped bar chart of the bench's latencies, drawn with Pillow (matplotlib is not in the env)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

COLOURS = ((31, 119, 180), (214, 39, 40), (255, 127, 14), (127, 127, 127))


def bar_chart(report: dict[str, Any], path: Path, methods: Sequence[str]) -> None:
    """One group per clip: seconds to load one video (URL to frames) per method, and the floor."""
    from PIL import Image, ImageDraw, ImageFont

    series = [*methods, "floor"]
    clips: dict[str, dict[str, float]] = {}
    for row in report["rows"]:
        clips.setdefault(row["clip"], {})[row["method"]] = row["load_s"]
    for clip, seconds in report["floor_s"].items():
        clips.setdefault(clip, {})["floor"] = seconds
    bar_h, gap, left, right, top = 14, 18, 230, 120, 60
    height = top + len(clips) * (len(series) * bar_h + gap) + 40
    width = 1100
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    top_value = max((v for c in clips.values() for v in c.values()), default=1.0) or 1.0
    scale = (width - left - right) / top_value
    m = report["machine"]
    draw.text(
        (10, 8),
        f"Loading one video, URL to frames at 2 fps, seconds (lower is better; processor not included). "
        f"{m['nproc']} CPUs, {m['cpu']}, {m['ram']}",
        fill="black",
        font=font,
    )
    for i, name in enumerate(series):
        x = 10 + i * 200
        draw.rectangle((x, 30, x + 12, 42), fill=COLOURS[i % len(COLOURS)])
        draw.text((x + 18, 30), name, fill="black", font=font)
    y = top
    for clip, values in clips.items():
        draw.text((10, y + len(series) * bar_h // 2 - 6), clip, fill="black", font=font)
        for i, name in enumerate(series):
            value = values.get(name)
            if value is not None:
                draw.rectangle(
                    (left, y, left + max(1, int(value * scale)), y + bar_h - 2), fill=COLOURS[i % len(COLOURS)]
                )
                draw.text((left + int(value * scale) + 4, y), f"{value:.2f} s", fill="black", font=font)
            y += bar_h
        y += gap
    img.save(path)
