"""Shared helpers for the operator tests: the example CRs and parsed models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from videomodel_operator.rendering import Sizing, render_deployment, serving_contract, sizing
from videomodel_operator.spec import VideoModel, VideoModelSpec, parse_video_model
from videomodel_server.budget import Plan

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FEASIBLE_EXAMPLES = sorted(EXAMPLES.glob("*.yaml"))
INFEASIBLE_EXAMPLES = sorted((EXAMPLES / "infeasible").glob("*.yaml"))


def load_body(path: Path) -> dict[str, Any]:
    body = yaml.safe_load(path.read_text())
    assert isinstance(body, dict)
    return body


def load_cr(path: Path, uid: str | None = "3f1d3c1e-0000-4000-8000-000000000001") -> VideoModel:
    body = load_body(path)
    if uid:
        body["metadata"]["uid"] = uid
    return parse_video_model(body)


def deployment_for(cr: VideoModel, plan: Plan) -> dict[str, Any]:
    """The Deployment :func:`~videomodel_operator.rendering.render` gives ``cr`` (for its serving contract)."""
    return render_deployment(cr, plan, serving_contract(cr.spec, plan))


def sizing_for(spec: VideoModelSpec, plan: Plan) -> Sizing:
    """A replica's sizing for the serving contract its server is given."""
    return sizing(spec, plan, serving_contract(spec, plan))


@pytest.fixture(params=FEASIBLE_EXAMPLES, ids=lambda p: p.name)
def example_path(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path
