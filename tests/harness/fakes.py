"""Stand-ins for the engine and the media loader, for API-shape and error tests only.

They implement the server's own seams (``Engine``, ``MediaLoader``); the acceptance tests of
real video requests use the real vLLM engine and the real media pipeline (test_engine_*.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

import numpy as np

from videomodel_server.engine import ChoiceDelta, EngineInput, EngineStep, TokenLogprobInfo, template_messages
from videomodel_server.errors import UnprocessableMedia
from videomodel_server.jobs import MediaRef, Sampling, ToolCall, Turn
from videomodel_server.loading import LoadedMedia, MediaEstimate, SamplingReceipt


@dataclass
class FakeEngine:
    words: tuple[str, ...] = ("hello", " world", " from", " a", " fake", " engine")
    delay: float = 0.0
    is_ready: bool = True
    started: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    inputs: list[EngineInput] = field(default_factory=list)
    running: int = 0

    @property
    def ready(self) -> bool:
        return self.is_ready

    @property
    def dead(self) -> bool:
        return False

    def unfinished_requests(self) -> int:
        return self.running

    async def start(self) -> None:
        return None

    def render(self, turns: Sequence[Turn], tools: str | None = None) -> str:
        out = []
        for m in template_messages(turns):
            content = m["content"]
            if isinstance(content, str):
                out.append(f"<{m['role']}>{content}")
            else:
                text = "".join(c.get("text", f"[{c['type']}]") for c in content)
                out.append(f"<{m['role']}>{text}")
        return "".join(out) + "<assistant>"

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def parse_tool_calls(self, text: str) -> tuple[str | None, tuple[ToolCall, ...]]:
        return text, ()

    def media_placeholder_tokens(self) -> int:
        return 0

    async def generate(
        self, request: EngineInput, sampling: Sampling, request_id: str
    ) -> AsyncGenerator[EngineStep, None]:
        self.started.append(request_id)
        self.inputs.append(request)
        self.running += 1
        prompt_tokens = self.count_tokens(request.prompt) + sum(int(v.frames.shape[0]) for v in request.videos)
        try:
            words = self.words[: sampling.max_tokens]
            for i, word in enumerate(words):
                if self.delay:
                    await asyncio.sleep(self.delay)
                last = i == len(words) - 1
                lp = (TokenLogprobInfo(word, -0.5, ((word, -0.5),)),) if sampling.logprobs is not None else None
                yield EngineStep(
                    prompt_tokens=prompt_tokens,
                    choices=tuple(
                        ChoiceDelta(
                            index=c,
                            text=word,
                            tokens=1,
                            finish_reason=("length" if len(words) < len(self.words) else "stop") if last else None,
                            logprobs=lp,
                        )
                        for c in range(sampling.n)
                    ),
                )
            self.finished.append(request_id)
        except (asyncio.CancelledError, GeneratorExit):
            self.aborted.append(request_id)
            raise
        finally:
            self.running -= 1

    async def shutdown(self) -> None:
        return None


@dataclass
class FakeLoader:
    delay: float = 0.0
    hold: threading.Event | None = None
    """Loads wait until this is set (from the test thread)."""
    calls: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def check(self, ref: MediaRef) -> None:
        return None

    async def load(self, ref: MediaRef) -> LoadedMedia:
        self.calls.append(ref.url)
        try:
            while self.hold is not None and not self.hold.is_set():
                await asyncio.sleep(0.01)
            if self.delay:
                await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled.append(ref.url)
            raise
        if ref.url.endswith("bad.mp4"):
            raise UnprocessableMedia("video could not be decoded", code="invalid_video")
        if ref.kind == "image":
            return LoadedMedia(ref, np.zeros((56, 56, 3), np.uint8), timings={"fetch": 0.001, "decode": 0.001})
        n = ref.options.num_frames if ref.options and ref.options.num_frames else 4
        frames = np.zeros((n, 56, 56, 3), np.uint8)
        meta = {"fps": 2.0, "frames_indices": list(range(n)), "total_num_frames": n, "duration": n / 2}
        return LoadedMedia(
            ref,
            frames,
            metadata=meta,
            sample_fps=2.0,
            duration=n / 2,
            timings={"fetch": 0.001, "probe": 0.001, "decode": 0.002},
            receipt=_receipt(n),
        )

    async def estimate(self, ref: MediaRef) -> MediaEstimate:
        """As :meth:`load` without frames; ``.../long.mp4`` is a video over the budget."""
        self.calls.append(ref.url)
        while self.hold is not None and not self.hold.is_set():
            await asyncio.sleep(0.01)
        if ref.url.endswith("bad.mp4"):
            raise UnprocessableMedia("video could not be decoded", code="invalid_video")
        if ref.url.endswith("long.mp4"):
            return MediaEstimate(ref, problem="video is 312.4 s long; this model accepts at most 20 s")
        if ref.kind == "image":
            return MediaEstimate(ref)
        n = ref.options.num_frames if ref.options and ref.options.num_frames else 4
        return MediaEstimate(ref, _receipt(n), timings={"fetch": 0.001, "probe": 0.001})

    def cache_lookups(self) -> dict[str, int]:
        return {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


def _receipt(n: int) -> SamplingReceipt:
    """The fake video's receipt: n frames of 56x56 at 2 fps, from a clip of n / 2 seconds."""
    return SamplingReceipt(
        frames=n,
        height=56,
        width=56,
        sample_fps=2.0,
        duration=n / 2,
        timestamps=tuple(i / 2 for i in range(n)),
        label_seconds=n / 2,
        binding=("frames set by fps (--fps)=2",),
    )
