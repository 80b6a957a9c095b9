"""Run the real kopf operator against the emulated API server, over real HTTP.

``Cluster`` bundles the emulator, a client acting as kubectl, a stand-in for the Deployment
controller (it publishes Deployment status the way the real one does, as a separate writer),
and the operator task. Writes are attributed by User-Agent: requests made by the test's own
client (kmock's) are not the operator's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp.test_utils
import aiohttp.web
import aiohttp.web_server
import kmock
import kopf
import yaml

from videomodel_operator.handlers import OperatorConfig, build_registry
from videomodel_operator.reconciling import Reconciler

from .apiserver import ApiServer

Obj = dict[str, Any]

CR_PATH = "/apis/videomodel.io/v1alpha1/namespaces/{ns}/videomodels"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

PATHS = {
    "VideoModel": "/apis/videomodel.io/v1alpha1/namespaces/{ns}/videomodels/{name}",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
    "Service": "/api/v1/namespaces/{ns}/services/{name}",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps/{name}",
    "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/{name}",
    "PodDisruptionBudget": "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/{name}",
    "HorizontalPodAutoscaler": "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/{name}",
}


class Cluster:
    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.ready_pods = True
        """What the stand-in Deployment controller reports: all pods ready, or none (crash loop)."""
        self.reconciler: Reconciler | None = None

    # -- kubectl ----------------------------------------------------------------------------

    async def request(self, method: str, path: str, body: Obj | None = None, content_type: str | None = None) -> Any:
        headers = {"Content-Type": content_type} if content_type else {}
        async with self.server.request(method, path, json=body, headers=headers) as response:
            payload = await response.json(content_type=None)
            if response.status >= 400:
                raise AssertionError(f"{method} {path} -> {response.status}: {payload}")
            return payload

    async def create(self, body: Obj) -> Obj:
        result: Obj = await self.request("POST", CR_PATH.format(ns=body["metadata"]["namespace"]), body)
        return result

    async def get(self, kind: str, ns: str, name: str) -> Obj | None:
        async with self.server.request("GET", PATHS[kind].format(ns=ns, name=name)) as response:
            if response.status == 404:
                return None
            data: Obj = await response.json()
            return data

    async def patch(self, kind: str, ns: str, name: str, patch: Obj, subresource: str = "") -> Obj:
        path = PATHS[kind].format(ns=ns, name=name) + (f"/{subresource}" if subresource else "")
        result: Obj = await self.request("PATCH", path, patch, "application/merge-patch+json")
        return result

    async def delete(self, kind: str, ns: str, name: str) -> None:
        await self.request("DELETE", PATHS[kind].format(ns=ns, name=name))

    # -- the Deployment controller's part ---------------------------------------------------------

    async def deployment_controller(self) -> None:
        """Publish status for Deployments whose spec moved (like the real controller would)."""
        resource = kmock.resource("apps", "v1", "deployments")
        while True:
            for (res, ns, name), obj in list(self.server.objects.items()):
                if res != resource or obj.deleted:
                    continue
                raw = obj.raw
                generation = raw["metadata"].get("generation", 1)
                replicas = raw["spec"].get("replicas", 1)
                ready = replicas if self.ready_pods else 0
                status = raw.get("status") or {}
                wanted = {
                    "observedGeneration": generation,
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "readyReplicas": ready,
                    "availableReplicas": ready,
                }
                if ns is not None and any(status.get(k) != v for k, v in wanted.items()):
                    with contextlib.suppress(AssertionError):
                        await self.patch("Deployment", ns, name, {"status": wanted}, "status")
            await asyncio.sleep(0.05)

    # -- the operator ------------------------------------------------------------------------------

    async def start_operator(self, config: OperatorConfig, url: str) -> None:
        """Start a fresh operator process-equivalent: a new registry, reconciler and kopf loop, in a
        thread of its own with its own event loop.

        Its own loop, because kopf owns the loop it runs in: when ``kopf.operator()`` stops it
        cancels every task created after it started ("hung tasks"), whoever made them. Sharing the
        test's loop, a stopping operator cancelled the test's own tasks, the emulator's request
        handlers and, during a restart, the next operator's watchers and resync task (which then
        never converged or resynced: the hang and the flakes of the first restart scenario).
        """
        self._config, self._url = config, url
        registry, reconciler = build_registry(config, login=lambda **_: kopf.ConnectionInfo(server=url))
        self.reconciler = reconciler
        loop = asyncio.new_event_loop()
        stop = threading.Event()
        main: list[asyncio.Task[None]] = []

        async def operate() -> None:
            main.append(asyncio.current_task())  # type: ignore[arg-type]
            try:
                await kopf.operator(
                    registry=registry,
                    clusterwide=not config.namespaces,
                    namespaces=config.namespaces,
                    standalone=True,
                    stop_flag=stop,
                )
            finally:
                await reconciler.shutdown()  # kopf's cleanup handlers do not run when it is cancelled

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(operate())
            except BaseException as exc:  # cancelled on purpose; anything else is logged
                if not isinstance(exc, asyncio.CancelledError):
                    logging.getLogger(__name__).exception("the operator failed")
            finally:
                _cancel_all(loop)
                loop.close()

        thread = threading.Thread(target=run, name="operator", daemon=True)
        thread.start()
        self._operator = _RunningOperator(loop, thread, stop, main)

    async def stop_operator(self) -> None:
        """Stop the operator like a process that exits: nothing of it keeps running afterwards.

        The stop flag first (kopf's own stop), then, after a short grace, cancellation of its main
        task (kopf gives tasks it did not start, such as open watch streams, 5 s otherwise). Every
        wait is bounded: a thread that will not end fails the test instead of hanging it.
        """
        op = self._operator
        op.stop.set()
        await asyncio.to_thread(op.thread.join, 0.5)
        if op.thread.is_alive() and op.main:
            # The loop may close between the check and the call (kopf stopping by itself just
            # then): nothing is left to cancel, and the join below still bounds the wait.
            with contextlib.suppress(RuntimeError):
                op.loop.call_soon_threadsafe(op.main[0].cancel)
        await asyncio.to_thread(op.thread.join, 30)
        assert not op.thread.is_alive(), "the operator's loop did not stop within 30 s"

    async def restart_operator(self) -> None:
        await self.stop_operator()
        await self.start_operator(self._config, self._url)

    # -- observation ------------------------------------------------------------------------------

    def operator_writes(self) -> list[str]:
        return [
            f"{method} {path}"
            for method, path, agent in self.server.log
            if method in WRITE_METHODS and not agent.startswith("kmock")
        ]

    async def eventually(self, check: Callable[[], Awaitable[bool]], timeout: float = 30.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await check():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what or check}")

    async def quiet(self, quiet_for: float = 0.7, timeout: float = 10.0) -> None:
        """Wait until the operator has written nothing for ``quiet_for`` seconds (kopf's own
        bookkeeping patch after an update handler can lag the status write it follows)."""
        deadline = time.monotonic() + timeout
        count, since = len(self.operator_writes()), time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            now = len(self.operator_writes())
            if now != count:
                count, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_for:
                return
        raise AssertionError(f"the operator kept writing: {self.operator_writes()[-5:]}")

    def events(self, reason: str | None = None) -> list[Obj]:
        """The Events stored so far (oldest first), of one ``reason`` if given."""
        found = [
            dict(obj.raw)
            for (res, _, _), obj in self.server.objects.items()
            if res.plural == "events" and not obj.deleted and reason in (None, obj.raw.get("reason"))
        ]
        return sorted(found, key=lambda e: int(e["metadata"].get("resourceVersion", 0)))

    async def condition(self, ns: str, name: str, kind: str) -> Obj | None:
        cr = await self.get("VideoModel", ns, name)
        for cond in ((cr or {}).get("status") or {}).get("conditions", []):
            if cond["type"] == kind:
                return dict(cond)
        return None


@dataclasses.dataclass
class _RunningOperator:
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    stop: threading.Event
    main: list[asyncio.Task[None]]


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on a stopped operator's loop (as a process exit would end it); bounded."""
    for _ in range(10):
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        if not pending:
            return
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.wait(pending, timeout=1))


