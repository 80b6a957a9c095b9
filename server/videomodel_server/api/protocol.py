"""Pydantic models of the wire format every endpoint shares: the error envelope and ``/v1/models``.

The chat endpoint's own request and response models are in :mod:`.chat.protocol`.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from ..budget import VideoBudget


def _model_budget() -> type[BaseModel]:
    """Every :class:`VideoBudget` field (resolved) plus what the plan derives from them.

    Built from the dataclass, so a new budget field is published the day it is added.
    """
    hints = typing.get_type_hints(VideoBudget)
    fields: dict[str, Any] = {
        f.name: (hints[f.name], Field(description=str(f.metadata.get("help", ""))))
        for f in dataclasses.fields(VideoBudget)
    }
    for name in PUBLISHED_PLAN_FIELDS:
        fields[name] = (int, Field(description=f"Derived by the plan: {name.replace('_', ' ')}."))
    return create_model(
        "ModelBudget", __doc__="The budget published on /v1/models so clients can self-limit.", **fields
    )


PUBLISHED_PLAN_FIELDS = ("frames_per_video", "tokens_per_video", "tokens_per_image", "max_model_len")
ModelBudget = _model_budget()


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "videomodel"
    root: str
    family: str
    max_model_len: int
    budget: ModelBudget  # type: ignore[valid-type]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
