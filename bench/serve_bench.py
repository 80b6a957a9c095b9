"""End to end on CPU, overload, repeated video (issue 10, benchmarks 2-4): ``python -m bench.serve_bench``.

Both servers run on the tiny random-weight Qwen2-VL checkpoint
(``videomodel_devtools.tiny_models``), started as subprocesses through their command lines:

- **videomodel**: ``python -m videomodel_server.cli`` with the budget below (flags), loopback
  exempted from the SSRF guard (``VIDEOMODEL_UNSAFE_MEDIA_EXEMPT_NETWORKS=127.0.0.1/32``);
- **vllm serve**: the same venv's ``vllm serve`` with exactly the engine flags this server gives
  its engine (``engine_argv(engine_config(settings, resolve_checkpoint(settings)))``) plus
  ``--media-io-kwargs '{"video": {"fps": 2, "num_frames": 8}}'`` so both sample the same frames.

Videos go by http URL from the bench's own loopback server (``bench.media_http``), which counts
the GETs and bytes served per URL.

1. **End to end** (benchmark 2): streaming chat completions (``stream=true``, ``max_tokens``
   small) at concurrency 1, 4 and 16: requests/s, p50/p95 latency, p50/p95 time to first token
   (first SSE chunk with text), errors. Every request gets its own clip (the same scene encoded at
   a different CRF/frame rate: different bytes and different decoded pixels), so neither this
   server's decoded-video cache nor vLLM's multimodal processor cache can hide any decode.
2. **Overload** (benchmark 3, this server only): a second start with a small admission cap
   (``--max-concurrent-requests 1 --max-queued-requests 1``), sent 4x its capacity at once, in
   waves: time to a 503 (p50/p99), and for every rejected request the GETs and bytes its unique
   URL was served (must be zero), and the server's decoded-video counter (``videomodel_videos``)
   against the number of accepted requests.
3. **Repeated video** (benchmark 4): one clip by the same URL 10 times, and another clip's bytes
   under 10 different URLs, one request at a time: first request, mean of the later ones, and
   how often each server fetched.

Environment: ``BENCH_SMOKE=1``: one start of this server only (the small cap), concurrency 1
with 2 requests, one overload wave, 3 repeats (what ``tests/bench`` runs); ``BENCH_SERVE_VLLM=0``
skips ``vllm serve``; ``BENCH_OUT`` overrides the output folder. Results:
``serve_bench.md``/``.json``/``.png`` in ``bench/results/``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.media_bench import ROOT, machine
from bench.media_http import CountingMediaServer

MODEL_NAME = "tiny"
FPS = 2
MAX_FRAMES = 8
BUDGET_FLAGS = (
    "--max-seconds", "10", "--fps", str(FPS), "--max-frames", str(MAX_FRAMES),
    "--min-pixels", str(4 * 28 * 28), "--max-pixels", str(64 * 28 * 28),
    "--max-prompt-tokens", "256", "--max-output-tokens", "16",
)  # fmt: skip
ENGINE_PASSTHROUGH = ("--", "--kv-cache-memory-bytes", str(256 * 1024**2), "--enforce-eager")
E2E_ADMISSION = ("--max-concurrent-requests", "4", "--max-queued-requests", "16")
"""This server's defaults (4 in flight, 16 waiting): room for concurrency 16 without a 503."""
SMALL_ADMISSION = ("--max-concurrent-requests", "1", "--max-queued-requests", "1")
MAX_TOKENS = 8
PROMPT = "Describe the video."
LEVELS = {1: 10, 4: 20, 16: 48}
"""Concurrency -> requests measured at that level."""
OVERLOAD_WAVES = 4
REPEATS = 10
STARTUP_S = 600
ENV = {"VIDEOMODEL_UNSAFE_MEDIA_EXEMPT_NETWORKS": "127.0.0.1/32"}


# -- clips -------------------------------------------------------------------------------------


