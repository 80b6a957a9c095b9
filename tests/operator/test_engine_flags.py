"""Issue 12 item 4: the engine switches the budget implies, and ``spec.engine.extraArgs`` checked at render.

The operator renders ``--mm-encoder-tp-mode data`` where the engine spans GPUs and the family's vision
encoder supports it (read from the installed vLLM's model sources), sizes vLLM's processor cache from
the budget, and checks pass-through flags against a list generated from vLLM's own parser: the list
is regenerated here from the installed vLLM and compared, so it cannot drift.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from tests.harness.operator import EXAMPLES, load_body
from videomodel_devtools import vllm_flags
from videomodel_operator.planning import plan_for
from videomodel_operator.rendering.server import ENCODER_TP_DATA_FAMILIES, engine_settings, serving_contract
from videomodel_operator.spec import SpecError, parse_video_model
from videomodel_operator.spec.engine_flags import DATA, extra_args_problems
from videomodel_operator.status import Verdict, summarize
from videomodel_server.budget import Family
from videomodel_server.budget.contract import OWNED_ENGINE_FLAGS, processor_cache_gb
from videomodel_server.engine import EngineConfig, check_passthrough, engine_argv

EXAMPLE = EXAMPLES / "qwen2-vl-7b-a100.yaml"


def _body(**engine: Any) -> dict[str, Any]:
    body = copy.deepcopy(load_body(EXAMPLE))
    body["spec"].setdefault("engine", {}).update(engine)
    return body


def _with_gpus(body: dict[str, Any], count: int) -> dict[str, Any]:
    body["spec"]["resources"]["gpu"]["count"] = count
    return body


# -- the generated flag list ---------------------------------------------------------------------


def test_the_flag_list_is_what_the_installed_vllm_parser_accepts() -> None:
    """Regenerate from vLLM's ``AsyncEngineArgs`` parser and compare (regenerate with
    ``python -m videomodel_devtools.vllm_flags`` when the lock's vLLM moves)."""
    assert DATA.read_text() == vllm_flags.document()


def test_the_list_knows_the_flags_that_matter() -> None:
    flags = json.loads(DATA.read_text())["flags"]
    assert flags["--mm-encoder-tp-mode"]["choices"] == ["data", "weights"]
    assert flags["--enable-prefix-caching"]["value"] is False and "--no-enable-prefix-caching" in flags
    assert flags["--max-num-seqs"]["value"] is True
    assert OWNED_ENGINE_FLAGS - {"-tp"} <= set(flags)  # every owned flag is a real one


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--enable-prefix-caching"],
        ["--no-enable-prefix-caching", "--max-num-seqs", "8"],
        ["--max_num_seqs=8", "--kv-cache-dtype", "fp8"],
        ["--compilation-config", '{"level": 3}'],
        ["--compilation-config.level", "3"],
        ["--seed", "-1"],
        ["-cc.mode", "3", "-dp", "1"],
    ],
)
def test_valid_pass_through(args: list[str]) -> None:
    assert extra_args_problems(args) == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--max-model-len", "9000"], "--max-model-len is set by the operator"),
        (["--max_model_len=9000"], "--max_model_len is set by the operator"),
        (["--limit-mm-per-prompt", '{"video": 4}'], "--limit-mm-per-prompt is set by the operator"),
        (["-tp", "2"], "-tp is set by the operator"),
        (["--mm-encoder-tp-mode", "weights"], "--mm-encoder-tp-mode is set by the operator"),
        (["--mm-processor-cache-gb=0"], "--mm-processor-cache-gb is set by the operator"),
        (["--enable-prefix-cachin"], "--enable-prefix-cachin is not an engine argument of vLLM 0.32.0"),
        (["--port", "9000"], "--port is not an engine argument"),  # a server flag, not the engine's
        (["--max-num-seqs"], "--max-num-seqs needs a value"),
        (["--enable-prefix-caching=yes"], "--enable-prefix-caching takes no value"),
        (["--kv-cache-dtype", "int3"], "--kv-cache-dtype must be one of"),
        (["8"], "'8' is not a flag"),
    ],
)
def test_refused_pass_through_names_the_flag(args: list[str], needle: str) -> None:
    problems = extra_args_problems(args)
    assert len(problems) == 1 and needle in problems[0], problems


