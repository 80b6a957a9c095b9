"""Reconcile scenarios: the real kopf operator, over real HTTP, against the emulated API server."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest

from tests.harness.operator import CHILDREN, EXAMPLES, NAME, NS, converged, example, load_body
from videomodel_operator.rendering import HASH_ANNOTATION

from .harness import running_cluster

pytestmark = pytest.mark.timeout(180)


async def test_create_makes_every_child_with_owner_refs_and_a_full_status() -> None:
    async with running_cluster() as cluster:
        created = await cluster.create(example())
        cr = await converged(cluster)
        uid = created["metadata"]["uid"]
        for kind in CHILDREN:
            name = f"{NAME}-plan" if kind == "ConfigMap" else NAME
            child = await cluster.get(kind, NS, name)
            assert child is not None, kind
            (ref,) = child["metadata"]["ownerReferences"]
            assert ref["uid"] == uid and ref["controller"] is True, kind
        status = cr["status"]
        assert status["observedGeneration"] == 1
        assert status["replicas"] == 2 and status["readyReplicas"] == 2 and status["ready"] == "2/2"
        assert status["url"] == f"http://{NAME}.{NS}.svc:8000/v1"
        assert status["plan"]["maxModelLen"] == 20804 and status["plan"]["framesPerVideo"] == 128
        assert status["selector"] == f"app.kubernetes.io/name=videomodel-server,videomodel.io/model={NAME}"
        conditions = {c["type"]: c for c in status["conditions"]}
        assert set(conditions) == {"Ready", "Progressing", "BudgetFits", "Degraded", "Stalled"}
        assert conditions["Stalled"]["status"] == "False"
        assert status["appliedGeneration"] == 1 and status["appliedPlan"] == status["plan"]
        assert conditions["BudgetFits"]["status"] == "True"
        assert conditions["Degraded"]["status"] == "False"
        assert conditions["Progressing"]["status"] == "False"
        for condition in conditions.values():
            assert set(condition) == {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"}
        assert "finalizers" not in cr["metadata"]


async def test_children_are_written_only_by_server_side_apply_under_one_field_manager() -> None:
    """The emulator only approximates SSA, so the payloads themselves are checked here."""
    async with running_cluster() as cluster:
        await cluster.create(example())
        await converged(cluster)
        applies = [r for r in cluster.server if "fieldManager" in r.params]
        kinds = set()
        for request in applies:
            assert request.headers["Content-Type"] == "application/apply-patch+yaml"
            assert request.params == {"fieldManager": "videomodel-operator", "force": "true"}
            body = json.loads(request.body)
            assert body["apiVersion"] and body["kind"] and body["metadata"]["name"]
            assert "status" not in body and "resourceVersion" not in body["metadata"]
            kinds.add(body["kind"])
        assert kinds == {"ConfigMap", "Service", "NetworkPolicy", "Deployment", "PodDisruptionBudget"}
        # Every other operator write is a status merge patch or an Event: no PUT, no POST of children.
        for method, path in (w.split(" ", 1) for w in cluster.operator_writes()):
            assert method == "PATCH" or path.endswith("/events"), (method, path)


async def test_a_resync_of_an_unchanged_world_makes_zero_writes() -> None:
    async with running_cluster(resync_seconds=0.3) as cluster:
        await cluster.create(example())
        await converged(cluster)
        await asyncio.sleep(0.5)  # let the last status write and its watch events settle
        before = cluster.operator_writes()
        # The counter sees the operator's writes: the creation applied 5 children and wrote status.
        assert sum(w.startswith("PATCH") and "/status" not in w for w in before) >= 5, before
        assert cluster.reconciler is not None
        passes_before = cluster.reconciler.passes
        await asyncio.sleep(2.0)  # several periodic resyncs (every 0.3 s) over every child
        # A real change elsewhere in the Deployment (the controller's status) also triggers a pass.
        await cluster.patch("Deployment", NS, NAME, {"status": {"conditions": []}}, "status")
        await asyncio.sleep(0.5)
        after = cluster.operator_writes()
        passes = cluster.reconciler.passes - passes_before
        assert passes >= 3, f"only {passes} reconcile passes ran during the resync window"
        assert after[len(before) :] == [], f"a resync wrote: {after[len(before) :]}"
        print(f"\nresync: {passes} reconcile passes, {len(after) - len(before)} writes")


async def test_budget_update_rolls_pods_through_the_config_hash() -> None:
    async with running_cluster() as cluster:
        await cluster.create(example())
        await converged(cluster)
        old = await cluster.get("Deployment", NS, NAME)
        assert old is not None
        old_hash = old["spec"]["template"]["metadata"]["annotations"][HASH_ANNOTATION]
        await cluster.patch("VideoModel", NS, NAME, {"spec": {"budget": {"maxSeconds": 60}}})
        cr = await converged(cluster, generation=2)
        new = await cluster.get("Deployment", NS, NAME)
        assert new is not None
        new_hash = new["spec"]["template"]["metadata"]["annotations"][HASH_ANNOTATION]
        assert new_hash != old_hash
        assert new["metadata"]["generation"] == old["metadata"]["generation"] + 1
        config_map = await cluster.get("ConfigMap", NS, f"{NAME}-plan")
        assert config_map is not None
        assert json.loads(config_map["data"]["serving.json"])["budget"]["max_seconds"] == 60
        assert cr["status"]["plan"]["maxSeconds"] == 60
        assert cr["status"]["configHash"] == new_hash


async def test_infeasible_update_keeps_the_old_deployment_and_reports_why() -> None:
    async with running_cluster() as cluster:
        await cluster.create(example())
        await converged(cluster)
        old = await cluster.get("Deployment", NS, NAME)
        assert old is not None
        await cluster.patch(
            "VideoModel", NS, NAME, {"spec": {"budget": {"maxSeconds": 600, "maxFrames": 768, "maxPixels": 602112}}}
        )

        async def refused() -> bool:
            fits = await cluster.condition(NS, NAME, "BudgetFits")
            return fits is not None and fits["status"] == "False" and fits["observedGeneration"] == 2

        await cluster.eventually(refused, what="BudgetFits=False")
        await asyncio.sleep(1.0)  # resyncs must not touch it either
        fits = await cluster.condition(NS, NAME, "BudgetFits")
        assert fits is not None and fits["reason"] == "Infeasible" and "context is 32,768" in fits["message"]
        degraded = await cluster.condition(NS, NAME, "Degraded")
        assert degraded is not None and degraded["status"] == "True" and "keeps serving" in degraded["message"]
        still = await cluster.get("Deployment", NS, NAME)
        assert still is not None
        assert still["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"] or (
            still["spec"] == old["spec"]
        ), "the serving Deployment was modified"
        assert still["spec"] == old["spec"]
        events = [
            obj.raw
            for (res, _, _), obj in cluster.server.objects.items()
            if res.plural == "events" and not obj.deleted and obj.raw.get("reason") == "Infeasible"
        ]
        assert len(events) == 1, events  # one Event per verdict, not one per resync
        assert events[0]["involvedObject"]["name"] == NAME and events[0]["type"] == "Warning"


async def test_manual_drift_is_restored() -> None:
    async with running_cluster() as cluster:
        await cluster.create(example())
        await converged(cluster)
        good = await cluster.get("Deployment", NS, NAME)
        assert good is not None
        container = copy.deepcopy(good["spec"]["template"]["spec"]["containers"][0])
        container["image"] = "evil/image:latest"
        await cluster.patch(
            "Deployment", NS, NAME, {"spec": {"replicas": 7, "template": {"spec": {"containers": [container]}}}}
        )
        await cluster.patch("Service", NS, NAME, {"spec": {"ports": [{"name": "http", "port": 1234}]}})

        async def restored() -> bool:
            dep = await cluster.get("Deployment", NS, NAME)
            svc = await cluster.get("Service", NS, NAME)
            assert dep is not None and svc is not None
            image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
            return bool(
                dep["spec"]["replicas"] == 2
                and image == good["spec"]["template"]["spec"]["containers"][0]["image"]
                and svc["spec"]["ports"][0]["port"] == 8000
            )

        await cluster.eventually(restored, what="drift restored")


async def test_deleted_children_are_recreated() -> None:
    async with running_cluster() as cluster:
        await cluster.create(example())
        await converged(cluster)
        for kind, name in (("Deployment", NAME), ("NetworkPolicy", NAME), ("ConfigMap", f"{NAME}-plan")):
            await cluster.delete(kind, NS, name)

        async def back() -> bool:
            for kind, name in (("Deployment", NAME), ("NetworkPolicy", NAME), ("ConfigMap", f"{NAME}-plan")):
                if await cluster.get(kind, NS, name) is None:
                    return False
            return True

        await cluster.eventually(back, what="children recreated")
        await converged(cluster)


async def test_scale_subresource_scales_the_workload() -> None:
    async with running_cluster() as cluster:
        await cluster.create(example())
        await converged(cluster)
        scale = await cluster.request(
            "PATCH",
            f"/apis/videomodel.io/v1alpha1/namespaces/{NS}/videomodels/{NAME}/scale",
            {"spec": {"replicas": 3}},
            "application/merge-patch+json",
        )
        assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3

        async def scaled() -> bool:
            dep = await cluster.get("Deployment", NS, NAME)
            cr = await cluster.get("VideoModel", NS, NAME)
            return bool(dep and dep["spec"]["replicas"] == 3 and cr and cr["status"].get("readyReplicas") == 3)

        await cluster.eventually(scaled, what="scaled to 3")
        scale = await cluster.request("GET", f"/apis/videomodel.io/v1alpha1/namespaces/{NS}/videomodels/{NAME}/scale")
        assert scale["status"]["replicas"] == 3
        assert scale["status"]["selector"].startswith("app.kubernetes.io/name=videomodel-server")


async def test_injected_500s_and_409s_converge() -> None:
    async with running_cluster() as cluster:

        def operator_apply(kind: str) -> Any:
            return lambda r: r.method.value == "PATCH" and r.resource.plural == kind and "fieldManager" in r.params

        def status_patch(r: Any) -> bool:
            return bool(r.method.value == "PATCH" and r.subresource == "status" and r.resource.plural == "videomodels")

        deployment_500 = cluster.server.inject(operator_apply("deployments"), 500, times=5)
        service_409 = cluster.server.inject(operator_apply("services"), 409, times=2)
        status_409 = cluster.server.inject(status_patch, 409, times=3)
        await cluster.create(example())
        await converged(cluster)
        assert deployment_500.hits == 5 and service_409.hits == 2 and status_409.hits == 3
        for kind in CHILDREN:
            assert await cluster.get(kind, NS, f"{NAME}-plan" if kind == "ConfigMap" else NAME) is not None


async def test_crash_looping_pods_are_never_ready() -> None:
    async with running_cluster() as cluster:
        cluster.ready_pods = False
        await cluster.create(example())

        async def progressing() -> bool:
            ready = await cluster.condition(NS, NAME, "Ready")
            return ready is not None and ready["reason"] == "ReplicasNotReady"

        await cluster.eventually(progressing, what="Ready=False ReplicasNotReady")
        await asyncio.sleep(0.5)
        ready = await cluster.condition(NS, NAME, "Ready")
        assert ready is not None and ready["status"] == "False" and "0/2" in ready["message"]
        cluster.ready_pods = True
        await converged(cluster)


async def test_an_invalid_spec_is_a_permanent_error_without_a_retry_storm() -> None:
    async with running_cluster() as cluster:
        body = example()
        body["spec"]["budget"]["minPixels"] = 900000  # above maxPixels: the CRD's CEL rule would stop it
        await cluster.create(body)

        async def reported() -> bool:
            fits = await cluster.condition(NS, NAME, "BudgetFits")
            return fits is not None and fits["reason"] == "InvalidSpec"

        await cluster.eventually(reported, what="InvalidSpec")
        fits = await cluster.condition(NS, NAME, "BudgetFits")
        assert fits is not None and "minPixels" in fits["message"]
        # The status, the Event and kopf's own bookkeeping patch land in any order: wait for them
        # to settle (quiet() fails if the writes never stop), then nothing more may come.
        await cluster.quiet()
        writes = len(cluster.operator_writes())
        await asyncio.sleep(1.5)
        assert cluster.operator_writes()[writes:] == []
        assert await cluster.get("Deployment", NS, NAME) is None


async def test_turning_autoscaling_off_prunes_the_hpa_and_pdb() -> None:
    async with running_cluster() as cluster:
        body = load_body(EXAMPLES / "qwen2.5-vl-7b-l4.yaml")
        name = body["metadata"]["name"]
        await cluster.create(body)
        await converged(cluster, name=name)
        assert await cluster.get("HorizontalPodAutoscaler", NS, name) is not None
        assert await cluster.get("PodDisruptionBudget", NS, name) is not None
        deployment = await cluster.get("Deployment", NS, name)
        assert deployment is not None and "replicas" not in deployment["spec"]
        await cluster.patch("VideoModel", NS, name, {"spec": {"autoscaling": None, "replicas": 1}})

        async def pruned() -> bool:
            hpa = await cluster.get("HorizontalPodAutoscaler", NS, name)
            pdb = await cluster.get("PodDisruptionBudget", NS, name)
            dep = await cluster.get("Deployment", NS, name)
            return hpa is None and pdb is None and dep is not None and dep["spec"].get("replicas") == 1

        await cluster.eventually(pruned, what="HPA and PDB pruned")


async def test_a_namespaced_operator_serves_only_its_namespaces() -> None:
    async with running_cluster(namespaces=(NS,)) as cluster:
        await cluster.create(example())
        elsewhere = example()
        elsewhere["metadata"]["namespace"] = "other"
        await cluster.create(elsewhere)
        await converged(cluster)
        await asyncio.sleep(1.0)  # two resyncs: they list only the watched namespace
        assert await cluster.get("Deployment", "other", NAME) is None
        other = await cluster.get("VideoModel", "other", NAME)
        assert other is not None and "status" not in other


@pytest.mark.parametrize("crd_installed", [False, True], ids=["no-prometheus-operator", "prometheus-operator"])
async def test_a_service_monitor_only_when_its_crd_exists(crd_installed: bool) -> None:
    async with running_cluster(service_monitor_crd=crd_installed) as cluster:
        await cluster.create(example())
        await converged(cluster)
        monitors = [
            key for key, obj in cluster.server.objects.items() if key[0].plural == "servicemonitors" and not obj.deleted
        ]
        assert len(monitors) == (1 if crd_installed else 0)


async def test_an_operator_restart_over_an_unchanged_world_makes_zero_writes() -> None:
    """kopf's resume handlers and the first resyncs of a new operator process change nothing."""
    async with running_cluster(resync_seconds=0.3) as cluster:
        await cluster.create(example())
        await converged(cluster)
        await asyncio.sleep(0.5)
        await cluster.restart_operator()
        before = len(cluster.operator_writes())
        assert cluster.reconciler is not None

        async def resumed() -> bool:
            assert cluster.reconciler is not None
            return cluster.reconciler.passes >= 3

        await cluster.eventually(resumed, what="the new operator's passes")
        await asyncio.sleep(0.3)
        assert cluster.operator_writes()[before:] == []


