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
from dataclasses import asdict, dataclass
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
    """Samples the RSS of this process plus its children (the decode workers) every 20 ms."""

    def __init__(self) -> None:
        import ctypes
        import gc

        import psutil

        # Start from a clean heap: what earlier runs freed goes back to the kernel, or a run
        # reusing it would look as if it needed nothing.
        gc.collect()
        with suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        me = psutil.Process()
        # The children (pool workers) once: scanning /proc every sample would itself eat a core.
        self._procs = [me, *me.children(recursive=True)]
        self.baseline = self._now()
        self.peak = list(self.baseline)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _now(self) -> list[int]:
        import psutil

        sizes = []
        for proc in self._procs:
            try:
                sizes.append(proc.memory_info().rss)
            except psutil.Error:
                sizes.append(0)
        return sizes

    def _sample(self) -> None:
        self.peak = [max(p, n) for p, n in zip(self.peak, self._now(), strict=True)]

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self._sample()

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def added(self) -> int:
        """Sum over the processes of each one's own peak growth (one shrinking hides nothing)."""
        return sum(max(0, p - b) for p, b in zip(self.peak, self.baseline, strict=True))


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
class Loaded:
    """One method's decoded video, before the processor."""

    frames: Any
    count: int
    nbytes: int
    cache_hit: bool | None = None


