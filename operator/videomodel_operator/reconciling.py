"""One level-based reconcile pass: read, derive, render, compare, apply, summarize.

No kopf here: the kopf shell (:mod:`videomodel_operator.handlers`) calls :meth:`Reconciler.reconcile`
from every trigger (create, update, resume, timer, a change to an owned Deployment) and maps
its outcome to kopf's retry semantics. All I/O goes through :class:`~videomodel_operator.kube.KubeApi`.

Idempotence (docs/security.md#idempotent-reconcile): a child is applied only when the rendered object is not already
contained in the live one, the status only when it differs, and an Event only when a verdict
changes; a pass over an unchanged world makes no write at all.

Never adopted: an object of a child's name that this VideoModel does not already control is left
alone, and the pass stops with ``Stalled=True`` (``NotOwner``) and an Event naming it. An API
refusal (a 422, a 403) stops the pass the same way (``ApplyFailed``) with the server's message.

Replicas handover: when a spec moves from ``replicas`` to ``autoscaling``, the rendered
Deployment stops setting ``spec.replicas``; applied as is, server-side apply would drop the
field and Kubernetes would reset it to 1. The documented remedy (Kubernetes "migrating
Deployments to horizontal autoscaling", SSA ownership transfer) is applied first: the current
count is applied under a separate field manager (:data:`HANDOVER_MANAGER`), which keeps the
field, and the HPA takes it from there.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .kube import ApiError, KubeApi
from .planning import plan_for, plan_status
from .pods import pod_problem
from .rendering import (
    HASH_ANNOTATION,
    REPLICAS_ANNOTATION,
    REPLICAS_BY_AUTOSCALER,
    Capabilities,
    config_map_name,
    keep_live_selector,
    render,
    selector_string,
    service_url,
)
from .spec import API_VERSION, KIND, SpecError, VideoModel, parse_video_model
from .status import Verdict, status_patch, summarize, transitions, workload_ready

Obj = dict[str, Any]
log = logging.getLogger(__name__)

OPTIONAL_KINDS: tuple[tuple[str, str], ...] = (
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
)
"""Kinds render() emits only sometimes: pruned (if we own them) when not rendered."""

HANDOVER_MANAGER = "videomodel-operator-replicas-handover"
"""Field manager that keeps ``spec.replicas`` while the HPA takes it over."""

RETRY_DELAYS = (0.1, 0.3, 1.0)
"""In-pass retries of one API call; past them the shell's backoff takes over."""


class PermanentSpecError(Exception):
    """The spec cannot be served as written; retrying will not help until it changes."""


