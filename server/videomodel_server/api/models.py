"""``GET /v1/models``: the served model and the budget it enforces, so clients can self-limit."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Depends, Request

from .auth import require_api_key
from .protocol import PUBLISHED_PLAN_FIELDS, ModelBudget, ModelCard, ModelList
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
            **dataclasses.asdict(budget), **{name: getattr(plan, name) for name in PUBLISHED_PLAN_FIELDS}
        ),
    )


@router.get("/v1/models", dependencies=[Depends(require_api_key)])
async def list_models(request: Request) -> ModelList:
    return ModelList(data=[model_card(app_state(request))])
