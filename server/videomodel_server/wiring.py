"""Start-up: from settings to a checked serving configuration and the wired :class:`AppState`.

:func:`resolve` is the fail-fast part (pure given the checkpoint's ModelSpec): it derives the
Plan through the budget module, takes explicit flags over derived values only where that is
safe, and raises :class:`StartupError` with every problem spelled out otherwise.
:func:`build_state` wires the parts; tests pass their own engine or loader.
:func:`worst_case_warmup` is the budget's worst case as one request, which the engine runs
before it reports ready (``--skip-warmup`` turns that off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .admission import Admission
from .api.chat.service import ChatService
from .api.state import AppState
from .budget import ModelSpec, Plan, VideoBudget, cr_key, derive, sample_indices, video_tokens
from .budget.contract import plan_differences
from .budget.plan import CHAT_TEMPLATE_TOKENS
from .checkpoint import read_checkpoint
from .engine import Engine, EngineConfig, VllmEngine, Warmup, check_passthrough
from .jobs import MediaRef, RequestLimits, Turn
from .loading import MediaLoader
from .metrics import Metrics
from .settings import ServerSettings


class StartupError(RuntimeError):
    """The server cannot serve this model with these settings; the message says why."""


@dataclass(frozen=True)
class Resolved:
    model: ModelSpec
    budget: VideoBudget
    """Resolved: the family's pixel defaults filled in."""
    plan: Plan
    max_model_len: int
    fetch_timeout: float


def resolve(settings: ServerSettings, model: ModelSpec) -> Resolved:
    budget = settings.budget.resolved(model.geometry)
    plan = derive(budget, model)
    problems = list(plan.problems)
    max_len = plan.max_model_len
    wanted = settings.engine.max_model_len
    if wanted is not None:
        if wanted < plan.max_model_len:
            problems.append(
                f"--max-model-len {wanted:,} is below the {plan.max_model_len:,} tokens the budget "
                "needs per request: lower the budget or raise --max-model-len"
            )
        max_len = wanted
    if max_len > model.max_position_embeddings and not plan.problems:
        problems.append(
            f"max_model_len {max_len:,} exceeds the model's context of {model.max_position_embeddings:,} tokens"
        )
    try:
        check_passthrough(settings.engine_args)
    except ValueError as exc:
        problems.append(str(exc))
    batched = passthrough_int(settings.engine_args, "--max-num-batched-tokens")
    if batched is not None and not plan.problems and batched < media_item_tokens(plan):
        problems.append(
            f"--max-num-batched-tokens {batched:,} is below the {media_item_tokens(plan):,} tokens of the largest "
            "in-budget media item: vLLM would refuse it (encoder cache); drop the flag or raise it"
        )
    if settings.expected_plan is not None and not plan.problems:
        differences = plan_differences(settings.expected_plan, plan)
        if differences:
            problems.append(
                "the plan derived here differs from the operator's (--budget-file); the operator and the server "
                "disagree on the budget arithmetic or the checkpoint is not the model the CR names: "
                + "; ".join(differences)
            )
    if problems:
        raise StartupError(f"cannot serve {model.label} with this budget:\n  - " + "\n  - ".join(problems))
    return Resolved(
        model=model,
        budget=budget,
        plan=plan,
        max_model_len=max_len,
        fetch_timeout=settings.media.fetch_timeout or plan.fetch_timeout_seconds,
    )


def resolve_checkpoint(settings: ServerSettings) -> Resolved:
    try:
        model = read_checkpoint(settings.model.model, settings.model_name, settings.model.family)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    return resolve(settings, model)


def media_item_tokens(plan: Plan) -> int:
    """The largest single media item the budget admits, in tokens."""
    return max(plan.tokens_per_video, plan.tokens_per_image)


def passthrough_int(args: tuple[str, ...], flag: str) -> int | None:
    """The integer value of ``flag`` in pass-through engine args (``--flag N`` or ``--flag=N``)."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args) and args[i + 1].isdigit():
            return int(args[i + 1])
        if arg.startswith(flag + "=") and arg.split("=", 1)[1].isdigit():
            return int(arg.split("=", 1)[1])
    return None


WARMUP_SOURCE_FPS = 30.0
"""The frame rate of the warm-up's notional source video (a common camera rate)."""


