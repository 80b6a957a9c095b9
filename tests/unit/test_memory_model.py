"""The plan's GPU memory model against vLLM's own figures, for every recorded GPU run.

Each record under ``docs/gpu/`` is a folder holding the CR as it was served (``<name>.yaml``, its
``resources.gpu.memory`` being what torch saw on that GPU) and the server's log of that run,
where vLLM printed its KV cache and concurrency. The plan is derived from the CR by the
operator's own code and compared with what vLLM printed: nothing is copied by hand, so a new
run is checked by adding its folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from videomodel_operator.cli import load_video_model
from videomodel_operator.planning import plan_for

RECORDS = Path(__file__).resolve().parents[2] / "docs" / "gpu"
GiB = 1024**3
TOLERANCE = 0.02
"""Issue 11: the predicted concurrency within 2% of vLLM's."""


def _records() -> list[Path]:
    return sorted(
        p.parent for p in RECORDS.glob("*/*/project-server.log") if (p.parent / f"{p.parent.name}.yaml").exists()
    )


def _vllm_figures(log: str) -> dict[str, float]:
    def last(pattern: str) -> str:
        found = re.findall(pattern, log)
        assert found, f"the log has no {pattern!r}"
        return str(found[-1])

    return {
        "kv_gib": float(last(r"Available KV cache memory: ([\d.]+) GiB")),
        "max_model_len": float(last(r"Maximum concurrency for ([\d,]+) tokens per request").replace(",", "")),
        "concurrency": float(last(r"Maximum concurrency for [\d,]+ tokens per request: ([\d.]+)x")),
        "encoder_budget": float(last(r"Encoder cache will be initialized with a budget of (\d+) tokens")),
    }


def test_there_are_records_of_each_family() -> None:
    names = {p.name.split("-b")[0] for p in _records()}
    assert {"qwen2-vl-7b", "qwen2.5-vl-7b", "qwen3-vl-8b"} <= names, names


@pytest.mark.parametrize("record", _records(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_plan_predicts_vllms_kv_cache_and_concurrency(record: Path) -> None:
    cr = load_video_model(str(record / f"{record.name}.yaml"))
    plan = plan_for(cr.spec)
    vllm = _vllm_figures((record / "project-server.log").read_text(errors="replace"))
    # The record still describes this plan's engine: same context, same batch (else rerun it on a GPU).
    assert plan.max_model_len == vllm["max_model_len"]
    assert plan.max_num_batched_tokens == vllm["encoder_budget"]
    assert plan.kv_cache_bytes_available is not None and plan.concurrent_requests is not None
    kv_gib = plan.kv_cache_bytes_available / GiB
    predicted = plan.kv_cache_bytes_available / plan.kv_bytes_per_request
    assert abs(kv_gib - vllm["kv_gib"]) <= TOLERANCE * vllm["kv_gib"], (kv_gib, vllm)
    assert abs(predicted - vllm["concurrency"]) <= TOLERANCE * vllm["concurrency"], (predicted, vllm)
    # The admission cap follows the plan's whole requests: never more than vLLM holds.
    assert plan.concurrent_requests <= int(vllm["concurrency"])
