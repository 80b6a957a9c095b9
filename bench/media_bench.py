"""Preprocessing per video, side by side (issue 10, benchmark 1): ``python -m bench.media_bench``.

Three ways from a video URL on loopback HTTP to the Qwen2-VL video processor's output, at the
same budget (2 fps, at most 768 frames, 128..768 x 28 x 28 pixels per frame), on clips made
here with the project's synthetic video tools:

- **videomodel**: this project's ``load_video`` (fetch + probe + decode + resize in a warm
  decode pool) then transformers' ``Qwen2VLVideoProcessor``;
- **vLLM loader**: the bytes fetched over the same loopback, vLLM's own ``qwen2_vl`` video
  loader (opencv backend) then the same processor;
- **qwen-vl-utils**: the bytes fetched over the same loopback to a temp file (decord reads no
  URL here), ``fetch_video`` 0.0.14 (decord backend; its torchvision one needs
  ``torchvision.io.read_video``, gone from torchvision 0.28) then the same processor.

Per clip and method: latency (best of ``BENCH_REPEAT`` runs, one video at a time), throughput
(videos/s with 4 in flight), the bytes of the decoded video handed on (``frames.nbytes``), and
the peak resident memory the run added (this process plus its children: the pool workers).
The floor column is PyAV decoding every frame on all cores with no conversion. Results go to
``bench/results/`` (markdown table, JSON, PNG), with the machine they came from.

Environment: ``BENCH_QUICK=1`` skips the 10-minute clip; ``BENCH_SMOKE=1`` runs one tiny
clip once (what ``make test`` runs); ``BENCH_OUT`` overrides the output folder;
``BENCH_REPEAT`` (default 2) latency runs per method.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import os
import platform
import sys
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEPS = ROOT / ".cache" / "bench-deps"
"""decord (qwen-vl-utils' reader) is installed here on first run, outside the project's venv."""
DECORD = "decord==0.6.0"

FPS = 2.0
MAX_FRAMES = 768
MIN_PIXELS = 128 * 28 * 28
MAX_PIXELS = 768 * 28 * 28
CONCURRENCY = 4
METHODS = ("videomodel", "vLLM loader", "qwen-vl-utils")


# -- the machine ---------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        mem_kb = int(info.readline().split()[1])
    return {
        "nproc": str(os.cpu_count()),
        "usable_cpus": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "ram": f"{mem_kb / 1024**2:.1f} GiB",
        "python": platform.python_version(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


# -- memory ------------------------------------------------------------------------------------


class PeakRss:
    """Samples the RSS of this process plus its children (the decode workers) every 10 ms."""

    def __init__(self) -> None:
        import psutil

        self._me = psutil.Process()
        self.baseline = self._now()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _now(self) -> int:
        import psutil

        total = self._me.memory_info().rss
        for child in self._me.children(recursive=True):
            with suppress(psutil.Error):
                total += child.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._now())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._now())

    @property
    def added(self) -> int:
        return self.peak - self.baseline


# -- loopback server ---------------------------------------------------------------------------


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (a thread per connection); yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- the three paths ---------------------------------------------------------------------------


@dataclass
class Result:
    frames: int = 0
    shape: str = ""
    decoded_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def processor() -> Any:
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    return Qwen2VLVideoProcessor(
        size={"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS},
        cap_pixels_per_frame=False,
        do_sample_frames=False,
    )


def run_processor(proc: Any, frames: Any) -> tuple[int, ...]:
    out = proc(videos=[frames], return_tensors="pt", do_sample_frames=False)
    return tuple(out["pixel_values_videos"].shape)


class Videomodel:
    """This project's pipeline: a warm pool, the real fetcher (loopback exempted)."""

    def __init__(self, cache_bytes: int = 0) -> None:
        from videomodel_server.media import DecodePool, Fetcher, MediaLimits, SamplingBudget

        self.limits = MediaLimits(
            exempt_networks=("127.0.0.1/32",),
            max_seconds=900.0,
            max_video_bytes=1024**3,
            decode_cache_bytes=cache_bytes,
        )
        self.budget = SamplingBudget(
            fps=FPS, max_frames=MAX_FRAMES, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, factor=28, max_seconds=900.0
        )
        self.pool = DecodePool.from_limits(self.limits)
        self.fetcher = Fetcher()

    async def load(self, url: str, proc: Any, executor: ThreadPoolExecutor) -> Result:
        from videomodel_server.media.pipeline import load_video

        video = await load_video(url, self.limits, self.budget, self.pool, fetcher=self.fetcher)
        shape = await asyncio.get_running_loop().run_in_executor(executor, run_processor, proc, video.frames)
        return Result(len(video.frames), _fmt(shape), video.frames.nbytes, {"cache_hit": video.stats.cache_hit})


def fetch_bytes(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        data: bytes = response.read()
    return data


def vllm_load(url: str, proc: Any) -> Result:
    from vllm.multimodal.video import Qwen2VLVideoBackend

    data = fetch_bytes(url)
    frames, _meta = Qwen2VLVideoBackend.load_bytes(data, fps=int(FPS), backend="opencv")
    shape = run_processor(proc, frames)
    return Result(len(frames), _fmt(shape), frames.nbytes)


def qwen_vl_utils_load(url: str, proc: Any) -> Result:
    """decord cannot read a URL here (it sees a partial file): fetch to a temp file first."""
    import tempfile

    from qwen_vl_utils import fetch_video

    with tempfile.NamedTemporaryFile(suffix=Path(url).suffix) as tmp:
        tmp.write(fetch_bytes(url))
        tmp.flush()
        video = fetch_video(
            {
                "video": tmp.name,
                "fps": FPS,
                "max_frames": MAX_FRAMES,
                "min_pixels": MIN_PIXELS,
                "max_pixels": MAX_PIXELS,
            }
        )
    nbytes = video.numel() * video.element_size()
    shape = run_processor(proc, video)
    return Result(len(video), _fmt(shape), nbytes)


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


def floor_decode(path: Path) -> float:
    """PyAV decoding every frame with as many threads as cores, no conversion: the floor."""
    import av

    started = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = os.cpu_count() or 1
        stream.codec_context.thread_type = "AUTO"
        for _ in container.decode(stream):
            pass
    return time.perf_counter() - started


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Row:
    clip: str
    method: str
    latency_s: float
    throughput_vps: float | None
    decoded_mb: float
    peak_added_mb: float
    frames: int
    processor_shape: str


async def measure(
    clip: str,
    method: str,
    one: Callable[[], Awaitable[Result]],
    repeat: int,
    concurrency: int | None,
) -> Row:
    best = float("inf")
    peak = 0
    result = Result()
    for _ in range(repeat):
        with PeakRss() as rss:
            started = time.perf_counter()
            result = await one()
            best = min(best, time.perf_counter() - started)
        peak = max(peak, rss.added)
    vps = None
    if concurrency:
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        vps = concurrency / (time.perf_counter() - started)
    row = Row(clip, method, best, vps, result.decoded_bytes / 1024**2, peak / 1024**2, result.frames, result.shape)
    print(
        f"  {method:14s} {best:7.2f} s  {'' if vps is None else f'{vps:5.2f} videos/s'}  "
        f"decoded {row.decoded_mb:7.1f} MB  peak +{row.peak_added_mb:7.1f} MB  {result.shape}",
        flush=True,
    )
    return row


async def run(clips: list[Any], repeat: int, concurrency: int | None, out: Path) -> dict[str, Any]:
    import qwen_vl_utils  # noqa: F401  (imports paid before any clock starts)
    import vllm.multimodal.video

    proc = processor()
    videomodel = Videomodel()
    executor = ThreadPoolExecutor(max_workers=CONCURRENCY)
    loop = asyncio.get_running_loop()
    rows: list[Row] = []
    floors: dict[str, float] = {}
    paths = {clip.name: clip.path() for clip in clips}  # encode first (cached across runs)
    directory = next(iter(paths.values())).parent
    await videomodel.pool.start()
    try:
        with serve(directory) as base:
            for clip in clips:
                url = f"{base}/{paths[clip.name].name}"
                conc = None if clip.long else concurrency
                print(f"{clip.name}:", flush=True)
                floors[clip.name] = min(floor_decode(paths[clip.name]) for _ in range(1 if clip.long else repeat))
                print(f"  {'floor':14s} {floors[clip.name]:7.2f} s", flush=True)

                async def ours(url: str = url) -> Result:
                    return await videomodel.load(url, proc, executor)

                async def vllm(url: str = url) -> Result:
                    return await loop.run_in_executor(executor, vllm_load, url, proc)

                async def qvu(url: str = url) -> Result:
                    return await loop.run_in_executor(executor, qwen_vl_utils_load, url, proc)

                reps = 1 if clip.long else repeat
                for method, one in zip(METHODS, (ours, vllm, qvu), strict=True):
                    rows.append(await measure(clip.name, method, one, reps, conc))
            repeated = await repeated_video(paths, base, clips[0].name, proc, executor)
    finally:
        await videomodel.pool.close()
        executor.shutdown(wait=False)
    report = {"machine": machine(), "rows": [asdict(r) for r in rows], "floor_s": floors, "repeated": repeated}
    write_report(report, out)
    return report


async def repeated_video(
    paths: dict[str, Path], base: str, clip: str, proc: Any, executor: ThreadPoolExecutor
) -> dict[str, Any]:
    """The same URL 5 times with the decoded-video cache on (1 GiB): the first is a miss.
    Timed: ``load_video`` alone (the processor's work is the same with or without the cache)."""
    from videomodel_server.media.pipeline import load_video

    cached = Videomodel(cache_bytes=1024**3)
    await cached.pool.start()
    url = f"{base}/{paths[clip].name}"
    times, hits = [], []
    try:
        for _ in range(5):
            started = time.perf_counter()
            video = await load_video(url, cached.limits, cached.budget, cached.pool, fetcher=cached.fetcher)
            times.append(time.perf_counter() - started)
            hits.append(video.stats.cache_hit)
        stats = asdict(cached.pool.cache.stats)
    finally:
        await cached.pool.close()
    print(f"repeated {clip}: first {times[0]:.2f} s, then {[round(t, 3) for t in times[1:]]} s; {stats}", flush=True)
    return {"clip": clip, "first_s": times[0], "later_s": times[1:], "hits": hits, "cache": stats}


# -- reporting ---------------------------------------------------------------------------------


def table(report: dict[str, Any]) -> str:
    rows = [Row(**r) for r in report["rows"]]
    by_clip: dict[str, dict[str, Row]] = {}
    for row in rows:
        by_clip.setdefault(row.clip, {})[row.method] = row
    head = (
        "| clip | floor (decode all, all cores) | videomodel | vLLM loader | qwen-vl-utils | speed-up vs vLLM "
        "| speed-up vs qwen-vl-utils | videos/s at 4 (ours / vLLM / qvu) | decoded MB (ours / vLLM / qvu) "
        "| peak +MB (ours / vLLM / qvu) |"
    )
    lines = [head, "|" + "---|" * 10]
    for clip, methods in by_clip.items():
        ours, vl, qv = (methods.get(m) for m in METHODS)
        lines.append(
            f"| {clip} | {report['floor_s'].get(clip, 0):.2f} s | {_lat(ours)} | {_lat(vl)} | {_lat(qv)} "
            f"| {_ratio(ours, vl)} | {_ratio(ours, qv)} | {_three((ours, vl, qv), 'throughput_vps', '.2f')} "
            f"| {_three((ours, vl, qv), 'decoded_mb', '.0f')} | {_three((ours, vl, qv), 'peak_added_mb', '.0f')} |"
        )
    m = report["machine"]
    machine_line = (
        f"Machine: {m['nproc']} CPUs ({m['usable_cpus']} usable), {m['cpu']}, {m['ram']} RAM, Python {m['python']}; "
        f"load average before the run: {m['load_before']}."
    )
    budget = (
        f"Budget: {FPS:g} fps, at most {MAX_FRAMES} frames, {MIN_PIXELS // 784}..{MAX_PIXELS // 784} x 28 x 28 "
        f"pixels per frame. Latency: best of the runs, one video at a time, load then processor; "
        f"videos/s: {CONCURRENCY} in flight (not run for the 10-minute clip)."
    )
    rep = report.get("repeated")
    if rep:
        later = sum(rep["later_s"]) / len(rep["later_s"])
        lines += [
            "",
            f"Repeated video ({rep['clip']}, the same URL 5 times, decoded-video cache on): first "
            f"{rep['first_s']:.2f} s, each later one {later:.3f} s on average (load_video alone) "
            f"(cache: {rep['cache']['hits']} hits, {rep['cache']['misses']} misses).",
        ]
    return "\n".join([machine_line, "", budget, "", *lines, ""])


def _lat(row: Row | None) -> str:
    return "-" if row is None else f"{row.latency_s:.2f} s"


def _ratio(ours: Row | None, other: Row | None) -> str:
    return "-" if ours is None or other is None else f"{other.latency_s / ours.latency_s:.2f}x"


def _three(rows: tuple[Row | None, ...], attr: str, fmt: str) -> str:
    values = [None if r is None else getattr(r, attr) for r in rows]
    return " / ".join("-" if v is None else format(v, fmt) for v in values)


def write_report(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "media_bench.json").write_text(json.dumps(report, indent=1))
    text = table(report)
    (out / "media_bench.md").write_text("# Preprocessing per video (`make bench`)\n\n" + text)
    from bench.plot import bar_chart

    bar_chart(report, out / "media_bench.png", METHODS)
    print("\n" + text)
    print(f"written: {out}/media_bench.md, media_bench.json, media_bench.png")


def ensure_decord() -> None:
    """qwen-vl-utils reads with decord; install it beside the venv (not into it) if missing."""
    if not (DEPS / "decord").exists():
        import subprocess

        uv = Path(sys.executable).with_name("uv")
        subprocess.run(
            [str(uv), "pip", "install", "--quiet", "--no-deps", "--target", str(DEPS), DECORD],
            check=True,
        )
    sys.path.insert(0, str(DEPS))
    os.environ["FORCE_QWENVL_VIDEO_READER"] = "decord"


def main() -> None:
    from bench.clips import CLIPS, SMOKE

    smoke = os.environ.get("BENCH_SMOKE") == "1"
    quick = os.environ.get("BENCH_QUICK") == "1"
    out = Path(os.environ.get("BENCH_OUT", ROOT / "bench" / "results"))
    repeat = 1 if smoke else int(os.environ.get("BENCH_REPEAT", "2"))
    clips = [SMOKE] if smoke else [c for c in CLIPS if not (quick and c.long)]
    ensure_decord()
    asyncio.run(run(clips, repeat, None if smoke else CONCURRENCY, out))


if __name__ == "__main__":
    main()
