"""Helpers of the operator tests: the example CRs, renders for a serving contract, the Pod Security
check, and the reconcile scenario's names and convergence wait."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from videomodel_operator.rendering import Sizing, render_deployment, serving_contract, sizing
from videomodel_operator.spec import VideoModel, VideoModelSpec, parse_video_model
from videomodel_server.budget import Plan

if TYPE_CHECKING:
    from tests.operator.harness import Cluster

# -- the example CRs ---------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FEASIBLE_EXAMPLES = sorted(EXAMPLES.glob("*.yaml"))
INFEASIBLE_EXAMPLES = sorted((EXAMPLES / "infeasible").glob("*.yaml"))


def load_body(path: Path) -> dict[str, Any]:
    body = yaml.safe_load(path.read_text())
    assert isinstance(body, dict)
    return body


def load_cr(path: Path, uid: str | None = "3f1d3c1e-0000-4000-8000-000000000001") -> VideoModel:
    body = load_body(path)
    if uid:
        body["metadata"]["uid"] = uid
    return parse_video_model(body)


def deployment_for(cr: VideoModel, plan: Plan) -> dict[str, Any]:
    """The Deployment :func:`~videomodel_operator.rendering.render` gives ``cr`` (for its serving contract)."""
    return render_deployment(cr, plan, serving_contract(cr.spec, plan))


def sizing_for(spec: VideoModelSpec, plan: Plan) -> Sizing:
    """A replica's sizing for the serving contract its server is given."""
    return sizing(spec, plan, serving_contract(spec, plan))


IMAGE_BUDGET = {"imagesPerPrompt": 2, "imageMaxPixels": 200704}
"""The case that crash-looped: two images per prompt on qwen2-vl-7b-a100 (issue 7)."""


def with_budget(cr: VideoModel, changes: dict[str, Any]) -> VideoModel:
    """``cr`` with ``changes`` (CR keys) made to its budget."""
    doc = cr.model_dump(by_alias=True, exclude_none=True, mode="json")
    doc["spec"]["budget"].update(changes)
    return VideoModel.model_validate(doc)


def image_budget_cr() -> VideoModel:
    cr = load_cr(EXAMPLES / "qwen2-vl-7b-a100.yaml")
    return with_budget(cr, IMAGE_BUDGET)


# -- Kubernetes: the schema release and the Pod Security Standards ------------------------------------

K8S_VERSION = "1.34.0"
"""A current release kubernetes-validate ships schemas for (it bundles up to its own version)."""


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def assert_pss_restricted(pod: dict[str, Any], *, shm: bool = True) -> None:
    """Pod Security Standards "restricted" (v1.34 checks), plus (``shm``) our /dev/shm rule."""
    for forbidden in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(forbidden), forbidden
    for volume in pod.get("volumes", []):
        allowed = {
            "configMap",
            "csi",
            "downwardAPI",
            "emptyDir",
            "ephemeral",
            "persistentVolumeClaim",
            "projected",
            "secret",
        }
        assert set(volume) - {"name"} <= allowed, volume
    pod_sc = pod.get("securityContext", {})
    assert pod_sc.get("seccompProfile", {}).get("type") in ("RuntimeDefault", "Localhost")
    assert pod_sc.get("runAsUser", 1) != 0
    for container in _containers(pod):
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert not sc["capabilities"].get("add")
        assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True
        assert sc.get("runAsUser", pod_sc.get("runAsUser")) not in (None, 0)
        assert not sc.get("privileged")
        assert "hostPort" not in str(container.get("ports", []))
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
        assert seccomp.get("type") in ("RuntimeDefault", "Localhost")
    if shm:
        dshm = next(v for v in pod["volumes"] if v["name"] == "dshm")
        assert dshm["emptyDir"]["medium"] == "Memory"
        assert dshm["emptyDir"]["sizeLimit"]


# -- the reconcile scenario -------------------------------------------------------------------------------

NS = "models"
NAME = "qwen2-vl-7b"
CHILDREN = ("ConfigMap", "Service", "NetworkPolicy", "Deployment", "PodDisruptionBudget")


def example() -> dict[str, Any]:
    return load_body(EXAMPLES / "qwen2-vl-7b-a100.yaml")


async def converged(cluster: Cluster, name: str = NAME, generation: int | None = None) -> dict[str, Any]:
    async def ready() -> bool:
        cr = await cluster.get("VideoModel", NS, name)
        status = (cr or {}).get("status") or {}
        conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
        gen = generation or cr["metadata"]["generation"]  # type: ignore[index]
        return conditions.get("Ready") == "True" and status.get("observedGeneration") == gen

    await cluster.eventually(ready, what=f"{name} Ready")
    cr = await cluster.get("VideoModel", NS, name)
    assert cr is not None
    return cr
