"""Start-up: the CLI contract with the operator, and failing fast before any engine is built."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from videomodel_server.budget import BUILTIN_MODELS, Family, VideoBudget
from videomodel_server.checkpoint import CheckpointError, model_spec_from_config, read_checkpoint
from videomodel_server.cli import main, parse_settings
from videomodel_server.engine import EngineConfig, engine_argv
from videomodel_server.settings import ServerSettings
from videomodel_server.wiring import StartupError, engine_config, resolve

OPERATOR_FLAGS = [
    "--model",
    "/models/m",
    "--served-model-name",
    "demo",
    "--family",
    "qwen2_vl",
    "--host",
    "0.0.0.0",
    "--port",
    "8000",
    "--max-seconds",
    "10",
    "--fps",
    "2",
    "--max-frames",
    "8",
    "--min-pixels",
    "3136",
    "--max-pixels",
    "50176",
    "--total-pixels",
    "400000",
    "--videos-per-prompt",
    "1",
    "--images-per-prompt",
    "0",
    "--max-video-bytes",
    "16777216",
    "--max-prompt-tokens",
    "256",
    "--max-output-tokens",
    "64",
    "--fetch-timeout",
    "10",
    "--max-model-len",
    "642",
    "--tensor-parallel-size",
    "1",
    "--dtype",
    "float32",
    "--gpu-memory-utilization",
    "0.1",
    "--allowed-media-domains",
    "a.example,B.example",
    "--allowed-local-media-path",
    "/media",
    "--allow-http",
    "--max-concurrent-requests",
    "3",
    "--max-queued-requests",
    "7",
    "--decode-workers",
    "2",
    "--",
    "--enforce-eager",
    "--seed",
    "3",
]


def test_every_operator_flag_parses() -> None:
    s = parse_settings(OPERATOR_FLAGS, environ={"VIDEOMODEL_API_KEY": "k"})
    assert (s.model, s.served_model_name, s.family, s.port) == (Path("/models/m"), "demo", Family.QWEN2_VL, 8000)
    assert (s.max_seconds, s.fps, s.max_frames, s.min_pixels, s.max_pixels, s.total_pixels) == (
        10,
        2,
        8,
        3136,
        50176,
        400000,
    )
    assert (s.videos_per_prompt, s.images_per_prompt, s.max_video_bytes) == (1, 0, 16777216)
    assert (s.max_prompt_tokens, s.max_output_tokens, s.fetch_timeout, s.max_model_len) == (256, 64, 10, 642)
    assert (s.tensor_parallel_size, s.dtype, s.gpu_memory_utilization) == (1, "float32", 0.1)
    assert s.allowed_media_domains == ("a.example", "b.example") and s.allowed_local_media_path == Path("/media")
    assert s.allow_http and (s.max_concurrent_requests, s.max_queued_requests, s.decode_workers) == (3, 7, 2)
    assert s.engine_args == ("--enforce-eager", "--seed", "3")
    assert s.api_key is not None and s.api_key.get_secret_value() == "k"
    assert s.media_exempt_networks == ()


def test_only_model_is_required_and_budget_defaults_are_videobudgets() -> None:
    s = parse_settings(["--model", "/m"], environ={})
    default = VideoBudget()
    assert s.budget() == default
    assert s.port == 8000 and not s.allow_http and s.api_key is None
    with pytest.raises(SystemExit):
        parse_settings([], environ={})
    with pytest.raises(SystemExit):
        parse_settings(["--model", "/m", "--fps", "-1"], environ={})


def test_derived_settings_follow_the_budget() -> None:
    s = parse_settings(["--model", "/m", "--max-seconds", "20"], environ={})
    resolved = resolve(s, BUILTIN_MODELS["Qwen2-VL-7B"])
    assert resolved.max_model_len == resolved.plan.max_model_len
    assert resolved.fetch_timeout == resolved.plan.fetch_timeout_seconds
    config = engine_config(s, resolved)
    assert config.limit_mm_per_prompt["video"]["num_frames"] == 40
    assert config.max_num_batched_tokens == max(2048, resolved.plan.tokens_per_video)
    argv = engine_argv(config)
    assert argv[argv.index("--max-model-len") + 1] == str(resolved.plan.max_model_len)
    assert json.loads(argv[argv.index("--limit-mm-per-prompt") + 1]) == resolved.plan.limit_mm_per_prompt


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--max-seconds", "600", "--max-frames", "1200"], "context is 32,768"),
        (["--max-model-len", "100"], "is below the"),
        (["--", "--max-model-len", "9"], "--max-model-len is set by videomodel-server"),
        (["--", "--max-num-batched-tokens", "16"], "below the"),
    ],
)
def test_unservable_settings_fail_fast(flags: list[str], needle: str) -> None:
    s = parse_settings(["--model", "/m", *flags], environ={})
    with pytest.raises(StartupError, match="cannot serve") as info:
        resolve(s, BUILTIN_MODELS["Qwen2-VL-7B"])
    assert needle in str(info.value)


def _config(family: str = "qwen2_vl", **text: object) -> dict[str, object]:
    patch = 16 if family == "qwen3_vl" else 14
    return {
        "model_type": family,
        "text_config": {
            "max_position_embeddings": 32768,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "hidden_size": 128,
            **text,
        },
        "vision_config": {"patch_size": patch, "spatial_merge_size": 2, "temporal_patch_size": 2},
    }


def test_model_spec_comes_from_config_json() -> None:
    spec = model_spec_from_config(_config(), "tiny")
    assert (spec.family, spec.max_position_embeddings, spec.num_hidden_layers) == (Family.QWEN2_VL, 32768, 2)
    assert (spec.num_key_value_heads, spec.head_dim) == (1, 64)  # hidden / heads when head_dim is absent
    assert model_spec_from_config(_config(head_dim=32), "tiny").head_dim == 32


@pytest.mark.parametrize(
    ("config", "declared", "needle"),
    [
        (_config("qwen3_vl"), Family.QWEN2_VL, "--family is qwen2_vl but the checkpoint's config.json is qwen3_vl"),
        ({**_config(), "model_type": "llama"}, None, "model_type 'llama'"),
        ({**_config(), "vision_config": {"patch_size": 16}}, None, "patch_size 16 (expected 14)"),
        ({**_config(), "text_config": {"num_hidden_layers": 2}}, None, "text_config.num_attention_heads"),
    ],
)
def test_bad_checkpoints_are_refused(config: dict[str, object], declared: Family | None, needle: str) -> None:
    with pytest.raises(CheckpointError) as info:
        model_spec_from_config(config, "x", declared)
    assert needle in str(info.value)


def test_cli_fails_fast_on_a_real_checkpoint(
    tiny_model_dir: Callable[[Family], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tiny_model_dir(Family.QWEN2_VL)
    spec = read_checkpoint(path, "tiny")
    assert spec.family == Family.QWEN2_VL and spec.parameters > 0
    assert main(["--model", str(path), "--family", "qwen3_vl"]) == 2
    assert "--family is qwen3_vl but the checkpoint's config.json is qwen2_vl" in capsys.readouterr().err
    assert main(["--model", str(path), "--max-seconds", "3600", "--max-frames", "7200"]) == 2
    assert "context is 32,768" in capsys.readouterr().err
    assert main(["--model", str(path.parent / "does-not-exist")]) == 2
    assert "config.json does not exist" in capsys.readouterr().err


def test_engine_config_is_plain_data() -> None:
    config = EngineConfig(Path("/m"), "n", 10, {}, {})
    assert engine_argv(config)[:2] == ["--model", "/m"]
    ServerSettings(model=Path("/m"))  # every other field has a default
