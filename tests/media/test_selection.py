"""The frame selector (pure), property-tested against a simulated stream.

A simulated stream is a list of strictly increasing frame times with keyframe flags; one packet
decodes to one frame, and a seek lands on the last keyframe at or before the seek target (as
``container.seek(..., backward=True)`` does). :func:`drive` feeds the selector the way
``decode.decode_frames`` does. The reference answer for a target ``T`` is the frame on screen at
``T``: the last frame whose time is <= ``T + tolerance``, or the first frame for a target before
the stream starts.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from videomodel_server.media.errors import InvalidVideo
from videomodel_server.media.selection import SEEK_GAP_SECONDS, TRUNCATION_SLACK, FrameSelector

FPS = 10.0
EPS = 0.25 / FPS


@dataclass
class Run:
    kept: list[int]
    """Index (into the stream) of the frame kept for each target, in target order."""
    kept_times: list[float]
    frames_seen: int
    seeks: int
    decoded: list[int] = field(default_factory=list)
    """Every frame index the simulated decoder produced, in order."""
    seek_requests: list[tuple[float, float]] = field(default_factory=list)
    """(time of the last frame decoded, time asked for) of each seek the selector asked for."""


def make_selector(targets: list[float], duration: float, seek_gap: float = SEEK_GAP_SECONDS) -> FrameSelector[int]:
    return FrameSelector(targets, EPS, start_time=0.0, duration=duration, source_fps=FPS, seek_gap=seek_gap)


def drive(
    times: list[float],
    keyframes: list[bool],
    selector: FrameSelector[int],
    failing_seeks: frozenset[int] = frozenset(),
) -> Run:
    """Decode the simulated stream through ``selector`` like ``decode_frames`` does."""
    kept: list[tuple[int, float]] = []
    decoded: list[int] = []
    requests: list[tuple[float, float]] = []
    pos = 0
    attempts = 0
    while not selector.done:
        while pos < len(times):
            i, pos = pos, pos + 1
            decoded.append(i)
            kept += selector.offer(i, times[i])
            if selector.done or selector.seek_to is not None:
                break
        if selector.seek_to is None:
            break  # end of stream
        attempts += 1
        requests.append((selector.last_time, selector.seek_to))
        if attempts in failing_seeks:
            selector.seek_failed()
            continue
        land = bisect.bisect_right(times, selector.seek_to) - 1
        while land > 0 and not keyframes[land]:
            land -= 1
        pos = max(land, 0)
        selector.seeked()
    kept += selector.finish()
    return Run([i for i, _ in kept], [t for _, t in kept], selector.frames_seen, selector.seeks, decoded, requests)


def shown_at(times: list[float], target: float) -> int:
    return max(bisect.bisect_right(times, target + EPS) - 1, 0)


@st.composite
def streams(draw: st.DrawFn, max_frames: int = 80) -> tuple[list[float], list[bool]]:
    """Strictly increasing frame times (varying gaps: constant, variable and sparse rates)."""
    start = draw(st.floats(0.0, 3.0))
    gaps = draw(st.lists(st.floats(0.01, 2.5), min_size=0, max_size=max_frames - 1))
    times = [start]
    for gap in gaps:
        times.append(times[-1] + gap)
    keyframes = [True, *draw(st.lists(st.booleans(), min_size=len(gaps), max_size=len(gaps)))]
    return times, keyframes


@st.composite
def covered(draw: st.DrawFn) -> tuple[list[float], list[bool], list[float]]:
    """A stream and sorted targets (duplicates allowed) that the stream covers (no truncation)."""
    times, keyframes = draw(streams())
    anywhere = st.floats(0.0, times[-1] + 0.5)
    near_a_frame = st.builds(lambda t, d: max(t + d, 0.0), st.sampled_from(times), st.floats(-EPS, EPS))
    targets = sorted(draw(st.lists(anywhere | near_a_frame | st.sampled_from(times), min_size=1, max_size=40)))
    return times, keyframes, targets


@given(covered())
def test_each_target_gets_the_frame_on_screen_at_its_time(case: tuple[list[float], list[bool], list[float]]) -> None:
    times, keyframes, targets = case
    run = drive(times, keyframes, make_selector(targets, times[-1], seek_gap=float("inf")))
    assert len(run.kept) == len(targets)  # exactly one frame per target
    assert run.kept == [shown_at(times, t) for t in targets]
    assert run.kept_times == [times[i] for i in run.kept]
    for target, i in zip(targets, run.kept, strict=True):
        # at or before the target (within the tolerance), and no later frame qualifies
        assert times[i] <= target + EPS or i == 0
        assert i + 1 == len(times) or times[i + 1] > target + EPS
    assert run.seeks == 0


@given(covered())
def test_kept_frames_are_in_stream_order(case: tuple[list[float], list[bool], list[float]]) -> None:
    times, keyframes, targets = case
    run = drive(times, keyframes, make_selector(targets, times[-1]))
    assert run.kept == sorted(run.kept)
    assert run.kept_times == sorted(run.kept_times)


@given(covered())
def test_decoding_stops_at_the_first_frame_past_the_last_target(
    case: tuple[list[float], list[bool], list[float]],
) -> None:
    times, keyframes, targets = case
    run = drive(times, keyframes, make_selector(targets, times[-1], seek_gap=float("inf")))
    past = [i for i, t in enumerate(times) if t > targets[-1] + EPS]
    assert run.frames_seen == (past[0] + 1 if past else len(times))
    assert run.decoded == list(range(run.frames_seen))


@settings(max_examples=300)
@given(covered(), st.frozensets(st.integers(1, 6), max_size=2))
def test_seeking_returns_exactly_the_frames_decoding_through_would(
    case: tuple[list[float], list[bool], list[float]], failing: frozenset[int]
) -> None:
    times, keyframes, targets = case
    straight = drive(times, keyframes, make_selector(targets, times[-1], seek_gap=float("inf")))
    seeking = drive(times, keyframes, make_selector(targets, times[-1]), failing)
    assert seeking.kept == straight.kept and seeking.kept_times == straight.kept_times
    # Bounded work: at most one seek per target, and no frame is decoded more than twice
    # (only a seek that lands at or before where decoding was re-decodes, and it ends seeking).
    assert seeking.seeks <= len(set(targets))
    assert seeking.frames_seen == len(seeking.decoded) <= 2 * len(times)
    assert max(seeking.decoded.count(i) for i in set(seeking.decoded)) <= 2


@given(covered())
def test_seeks_jump_only_gaps_longer_than_the_seek_gap(case: tuple[list[float], list[bool], list[float]]) -> None:
    times, _, targets = case
    every = [True] * len(times)  # every frame a keyframe: each seek lands right before its target
    run = drive(times, every, make_selector(targets, times[-1]))
    for last, to in run.seek_requests:
        assert to in targets and to - last > SEEK_GAP_SECONDS
    assert len({to for _, to in run.seek_requests}) == len(run.seek_requests)  # once per target
    # Seeks only move forward here: decoding never goes back (a seek may land on the frame
    # it left, when no frame lies in the gap), and every frame kept was decoded.
    assert run.decoded == sorted(run.decoded)
    assert run.frames_seen <= len(times) + run.seeks
    assert set(run.kept) <= set(run.decoded)


@given(covered())
def test_a_seek_that_does_not_move_forward_ends_seeking(case: tuple[list[float], list[bool], list[float]]) -> None:
    times, _, targets = case
    only_first = [True, *[False] * (len(times) - 1)]  # every seek lands back on frame 0
    run = drive(times, only_first, make_selector(targets, times[-1]))
    assert run.seeks <= 1
    assert run.kept == [shown_at(times, t) for t in targets]


@given(streams(), st.lists(st.floats(0.0, 60.0), min_size=1, max_size=20), st.floats(0.0, 60.0))
def test_a_stream_ending_long_before_the_last_target_is_refused(
    stream: tuple[list[float], list[bool]], targets: list[float], duration: float
) -> None:
    times, keyframes = stream
    targets = sorted(targets)
    slack = max(1.0, TRUNCATION_SLACK * duration, 2 / FPS)
    selector = make_selector(targets, duration)
    if times[-1] < targets[-1] - slack:
        with pytest.raises(InvalidVideo, match="truncated or corrupt"):
            drive(times, keyframes, selector)
    else:
        run = drive(times, keyframes, selector)
        assert run.kept == [shown_at(times, t) for t in targets]  # the last frame pads the end


def test_a_frame_at_most_the_tolerance_after_a_target_counts_as_at_it() -> None:
    selector: FrameSelector[int] = FrameSelector([0.75, 1.5], 0.25, start_time=0.0, duration=3.0, source_fps=1.0)
    assert selector.offer(0, 0.0) == []
    assert selector.offer(1, 1.0) == []  # 1.0 <= 0.75 + 0.25: frame 1 is (still) at 0.75
    assert selector.offer(2, 2.0) == [(1, 1.0), (1, 1.0)]
    assert selector.done and selector.finish() == []


def test_no_frame_at_all_is_refused() -> None:
    with pytest.raises(InvalidVideo, match="no frame of the video could be decoded"):
        make_selector([0.0, 1.0], 1.0).finish()


@given(st.integers(1, 50), st.lists(st.floats(0.0, 6.0), min_size=1, max_size=20))
def test_frames_without_a_time_sit_on_the_source_grid(n: int, targets: list[float]) -> None:
    def outcome(times: list[float | None]) -> object:
        selector = make_selector(sorted(targets), 5.0)
        try:
            return [kept for i, t in enumerate(times) for kept in selector.offer(i, t)] + selector.finish()
        except InvalidVideo as exc:
            return exc.message

    assert outcome([i / FPS for i in range(n)]) == outcome([None] * n)


def test_drained_frames_are_not_counted_and_ask_for_no_seek() -> None:
    selector = make_selector([0.0, 5.0], 5.0)
    assert selector.offer(0, 0.0) == []
    assert selector.offer(1, 0.1) == [(0, 0.0)]  # a frame past 0.0: frame 0 was on screen at 0.0
    assert selector.seek_to == 5.0 and selector.frames_seen == 2
    selector.seeked()
    assert selector.seek_to is None and selector.seeks == 1
    assert selector.offer(2, 4.0, draining=True) == []  # drained: not counted, asks no seek
    assert selector.offer(3, None, draining=True) == [] and selector.last_time == 4.0  # untimed: previous time
    assert selector.seek_to is None and selector.frames_seen == 2
    assert selector.finish() == [(3, 4.0)]  # within the slack of 5.0: the last frame pads the end
    assert selector.done


def test_first_frame_after_a_seek_fills_the_targets_before_it() -> None:
    selector = make_selector([0.0, 3.0, 3.2], 5.0)
    selector.offer(0, 0.0)
    assert selector.offer(1, 0.1) == [(0, 0.0)] and selector.seek_to == 3.0
    selector.seeked()
    # The seek overshot: with no frame before it since the seek, the first frame shows 3.0.
    assert selector.offer(2, 3.1) == [(2, 3.1)]
    assert selector.offer(3, 3.3) == [(2, 3.1)] and selector.done
