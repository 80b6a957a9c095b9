"""What a checkpoint's ``config.json`` says about the model: its family, geometry and context.

:func:`model_spec_from_config` is pure (a parsed ``config.json`` in, a
:class:`~videomodel_server.budget.ModelSpec` out); :func:`read_checkpoint` is the thin file
reader. Nothing is special-cased by size: a tiny test checkpoint and a 72B one go through the
same arithmetic. Mismatches fail fast with :class:`CheckpointError`, a message naming the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .budget import FAMILIES, Family, ModelSpec

MODEL_TYPES = {
    "qwen2_vl": Family.QWEN2_VL,
    "qwen2_5_vl": Family.QWEN2_5_VL,
    "qwen3_vl": Family.QWEN3_VL,
}
ARCHITECTURES = {
    "Qwen2VLForConditionalGeneration": Family.QWEN2_VL,
    "Qwen2_5_VLForConditionalGeneration": Family.QWEN2_5_VL,
    "Qwen3VLForConditionalGeneration": Family.QWEN3_VL,
}
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float8_e4m3fn": 1}


class CheckpointError(ValueError):
    """The checkpoint cannot be served as declared."""


def detect_family(config: dict[str, Any]) -> Family:
    model_type = config.get("model_type")
    if isinstance(model_type, str) and model_type in MODEL_TYPES:
        return MODEL_TYPES[model_type]
    for arch in config.get("architectures") or []:
        if arch in ARCHITECTURES:
            return ARCHITECTURES[arch]
    raise CheckpointError(
        f"config.json has model_type {model_type!r}; this server serves {', '.join(sorted(MODEL_TYPES))}"
    )


def _int(section: dict[str, Any], key: str, where: str) -> int:
    value = section.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise CheckpointError(f"config.json has no positive integer {where}{key}")
    return value


def model_spec_from_config(
    config: dict[str, Any],
    name: str,
    declared: Family | None = None,
    weight_bytes: int | None = None,
) -> ModelSpec:
    """The ModelSpec of a checkpoint; raise when it contradicts ``declared`` or its family's geometry."""
    family = detect_family(config)
    if declared is not None and declared != family:
        raise CheckpointError(
            f"--family is {declared.value} but the checkpoint's config.json is {family.value} "
            f"(model_type {config.get('model_type')!r})"
        )
    text = config.get("text_config") or config
    where = "text_config." if "text_config" in config else ""
    heads = _int(text, "num_attention_heads", where)
    head_dim = text.get("head_dim")
    if not isinstance(head_dim, int) or head_dim <= 0:
        head_dim = _int(text, "hidden_size", where) // heads
    _check_geometry(config, family)
    dtype = str(text.get("dtype") or text.get("torch_dtype") or config.get("dtype") or config.get("torch_dtype") or "")
    parameters = float(weight_bytes) / DTYPE_BYTES.get(dtype, 2) if weight_bytes else 0.0
    return ModelSpec(
        name=name,
        family=family,
        max_position_embeddings=_int(text, "max_position_embeddings", where),
        num_hidden_layers=_int(text, "num_hidden_layers", where),
        num_key_value_heads=_int(text, "num_key_value_heads", where) if "num_key_value_heads" in text else heads,
        head_dim=head_dim,
        parameters=parameters,
        source="config.json",
        hidden_size=text["hidden_size"] if isinstance(text.get("hidden_size"), int) else 0,
        deepstack_levels=len(config["vision_config"].get("deepstack_visual_indexes") or ()),
    )


def _check_geometry(config: dict[str, Any], family: Family) -> None:
    vision = config.get("vision_config")
    if not isinstance(vision, dict):
        raise CheckpointError("config.json has no vision_config")
    expected = FAMILIES[family]
    found = {
        "patch_size": vision.get("patch_size", vision.get("spatial_patch_size")),
        "spatial_merge_size": vision.get("spatial_merge_size"),
        "temporal_patch_size": vision.get("temporal_patch_size"),
    }
    wanted = {
        "patch_size": expected.patch_size,
        "spatial_merge_size": expected.merge_size,
        "temporal_patch_size": expected.temporal_patch_size,
    }
    wrong = [f"{k} {found[k]} (expected {v})" for k, v in wanted.items() if found[k] is not None and found[k] != v]
    if wrong:
        raise CheckpointError(f"the checkpoint's vision geometry does not match {family.value}: " + ", ".join(wrong))


def read_checkpoint(path: Path, name: str, declared: Family | None = None) -> ModelSpec:
    """Read ``path/config.json`` (and the weight files' sizes) into a ModelSpec."""
    config_file = path / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{config_file} does not exist: --model must be a local checkpoint directory")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{config_file} is not readable JSON ({type(exc).__name__})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_file} is not a JSON object")
    weights = sum(f.stat().st_size for f in path.glob("*.safetensors"))
    return model_spec_from_config(config, name, declared, weights or None)
