"""Model geometry and size: the built-in table and the shape a CR may override.

Every number is from the model's published ``config.json`` (text_config / vision_config) and
its model card's parameter count; ``source`` names the checkpoint each row was read from.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Family(StrEnum):
    QWEN2_VL = "qwen2_vl"
    QWEN2_5_VL = "qwen2_5_vl"
    QWEN3_VL = "qwen3_vl"


@dataclass(frozen=True)
class FamilyGeometry:
    """What the vision tower of a family does to pixels. Shared by every size of the family."""

    patch_size: int
    merge_size: int
    temporal_patch_size: int
    timestamps_per_group: bool
    """Qwen3-VL writes ``<t seconds>`` before every temporal group of a video."""

    @property
    def factor(self) -> int:
        """Pixels per token side: patch x spatial merge (28 or 32)."""
        return self.patch_size * self.merge_size


FAMILIES: dict[Family, FamilyGeometry] = {
    Family.QWEN2_VL: FamilyGeometry(patch_size=14, merge_size=2, temporal_patch_size=2, timestamps_per_group=False),
    Family.QWEN2_5_VL: FamilyGeometry(patch_size=14, merge_size=2, temporal_patch_size=2, timestamps_per_group=False),
    Family.QWEN3_VL: FamilyGeometry(patch_size=16, merge_size=2, temporal_patch_size=2, timestamps_per_group=True),
}

FAMILY_LABELS = {Family.QWEN2_VL: "Qwen2-VL", Family.QWEN2_5_VL: "Qwen2.5-VL", Family.QWEN3_VL: "Qwen3-VL"}


@dataclass(frozen=True)
class ModelSpec:
    """One served model: its family, context, and what its KV cache and weights cost."""

    name: str
    family: Family
    max_position_embeddings: int
    num_hidden_layers: int
    num_key_value_heads: int
    head_dim: int
    parameters: float
    """Total parameters (vision tower included), for the weight memory estimate."""
    source: str = ""
    hidden_size: int = 0
    """The language model's; only needed where vLLM keeps per-batch buffers of it (``deepstack_levels``)."""
    deepstack_levels: int = 0
    """Qwen3-VL: vision features fed into this many language-model layers (``deepstack_visual_indexes``).
    vLLM keeps one ``max_num_batched_tokens x hidden_size`` buffer per level
    (``Qwen3VLForConditionalGeneration.deepstack_input_embeds``), allocated with the weights: 0.78 GiB
    of the 17.38 GiB that "Model loading took" for Qwen3-VL-8B at 34,004 batched tokens (H100)."""

    def batch_buffer_bytes(self, max_num_batched_tokens: int, dtype_bytes: int) -> int:
        """Per-batch buffers the engine's model holds besides its weights (per GPU)."""
        return self.deepstack_levels * max_num_batched_tokens * self.hidden_size * dtype_bytes

    @property
    def geometry(self) -> FamilyGeometry:
        return FAMILIES[self.family]

    @property
    def label(self) -> str:
        return self.name or FAMILY_LABELS[self.family]

    def with_overrides(self, **changes: object) -> ModelSpec:
        """A copy with the non-None fields of ``changes`` replaced (CR overrides)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]


def _row(
    name: str, family: Family, ctx: int, layers: int, kv: int, head_dim: int, params: float, hidden: int = 0
) -> ModelSpec:
    return ModelSpec(
        name=name,
        family=family,
        max_position_embeddings=ctx,
        num_hidden_layers=layers,
        num_key_value_heads=kv,
        head_dim=head_dim,
        parameters=params,
        source=f"Qwen/{name}-Instruct config.json",
        hidden_size=hidden,
        deepstack_levels=QWEN3_DEEPSTACK_LEVELS if family is Family.QWEN3_VL else 0,
    )


QWEN3_DEEPSTACK_LEVELS = 3
"""``len(vision_config.deepstack_visual_indexes)`` in every Qwen3-VL config.json."""

_Q2, _Q25, _Q3 = Family.QWEN2_VL, Family.QWEN2_5_VL, Family.QWEN3_VL
BUILTIN_MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        # name, family, max_position_embeddings, layers, kv heads, head_dim, parameters[, hidden size]
        _row("Qwen2-VL-2B", _Q2, 32768, 28, 2, 128, 2.21e9),
        _row("Qwen2-VL-7B", _Q2, 32768, 28, 4, 128, 8.29e9),
        _row("Qwen2-VL-72B", _Q2, 32768, 80, 8, 128, 73.4e9),
        _row("Qwen2.5-VL-3B", _Q25, 128000, 36, 2, 128, 3.75e9),
        _row("Qwen2.5-VL-7B", _Q25, 128000, 28, 4, 128, 8.29e9),
        _row("Qwen2.5-VL-32B", _Q25, 128000, 64, 8, 128, 33.5e9),
        _row("Qwen2.5-VL-72B", _Q25, 128000, 80, 8, 128, 73.4e9),
        _row("Qwen3-VL-2B", _Q3, 262144, 28, 8, 128, 2.13e9, 2048),
        _row("Qwen3-VL-4B", _Q3, 262144, 36, 8, 128, 4.44e9, 2560),
        _row("Qwen3-VL-8B", _Q3, 262144, 36, 8, 128, 8.77e9, 4096),
        _row("Qwen3-VL-32B", _Q3, 262144, 64, 8, 128, 33.4e9, 5120),
    )
}


def lookup(name: str) -> ModelSpec | None:
    """Find a built-in model by name, ignoring an ``org/`` prefix, ``-Instruct`` and case."""
    key = name.rsplit("/", 1)[-1].lower().removesuffix("-instruct").removesuffix("-thinking")
    for model_name, spec in BUILTIN_MODELS.items():
        if model_name.lower() == key:
            return spec
    return None
