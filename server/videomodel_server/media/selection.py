"""Which decoded frames to keep (pure): the decision half of :func:`.decode.decode_frames`.

:class:`FrameSelector` is fed the decoder's frames in the order they come out, each with its
time on the stream clock, and answers with the frames to keep. For each target time it keeps
the frame on screen at that instant: the **last frame whose time is <= target + tolerance**
(a target before the first frame gets the first frame). A target is filled as soon as a frame
*past* it arrives (the previous frame was on screen at the target), so the selector holds at
most one candidate frame at a time. Frames are opaque here (any object): the PyAV loop decides
how to read them, the selector only which ones, and when to seek.

Seeking: when the next target is more than ``seek_gap`` seconds past the current frame, the
selector asks the caller to seek (to the keyframe before that target) instead of decoding
through the gap; it asks once per target, and stops asking for the rest of the stream as soon
as one seek did not land past where decoding was (keyframes too sparse to pay off) or failed.

At the end of the stream the last frame stays on screen for any targets left, unless the
stream ended well before the last target (``TRUNCATION_SLACK``): that file is refused as
truncated rather than padded with repeats.

Frame recovery (vLLM's ``frame_recovery``): the caller reports each frame that failed to decode
(:meth:`FrameSelector.lost`, at its packet's time). Strict (the default), a target whose frame
was lost shows the frame before it, as a player concealing the error would. With ``recovery``, it
is filled instead with the next frame that decodes *before the next target* (vLLM's forward
scan), at that frame's true time, and its position is listed in :attr:`FrameSelector.recovered`;
when none comes in time it falls back to the frame before.

No I/O and no PyAV here; ``tests/media/test_selection.py`` property-tests it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from .errors import InvalidVideo

if TYPE_CHECKING:
    from .sampling import SamplingPlan

F = TypeVar("F")

SKIP_WINDOW_FRAMES = 2.5
"""A frame more than this many source frame intervals before the next target cannot be the one
on screen at it (a later frame comes first): its decoding may be skipped when nothing refers to
it (constant-rate streams only, where no gap between two frames is that long)."""
SEEK_GAP_SECONDS = 1.0
"""Seek (to the keyframe before the target) instead of decoding through gaps longer than this;
seeking stops for the rest of a file as soon as one seek fails to move forward."""
TRUNCATION_SLACK = 0.1
"""A stream may end this fraction of its duration (or 1 s) before its last target."""


class FrameSelector(Generic[F]):
    """Chooses, from frames offered in decode order, the one shown at each target time.

    Use: :meth:`offer` each decoded frame (keep what it returns, in order); when
    :attr:`seek_to` is set, seek there and call :meth:`seeked` (or :meth:`seek_failed`); stop
    feeding once :attr:`done`; offer the decoder's flushed frames with ``draining=True``; then
    :meth:`finish` returns the frames for the targets left (or refuses a truncated stream).
    Every kept frame fills the next target, so the kept frames, concatenated, are exactly one
    per target, in target order.
    """

    def __init__(
        self,
        targets: Sequence[float],
        tolerance: float,
        *,
        start_time: float,
        duration: float,
        source_fps: float,
        seek_gap: float = SEEK_GAP_SECONDS,
        recovery: bool = False,
    ) -> None:
        self.targets = tuple(targets)
        self.tolerance = tolerance
        self.start_time = start_time
        self.duration = duration
        self.source_fps = source_fps
        self.seek_gap = seek_gap
        self.filled = 0
        """Targets filled so far (the next target to fill is ``targets[filled]``)."""
        self.frames_seen = 0
        """Frames offered while demuxing (the decoder's work; flushed frames not counted)."""
        self.seeks = 0
        self.seek_to: float | None = None
        """A target to seek to (set by :meth:`offer`; cleared by :meth:`seeked`/:meth:`seek_failed`)."""
        self.can_seek = True
        self.can_skip = True
        """Whether :meth:`needs` may answer False (cleared once a frame comes without a time)."""
        self.skip_window = SKIP_WINDOW_FRAMES / source_fps
        self.recovery = recovery
        self.recovered: list[int] = []
        """Targets (positions) filled by frame recovery with a later frame than the lost one."""
        self._lost: list[float] = []
        self._prev: F | None = None
        self._prev_time = -1.0
        self._seek_origin: float | None = None
        self._last_seek_target = -1.0

    @classmethod
    def for_plan(cls, plan: SamplingPlan) -> FrameSelector[F]:
        return cls(
            plan.target_times,
            plan.tolerance,
            start_time=plan.start_time,
            duration=plan.duration,
            source_fps=plan.source_fps,
            recovery=plan.frame_recovery,
        )

    @property
    def done(self) -> bool:
        """Every target has its frame: decoding can stop."""
        return self.filled >= len(self.targets)

    @property
    def last_time(self) -> float:
        """Time of the last frame offered (``-1.0`` before any)."""
        return self._prev_time

    def needs(self, t: float | None) -> bool:
        """Whether a frame at time ``t`` (its packet's time, before decoding) may be kept.

        False only when ``t`` is more than :attr:`skip_window` before the next target: the frame
        on screen at that target (and at every later one) comes later, so a decoder may drop
        this frame unbuilt when no other frame refers to it (FFmpeg's ``skip_frame=NONREF``).
        Safe while the decoder's output lags its input (reordering, frame threads): the
        targets already filled were filled by frames shown before ``t``, and the next target
        seen from here is never later than the true one.
        """
        if t is None or not self.can_skip or self.done or self._prev is None:
            return True
        return t >= self.targets[self.filled] - self.skip_window

    def offer(self, frame: F, t: float | None, *, draining: bool = False) -> list[tuple[F, float]]:
        """Take the next decoded frame, at time ``t`` (None: unknown); return the frames to keep.

        Each ``(frame, time)`` returned fills the next target. Without a time, a frame is placed
        on the ``source_fps`` grid by its position (or, while draining, at the previous frame's
        time). ``draining``: the decoder's flushed frames after the last packet (not counted as
        seen; no seek is asked for).
        """
        if t is None:
            self.can_skip = False  # positions stand in for times now: every frame must be seen
            t = self._prev_time if draining else self.start_time + self.frames_seen / self.source_fps
        if not draining:
            self.frames_seen += 1
        kept = self._fill_before(frame, t)
        if not draining and self._seek_origin is not None:
            # First frame after a seek: if it did not land past where we were, keyframes are
            # too sparse for seeking to pay off; stop seeking.
            self.can_seek = self.can_seek and t > self._seek_origin
            self._seek_origin = None
        self._prev, self._prev_time = frame, t
        if not draining and not self.done and self.can_seek:
            target = self.targets[self.filled]
            if target - t > self.seek_gap and target != self._last_seek_target:  # not already landed there
                self.seek_to = self._last_seek_target = target
        return kept

    def lost(self, t: float | None) -> None:
        """A frame (its packet's time ``t``, stream clock) failed to decode; None: time unknown
        (then nothing can be said about which target it was for, and it is ignored)."""
        if t is not None and not self.done:
            self._lost.append(t)

    def seeked(self) -> None:
        """The caller seeked to :attr:`seek_to`: the decoder was flushed, so the frames after
        the seek are the candidates."""
        self.seeks += 1
        self._seek_origin = self._prev_time
        self._prev = None
        self.seek_to = None

    def seek_failed(self) -> None:
        """The seek to :attr:`seek_to` failed: decode straight through from here on."""
        self.can_seek = False
        self.seek_to = None

    def finish(self) -> list[tuple[F, float]]:
        """End of stream: the last frame stays on screen for the targets left.

        Raises :class:`~.errors.InvalidVideo` when no frame came at all, or when the stream
        ended more than the truncation slack before the last unfilled target.
        """
        if self._prev is None and self.filled == 0:
            raise InvalidVideo("no frame of the video could be decoded (corrupt or truncated)")
        slack = max(1.0, TRUNCATION_SLACK * self.duration, 2 / self.source_fps)
        if not self.done and self._prev_time < self.targets[-1] - slack:
            raise InvalidVideo(
                f"the video ends at {self._prev_time - self.start_time:.1f} s but its header says "
                f"{self.duration:.1f} s: the file is truncated or corrupt"
            )
        kept: list[tuple[F, float]] = []
        while not self.done:
            assert self._prev is not None
            kept.append((self._prev, self._prev_time))
            self.filled += 1
        return kept

    def _fill_before(self, frame: F, t: float) -> list[tuple[F, float]]:
        """Every target before ``t`` is shown by the previous frame (or, with none, by this one)."""
        kept: list[tuple[F, float]] = []
        while not self.done and t > self.targets[self.filled] + self.tolerance:
            limit = self.targets[self.filled] + self.tolerance
            if self._lost and self._recovers(t, limit):
                kept.append((frame, t))
                self.recovered.append(self.filled)
            elif self._prev is not None:
                kept.append((self._prev, self._prev_time))
            else:
                kept.append((frame, t))
            self.filled += 1
            if self._lost:
                self._lost = [x for x in self._lost if x > limit]
        return kept

    def _recovers(self, t: float, limit: float) -> bool:
        """Whether the frame at ``t`` recovers the target now being filled (up to ``limit``): the
        frame on screen there was lost, and ``t`` comes before the next target."""
        if not self.recovery:
            return False
        if not any(self._prev_time < x <= limit for x in self._lost):
            return False
        following = self.filled + 1
        return following >= len(self.targets) or t < self.targets[following]
