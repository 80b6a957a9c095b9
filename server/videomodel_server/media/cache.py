"""Decoded videos kept for reuse: a byte-bounded LRU keyed by content hash and sampling inputs.

Why: a client that sends the same video again (a follow-up question, a retry, several users on
one clip) would otherwise pay the probe and the whole decode again (issue 10: "a repeated video
costs no second fetch or decode"). The key is the SHA-256 of the bytes, so a URL whose content
changed is a miss, and the same bytes under two URLs (or a data URL) hit.

Repeated URLs skip the download too: an http(s) response's strong validators (:mod:`.validators`)
are remembered with its content hash (:meth:`VideoCache.remember_url`, at most ``max_ids`` URLs,
least recently used dropped first). The next fetch of that URL, while the frames are cached, is a
conditional GET, and a ``304`` serves the frames under the remembered hash with nothing
downloaded (``stats.revalidated``). A ``200`` replaces what was remembered.

The key also holds the clamped :class:`~.limits.SamplingBudget` and the requested frame count:
those, with the bytes, determine the probe, the plan (targets, geometry) and so the frames.
A budget or geometry change therefore never gets another budget's frames.

Cached arrays are shared by every request that hits them: they are made read-only. The cache is
pure bookkeeping (no I/O, no clock); :func:`content_digest` is the one blocking helper (run it
off the event loop). Bounded by ``MediaLimits.decode_cache_bytes`` (0 disables it).

Client-supplied ids (issue 12 item 3, vLLM's ``uuid`` on a content part): a video sent with a
``uuid`` and a URL is decoded as above and the id is then *bound* to its content key, under the
same sampling inputs (:class:`IdKey`); a later request may send the uuid alone and is served
from the entry without any fetch. The binding is only a pointer: the frames are counted once,
under the content key, and a binding whose entry was evicted is a miss. A uuid sent again with a
URL is rebound to that URL's content (the bytes a client sends win over a name, unlike vLLM,
which trusts the uuid). Ids are per server and the cache is shared by every client of it.

:meth:`CacheKey.stable_id` is what the engine is given as the item's ``multi_modal_uuids`` entry,
so vLLM's processor and prefix caches hit on a repeated video without hashing its frames.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from .limits import ClampedBudget, SamplingBudget
    from .probe import ProbeResult
    from .sampling import SamplingPlan
    from .validators import Validators

CHUNK = 1 << 22


def content_digest(fd: int, size: int) -> str:
    """SHA-256 of the first ``size`` bytes behind ``fd`` (positional reads: the offset is kept)."""
    digest = hashlib.sha256()
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(CHUNK, size - offset), offset)
        if not chunk:
            break
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class CacheKey:
    digest: str
    budget: SamplingBudget
    num_frames: int | None
    window: tuple[float | None, float | None] | None = None
    """The request's time window and the fps ceiling of ``num_frames`` (``plan_sampling``'s inputs)."""
    fps_ceiling: float | None = None

    @classmethod
    def of(
        cls,
        digest: str,
        clamp: ClampedBudget,
        window: tuple[float | None, float | None] | None,
        fps_ceiling: float | None,
    ) -> CacheKey:
        """The key of content ``digest`` sampled under a request's clamped budget (``""``: any content)."""
        return cls(digest, clamp.budget, clamp.num_frames, window, fps_ceiling)

    @property
    def stable_id(self) -> str:
        """An id of the frames this key determines (content, sampling budget, frame count, window),
        stable across requests and processes: the engine's ``multi_modal_uuids`` entry."""
        return "vm-" + hashlib.sha256(repr(self).encode()).hexdigest()[:40]


@dataclass(frozen=True)
class IdKey:
    """A client-supplied id under the sampling inputs of a :class:`CacheKey` (its ``digest`` empty)."""

    uuid: str
    sampling: CacheKey

    @classmethod
    def of(cls, uuid: str, key: CacheKey) -> IdKey:
        """The id ``uuid`` under the sampling of ``key`` (whatever content ``key`` names)."""
        return cls(uuid, replace(key, digest=""))


@dataclass(frozen=True)
class CachedVideo:
    """What a decode produced, enough to rebuild a :class:`~.pipeline.LoadedVideo`."""

    frames: npt.NDArray[np.uint8]
    times: tuple[float, ...]
    probe: ProbeResult
    plan: SamplingPlan
    frames_decoded: int
    worker_peak_rss_bytes: int
    recovered: tuple[int, ...] = ()
    """Frames filled by frame recovery (``DecodedFrames.recovered``); ``plan.frame_recovery`` says
    whether it was on (a hit decoded under the other setting is not used: see ``load_video``)."""

    def serves(self, frame_recovery: bool) -> bool:
        """Whether these frames answer a request with this frame-recovery setting: only when decoded
        under it (strict and recovering decodes of a damaged file keep different frames)."""
        return self.plan.frame_recovery == frame_recovery

    @property
    def nbytes(self) -> int:
        return int(self.frames.nbytes)


