"""Native video on every family: the engine's prompt token count equals the budget module's prediction.

One module-scoped server per family, started one at a time (pytest groups module-scoped
parameters). Qwen2-VL is covered in depth by test_engine_qwen2_vl.py; here Qwen2.5-VL (M-RoPE
time from the true sampling fps) and Qwen3-VL (a "<t seconds>" label per temporal group).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from videomodel_devtools.synthetic_videos import VideoSpec, make_video
from videomodel_server.budget import Family, VideoBudget

from .conftest import data_url, predicted_video_tokens, video_part
from .engine_harness import ENGINE_PASSTHROUGH, STOPPED_CLEANLY, ServerProcess
from .test_engine_qwen2_vl import budget_flags

pytestmark = pytest.mark.engine

BUDGETS = {
    Family.QWEN2_5_VL: VideoBudget(
        max_seconds=12,
        fps=2,
        max_frames=12,
        min_pixels=4 * 28 * 28,
        max_pixels=48 * 28 * 28,
        max_prompt_tokens=128,
        max_output_tokens=16,
    ),
    Family.QWEN3_VL: VideoBudget(
        max_seconds=12,
        fps=2,
        max_frames=12,
        min_pixels=4 * 32 * 32,
        max_pixels=48 * 32 * 32,
        max_prompt_tokens=128,
        max_output_tokens=16,
    ),
}
CLIPS = [
    VideoSpec(width=320, height=240, fps=10, seconds=3.0),
    VideoSpec(width=180, height=320, fps=15, seconds=5.0),  # portrait
    VideoSpec(width=160, height=120, fps=30000 / 1001, seconds=11.0),  # NTSC rate, sampled sparser
]
PROMPT = "Describe the video."


@pytest.fixture(scope="module", params=list(BUDGETS), ids=lambda f: f.value)
def family_server(
    request: pytest.FixtureRequest, tiny_model_dir: Callable[[Family], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Family, ServerProcess]]:
    family: Family = request.param
    args = [
        "--model",
        str(tiny_model_dir(family)),
        "--served-model-name",
        "tiny",
        "--family",
        family.value,
        *budget_flags(BUDGETS[family]),
        "--decode-workers",
        "1",
        *ENGINE_PASSTHROUGH,
    ]
    proc = ServerProcess(args, tmp_path_factory.mktemp(family.value) / "server.log").start()
    try:
        yield family, proc
    finally:
        assert proc.stop() in STOPPED_CLEANLY, proc.tail()


def _ask(proc: ServerProcess, content: list[Any], **kw: Any) -> Any:
    client = openai.OpenAI(base_url=proc.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    return client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": content}], max_tokens=2, **kw
    )


@pytest.mark.parametrize("spec", CLIPS, ids=["320x240", "portrait", "ntsc-11s"])
def test_prompt_tokens_equal_the_budget_prediction(
    family_server: tuple[Family, ServerProcess], spec: VideoSpec
) -> None:
    family, proc = family_server
    text_only = _ask(proc, [{"type": "text", "text": PROMPT}]).usage.prompt_tokens
    out = _ask(proc, [video_part(data_url(make_video(spec))), {"type": "text", "text": PROMPT}])
    assert out.usage.prompt_tokens == text_only + predicted_video_tokens(family, spec, BUDGETS[family])


def test_streaming(family_server: tuple[Family, ServerProcess]) -> None:
    _, proc = family_server
    stream = _ask(
        proc,
        [video_part(data_url(make_video(CLIPS[0]))), {"type": "text", "text": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1
