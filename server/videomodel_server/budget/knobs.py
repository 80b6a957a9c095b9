"""The sampling knobs a request may set for one video, declared once, and the rule that narrows them.

A client sets them in three wire forms (``media_io_kwargs.video``, ``mm_processor_kwargs``, Qwen's
video content part, :mod:`videomodel_server.api.chat.protocol`), each naming a subset of the
fields of :class:`SamplingKnobs` and taking its bound from here; the request's video options
(:class:`videomodel_server.jobs.VideoOptions`) are these knobs with the budget's values filled in,
and the media pipeline takes them as its overrides. :func:`narrow` is the one place they are
narrowed to the budget, with one note per knob cut back (:func:`clamp_note`: ``fps=30->2``), the
notes a response reports in ``videomodel.clamped``.

The knobs a budget caps are the ones :class:`~.plan.VideoBudget` declares under the same name
(``fps``, ``max_frames``, the pixel bounds); ``num_frames`` is capped by the most frames the plan
priced for one video. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields, replace
from typing import Any, TypeVar

from .geometry import FRAME_FACTOR
from .plan import VideoBudget

K = TypeVar("K", bound="SamplingKnobs")


def _knob(help: str, **bound: float) -> Any:
    """A knob: None (not set) by default; ``bound`` (``gt``/``ge``) is what any value must meet."""
    return field(default=None, metadata={"help": help, "bound": bound})


@dataclass(frozen=True)
class SamplingKnobs:
    """How one video is sampled, as a request may narrow it; None: not set (the budget's, or the
    video's own start or end)."""

    fps: float | None = _knob("Frames sampled per second of video.", gt=0)
    max_frames: int | None = _knob("Cap on sampled frames.", ge=2)
    max_pixels: int | None = _knob("Cap on a frame's pixels.", gt=0)
    min_pixels: int | None = _knob("Floor on a frame's pixels.", gt=0)
    total_pixels: int | None = _knob("Cap on the pixels of all frames together.", gt=0)
    num_frames: int | None = _knob("An exact frame count instead of fps (rounded down to an even count).", ge=2)
    video_start: float | None = _knob("Sample from this second of the video on.")
    video_end: float | None = _knob("Sample up to this second of the video.")
    frame_recovery: bool | None = _knob("Fill a frame that fails to decode with the next good one (vLLM's).")

    def __post_init__(self) -> None:
        for f in knob_fields():
            value = getattr(self, f.name)
            if value is None:
                continue
            for name, limit in f.metadata["bound"].items():
                if not (value > limit if name == "gt" else value >= limit):  # NaN fails too
                    relation = "above" if name == "gt" else "at least"
                    raise ValueError(f"{f.name} must be {relation} {limit:g} (got {value!r})")

    @classmethod
    def of(cls: type[K], source: Any, **values: Any) -> K:
        """The knobs ``source`` (a resolved budget, a media sampling budget) has a field for, then ``values``."""
        shared = {f.name: getattr(source, f.name) for f in fields(cls) if f.init and hasattr(source, f.name)}
        return cls(**{**shared, **values})

    @property
    def window(self) -> tuple[float | None, float | None] | None:
        """``(video_start, video_end)``, or None for the whole video."""
        if self.video_start is None and self.video_end is None:
            return None
        return (self.video_start, self.video_end)


def knob_fields() -> tuple[Field[Any], ...]:
    """The fields of :class:`SamplingKnobs`, in declaration order."""
    return fields(SamplingKnobs)


KNOB_NAMES = frozenset(f.name for f in knob_fields())
CAPPED = frozenset({"num_frames"} | ({f.name for f in fields(VideoBudget)} & KNOB_NAMES))
"""The knobs a budget caps: those :class:`VideoBudget` declares, and ``num_frames``."""


def ceiling(budget: Any, frames_per_video: int) -> SamplingKnobs:
    """The most a request may ask of ``budget`` (a resolved :class:`VideoBudget`, or anything with its
    sampling fields): its own values, and ``frames_per_video`` (the plan's) as the ``num_frames`` cap."""
    return SamplingKnobs.of(budget, num_frames=frames_per_video)


class KnobConflict(ValueError):
    """Knobs that contradict each other (a pixel floor above the cap); the message names both."""


def narrow(ask: SamplingKnobs, cap: SamplingKnobs, base: K) -> tuple[K, list[str]]:
    """``base`` with what ``ask`` sets, each capped knob cut back to ``cap`` (one note each).

    Only ever lowers cost: fps, frames and the pixel caps may go down, never past ``cap``; a
    ``num_frames`` is rounded down to an even count (frames are merged in pairs). An asked ``fps``
    replaces an exact frame count of ``base``. ``min_pixels`` may go down too (a higher floor would
    enlarge tiny frames past what the budget priced), and a cap below the floor lowers the floor
    with it, unless the floor was asked for (:class:`KnobConflict`). Knobs ``ask`` leaves None
    keep ``base``'s value: narrowing what ``narrow`` returned changes nothing and notes nothing.
    """
    notes: list[str] = []
    values: dict[str, Any] = {}
    for f in knob_fields():
        asked = getattr(ask, f.name)
        if asked is None:
            continue
        if f.name == "num_frames" and asked % FRAME_FACTOR:
            even = asked - asked % FRAME_FACTOR
            notes.append(clamp_note(f.name, asked, even))
            asked = even
        limit = getattr(cap, f.name) if f.name in CAPPED else None
        if limit is not None and asked > limit:
            notes.append(clamp_note(f.name, asked, limit))
            asked = limit
        values[f.name] = asked
    if ask.fps is not None and ask.num_frames is None:
        values["num_frames"] = None
    knobs = replace(base, **values)
    floor = _either(knobs.min_pixels, cap.min_pixels)
    top = _either(knobs.max_pixels, cap.max_pixels)
    if floor is not None and top is not None and floor > top:
        if ask.min_pixels is not None:
            raise KnobConflict(f"min_pixels ({floor}) is above max_pixels ({top})")
        knobs = replace(knobs, min_pixels=top)
    return knobs, notes


def clamp_note(name: str, asked: float | str, got: float | str, why: str = "") -> str:
    """How a response reports a knob cut back: ``num_frames=40->10 (why)``, the documented form."""
    note = f"{name}={_num(asked)}->{_num(got)}"
    return f"{note} ({why})" if why else note


def _either(value: int | None, default: int | None) -> int | None:
    return default if value is None else value


def _num(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
