"""The floor (issue 10, benchmark 5): FFmpeg decoding alone, ``python -m bench.floor_bench``.

On the clips of benchmark 1 (``bench/clips.py``), PyAV (FFmpeg) with no conversion and no
resize:

- **full decode**: every frame, ``thread_count=2`` (frame + slice threads, ``AUTO``);
- **keyframes only**: ``skip_frame="NONKEY"``: the decoder drops every non-key frame, the least
  any exact sampler must decode when no target lies between keyframes (the lower bound of a
  seek-per-target strategy at a low sampling rate).

Best of ``BENCH_REPEAT`` runs (1 for the 10-minute clip). When ``bench/results/media_bench.json``
exists, the table sets the loaders of benchmark 1 (from that file: another run, its own load
average) beside the floor, as multiples of the full decode. ``BENCH_QUICK=1`` skips the 10-minute
clip; ``BENCH_SMOKE=1`` runs the smoke clip once; ``BENCH_OUT`` overrides the output folder.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from bench.media_bench import METHODS, ROOT, machine

THREADS = 2


def decode(path: Path, keyframes_only: bool) -> tuple[float, int]:
    """Seconds and frames for one pass of PyAV over the clip's video stream."""
    import av

    started = time.perf_counter()
    frames = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = THREADS
        stream.codec_context.thread_type = "AUTO"
        if keyframes_only:
            stream.codec_context.skip_frame = "NONKEY"
        for _ in container.decode(stream):
            frames += 1
    return time.perf_counter() - started, frames


def run(clips: list[Any], repeat: int, out: Path) -> dict[str, Any]:
    info = machine()
    rows = []
    for clip in clips:
        path = clip.path()
        reps = 1 if clip.long else repeat
        full = min(decode(path, False) for _ in range(reps))
        keys = min(decode(path, True) for _ in range(reps))
        row = {
            "clip": clip.name,
            "full_s": full[0],
            "full_frames": full[1],
            "keyframes_s": keys[0],
            "keyframes": keys[1],
        }
        rows.append(row)
        print(
            f"{clip.name}: full decode {full[0]:.2f} s ({full[1]} frames), keyframes only {keys[0]:.3f} s "
            f"({keys[1]} frames)",
            flush=True,
        )
    info["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    media = ROOT / "bench" / "results" / "media_bench.json"
    loaders = json.loads(media.read_text()) if media.exists() else None
    report = {"machine": info, "threads": THREADS, "rows": rows, "media_bench": loaders}
    write_report(report, out)
    return report


def table(report: dict[str, Any]) -> str:
    m = report["machine"]
    loaders: dict[str, dict[str, float]] = {}
    media = report.get("media_bench")
    if media:
        for r in media["rows"]:
            loaders.setdefault(r["clip"], {})[r["method"]] = r["load_s"]
    head = (
        "| clip | full decode, 2 threads | frames | keyframes only | keyframes "
        "| load (benchmark 1): videomodel / vLLM / qwen-vl-utils "
        "| load / full decode: videomodel / vLLM / qwen-vl-utils |"
    )
    lines = [head, "|" + "---|" * 7]
    ignored = " (every frame: this decoder ignores skip_frame, e.g. FFmpeg's vp9)"
    for r in report["rows"]:
        got = loaders.get(r["clip"], {})
        loads = [got.get(method) for method in METHODS]
        abs_ = " / ".join("-" if v is None else f"{v:.2f}" for v in loads)
        rel = " / ".join("-" if v is None else f"{v / r['full_s']:.2f}x" for v in loads)
        lines.append(
            f"| {r['clip']} | {r['full_s']:.2f} s | {r['full_frames']} | {r['keyframes_s']:.3f} s | {r['keyframes']}"
            f"{ignored if r['keyframes'] == r['full_frames'] else ''} "
            f"| {abs_ + ' s' if got else '-'} | {rel if got else '-'} |"
        )
    text = [
        f"Machine: {m['nproc']} CPUs ({m['usable_cpus']} usable), {m['cpu']}, {m['ram']} RAM, Python {m['python']}; "
        f"load average at the start: {m['load_before']}, at the end: {m['load_after']}.",
        "",
        f"PyAV (FFmpeg) decoding the video stream, no conversion, no resize, {report['threads']} threads "
        f"(AUTO), best of the runs. Keyframes only: skip_frame=NONKEY.",
    ]
    if media:
        mm = media["machine"]
        text += [
            "",
            f"Load columns: `bench/results/media_bench.json` (benchmark 1: URL to frames at the model's "
            f"size, 2 fps), another run on a shared machine (load average before it: {mm['load_before']}): "
            f"compare orders of magnitude, not digits.",
        ]
    return "\n".join([*text, "", *lines, ""])


def bar_chart(report: dict[str, Any], path: Path) -> None:
    """benchmark 1's loaders beside the two floors, in bench/plot.py's chart (a floor-only report)."""
    from bench.plot import bar_chart as chart

    rows = []
    media = report.get("media_bench") or {"rows": []}
    names = {r["clip"] for r in report["rows"]}
    shown = ("videomodel", "vLLM loader")  # four colours in plot.py: the loaders, keyframes, floor
    rows += [r for r in media["rows"] if r["clip"] in names and r["method"] in shown]
    for r in report["rows"]:
        rows.append({"clip": r["clip"], "method": "keyframes only", "load_s": r["keyframes_s"]})
    chart(
        {"rows": rows, "floor_s": {r["clip"]: r["full_s"] for r in report["rows"]}, "machine": report["machine"]},
        path,
        [*(shown if media["rows"] else ()), "keyframes only"],
    )
    # plot.py's title speaks of URL-to-frames loads; say what these bars are instead.
    from PIL import Image, ImageDraw, ImageFont

    m = report["machine"]
    with Image.open(path) as img:
        draw = ImageDraw.Draw(img)
        draw.rectangle((0, 0, img.width, 26), fill="white")
        draw.text(
            (10, 8),
            f"Seconds per video (lower is better). floor: FFmpeg (PyAV) full decode, {report['threads']} threads; "
            f"keyframes only: skip_frame=NONKEY; loaders: benchmark 1's loads. {m['nproc']} CPUs, {m['cpu']}",
            fill="black",
            font=ImageFont.load_default(),
        )
        img.save(path)


def write_report(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "floor_bench.json").write_text(json.dumps(report, indent=1))
    text = table(report)
    (out / "floor_bench.md").write_text("# The floor: FFmpeg decoding alone (`make bench-floor`)\n\n" + text)
    bar_chart(report, out / "floor_bench.png")
    print("\n" + text)
    print(f"written: {out}/floor_bench.md, floor_bench.json, floor_bench.png")


def main() -> None:
    from bench.clips import CLIPS, SMOKE

    smoke = os.environ.get("BENCH_SMOKE") == "1"
    quick = os.environ.get("BENCH_QUICK") == "1"
    out = Path(os.environ.get("BENCH_OUT", ROOT / "bench" / "results"))
    repeat = 1 if smoke else int(os.environ.get("BENCH_REPEAT", "2"))
    clips = [SMOKE] if smoke else [c for c in CLIPS if not (quick and c.long)]
    run(clips, repeat, out)


if __name__ == "__main__":
    main()
