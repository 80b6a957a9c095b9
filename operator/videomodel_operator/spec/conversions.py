"""From CR sections to the budget module's inputs: ``VideoBudget``, ``ModelSpec``, ``GpuSpec``.

Pure, and apart from the schema: the sections call these (``Budget.to_budget()``,
``VideoModelSpec.to_model_spec()``...), so the schema can be read without the arithmetic of
turning quantities into numbers and built-in table rows into overridden ones.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

from videomodel_server.budget import GpuSpec, ModelSpec, VideoBudget, lookup

from ..units import parse_bandwidth, parse_bytes

if TYPE_CHECKING:
    from .sections import Budget, Engine, Gpu, ModelSection


def video_budget(budget: Budget) -> VideoBudget:
    """Every field of :class:`VideoBudget`, read from the CR's budget with quantities parsed."""
    values: dict[str, Any] = {}
    for f in fields(VideoBudget):
        value = getattr(budget, f.name)
        kind = f.metadata.get("cr")
        if kind == "bytes":
            value = parse_bytes(value)
        elif kind == "bandwidth":
            value = parse_bandwidth(value)
        values[f.name] = value
    return VideoBudget(**values)


def model_spec(m: ModelSection) -> ModelSpec:
    """The built-in row for ``m.name`` with the CR's overrides, or the CR's own full declaration."""
    base = lookup(m.name)
    overrides: dict[str, object] = {
        "max_position_embeddings": m.max_position_embeddings,
        "num_hidden_layers": m.num_hidden_layers,
        "num_key_value_heads": m.num_key_value_heads,
        "head_dim": m.head_dim,
        "parameters": m.parameters,
    }
    if base is None:
        # ModelSection._resolvable() guarantees every field is present.
        assert m.family is not None
        assert m.max_position_embeddings is not None and m.num_hidden_layers is not None
        assert m.num_key_value_heads is not None and m.head_dim is not None and m.parameters is not None
        return ModelSpec(
            name=m.name.rsplit("/", 1)[-1],
            family=m.family,
            max_position_embeddings=m.max_position_embeddings,
            num_hidden_layers=m.num_hidden_layers,
            num_key_value_heads=m.num_key_value_heads,
            head_dim=m.head_dim,
            parameters=m.parameters,
            source="VideoModel spec.model",
        )
    return base.with_overrides(**overrides)


def gpu_spec(gpu: Gpu, engine: Engine, tensor_parallel_size: int) -> GpuSpec:
    """The accelerator memory the plan is checked against.

    With ``gpu.count == 0`` (CPU serving, as in the demo) ``gpu.memory`` stands for the host
    memory the engine may use and ``gpuMemoryUtilization`` for the fraction it reserves.
    """
    return GpuSpec(
        count=tensor_parallel_size,
        memory_bytes=parse_bytes(gpu.memory),
        memory_utilization=engine.gpu_memory_utilization,
        dtype_bytes=engine.dtype.bytes,
        cuda=gpu.count > 0,
    )
