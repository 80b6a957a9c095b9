"""The video budget: pure arithmetic from declared limits to serving settings.

Imports nothing heavy (no torch, vLLM, kopf or FastAPI): the operator imports it too. See
``docs/budget.md`` for the formulas; the oracle tests check them against the real processors.
"""

from .geometry import (
    FRAME_FACTOR,
    FrameGeometry,
    GeometryError,
    frame_pixel_cap,
    max_frame_cells,
    most_sampled_frames,
    sample_indices,
    smart_nframes,
    smart_resize,
)
from .models import BUILTIN_MODELS, FAMILIES, Family, FamilyGeometry, ModelSpec, lookup
from .names import cr_key, flag, label
from .plan import (
    GpuSpec,
    Plan,
    VideoBudget,
    VideoPrice,
    derive,
    fetch_timeout,
    kv_bytes_per_token,
    price_video,
    validate_budget,
)
from .tokens import image_tokens, timestamp_label_tokens, timestamp_tokens, video_tokens

__all__ = [
    "BUILTIN_MODELS",
    "FAMILIES",
    "FRAME_FACTOR",
    "Family",
    "FamilyGeometry",
    "FrameGeometry",
    "GeometryError",
    "GpuSpec",
    "ModelSpec",
    "Plan",
    "VideoBudget",
    "VideoPrice",
    "cr_key",
    "derive",
    "fetch_timeout",
    "flag",
    "frame_pixel_cap",
    "image_tokens",
    "kv_bytes_per_token",
    "label",
    "lookup",
    "max_frame_cells",
    "most_sampled_frames",
    "price_video",
    "sample_indices",
    "smart_nframes",
    "smart_resize",
    "timestamp_label_tokens",
    "timestamp_tokens",
    "validate_budget",
    "video_tokens",
]
