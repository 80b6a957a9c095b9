"""Start-up: the CLI contract with the operator, and failing fast before any engine is built."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from videomodel_server.budget import BUILTIN_MODELS, Family, VideoBudget
from videomodel_server.budget.contract import AdmissionSettings, EngineSettings
from videomodel_server.checkpoint import CheckpointError, model_spec_from_config, read_checkpoint
from videomodel_server.cli import Option, main, options, parse_settings
from videomodel_server.engine import EngineConfig, engine_argv
from videomodel_server.settings import ENV_API_KEY, ENV_UNSAFE_EXEMPT_NETWORKS, ServerSettings
from videomodel_server.wiring import StartupError, engine_config, resolve


def _non_default(opt: Option) -> tuple[list[str], object]:
    """A command-line value for ``opt`` that differs from its default, and what it parses into."""
    if opt.kind is bool:
        return [], True
    if opt.kind is tuple:
        return ["a.example,B.example"], ("a.example", "b.example") if opt.name == "allowed_media_domains" else (
            "a.example",
            "B.example",
        )
    if opt.kind is Path:
        return ["/elsewhere"], Path("/elsewhere")
    if opt.kind is Family:
        return ["qwen3_vl"], Family.QWEN3_VL
    if opt.kind is str:
        return ["float32"], "float32"
    value = (opt.default or 3) + 1
    if opt.kind is float:
        value = round(float(value) * 0.75 + 0.25, 2) if opt.name == "gpu_memory_utilization" else float(value)
        value = 0.5 if opt.name == "gpu_memory_utilization" else value
    return [str(value)], value


def test_every_settings_field_has_one_flag_that_reaches_it() -> None:
    """Iterates over the settings schema: a new field gets a flag, and the flag lands in its field."""
    opts = list(options())
    assert len({o.flag for o in opts}) == len(opts), "two settings fields share a flag"
    budget_fields = {f.name for f in dataclasses.fields(VideoBudget)}
    assert budget_fields <= {o.name for o in opts if o.group == "budget"}
    for opt in opts:
        if opt.dest == "model.model":
            continue
        argv, expected = _non_default(opt)
        s = parse_settings(["--model", "/m", opt.flag, *argv], environ={})
        assert getattr(getattr(s, opt.group), opt.name) == expected, opt.flag
        assert expected != opt.default, opt.flag


def test_environment_fills_the_settings_without_flags() -> None:
    env = {ENV_API_KEY: "k", ENV_UNSAFE_EXEMPT_NETWORKS: "127.0.0.1/32, ::1/128"}
    s = parse_settings(["--model", "/m", "--", "--enforce-eager", "--seed", "3"], environ=env)
    assert s.listen.api_key is not None and s.listen.api_key.get_secret_value() == "k"
    assert s.media.media_exempt_networks == ("127.0.0.1/32", "::1/128")
    assert s.engine_args == ("--enforce-eager", "--seed", "3")
    with pytest.raises(SystemExit):
        parse_settings(["--model", "/m", "--api-key", "k"], environ={})


def test_help_shows_real_defaults_and_the_environment(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_settings(["--help"], environ={})
    text = " ".join(capsys.readouterr().out.split())
    default = VideoBudget()
    assert f"--max-seconds X Longest video accepted. [s] (default: {default.max_seconds:g})" in text
    assert f"(default: {AdmissionSettings().max_concurrent_requests})" in text
    assert ENV_API_KEY in text and ENV_UNSAFE_EXEMPT_NETWORKS in text
    assert "VideoBudget()" not in text


def test_only_model_is_required_and_budget_defaults_are_videobudgets() -> None:
    s = parse_settings(["--model", "/m"], environ={})
    assert s.budget == VideoBudget()
    assert s.engine == EngineSettings() and s.admission == AdmissionSettings()
    assert s.listen.port == 8000 and not s.media.allow_http and s.listen.api_key is None
    with pytest.raises(SystemExit):
        parse_settings([], environ={})


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--fps", "-1"], "fps (--fps) must be positive"),
        (["--max-frames", "1"], "maxFrames (--max-frames) must be at least 2"),
        (["--max-concurrent-requests", "0"], "admission.max_concurrent_requests (--max-concurrent-requests)"),
        (["--port", "70000"], "--port:"),
        (["--fps", "two"], "--fps: invalid float value"),
    ],
)
def test_bad_values_exit_2_naming_the_flag(flags: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_settings(["--model", "/m", *flags], environ={})
    assert info.value.code == 2
    assert needle in capsys.readouterr().err


def test_derived_settings_follow_the_budget() -> None:
    s = parse_settings(["--model", "/m", "--max-seconds", "20"], environ={})
    resolved = resolve(s, BUILTIN_MODELS["Qwen2-VL-7B"])
    assert resolved.max_model_len == resolved.plan.max_model_len
    assert resolved.fetch_timeout == resolved.plan.fetch_timeout_seconds
    config = engine_config(s, resolved)
    assert resolved.plan.frames_per_video == 40
    assert config.limit_mm_per_prompt["video"]["num_frames"] == 14  # vLLM's Qwen2-VL profile dummy
    assert config.max_num_batched_tokens == resolved.plan.max_num_batched_tokens >= resolved.plan.tokens_per_video
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
    assert (spec.hidden_size, spec.deepstack_levels) == (128, 0)
    qwen3 = _config("qwen3_vl")
    qwen3["vision_config"] = {**qwen3["vision_config"], "deepstack_visual_indexes": [1, 3, 5]}  # type: ignore[dict-item]
    assert model_spec_from_config(qwen3, "tiny").deepstack_levels == 3  # vLLM keeps a batch buffer per level


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
    ServerSettings.model_validate({"model": {"model": "/m"}})  # every other field has a default


@pytest.mark.engine
def test_an_engine_that_cannot_start_stops_the_process_with_status_3(
    tiny_model_dir: Callable[[Family], Path], tmp_path: Path
) -> None:
    """vllm serve exits when its engine cannot start, and so does this server (status 3), rather
    than answering /health "dead" until the pod's startup probe gives up. Here vLLM is given a
    KV cache too small for one block."""
    import subprocess
    import sys
    import time

    from videomodel_server.cli import ENGINE_START_FAILED_EXIT

    log = tmp_path / "server.log"
    args = [sys.executable, "-m", "videomodel_server.cli", "--model", str(tiny_model_dir(Family.QWEN2_VL))]
    args += ["--port", "0", "--decode-workers", "1", "--", "--kv-cache-memory-bytes", "1", "--enforce-eager"]
    started = time.monotonic()
    with log.open("wb") as out:
        status = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, timeout=600).returncode
    text = log.read_text(errors="replace")
    assert status == ENGINE_START_FAILED_EXIT, text[-3000:]
    assert "engine_start_failed" in text and "stopped: the engine could not start" in text
    # the log says why, not only that: the engine's own message rides in "detail"
    failure = next(line for line in text.splitlines() if "engine_start_failed" in line)
    assert json.loads(failure)["detail"].split(":")[0].isidentifier(), failure
    print(f"engine start failure: exit {status} after {time.monotonic() - started:.1f} s")
