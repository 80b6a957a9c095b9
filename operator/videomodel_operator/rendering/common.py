"""What every rendered object shares: names, labels, metadata with the owner reference.

Pure. The selector labels are the contract between the Deployment, the Service, the
NetworkPolicy, the PDB and the ServiceMonitor; ``status.selector`` publishes them for the scale
subresource.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..spec import API_VERSION, KIND, VideoModel

Obj = dict[str, Any]

GiB = 1024**3
MiB = 1024**2
FIELD_MANAGER = "videomodel-operator"
HASH_ANNOTATION = "videomodel.io/config-hash"
MANAGED_BY = "videomodel-operator"
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
"""Not set on children: Argo CD's default tracking label (a model named like an Argo CD
Application would have its children claimed, and pruned, by that Application). Older releases
selected pods by it; see :func:`~videomodel_operator.rendering.workload.keep_live_selector`."""
MODEL_LABEL = "videomodel.io/model"
"""The VideoModel's name: the instance key of every child and of the pod selector."""
APP_NAME = "videomodel-server"
RUN_AS_USER = 1000

MODELS_MOUNT = "/models"
CACHE_MOUNT = "/cache"
DOWNLOAD_DIR = f"{CACHE_MOUNT}/models"
HF_CACHE_MOUNT = "/hf-cache"
"""Where ``huggingFace.cacheClaimName`` is mounted (read-write in the download init container,
read-only in the server); snapshots live under ``models/<repo>/<revision>``."""
SERVING_MOUNT = "/etc/videomodel"
"""Where the ConfigMap's ``serving.json`` (the server's budget file) is mounted."""


@dataclass(frozen=True)
class Capabilities:
    """What the target cluster offers beyond core Kubernetes (discovered by the operator)."""

    service_monitor: bool = False


def selector_labels(name: str) -> dict[str, str]:
    """The pods of one VideoModel. Pods of Deployments made by older releases (selected by
    ``app.kubernetes.io/instance``) carry these labels too, so Services and policies match both."""
    return {NAME_LABEL: APP_NAME, MODEL_LABEL: name}


def selector_string(name: str) -> str:
    """The label selector of the pods, in the string form ``status.selector`` holds."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(name).items())


def labels(cr: VideoModel, component: str = "inference") -> dict[str, str]:
    return {
        **selector_labels(cr.metadata.name),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def metadata(cr: VideoModel, name: str, component: str = "inference") -> Obj:
    meta: Obj = {"name": name, "namespace": cr.metadata.namespace, "labels": labels(cr, component)}
    if cr.metadata.uid:
        meta["ownerReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": cr.metadata.name,
                "uid": cr.metadata.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return meta


def config_map_name(name: str) -> str:
    return f"{name}-plan"


def service_url(cr: VideoModel) -> str:
    """The in-cluster OpenAI base URL clients use."""
    return f"http://{cr.metadata.name}.{cr.metadata.namespace}.svc:{cr.spec.service.port}/v1"
