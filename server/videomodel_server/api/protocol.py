"""Pydantic models of the wire format every endpoint shares: the error envelope and ``/v1/models``.

The chat endpoint's own request and response models are in :mod:`.chat.protocol`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ModelBudget(BaseModel):
    """The budget published on ``/v1/models`` so clients can self-limit."""

    max_seconds: float
    fps: float
    max_frames: int
    frames_per_video: int
    min_pixels: int
    max_pixels: int
    total_pixels: int | None
    videos_per_prompt: int
    images_per_prompt: int
    max_video_bytes: int
    max_prompt_tokens: int
    max_output_tokens: int
    tokens_per_video: int
    max_model_len: int


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "videomodel"
    root: str
    family: str
    max_model_len: int
    budget: ModelBudget


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