async def test_deleting_the_model_is_not_blocked_and_nothing_is_recreated() -> None:
    """No finalizer: the delete completes at once. The children (left to the garbage collector,
    which the emulator does not run) change afterwards; the operator must not act for a gone owner."""
    async with running_cluster(resync_seconds=0.3) as cluster:
        await cluster.create(example())
        await converged(cluster)
        await cluster.delete("VideoModel", NS, NAME)
        assert await cluster.get("VideoModel", NS, NAME) is None
        await asyncio.sleep(0.3)  # a pass already running when the delete landed may still finish
        before = len(cluster.operator_writes())
        await cluster.delete("ConfigMap", NS, f"{NAME}-plan")
        await cluster.patch("Deployment", NS, NAME, {"spec": {"replicas": 9}})
        await asyncio.sleep(1.0)
        assert cluster.operator_writes()[before:] == []
        assert await cluster.get("ConfigMap", NS, f"{NAME}-plan") is None


# -- issue 8: honest status, no adoption, replicas handover ----------------------------------------


async def test_an_apply_refused_by_the_api_server_reaches_status_and_never_claims_ready() -> None:
    """Defect 3: a 422 on apply is a Stalled/ApplyFailed condition, not a silent permanent error."""
    async with running_cluster() as cluster:
        await cluster.create(example())
        await converged(cluster)

        def deployment_apply(r: Any) -> bool:
            return bool(r.method.value == "PATCH" and r.resource.plural == "deployments" and "fieldManager" in r.params)

        refusal = cluster.server.inject(deployment_apply, 422, times=1000)
        await cluster.patch("VideoModel", NS, NAME, {"spec": {"budget": {"maxSeconds": 60}}})

        async def stalled() -> bool:
            condition = await cluster.condition(NS, NAME, "Stalled")
            return condition is not None and condition["status"] == "True" and condition["observedGeneration"] == 2

        await cluster.eventually(stalled, what="Stalled=True")
        assert refusal.hits >= 1
        cr = await cluster.get("VideoModel", NS, NAME)
        assert cr is not None
        conditions = {c["type"]: c for c in cr["status"]["conditions"]}
        assert conditions["Stalled"]["reason"] == "ApplyFailed"
        assert "422" in conditions["Stalled"]["message"] and "Deployment" in conditions["Stalled"]["message"]
        assert conditions["Ready"]["status"] == "False" and conditions["Degraded"]["status"] == "True"
        assert cr["status"]["appliedGeneration"] == 1
        assert cr["status"]["appliedPlan"]["maxSeconds"] != 60  # what runs, not what was asked
        events = [
            obj.raw
            for (res, _, _), obj in cluster.server.objects.items()
            if res.plural == "events" and not obj.deleted and obj.raw.get("reason") == "ApplyFailed"
        ]
        assert len(events) == 1 and events[0]["type"] == "Warning"


