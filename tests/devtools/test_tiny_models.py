"""The tiny checkpoints: real class names, Qwen special tokens, Qwen's text splitting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from videomodel_devtools import tiny_models
from videomodel_devtools.tiny_tokenizer import SPECIAL_TOKENS
from videomodel_server.budget import FAMILIES, Family
from videomodel_server.budget.tokens import timestamp_label_tokens

PROCESSOR_CLASSES = {
    Family.QWEN2_VL: "Qwen2VLProcessor",
    Family.QWEN2_5_VL: "Qwen2_5_VLProcessor",
    Family.QWEN3_VL: "Qwen3VLProcessor",
}


@pytest.fixture(scope="module")
def processors(tiny_model_dir: Any) -> dict[Family, Any]:
    from transformers import AutoProcessor

    return {family: AutoProcessor.from_pretrained(tiny_model_dir(family)) for family in Family}


@pytest.mark.parametrize("family", list(Family))
def test_checkpoint_has_the_real_names_and_geometry(family: Family, tiny_model_dir: Any, processors: Any) -> None:
    path: Path = tiny_model_dir(family)
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == [tiny_models.ARCHITECTURES[family]]
    assert type(processors[family]).__name__ == PROCESSOR_CLASSES[family]
    vision, text = config["vision_config"], config["text_config"]
    geometry = FAMILIES[family]
    assert vision["patch_size"] == geometry.patch_size
    assert vision["spatial_merge_size"] == geometry.merge_size
    assert vision["temporal_patch_size"] == geometry.temporal_patch_size
    head_dim = text.get("head_dim") or text["hidden_size"] // text["num_attention_heads"]
    assert head_dim == 64
    assert sum(text["rope_parameters"]["mrope_section"]) == head_dim // 2
    assert text["max_position_embeddings"] >= 32768
    if family is Family.QWEN2_5_VL:
        assert vision["window_size"] == 112 and vision["fullatt_block_indexes"] and vision["tokens_per_second"] == 2
    if family is Family.QWEN3_VL:
        assert vision["deepstack_visual_indexes"]
        assert text["rope_parameters"]["mrope_interleaved"] is True
    video = processors[family].video_processor
    assert (video.patch_size, video.merge_size, video.temporal_patch_size) == (geometry.patch_size, 2, 2)


@pytest.mark.parametrize("family", list(Family))
def test_special_tokens_match_the_config(family: Family, tiny_model_dir: Any, processors: Any) -> None:
    config = json.loads((tiny_model_dir(family) / "config.json").read_text())
    tokenizer = processors[family].tokenizer
    for token in SPECIAL_TOKENS:
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1, token
    ids = tokenizer.convert_tokens_to_ids
    assert config["video_token_id"] == ids("<|video_pad|>")
    assert config["image_token_id"] == ids("<|image_pad|>")
    assert config["vision_start_token_id"] == ids("<|vision_start|>")
    assert config["vision_end_token_id"] == ids("<|vision_end|>")
    assert max(tokenizer.get_vocab().values()) < config["text_config"]["vocab_size"]


@pytest.mark.parametrize("family", list(Family))
def test_chat_template_marks_the_video(family: Family, processors: Any) -> None:
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Hi"}]}]
    prompt = processors[family].apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Hi<|im_end|>\n" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    assert ("You are a helpful assistant." in prompt) == (family is not Family.QWEN3_VL)


def test_text_splits_like_qwen(processors: Any) -> None:
    tokenizer = processors[Family.QWEN3_VL].tokenizer
    pieces = tokenizer.convert_ids_to_tokens(tokenizer("<12.5 seconds>", add_special_tokens=False)["input_ids"])
    assert pieces == ["<", "1", "2", ".", "5", "Ġseconds", ">"]
    # Digits one per token, common words whole, anything else still encodes (bytes, no unknown).
    assert len(tokenizer(" 2026", add_special_tokens=False)["input_ids"]) == 5
    assert len(tokenizer(" the video", add_special_tokens=False)["input_ids"]) == 2
    assert tokenizer.decode(tokenizer("zqxj ünï 😀")["input_ids"]) == "zqxj ünï 😀"


@pytest.mark.parametrize("seconds", [0.0, 0.44, 3.25, 9.94, 9.96, 10.0, 59.9, 99.96, 123.4, 1000.0, 3599.9])
def test_timestamp_labels_cost_what_the_budget_says(seconds: float, processors: Any) -> None:
    tokenizer = processors[Family.QWEN3_VL].tokenizer
    label = f"<{seconds:.1f} seconds>"
    assert len(tokenizer(label, add_special_tokens=False)["input_ids"]) == timestamp_label_tokens(seconds)


def test_cache_builds_atomically_and_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEOMODEL_CACHE", str(tmp_path))
    first = tiny_models.tiny_model_dir(Family.QWEN2_VL)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert first.parent == tmp_path / "tiny-models"
    assert first.name == f"qwen2_vl-{tiny_models.fingerprint()}"
    assert tiny_models.tiny_model_dir("qwen2_vl") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "tiny-models").iterdir()] == [first.name]  # no temp dirs left
    with pytest.raises(FileExistsError):
        tiny_models.build_tiny_model(Family.QWEN2_VL, first)
