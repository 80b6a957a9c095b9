"""Native video on every family: the engine's prompt token count equals the budget module's prediction.

The servers are conftest's ``family_server`` (one per family, shared with the other modules that
ask, started one at a time). Qwen2-VL is covered in depth by test_engine_qwen2_vl.py; here Qwen2.5-VL (M-RoPE
time from the true sampling fps) and Qwen3-VL (a "<t seconds>" label per temporal group).
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.harness import FAMILY_BUDGETS, data_url, predicted_video_tokens, video_part
from tests.harness.process import ServerProcess
from videomodel_devtools.synthetic_videos import VideoSpec, make_video
from videomodel_server.budget import Family

pytestmark = pytest.mark.engine

CLIPS = [
    VideoSpec(width=320, height=240, fps=10, seconds=3.0),
    VideoSpec(width=180, height=320, fps=15, seconds=5.0),  # portrait
    VideoSpec(width=160, height=120, fps=30000 / 1001, seconds=11.0),  # NTSC rate, sampled sparser
]
PROMPT = "Describe the video."


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
    assert out.usage.prompt_tokens == text_only + predicted_video_tokens(family, spec, FAMILY_BUDGETS[family])


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