@dataclass
class CacheStats:
    """Counters for metrics (monotonic) and the current fill."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    entries: int = 0
    bytes: int = 0
    id_hits: int = 0
    id_misses: int = 0
    ids: int = 0
    revalidated: int = 0
    """Hits on a URL whose origin answered ``304 Not Modified`` (nothing downloaded)."""
    urls: int = 0
    """URLs whose validators are remembered."""


class VideoCache:
    """LRU of decoded videos holding at most ``max_bytes`` of frames (0: stores nothing).

    A video larger than the whole cache is not stored. Not thread-safe: use it from the event
    loop only (every method is a few dictionary operations).
    """

    def __init__(self, max_bytes: int, max_ids: int = 4096) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = max_bytes
        self.max_ids = max_ids
        self.stats = CacheStats()
        self._entries: OrderedDict[CacheKey, CachedVideo] = OrderedDict()
        self._ids: OrderedDict[IdKey, CacheKey] = OrderedDict()
        self._urls: OrderedDict[str, tuple[Validators, str]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def peek(self, key: CacheKey) -> CachedVideo | None:
        """The entry for ``key``, or None, without counting a hit or a miss or reordering."""
        return self._entries.get(key)

    def get(self, key: CacheKey) -> CachedVideo | None:
        """The cached video for ``key`` (now the most recently used), or None; counts hit/miss."""
        entry = self._entries.get(key)
        if entry is None:
            self.stats.misses += 1
            return None
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return entry

    def put(self, key: CacheKey, video: CachedVideo) -> CachedVideo:
        """Store ``video`` (its frames made read-only), evicting the least recently used."""
        video.frames.flags.writeable = False
        if video.nbytes > self.max_bytes:
            return video
        old = self._entries.pop(key, None)
        if old is not None:
            self.stats.bytes -= old.nbytes
        while self._entries and self.stats.bytes + video.nbytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.stats.bytes -= evicted.nbytes
            self.stats.evictions += 1
        self._entries[key] = video
        self.stats.bytes += video.nbytes
        self.stats.entries = len(self._entries)
        return video

    def bind(self, key: IdKey, content: CacheKey) -> bool:
        """Name the entry ``content`` by ``key`` (replacing what it named); False if ``content`` is
        not stored (too large for the cache, or the cache is off): the id then stays unbound.

        At most ``max_ids`` bindings are kept, least recently used dropped first.
        """
        self._ids.pop(key, None)
        if content not in self._entries:
            self.stats.ids = len(self._ids)
            return False
        self._ids[key] = content
        while len(self._ids) > self.max_ids:
            self._ids.popitem(last=False)
        self.stats.ids = len(self._ids)
        return True

    def lookup(self, key: IdKey) -> tuple[CacheKey, CachedVideo] | None:
        """The content key and entry ``key`` names, or None (unbound, or its entry was evicted)."""
        content = self._ids.get(key)
        entry = self._entries.get(content) if content is not None else None
        if content is None or entry is None:
            if content is not None:
                del self._ids[key]
                self.stats.ids = len(self._ids)
            self.stats.id_misses += 1
            return None
        self._ids.move_to_end(key)
        self._entries.move_to_end(content)
        self.stats.id_hits += 1
        return content, entry

    def remember_url(self, url: str, validators: Validators | None, digest: str) -> None:
        """Remember that ``url`` answered with ``validators`` and bytes hashing to ``digest``
        (None: it gave no strong validator, so anything remembered for it is dropped)."""
        self._urls.pop(url, None)
        if validators is not None and self.enabled:
            self._urls[url] = (validators, digest)
            while len(self._urls) > self.max_ids:
                self._urls.popitem(last=False)
        self.stats.urls = len(self._urls)

    def url_validators(self, url: str) -> tuple[Validators, str] | None:
        """The validators and content hash remembered for ``url``, or None."""
        found = self._urls.get(url)
        if found is not None:
            self._urls.move_to_end(url)
        return found

    def revalidated(self, key: CacheKey) -> CachedVideo | None:
        """The entry for ``key`` after its URL answered 304 (counted as a hit and a revalidation),
        or None if it was evicted meanwhile (the caller fetches the bytes)."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.stats.hits += 1
            self.stats.revalidated += 1
        return entry

    def clear(self) -> None:
        self._entries.clear()
        self._ids.clear()
        self._urls.clear()
        self.stats.urls = 0
        self.stats.ids = 0
        self.stats.bytes = 0
        self.stats.entries = 0
