"""A thin layer of API-server semantics over kmock's KubernetesEmulator.

kmock stores what it is sent. A real kube-apiserver also sets the server-owned fields and keeps
the subresources apart; the operator depends on those, so this layer adds them and nothing else:

- create: ``metadata.uid``, ``namespace`` (from the URL), ``resourceVersion``, ``generation`` 1,
  ``creationTimestamp``; ``generateName``; 409 AlreadyExists (kmock's own);
- patch: ``resourceVersion`` bumps on every write, ``generation`` only when ``spec`` changes;
  a ``metadata.resourceVersion`` precondition that does not match is a 409 Conflict;
- the ``status`` subresource changes only ``status``; the main resource never changes it for
  kinds that have the subresource;
- server-side apply (``application/apply-patch+yaml``) creates a missing object and otherwise
  merges the applied intent (maps merged, lists replaced). With a single field manager that
  is what the real server does, except that fields the manager *stops* applying are not
  removed here (no managedFields); the operator never relies on that removal to converge;
- the ``scale`` subresource of VideoModels (``autoscaling/v1`` Scale from spec/status paths);
- fault injection: the next N matching requests fail with a given status (500, 409, ...).

It does not imitate controllers (GC, the Deployment controller); tests play those roles
explicitly through the HTTP API, so the operator sees ordinary watch events.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import rendering
from kmock._internal.dicts import merge_patch_dict

Obj = dict[str, Any]

STATUS_SUBRESOURCE_KINDS = {
    "videomodels",
    "deployments",
    "services",
    "horizontalpodautoscalers",
    "poddisruptionbudgets",
}

RESOURCES: dict[str, tuple[str, bool, tuple[str, ...]]] = {
    # "group/version/plural": (kind, namespaced, subresources)
    "videomodel.io/v1alpha1/videomodels": ("VideoModel", True, ("status", "scale")),
    "v1/namespaces": ("Namespace", False, ()),
    "v1/configmaps": ("ConfigMap", True, ()),
    "v1/services": ("Service", True, ("status",)),
    "v1/events": ("Event", True, ()),
    "v1/pods": ("Pod", True, ()),
    "apps/v1/deployments": ("Deployment", True, ("status", "scale")),
    "networking.k8s.io/v1/networkpolicies": ("NetworkPolicy", True, ()),
    "policy/v1/poddisruptionbudgets": ("PodDisruptionBudget", True, ("status",)),
    "autoscaling/v2/horizontalpodautoscalers": ("HorizontalPodAutoscaler", True, ("status",)),
    "events.k8s.io/v1/events": ("Event", True, ()),
}
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")


@dataclass
class Fault:
    """Fail the next ``times`` requests that ``match`` with ``status``."""

    match: Callable[[rendering.Request], bool]
    status: int
    times: int = 1
    hits: int = 0


def request_verb(request: rendering.Request) -> str:
    method = str(request.method.value)
    if method == "GET":
        if request.params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if request.name else "list"
    return {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}.get(method, method.lower())


def now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    faults: list[Fault] = attrs.field(factory=list)
    rbac: list[Obj] | None = None
    """RBAC rules the operator's requests must pass (the chart's); None allows everything."""
    denied: list[str] = attrs.field(factory=list)
    log: list[tuple[str, str, str]] = attrs.field(factory=list)
    """(method, path, user agent) of every request as the client sent it, before any rewriting."""
    writes: list[tuple[float, str, str, str, Any]] = attrs.field(factory=list)
    """(monotonic time, method, path, user agent, body) of every write, as the client sent it."""
    _rv: Any = attrs.field(factory=lambda: itertools.count(1000))

    def declare(self) -> None:
        for key, (kind, namespaced, subresources) in RESOURCES.items():
            self.resources[key] = kmock.ResourceInfo(
                kind=kind, namespaced=namespaced, verbs=VERBS, subresources=subresources
            )

    def inject(self, match: Callable[[rendering.Request], bool], status: int, times: int = 1) -> Fault:
        fault = Fault(match, status, times)
        self.faults.append(fault)
        return fault

    def _next_rv(self) -> str:
        return str(next(self._rv))

    def _current(self, request: rendering.Request) -> Obj | None:
        assert request.resource is not None and request.name is not None
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(dict(self.objects[key].raw))

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        agent = request.headers.get("User-Agent", "")
        self.log.append((request.method.value, request.url.path, agent))
        if request.method.value in ("POST", "PUT", "PATCH", "DELETE"):
            self.writes.append((time.monotonic(), request.method.value, request.url.path, agent, request.data))
        if request.resource is None:
            return await super()._handle(request)
        self._authorize(request)
        for fault in self.faults:
            if fault.times > 0 and fault.match(request):
                fault.times -= 1
                fault.hits += 1
                raise kmock.KubernetesError(status=fault.status, reason="Injected", message="injected fault")
        if request.subresource == "scale" and request.resource.plural == "videomodels":
            return await self._scale(request)
        original = request
        if request.action == kmock.action.CREATE:
            request = self._on_create(request)
        elif request.action == kmock.action.UPDATE:
            request = self._on_patch(request)
        self._substitute(original, request)
        return await super()._handle(request)

    def _substitute(self, original: rendering.Request, new: rendering.Request) -> None:
        """kmock matches reactions by the identity of the recorded request: record the rewritten one."""
        if new is not original:
            for index, recorded in enumerate(self._requests):
                if recorded is original:
                    self._requests[index] = new

    def _authorize(self, request: rendering.Request) -> None:
        """RBAC for the operator's requests (the test's own client, kmock's, acts as an admin)."""
        if self.rbac is None or request.headers.get("User-Agent", "").startswith("kmock"):
            return
        assert request.resource is not None
        if not request.resource.plural:
            return  # discovery (/api/v1, /apis/GROUP/VERSION) is open to every authenticated user
        verb = request_verb(request)
        resource = request.resource.plural or ""
        if request.subresource:
            resource = f"{resource}/{request.subresource}"
        for rule in self.rbac:
            if request.resource.group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]:
                return
        self.denied.append(f"{verb} {request.resource.group}/{resource}")
        raise kmock.KubernetesError(status=403, reason="Forbidden", message=f"cannot {verb} {resource}")

    def _on_create(self, request: rendering.Request) -> rendering.Request:
        data = copy.deepcopy(request.data or {})
        meta = data.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        if request.namespace:
            if meta.get("namespace") not in (None, request.namespace):
                raise kmock.KubernetesError(status=400, reason="BadRequest", message="namespace mismatch")
            meta["namespace"] = request.namespace
        meta.update(
            uid=str(uuid.uuid4()),
            resourceVersion=self._next_rv(),
            generation=1,
            creationTimestamp=now(),
        )
        assert request.resource is not None
        if request.resource.plural in STATUS_SUBRESOURCE_KINDS and request.resource.plural != "services":
            data.pop("status", None)
        return attrs.evolve(request, data=data, name=None)

    def _on_patch(self, request: rendering.Request) -> rendering.Request:
        content_type = request.headers.get("Content-Type", "")
        current = self._current(request)
        patch = copy.deepcopy(request.data or {})
        assert request.resource is not None
        if "apply-patch" in content_type:
            if current is None:
                created = self._on_create(attrs.evolve(request, data=patch))
                return attrs.evolve(created, action=kmock.action.CREATE, method=kmock.method.POST)
            for server_owned in ("uid", "resourceVersion", "generation", "creationTimestamp"):
                patch.get("metadata", {}).pop(server_owned, None)
        if current is None:
            raise kmock.KubernetesObjectNotFoundError()
        expected_rv = (patch.get("metadata") or {}).get("resourceVersion")
        if expected_rv is not None and expected_rv != current["metadata"].get("resourceVersion"):
            raise kmock.KubernetesError(status=409, reason="Conflict", message="the object has been modified")
        has_status = request.resource.plural in STATUS_SUBRESOURCE_KINDS
        if request.subresource == "status":
            patch = {"status": patch.get("status")} if "status" in patch else {}
        elif has_status:
            patch.pop("status", None)
        merged = merge_patch_dict(current, patch)
        meta_patch = patch.setdefault("metadata", {})
        if merged.get("spec") != current.get("spec"):
            meta_patch["generation"] = int(current["metadata"].get("generation", 1)) + 1
        meta_patch["resourceVersion"] = self._next_rv()
        return attrs.evolve(request, data=patch)

    async def _scale(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        current = self._current(request)
        if current is None:
            raise kmock.KubernetesObjectNotFoundError()
        if request.action == kmock.action.UPDATE:
            replicas = (request.data or {}).get("spec", {}).get("replicas")
            inner = self._on_patch(
                attrs.evolve(request, subresource=None, data={"spec": {"replicas": replicas}}, headers={})
            )
            self._substitute(request, inner)
            await super()._handle(inner)
            current = self._current(request)
            assert current is not None
        scale = {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {
                "name": current["metadata"]["name"],
                "namespace": current["metadata"]["namespace"],
                "resourceVersion": current["metadata"]["resourceVersion"],
            },
            "spec": {"replicas": current.get("spec", {}).get("replicas", 0)},
            "status": {
                "replicas": current.get("status", {}).get("replicas", 0),
                "selector": current.get("status", {}).get("selector", ""),
            },
        }
        return aiohttp.web.json_response(scale)
