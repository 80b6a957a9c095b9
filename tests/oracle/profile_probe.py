"""vLLM's memory-profile inputs under the plan's settings, for one family (run as a subprocess).

``python -m tests.oracle.profile_probe FAMILY`` builds vLLM's own ``MultiModalBudget`` (what
``GPUModelRunner.profile_run`` encodes before it sizes the KV cache) from the plan of the
example budget on the family's tiny checkpoint, and prints one ``RESULT {json}`` line: the plan,
the encoder budget, the dummy items and their ``video_grid_thw``. No engine is started.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Any

from videomodel_server.budget import Family, VideoBudget, derive

from .worst_case import MODELS


def example_budget(family: Family) -> VideoBudget:
    """The qwen2-vl-7b-a100 example's budget (120 s at 2 fps, 128 frames of 128-256 tokens)."""
    f2 = MODELS[family].geometry.factor ** 2
    return VideoBudget(max_seconds=120, fps=2, max_frames=128, min_pixels=128 * f2, max_pixels=256 * f2)


def probe(family: Family) -> dict[str, Any]:
    from vllm.config import ModelConfig, SchedulerConfig, VllmConfig
    from vllm.multimodal import MULTIMODAL_REGISTRY
    from vllm.multimodal.encoder_budget import MultiModalBudget

    from videomodel_devtools.tiny_models import tiny_model_dir

    plan = derive(example_budget(family), MODELS[family])
    model_config = ModelConfig(
        model=str(tiny_model_dir(family)),
        max_model_len=plan.max_model_len,
        limit_mm_per_prompt=dict(plan.limit_mm_per_prompt),
        mm_processor_kwargs=plan.mm_processor_kwargs,
    )
    scheduler_config = SchedulerConfig(
        max_num_batched_tokens=plan.max_num_batched_tokens,
        max_model_len=plan.max_model_len,
        is_encoder_decoder=False,
    )
    config = VllmConfig(model_config=model_config, scheduler_config=scheduler_config)
    budget = MultiModalBudget(config, MULTIMODAL_REGISTRY)
    inputs = budget.get_dummy_encoder_profile_inputs()
    modality, item = inputs[0]
    grid: Any = item[f"{modality}_grid_thw"].data
    return {
        "plan": asdict(plan),
        "encoder_budget": budget.get_encoder_budget(),
        "max_tokens_per_item": dict(budget.mm_max_toks_per_item),
        "modality": modality,
        "items": len(inputs),
        "grid_thw": [int(x) for x in grid.tolist()],
    }


if __name__ == "__main__":
    print("RESULT " + json.dumps(probe(Family(sys.argv[1]))), flush=True)