class _QuickShutdownServer(aiohttp.test_utils.RawTestServer):
    """The emulator's HTTP server, waiting at most 1 s (not aiohttp's 60 s) for open watch
    streams when a test ends."""

    async def _make_runner(self, debug: bool = True, **kwargs: Any) -> aiohttp.web.ServerRunner:
        server = aiohttp.web_server.Server(self._handler, loop=self._loop, debug=debug, **kwargs)
        return aiohttp.web.ServerRunner(server, debug=debug, shutdown_timeout=1.0, **kwargs)


async def _reap_leftover_tasks() -> None:
    """Cancel what the stopped operator left running (kopf skips its cleanup when cancelled), so
    the test's event loop closes promptly; name any task that ignores cancellation."""
    me = asyncio.current_task()
    leftovers = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    if os.environ.get("VM_DEBUG_TASKS"):
        for t in leftovers:
            print("LEFTOVER", t.get_coro(), file=sys.stderr)
    # kopf's guards shield their inner tasks and swallow the first cancellation, so cancel again
    # until they stop; a loaded machine can take several rounds.
    pending = set(leftovers)
    for _ in range(30):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1)
    assert not pending, f"tasks ignore cancellation: {[t.get_coro() for t in pending]}"


CHART_FILES = Path(__file__).resolve().parents[2] / "charts" / "videomodel-operator" / "files"


