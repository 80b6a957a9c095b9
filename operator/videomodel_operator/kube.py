"""The Kubernetes API seam: the few calls the reconciler makes, and one aiohttp implementation.

The reconciler talks only to :class:`KubeApi`; tests drive the real implementation over HTTP
against an emulated API server, and unit tests may pass their own. Writes go through
server-side apply under one field manager (:data:`FIELD_MANAGER`); status through a merge patch
on the ``/status`` subresource. Errors are one small tree: :class:`ApiError`, with
:attr:`ApiError.retryable` telling the caller whether backing off may help.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from .pods import matches
from .rendering import FIELD_MANAGER
from .spec import GROUP, PLURAL, VERSION

Obj = dict[str, Any]

PLURALS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Service"): "services",
    ("v1", "Event"): "events",
    ("v1", "Pod"): "pods",
    ("apps/v1", "Deployment"): "deployments",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitors",
    (f"{GROUP}/{VERSION}", "VideoModel"): PLURAL,
}


class ApiError(Exception):
    """An API call failed. ``status`` is the HTTP status (0 for a connection failure)."""

    def __init__(self, status: int, message: str, reason: str = "", retry_after: float = 0.0) -> None:
        super().__init__(f"{status} {reason}: {message}".strip())
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after
        """Seconds the server asked us to wait (``Retry-After`` on 429/503; 0 when absent)."""

    @property
    def retryable(self) -> bool:
        """Conflicts, throttling, server errors and connection failures may pass on a retry."""
        return self.status in (0, 409, 429) or self.status >= 500


def object_path(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    plural = PLURALS[(api_version, kind)]
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespace:
        base += f"/namespaces/{quote(namespace)}"
    base += f"/{plural}"
    if name:
        base += f"/{quote(name)}"
    return base


class KubeApi(Protocol):
    """What the reconciler needs from a Kubernetes API server."""

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        """The object, or None when it does not exist."""
        ...

    async def apply(self, obj: Obj, field_manager: str = FIELD_MANAGER) -> Obj:
        """Server-side apply ``obj`` under ``field_manager`` (the operator's by default; force)."""
        ...

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete if present (absence is not an error)."""
        ...

    async def patch_status(self, namespace: str, name: str, patch: Obj) -> Obj:
        """JSON merge patch of a VideoModel's ``status`` subresource."""
        ...

    async def create_event(self, event: Obj) -> None: ...

    async def list_video_models(self, namespace: str | None) -> list[Obj]:
        """Every VideoModel in ``namespace`` (None: all namespaces)."""
        ...

    async def has_kind(self, api_version: str, kind: str) -> bool:
        """Whether the cluster serves this kind (discovery)."""
        ...

    async def list_pods(self, namespace: str, selector: dict[str, str]) -> list[Obj]:
        """The pods in ``namespace`` whose labels match ``selector`` (equality only)."""
        ...


@dataclass(frozen=True)
class Connection:
    """Where and how to reach the API server: base URL, auth headers, TLS context."""

    server: str
    headers: dict[str, str] = field(default_factory=dict)
    ssl_context: ssl.SSLContext | None = None


class HttpKubeApi:
    """:class:`KubeApi` over aiohttp. ``connect`` is awaited for (fresh) credentials on start and 401."""

    def __init__(self, connect: Callable[[], Awaitable[Connection]], timeout: float = 30.0) -> None:
        self._connect = connect
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()

    async def _ensure(self, renew: bool = False) -> tuple[aiohttp.ClientSession, Connection]:
        async with self._lock:
            if renew or self._session is None or self._conn is None:
                if self._session is not None:
                    await self._session.close()
                conn = await self._connect()
                connector = aiohttp.TCPConnector(ssl=conn.ssl_context if conn.ssl_context is not None else True)
                self._session = aiohttp.ClientSession(headers=conn.headers, timeout=self._timeout, connector=connector)
                self._conn = conn
            return self._session, self._conn

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Obj | None = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> Obj | None:
        for attempt in (0, 1):
            session, conn = await self._ensure(renew=attempt > 0)
            data = json.dumps(body) if body is not None else None
            headers = {"Content-Type": content_type} if body is not None else {}
            try:
                async with session.request(
                    method, conn.server.rstrip("/") + path, data=data, headers=headers, params=params
                ) as response:
                    if response.status == 401 and attempt == 0:
                        continue
                    if response.status == 404 and method in ("GET", "DELETE"):
                        return None
                    text = await response.text()
                    if response.status >= 400:
                        raise _error(response.status, text, response.headers.get("Retry-After"))
                    return json.loads(text) if text else {}
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ApiError(0, f"{type(exc).__name__}: {exc}", "ConnectionError") from exc
        raise ApiError(401, "unauthorized after re-login", "Unauthorized")  # pragma: no cover

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        return await self._request("GET", object_path(api_version, kind, namespace, name))

    async def apply(self, obj: Obj, field_manager: str = FIELD_MANAGER) -> Obj:
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        result = await self._request(
            "PATCH",
            path,
            body=obj,
            content_type="application/apply-patch+yaml",  # JSON is YAML
            params={"fieldManager": field_manager, "force": "true"},
        )
        assert result is not None
        return result

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        await self._request(
            "DELETE",
            object_path(api_version, kind, namespace, name),
            body={"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"},
        )

    async def patch_status(self, namespace: str, name: str, patch: Obj) -> Obj:
        path = object_path(f"{GROUP}/{VERSION}", "VideoModel", namespace, name) + "/status"
        result = await self._request("PATCH", path, body={"status": patch}, content_type="application/merge-patch+json")
        assert result is not None
        return result

    async def create_event(self, event: Obj) -> None:
        namespace = event["metadata"]["namespace"]
        await self._request("POST", object_path("v1", "Event", namespace), body=event)

    async def list_video_models(self, namespace: str | None) -> list[Obj]:
        found = await self._request("GET", object_path(f"{GROUP}/{VERSION}", "VideoModel", namespace))
        items = (found or {}).get("items", []) or []
        return [
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoModel", **item}
            for item in items
            if isinstance(item, dict)
        ]

    async def has_kind(self, api_version: str, kind: str) -> bool:
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        try:
            found = await self._request("GET", base)
        except ApiError as exc:
            if exc.status in (403, 404, 503):
                return False
            raise
        if not found:
            return False
        return any(r.get("kind") == kind for r in found.get("resources", []))

    async def list_pods(self, namespace: str, selector: dict[str, str]) -> list[Obj]:
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        path = object_path("v1", "Pod", namespace)
        found = await self._request("GET", path, params={"labelSelector": label_selector})
        items = (found or {}).get("items", []) or []
        # The server filters; filtering again costs nothing and keeps a lax server honest.
        return [item for item in items if isinstance(item, dict) and matches(selector, item)]


MAX_RETRY_AFTER = 60.0
"""The longest ``Retry-After`` honoured (a wild value must not stall a reconcile for hours)."""


def _retry_after(header: str | None) -> float:
    """``Retry-After`` in seconds (the API server sends delta-seconds); 0 if absent or not a number."""
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(header or 0)))
    except ValueError:
        return 0.0


def _error(status: int, text: str, retry_after: str | None = None) -> ApiError:
    wait = _retry_after(retry_after)
    try:
        payload = json.loads(text)
        return ApiError(status, str(payload.get("message", ""))[:500], str(payload.get("reason", "")), wait)
    except (ValueError, AttributeError):
        return ApiError(status, text[:200], retry_after=wait)
