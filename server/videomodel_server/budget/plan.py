"""``derive(budget, model, gpu) -> Plan``: every serving setting from the declared video budget.

Pure and deterministic: no I/O, clock or environment. The operator prints the Plan into status
and renders it into the server's flags; the server derives the same Plan at start-up and
enforces it per request.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .geometry import (
    FRAME_FACTOR,
    MAX_ASPECT_RATIO,
    FrameGeometry,
    frame_pixel_cap,
    max_frame_cells,
    max_frame_cells_count,
    most_sampled_frames,
    smart_nframes,
    smart_resize,
)
from .models import Family, FamilyGeometry, ModelSpec
from .names import label
from .tokens import image_tokens, video_tokens

GiB = 1024**3
CHAT_TEMPLATE_TOKENS = 64
"""Role markers and the default system prompt of the Qwen chat templates (about 20-30 tokens),
with headroom for multi-turn markers."""
ENGINE_NON_TORCH_BYTES = int(0.23 * GiB)
"""Per GPU, *measured*: vLLM's non-torch memory (CUDA context, cuBLAS/NCCL workspaces): 0.22-0.23
GiB in three H200 runs (vLLM 0.26.0, Qwen2-VL-7B with dummy weights; issue 11, docs/gpu.md)."""
ACTIVATION_BYTES_PER_BATCHED_TOKEN: dict[Family, int] = {
    Family.QWEN2_VL: int(3.30 * GiB / 17920),
    Family.QWEN2_5_VL: int(2.35 * GiB / 8960),
    Family.QWEN3_VL: int(4.55 * GiB / 34004),
}
"""Per GPU, *measured* for each family's 7-8B model: vLLM's profiled peak activation per
``max_num_batched_tokens``, with the vision encoder in the profile (V1 model runner, vLLM 0.26.0;
docs/gpu.md): Qwen2-VL-7B 3.3 GiB at 17,920 (H200 twice, H100 once), Qwen2.5-VL-7B 2.35 GiB at
8,960 and Qwen3-VL-8B 4.55 GiB at 34,004 (H100). One rate for all families (Qwen2-VL's) put
Qwen3-VL-8B's activation 1.7 GiB high and Qwen2.5-VL-7B's 0.7 GiB low. Other sizes of a family
are an extrapolation: their encoder is the same, their language model is not."""
CUDA_GRAPH_BYTES = int(0.55 * GiB)
"""Per GPU, *measured*: vLLM 0.26 subtracts its own estimate of the CUDA graphs from the KV cache
("Estimated CUDA graph memory"): 0.46 GiB (Qwen2-VL-7B, FULL and piecewise graphs, H100 and
H200), 0.54 GiB (Qwen3-VL-8B), 0.33 GiB (Qwen2.5-VL-7B, piecewise only); the plan takes the
largest, rounded up."""
CPU_ENGINE_OVERHEAD_BYTES = 2 * GiB
"""vLLM's CPU engine (the demo and the tests): not measured; the estimate the plan used before the
GPU measurement."""
VLLM_QWEN2_DUMMY_VIDEO_FRAMES = 14
"""vLLM profiles a Qwen2-VL/Qwen2.5-VL dummy video of at most this many frames, whatever the
limits say: ``_MAX_FRAMES_PER_VIDEO`` in vllm/model_executor/models/qwen2_vl.py, the default of
``Qwen2VLProcessingInfo.get_num_frames_with_most_features`` (0.26.0 and 0.32.0 alike). A
``limit_mm_per_prompt`` ``num_frames`` above it is ignored ("video.num_frames override (128)
exceeds model's maximum number of frames (14), will be ignored"): dummy options only lower."""
VLLM_QWEN3_DUMMY_VIDEO_FRAMES = 2
"""Qwen3-VL's dummy video is always 2 frames holding the processor's whole pixel budget
(``Qwen3VLDummyInputsBuilder.get_dummy_mm_data``: "treat videos as special images")."""
FETCH_CONNECT_SLACK_SECONDS = 5.0
FETCH_TIMEOUT_RANGE = (10.0, 900.0)
VLLM_DEFAULT_BATCHED_TOKENS = 2048
"""vLLM sizes its encoder cache as ``max(max_num_batched_tokens, its own per-item estimate)``,
and its estimate assumes a short video: the batch must hold the largest media item whole."""


def _budget_field(default: Any, help: str, *, unit: str = "", cr: str = "") -> Any:
    """A :class:`VideoBudget` field; its metadata drives the server's flags, the CR and the docs.

    ``unit`` is shown in help; ``cr`` marks a field the CR writes as a Kubernetes quantity
    (``bytes`` like 256Mi, ``bandwidth`` like 4Mi or 32Mbit).
    """
    return field(default=default, metadata={"help": help, "unit": unit, "cr": cr})


@dataclass(frozen=True)
class VideoBudget:
    """What users may send: the one schema of "what this deployment serves".

    Every consumer (the CR's ``spec.budget``, the server's flags and budget file, the request
    limits, the media pipeline) iterates over these fields rather than restating them; a field's
    ``metadata["help"]`` is its documentation everywhere. Pixel fields left as None take the
    family's qwen-vl-utils defaults (:meth:`resolved`).
    """

    max_seconds: float = _budget_field(60.0, "Longest video accepted.", unit="s")
    fps: float = _budget_field(2.0, "Sampling rate fed to the model.", unit="frames/s")
    max_frames: int = _budget_field(128, "Cap on sampled frames per video.")
    min_pixels: int | None = _budget_field(None, "Per frame; default 128 tokens' worth (128 x factor^2).")
    max_pixels: int | None = _budget_field(None, "Per frame; default 256 tokens' worth (256 x factor^2).")
    total_pixels: int | None = _budget_field(None, "Over all frames of one video; unset means no total cap.")
    videos_per_prompt: int = _budget_field(1, "Videos one request may carry.")
    images_per_prompt: int = _budget_field(0, "Images one request may carry.")
    image_min_pixels: int | None = _budget_field(None, "Per image; default 4 tokens' worth.")
    image_max_pixels: int | None = _budget_field(None, "Per image; default 1280 tokens' worth.")
    max_video_bytes: int = _budget_field(256 * 1024**2, "Largest download, data URL or local file.", cr="bytes")
    max_prompt_tokens: int = _budget_field(2048, "Text tokens around the media (messages, roles, template).")
    max_output_tokens: int = _budget_field(1024, "Most tokens one request may generate.")
    min_fetch_bandwidth: float = _budget_field(
        4 * 1024**2, "Slowest media source the deployment promises to support.", unit="bytes/s", cr="bandwidth"
    )

    def resolved(self, geometry: FamilyGeometry) -> VideoBudget:
        """This budget with the family defaults filled in."""
        f2 = geometry.factor**2
        return replace(
            self,
            min_pixels=self.min_pixels if self.min_pixels is not None else 128 * f2,
            max_pixels=self.max_pixels if self.max_pixels is not None else 256 * f2,
            image_min_pixels=self.image_min_pixels if self.image_min_pixels is not None else 4 * f2,
            image_max_pixels=self.image_max_pixels if self.image_max_pixels is not None else 1280 * f2,
        )


@dataclass(frozen=True)
class GpuSpec:
    """The GPUs one replica gets; ``count`` is the tensor-parallel size."""

    count: int = 1
    memory_bytes: int = 80 * GiB
    """Per GPU."""
    memory_utilization: float = 0.9
    dtype_bytes: int = 2
    cuda: bool = True
    """False for vLLM's CPU engine (``gpu.count: 0``, the demo): no CUDA graphs, and its overhead is
    the former estimate, not the GPU measurements (:data:`CPU_ENGINE_OVERHEAD_BYTES`)."""

    def overhead_bytes(self, model: ModelSpec, max_num_batched_tokens: int) -> int:
        """Per device: what the engine takes besides the weights and the KV cache (measured on
        CUDA: non-torch memory, the peak activation of one full batch, CUDA graphs, and the
        model's own per-batch buffers)."""
        if not self.cuda:
            return CPU_ENGINE_OVERHEAD_BYTES
        activation = max_num_batched_tokens * ACTIVATION_BYTES_PER_BATCHED_TOKEN[model.family]
        buffers = model.batch_buffer_bytes(max_num_batched_tokens, self.dtype_bytes)
        return ENGINE_NON_TORCH_BYTES + activation + CUDA_GRAPH_BYTES + buffers


@dataclass(frozen=True)
class Plan:
    """The derived serving settings. ``problems`` is empty exactly when ``feasible``."""

    model: str
    family: str
    feasible: bool
    problems: list[str]
    frames_per_video: int
    frame_min_pixels: int
    frame_max_pixels: int
    worst_case_frame: dict[str, int]
    tokens_per_frame_group: int
    tokens_per_video: int
    tokens_per_image: int
    max_model_len: int
    context_limit: int
    limit_mm_per_prompt: dict[str, dict[str, int]]
    mm_processor_kwargs: dict[str, Any]
    fetch_timeout_seconds: float
    max_video_bytes: int
    max_seconds: float
    fps: float
    videos_per_prompt: int
    images_per_prompt: int
    kv_bytes_per_token: int
    kv_bytes_per_request: int
    max_num_batched_tokens: int = VLLM_DEFAULT_BATCHED_TOKENS
    profile_video: dict[str, int] = field(default_factory=dict)
    """What vLLM's memory profile runs through the vision encoder (:func:`profile_video`): ``items``
    dummy videos of ``frames_per_item`` frames of ``height`` x ``width``, ``frames`` and ``tokens``
    in all; ``covers`` is 1 when that is at least the worst-case video."""
    weights_bytes: int | None = None
    kv_cache_bytes_available: int | None = None
    concurrent_requests: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _VideoCost:
    nframes: int
    pixel_cap: int
    frame: FrameGeometry
    tokens: int


def _most_frames(budget: VideoBudget) -> int:
    """Frames sampled from the longest in-budget video."""
    return most_sampled_frames(budget.max_seconds, budget.fps, budget.max_frames)


def _video_cost(budget: VideoBudget, model: ModelSpec) -> _VideoCost:
    """Worst case over every in-budget video: the costliest frame count at its costliest frame.

    A video of D <= maxSeconds seconds samples ``floor2(clamp(D*fps, 4, maxFrames))`` frames
    (fewer only when the source has fewer), so every even count up to ``N_max`` occurs. More
    frames usually cost more, but under a total-pixel budget a shorter video gets more pixels
    per frame, so each count is priced and the maximum kept.
    """
    geometry = model.geometry
    assert budget.min_pixels is not None and budget.max_pixels is not None
    n_max = _most_frames(budget)
    best: tuple[int, int, float] | None = None  # tokens, frames, per-frame cap
    for n in range(FRAME_FACTOR, n_max + 1, FRAME_FACTOR):
        cap = frame_pixel_cap(n, budget.min_pixels, budget.max_pixels, budget.total_pixels)
        cells = max_frame_cells_count(geometry.factor, budget.min_pixels, cap)
        tokens = video_tokens(geometry, n, cells * geometry.factor, geometry.factor, budget.max_seconds)
        if best is None or tokens >= best[0]:
            best = (tokens, n, cap)
    assert best is not None
    _, nframes, cap = best
    frame = max_frame_cells(geometry.factor, budget.min_pixels, cap)
    tokens = video_tokens(geometry, nframes, frame.height, frame.width, budget.max_seconds)
    return _VideoCost(nframes, int(cap), frame, tokens)


def _image_tokens(budget: VideoBudget, model: ModelSpec) -> tuple[int, FrameGeometry | None]:
    if budget.images_per_prompt == 0:
        return 0, None
    assert budget.image_min_pixels is not None and budget.image_max_pixels is not None
    frame = max_frame_cells(model.geometry.factor, budget.image_min_pixels, budget.image_max_pixels)
    return image_tokens(model.geometry, frame.height, frame.width), frame


def kv_bytes_per_token(model: ModelSpec, dtype_bytes: int) -> int:
    """K and V, every layer, every KV head: 2 x layers x kv_heads x head_dim x dtype bytes."""
    return 2 * model.num_hidden_layers * model.num_key_value_heads * model.head_dim * dtype_bytes


def fetch_timeout(budget: VideoBudget) -> float:
    """Time to download the largest allowed video at the slowest promised bandwidth, plus slack."""
    low, high = FETCH_TIMEOUT_RANGE
    seconds = budget.max_video_bytes / budget.min_fetch_bandwidth + FETCH_CONNECT_SLACK_SECONDS
    return round(min(high, max(low, seconds)), 1)


def _max_model_len(budget: VideoBudget, video: _VideoCost, image_tokens_each: int) -> int:
    return (
        budget.videos_per_prompt * video.tokens
        + budget.images_per_prompt * image_tokens_each
        + budget.max_prompt_tokens
        + budget.max_output_tokens
        + CHAT_TEMPLATE_TOKENS
    )


def _processor_kwargs(budget: VideoBudget, model: ModelSpec) -> dict[str, Any]:
    """Processor settings under which vLLM keeps the server's frames exactly as sampled.

    The server resizes every frame itself (qwen-vl-utils semantics, total budget included); the
    processor's own bounds are opened just wide enough that it never resizes them again, for any
    in-budget video, not only the worst case: under a total-pixel budget a shorter video gets
    larger frames. Qwen3-VL bounds pixels over all frames of a video (``frames x area``), the older
    families per frame. ``cap_pixels_per_frame=False`` keeps transformers 5.19 from applying its
    own (qwen-vl-utils-like) total budget on top (and silences its warning).

    vLLM hands the same ``size`` to the image processor, so when the budget allows images the
    bounds also hold the largest and smallest image the server sends (one frame's area). Before
    this, an image above the video frame's area was shrunk by the engine to it: the GPU warm-up
    counted 16,652 prompt tokens where the plan priced 17,694 (docs/gpu.md, run 4).
    """
    min_pixels, max_pixels = budget.min_pixels, budget.max_pixels
    assert min_pixels is not None and max_pixels is not None
    factor = model.geometry.factor
    f2 = factor**2

    def largest_area(n: int) -> int:
        cap = frame_pixel_cap(n, min_pixels, max_pixels, budget.total_pixels)
        return max_frame_cells_count(factor, min_pixels, cap) * f2

    if model.geometry.timestamps_per_group:
        longest = max(n * largest_area(n) for n in range(FRAME_FACTOR, _most_frames(budget) + 1, FRAME_FACTOR))
        size = {"shortest_edge": FRAME_FACTOR * f2, "longest_edge": longest}
    else:
        # The per-frame cap only grows as the frame count falls, so two frames bound every video.
        size = {"shortest_edge": f2, "longest_edge": largest_area(FRAME_FACTOR)}
    if budget.images_per_prompt:
        assert budget.image_min_pixels is not None and budget.image_max_pixels is not None
        size = {
            "shortest_edge": min(size["shortest_edge"], budget.image_min_pixels),
            "longest_edge": max(size["longest_edge"], budget.image_max_pixels),
        }
    return {"size": size, "cap_pixels_per_frame": False}


def _vllm_dummy_cells(max_cells: int) -> tuple[int, int]:
    """The frame, in cells (rows, columns), vLLM builds for ``max_cells`` cells of pixel budget.

    ``Qwen2VLProcessingInfo.get_image_size_with_most_features``: the closest factor pair of the
    cell count, lowering the count until the pair's aspect ratio is at most 200.
    """
    for n in range(max(max_cells, 1), 0, -1):
        d = next(d for d in range(math.isqrt(n), 0, -1) if n % d == 0)
        if (n // d) / d <= MAX_ASPECT_RATIO:
            return d, n // d
    return 1, 1


def profile_video(
    budget: VideoBudget, model: ModelSpec, processor_kwargs: dict[str, Any], max_model_len: int, video_groups_cells: int
) -> dict[str, int]:
    """The dummy videos of vLLM's memory profile under these settings, and whether they cover the
    worst case (``video_groups_cells``: the worst-case video's vision tokens, groups x cells).

    vLLM sizes its dummy frame from the processor's ``size.longest_edge`` (for Qwen3-VL: half of
    it, over 2 frames) and caps a Qwen2-VL/2.5-VL dummy at 14 frames and at the frames that fit
    ``max_model_len`` (split over the videos of one prompt: ``get_num_frames_with_most_features``).
    It then encodes ``encoder budget // dummy tokens`` of them at once (``MultiModalBudget``), the
    encoder budget being ``max_num_batched_tokens`` or one dummy, whichever is larger. So enough
    whole dummies to hold the worst case's vision tokens make the profile's encoder pass at least
    as large as the worst case's, with the worst case's own frame size (Qwen2/2.5) per attention
    window; :func:`derive` sets ``max_num_batched_tokens`` to hold them.
    """
    geometry = model.geometry
    unit = geometry.factor
    longest = int(processor_kwargs["size"]["longest_edge"])
    if geometry.timestamps_per_group:
        frames = VLLM_QWEN3_DUMMY_VIDEO_FRAMES
        rows, cols = _vllm_dummy_cells(longest // geometry.temporal_patch_size // unit**2)
    else:
        rows, cols = _vllm_dummy_cells(longest // unit**2)
        per_group = rows * cols
        fitting = FRAME_FACTOR * (max_model_len // per_group)  # _get_max_video_frames(max_model_len)
        frames = max(1, min(fitting // max(budget.videos_per_prompt, 1), VLLM_QWEN2_DUMMY_VIDEO_FRAMES))
    groups = -(-frames // geometry.temporal_patch_size)
    item_tokens = groups * rows * cols
    items = max(1, -(-video_groups_cells // item_tokens))
    return {
        "items": items,
        "frames_per_item": frames,
        "frames": items * frames,
        "height": rows * unit,
        "width": cols * unit,
        "tokens": items * item_tokens,
        "covers": int(items * item_tokens >= video_groups_cells),
    }


def derive(budget: VideoBudget, model: ModelSpec, gpu: GpuSpec | None = None) -> Plan:
    """Derive the Plan. Never raises for an unservable budget: it says why in ``problems``."""
    budget = budget.resolved(model.geometry)
    problems = validate_budget(budget)
    if problems:
        return _invalid_plan(budget, model, problems)
    video = _video_cost(budget, model)
    tokens_per_image, image_frame = _image_tokens(budget, model)
    max_len = _max_model_len(budget, video, tokens_per_image)
    dtype_bytes = gpu.dtype_bytes if gpu else 2
    kv_token = kv_bytes_per_token(model, dtype_bytes)
    processor_kwargs = _processor_kwargs(budget, model)
    groups_cells = video.nframes // FRAME_FACTOR * video.frame.cells(model.geometry.factor)
    profile = profile_video(budget, model, processor_kwargs, max_len, groups_cells)
    # vLLM reads these as the profile's dummy options, which can only shrink its dummy: give it
    # the dummy it builds anyway (the worst case's own frame count is above its cap, and a frame
    # side of the worst case's could shrink a near-square dummy of the same area).
    limit: dict[str, dict[str, int]] = {
        "video": {
            "count": budget.videos_per_prompt,
            "num_frames": profile["frames_per_item"],
            "width": profile["width"],
            "height": profile["height"],
        },
        "image": {"count": budget.images_per_prompt},
    }
    if image_frame is not None:
        limit["image"].update(width=image_frame.width, height=image_frame.height)

    if max_len > model.max_position_embeddings:
        problems.append(_context_problem(budget, model, video, tokens_per_image, max_len))

    # The batch holds the largest media item whole, and the encoder budget (this, in vLLM) holds
    # enough profile dummies to cover the worst-case video (profile_video).
    batched = max(VLLM_DEFAULT_BATCHED_TOKENS, video.tokens, tokens_per_image, profile["tokens"])
    weights = kv_avail = concurrency = None
    if gpu is not None:
        weights = int(model.parameters * gpu.dtype_bytes)
        total = gpu.count * gpu.memory_bytes * gpu.memory_utilization
        overhead = gpu.overhead_bytes(model, batched)
        kv_avail = int(total - weights - gpu.count * overhead)
        concurrency = max(0, kv_avail // (max_len * kv_token)) if kv_avail > 0 else 0
        if concurrency < 1:
            problems.append(_memory_problem(budget, model, gpu, video, max_len, kv_avail, kv_token, overhead))

    return Plan(
        model=model.label,
        family=model.family.value,
        feasible=not problems,
        problems=problems,
        frames_per_video=video.nframes,
        frame_min_pixels=budget.min_pixels or 0,
        frame_max_pixels=video.pixel_cap,
        worst_case_frame={
            "height": video.frame.height,
            "width": video.frame.width,
            "source_height": video.frame.source_height,
            "source_width": video.frame.source_width,
        },
        tokens_per_frame_group=video.frame.cells(model.geometry.factor),
        tokens_per_video=video.tokens,
        tokens_per_image=tokens_per_image,
        max_model_len=max_len,
        context_limit=model.max_position_embeddings,
        limit_mm_per_prompt=limit,
        mm_processor_kwargs=processor_kwargs,
        fetch_timeout_seconds=fetch_timeout(budget),
        max_video_bytes=budget.max_video_bytes,
        max_seconds=budget.max_seconds,
        fps=budget.fps,
        videos_per_prompt=budget.videos_per_prompt,
        images_per_prompt=budget.images_per_prompt,
        kv_bytes_per_token=kv_token,
        kv_bytes_per_request=kv_token * max_len,
        max_num_batched_tokens=batched,
        profile_video=profile,
        weights_bytes=weights,
        kv_cache_bytes_available=kv_avail,
        concurrent_requests=concurrency,
    )


def validate_budget(budget: VideoBudget) -> list[str]:
    """What is wrong with a budget as declared, one sentence each, naming the CR key and the flag.

    Pixel fields left None are not checked here (they take the family's defaults, which fit).
    """
    n = label
    checks = [
        (budget.max_seconds > 0, f"{n('max_seconds')} must be positive (got {budget.max_seconds})"),
        (budget.fps > 0, f"{n('fps')} must be positive (got {budget.fps})"),
        (budget.max_frames >= FRAME_FACTOR, f"{n('max_frames')} must be at least 2 (got {budget.max_frames})"),
        (budget.videos_per_prompt >= 0, f"{n('videos_per_prompt')} must not be negative"),
        (budget.images_per_prompt >= 0, f"{n('images_per_prompt')} must not be negative"),
        (
            budget.videos_per_prompt + budget.images_per_prompt > 0,
            f"{n('videos_per_prompt')} and {n('images_per_prompt')} are both 0",
        ),
        (
            budget.min_pixels is None or budget.max_pixels is None or budget.min_pixels <= budget.max_pixels,
            f"{n('min_pixels')} = {budget.min_pixels} is above {n('max_pixels')} = {budget.max_pixels}",
        ),
        (
            budget.image_min_pixels is None
            or budget.image_max_pixels is None
            or budget.image_min_pixels <= budget.image_max_pixels,
            f"{n('image_min_pixels')} = {budget.image_min_pixels} is above "
            f"{n('image_max_pixels')} = {budget.image_max_pixels}",
        ),
        (budget.min_pixels is None or budget.min_pixels > 0, f"{n('min_pixels')} must be positive"),
        (budget.total_pixels is None or budget.total_pixels > 0, f"{n('total_pixels')} must be positive"),
        (budget.max_video_bytes > 0, f"{n('max_video_bytes')} must be positive"),
        (budget.min_fetch_bandwidth > 0, f"{n('min_fetch_bandwidth')} must be positive"),
        (budget.max_output_tokens > 0, f"{n('max_output_tokens')} must be positive"),
        (budget.max_prompt_tokens >= 0, f"{n('max_prompt_tokens')} must not be negative"),
    ]
    return [message for ok, message in checks if not ok]


def _invalid_plan(budget: VideoBudget, model: ModelSpec, problems: list[str]) -> Plan:
    return Plan(
        model=model.label,
        family=model.family.value,
        feasible=False,
        problems=problems,
        frames_per_video=0,
        frame_min_pixels=0,
        frame_max_pixels=0,
        worst_case_frame={},
        tokens_per_frame_group=0,
        tokens_per_video=0,
        tokens_per_image=0,
        max_model_len=0,
        context_limit=model.max_position_embeddings,
        limit_mm_per_prompt={},
        mm_processor_kwargs={},
        fetch_timeout_seconds=0.0,
        max_video_bytes=budget.max_video_bytes,
        max_seconds=budget.max_seconds,
        fps=budget.fps,
        videos_per_prompt=budget.videos_per_prompt,
        images_per_prompt=budget.images_per_prompt,
        kv_bytes_per_token=0,
        kv_bytes_per_request=0,
    )


def _fits(budget: VideoBudget, model: ModelSpec, limit_tokens: int) -> bool:
    video = _video_cost(budget, model)
    tokens_image, _ = _image_tokens(budget, model)
    return _max_model_len(budget, video, tokens_image) <= limit_tokens


def _largest_fitting(budget: VideoBudget, model: ModelSpec, limit_tokens: int, **vary: tuple[str, list[int]]) -> str:
    """Suggestions: for each knob, the largest candidate value that fits ``limit_tokens``.

    Cost never decreases as maxFrames or maxPixels grows (the worst case is a maximum over a
    growing set), so a binary search over the descending candidates finds the boundary.
    """
    suggestions = []
    for name, (attr, candidates) in vary.items():
        low, high = 0, len(candidates)  # candidates[high:] all fit, candidates[:low] do not
        while low < high:
            mid = (low + high) // 2
            if _fits(replace(budget, **{attr: candidates[mid]}), model, limit_tokens):
                high = mid
            else:
                low = mid + 1
        if low < len(candidates):
            suggestions.append(f"lower {name} to {candidates[low]:,}")
    return " or ".join(suggestions) if suggestions else "reduce videosPerPrompt, maxPromptTokens or maxOutputTokens"


def _suggest(budget: VideoBudget, model: ModelSpec, video: _VideoCost, limit_tokens: int) -> str:
    f2 = model.geometry.factor**2
    frame_options = list(range(video.nframes - 2, FRAME_FACTOR - 1, -2))
    min_cells = (budget.min_pixels or f2) // f2
    pixel_options = [c * f2 for c in range(video.frame.cells(model.geometry.factor) - 1, min_cells - 1, -1)]
    return _largest_fitting(
        budget,
        model,
        limit_tokens,
        maxFrames=("max_frames", frame_options),
        maxPixels=("max_pixels", pixel_options),
    )


def _context_problem(budget: VideoBudget, model: ModelSpec, video: _VideoCost, tokens_image: int, max_len: int) -> str:
    return (
        f"needs {max_len:,} tokens per request but {model.label}'s context is "
        f"{model.max_position_embeddings:,}: {_suggest(budget, model, video, model.max_position_embeddings)}"
    )


def _memory_problem(
    budget: VideoBudget,
    model: ModelSpec,
    gpu: GpuSpec,
    video: _VideoCost,
    max_len: int,
    kv_avail: int,
    kv_token: int,
    overhead_per_gpu: int,
) -> str:
    gib = gpu.memory_bytes / GiB
    if kv_avail <= 0:
        return (
            f"{model.label}'s weights (~{model.parameters * gpu.dtype_bytes / GiB:.1f} GiB) do not fit "
            f"{gpu.count} x {gib:.0f} GiB at {gpu.memory_utilization:.0%} utilization: use more GPUs "
            "(tensor parallel) or larger ones"
        )
    fits_tokens = kv_avail // kv_token
    needed_gpus = gpu.count
    while needed_gpus < 64:
        needed_gpus *= 2
        total = needed_gpus * gpu.memory_bytes * gpu.memory_utilization
        overhead = needed_gpus * overhead_per_gpu
        if total - model.parameters * gpu.dtype_bytes - overhead >= max_len * kv_token:
            break
    return (
        f"one full-budget request needs {max_len:,} tokens of KV cache ({max_len * kv_token / GiB:.1f} GiB) but "
        f"{gpu.count} x {gib:.0f} GiB leaves room for {fits_tokens:,} tokens: "
        f"{_suggest(budget, model, video, min(fits_tokens, model.max_position_embeddings))}, or use {needed_gpus} GPUs"
    )


@dataclass(frozen=True)
class VideoPrice:
    """What one concrete video costs under a budget: the frames sampled, their size, the tokens."""

    nframes: int
    height: int
    width: int
    tokens: int


def price_video(
    budget: VideoBudget, geometry: FamilyGeometry, *, total_frames: int, source_fps: float, height: int, width: int
) -> VideoPrice:
    """Sample and resize one video exactly as the server does, and count its prompt tokens.

    Raises :class:`~.geometry.GeometryError` for a video the server would refuse. Qwen3-VL's
    timestamp labels are priced from the video's own duration (``total_frames / source_fps``).
    """
    resolved = budget.resolved(geometry)
    assert resolved.min_pixels is not None and resolved.max_pixels is not None
    nframes = smart_nframes(total_frames, source_fps, resolved.fps, resolved.max_frames)
    cap = frame_pixel_cap(nframes, resolved.min_pixels, resolved.max_pixels, resolved.total_pixels)
    out_h, out_w = smart_resize(height, width, geometry.factor, resolved.min_pixels, cap)
    tokens = video_tokens(geometry, nframes, out_h, out_w, total_frames / source_fps)
    return VideoPrice(nframes, out_h, out_w, tokens)