def processor() -> Any:
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    return Qwen2VLVideoProcessor(
        size={"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS},
        cap_pixels_per_frame=False,
        do_sample_frames=False,
    )


def run_processor(proc: Any, frames: Any) -> str:
    out = proc(videos=[frames], return_tensors="pt", do_sample_frames=False)
    return "x".join(str(s) for s in out["pixel_values_videos"].shape)


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

    async def load(self, url: str) -> Loaded:
        from videomodel_server.media.pipeline import load_video

        video = await load_video(url, self.limits, self.budget, self.pool, fetcher=self.fetcher)
        return Loaded(video.frames, len(video.frames), video.frames.nbytes, video.stats.cache_hit)


def fetch_bytes(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        data: bytes = response.read()
    return data


def vllm_load(url: str) -> Loaded:
    from vllm.multimodal.video import Qwen2VLVideoBackend

    data = fetch_bytes(url)
    frames, _meta = Qwen2VLVideoBackend.load_bytes(data, fps=int(FPS), backend="opencv")
    return Loaded(frames, len(frames), frames.nbytes)


def qwen_vl_utils_load(url: str) -> Loaded:
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
    return Loaded(video, len(video), video.numel() * video.element_size())


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
    load_s: float
    """Best of the runs: URL to decoded frames at the model's size (or full size: vLLM)."""
    processor_s: float
    """The processor on those frames (best of the runs, as the load: its first call pays for
    allocating its output, which one run on a shared machine can double)."""
    throughput_vps: float | None
    """Loads per second with CONCURRENCY in flight (the processor not included)."""
    decoded_mb: float
    peak_added_mb: float
    frames: int
    processor_shape: str

    @property
    def total_s(self) -> float:
        return self.load_s + self.processor_s


async def measure(
    clip: str,
    method: str,
    load: Callable[[], Awaitable[Loaded]],
    process: Callable[[Any], Awaitable[str]],
    repeat: int,
    concurrency: int | None,
) -> Row:
    best = float("inf")
    peak = 0
    loaded = Loaded(None, 0, 0)
    for _ in range(repeat):
        loaded = Loaded(None, 0, 0)  # drop the last run's frames before measuring the next
        with PeakRss() as rss:
            started = time.perf_counter()
            loaded = await load()
            best = min(best, time.perf_counter() - started)
        peak = max(peak, rss.added)
    processor_s = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        shape = await process(loaded.frames)
        processor_s = min(processor_s, time.perf_counter() - started)
    count, nbytes = loaded.count, loaded.nbytes
    del loaded
    vps = None
    if concurrency:
        started = time.perf_counter()
        await asyncio.gather(*(load() for _ in range(concurrency)))
        vps = concurrency / (time.perf_counter() - started)
    row = Row(clip, method, best, processor_s, vps, nbytes / 1024**2, peak / 1024**2, count, shape)
    print(
        f"  {method:14s} load {best:6.2f} s + processor {processor_s:5.2f} s  "
        f"{'' if vps is None else f'{vps:5.2f} loads/s  '}decoded {row.decoded_mb:6.1f} MB  "
        f"peak +{row.peak_added_mb:6.1f} MB  {shape}",
        flush=True,
    )
    return row


async def run(clips: list[Any], repeat: int, concurrency: int | None, out: Path) -> dict[str, Any]:
    import qwen_vl_utils  # noqa: F401  (imports paid before any clock starts)
    import vllm.multimodal.video

    info = machine()  # the load average before the run, not after it
    proc = processor()
    videomodel = Videomodel()
    executor = ThreadPoolExecutor(max_workers=CONCURRENCY)
    loop = asyncio.get_running_loop()
    rows: list[Row] = []
    floors: dict[str, float] = {}
    paths = {clip.name: clip.path() for clip in clips}  # encode first (cached across runs)
    directory = next(iter(paths.values())).parent

    async def process(frames: Any) -> str:
        return await loop.run_in_executor(executor, run_processor, proc, frames)

    await videomodel.pool.start()
    try:
        with serve(directory) as base:
            for clip in clips:
                url = f"{base}/{paths[clip.name].name}"
                conc = None if clip.long else concurrency
                reps = 1 if clip.long else repeat
                print(f"{clip.name}:", flush=True)
                floors[clip.name] = min(floor_decode(paths[clip.name]) for _ in range(reps))
                print(f"  {'floor':14s} {floors[clip.name]:7.2f} s", flush=True)

                async def ours(url: str = url) -> Loaded:
                    return await videomodel.load(url)

                async def vllm(url: str = url) -> Loaded:
                    return await loop.run_in_executor(executor, vllm_load, url)

                async def qvu(url: str = url) -> Loaded:
                    return await loop.run_in_executor(executor, qwen_vl_utils_load, url)

                for method, load in zip(METHODS, (ours, vllm, qvu), strict=True):
                    rows.append(await measure(clip.name, method, load, process, reps, conc))
            repeated = await repeated_video(paths, base, clips[0].name)
    finally:
        await videomodel.pool.close()
        executor.shutdown(wait=False)
    report = {"machine": info, "rows": [asdict(r) for r in rows], "floor_s": floors, "repeated": repeated}
    write_report(report, out)
    return report


async def repeated_video(paths: dict[str, Path], base: str, clip: str) -> dict[str, Any]:
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
        "| clip | floor: decode all, all cores | load: videomodel / vLLM / qwen-vl-utils | load speed-up vs vLLM "
        "| vs qwen-vl-utils | load + processor: videomodel / vLLM / qwen-vl-utils | speed-up vs vLLM "
        "| vs qwen-vl-utils | loads/s at 4 in flight: videomodel / vLLM / qwen-vl-utils | throughput vs vLLM "
        "| decoded MB handed on | peak +MB RSS of the load |"
    )
    lines = [head, "|" + "---|" * 12]
    for clip, methods in by_clip.items():
        three = tuple(methods.get(m) for m in METHODS)
        ours, vl, qv = three
        lines.append(
            f"| {clip} | {report['floor_s'].get(clip, 0):.2f} s | {_three(three, 'load_s', '.2f')} s "
            f"| {_ratio(ours, vl, 'load_s')} | {_ratio(ours, qv, 'load_s')} | {_three(three, 'total_s', '.2f')} s "
            f"| {_ratio(ours, vl, 'total_s')} | {_ratio(ours, qv, 'total_s')} "
            f"| {_three(three, 'throughput_vps', '.2f')} | {_ratio(vl, ours, 'throughput_vps')} "
            f"| {_three(three, 'decoded_mb', '.0f')} | {_three(three, 'peak_added_mb', '.0f')} |"
        )
    m = report["machine"]
    machine_line = (
        f"Machine: {m['nproc']} CPUs ({m['usable_cpus']} usable), {m['cpu']}, {m['ram']} RAM, Python {m['python']}; "
        f"load average before the run: {m['load_before']}."
    )
    budget = (
        f"Budget: {FPS:g} fps, at most {MAX_FRAMES} frames, {MIN_PIXELS // 784}..{MAX_PIXELS // 784} x 28 x 28 "
        f"pixels per frame. Load: URL on loopback HTTP to decoded frames, best of the runs, one at a "
        f"time; processor: transformers' Qwen2VLVideoProcessor on those frames, best of the runs; loads/s: "
        f"{CONCURRENCY} in flight (not run for the 10-minute clip). Speed-ups: the other's time over ours. "
        f"Decoded MB: the frames each loader hands on. Peak +MB: resident memory the best load "
        f"added, summed over this process and the decode workers (sampled every 20 ms, heap "
        f"trimmed before each run)."
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


def _ratio(ours: Row | None, other: Row | None, attr: str) -> str:
    """``other``'s value over ``ours`` (pass them swapped for rates, where higher is better)."""
    a = None if ours is None else getattr(ours, attr)
    b = None if other is None else getattr(other, attr)
    return "-" if not a or b is None else f"{b / a:.2f}x"


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

    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        # Large blocks straight from (and back to) the kernel, so each run's peak RSS is its
        # own, not hidden in heap a previous run freed but glibc kept.
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}
        os.execve(sys.executable, [sys.executable, "-m", "bench.media_bench"], env)

    smoke = os.environ.get("BENCH_SMOKE") == "1"
    quick = os.environ.get("BENCH_QUICK") == "1"
    out = Path(os.environ.get("BENCH_OUT", ROOT / "bench" / "results"))
    repeat = 1 if smoke else int(os.environ.get("BENCH_REPEAT", "2"))
    clips = [SMOKE] if smoke else [c for c in CLIPS if not (quick and c.long)]
    ensure_decord()
    asyncio.run(run(clips, repeat, None if smoke else CONCURRENCY, out))


if __name__ == "__main__":
    main()
