"""Tiny random-weight Qwen-VL checkpoints, built locally (no model hub is reachable here or in CI).

``build_tiny_model(family, dest)`` writes a complete Hugging Face checkpoint directory for one of
the three families the product serves, and ``tiny_model_dir(family)`` builds it once into the
devtools cache (``cache_dir("tiny-models")/<family>-<hash>``, rebuilt when this generator
changes, written to a temporary directory and renamed into place so concurrent builders never
see a half-written checkpoint).

What is real and what is tiny:

- Real: the architecture names (``Qwen2VLForConditionalGeneration``,
  ``Qwen2_5_VLForConditionalGeneration``, ``Qwen3VLForConditionalGeneration``), the vision
  geometry (patch 14/14/16, spatial merge 2, temporal patch 2), Qwen2.5-VL's window attention
  (window 112, a full-attention block) and ``tokens_per_second`` 2, Qwen3-VL's deepstack and
  interleaved M-RoPE, the special tokens and their relative order, the chat templates, the
  image/video processor configs with each family's defaults, and a context
  (``max_position_embeddings``) as long as the real model's.
- Tiny: a 2-block vision tower of width 64, a 2-layer text model of width 128 with 2 heads and
  1 KV head (head_dim 64: vLLM's CPU attention rejects 16), mrope sections summing to 32, and a
  ~1k-entry byte-level BPE vocabulary (:mod:`.tiny_tokenizer`) that splits text the way the real
  Qwen tokenizer does. Weights are random (seeded) float32 safetensors.

Nothing in the product special-cases these checkpoints: they go through the same code as real
ones. vLLM facts measured with them are in ``docs/vllm-notes.md``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from videomodel_server.budget.models import Family

from .cache import cache_dir
from .tiny_tokenizer import EXTRA_TOKENS, SPECIAL_TOKENS, build_tokenizer

GENERATOR_VERSION = "1"
"""Bump on any change that alters the written files (the source hash also keys the cache)."""

BPE_VOCAB = 1024
"""Upper bound for the trained BPE part; the special tokens follow it."""
VOCAB_SIZE = 1152
"""Embedding rows: BPE + special/added tokens, rounded up (like the real 151936 > 151669)."""
SEED = 1234

TEXT = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 64,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-6,
    "vocab_size": VOCAB_SIZE,
}

CONTEXT = {Family.QWEN2_VL: 32768, Family.QWEN2_5_VL: 128000, Family.QWEN3_VL: 262144}
"""``max_position_embeddings`` of the real checkpoints."""

ARCHITECTURES = {
    Family.QWEN2_VL: "Qwen2VLForConditionalGeneration",
    Family.QWEN2_5_VL: "Qwen2_5_VLForConditionalGeneration",
    Family.QWEN3_VL: "Qwen3VLForConditionalGeneration",
}

PROCESSORS = {
    Family.QWEN2_VL: "Qwen2VLProcessor",
    Family.QWEN2_5_VL: "Qwen2_5_VLProcessor",
    Family.QWEN3_VL: "Qwen3VLProcessor",
}

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""The Qwen2-VL / Qwen2.5-VL Instruct chat template (default system prompt included)."""