def worst_case_warmup(resolved: Resolved) -> Warmup:
    """The declared budget's worst case as one request, for the engine to run before it is ready.

    ``videosPerPrompt`` videos of the plan's worst-case frame count (``frames_per_video``) at its
    worst-case geometry (``worst_case_frame``), each sampled from a notional source lasting
    ``maxSeconds`` (so Qwen3-VL's timestamp labels are as long as a real one's), and
    ``imagesPerPrompt`` images at the largest image geometry: the media of the costliest request
    the budget admits, in the form the media pipeline hands the engine. The text is a short
    instruction, not ``maxPromptTokens`` of it: the text's cost is counted, not guessed, and the
    media is what takes the memory. The media's price is exact for this input (the frames'
    timestamps are known), so the engine's prompt count must match it to the token.
    """
    plan, budget, geometry = resolved.plan, resolved.budget, resolved.model.geometry
    frames = plan.frames_per_video if plan.videos_per_prompt else 0
    height, width = plan.worst_case_frame.get("height", 0), plan.worst_case_frame.get("width", 0)
    source_fps = max(WARMUP_SOURCE_FPS, math.ceil(frames / budget.max_seconds))
    total = max(frames, int(budget.max_seconds * source_fps))
    indices = sample_indices(total, frames) if frames else []
    video_price = video_tokens(
        geometry, frames, height, width, budget.max_seconds, frame_times=[i / source_fps for i in indices]
    )
    image = plan.limit_mm_per_prompt.get("image", {})
    image_shape = (image.get("height", 0), image.get("width", 0))
    parts: list[str | MediaRef] = [MediaRef("video", "", i) for i in range(plan.videos_per_prompt)]
    parts += [MediaRef("image", "", i) for i in range(plan.images_per_prompt)]
    parts.append("Describe what you see.")
    described = []
    if plan.videos_per_prompt:
        described.append(
            f"{cr_key('videos_per_prompt')}={plan.videos_per_prompt} of {frames} frames at {width}x{height} "
            f"({cr_key('max_seconds')}={budget.max_seconds:g}, {cr_key('fps')}={budget.fps:g}, "
            f"{cr_key('max_frames')}={budget.max_frames})"
        )
    if plan.images_per_prompt:
        described.append(f"{cr_key('images_per_prompt')}={plan.images_per_prompt} at {image_shape[1]}x{image_shape[0]}")
    return Warmup(
        turns=(Turn("user", tuple(parts)),),
        videos=plan.videos_per_prompt,
        video_shape=(frames, height, width),
        video_metadata={
            "fps": source_fps,
            "duration": total / source_fps,
            "total_num_frames": total,
            "frames_indices": indices,
            "do_sample_frames": False,
        },
        images=plan.images_per_prompt,
        image_shape=image_shape,
        media_tokens=plan.videos_per_prompt * video_price + plan.images_per_prompt * plan.tokens_per_image,
        budget=", ".join(described),
    )


def engine_config(settings: ServerSettings, resolved: Resolved) -> EngineConfig:
    batched = passthrough_int(settings.engine_args, "--max-num-batched-tokens")
    return EngineConfig(
        model=settings.model.model,
        served_model_name=settings.model_name,
        max_model_len=resolved.max_model_len,
        limit_mm_per_prompt=resolved.plan.limit_mm_per_prompt,
        # The server samples and resizes frames itself; transformers must not shrink long videos
        # on its own on top (docs/vllm-notes.md).
        mm_processor_kwargs={"cap_pixels_per_frame": False, **resolved.plan.mm_processor_kwargs},
        tensor_parallel_size=settings.engine.tensor_parallel_size,
        dtype=settings.engine.dtype,
        gpu_memory_utilization=settings.engine.gpu_memory_utilization,
        mm_processor_cache_gb=settings.engine.mm_processor_cache_gb,
        mm_encoder_tp_mode=settings.engine.mm_encoder_tp_mode,
        extra_args=settings.engine_args,
        max_num_batched_tokens=None if batched else resolved.plan.max_num_batched_tokens,
        warmup=None if settings.engine.skip_warmup else worst_case_warmup(resolved),
    )


def build_state(
    settings: ServerSettings,
    resolved: Resolved,
    loader: MediaLoader,
    engine: Engine | None = None,
    metrics: Metrics | None = None,
) -> AppState:
    metrics = metrics or Metrics()
    engine = engine or VllmEngine(engine_config(settings, resolved))
    limits = RequestLimits.from_plan(
        settings.model_name,
        resolved.budget,
        resolved.plan,
        max_text_bytes=settings.text_byte_limit(),
        check_media=loader.check,
        max_n=settings.requests.max_n,
        max_top_logprobs=settings.requests.max_top_logprobs,
        max_stop_sequences=settings.requests.max_stop_sequences,
        max_messages=settings.requests.max_messages,
    )
    admission = Admission(
        max_in_flight=settings.admission.max_concurrent_requests,
        max_queued=settings.admission.max_queued_requests,
        queue_timeout=settings.admission.queue_timeout,
        retry_after=settings.admission.retry_after_seconds,
    )
    service = ChatService(
        engine, loader, metrics, text_token_limit=resolved.budget.max_prompt_tokens + CHAT_TEMPLATE_TOKENS
    )
    return AppState(
        settings=settings,
        model=resolved.model,
        budget=resolved.budget,
        plan=resolved.plan,
        engine=engine,
        loader=loader,
        admission=admission,
        metrics=metrics,
        limits=limits,
        service=service,
    )
