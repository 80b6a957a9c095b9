"""The sampling knobs (budget.knobs): the one narrowing rule and its notes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from videomodel_server.budget import VideoBudget
from videomodel_server.budget.knobs import KnobConflict, SamplingKnobs, ceiling, clamp_note, narrow

BUDGET = VideoBudget(fps=2, max_frames=64, min_pixels=100_352, max_pixels=200_704, total_pixels=10**7)
CAP = ceiling(BUDGET, 40)
BASE = SamplingKnobs.of(BUDGET)


def test_the_ceiling_is_the_budget_and_the_plans_frame_count() -> None:
    assert (CAP.fps, CAP.max_frames, CAP.min_pixels, CAP.max_pixels, CAP.total_pixels) == (
        2,
        64,
        100_352,
        200_704,
        10**7,
    )
    assert CAP.num_frames == 40 and BASE.num_frames is None and CAP.window is None


def test_notes_in_the_documented_form() -> None:
    knobs, notes = narrow(SamplingKnobs(num_frames=99, total_pixels=2 * 10**7), CAP, BASE)
    assert knobs.num_frames == 40 and knobs.total_pixels == 10**7
    assert notes == ["total_pixels=20000000->10000000", "num_frames=99->98", "num_frames=98->40"]
    assert clamp_note("video_end", 15.0, "5.00", "the video's end") == "video_end=15->5.00 (the video's end)"
    assert clamp_note("fps", 0.5, 0.25) == "fps=0.5->0.25"
    # JSON's Infinity passes the wire's bound (fps > 0): cut back like any other value.
    knobs, notes = narrow(SamplingKnobs(fps=float("inf")), CAP, BASE)
    assert knobs.fps == 2 and notes == ["fps=inf->2"]


def test_an_asked_fps_replaces_the_bases_frame_count() -> None:
    with_frames, _ = narrow(SamplingKnobs(num_frames=10), CAP, BASE)
    knobs, notes = narrow(SamplingKnobs(fps=1), CAP, with_frames)
    assert (knobs.fps, knobs.num_frames, notes) == (1, None, [])


def test_the_pixel_floor_follows_a_lower_cap_unless_it_was_asked() -> None:
    knobs, _ = narrow(SamplingKnobs(max_pixels=50_000), CAP, BASE)
    assert (knobs.min_pixels, knobs.max_pixels) == (50_000, 50_000)
    with pytest.raises(KnobConflict, match=r"min_pixels \(60000\) is above max_pixels \(50000\)"):
        narrow(SamplingKnobs(min_pixels=60_000, max_pixels=50_000), CAP, BASE)


@given(
    fps=st.none() | st.floats(0.01, 100),
    frames=st.none() | st.integers(2, 1000),
    max_frames=st.none() | st.integers(2, 1000),
    max_pixels=st.none() | st.integers(1, 10**8),
    total=st.none() | st.integers(1, 10**9),
)
def test_narrowing_stays_within_the_budget_and_is_idempotent(
    fps: float | None, frames: int | None, max_frames: int | None, max_pixels: int | None, total: int | None
) -> None:
    ask = SamplingKnobs(fps=fps, max_frames=max_frames, max_pixels=max_pixels, total_pixels=total)
    knobs, _ = narrow(ask, CAP, BASE)
    knobs, _ = narrow(SamplingKnobs(num_frames=frames), CAP, knobs)
    assert knobs.fps is not None and CAP.fps is not None and knobs.fps <= CAP.fps
    assert knobs.max_pixels is not None and knobs.min_pixels is not None and knobs.min_pixels <= knobs.max_pixels
    assert knobs.num_frames is None or (knobs.num_frames <= 40 and knobs.num_frames % 2 == 0)
    # What the pipeline does with a request's options: narrowing them again changes nothing.
    again, notes = narrow(knobs, CAP, SamplingKnobs())
    assert again == knobs and notes == []