def chart_rules() -> list[Obj]:
    """The RBAC rules the Helm chart grants a cluster-wide operator."""
    rules: list[Obj] = []
    for name in ("cluster-rules.yaml", "namespaced-rules.yaml"):
        rules += yaml.safe_load((CHART_FILES / name).read_text())
    return rules


@contextlib.asynccontextmanager
async def running_cluster(
    resync_seconds: float = 0.5,
    rules: list[Obj] | None = None,
    allow_denials: bool = False,
    namespaces: tuple[str, ...] = (),
    service_monitor_crd: bool = False,
) -> AsyncIterator[Cluster]:
    """The operator with the chart's RBAC enforced: any request it is not granted fails the test."""
    logging.getLogger("kopf").setLevel(logging.WARNING)
    rbac = chart_rules() if rules is None else rules
    async with ApiServer(rbac=rbac) as server, kmock.Server(server, server_cls=_QuickShutdownServer):
        server.declare()
        if service_monitor_crd:
            server.resources["monitoring.coreos.com/v1/servicemonitors"] = kmock.ResourceInfo(
                kind="ServiceMonitor", namespaced=True, verbs=("get", "list", "watch", "create", "patch", "delete")
            )
        for namespace in ("default", "models", "other"):
            server.objects[kmock.resource("", "v1", "namespaces"), None, namespace] = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace, "uid": namespace, "resourceVersion": "1"},
            }
        cluster = Cluster(server)
        url = str(server.url).rstrip("/")
        config = OperatorConfig(
            namespaces=namespaces,
            resync_seconds=resync_seconds,
            backoff_seconds=0.2,
            liveness_endpoint=None,
            event_level=logging.WARNING,
        )
        controller = asyncio.create_task(cluster.deployment_controller())
        await cluster.start_operator(config, url)
        try:
            yield cluster
        finally:
            await cluster.stop_operator()
            controller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await controller
            await _reap_leftover_tasks()
        assert allow_denials or not server.denied, f"the chart's RBAC denied the operator: {sorted(set(server.denied))}"