async def test_an_infeasible_edit_is_not_ready_and_the_columns_show_the_applied_plan() -> None:
    """Defect 4: status keeps the applied plan apart from the requested one."""
    async with running_cluster() as cluster:
        await cluster.create(example())
        await converged(cluster)
        await cluster.patch(
            "VideoModel", NS, NAME, {"spec": {"budget": {"maxSeconds": 600, "maxFrames": 768, "maxPixels": 602112}}}
        )

        async def stalled() -> bool:
            condition = await cluster.condition(NS, NAME, "Stalled")
            return condition is not None and condition["status"] == "True" and condition["observedGeneration"] == 2

        await cluster.eventually(stalled, what="Stalled=True")
        cr = await cluster.get("VideoModel", NS, NAME)
        assert cr is not None
        status = cr["status"]
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["Ready"]["status"] == "False" and conditions["Ready"]["reason"] == "InfeasibleBudget"
        assert conditions["Stalled"]["reason"] == "InfeasibleBudget"
        assert status["appliedGeneration"] == 1
        assert status["appliedPlan"]["maxModelLen"] == 20804 and status["appliedPlan"]["maxSeconds"] != 600
        assert status["plan"]["maxSeconds"] == 600  # the request, for `kubectl get -o yaml`


async def test_an_existing_object_of_the_same_name_is_never_adopted() -> None:
    """Defect 5: a foreign Service keeps its selector and gets no owner reference."""
    async with running_cluster() as cluster:
        foreign = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": NAME, "namespace": NS, "labels": {"team": "someone-else"}},
            "spec": {"selector": {"app": "legacy"}, "ports": [{"port": 80, "targetPort": 8080}]},
        }
        await cluster.request("POST", f"/api/v1/namespaces/{NS}/services", foreign)
        await cluster.create(example())

        async def stalled() -> bool:
            condition = await cluster.condition(NS, NAME, "Stalled")
            return condition is not None and condition["status"] == "True"

        await cluster.eventually(stalled, what="Stalled=True")
        service = await cluster.get("Service", NS, NAME)
        assert service is not None
        assert not service["metadata"].get("ownerReferences"), "the foreign Service was adopted"
        assert service["spec"]["selector"] == {"app": "legacy"}
        condition = await cluster.condition(NS, NAME, "Stalled")
        assert condition is not None and condition["reason"] == "NotOwner"
        assert f"Service {NS}/{NAME}" in condition["message"]
        ready = await cluster.condition(NS, NAME, "Ready")
        assert ready is not None and ready["status"] == "False"
        events = [
            obj.raw
            for (res, _, _), obj in cluster.server.objects.items()
            if res.plural == "events" and not obj.deleted and obj.raw.get("reason") == "NotOwner"
        ]
        assert len(events) == 1 and f"Service {NS}/{NAME}" in events[0]["message"]


