"""`make demo`: the video budget end to end on this machine, CPU only, in a few minutes.

1. Prints the Plan the budget module derives for every example VideoModel (``videomodel plan``).
2. Renders the tiny Qwen2-VL example into the server flags the operator would put in its
   Deployment (``videomodel render``), and boots ``videomodel-server`` with exactly those flags
   on the locally built tiny random-weight Qwen2-VL checkpoint.
3. Sends a generated video through the official OpenAI client, by http URL (from a loopback
   server) and by data URL (streaming), and prints the answer, the token counts next to the
   budget module's prediction, and the server's stage timings.

The checkpoint has random weights: its answers are noise. What the demo shows is the plumbing:
native video through vLLM with the token count the budget predicted.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "demo-tiny-qwen2-vl.yaml"
CPU_ENGINE_ARGS = ["--", "--kv-cache-memory-bytes", str(256 * 1024**2), "--enforce-eager"]
"""vLLM on CPU: size the KV cache in bytes (the RAM fraction fails on a shared machine)."""


def section(title: str) -> None:
    print(f"\n{'=' * 100}\n{title}\n{'=' * 100}", flush=True)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "videomodel_operator.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def print_plans() -> None:
    section("1. The Plan of every example VideoModel (videomodel plan -o table)")
    for cr in sorted(ROOT.glob("examples/**/*.yaml")):
        result = run_cli("plan", "-f", str(cr), "-o", "table")
        verdict = {0: "feasible", 3: "INFEASIBLE (as intended for this example)"}.get(result.returncode, "error")
        print(f"\n--- {cr.relative_to(ROOT)}: {verdict}")
        print(result.stdout.rstrip() or result.stderr.rstrip())


def server_flags(model_dir: Path, port: int, mount_root: Path) -> list[str]:
    """The arguments the operator renders for the demo CR, its budget file laid out under ``mount_root``.

    Only the checkpoint path and the port change (no cluster, no pod network here).
    """
    from videomodel_devtools.pod import container_argv

    result = run_cli("render", "-f", str(EXAMPLE))
    if result.returncode != 0:
        raise SystemExit(f"videomodel render failed:\n{result.stderr}")
    args = container_argv([doc for doc in yaml.safe_load_all(result.stdout) if doc], mount_root)
    args[args.index("--model") + 1] = str(model_dir)
    args[args.index("--port") + 1] = str(port)
    return [*args, "--host", "127.0.0.1", "--allow-http", *CPU_ENGINE_ARGS]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, seconds: float = 600) -> None:
    start = time.monotonic()
    last = -30.0
    while time.monotonic() - start < seconds:
        if proc.poll() is not None:
            raise SystemExit(
                f"the server exited ({proc.returncode}):\n" + "\n".join(log.read_text().splitlines()[-30:])
            )
        try:
            status = httpx.get(url + "/health", timeout=2).status_code
        except httpx.HTTPError:
            status = 0
        if status == 200:
            print(f"    healthy after {time.monotonic() - start:.0f} s")
            return
        if time.monotonic() - last >= 15:
            print(
                f"    /health -> {status or 'no answer'} (loading the engine; {time.monotonic() - start:.0f} s)",
                flush=True,
            )
            last = time.monotonic()
        time.sleep(1)
    raise SystemExit("the server did not become healthy in time")


def show(label: str, usage: Any, report: dict[str, Any], predicted: int, text_only: int, answer: str) -> None:
    print(f"\n--- {label}")
    print(f"    answer (random weights: noise): {answer!r}")
    video = usage.prompt_tokens - text_only
    verdict = "MATCH" if video == predicted else "MISMATCH"
    print(
        f"    tokens: prompt {usage.prompt_tokens} = text {text_only} + video {video} "
        f"(budget module predicted {predicted}: {verdict}), completion {usage.completion_tokens}"
    )
    media = report.get("media", [{}])[0]
    print(
        f"    video: {media.get('frames')} frames of {media.get('width')}x{media.get('height')} "
        f"sampled at {media.get('sample_fps')} fps from {media.get('duration_seconds')} s"
    )
    timings = "  ".join(f"{k} {v:.1f} ms" for k, v in report.get("timings_ms", {}).items())
    print(f"    stage timings: {timings}")


def main() -> int:
    from videomodel_devtools.synthetic_videos import VideoSpec, make_video
    from videomodel_devtools.tiny_models import tiny_model_dir
    from videomodel_server.budget import FAMILIES, Family, VideoBudget, price_video

    print_plans()

    section("2. Boot videomodel-server on the tiny Qwen2-VL checkpoint with the demo CR's flags")
    model_dir = tiny_model_dir(Family.QWEN2_VL)
    port = free_port()
    media_dir = Path(tempfile.mkdtemp(prefix="videomodel-demo-"))
    flags = server_flags(model_dir, port, media_dir / "pod")
    print("    videomodel-server " + " ".join(flags))
    print(f"    (the budget file is the ConfigMap's serving.json, laid out under {media_dir / 'pod'})")
    spec = VideoSpec(width=320, height=240, fps=10, seconds=6.0)
    video = make_video(spec)
    (media_dir / "clip.mp4").write_bytes(video.read_bytes())
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(media_dir)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    log = media_dir / "server.log"
    env = {**os.environ, "VIDEOMODEL_UNSAFE_MEDIA_EXEMPT_NETWORKS": "127.0.0.1/32"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "videomodel_server.cli", *flags], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=300)
        card = client.models.list().data[0]
        print(f"    /v1/models: {card.id}, budget {json.dumps((card.model_extra or {})['budget'])}")

        section("3. A generated 6 s 320x240 H.264 video through the official OpenAI client")
        # The budget module's prediction for this video, from the CR's budget (what the server enforces).
        budget_spec = yaml.safe_load(EXAMPLE.read_text())["spec"]["budget"]
        budget = VideoBudget(
            max_seconds=budget_spec["maxSeconds"],
            fps=budget_spec["fps"],
            max_frames=budget_spec["maxFrames"],
            min_pixels=budget_spec["minPixels"],
            max_pixels=budget_spec["maxPixels"],
        )
        predicted = price_video(
            budget,
            FAMILIES[Family.QWEN2_VL],
            total_frames=round(spec.seconds * spec.fps),
            source_fps=spec.fps,
            height=spec.height,
            width=spec.width,
        ).tokens
        question = "What happens in this video?"
        text_only = client.chat.completions.create(
            model=card.id, messages=[{"role": "user", "content": [{"type": "text", "text": question}]}], max_tokens=1
        ).usage
        assert text_only is not None

        out = client.chat.completions.create(
            model=card.id,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "video_url",
                            "video_url": {"url": f"http://127.0.0.1:{httpd.server_address[1]}/clip.mp4"},
                        },
                        {"type": "text", "text": question},
                    ],
                }
            ],
            max_tokens=24,
            temperature=0.7,
            seed=1,
        )
        assert out.usage is not None
        answer = out.choices[0].message.content or ""
        show(
            "by http URL (loopback server), non-streaming",
            out.usage,
            (out.model_extra or {})["videomodel"],
            predicted,
            text_only.prompt_tokens,
            answer,
        )

        data = "data:video/mp4;base64," + base64.b64encode(video.read_bytes()).decode()
        stream = client.chat.completions.create(
            model=card.id,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "video_url", "video_url": {"url": data}}, {"type": "text", "text": question}],
                }
            ],
            max_tokens=24,
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces: list[str] = []
        final: Any = None
        for chunk in stream:
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
            else:
                final = chunk
        assert final is not None and final.usage is not None
        show(
            "by data URL, streaming (SSE)",
            final.usage,
            (final.model_extra or {})["videomodel"],
            predicted,
            text_only.prompt_tokens,
            "".join(pieces),
        )

        section("The Plan behind these flags (videomodel plan -o json, the same budget module the server runs)")
        plan = json.loads(run_cli("plan", "-f", str(EXAMPLE), "-o", "json").stdout)
        for key in (
            "frames_per_video",
            "worst_case_frame",
            "tokens_per_video",
            "max_model_len",
            "limit_mm_per_prompt",
            "mm_processor_kwargs",
            "fetch_timeout_seconds",
            "feasible",
        ):
            print(f"    {key}: {plan.get(key)}")
        print("\nThe tiny checkpoint has random weights: the answers above are noise by design. The token counts, the")
        print("sampling and the timings are the real thing. Server log: " + str(log))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        httpd.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
