"""The real app on a fake engine: one builder for every test that serves the API in-process.

``fake_engine_server(engine, loader, **overrides)`` is the app of ``videomodel_server`` (routes,
admission, metrics, the chat service) in a uvicorn thread (:class:`~tests.harness.threaded.ThreadedServer`),
with Qwen2-VL-2B's geometry and budget table and ``engine`` behind the ``Engine`` seam. The loader is
a :class:`~tests.harness.fakes.FakeLoader` when given one, else the real media pipeline
(``build_loader``: fetch, probe, the decode pool). Settings are given by field name whatever their
group (``max_seconds=20, allow_http=True, decode_workers=1``): :func:`server_settings`.

The pieces are public for the tests that need them apart: :func:`server_settings`,
:func:`pipeline_loader` (to swap the fetcher's resolver, say) and :func:`app_state` (for a server
other than :class:`ThreadedServer`, such as the CLI's ``draining_server``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from videomodel_server.api.state import AppState
from videomodel_server.app import create_app
from videomodel_server.budget import BUILTIN_MODELS
from videomodel_server.engine import Engine
from videomodel_server.loading import MediaLoader
from videomodel_server.media_adapter import PipelineLoader, build_loader
from videomodel_server.settings import ServerSettings
from videomodel_server.wiring import build_state, resolve

from .threaded import ThreadedServer

MODEL = BUILTIN_MODELS["Qwen2-VL-2B"]
"""The geometry and budget table every fake-engine server runs with."""
BASE: dict[str, dict[str, Any]] = {
    "model": {"model": Path("/models/Qwen2-VL-2B-Instruct"), "served_model_name": "tiny"}
}


def _group_of() -> dict[str, str]:
    """Each settings field's group (``max_seconds`` -> ``budget``), read off :class:`ServerSettings`."""
    out: dict[str, str] = {}
    for group, info in ServerSettings.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and hasattr(kind, "model_fields"):
            names = list(kind.model_fields)
        elif isinstance(kind, type) and dataclasses.is_dataclass(kind):
            names = [f.name for f in dataclasses.fields(kind)]
        else:
            continue
        for name in names:
            assert name not in out, f"settings field {name} is in two groups: {out[name]}, {group}"
            out[name] = group
    return out


GROUP_OF = _group_of()


def server_settings(**overrides: Any) -> ServerSettings:
    """Settings of a server on a fake engine: Qwen2-VL-2B's path, served as ``tiny``; ``overrides`` by
    field name, whatever their group (a name no group has is a ``KeyError``)."""
    groups: dict[str, dict[str, Any]] = {name: dict(values) for name, values in BASE.items()}
    for name, value in overrides.items():
        groups.setdefault(GROUP_OF[name], {})[name] = value
    return ServerSettings.model_validate(groups)


def pipeline_loader(settings: ServerSettings) -> PipelineLoader:
    """The real media pipeline for ``settings`` (as the server builds it)."""
    return build_loader(settings, resolve(settings, MODEL))


def app_state(settings: ServerSettings, engine: Engine, loader: MediaLoader | None = None) -> AppState:
    """The wired state of the app on ``engine``; ``loader`` None: the real media pipeline."""
    resolved = resolve(settings, MODEL)
    return build_state(
        settings, resolved, loader if loader is not None else build_loader(settings, resolved), engine=engine
    )


class AppServer(ThreadedServer):
    """The app of ``state`` in a uvicorn thread; ``state`` keeps the parts (loader, admission, metrics)."""

    def __init__(self, state: AppState, hooks: dict[str, Callable[[], None]] | None = None) -> None:
        super().__init__(create_app(state, **(hooks or {})))
        self.state = state


def fake_engine_server(
    engine: Engine,
    loader: MediaLoader | None = None,
    *,
    settings: ServerSettings | None = None,
    hooks: dict[str, Callable[[], None]] | None = None,
    **overrides: Any,
) -> AppServer:
    """The real app on ``engine``, to use as a context manager (``with ... as server: server.url``).

    ``loader``: a fake (:class:`~tests.harness.fakes.FakeLoader`) or None for the real media pipeline.
    ``overrides``: settings by field name (:func:`server_settings`), or ``settings`` made beforehand
    (not both). ``hooks``: ``create_app``'s ``on_engine_*`` callbacks.
    """
    if settings is None:
        settings = server_settings(**overrides)
    elif overrides:
        raise TypeError("give settings or overrides, not both")
    return AppServer(app_state(settings, engine, loader), hooks)