async def test_switching_from_replicas_to_autoscaling_hands_the_replica_count_over() -> None:
    """Defect 9: before the apply that drops spec.replicas, another manager takes the field."""
    from videomodel_operator.reconciling import HANDOVER_MANAGER

    async with running_cluster() as cluster:
        await cluster.create(example())
        await converged(cluster)
        start = len(cluster.server)
        await cluster.patch(
            "VideoModel", NS, NAME, {"spec": {"replicas": None, "autoscaling": {"minReplicas": 1, "maxReplicas": 4}}}
        )
        await converged(cluster, generation=2)
        applies = [
            (r.params["fieldManager"], json.loads(r.body))
            for r in list(cluster.server)[start:]
            if "fieldManager" in r.params and r.resource is not None and r.resource.plural == "deployments"
        ]
        managers = [manager for manager, _ in applies]
        assert HANDOVER_MANAGER in managers, managers
        handover_at = managers.index(HANDOVER_MANAGER)
        handover = applies[handover_at][1]
        assert handover["spec"] == {"replicas": 2}, "the handover keeps the running count"
        main = [body for manager, body in applies[handover_at + 1 :] if manager == "videomodel-operator"]
        assert main and "replicas" not in main[0]["spec"]
        deployment = await cluster.get("Deployment", NS, NAME)
        assert deployment is not None and deployment["spec"]["replicas"] == 2
        # Once handed over, later passes neither repeat the handover nor write anything.
        await asyncio.sleep(0.5)  # let kopf's own bookkeeping write for the update settle
        writes = cluster.operator_writes()
        await asyncio.sleep(1.0)
        assert cluster.operator_writes()[len(writes) :] == []