def test_a_refused_flag_is_an_invalid_spec_condition_naming_it() -> None:
    body = _body(extraArgs=["--enable-prefix-caching", "--max-model-len", "9000"])
    with pytest.raises(SpecError) as caught:
        parse_video_model(body)
    message = str(caught.value)
    assert message.startswith("spec.engine: extraArgs: --max-model-len is set by the operator")
    status = summarize(
        Verdict(1, 1, False, invalid=message, applied=False),
        None,
        None,
        "2026-01-01T00:00:00Z",
        url="http://x",
        selector="x",
        plan=None,
        config_hash=None,
    )
    conditions = {c["type"]: c for c in status["conditions"]}
    assert any(c["reason"] == "InvalidSpec" and "--max-model-len" in c["message"] for c in conditions.values())


def test_accepted_pass_through_reaches_the_server_after_the_double_dash() -> None:
    from videomodel_operator.rendering.server import server_args

    cr = parse_video_model(_body(extraArgs=["--enable-prefix-caching", "--max-num-seqs", "8"]))
    args = server_args(cr.spec, plan_for(cr.spec))
    assert args[args.index("--") :] == ["--", "--enable-prefix-caching", "--max-num-seqs", "8"]


def test_the_server_refuses_the_owned_flags_too() -> None:
    for flag in sorted(OWNED_ENGINE_FLAGS):
        with pytest.raises(ValueError, match="set by videomodel-server"):
            check_passthrough([flag, "1"])
    with pytest.raises(ValueError):
        check_passthrough(["--max_model_len=4"])


# -- derived switches ----------------------------------------------------------------------------


def test_vllm_supports_data_parallel_encoders_for_the_families_we_render_it_for() -> None:
    """Read ``supports_encoder_tp_data = True`` in the installed vLLM's model sources (no import: heavy)."""
    modules = {Family.QWEN2_VL: "qwen2_vl", Family.QWEN2_5_VL: "qwen2_5_vl", Family.QWEN3_VL: "qwen3_vl"}
    assert set(modules) == ENCODER_TP_DATA_FAMILIES
    for module in modules.values():
        spec = importlib.util.find_spec(f"vllm.model_executor.models.{module}")
        assert spec is not None and spec.origin is not None
        assert "supports_encoder_tp_data = True" in Path(spec.origin).read_text(), module


@pytest.mark.parametrize(("gpus", "mode"), [(1, None), (2, "data"), (4, "data")])
def test_encoder_tp_mode_follows_tensor_parallel(gpus: int, mode: str | None) -> None:
    cr = parse_video_model(_with_gpus(_body(), gpus))
    contract = serving_contract(cr.spec, plan_for(cr.spec))
    assert contract.engine.tensor_parallel_size == gpus and contract.engine.mm_encoder_tp_mode == mode
    assert json.loads(contract.to_json())["engine"]["mm_encoder_tp_mode"] == mode


def test_the_server_passes_the_tp_mode_to_vllm() -> None:
    config = EngineConfig(Path("/m"), "m", 100, {}, {}, tensor_parallel_size=2, mm_encoder_tp_mode="data")
    argv = engine_argv(config)
    assert argv[argv.index("--mm-encoder-tp-mode") + 1] == "data"
    assert "--mm-encoder-tp-mode" not in engine_argv(EngineConfig(Path("/m"), "m", 100, {}, {}))


def test_processor_cache_is_sized_from_the_budget() -> None:
    cr = parse_video_model(_body())
    plan = plan_for(cr.spec)
    contract = serving_contract(cr.spec, plan)
    requests = contract.admission.max_concurrent_requests
    per_video = plan.tokens_per_video * 4 * 3 * 2 * 14 * 14 * 4  # Qwen2-VL: merge 2x2, 3 x 2 x 14 x 14 float32
    expected = max(0.5, -(-per_video * plan.videos_per_prompt * requests // (512 * 1024**2)) / 2)
    assert contract.engine.mm_processor_cache_gb == expected
    assert engine_settings(cr.spec, plan, requests) == contract.engine


def test_processor_cache_formula() -> None:
    # one 16,386-token Qwen2-VL video: 308 MB; four of them round up to 1.5 GiB; nothing is below 0.5
    assert processor_cache_gb(16386, 1, 0, 0, 14, 2, 2, 1) == 0.5
    assert processor_cache_gb(16386, 1, 0, 0, 14, 2, 2, 4) == 1.5
    assert processor_cache_gb(1, 1, 0, 0, 14, 2, 2, 1) == 0.5
    assert processor_cache_gb(16386, 2, 1000, 1, 16, 2, 2, 8) > processor_cache_gb(16386, 1, 0, 0, 16, 2, 2, 8)
