"""The kopf shell: triggers in, :class:`~videomodel_operator.reconciling.Reconciler` passes out.

Every trigger runs the same level-based pass:

- create / update / resume of a VideoModel (kopf retries these with backoff on
  :class:`kopf.TemporaryError`; an invalid spec is a :class:`kopf.PermanentError`);
- a change to a Deployment or Service the operator owns (drift or a rollout moving on);
- a periodic resync task (every ``resync_seconds``) that catches drift in any other child.

The resync is a plain task rather than ``@kopf.timer`` on purpose: kopf timers put a finalizer
on every object, and this operator needs none (owner references clean up).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kopf

from .kube import ApiError, Connection, HttpKubeApi, KubeApi
from .reconciling import PermanentSpecError, Reconciler
from .rendering import MANAGED_BY
from .spec import GROUP, KIND, PLURAL, VERSION

log = logging.getLogger(__name__)

LoginFn = Callable[..., Any]


@dataclass(frozen=True)
class OperatorConfig:
    """Operator settings (from the command line or the chart's values)."""

    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty watches the whole cluster."""
    event_level: int = logging.WARNING
    """Lowest level of kopf's own log messages that are also posted as Kubernetes Events."""
    resync_seconds: float = 60.0
    liveness_endpoint: str | None = "http://0.0.0.0:8080/healthz"
    backoff_seconds: float = 5.0
    discover_service_monitor: bool = True


def now_rfc3339() -> str:
    return datetime.datetime.now(tz=datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _connection_from(info: kopf.ConnectionInfo) -> Connection:
    ssl_context = info.as_ssl_context() if info.server.startswith("https") else None
    return Connection(server=info.server, headers=info.as_http_headers(), ssl_context=ssl_context)


@dataclass
class _Credentials:
    """The last credentials kopf's login produced, shared with our own API client."""

    info: kopf.ConnectionInfo | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def connect(self) -> Connection:
        await self.ready.wait()
        assert self.info is not None
        return _connection_from(self.info)


def default_login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf's own logins, in its order: the kubernetes client (in-cluster, kubeconfig with exec
    plugins), then the plain service account and kubeconfig readers."""
    for login in (kopf.login_via_client, kopf.login_with_service_account, kopf.login_with_kubeconfig):
        info: kopf.ConnectionInfo | None = login(**kwargs)
        if info is not None:
            return info
    return None


def _owner_name(body: kopf.Body) -> str | None:
    for ref in body.get("metadata", {}).get("ownerReferences", []) or []:
        if ref.get("kind") == KIND and str(ref.get("apiVersion", "")).startswith(f"{GROUP}/"):
            return str(ref.get("name"))
    return None


class Handlers:
    """Every kopf handler of one operator, bound to one :class:`Reconciler` (no module-level state).

    ``api`` defaults to :class:`HttpKubeApi` authenticated by the same login as kopf.
    """

    def __init__(
        self,
        config: OperatorConfig,
        *,
        login: LoginFn = default_login,
        api: KubeApi | None = None,
        clock: Callable[[], str] = now_rfc3339,
    ) -> None:
        self.config = config
        self._login_fn = login
        self.credentials = _Credentials()
        self.http_api: HttpKubeApi | None = None
        if api is None:
            self.http_api = HttpKubeApi(self.credentials.connect)
            api = self.http_api
        self.reconciler = Reconciler(api, clock, discover=config.discover_service_monitor)
        self.reconciler.shutdown = self.shutdown
        self._resync_task: asyncio.Task[None] | None = None

    def register(self, registry: kopf.OperatorRegistry) -> kopf.OperatorRegistry:
        kopf.on.login(registry=registry)(self.login)
        kopf.on.startup(registry=registry)(self.startup)
        kopf.on.cleanup(registry=registry)(self.cleanup)
        for on in (kopf.on.resume, kopf.on.create, kopf.on.update):
            on(GROUP, VERSION, PLURAL, registry=registry)(self.reconcile)
        labels = {"app.kubernetes.io/managed-by": MANAGED_BY}
        kopf.on.event("apps", "v1", "deployments", labels=labels, registry=registry)(self.on_child)
        kopf.on.event("", "v1", "services", labels=labels, registry=registry)(self.on_child)
        return registry

    def login(self, **kwargs: Any) -> kopf.ConnectionInfo | None:
        info: kopf.ConnectionInfo | None = self._login_fn(**kwargs)
        if info is not None:
            self.credentials.info = info
            self.credentials.ready.set()
        return info

    async def startup(self, settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.level = self.config.event_level
        # One replica writes: the chart runs exactly one (Recreate). kopf peering would only
        # pause an equal-priority twin, not the resync task, so it is not offered.
        settings.peering.standalone = True
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        self._resync_task = asyncio.create_task(self._resync_forever())

    async def shutdown(self) -> None:
        """Stop the resync task and close our API client (idempotent)."""
        task, self._resync_task = self._resync_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.http_api is not None:
            await self.http_api.close()

    async def cleanup(self, **_: Any) -> None:
        await self.shutdown()

    async def reconcile(self, body: kopf.Body, **_: Any) -> None:
        try:
            outcome = await self.reconciler.reconcile(dict(body))
        except PermanentSpecError as exc:
            raise kopf.PermanentError(f"invalid spec: {exc}") from None
        except ApiError as exc:
            if exc.retryable:
                delay = max(self.config.backoff_seconds, exc.retry_after)  # the server's Retry-After wins
                raise kopf.TemporaryError(f"API error, will retry: {exc}", delay=delay) from exc
            raise kopf.PermanentError(f"API refused: {exc}") from exc
        if outcome.writes:
            log.info(
                "reconciled %s: %d write(s) %s", body.get("metadata", {}).get("name"), outcome.writes, outcome.applied
            )

    async def on_child(self, body: kopf.Body, type: str | None, **_: Any) -> None:
        name = _owner_name(body)
        namespace = body.get("metadata", {}).get("namespace")
        if name is None or namespace is None:
            return
        try:
            await self.reconciler.reconcile_by_name(namespace, name)
        except PermanentSpecError:
            pass  # reported in status by the pass itself
        except ApiError as exc:
            log.warning("reconcile of %s/%s after a %s change failed: %s", namespace, name, type, exc)

    async def _resync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.resync_seconds)
            try:
                await resync_once(self.reconciler, self.config.namespaces)
            except Exception:  # the drift safety net must outlive any one bad pass
                log.exception("resync pass failed; retrying in %s s", self.config.resync_seconds)


def build_registry(
    config: OperatorConfig,
    *,
    login: LoginFn = default_login,
    api: KubeApi | None = None,
    clock: Callable[[], str] = now_rfc3339,
) -> tuple[kopf.OperatorRegistry, Reconciler]:
    """A kopf registry with every handler of one :class:`Handlers`, and its reconciler."""
    handlers = Handlers(config, login=login, api=api, clock=clock)
    return handlers.register(kopf.OperatorRegistry()), handlers.reconciler


async def resync_once(reconciler: Reconciler, namespaces: tuple[str, ...]) -> int:
    """One resync pass over every watched VideoModel; returns the writes it made."""
    writes = 0
    reconciler.forget_capabilities()
    for namespace in namespaces or (None,):
        try:
            bodies = await reconciler.api.list_video_models(namespace)
        except ApiError as exc:
            log.warning("resync: cannot list VideoModels: %s", exc)
            continue
        for body in bodies:
            if body.get("metadata", {}).get("deletionTimestamp"):
                continue
            try:
                writes += (await reconciler.reconcile(body)).writes
            except (PermanentSpecError, ApiError) as exc:
                log.info("resync of %s: %s", body.get("metadata", {}).get("name"), exc)
    return writes
