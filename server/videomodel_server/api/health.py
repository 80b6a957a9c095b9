"""``GET /health`` (200 only when the engine can serve) and ``GET /metrics`` (Prometheus). No auth."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from .state import app_state

router = APIRouter()


@router.get("/health")
async def health(request: Request) -> Response:
    state = app_state(request)
    engine = state.engine
    if engine.dead:
        return JSONResponse({"status": "dead"}, status_code=503, headers={"Retry-After": "5"})
    if not engine.ready:
        return JSONResponse({"status": "loading"}, status_code=503, headers={"Retry-After": "5"})
    if state.admission.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """This server's metrics, then the process-wide registry (vLLM's own engine metrics)."""
    body = app_state(request).metrics.render() + generate_latest(REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