# -- issue 8 features: Normal Events on transitions, pod-level reasons -----------------------------


async def test_normal_events_mark_created_rolled_out_and_plan_changed_once_each() -> None:
    async with running_cluster(resync_seconds=0.3) as cluster:
        await cluster.create(example())
        await converged(cluster)

        async def rolled_out(count: int) -> bool:
            return len(cluster.events("RolledOut")) >= count

        await cluster.eventually(lambda: rolled_out(1), what="RolledOut for generation 1")
        (created,) = cluster.events("Created")
        assert created["type"] == "Normal" and created["involvedObject"]["name"] == NAME
        assert "generation 1" in created["message"] and "frames" in created["message"]
        (rolled,) = cluster.events("RolledOut")
        assert rolled["type"] == "Normal" and "generation 1" in rolled["message"]
        assert not cluster.events("PlanChanged")

        await cluster.patch("VideoModel", NS, NAME, {"spec": {"budget": {"maxSeconds": 60}}})
        await converged(cluster, generation=2)
        await cluster.eventually(lambda: rolled_out(2), what="RolledOut for generation 2")
        (changed,) = cluster.events("PlanChanged")
        assert changed["type"] == "Normal" and "generation 2" in changed["message"]
        assert "maxSeconds" in changed["message"] and "-> 60" in changed["message"]
        assert "generation 2" in cluster.events("RolledOut")[-1]["message"]

        # Transitions only: resyncs over the converged world post nothing (and write nothing).
        await cluster.quiet()
        writes, events = cluster.operator_writes(), cluster.events()
        await asyncio.sleep(1.5)
        assert cluster.events() == events
        assert cluster.operator_writes()[len(writes) :] == []
        assert [e["reason"] for e in events].count("Created") == 1