QWEN3_VL_CHAT_TEMPLATE = (
    "{%- if tools %}{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0].role == 'system' %}"
    "{%- if messages[0].content is string %}{{- messages[0].content }}"
    "{%- else %}{%- for content in messages[0].content %}"
    "{%- if 'text' in content %}{{- content.text }}{%- endif %}{%- endfor %}{%- endif %}"
    "{{- '\\n\\n' }}{%- endif %}"
    '{{- "# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n'
    'You are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}'
    '{%- for tool in tools %}{{- "\\n" }}{{- tool | tojson }}{%- endfor %}'
    '{{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and '
    "arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n"
    '{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}'
    "{%- else %}{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0].content is string %}{{- messages[0].content }}"
    "{%- else %}{%- for content in messages[0].content %}"
    "{%- if 'text' in content %}{{- content.text }}{%- endif %}{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\\n' }}{%- endif %}{%- endif %}"
    "{%- set image_count = namespace(value=0) %}{%- set video_count = namespace(value=0) %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' }}"
    "{%- if message.content is string %}{{- message.content }}"
    "{%- else %}{%- for content in message.content %}"
    "{%- if content.type == 'image' or 'image' in content or 'image_url' in content %}"
    "{%- set image_count.value = image_count.value + 1 %}"
    "{%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif content.type == 'video' or 'video' in content %}"
    "{%- set video_count.value = video_count.value + 1 %}"
    "{%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif 'text' in content %}{{- content.text }}{%- endif %}{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}{{- '<|im_start|>' + message.role + '\\n' }}"
    "{%- if message.content is string %}{{- message.content }}"
    "{%- else %}{%- for content_item in message.content %}"
    "{%- if 'text' in content_item %}{{- content_item.text }}{%- endif %}{%- endfor %}{%- endif %}"
    "{%- if message.tool_calls %}{%- for tool_call in message.tool_calls %}"
    "{%- if (loop.first and message.content) or (not loop.first) %}{{- '\\n' }}{%- endif %}"
    "{%- if tool_call.function %}{%- set tool_call = tool_call.function %}{%- endif %}"
    '{{- \'<tool_call>\\n{"name": "\' }}{{- tool_call.name }}{{- \'", "arguments": \' }}'
    "{%- if tool_call.arguments is string %}{{- tool_call.arguments }}"
    "{%- else %}{{- tool_call.arguments | tojson }}{%- endif %}"
    "{{- '}\\n</tool_call>' }}{%- endfor %}{%- endif %}{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{%- if loop.first or (messages[loop.index0 - 1].role != 'tool') %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' }}"
    "{%- if message.content is string %}{{- message.content }}"
    "{%- else %}{%- for content in message.content %}"
    "{%- if content.type == 'image' or 'image' in content or 'image_url' in content %}"
    "{%- set image_count.value = image_count.value + 1 %}"
    "{%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif content.type == 'video' or 'video' in content %}"
    "{%- set video_count.value = video_count.value + 1 %}"
    "{%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif 'text' in content %}{{- content.text }}{%- endif %}{%- endfor %}{%- endif %}"
    "{{- '\\n</tool_response>' }}"
    "{%- if loop.last or (messages[loop.index0 + 1].role != 'tool') %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
"""The Qwen3-VL Instruct chat template: no default system prompt, tool calls in XML tags."""


@functools.cache
def _tokenizer() -> Tokenizer:
    tokenizer = build_tokenizer(BPE_VOCAB)
    if tokenizer.get_vocab_size() > VOCAB_SIZE:
        raise RuntimeError(f"tokenizer has {tokenizer.get_vocab_size()} entries, more than {VOCAB_SIZE}")
    return tokenizer


def _token_ids() -> dict[str, int]:
    """Ids of the special and added tokens: right after the BPE vocabulary, in the real order."""
    vocab = _tokenizer().get_vocab()
    return {tok: vocab[tok] for tok in SPECIAL_TOKENS + EXTRA_TOKENS}


def _vision_config(family: Family) -> dict[str, Any]:
    common = {"depth": 2, "num_heads": 2, "in_channels": 3, "spatial_merge_size": 2, "temporal_patch_size": 2}
    if family is Family.QWEN2_VL:
        return {
            **common,
            "embed_dim": 64,
            "mlp_ratio": 2,
            "hidden_size": TEXT["hidden_size"],
            "hidden_act": "quick_gelu",
            "patch_size": 14,
        }
    if family is Family.QWEN2_5_VL:
        return {
            **common,
            "hidden_size": 64,
            "intermediate_size": 128,
            "out_hidden_size": TEXT["hidden_size"],
            "hidden_act": "silu",
            "patch_size": 14,
            "window_size": 112,
            "fullatt_block_indexes": [1],
            "tokens_per_second": 2,
        }
    return {
        **common,
        "hidden_size": 64,
        "intermediate_size": 128,
        "out_hidden_size": TEXT["hidden_size"],
        "hidden_act": "gelu_pytorch_tanh",
        "patch_size": 16,
        "num_position_embeddings": 2304,
        "deepstack_visual_indexes": [0],
    }


def model_config(family: Family) -> dict[str, Any]:
    """The ``config.json`` content (before transformers adds its defaults)."""
    ids = _token_ids()
    text: dict[str, Any] = {
        **TEXT,
        "max_position_embeddings": CONTEXT[family],
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
    }
    if family is Family.QWEN3_VL:
        text["rope_parameters"] = {
            "rope_type": "default",
            "rope_theta": 5_000_000.0,
            "mrope_section": [12, 10, 10],
            "mrope_interleaved": True,
        }
        text["attention_bias"] = False
    else:
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [8, 12, 12]}
        text["use_sliding_window"] = False
    return {
        "architectures": [ARCHITECTURES[family]],
        "model_type": family.value,
        "text_config": text,
        "vision_config": _vision_config(family),
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "tie_word_embeddings": False,
    }


