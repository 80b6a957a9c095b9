"""The FastAPI application factory. Every dependency is injected through :class:`AppState`.

``create_app(state)`` wires the routers, the error envelope and a small ASGI middleware that
gives every request an id (``x-request-id``) and counts it by route template and status. The
lifespan loads the engine in the background, so ``/health`` answers 503 while the model loads,
and on shutdown drains admitted requests (SIGTERM, docs/security.md#disconnects-and-shutdown) before stopping the
engine and the decode workers.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__
from .api import errors, health, models
from .api.chat import router as chat
from .api.state import AppState

log = logging.getLogger(__name__)

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestContext:
    """Assign a request id and count each request by route template and status (bounded labels)."""

    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"x-request-id" for k, _ in headers):
                    headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.state.metrics.requests.labels(path, str(status["code"])).inc()


def create_app(
    state: AppState,
    *,
    start_engine: bool = True,
    on_engine_start_failure: Callable[[], None] | None = None,
    on_engine_ready: Callable[[], None] | None = None,
) -> FastAPI:
    """The app for ``state``; with ``start_engine`` the lifespan loads the engine in the background.

    ``on_engine_start_failure`` runs once if the engine cannot start (the CLI stops the process
    then, so the kubelet restarts the container at once instead of after the startup probe's
    budget); without it ``/health`` stays 503 ``dead``. ``on_engine_ready`` runs once when it is
    up and warmed (the CLI freezes the start-up heap then: :func:`~.cli.freeze_startup_heap`).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading: asyncio.Task[None] | None = None
        await state.loader.start()
        if start_engine:
            loading = asyncio.create_task(
                _start_engine(state, on_engine_start_failure, on_engine_ready), name="engine-start"
            )
        try:
            yield
        finally:
            drained = await state.admission.drain(state.settings.admission.drain_timeout)
            if not drained:
                log.warning("drain timeout: aborting requests still in flight", extra={"reason": "drain_timeout"})
            if loading is not None and not loading.done():
                loading.cancel()
                with suppress(BaseException):
                    await loading
            await state.engine.shutdown()
            await state.loader.close()

    app = FastAPI(title="videomodel-server", version=__version__, lifespan=lifespan)
    app.state.videomodel = state
    errors.install(app)
    app.include_router(chat.router)
    app.include_router(models.router)
    app.include_router(health.router)
    app.add_middleware(RequestContext, state=state)
    state.metrics.bind(
        in_flight=lambda: state.admission.in_flight,
        queued=lambda: state.admission.queued,
        engine_unfinished=lambda: state.engine.unfinished_requests(),
        engine_ready=lambda: 1.0 if state.engine.ready else 0.0,
    )
    state.metrics.bind_cache(state.loader.cache_lookups)
    return app


async def _start_engine(
    state: AppState, on_failure: Callable[[], None] | None, on_ready: Callable[[], None] | None
) -> None:
    try:
        await state.engine.start()
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        # /health now reports the engine dead (503); the CLI's hook stops the process. The detail is
        # the engine's own message (configuration, not request data): what a crash-looping pod's
        # log must say.
        detail = f"{type(exc).__name__}: {exc}"[:1000]
        log.exception("engine failed to start", extra={"reason": "engine_start_failed", "detail": detail})
        if on_failure is not None:
            on_failure()
    else:
        if on_ready is not None:
            on_ready()
