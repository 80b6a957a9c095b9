"""Operator faults (issue 13, item 7): the real kopf operator against the emulator, misbehaving.

API 500s and 409s, 429 with Retry-After, a watch that drops and resumes with a resourceVersion
the server has forgotten (410 Gone), and an operator restart in the middle of a reconcile. Each
scenario checks the same three things: the operator converges (Ready at the CR's generation,
every child present), it never deletes or scales down the serving Deployment (every Deployment
write it makes is recorded), and a resync afterwards writes nothing.

The emulator's own ``inject`` answers faults as Status bodies without headers; the extra faults
here (throttling with ``Retry-After``, expired watches, a held write) wrap its request handler.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web
import pytest
from kmock._internal import rendering

from tests.harness.operator import CHILDREN, NAME, NS, converged, example

from .apiserver import ApiServer, request_verb
from .harness import Cluster, running_cluster

pytestmark = pytest.mark.timeout(120)

Match = Callable[[rendering.Request], bool]


@dataclass
class Chaos:
    throttle: list[tuple[Match, int, int]] = field(default_factory=list)
    """(match, times, Retry-After seconds): answer 429 with the header."""
    throttled: list[float] = field(default_factory=list)
    """When each throttled request came (monotonic)."""
    retries: list[float] = field(default_factory=list)
    """When each request matching a throttle rule came, throttled or not."""
    expire_watches: int = 0
    """The next N watches that resume from a resourceVersion get a 410 Gone ERROR event."""
    expired: int = 0
    lists: int = 0
    watches: set[asyncio.Task[Any]] = field(default_factory=set)
    hold: Match | None = None
    """Requests matching this wait for ``release`` (a reconcile caught mid-write)."""
    held: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    deployment_replicas: list[int | None] = field(default_factory=list)
    """spec.replicas of every Deployment write the operator made (None: the field left out)."""

    def drop_watches(self) -> int:
        dropped = [t for t in self.watches if not t.done()]
        for task in dropped:
            task.cancel()
        return len(dropped)


CHAOS: list[Chaos] = []


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "message": message,
        "code": code,
    }


def _operator(request: rendering.Request) -> bool:
    return not request.headers.get("User-Agent", "").startswith("kmock")


@pytest.fixture
def chaos(monkeypatch: pytest.MonkeyPatch) -> Iterator[Chaos]:
    state = Chaos()
    original = ApiServer._handle

    async def handle(self: ApiServer, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if request.resource is None or not _operator(request):
            return await original(self, request)
        plural = request.resource.plural
        if plural == "deployments" and request.method.value in ("PATCH", "PUT"):
            state.deployment_replicas.append(((request.data or {}).get("spec") or {}).get("replicas"))
        for index, (match, times, retry_after) in enumerate(state.throttle):
            if match(request):
                state.retries.append(time.monotonic())
                if times > 0:
                    state.throttle[index] = (match, times - 1, retry_after)
                    state.throttled.append(time.monotonic())
                    return aiohttp.web.json_response(
                        _status(429, "TooManyRequests", "throttled (injected)"),
                        status=429,
                        headers={"Retry-After": str(retry_after)},
                    )
        verb = request_verb(request)
        if verb == "list":
            state.lists += 1
        if verb == "watch":
            if state.expire_watches > 0 and request.params.get("resourceVersion"):
                state.expire_watches -= 1
                state.expired += 1
                event = {"type": "ERROR", "object": _status(410, "Expired", "too old resource version")}
                return aiohttp.web.Response(status=200, text=json.dumps(event) + "\n", content_type="application/json")
            task = asyncio.current_task()
            assert task is not None
            state.watches.add(task)
            try:
                return await original(self, request)
            finally:
                state.watches.discard(task)
        if state.hold is not None and state.hold(request):
            state.held.set()
            await state.release.wait()
        return await original(self, request)

    monkeypatch.setattr(ApiServer, "_handle", handle)
    CHAOS.append(state)
    yield state
    CHAOS.remove(state)


def apply_of(plural: str) -> Match:
    return lambda r: bool(
        r.method.value == "PATCH"
        and r.resource is not None
        and r.resource.plural == plural
        and "fieldManager" in r.params
    )


LAST_HANDLED = "kopf.zalando.org/last-handled-configuration"


async def kopf_handled_current_spec(cluster: Cluster) -> None:
    """Wait until kopf has recorded that it handled the CR's current spec.

    Two roads reconcile a spec change: kopf's update handler, and the operator's own resync (and
    child events). After a fault the resync can get there first (kopf retrying or relisting), so
    the CR is Ready at its generation while kopf's handler is still to run or finish; when it does,
    it changes nothing (the reconcile is level-based) and kopf then records the spec it handled:
    one merge-PATCH of the ``last-handled-configuration`` annotation on the VideoModel. That PATCH
    is kopf's bookkeeping, not a change to anything served, and it comes once per spec change.
    The operator has gone quiet only after it.
    """

    async def handled() -> bool:
        cr = await cluster.get("VideoModel", NS, NAME)
        annotation = ((cr or {}).get("metadata", {}).get("annotations") or {}).get(LAST_HANDLED)
        return cr is not None and annotation is not None and json.loads(annotation).get("spec") == cr["spec"]

    await cluster.eventually(handled, what="kopf to record the spec it handled")


async def assert_safe_and_quiet(cluster: Cluster, chaos: Chaos, replicas: int = 2) -> None:
    """Converged, every child present, the workload never deleted or scaled down, and a resync
    (three passes, every 0.3 s) writes nothing."""
    cr = await converged(cluster)
    await kopf_handled_current_spec(cluster)
    for kind in CHILDREN:
        assert await cluster.get(kind, NS, f"{NAME}-plan" if kind == "ConfigMap" else NAME) is not None, kind
    deployment = await cluster.get("Deployment", NS, NAME)
    assert deployment is not None and deployment["spec"]["replicas"] == replicas
    deletes = [w for w in cluster.operator_writes() if w.startswith("DELETE")]
    assert deletes == [], deletes
    assert chaos.deployment_replicas, "the operator never wrote the Deployment"
    assert all(r == replicas for r in chaos.deployment_replicas), chaos.deployment_replicas
    await cluster.quiet()
    quiet_since = time.monotonic() - 0.7
    before = len(cluster.operator_writes())
    reconciler = cluster.reconciler
    assert reconciler is not None
    passes = reconciler.passes

    async def three_passes() -> bool:
        # Counted, not timed: a pass on a loaded 2-core machine can take longer than the interval.
        return reconciler.passes - passes >= 3

    await cluster.eventually(three_passes, timeout=20, what="three resync passes")
    late = [w for w in cluster.server.writes if w[0] >= quiet_since and not w[3].startswith("kmock")]
    assert cluster.operator_writes()[before:] == [], f"a resync wrote: {late}"
    assert cr["status"]["observedGeneration"] == cr["metadata"]["generation"]


async def test_500s_and_409s_on_every_kind_of_write_converge_safely(chaos: Chaos) -> None:
    async with running_cluster(resync_seconds=0.3) as cluster:
        status_patch: Match = lambda r: r.method.value == "PATCH" and r.subresource == "status"  # noqa: E731
        faults = [
            cluster.server.inject(apply_of("deployments"), 500, times=4),
            cluster.server.inject(apply_of("configmaps"), 503, times=2),
            cluster.server.inject(apply_of("deployments"), 409, times=2),
            cluster.server.inject(apply_of("poddisruptionbudgets"), 409, times=3),
            cluster.server.inject(status_patch, 500, times=2),
            cluster.server.inject(status_patch, 409, times=2),
        ]
        started = time.monotonic()
        await cluster.create(example())
        await converged(cluster)
        took = time.monotonic() - started
        assert all(f.times == 0 for f in faults), [(f.status, f.hits) for f in faults]
        # Later faults, after Ready: a spec change that meets 500s then 409s still rolls out.
        late = [
            cluster.server.inject(apply_of("deployments"), 500, times=3),
            cluster.server.inject(apply_of("deployments"), 409, times=2),
        ]
        await cluster.patch("VideoModel", NS, NAME, {"spec": {"budget": {"maxSeconds": 60}}})
        await converged(cluster, generation=2)
        assert all(f.times == 0 for f in late)
        await assert_safe_and_quiet(cluster, chaos)
        print(f"\nfaults 500/503/409: {sum(f.hits for f in faults + late)} injected, converged in {took:.2f} s")


async def test_429_retry_after_is_honoured_and_converges(chaos: Chaos) -> None:
    async with running_cluster(resync_seconds=0.3) as cluster:
        chaos.throttle.append((apply_of("deployments"), 2, 1))
        started = time.monotonic()
        await cluster.create(example())
        await converged(cluster)
        took = time.monotonic() - started
        assert len(chaos.throttled) == 2
        # Each retry of a throttled write waited at least the Retry-After the server asked for.
        gaps = [later - earlier for earlier, later in zip(chaos.retries, chaos.retries[1:], strict=False)]
        assert gaps[:2] and all(g >= 0.95 for g in gaps[:2]), gaps
        await assert_safe_and_quiet(cluster, chaos)
        print(f"\n429 + Retry-After 1 s x2: retries after {[round(g, 2) for g in gaps[:2]]} s, Ready in {took:.2f} s")


async def test_a_dropped_watch_resuming_from_an_expired_version_relists_and_converges(chaos: Chaos) -> None:
    async with running_cluster(resync_seconds=0.3) as cluster:
        await cluster.create(example())
        await converged(cluster)
        await cluster.quiet()
        lists_before = chaos.lists
        # The server forgets old versions, then every watch drops; while the operator is away,
        # the spec changes. It must resume (410 Gone), list again and act on what it missed.
        chaos.expire_watches = 100
        dropped = chaos.drop_watches()
        assert dropped >= 2, dropped
        await cluster.patch("VideoModel", NS, NAME, {"spec": {"budget": {"maxSeconds": 60}}})

        async def expired_and_relisted() -> bool:
            return chaos.expired >= 1 and chaos.lists > lists_before

        await cluster.eventually(expired_and_relisted, what="410 Gone and a fresh list")
        chaos.expire_watches = 0
        cr = await converged(cluster, generation=2)
        assert cr["status"]["plan"]["maxSeconds"] == 60
        # A watch came back: a change now is seen through it again (the resync would catch it too,
        # so stop that from being the proof: the operator must see the CR edit promptly).
        await cluster.patch("VideoModel", NS, NAME, {"spec": {"budget": {"maxSeconds": 90}}})
        await converged(cluster, generation=3)
        await assert_safe_and_quiet(cluster, chaos)
        print(
            f"\nwatch drop: {dropped} streams dropped, {chaos.expired} answered 410, "
            f"{chaos.lists - lists_before} re-lists"
        )


async def test_an_operator_restart_in_the_middle_of_a_reconcile_converges(chaos: Chaos) -> None:
    async with running_cluster(resync_seconds=0.3) as cluster:
        # Hold the first Deployment write: the ConfigMap is applied, the Deployment not yet.
        chaos.hold = apply_of("deployments")
        await cluster.create(example())
        await asyncio.wait_for(chaos.held.wait(), 30)
        assert await cluster.get("Deployment", NS, NAME) is None
        chaos.hold = None
        restart = asyncio.create_task(cluster.restart_operator())
        await asyncio.sleep(0.3)
        chaos.release.set()  # the old operator's write (if still in flight) lands now, or never
        await restart
        await assert_safe_and_quiet(cluster, chaos)

        # Again, with the workload serving: restart while a spec update is mid-write.
        chaos.held.clear()
        chaos.release.clear()
        chaos.hold = apply_of("deployments")
        await cluster.patch("VideoModel", NS, NAME, {"spec": {"budget": {"maxSeconds": 60}}})
        await asyncio.wait_for(chaos.held.wait(), 30)
        chaos.hold = None
        restart = asyncio.create_task(cluster.restart_operator())
        await asyncio.sleep(0.3)
        chaos.release.set()
        await restart
        cr = await converged(cluster, generation=2)
        assert cr["status"]["plan"]["maxSeconds"] == 60
        await assert_safe_and_quiet(cluster, chaos)