def _processor_files(family: Family) -> dict[str, dict[str, Any]]:
    """``preprocessor_config.json`` and ``video_preprocessor_config.json`` with family defaults."""
    processor = PROCESSORS[family]
    if family is Family.QWEN3_VL:
        common = {"patch_size": 16, "temporal_patch_size": 2, "merge_size": 2, "processor_class": processor}
        mean_std = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
        image = {
            **common,
            **mean_std,
            "size": {"shortest_edge": 65536, "longest_edge": 16777216},
            "image_processor_type": "Qwen2VLImageProcessorFast",
        }
        video = {
            **common,
            **mean_std,
            "size": {"shortest_edge": 4096, "longest_edge": 25165824},
            "fps": 2,
            "min_frames": 4,
            "max_frames": 768,
            "do_sample_frames": True,
            "video_processor_type": "Qwen3VLVideoProcessor",
        }
        return {"preprocessor_config.json": image, "video_preprocessor_config.json": video}
    common = {"patch_size": 14, "temporal_patch_size": 2, "merge_size": 2, "processor_class": processor}
    mean_std = {"image_mean": CLIP_MEAN, "image_std": CLIP_STD}
    image = {
        **common,
        **mean_std,
        "min_pixels": 3136,
        "max_pixels": 12845056,
        "size": {"shortest_edge": 3136, "longest_edge": 12845056},
        "image_processor_type": "Qwen2VLImageProcessor",
    }
    video = {
        **common,
        **mean_std,
        "size": {"shortest_edge": 128 * 28 * 28, "longest_edge": 28 * 28 * 768},
        "min_frames": 4,
        "max_frames": 768,
        "video_processor_type": "Qwen2VLVideoProcessor",
    }
    return {"preprocessor_config.json": image, "video_preprocessor_config.json": video}


def _tokenizer_config(family: Family, chat_template: str) -> dict[str, Any]:
    ids = _token_ids()
    added = {
        str(ids[tok]): {
            "content": tok,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": tok in SPECIAL_TOKENS,
        }
        for tok in SPECIAL_TOKENS + EXTRA_TOKENS
    }
    return {
        "tokenizer_class": "Qwen2Tokenizer",
        "added_tokens_decoder": added,
        "additional_special_tokens": list(SPECIAL_TOKENS[1:]),
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "errors": "replace",
        "clean_up_tokenization_spaces": False,
        "split_special_tokens": False,
        "model_max_length": CONTEXT[family],
        "chat_template": chat_template,
    }


def _write_weights(family: Family, dest: Path) -> None:
    import torch
    import transformers

    config = transformers.AutoConfig.for_model(**model_config(family))
    torch.manual_seed(SEED)
    model_class = getattr(transformers, ARCHITECTURES[family])
    model = model_class(config).to(torch.float32)
    model.save_pretrained(dest, safe_serialization=True)


def build_tiny_model(family: Family, dest: Path) -> Path:
    """Write a tiny random checkpoint of ``family`` into ``dest`` (created; must not hold files).

    Returns ``dest``. Imports torch and transformers (not needed until called).
    """
    family = Family(family)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty")
    _write_weights(family, dest)

    _tokenizer().save(str(dest / "tokenizer.json"))

    chat_template = QWEN3_VL_CHAT_TEMPLATE if family is Family.QWEN3_VL else QWEN2_VL_CHAT_TEMPLATE
    files: dict[str, Any] = {
        "tokenizer_config.json": _tokenizer_config(family, chat_template),
        "generation_config.json": _generation_config(),
        **_processor_files(family),
    }
    for name, content in files.items():
        (dest / name).write_text(json.dumps(content, indent=2) + "\n")
    (dest / "chat_template.jinja").write_text(chat_template)
    (dest / "README.md").write_text(
        f"Tiny random-weight {ARCHITECTURES[family]} built by videomodel_devtools.tiny_models "
        f"(generator {fingerprint()}). For tests only: its outputs are noise.\n"
    )
    return dest


def _generation_config() -> dict[str, Any]:
    ids = _token_ids()
    return {
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
        "pad_token_id": ids["<|endoftext|>"],
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.8,
        "top_k": 20,
        "repetition_penalty": 1.05,
    }


def fingerprint() -> str:
    """Short hash of this generator's source (and the tokenizer's): the cache key."""
    digest = hashlib.sha256(GENERATOR_VERSION.encode())
    here = Path(__file__).resolve().parent
    for name in ("tiny_models.py", "tiny_tokenizer.py"):
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:12]


def tiny_model_dir(family: Family | str) -> Path:
    """The cached tiny checkpoint of ``family``, built on first use (safe across processes)."""
    family = Family(family)
    root = cache_dir("tiny-models")
    final = root / f"{family.value}-{fingerprint()}"
    if (final / "config.json").exists():
        return final
    tmp = Path(tempfile.mkdtemp(prefix=f".{family.value}-", dir=root))
    try:
        build_tiny_model(family, tmp)
        tmp.chmod(0o755)
        os.rename(tmp, final)
    except OSError:
        # Another process renamed its build into place first: use that one.
        if not (final / "config.json").exists():
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def main() -> None:
    """``python -m videomodel_devtools.tiny_models [family ...]``: build and print paths."""
    import sys

    for name in sys.argv[1:] or [f.value for f in Family]:
        print(tiny_model_dir(Family(name)))


if __name__ == "__main__":
    main()
