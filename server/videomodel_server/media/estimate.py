"""What bound a plan: the limits that decided its frame count and frame size, in words.

The dry run itself is :func:`~.pipeline.load_video` with ``decode=False`` (the same fetch, probe
and plan, stopped before decoding), so its plan is the one a real load would decode.
:func:`binding_limits` is pure: which limits decided a plan's frame count and frame size, in
words a client can act on ("frames capped by maxFrames (--max-frames)=128"), for the sampling
receipt of a response and of a dry run.
"""

from __future__ import annotations

from videomodel_server.budget import FRAME_FACTOR, label
from videomodel_server.budget.geometry import FPS_MIN_FRAMES

from .limits import SamplingBudget
from .probe import ProbeResult
from .sampling import SamplingPlan


def _num(value: float) -> str:
    return f"{value:g}"


def _named(name: str, effective: float | None, served: SamplingBudget) -> str:
    """``maxFrames (--max-frames)=128`` for the server's own value, ``max_frames=16 (the request's)`` else."""
    own = getattr(served, name)
    if effective is None or effective == own:
        return f"{label(name)}={_num(own)}"
    return f"{name}={_num(effective)} (the request's)"


def binding_limits(
    probe: ProbeResult,
    plan: SamplingPlan,
    budget: SamplingBudget,
    served: SamplingBudget,
    num_frames: int | None = None,
    fps_ceiling: float | None = None,
) -> list[str]:
    """Which limits decided ``plan``'s frame count and frame size, one sentence each.

    ``budget`` is what the plan was made under (the request's, clamped), ``served`` the server's
    own (to tell a budget limit from a client's lower choice); ``num_frames`` the exact count asked
    for, if any, and ``fps_ceiling`` the density ceiling applied to it (as ``plan_sampling``).
    """
    span = _span(plan)
    seconds = span / plan.source_fps
    if num_frames is None:
        notes = [_fps_mode(span, seconds, budget.fps, budget, served, "fps")]
    else:
        asked = round(num_frames / FRAME_FACTOR) * FRAME_FACTOR
        if plan.nframes >= asked:
            notes = [f"frames set by num_frames={num_frames}"]
        elif plan.nframes == span // FRAME_FACTOR * FRAME_FACTOR:
            notes = [f"frames capped by the {span} source frames sampled from"]
        elif fps_ceiling is not None:
            notes = [_fps_mode(span, seconds, fps_ceiling, budget, served, "ceiling")]
        else:
            notes = []
    notes.extend(_size_notes(probe, plan, budget, served))
    return notes


def _fps_mode(span: int, seconds: float, fps: float, budget: SamplingBudget, served: SamplingBudget, mode: str) -> str:
    """What decided ``smart_nframes(span, source_fps, fps, max_frames)``: fps, maxFrames, the source, the minimum."""
    raw = seconds * fps
    cap = min(budget.max_frames, span) // FRAME_FACTOR * FRAME_FACTOR
    if raw > cap:
        if budget.max_frames <= span:
            return f"frames capped by {_named('max_frames', budget.max_frames, served)}"
        return f"frames capped by the {span} source frames sampled from"
    if raw < FPS_MIN_FRAMES:
        return f"frames at the minimum of {FPS_MIN_FRAMES} ({seconds:.2f} s x {_num(fps)} fps is fewer)"
    if mode == "ceiling":
        return f"frames capped by {label('fps')}={_num(fps)} as a density ceiling ({seconds:.2f} s x {_num(fps)})"
    return f"frames set by {_named('fps', fps, served)} ({seconds:.2f} s x {_num(fps)})"


def _span(plan: SamplingPlan) -> int:
    """Source frames the plan sampled from (the window's, or the whole video's)."""
    if plan.sample_fps <= 0:
        return plan.total_frames
    return max(1, round(plan.nframes * plan.source_fps / plan.sample_fps))


def _size_notes(probe: ProbeResult, plan: SamplingPlan, budget: SamplingBudget, served: SamplingBudget) -> list[str]:
    """Which branch of ``smart_resize`` sized the frames: the pixel cap (per frame or total), the floor, or none."""
    f = budget.factor
    rounded = max(f, round(probe.display_height / f) * f) * max(f, round(probe.display_width / f) * f)
    if rounded > plan.pixel_cap:
        if budget.total_pixels is not None and plan.pixel_cap < budget.max_pixels:
            return [
                f"frame size capped by {_named('total_pixels', budget.total_pixels, served)} over "
                f"{plan.nframes} frames ({int(plan.pixel_cap)} pixels per frame)"
            ]
        return [f"frame size capped by {_named('max_pixels', budget.max_pixels, served)}"]
    if rounded < budget.min_pixels:
        return [f"frame size raised to {_named('min_pixels', budget.min_pixels, served)}"]
    return []
