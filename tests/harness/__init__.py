"""The one test harness: servers, fakes, media and budgets that every test builds on.

Each name below is importable from the package (``from tests.harness import MediaServer``) and is
loaded from its module on first use, so a test pays only for what it imports: the media tests run
on the Python 3.12 venv, which has no FastAPI app, and never import :mod:`tests.harness.app`.

The area modules are imported by their own path: :mod:`tests.harness.operator` (the example CRs,
the Pod Security check, the reconcile scenario), :mod:`tests.harness.hardening` (the hardening rig),
:mod:`tests.harness.shipping` (the lock, the Dockerfiles, the images' Python).
"""

from __future__ import annotations

import importlib
from typing import Any

EXPORTS: dict[str, tuple[str, ...]] = {
    "app": ("AppServer", "GROUP_OF", "MODEL", "app_state", "fake_engine_server", "pipeline_loader", "server_settings"),
    "budgets": ("FAMILY_BUDGETS", "TRANSLATION_LIMITS", "family_budget", "predicted_video_tokens", "probe_result"),
    "clips": ("CLIP_FPS", "corrupt_mjpeg", "make_clips"),
    "fakes": ("FakeEngine", "FakeLoader"),
    "media": ("HOSTILE", "MediaServer", "Seen", "TlsSetup", "loopback_resolver", "self_signed"),
    "payloads": ("data_url", "video_part"),
    "process": ("ENGINE_PASSTHROUGH", "STOPPED_CLEANLY", "ServerProcess", "descendants", "free_port", "metric"),
    "threaded": ("ThreadedServer",),
}
"""Module -> the public names it gives the package (tests/test_layout.py checks each is defined there)."""

_HOME = {name: module for module, names in EXPORTS.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
