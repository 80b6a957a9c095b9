"""What the routes share: one :class:`AppState`, built at start-up (`wiring.build_state`) or by a test."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from fastapi import Request

from ..admission import Admission
from ..budget import ModelSpec, Plan, VideoBudget
from ..engine import Engine
from ..jobs import RequestLimits
from ..loading import MediaLoader
from ..metrics import Metrics
from ..settings import ServerSettings
from .chat.service import ChatService


@dataclass
class AppState:
    settings: ServerSettings
    model: ModelSpec
    budget: VideoBudget
    """Resolved for the served family (pixel defaults filled in)."""
    plan: Plan
    engine: Engine
    loader: MediaLoader
    admission: Admission
    metrics: Metrics
    limits: RequestLimits
    service: ChatService
    created: int = field(default_factory=lambda: int(time.time()))


def app_state(request: Request) -> AppState:
    state = request.app.state.videomodel
    assert isinstance(state, AppState)
    return state