def _pod(name: str, labels: dict[str, str], status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {"containers": [{"name": "server", "image": "ghcr.io/videomodel/videomodel-server:0.1.0"}]},
        "status": status,
    }


POD_STATES: dict[str, tuple[dict[str, Any], str, str]] = {
    "unschedulable": (
        {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
                }
            ],
        },
        "Unschedulable",
        "Insufficient nvidia.com/gpu",
    ),
    "image-pull": (
        {
            "phase": "Pending",
            "containerStatuses": [
                {
                    "name": "server",
                    "ready": False,
                    "restartCount": 0,
                    "image": "ghcr.io/videomodel/videomodel-server:0.1.0",
                    "imageID": "",
                    "state": {
                        "waiting": {
                            "reason": "ImagePullBackOff",
                            "message": 'Back-off pulling image "ghcr.io/videomodel/videomodel-server:0.1.0"',
                        }
                    },
                }
            ],
        },
        "ImagePullFailed",
        "Back-off pulling image",
    ),
    "oom-killed": (
        {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "server",
                    "ready": False,
                    "restartCount": 3,
                    "image": "ghcr.io/videomodel/videomodel-server:0.1.0",
                    "imageID": "",
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                    "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
                }
            ],
        },
        "OOMKilled",
        "OOMKilled",
    ),
}


