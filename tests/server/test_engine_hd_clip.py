"""The closing-note measurement: a 60 s 1280x720 H.264 clip at 2 fps through the real server.

Asserts the native-video token count and prints the server's own stage timings and the peak
resident memory (VmHWM) of the server process and of its engine/worker children.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.harness import MediaServer, predicted_video_tokens, video_part
from tests.harness.process import ServerProcess, descendants
from videomodel_devtools.synthetic_videos import hd_clip, make_video
from videomodel_server.budget import Family, VideoBudget

pytestmark = pytest.mark.engine

FAMILY = Family.QWEN2_VL
BUDGET = VideoBudget(max_seconds=61, fps=2, max_frames=128, max_output_tokens=16, max_prompt_tokens=128)
SPEC = hd_clip(seconds=60.0)


@pytest.fixture(scope="module")
def hd_server(
    tiny_model_dir: Callable[[Family], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {"VIDEOMODEL_UNSAFE_MEDIA_EXEMPT_NETWORKS": "127.0.0.1/32"}
    log_dir = tmp_path_factory.mktemp("hd")
    with ServerProcess.tiny(tiny_model_dir(FAMILY), FAMILY, BUDGET, log_dir, "--allow-http", env=env).serving() as proc:
        yield proc


def _rss(pid: int) -> dict[str, int]:
    out = {}
    for p in [pid, *descendants(pid)]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        name = fields["Name"].strip()
        out[f"{name}[{p}]"] = int(fields["VmHWM"].split()[0]) * 1024
    return out


def test_60s_720p_clip_at_2fps(hd_server: ServerProcess, media_root: Path, media_server: MediaServer) -> None:
    (media_root / "hd.mp4").write_bytes(make_video(SPEC).read_bytes())
    client = openai.OpenAI(base_url=hd_server.url + "/v1", api_key="unused", max_retries=0, timeout=600)
    question: Any = {"type": "text", "text": "Describe the video."}
    text_only = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": [question]}], max_tokens=1
    ).usage
    assert text_only is not None
    assert hd_server.proc is not None
    rss_before = _rss(hd_server.proc.pid)
    runs = []
    for _ in range(2):  # the second run of the same video hits vLLM's multimodal and prefix caches
        out = client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": [video_part(f"{media_server.url}/hd.mp4"), question]}],  # type: ignore[misc,list-item]
            max_tokens=16,
        )
        assert out.usage is not None
        assert out.usage.prompt_tokens == text_only.prompt_tokens + predicted_video_tokens(FAMILY, SPEC, BUDGET)
        report = (out.model_extra or {})["videomodel"]
        assert report["media"][0]["frames"] == 120
        runs.append({"timings_ms": report["timings_ms"], "usage": out.usage.model_dump(), "media": report["media"]})
    result = {
        "clip": SPEC.__dict__,
        "runs": runs,
        "peak_rss_bytes_after_start": rss_before,
        "peak_rss_bytes_after_serving": _rss(hd_server.proc.pid),
    }
    print("\nHD clip measurement:", json.dumps(result, indent=1, default=str))
    (hd_server.log_path.parent / "hd_clip.json").write_text(json.dumps(result, indent=1, default=str))