class Blocked(Exception):
    """A child could not be applied: ``reason`` (``ApplyFailed``, ``NotOwner``) and a message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def contains(desired: Any, live: Any) -> bool:
    """Whether ``live`` already holds everything ``desired`` sets (fields the server adds are fine).

    Lists must match item by item (SSA replaces atomic lists; for associative lists the server
    keeps our order); maps may have extra keys.
    """
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(k in live and contains(v, live[k]) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(desired) != len(live):
            return False
        return all(contains(d, x) for d, x in zip(desired, live, strict=True))
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired is live
    return bool(desired == live)


def _owned_by(obj: Obj, uid: str | None) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences", []) or []
    return any(r.get("kind") == KIND and r.get("uid") == uid for r in refs)


def _controlled_by(obj: Obj, uid: str | None) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences", []) or []
    return any(r.get("kind") == KIND and r.get("uid") == uid and r.get("controller") for r in refs)


def handover_patch(live: Obj) -> Obj | None:
    """The apply that keeps ``spec.replicas`` when the operator stops setting it, or None.

    Needed once: when the live Deployment's replicas were set by the operator (annotation says
    so, or predates it) and the new rendering leaves them to the HPA.
    """
    meta = live.get("metadata", {})
    if (meta.get("annotations") or {}).get(REPLICAS_ANNOTATION) == REPLICAS_BY_AUTOSCALER:
        return None
    replicas = (live.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int):
        return None
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": {"replicas": replicas},
    }


@dataclass
class Outcome:
    """What a pass did, for logs and tests."""

    writes: int = 0
    applied: list[str] = field(default_factory=list)
    feasible: bool = True
    invalid: str | None = None


class Reconciler:
    """Reconciles VideoModels through a :class:`KubeApi`. One pass per object at a time."""

    def __init__(self, api: KubeApi, clock: Callable[[], str], *, discover: bool = True) -> None:
        self.api = api
        self.clock = clock
        self.discover = discover
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._caps: Capabilities | None = None
        self.passes = 0
        """Reconcile passes run (for logs and tests)."""
        self.shutdown: Callable[[], Awaitable[None]] = _nothing
        """Set by the shell: releases what it started for this reconciler (tasks, sessions)."""

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self._locks.setdefault((namespace, name), asyncio.Lock())

    async def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        for delay in (*RETRY_DELAYS, None):
            try:
                return await fn()
            except ApiError as exc:
                if not exc.retryable or delay is None:
                    raise
                log.info("retrying %s after %s", what, exc)
                await asyncio.sleep(max(delay, exc.retry_after))  # the server's Retry-After wins
        raise AssertionError("unreachable")  # pragma: no cover

    async def capabilities(self) -> Capabilities:
        if self._caps is None:
            monitor = False
            if self.discover:
                monitor = await self._call(
                    "discovery", lambda: self.api.has_kind("monitoring.coreos.com/v1", "ServiceMonitor")
                )
            self._caps = Capabilities(service_monitor=monitor)
        return self._caps

    def forget_capabilities(self) -> None:
        """Discover optional kinds (ServiceMonitor) again on the next pass: CRDs come and go."""
        self._caps = None

    async def reconcile_by_name(self, namespace: str, name: str) -> Outcome | None:
        return await self.reconcile({"metadata": {"namespace": namespace, "name": name}})

    async def reconcile(self, body: Obj) -> Outcome:
        """One pass for the object ``body`` names.

        The object is read again under the per-object lock: a trigger's copy may predate the
        previous pass's status write, and acting on it would repeat that pass's Events.
        """
        meta = body.get("metadata", {})
        namespace, name = meta.get("namespace", "default"), meta["name"]
        async with self.lock(namespace, name):
            fresh = await self._call("get", lambda: self.api.get(API_VERSION, KIND, namespace, name))
            if fresh is None or fresh.get("metadata", {}).get("deletionTimestamp"):
                # Gone (or going): owner references let the garbage collector take the children.
                self._locks.pop((namespace, name), None)
                return Outcome()
            self.passes += 1
            return await self._reconcile(fresh)

    async def _reconcile(self, body: Obj) -> Outcome:
        meta = body.get("metadata", {})
        namespace, name = meta.get("namespace", "default"), meta["name"]
        generation = int(meta.get("generation", 0) or 0)
        outcome = Outcome()
        previous_status = body.get("status") or {}
        deployment: Obj | None

        try:
            cr = parse_video_model(body)
        except SpecError as exc:
            outcome.invalid = str(exc)
            outcome.feasible = False
            deployment = await self._call("get", lambda: self.api.get("apps/v1", "Deployment", namespace, name))
            verdict = Verdict(generation, _replicas_hint(body), False, invalid=str(exc), applied=False)
            status = summarize(
                verdict,
                deployment,
                previous_status,
                self.clock(),
                url=f"http://{name}.{namespace}.svc:{_port_hint(body)}/v1",
                selector=selector_string(name),
                plan=None,
                config_hash=None,
            )
            outcome.writes += await self._write_status(namespace, name, previous_status, status)
            outcome.writes += await self._event_on_change(body, previous_status, "InvalidSpec", str(exc))
            raise PermanentSpecError(str(exc)) from None

        plan = plan_for(cr.spec)
        digest: str | None = None
        blocked: Blocked | None = None
        if plan.feasible:
            desired = render(cr, plan, await self.capabilities())
            try:
                for obj in desired:
                    if await self._ensure(obj, cr.metadata.uid):
                        outcome.writes += 1
                        outcome.applied.append(f"{obj['kind']}/{obj['metadata']['name']}")
                    if obj["kind"] == "Deployment":
                        digest = obj["metadata"]["annotations"][HASH_ANNOTATION]
                outcome.writes += await self._prune(cr, {obj["kind"] for obj in desired})
            except Blocked as exc:
                blocked = exc
                digest = None
        else:
            outcome.feasible = False

        deployment = await self._call("get", lambda: self.api.get("apps/v1", "Deployment", namespace, name))
        replicas = cr.spec.desired_replicas
        if cr.spec.autoscaling is not None and deployment is not None:
            # The HPA owns the replica count: what it asked for is what "all ready" means.
            replicas = int((deployment.get("spec") or {}).get("replicas", replicas) or replicas)
        verdict = Verdict(
            generation,
            replicas,
            plan.feasible,
            problems=tuple(plan.problems),
            applied=plan.feasible and blocked is None,
            blocked=(blocked.reason, blocked.message) if blocked is not None else None,
            summary=(
                f"{plan.frames_per_video} frames, {plan.tokens_per_video:,} tokens per video; max model len "
                f"{plan.max_model_len:,} of {plan.context_limit:,}; "
                f"{plan.concurrent_requests} full-budget requests fit per replica"
            ),
        )
        pods = None
        if deployment is not None and not workload_ready(verdict, deployment):
            pods = await self._pod_problem(deployment)
        status = summarize(
            verdict,
            deployment,
            previous_status,
            self.clock(),
            url=service_url(cr),
            selector=selector_string(name),
            plan=plan_status(plan),
            config_hash=digest,
            pods=pods,
        )
        written = await self._write_status(namespace, name, previous_status, status)
        outcome.writes += written
        if written:
            for kind, reason, message in transitions(previous_status, status):
                outcome.writes += await self._post_event(body, kind, reason, message)
        if not plan.feasible:
            outcome.writes += await self._event_on_change(body, previous_status, "Infeasible", " ".join(plan.problems))
        elif blocked is not None:
            outcome.writes += await self._event_on_change(body, previous_status, blocked.reason, blocked.message)
        return outcome

    async def _ensure(self, obj: Obj, uid: str | None) -> bool:
        """Apply ``obj`` unless the live object already matches it. True when it wrote.

        Raises :class:`Blocked` for an object of that name this VideoModel does not control, and
        for an apply the API server refuses (not retryable: a 4xx other than 409/429).
        """
        meta = obj["metadata"]
        where = f"{obj['kind']} {meta['namespace']}/{meta['name']}"
        live = await self._call(
            "get", lambda: self.api.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        )
        if live is not None and not _controlled_by(live, uid):
            raise Blocked(
                "NotOwner",
                f"{where} already exists and is not controlled by this VideoModel; "
                "it was left untouched: delete or rename it",
            )
        if obj["kind"] == "Deployment":
            obj = keep_live_selector(obj, live)  # immutable: an older release's selector stays
        if live is not None and contains(obj, live):
            return False
        try:
            if obj["kind"] == "Deployment" and live is not None and "replicas" not in obj["spec"]:
                handover = handover_patch(live)
                if handover is not None:
                    await self._call("handover", lambda: self.api.apply(handover, HANDOVER_MANAGER))
            await self._call("apply", lambda: self.api.apply(obj))
        except ApiError as exc:
            if exc.retryable:
                raise
            raise Blocked("ApplyFailed", f"{where}: the API server refused it: {exc}") from exc
        log.info("applied %s", where)
        return True

    async def _prune(self, cr: VideoModel, rendered: set[str]) -> int:
        deleted = 0
        for api_version, kind in OPTIONAL_KINDS:
            if kind in rendered:
                continue
            if kind == "ServiceMonitor" and not (await self.capabilities()).service_monitor:
                continue
            ns, name = cr.metadata.namespace, cr.metadata.name
            live = await self._call("get", functools.partial(self.api.get, api_version, kind, ns, name))
            if live is not None and _owned_by(live, cr.metadata.uid):
                await self._call("delete", functools.partial(self.api.delete, api_version, kind, ns, name))
                deleted += 1
        return deleted

    async def _pod_problem(self, deployment: Obj) -> tuple[str, str] | None:
        """Why the Deployment's pods are not ready, read from the pods; None when they do not say
        (or cannot be read: diagnosis is best effort, the workload conditions stand without it)."""
        selector = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        namespace = deployment.get("metadata", {}).get("namespace", "default")
        if not selector:
            return None
        try:
            pods = await self._call("pods", lambda: self.api.list_pods(namespace, selector))
        except ApiError as exc:
            log.info("cannot read the pods of %s/%s: %s", namespace, deployment["metadata"]["name"], exc)
            return None
        return pod_problem(pods)

    async def _write_status(self, namespace: str, name: str, current: Obj, desired: Obj) -> int:
        patch = status_patch(current, desired)
        if patch is None:
            return 0
        try:
            await self._call("status", lambda: self.api.patch_status(namespace, name, patch))
        except ApiError as exc:
            if exc.status == 404:  # deleted while this pass ran: nothing left to report on
                return 0
            raise
        return 1

    async def _event_on_change(self, body: Obj, previous_status: Obj, reason: str, message: str) -> int:
        """A Warning Event when this generation's verdict is new (not on every resync)."""
        meta = body["metadata"]
        generation = int(meta.get("generation", 0) or 0)
        stalled_reason = {"Infeasible": "InfeasibleBudget"}.get(reason, reason)
        conditions = previous_status.get("conditions", []) or []
        stalled = next((c for c in conditions if c.get("type") == "Stalled"), None)
        if (
            stalled is not None
            and stalled.get("status") == "True"
            and stalled.get("reason") == stalled_reason
            and stalled.get("observedGeneration") == generation
            and stalled.get("message", "").find(message[:200]) >= 0
        ):
            return 0
        return await self._post_event(body, "Warning", reason, message)

    async def _post_event(self, body: Obj, kind: str, reason: str, message: str) -> int:
        """Post one Event on the VideoModel (best effort: a failure is logged, not raised)."""
        meta = body["metadata"]
        now = self.clock()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta.get("namespace", "default")},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta.get("namespace", "default"),
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message[:1024],
            "type": kind,
            "source": {"component": "videomodel-operator"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self._call("event", lambda: self.api.create_event(event))
        except ApiError as exc:  # an Event is best effort; the condition already says it
            log.warning("could not post event: %s", exc)
            return 0
        return 1


async def _nothing() -> None:
    return None


def _replicas_hint(body: Obj) -> int:
    spec = body.get("spec") or {}
    value = spec.get("replicas", 1)
    return value if isinstance(value, int) else 1


def _port_hint(body: Obj) -> int:
    port = ((body.get("spec") or {}).get("service") or {}).get("port", 8000)
    return port if isinstance(port, int) else 8000


__all__ = ["HANDOVER_MANAGER", "Blocked", "Outcome", "PermanentSpecError", "Reconciler", "config_map_name", "contains"]
