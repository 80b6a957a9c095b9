"""Prometheus metrics of one server, in their own registry (tests run several apps per process).

Every label has a bounded value set: routes are templates, statuses are HTTP codes, stages are
:data:`STAGES`, reasons are :mod:`~videomodel_server.tracing`'s abort reasons, admission's
rejection reasons or error codes from the closed error tree; never a URL, model input or request id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

STAGES = ("queue", "fetch", "probe", "decode", "render", "ttft", "generate", "total")
_STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300, 600)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "videomodel_requests", "Requests by route and HTTP status.", ["route", "status"], registry=r
        )
        self.admission_rejections = Counter(
            "videomodel_admission_rejections", "Requests refused by admission control.", ["reason"], registry=r
        )
        self.errors = Counter("videomodel_request_errors", "Requests failed, by error code.", ["code"], registry=r)
        self.stage_seconds = Histogram(
            "videomodel_stage_seconds",
            "Latency of each stage of a chat request (queue, fetch, probe, decode, render, ttft, generate, total).",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.video_seconds = Counter("videomodel_video_seconds", "Seconds of video accepted.", registry=r)
        self.video_frames = Counter("videomodel_video_frames", "Frames sampled and decoded.", registry=r)
        self.videos = Counter("videomodel_videos", "Videos decoded.", registry=r)
        self.images = Counter("videomodel_images", "Images decoded.", registry=r)
        self.frame_sequences = Counter(
            "videomodel_frame_sequence_videos",
            "Videos sent as pre-extracted JPEG frame sequences (data:video/jpeg) and decoded.",
            registry=r,
        )
        self.recovered_frames = Counter(
            "videomodel_recovered_frames",
            "Sampled frames that failed to decode and were filled with the next good frame (frame recovery).",
            registry=r,
        )
        self.tool_calls = Counter(
            "videomodel_tool_calls", "Tool calls returned in responses (finish_reason tool_calls).", registry=r
        )
        self.prompt_tokens = Counter("videomodel_prompt_tokens", "Prompt tokens (text and media).", registry=r)
        self.completion_tokens = Counter("videomodel_completion_tokens", "Completion tokens generated.", registry=r)
        self.engine_aborts = Counter(
            "videomodel_engine_aborts",
            "Engine requests aborted before they finished, by reason.",
            ["reason"],
            registry=r,
        )
        self.cancelled = Counter(
            "videomodel_requests_cancelled",
            "Requests cancelled before they finished, by the stage they were in and the reason.",
            ["stage", "reason"],
            registry=r,
        )
        self.clamps = Counter(
            "videomodel_clamped_requests", "Requests whose video knobs were clamped to the budget.", registry=r
        )
        self.in_flight = Gauge("videomodel_requests_in_flight", "Requests past admission.", registry=r)
        self.queued = Gauge("videomodel_requests_queued", "Requests waiting for admission.", registry=r)
        self.outstanding = Gauge(
            "videomodel_requests_outstanding",
            "Requests admitted or waiting for admission: the autoscaling signal. Unlike the in-flight "
            "gauge it is not capped by --max-concurrent-requests, so it exceeds that cap under overload.",
            registry=r,
        )
        self.engine_unfinished = Gauge(
            "videomodel_engine_unfinished_requests", "Requests the engine holds (running or waiting).", registry=r
        )
        self.engine_ready = Gauge("videomodel_engine_ready", "1 when the engine can serve.", registry=r)

    def bind(
        self,
        in_flight: Callable[[], float],
        queued: Callable[[], float],
        engine_unfinished: Callable[[], float],
        engine_ready: Callable[[], float],
    ) -> None:
        """Read the gauges from their sources at scrape time (no bookkeeping to drift)."""
        self.in_flight.set_function(in_flight)
        self.queued.set_function(queued)
        self.outstanding.set_function(lambda: in_flight() + queued())
        self.engine_unfinished.set_function(engine_unfinished)
        self.engine_ready.set_function(engine_ready)

    def bind_cache(self, lookups: Callable[[], dict[str, int]]) -> None:
        """Export the decoded-video cache's own counters at scrape time (``videomodel_video_cache_total``
        by ``result``: hit, miss, revalidated, uuid_hit, uuid_miss, eviction)."""
        self.registry.register(_CacheCollector(lookups))

    def observe_stages(self, timings: dict[str, float]) -> None:
        for stage, seconds in timings.items():
            if stage in STAGES:
                self.stage_seconds.labels(stage).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _CacheCollector(Collector):
    def __init__(self, lookups: Callable[[], dict[str, int]]) -> None:
        self._lookups = lookups

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "videomodel_video_cache",
            "Decoded-video cache lookups by result (hit, miss, uuid_hit, uuid_miss), hits whose URL "
            "answered 304 Not Modified (revalidated: nothing downloaded), and evictions.",
            labels=["result"],
        )
        for result, count in sorted(self._lookups().items()):
            family.add_metric([result], count)
        yield family

    def describe(self) -> Iterator[Metric]:
        return iter(())
