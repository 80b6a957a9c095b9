"""Dropping frames the selector does not need (``FrameSelector.needs``) never changes the answer.

A constant-rate stream (with jitter under a tenth of a frame, as container rounding gives) where
some frames are non-reference: the decoder drops such a frame unbuilt when ``needs`` says so at
its packet. Frames come out ``lag`` packets after they go in (reordering, frame threads), so
``needs`` is asked while the selector lags behind. The frames kept must be exactly those of
decoding everything.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from videomodel_server.media.selection import FrameSelector

FPS = 30.0


def run(times: list[float], nonref: list[bool], targets: list[float], lag: int, skip: bool) -> list[int]:
    selector: FrameSelector[int] = FrameSelector(
        targets, 0.25 / FPS, start_time=0.0, duration=len(times) / FPS, source_fps=FPS, seek_gap=1e9
    )
    kept: list[tuple[int, float]] = []
    pending: list[int] = []  # decoded, not yet out (the decoder's delay)
    for i in range(len(times)):
        if selector.done:
            break
        if not (skip and nonref[i] and not selector.needs(times[i])):
            pending.append(i)
        if len(pending) > lag:
            out = pending.pop(0)
            kept += selector.offer(out, times[out])
    for out in pending:
        if not selector.done:
            kept += selector.offer(out, times[out])
    kept += selector.finish()
    return [i for i, _ in kept]


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(8, 200),
    data=st.data(),
    lag=st.integers(0, 4),
)
def test_skipping_keeps_the_same_frames(n: int, data: st.DataObject, lag: int) -> None:
    jitter = data.draw(st.lists(st.floats(-0.1, 0.1), min_size=n, max_size=n))
    times = [(i + j) / FPS for i, j in enumerate(jitter)]
    times = sorted(times)
    nonref = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    count = data.draw(st.integers(1, n // 2))
    duration = n / FPS
    targets = sorted(data.draw(st.lists(st.floats(0, duration), min_size=count, max_size=count)))
    assert run(times, nonref, targets, lag, skip=True) == run(times, nonref, targets, lag, skip=False)
