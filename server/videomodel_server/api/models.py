"""``GET /v1/models``: the served model and the budget it enforces, so clients can self-limit."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from .auth import require_api_key
from .protocol import ModelBudget, ModelCard, ModelList
from .state import AppState, app_state

router = APIRouter()


def model_card(state: AppState) -> ModelCard:
    budget, plan, settings = state.budget, state.plan, state.settings
    return ModelCard(
        id=settings.model_name,
        created=state.created,
        root=settings.model_name,
        family=state.model.family.value,
        max_model_len=plan.max_model_len,
        budget=ModelBudget(
            max_seconds=budget.max_seconds,
            fps=budget.fps,
            max_frames=budget.max_frames,
            frames_per_video=plan.frames_per_video,
            min_pixels=budget.min_pixels or 0,
            max_pixels=budget.max_pixels or 0,
            total_pixels=budget.total_pixels,
            videos_per_prompt=budget.videos_per_prompt,
            images_per_prompt=budget.images_per_prompt,
            max_video_bytes=budget.max_video_bytes,
            max_prompt_tokens=budget.max_prompt_tokens,
            max_output_tokens=budget.max_output_tokens,
            tokens_per_video=plan.tokens_per_video,
            max_model_len=plan.max_model_len,
        ),
    )


@router.get("/v1/models", dependencies=[Depends(require_api_key)])
async def list_models(request: Request) -> ModelList:
    return ModelList(data=[model_card(app_state(request))])
