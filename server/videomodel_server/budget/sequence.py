"""How a pre-extracted frame sequence maps onto its source video, as the client describes it.

A video may come as JPEG frames the client already picked (a ``data:video/jpeg`` URL, vLLM's
wire form) with ``media_io_kwargs.video`` saying where they come from. The request layer
(:class:`videomodel_server.jobs.VideoOptions`) carries this description and the media pipeline
(:mod:`videomodel_server.media.frames`) checks it against the frames and the budget; it lives
here, below both, so that there is one type for the two. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FrameSequenceInfo:
    """``media_io_kwargs.video``'s description of a pre-extracted frame sequence, as sent (None:
    not sent): the source video's ``fps``, each frame's index in it, its frame count and length,
    and whether the server should sample the frames."""

    fps: float | None = None
    frames_indices: tuple[int, ...] | None = None
    total_num_frames: int | None = None
    duration: float | None = None
    do_sample_frames: bool | None = None