def clip_variants(count: int) -> list[Path]:
    """``count`` distinct 4 s 640x360 H.264 clips (same scene; CRF 18..43, then 25, 26.. fps): distinct
    bytes and distinct decoded pixels, so no cache keyed on either can answer for another."""
    from videomodel_devtools.synthetic_videos import VideoSpec, make_video

    return [
        make_video(VideoSpec("h264", "mp4", 640, 360, 24 + i // 26, 4.0, crf=18 + i % 26, keyframe_interval=48))
        for i in range(count)
    ]


# -- the servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def videomodel_argv(model: Path, admission: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    return [
        "--model", str(model), "--served-model-name", MODEL_NAME, "--family", "qwen2_vl",
        *BUDGET_FLAGS, "--allow-http", *admission, *extra, *ENGINE_PASSTHROUGH,
    ]  # fmt: skip


def vllm_argv(model: Path) -> list[str]:
    """``vllm serve`` with the engine flags this server would give its own engine."""
    from videomodel_server.cli import parse_settings
    from videomodel_server.engine import engine_argv
    from videomodel_server.wiring import engine_config, resolve_checkpoint

    settings = parse_settings(videomodel_argv(model, E2E_ADMISSION), environ={})
    argv = engine_argv(engine_config(settings, resolve_checkpoint(settings)))
    assert argv[0] == "--model"
    argv[argv.index("--served-model-name") + 1] = MODEL_NAME
    media_io = {"video": {"fps": FPS, "num_frames": MAX_FRAMES}}
    return ["serve", argv[1], *argv[2:], "--media-io-kwargs", json.dumps(media_io)]


@dataclass
class Server:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    startup_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import httpx

        self.port = free_port()
        argv = [*self.argv, "--host", "127.0.0.1", "--port", str(self.port)]
        if "--" in self.argv:  # this server's engine passthrough comes last
            cut = self.argv.index("--")
            argv = [*self.argv[:cut], "--host", "127.0.0.1", "--port", str(self.port), *self.argv[cut:]]
        started = time.perf_counter()
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}, start_new_session=True
            )
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            with _quiet():
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    self.startup_s = time.perf_counter() - started
                    print(f"{self.name}: healthy after {self.startup_s:.0f} s", flush=True)
                    return
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"{self.name} not healthy in {STARTUP_S} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the engine core goes too
            self.proc.wait(timeout=10)


@contextmanager
def running(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _quiet() -> AbstractContextManager[None]:
    """A server still starting refuses connections."""
    return suppress(Exception)


def metric(url: str, name: str) -> float:
    """The sum of a Prometheus metric's samples (0 when absent)."""
    import httpx

    total = 0.0
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        head, _, value = line.rpartition(" ")
        if head == name or head.startswith(name + "{"):
            total += float(value)
    return total


def stage_totals(url: str) -> dict[str, tuple[float, float]]:
    """This server's ``videomodel_stage_seconds``: stage -> (sum of seconds, count)."""
    import httpx

    out: dict[str, list[float]] = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        for part, slot in (("_sum{", 0), ("_count{", 1)):
            if line.startswith("videomodel_stage_seconds" + part):
                stage = line.split('stage="', 1)[1].split('"', 1)[0]
                out.setdefault(stage, [0.0, 0.0])[slot] = float(line.rpartition(" ")[2])
    return {k: (v[0], v[1]) for k, v in out.items()}


# -- one request -------------------------------------------------------------------------------


@dataclass
class Result:
    url: str
    status: int
    latency_s: float
    ttft_s: float | None
    completion_tokens: int | None
    error: str | None = None
    prompt_tokens: int | None = None


def body(video_url: str, stream: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": MODEL_NAME,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "video_url", "video_url": {"url": video_url}}, {"type": "text", "text": PROMPT}],
            }
        ],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "stream": stream,
    }
    if stream:
        out["stream_options"] = {"include_usage": True}
    return out


