"""The declared worst case is proven at start: the engine runs it before the server reports ready.

The real server (CLI, vLLM CPU engine) on the tiny Qwen2-VL checkpoint, whose token counts the
budget module prices exactly. One server that warms up and serves, one engine (in process) given
a context shorter than the worst case, which must refuse to become ready and say which budget.
The warm-up request itself (shapes, timestamps, its price) is checked without an engine on every
family's built-in model.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from tests.harness.process import ENGINE_PASSTHROUGH, ServerProcess
from videomodel_server.budget import BUILTIN_MODELS, Family, VideoBudget
from videomodel_server.budget.contract import to_flags
from videomodel_server.cli import parse_settings
from videomodel_server.engine import VllmEngine, WarmupFailed
from videomodel_server.settings import ServerSettings
from videomodel_server.wiring import engine_config, resolve, resolve_checkpoint, worst_case_warmup

FAMILY = Family.QWEN2_VL
BUDGET = VideoBudget(
    max_seconds=10,
    fps=2,
    max_frames=8,
    min_pixels=4 * 28 * 28,
    max_pixels=64 * 28 * 28,
    videos_per_prompt=2,
    images_per_prompt=1,
    image_max_pixels=128 * 28 * 28,  # above a frame's: the engine must not shrink it to one (docs/gpu.md, run 4)
    max_prompt_tokens=64,
    max_output_tokens=16,
)


def _settings(model: Path) -> ServerSettings:
    return ServerSettings.model_validate(
        {"model": {"model": model, "family": FAMILY}, "budget": BUDGET, "engine_args": ENGINE_PASSTHROUGH[1:]}
    )


def _log(path: Path) -> list[dict[str, object]]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return lines


@pytest.mark.parametrize("name", ["Qwen2-VL-7B", "Qwen2.5-VL-7B", "Qwen3-VL-8B"])
def test_the_warmup_is_the_plans_worst_case_and_can_be_skipped(name: str) -> None:
    model = BUILTIN_MODELS[name]
    budget = replace(VideoBudget(), images_per_prompt=1, videos_per_prompt=2, max_frames=32)
    settings = parse_settings(["--model", "/m", *to_flags(budget)], environ={})
    resolved = resolve(settings, model)
    plan, warmup = resolved.plan, engine_config(settings, resolved).warmup
    assert warmup is not None and warmup == worst_case_warmup(resolved)
    assert (warmup.videos, warmup.images) == (2, 1)
    assert warmup.video_shape == (
        plan.frames_per_video,
        plan.worst_case_frame["height"],
        plan.worst_case_frame["width"],
    )
    assert len(warmup.video_metadata["frames_indices"]) == plan.frames_per_video
    assert warmup.video_metadata["duration"] <= budget.max_seconds
    # Exact for this input; the plan's price bounds it (Qwen3-VL's timestamp labels), equal otherwise.
    worst = 2 * plan.tokens_per_video + plan.tokens_per_image
    assert warmup.media_tokens == worst if model.family != Family.QWEN3_VL else worst - 2 < warmup.media_tokens <= worst
    request = warmup.engine_input("prompt")
    assert request.videos[0].frames.shape == (*warmup.video_shape, 3) and request.videos[0].frames.dtype.name == "uint8"
    assert request.images[0].shape == (*warmup.image_shape, 3)
    assert not (request.videos[0].frames[0, 0, 0] == request.videos[1].frames[0, 0, 0]).all()  # no cache hit

    skipped = parse_settings(["--model", "/m", *to_flags(budget), "--skip-warmup"], environ={})
    assert engine_config(skipped, resolve(skipped, model)).warmup is None


@pytest.mark.engine
def test_ready_only_after_the_worst_case_ran_with_the_predicted_tokens(
    tiny_model_dir: Callable[[Family], Path], tmp_path: Path
) -> None:
    model = tiny_model_dir(FAMILY)
    with ServerProcess.tiny(model, FAMILY, BUDGET, tmp_path).serving() as proc:
        # ServerProcess.start returned at the first 200 from /health: the warm-up had finished by then.
        records = _log(proc.log_path)
        messages = [str(r["msg"]) for r in records]
        warmup = next(r for r in records if r.get("reason") == "warmup")
        assert messages.index(str(warmup["msg"])) < messages.index("engine ready")
        assert not [r for r in records if r.get("reason") in ("warmup_token_mismatch", "warmup_failed")], messages
        # What the engine counted is the rendered text plus the plan's worst-case media, to the token.
        resolved = resolve_checkpoint(_settings(model))
        plan = resolved.plan
        spec = worst_case_warmup(resolved)
        assert spec.video_shape == (
            plan.frames_per_video,
            plan.worst_case_frame["height"],
            plan.worst_case_frame["width"],
        )
        assert spec.media_tokens == 2 * plan.tokens_per_video + plan.tokens_per_image
        counted = warmup["prompt_tokens"]
        assert isinstance(counted, int)
        assert f"{counted} prompt tokens counted, {counted} predicted" in str(warmup["msg"])
        assert spec.media_tokens < counted < spec.media_tokens + 64  # the media, a short instruction, the template
        assert "videosPerPrompt=2 of 8 frames" in str(warmup["msg"])
        assert httpx.get(proc.url + "/health", timeout=5).json() == {"status": "ok"}


@pytest.mark.engine
def test_a_worst_case_the_engine_refuses_fails_start_naming_the_budget(
    tiny_model_dir: Callable[[Family], Path],
) -> None:
    settings = _settings(tiny_model_dir(FAMILY))
    resolved = resolve_checkpoint(settings)
    # An engine whose context holds the videos but not the whole worst case: it loads, then the
    # warm-up's prompt is refused. (The server itself never renders this: --max-model-len below
    # the plan's is refused at start-up; this stands for any engine that cannot take the budget.)
    short = 2 * resolved.plan.tokens_per_video
    engine = VllmEngine(replace(engine_config(settings, resolved), max_model_len=short))

    async def start() -> None:
        try:
            await engine.start()
        finally:
            assert not engine.ready
            await engine.shutdown()

    with pytest.raises(WarmupFailed) as info:
        asyncio.run(start())
    message = str(info.value)
    del info  # its traceback holds vLLM's frames: let them go while vLLM's modules are still loaded
    gc.collect()
    assert "cannot serve the declared budget's worst case" in message
    assert "videosPerPrompt=2 of 8 frames" in message and "imagesPerPrompt=1" in message
    assert f"max_model_len {short:,}" in message
