"""Every limit of the media pipeline, named and typed, with safe defaults, in one place.

``MediaLimits`` is what the fetch/probe/decode stages enforce (bytes, seconds, addresses,
deadlines, worker resources); ``SamplingBudget`` is the part of the video budget that decides
*which* frames and *what size* (fps, frames, pixels, the family's pixels-per-token factor). The
server builds both once at start-up from its flags / the budget Plan; per-request client knobs
arrive as ``SamplingOverrides`` and are clamped to the budget, never beyond it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from videomodel_server.budget import (
    FamilyGeometry,
    VideoBudget,
    fetch_timeout,
    most_sampled_frames,
)
from videomodel_server.budget.knobs import SamplingKnobs, ceiling, narrow

MiB = 1024**2
GiB = 1024**3


@dataclass(frozen=True)
class MediaLimits:
    """Limits for fetching, probing and decoding one media item. All units in the field name."""

    max_video_bytes: int = 256 * MiB
    """Largest video download / data URL / local file (the budget's max_video_bytes)."""
    max_image_bytes: int = 20 * MiB
    max_seconds: float = 600.0
    """Longest video accepted (the budget's max_seconds)."""

    # -- fetch
    allow_http: bool = True
    """Plain ``http://`` URLs (``https`` is always allowed). Redirects https->http need it too."""
    allow_data_urls: bool = True
    allowed_domains: tuple[str, ...] = ()
    """If set, hosts must equal one of these or be a subdomain of one. Narrows the address
    check; never replaces it."""
    allowed_local_root: Path | None = None
    """``file://`` URLs are accepted only under this directory; None disables them."""
    allow_private_addresses: bool = False
    """TESTS ONLY: let fetches reach any loopback/private address (a local test server)."""
    exempt_networks: tuple[str, ...] = ()
    """TESTS ONLY: CIDRs exempt from the address check (e.g. ``("127.0.0.1/32",)`` for one
    loopback server, while every other private address stays refused)."""
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 10.0
    """Longest silence between two received chunks."""
    fetch_timeout_seconds: float = 60.0
    """Whole fetch, every redirect hop included (the Plan's fetch_timeout_seconds)."""
    max_redirects: int = 3
    user_agent: str = "videomodel-media/1"

    # -- probe
    max_streams: int = 8
    """Streams of any kind in one container."""
    max_source_width: int = 8192
    max_source_height: int = 8192
    max_source_pixels: int = 7680 * 4320
    """Source frame area (8K UHD); each decoded source frame is held in a worker once."""
    max_source_fps: float = 480.0
    """Declared frame rates above this are refused: decoding walks every frame."""
    max_probe_packets: int = 200_000
    """When the header has no duration, at most this many packets are walked to find it."""

    # -- decode
    decode_workers: int = 2
    """Worker processes in the decode pool."""
    decode_timeout_seconds: float = 60.0
    """Per video (probe and decode each get this much); the worker is killed past it."""
    decode_memory_bytes: int = 3 * GiB
    """Private writable memory limit (RLIMIT_DATA) of each worker process."""
    decode_threads: int = 0
    """CPU threads of a lone decode (one resizes, the rest run FFmpeg); decodes running at once
    divide them (a lone request decodes on every core; busy workers share the cores instead of
    each starting a thread per core). 0: one per CPU this process may use."""
    decode_cache_bytes: int = 1 * GiB
    """Decoded videos kept for reuse (content hash + sampling plan; LRU); 0 disables the cache."""
    frame_recovery: bool = False
    """The default of vLLM's ``frame_recovery`` (a request's ``media_io_kwargs.video.frame_recovery``
    overrides it): fill a target frame that fails to decode with the next good frame before the
    next target. Off (strict): such a target shows the frame before it, and more than a few
    undecodable packets refuse the video (see ``decode.py``)."""

    # -- images
    max_image_pixels: int = 64 * 1024 * 1024
    """Decoded image area cap (PIL's decompression-bomb guard is set to this)."""

    @classmethod
    def from_budget(cls, budget: VideoBudget, **overrides: Any) -> MediaLimits:
        """Limits a declared budget implies (seconds, bytes, fetch deadline), plus overrides."""
        values: dict[str, Any] = {
            "max_seconds": budget.max_seconds,
            "max_video_bytes": budget.max_video_bytes,
            "fetch_timeout_seconds": fetch_timeout(budget),
        }
        values.update(overrides)
        return cls(**values)

    def __post_init__(self) -> None:
        if self.decode_threads < 0 or self.decode_cache_bytes < 0:
            raise ValueError("decode_threads and decode_cache_bytes must be >= 0")
        if self.max_redirects < 0 or self.decode_workers < 1:
            raise ValueError("max_redirects must be >= 0 and decode_workers >= 1")
        object.__setattr__(self, "allowed_domains", tuple(d.strip().lower().strip(".") for d in self.allowed_domains))
        for network in self.exempt_networks:
            ipaddress.ip_network(network)  # ValueError on a typo, at start-up


@dataclass(frozen=True)
class SamplingBudget:
    """Which frames and what size: qwen-vl-utils inputs for one video.

    ``factor`` is the family's pixels per token side (28 for Qwen2/2.5-VL, 32 for Qwen3-VL).
    ``max_frames`` caps sampled frames; ``max_seconds`` with ``fps`` gives the worst case the
    Plan priced (``frame_cap``), which per-request overrides may not exceed.
    """

    fps: float
    max_frames: int
    min_pixels: int
    max_pixels: int
    factor: int
    total_pixels: int | None = None
    max_seconds: float = 600.0

    @classmethod
    def from_budget(cls, budget: VideoBudget, geometry: FamilyGeometry) -> SamplingBudget:
        """The sampling part of a declared budget, family pixel defaults filled in."""
        resolved = budget.resolved(geometry)
        shared = {f.name: getattr(resolved, f.name) for f in fields(cls) if hasattr(resolved, f.name)}
        return cls(factor=geometry.factor, **shared)

    @property
    def frame_cap(self) -> int:
        """Most frames any in-budget video samples (the Plan's ``frames_per_video``)."""
        return most_sampled_frames(self.max_seconds, self.fps, self.max_frames)


SamplingOverrides = SamplingKnobs
"""Per-request knobs (``media_io_kwargs.video`` / ``mm_processor_kwargs``); None = the budget's."""


@dataclass(frozen=True)
class ClampedBudget:
    """The budget a request actually gets, the frame count it asked for, and what was clamped."""

    budget: SamplingBudget
    num_frames: int | None
    clamped: list[str] = field(default_factory=list)


def apply_overrides(budget: SamplingBudget, overrides: SamplingOverrides | None) -> ClampedBudget:
    """Honour client knobs inside the budget and clamp the rest (each clamp is reported).

    The budget's knobs narrowed by :func:`~videomodel_server.budget.knobs.narrow` (the one rule,
    and the one note format, of the request path too), the budget's ``frame_cap`` capping
    ``num_frames``. Raises ``KnobConflict`` (a ``ValueError``) for an asked ``min_pixels`` above
    the ``max_pixels`` in force.
    """
    if overrides is None:
        return ClampedBudget(budget, None, [])
    knobs, clamped = narrow(overrides, ceiling(budget, budget.frame_cap), SamplingKnobs())
    narrowed = {name: value for name, value in vars(knobs).items() if value is not None and hasattr(budget, name)}
    return ClampedBudget(replace(budget, **narrowed), knobs.num_frames, clamped)
