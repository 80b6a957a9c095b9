"""Run one family's budget through the real vLLM engine; print one ``RESULT {json}`` line.

``python -m tests.oracle.engine_probe <family>`` (from the repository root). A subprocess per
family keeps at most one engine alive and gives its memory back when it exits.

The engine is started exactly as the plan says (``max_model_len``, ``limit_mm_per_prompt``,
``mm_processor_kwargs``) and asked: (1) the worst-case video with a short question, (2) the same
video with text padded so the prompt is exactly ``max_model_len - max_output_tokens`` tokens,
generating ``max_output_tokens`` tokens, and (3) one token more, which must be refused.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from typing import Any

from videomodel_devtools.tiny_models import tiny_model_dir
from videomodel_server.budget import Family, VideoBudget, derive

from .worst_case import MODELS, USER_TEXT, worst_case_video

KV_CACHE_BYTES = 256 * 1024**2
FILLER = " the"
"""One token in the tiny vocabulary (as in the real one), so padding is exact."""


def engine_budget(family: Family) -> VideoBudget:
    """Small enough for CPU: 8 frames of at most 64 tokens' worth each, from up to 12 s (so
    Qwen3-VL's timestamp labels cross from one to two digits, computed by vLLM itself)."""
    f2 = MODELS[family].geometry.factor ** 2
    return VideoBudget(
        max_seconds=12,
        fps=2,
        max_frames=8,
        min_pixels=16 * f2,
        max_pixels=64 * f2,
        max_prompt_tokens=64,
        max_output_tokens=8,
    )


def _prompt(tokenizer: Any, text: str) -> str:
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": text}]}]
    return str(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))


def probe(family: Family) -> dict[str, Any]:
    from vllm import LLM, SamplingParams
    from vllm.exceptions import VLLMValidationError

    budget = engine_budget(family)
    plan = derive(budget, MODELS[family])
    video = worst_case_video(plan, family, 30.0, budget.max_frames, budget.fps)
    item = (video.frames, video.metadata)
    started = time.monotonic()
    llm = LLM(
        model=str(tiny_model_dir(family)),
        max_model_len=plan.max_model_len,
        limit_mm_per_prompt=plan.limit_mm_per_prompt,
        mm_processor_kwargs=plan.mm_processor_kwargs,
        gpu_memory_utilization=0.05,
        kv_cache_memory_bytes=KV_CACHE_BYTES,
        enforce_eager=True,
        max_num_seqs=2,
        seed=0,
    )
    result: dict[str, Any] = {
        "engine_start_seconds": round(time.monotonic() - started, 1),
        "plan": plan.to_dict(),
        "max_output_tokens": budget.max_output_tokens,
    }
    try:
        tokenizer = llm.get_tokenizer()
        greedy = SamplingParams(max_tokens=2, temperature=0)
        prompt = _prompt(tokenizer, USER_TEXT)
        text_only = len(tokenizer(prompt.replace("<|vision_start|><|video_pad|><|vision_end|>", ""))["input_ids"])
        out = llm.generate([{"prompt": prompt, "multi_modal_data": {"video": [item]}}], greedy, use_tqdm=False)
        result["prompt_tokens"] = len(out[0].prompt_token_ids)
        result["text_only_tokens"] = text_only
        result["video_tokens"] = result["prompt_tokens"] - text_only

        target = plan.max_model_len - budget.max_output_tokens
        padding = target - result["prompt_tokens"]
        result["padding_tokens"] = padding
        full = _prompt(tokenizer, USER_TEXT + FILLER * padding)
        fill = SamplingParams(max_tokens=budget.max_output_tokens, temperature=0, ignore_eos=True)
        out = llm.generate([{"prompt": full, "multi_modal_data": {"video": [item]}}], fill, use_tqdm=False)
        result["full_prompt_tokens"] = len(out[0].prompt_token_ids)
        result["full_output_tokens"] = len(out[0].outputs[0].token_ids)

        over = _prompt(tokenizer, USER_TEXT + FILLER * (padding + budget.max_output_tokens + 1))
        try:
            out = llm.generate([{"prompt": over, "multi_modal_data": {"video": [item]}}], greedy, use_tqdm=False)
            result["over_length"] = {"accepted": True, "prompt_tokens": len(out[0].prompt_token_ids)}
        except (ValueError, VLLMValidationError) as exc:
            result["over_length"] = {"accepted": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    finally:
        del llm
        gc.collect()
    return result


def main() -> None:
    family = Family(sys.argv[1])
    print("RESULT " + json.dumps(probe(family), default=str), flush=True)


if __name__ == "__main__":
    main()
