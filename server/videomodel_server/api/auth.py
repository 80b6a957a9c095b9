"""Optional bearer API key on every route but ``/health`` and ``/metrics`` (docs/security.md#api-key)."""

from __future__ import annotations

import hmac

from fastapi import Request

from ..errors import Unauthorized
from .state import app_state


async def require_api_key(request: Request) -> None:
    """Dependency: pass when no key is configured or the bearer token matches (constant time)."""
    key = app_state(request).settings.listen.api_key
    if key is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.get_secret_value().encode()):
        raise Unauthorized("a valid API key is required (Authorization: Bearer <key>)")