async def ask(client: Any, base: str, video_url: str, stream: bool = True) -> Result:
    started = time.perf_counter()
    ttft = None
    tokens = prompt = None
    try:
        async with client.stream("POST", base + "/v1/chat/completions", json=body(video_url, stream)) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode(errors="replace")
                return Result(video_url, response.status_code, time.perf_counter() - started, None, None, text[:200])
            if not stream:
                data = json.loads(await response.aread())
                tokens = (data.get("usage") or {}).get("completion_tokens")
                return Result(video_url, 200, time.perf_counter() - started, None, tokens)
            error = None
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    error = str(chunk["error"])[:200]
                if ttft is None and any((c.get("delta") or {}).get("content") for c in chunk.get("choices", [])):
                    ttft = time.perf_counter() - started
                if chunk.get("usage"):
                    tokens = chunk["usage"].get("completion_tokens")
                    prompt = chunk["usage"].get("prompt_tokens")
            return Result(video_url, 200, time.perf_counter() - started, ttft, tokens, error, prompt)
    except Exception as exc:  # reported as an error of the run
        return Result(video_url, 0, time.perf_counter() - started, None, None, repr(exc)[:200])


def client() -> Any:
    import httpx

    return httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=256, max_keepalive_connections=256))


def pct(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default)."""
    if not values:
        return None
    import numpy as np

    return float(np.percentile(values, q))


# -- benchmark 2: end to end -------------------------------------------------------------------


async def load_level(base: str, urls: list[str], concurrency: int) -> dict[str, Any]:
    queue = list(urls)
    results: list[Result] = []
    async with client() as http:

        async def worker() -> None:
            while queue:
                results.append(await ask(http, base, queue.pop(0)))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    ok = [r for r in results if r.status == 200 and r.error is None]
    lat = [r.latency_s for r in ok]
    ttft = [r.ttft_s for r in ok if r.ttft_s is not None]
    return {
        "concurrency": concurrency,
        "requests": len(results),
        "errors": len(results) - len(ok),
        "error_samples": sorted({f"{r.status}: {r.error}" for r in results if r not in ok})[:3],
        "wall_s": wall,
        "rps": len(ok) / wall,
        "p50_s": pct(lat, 50),
        "p95_s": pct(lat, 95),
        "ttft_p50_s": pct(ttft, 50),
        "ttft_p95_s": pct(ttft, 95),
        "completion_tokens_mean": statistics.fmean([r.completion_tokens or 0 for r in ok]) if ok else None,
        "prompt_tokens_mean": statistics.fmean([r.prompt_tokens or 0 for r in ok]) if ok else None,
    }


async def end_to_end(
    server: Server, media: CountingMediaServer, clips: list[Path], levels: dict[int, int]
) -> list[dict[str, Any]]:
    """Each request its own clip (``clips`` in order, never one twice)."""
    async with client() as http:  # warm-up: one request on a clip nothing else uses
        warm = await ask(http, server.url, media.url(f"{server.name}-warm", clips[0]))
        if warm.status != 200:
            raise RuntimeError(f"{server.name} warm-up failed: {warm}")
    out = []
    used = 1
    ours = server.name == "videomodel"
    for concurrency, count in levels.items():
        before = stage_totals(server.url) if ours else {}
        urls = [media.url(f"{server.name}-e2e", c) for c in clips[used : used + count]]
        assert len(urls) == count, "not enough clip variants"
        used += count
        row = await load_level(server.url, urls, concurrency)
        row["server"] = server.name
        row["fetches"] = sum(media.served(u)[0] for u in urls)
        if ours:  # where this server's time went: mean seconds per stage over the level's requests
            after = stage_totals(server.url)
            row["stages_mean_s"] = {
                k: (v[0] - before.get(k, (0, 0))[0]) / (v[1] - before.get(k, (0, 0))[1])
                for k, v in after.items()
                if v[1] > before.get(k, (0, 0))[1]
            }
        print(
            f"  {server.name:11s} c={concurrency:2d}: {row['rps']:5.2f} req/s, p50 {row['p50_s'] or 0:.2f} s, "
            f"p95 {row['p95_s'] or 0:.2f} s, ttft p50 {row['ttft_p50_s'] or 0:.2f} s, errors {row['errors']}",
            flush=True,
        )
        out.append(row)
    return out


# -- benchmark 3: overload ---------------------------------------------------------------------


async def overload(server: Server, media: CountingMediaServer, clip: Path, capacity: int, waves: int) -> dict[str, Any]:
    """``4 * capacity`` requests at once per wave, each by a URL of its own."""
    results: list[Result] = []
    async with client() as http:
        warm = await ask(http, server.url, media.url("overload-warm", clip), stream=False)  # not counted
        if warm.status != 200:
            raise RuntimeError(f"{server.name} warm-up failed: {warm}")
        videos_before = metric(server.url, "videomodel_videos_total")
        for wave in range(waves):
            urls = [media.url(f"overload-{wave}-{i}", clip) for i in range(4 * capacity)]
            results += await asyncio.gather(*(ask(http, server.url, u, stream=False) for u in urls))
    decoded = metric(server.url, "videomodel_videos_total") - videos_before
    rejected = [r for r in results if r.status == 503]
    accepted = [r for r in results if r.status == 200]
    served = [media.served(r.url) for r in rejected]
    out = {
        "capacity": capacity,
        "sent": len(results),
        "waves": waves,
        "accepted": len(accepted),
        "rejected": len(rejected),
        "other": len(results) - len(accepted) - len(rejected),
        "reject_p50_ms": 1000 * (pct([r.latency_s for r in rejected], 50) or 0),
        "reject_p99_ms": 1000 * (pct([r.latency_s for r in rejected], 99) or 0),
        "reject_max_ms": 1000 * max((r.latency_s for r in rejected), default=0),
        "rejected_gets": sum(g for g, _ in served),
        "rejected_bytes": sum(b for _, b in served),
        "accepted_gets": sum(media.served(r.url)[0] for r in accepted),
        "videos_decoded": decoded,
        "reject_ms": [round(1000 * r.latency_s, 2) for r in rejected],
        "reject_ms_by_wave": [
            [
                round(1000 * r.latency_s, 2)
                for r in results[w * 4 * capacity : (w + 1) * 4 * capacity]
                if r.status == 503
            ]
            for w in range(waves)
        ],
    }
    print(f"  overload: { {k: v for k, v in out.items() if not k.startswith('reject_ms')} }", flush=True)
    return out


# -- benchmark 4: repeated video ---------------------------------------------------------------


async def repeated(
    server: Server, media: CountingMediaServer, same_url: Path, same_bytes: Path, times: int
) -> dict[str, Any]:
    out: dict[str, Any] = {"server": server.name}
    async with client() as http:
        for kind, urls in (
            ("same URL", [media.url(f"{server.name}-same", same_url)] * times),
            ("same bytes, new URLs", [media.url(f"{server.name}-bytes-{i}", same_bytes) for i in range(times)]),
        ):
            results = [await ask(http, server.url, u) for u in urls]
            lat = [r.latency_s for r in results]
            out[kind] = {
                "first_s": lat[0],
                "later_mean_s": statistics.fmean(lat[1:]) if len(lat) > 1 else None,
                "later_s": lat[1:],
                "errors": sum(r.status != 200 or r.error is not None for r in results),
                "gets": sum(media.served(u)[0] for u in dict.fromkeys(urls)),
                "not_modified": sum(media.unmodified(u) for u in dict.fromkeys(urls)),
                "bytes": sum(media.served(u)[1] for u in dict.fromkeys(urls)),
            }
            later = out[kind]["later_mean_s"] or 0
            print(f"  {server.name:11s} {kind}: first {lat[0]:.2f} s, later {later:.3f} s mean, "
                  f"{out[kind]['gets']} GETs, {out[kind]['not_modified']} answered 304", flush=True)  # fmt: skip
    return out


# -- the run -----------------------------------------------------------------------------------


async def run(smoke: bool, with_vllm: bool, out: Path) -> dict[str, Any]:
    from videomodel_devtools.tiny_models import tiny_model_dir

    info = machine()
    model = tiny_model_dir("qwen2_vl")
    levels = {1: 2} if smoke else LEVELS
    waves = 1 if smoke else OVERLOAD_WAVES
    times = 3 if smoke else REPEATS
    clips = clip_variants(1 + sum(levels.values()) + 2)
    e2e_clips, same_url, same_bytes = clips[:-2], clips[-2], clips[-1]
    logs = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    report: dict[str, Any] = {"machine": info, "smoke": smoke, "e2e": [], "repeated": [], "overload": None}
    vm = [sys.executable, "-m", "videomodel_server.cli"]
    small_capacity = int(SMALL_ADMISSION[1]) + int(SMALL_ADMISSION[3])
    with CountingMediaServer(clips[0].parent) as media:
        if smoke:  # one start, no warm-up run: the small cap serves every part at concurrency 1
            argv = videomodel_argv(model, SMALL_ADMISSION, ("--skip-warmup",))
            server = Server("videomodel", [*vm, *argv], logs / "vm.log", ENV)
            with running(server):
                report["e2e"] += await end_to_end(server, media, e2e_clips, levels)
                report["overload"] = await overload(server, media, e2e_clips[0], small_capacity, waves)
                report["repeated"].append(await repeated(server, media, same_url, same_bytes, times))
        else:
            server = Server("videomodel", [*vm, *videomodel_argv(model, E2E_ADMISSION)], logs / "vm.log", ENV)
            with running(server):
                report["e2e"] += await end_to_end(server, media, e2e_clips, levels)
                report["repeated"].append(await repeated(server, media, same_url, same_bytes, times))
            small = Server("videomodel", [*vm, *videomodel_argv(model, SMALL_ADMISSION)], logs / "vm-small.log", ENV)
            with running(small):
                report["overload"] = await overload(small, media, e2e_clips[0], small_capacity, waves)
        if with_vllm:
            # vLLM's own CLI; bench.vllm_cli only answers its version lookup in this CPU build
            server = Server(
                "vllm serve", [sys.executable, "-m", "bench.vllm_cli", *vllm_argv(model)], logs / "vllm.log"
            )
            report["vllm_argv"] = ["vllm", *server.argv[3:]]
            try:
                with running(server):
                    report["e2e"] += await end_to_end(server, media, e2e_clips, levels)
                    report["repeated"].append(await repeated(server, media, same_url, same_bytes, times))
            except RuntimeError as exc:  # the report keeps this server's numbers and says why
                report["vllm_error"] = str(exc)[-2000:]
                print(f"vllm serve failed: {exc}", flush=True)
    info["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    report["videomodel_argv"] = videomodel_argv(Path("<tiny qwen2_vl>"), E2E_ADMISSION)
    write_report(report, out)
    return report


# -- reporting ---------------------------------------------------------------------------------


def _f(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def table(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"Machine: {m['nproc']} CPUs ({m['usable_cpus']} usable), {m['cpu']}, {m['ram']} RAM, Python {m['python']}; "
        f"load average at the start: {m['load_before']}, at the end: {m['load_after']} (a shared machine: "
        f"compare the ratios of one run, never numbers across runs).",
        "",
        f"Tiny random-weight Qwen2-VL checkpoint on CPU; budget {FPS} fps, at most {MAX_FRAMES} frames, "
        f"4..64 x 28 x 28 pixels per frame; 4 s 640x360 H.264 clips by http URL on loopback, each request "
        f"its own clip (distinct bytes and pixels: no cache answers); streaming, max_tokens {MAX_TOKENS}, "
        f"temperature 0. This server: admission {' '.join(E2E_ADMISSION)} (its defaults). `vllm serve`: "
        f"the same engine flags plus --media-io-kwargs (fps {FPS}, num_frames {MAX_FRAMES}).",
        "",
        "## End to end (benchmark 2)",
        "",
        "| server | concurrency | requests | req/s | p50 latency | p95 latency | TTFT p50 | TTFT p95 | errors "
        "| prompt tokens (mean) | video fetches |",
        "|" + "---|" * 11,
    ]
    by: dict[tuple[str, int], dict[str, Any]] = {}
    for r in report["e2e"]:
        by[(r["server"], r["concurrency"])] = r
        lines.append(
            f"| {r['server']} | {r['concurrency']} | {r['requests']} | {r['rps']:.2f} | {_f(r['p50_s'])} s "
            f"| {_f(r['p95_s'])} s | {_f(r['ttft_p50_s'])} s | {_f(r['ttft_p95_s'])} s | {r['errors']} "
            f"| {_f(r.get('prompt_tokens_mean'), '.0f')} | {r.get('fetches', '-')} |"
        )
    stages = [r for r in report["e2e"] if r.get("stages_mean_s")]
    if stages:
        names = list(stages[0]["stages_mean_s"])
        lines += [
            "",
            "This server's stages (its `videomodel_stage_seconds`, mean per request at each level; ttft and "
            "total count from the request's arrival, so they include the stages before them):",
            "",
            "| concurrency | " + " | ".join(names) + " |",
            "|" + "---|" * (len(names) + 1),
        ]
        for r in stages:
            lines.append(
                f"| {r['concurrency']} | "
                + " | ".join(f"{1000 * r['stages_mean_s'].get(n, 0):.0f} ms" for n in names)
                + " |"
            )
    ratios = []
    for (name, c), ours in by.items():
        other = by.get(("vllm serve", c))
        if name != "videomodel" or other is None:
            continue
        rps = ours["rps"] / other["rps"] if other["rps"] else None
        p95 = other["p95_s"] / ours["p95_s"] if ours["p95_s"] and other["p95_s"] else None
        ratios.append(f"concurrency {c}: req/s {_f(rps)}x, p95 {_f(p95)}x")
    if ratios:
        lines += [
            "",
            "Ratios (req/s: this server's over `vllm serve`'s; p95: `vllm serve`'s over this server's; "
            "above 1: this server better): " + "; ".join(ratios) + ".",
        ]
    if report.get("vllm_error"):
        lines += ["", f"`vllm serve` did not run: {report['vllm_error'].splitlines()[0]}"]
    o = report.get("overload")
    if o:
        lines += [
            "",
            "## Overload (benchmark 3, this server)",
            "",
            f"Admission {' '.join(SMALL_ADMISSION)} (capacity {o['capacity']}); {o['waves']} wave(s) of "
            f"{4 * o['capacity']} requests at once (4x capacity), each request by its own URL, non-streaming, "
            "after one warm-up request. Time to 503: the client's clock, request sent to response read.",
            "",
            "| sent | accepted | rejected (503) | other | time to 503 p50 | p99 | max "
            "| GETs / bytes served to rejected URLs | GETs of accepted URLs | videos decoded |",
            "|" + "---|" * 10,
            f"| {o['sent']} | {o['accepted']} | {o['rejected']} | {o['other']} | {o['reject_p50_ms']:.1f} ms "
            f"| {o['reject_p99_ms']:.1f} ms | {o['reject_max_ms']:.1f} ms | {o['rejected_gets']} / "
            f"{o['rejected_bytes']} | {o['accepted_gets']} | {o['videos_decoded']:.0f} |",
        ]
        waves = [w for w in o.get("reject_ms_by_wave", []) if w]
        if len(waves) > 1:
            later = [ms for w in waves[1:] for ms in w]
            lines += [
                "",
                "By wave: the first (the client opening new connections) "
                f"{min(waves[0]):.1f}-{max(waves[0]):.1f} ms to a 503; the later ones (kept-alive connections) "
                f"{min(later):.1f}-{max(later):.1f} ms.",
            ]
    if report["repeated"]:
        lines += [
            "",
            "## Repeated video (benchmark 4)",
            "",
            "One request at a time, streaming. Same URL: one clip's URL N times; same bytes: another "
            "clip under N different URLs. GETs: requests the bench's media server answered (it sends a "
            "strong ETag, as nginx and object stores do); 304: those answered Not Modified, with no body.",
            "",
            "| server | case | first request | later ones (mean) | later / first | GETs | of them 304 | MB sent "
            "| errors |",
            "|" + "---|" * 9,
        ]
        for r in report["repeated"]:
            for kind in ("same URL", "same bytes, new URLs"):
                k = r[kind]
                n = len(k["later_s"]) + 1
                ratio = k["later_mean_s"] / k["first_s"] if k["later_mean_s"] and k["first_s"] else None
                lines.append(
                    f"| {r['server']} | {kind} (x{n}) | {k['first_s']:.3f} s | {_f(k['later_mean_s'], '.3f')} s "
                    f"| {_f(ratio)} | {k['gets']} | {k.get('not_modified', '-')} "
                    f"| {_f(k['bytes'] / 1e6 if 'bytes' in k else None)} | {k['errors']} |"
                )
    return "\n".join([*lines, ""])


def bar_chart(report: dict[str, Any], path: Path) -> None:
    """p50 and p95 latency per concurrency level and server, in bench/plot.py's style."""
    from PIL import Image, ImageDraw, ImageFont

    from bench.plot import COLOURS

    servers = list(dict.fromkeys(r["server"] for r in report["e2e"]))
    series = [(s, q) for s in servers for q in ("p50_s", "p95_s")]
    groups: dict[str, dict[tuple[str, str], float]] = {}
    for r in report["e2e"]:
        for q in ("p50_s", "p95_s"):
            if r[q] is not None:
                groups.setdefault(f"concurrency {r['concurrency']}", {})[(r["server"], q)] = r[q]
    rps = {(r["server"], r["concurrency"]): r["rps"] for r in report["e2e"]}
    bar_h, gap, left, right, top = 14, 18, 230, 160, 60
    width = 1100
    height = top + len(groups) * (len(series) * bar_h + gap) + 40
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    top_value = max((v for g in groups.values() for v in g.values()), default=1.0) or 1.0
    scale = (width - left - right) / top_value
    m = report["machine"]
    draw.text(
        (10, 8),
        f"End to end, tiny Qwen2-VL on CPU: request latency, seconds (lower is better); req/s at the right. "
        f"{m['nproc']} CPUs, {m['cpu']}, load {m['load_before'].split()[0]}",
        fill="black",
        font=font,
    )
    for i, (server, q) in enumerate(series):
        x = 10 + i * 200
        draw.rectangle((x, 30, x + 12, 42), fill=COLOURS[i % len(COLOURS)])
        draw.text((x + 18, 30), f"{server} {q[:3]}", fill="black", font=font)
    y = top
    for group, values in groups.items():
        draw.text((10, y + len(series) * bar_h // 2 - 6), group, fill="black", font=font)
        for i, key in enumerate(series):
            value = values.get(key)
            if value is not None:
                end = left + max(1, int(value * scale))
                draw.rectangle((left, y, end, y + bar_h - 2), fill=COLOURS[i % len(COLOURS)])
                label = f"{value:.2f} s"
                if key[1] == "p50_s":
                    label += f"  ({rps.get((key[0], int(group.split()[-1])), 0):.2f} req/s)"
                draw.text((end + 4, y), label, fill="black", font=font)
            y += bar_h
        y += gap
    img.save(path)


def write_report(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve_bench.json").write_text(json.dumps(report, indent=1, default=str))
    text = table(report)
    (out / "serve_bench.md").write_text("# End to end, overload, repeated video (`make bench-serve`)\n\n" + text)
    bar_chart(report, out / "serve_bench.png")
    print("\n" + text)
    print(f"written: {out}/serve_bench.md, serve_bench.json, serve_bench.png")


def main() -> None:
    smoke = os.environ.get("BENCH_SMOKE") == "1"
    with_vllm = os.environ.get("BENCH_SERVE_VLLM", "0" if smoke else "1") == "1"
    out = Path(os.environ.get("BENCH_OUT", ROOT / "bench" / "results"))
    asyncio.run(run(smoke, with_vllm, out))


if __name__ == "__main__":
    main()