@pytest.mark.parametrize("state", sorted(POD_STATES))
async def test_a_pod_level_reason_reaches_the_conditions_within_one_resync(state: str) -> None:
    pod_status, reason, text = POD_STATES[state]
    resync = 1.0
    async with running_cluster(resync_seconds=resync) as cluster:
        cluster.ready_pods = False
        await cluster.create(example())

        async def not_ready() -> bool:
            ready = await cluster.condition(NS, NAME, "Ready")
            return ready is not None and ready["reason"] == "ReplicasNotReady"

        await cluster.eventually(not_ready, what="Ready=False ReplicasNotReady")
        deployment = await cluster.get("Deployment", NS, NAME)
        assert deployment is not None
        selector = deployment["spec"]["selector"]["matchLabels"]
        pod_name = f"{NAME}-6d5f7c9b8-x2x4q"
        await cluster.request("POST", f"/api/v1/namespaces/{NS}/pods", _pod(pod_name, selector, pod_status))
        # A pod of another model in the namespace is never blamed.
        other = _pod("someone-else", {**selector, "videomodel.io/model": "other"}, POD_STATES["oom-killed"][0])
        other["metadata"]["labels"] = {"app": "other"}
        await cluster.request("POST", f"/api/v1/namespaces/{NS}/pods", other)

        async def explained() -> bool:
            ready = await cluster.condition(NS, NAME, "Ready")
            return ready is not None and ready["reason"] == reason

        # No pod watch: the periodic pass reads the pods, so the reason shows within one resync.
        await cluster.eventually(explained, timeout=2 * resync + 3.0, what=f"Ready reason {reason}")
        conditions = {c: await cluster.condition(NS, NAME, c) for c in ("Ready", "Degraded", "Progressing")}
        assert conditions["Ready"] is not None and conditions["Degraded"] is not None
        assert pod_name in conditions["Ready"]["message"] and text in conditions["Ready"]["message"]
        assert "0/2 replicas ready" in conditions["Ready"]["message"]
        assert conditions["Degraded"]["status"] == "True" and conditions["Degraded"]["reason"] == reason
        assert "someone-else" not in conditions["Degraded"]["message"]
        (warning,) = cluster.events(reason)
        assert warning["type"] == "Warning" and pod_name in warning["message"]

        # An unchanged world: no more writes, no repeated Event.
        await cluster.quiet()
        writes = cluster.operator_writes()
        await asyncio.sleep(2.5 * resync)
        assert cluster.operator_writes()[len(writes) :] == []

        # Fixed: the pod goes, the replicas become ready, Degraded clears.
        await cluster.request("DELETE", f"/api/v1/namespaces/{NS}/pods/{pod_name}")
        cluster.ready_pods = True
        await converged(cluster)
        degraded = await cluster.condition(NS, NAME, "Degraded")
        assert degraded is not None and degraded["status"] == "False"


async def test_a_deployment_of_an_older_release_keeps_its_selector_and_rolls_nothing() -> None:
    """Older releases selected pods by app.kubernetes.io/instance (Argo CD's tracking label).
    Deployment selectors are immutable: the upgraded operator keeps the live one, its pods keep
    running, and the new Service selector (videomodel.io/model) still reaches them."""
    from videomodel_operator.planning import plan_for
    from videomodel_operator.rendering import render
    from videomodel_operator.spec import parse_video_model

    async with running_cluster() as cluster:
        await cluster.stop_operator()
        created = await cluster.create(example())
        cr = parse_video_model(created)
        rendered = next(o for o in render(cr, plan_for(cr.spec)) if o["kind"] == "Deployment")
        legacy = copy.deepcopy(rendered)
        old_selector = {"app.kubernetes.io/name": "videomodel-server", "app.kubernetes.io/instance": NAME}
        legacy["spec"]["selector"] = {"matchLabels": old_selector}
        legacy["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] = NAME
        await cluster.request("POST", f"/apis/apps/v1/namespaces/{NS}/deployments", legacy)
        start = len(cluster.server)
        await cluster.start_operator(cluster._config, cluster._url)
        await converged(cluster)
        deployment = await cluster.get("Deployment", NS, NAME)
        assert deployment is not None
        assert deployment["spec"]["selector"]["matchLabels"] == old_selector
        assert deployment["metadata"]["generation"] == 1, "the upgrade rolled the pods"
        for request in list(cluster.server)[start:]:
            if "fieldManager" in request.params and request.resource and request.resource.plural == "deployments":
                body = json.loads(request.body)
                assert body["spec"]["selector"]["matchLabels"] == old_selector  # never a 422
        service = await cluster.get("Service", NS, NAME)
        assert service is not None
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert "app.kubernetes.io/instance" not in service["metadata"]["labels"]
