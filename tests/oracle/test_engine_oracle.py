"""The budget against the real vLLM engine, one family at a time (each in its own subprocess).

The engine is configured from the plan alone. The worst-case video must cost exactly the
predicted tokens, a prompt of exactly ``max_model_len - maxOutputTokens`` must be served in full,
and one token more must be refused (so the acceptance above means something).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from videomodel_server.budget import Family

from .probes import run_probe
from .summary import OracleSummary

ENGINE_TIMEOUT = 840


@pytest.mark.engine
@pytest.mark.parametrize("family", list(Family), ids=[f.value for f in Family])
def test_engine_agrees_with_the_plan(family: Family, tiny_model_dir: Any, oracle_record: OracleSummary) -> None:
    result, _ = run_probe("engine_probe", family, tiny_model_dir, ENGINE_TIMEOUT)
    plan = result["plan"]
    print(f"{family.value}: engine start {result['engine_start_seconds']} s, {json.dumps(result)[:600]}")
    oracle_record.record(f"vLLM worst case, {family.value}", plan["tokens_per_video"], result["video_tokens"])

    assert result["video_tokens"] == plan["tokens_per_video"]
    assert result["padding_tokens"] > 0
    assert result["full_prompt_tokens"] == plan["max_model_len"] - result["max_output_tokens"]
    assert result["full_output_tokens"] == result["max_output_tokens"]
    assert not result["over_length"]["accepted"], result["over_length"]
    assert "longer than the maximum model length" in result["over_length"]["error"]
