"""The server started with exactly what the operator renders serves the budget it promises.

The CR is ``examples/qwen2-vl-7b-a100.yaml`` with two images per prompt (the case that
crash-looped when ``imageMaxPixels`` fell between the operator and the server). Its Deployment's
arguments and ConfigMap are laid out as the kubelet would (``container_argv``); the only changes
are the ones a laptop forces: the checkpoint is the tiny random-weight Qwen2-VL built here (same
family geometry and context as Qwen2-VL-7B), the port is a free loopback port, and the CPU engine
gets its KV cache size (a vLLM pass-through flag). Then one request carries the worst case:
two largest-allowed images and a video long enough to sample the most frames at the largest
frame size, and the engine's own prompt count must equal the budget module's price.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.harness import predicted_video_tokens
from tests.harness.operator import image_budget_cr
from tests.harness.process import ENGINE_PASSTHROUGH, ServerProcess
from videomodel_devtools.pod import container_argv
from videomodel_devtools.synthetic_videos import VideoSpec, make_video
from videomodel_operator.planning import plan_for
from videomodel_operator.rendering import render
from videomodel_server.budget import Family, Plan, image_tokens, smart_resize

pytestmark = pytest.mark.engine

SIDE = 448
"""sqrt(maxPixels = 200704): frames and images of this size are the largest the budget allows."""
WORST_VIDEO = VideoSpec(width=SIDE, height=SIDE, fps=4, seconds=70.0, crf=30)
"""70 s at 2 fps samples 140 frames, capped at maxFrames (128): the most frames, each at the cap."""


@pytest.fixture(scope="module")
def rendered(
    tiny_model_dir: Callable[[Family], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, Plan]]:
    cr = image_budget_cr()
    plan = plan_for(cr.spec)
    root = tmp_path_factory.mktemp("pod")
    argv = container_argv(render(cr, plan), root)
    argv[argv.index("--model") + 1] = str(tiny_model_dir(Family.QWEN2_VL))
    port = argv.index("--port")
    del argv[port : port + 2]  # ServerProcess listens on a free loopback port instead
    assert "--" not in argv
    with ServerProcess([*argv, *ENGINE_PASSTHROUGH], root / "server.log").serving() as proc:
        yield proc, plan


def _png(width: int, height: int) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 200)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_two_images_and_a_worst_case_video_in_one_request(rendered: tuple[ServerProcess, Plan]) -> None:
    server, plan = rendered
    cr = image_budget_cr()
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=900)
    name = cr.spec.served_name
    question: Any = {"type": "text", "text": "Compare the pictures with the video."}
    text_only = client.chat.completions.create(
        model=name, messages=[{"role": "user", "content": [question]}], max_tokens=1
    ).usage
    assert text_only is not None

    video = "data:video/mp4;base64," + base64.b64encode(make_video(WORST_VIDEO).read_bytes()).decode()
    content: Any = [
        {"type": "image_url", "image_url": {"url": _png(SIDE, SIDE)}},
        {"type": "image_url", "image_url": {"url": _png(SIDE, SIDE)}},
        {"type": "video_url", "video_url": {"url": video}},
        question,
    ]
    out = client.chat.completions.create(
        model=name, messages=[{"role": "user", "content": content}], max_tokens=4, temperature=0
    )
    assert out.usage is not None
    budget = cr.spec.to_budget()
    geometry = cr.spec.to_model_spec().geometry
    resolved = budget.resolved(geometry)
    assert resolved.image_min_pixels is not None and resolved.image_max_pixels is not None
    h, w = smart_resize(SIDE, SIDE, geometry.factor, resolved.image_min_pixels, resolved.image_max_pixels)
    per_image = image_tokens(geometry, h, w)
    per_video = predicted_video_tokens(Family.QWEN2_VL, WORST_VIDEO, budget)
    assert (per_image, per_video) == (plan.tokens_per_image, plan.tokens_per_video), "not the worst case"
    assert out.usage.prompt_tokens == text_only.prompt_tokens + 2 * per_image + per_video
    assert out.usage.prompt_tokens + budget.max_output_tokens <= plan.max_model_len
    media = (out.model_extra or {})["videomodel"]["media"]
    videos = [m for m in media if m["kind"] == "video"]
    assert [(m["frames"], m["height"], m["width"]) for m in videos] == [(plan.frames_per_video, SIDE, SIDE)]
