"""The workload: the ConfigMap with the budget file, the pod spec, the Deployment, the config hash.

Pure. Security (docs/security.md#pod-security): Pod Security "restricted" for every container and a
``/dev/shm`` memory emptyDir with a size limit. Every disk emptyDir has a size limit and is
covered by the container's ephemeral-storage request and limit (:mod:`.sizing`).

The pod template carries ``videomodel.io/config-hash``, a digest of what the pod consumes (the
pod spec and ``serving.json``); the ConfigMap's ``plan.txt`` and ``plan.json`` are for people and
stay out of it, so rewording them never restarts a model.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math

from videomodel_server.budget import Plan
from videomodel_server.budget.contract import BUDGET_FILE_KEY, ServingContract

from ..planning import plan_table
from ..spec import SERVER_PORT, VideoModel, VideoModelSpec
from ..units import format_bytes, format_cpu
from .common import (
    CACHE_MOUNT,
    HASH_ANNOTATION,
    HF_CACHE_MOUNT,
    MODELS_MOUNT,
    RUN_AS_USER,
    SERVING_MOUNT,
    Obj,
    config_map_name,
    labels,
    metadata,
    selector_labels,
)
from .server import model_path, server_args
from .sizing import Sizing, sizing, startup_budget

REPLICAS_ANNOTATION = "videomodel.io/replicas-owner"
"""Who sets the Deployment's ``spec.replicas``: ``operator`` (``spec.replicas``) or ``autoscaler``.

The reconciler reads it from the live Deployment to know when the field must be handed over to
the HPA (see :mod:`videomodel_operator.reconciling`)."""
REPLICAS_BY_OPERATOR = "operator"
REPLICAS_BY_AUTOSCALER = "autoscaler"


def restricted_container_security() -> Obj:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _env(spec: VideoModelSpec) -> list[Obj]:
    env: list[Obj] = [
        {"name": "HOME", "value": CACHE_MOUNT},
        {"name": "XDG_CACHE_HOME", "value": CACHE_MOUNT},
        {"name": "HF_HOME", "value": f"{CACHE_MOUNT}/huggingface"},
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        {"name": "DO_NOT_TRACK", "value": "1"},
    ]
    secret = spec.security.api_key_secret
    if secret is not None:
        env.append(
            {"name": "VIDEOMODEL_API_KEY", "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.key}}}
        )
    env += [var.model_dump(by_alias=True, exclude_none=True) for var in spec.env]
    return env


def volumes(cr: VideoModel, size: Sizing) -> tuple[list[Obj], list[Obj]]:
    """The pod's volumes and the server container's mounts."""
    spec = cr.spec
    serving = {
        "name": config_map_name(cr.metadata.name),
        "items": [{"key": BUDGET_FILE_KEY, "path": BUDGET_FILE_KEY}],
    }
    vols: list[Obj] = [
        {"name": "serving", "configMap": serving},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": format_bytes(size.shm_bytes)}},
        {"name": "tmp", "emptyDir": {"sizeLimit": format_bytes(size.tmp_bytes)}},
        {"name": "cache", "emptyDir": {"sizeLimit": format_bytes(size.cache_bytes)}},
    ]
    mounts: list[Obj] = [
        {"name": "serving", "mountPath": SERVING_MOUNT, "readOnly": True},
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "cache", "mountPath": CACHE_MOUNT},
    ]
    pvc = spec.model.source.pvc
    if pvc is not None:
        vols.append({"name": "model", "persistentVolumeClaim": {"claimName": pvc.claim_name, "readOnly": True}})
        mounts.append({"name": "model", "mountPath": MODELS_MOUNT, "readOnly": True})
    hf = spec.model.source.hugging_face
    if hf is not None and hf.cache_claim_name:
        # Written by the download init container only; the server reads it.
        vols.append({"name": "hf-cache", "persistentVolumeClaim": {"claimName": hf.cache_claim_name}})
        mounts.append({"name": "hf-cache", "mountPath": HF_CACHE_MOUNT, "readOnly": True})
    security = spec.security
    if security.local_media_claim_name and security.local_media_path:
        vols.append(
            {
                "name": "media",
                "persistentVolumeClaim": {"claimName": security.local_media_claim_name, "readOnly": True},
            }
        )
        mounts.append({"name": "media", "mountPath": security.local_media_path, "readOnly": True})
    return vols, mounts


def _download_init_container(spec: VideoModelSpec, mounts: list[Obj], size: Sizing) -> Obj | None:
    hf = spec.model.source.hugging_face
    if hf is None:
        return None
    script = (
        "import sys\n"
        "from huggingface_hub import snapshot_download\n"
        "snapshot_download(repo_id=sys.argv[1], revision=sys.argv[2] or None, local_dir=sys.argv[3])\n"
    )
    # With a cache claim, the hub's own cache (HF_HOME) persists there too.
    hf_home = f"{HF_CACHE_MOUNT}/huggingface" if hf.cache_claim_name else f"{CACHE_MOUNT}/huggingface"
    env: list[Obj] = [
        {"name": "HOME", "value": CACHE_MOUNT},
        {"name": "HF_HOME", "value": hf_home},
    ]
    if hf.token_secret is not None:
        env.append(
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": hf.token_secret.name, "key": hf.token_secret.key}},
            }
        )
    ephemeral = format_bytes(size.ephemeral_bytes)
    return {
        "name": "download-model",
        "image": spec.image,
        **({"imagePullPolicy": spec.image_pull_policy} if spec.image_pull_policy else {}),
        "command": ["python", "-c", script, hf.repo, hf.revision or "", model_path(spec)],
        "env": env,
        "resources": {
            "requests": {"cpu": "1", "memory": "2Gi", "ephemeral-storage": ephemeral},
            "limits": {"memory": "2Gi", "ephemeral-storage": ephemeral},
        },
        "securityContext": restricted_container_security(),
        "volumeMounts": [
            {k: v for k, v in m.items() if k != "readOnly"} if m["name"] == "hf-cache" else m  # read-write
            for m in mounts
            if m["name"] in ("cache", "tmp", "hf-cache")
        ],
    }


def _node_selector(spec: VideoModelSpec) -> dict[str, str]:
    selector = dict(spec.resources.node_selector)
    gpu = spec.resources.gpu
    if gpu.type and gpu.count > 0:
        selector.setdefault(gpu.product_label, gpu.type)
    return selector


def pod_spec(cr: VideoModel, plan: Plan, size: Sizing) -> Obj:
    spec = cr.spec
    vols, mounts = volumes(cr, size)
    ephemeral = format_bytes(size.ephemeral_bytes)
    resources: Obj = {
        "requests": {
            "cpu": format_cpu(size.cpu_milli),
            "memory": format_bytes(size.memory_bytes),
            "ephemeral-storage": ephemeral,
        },
        "limits": {"memory": format_bytes(size.memory_bytes), "ephemeral-storage": ephemeral},
    }
    gpu = spec.resources.gpu
    if gpu.count > 0:
        resources["requests"][gpu.resource_name] = str(gpu.count)
        resources["limits"][gpu.resource_name] = str(gpu.count)
    startup_period = 10
    container: Obj = {
        "name": "server",
        "image": spec.image,
        **({"imagePullPolicy": spec.image_pull_policy} if spec.image_pull_policy else {}),
        "command": ["videomodel-server"],
        "args": server_args(spec, plan),
        "env": _env(spec),
        **(
            {"envFrom": [e.model_dump(by_alias=True, exclude_none=True) for e in spec.env_from]}
            if spec.env_from
            else {}
        ),
        "ports": [{"name": "http", "containerPort": SERVER_PORT, "protocol": "TCP"}],
        "resources": resources,
        "startupProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": startup_period,
            "timeoutSeconds": 5,
            "failureThreshold": math.ceil(startup_budget(spec, plan).startup_seconds / startup_period),
        },
        "readinessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 15,
            "timeoutSeconds": 5,
            "failureThreshold": 4,
        },
        "securityContext": restricted_container_security(),
        "volumeMounts": mounts,
    }
    if spec.lifecycle.pre_stop_seconds > 0:
        # The sleep action needs no shell or binary in the image (GA in Kubernetes 1.34).
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": spec.lifecycle.pre_stop_seconds}}}
    pod: Obj = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": spec.lifecycle.pre_stop_seconds + spec.lifecycle.drain_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": vols,
    }
    init = _download_init_container(spec, mounts, size)
    if init is not None:
        pod["initContainers"] = [init]
    node_selector = _node_selector(spec)
    if node_selector:
        pod["nodeSelector"] = node_selector
    if spec.resources.tolerations:
        pod["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in spec.resources.tolerations]
    if spec.resources.affinity is not None:
        affinity = spec.resources.affinity.model_dump(by_alias=True, exclude_none=True)
        if affinity:
            pod["affinity"] = affinity
    if spec.resources.runtime_class_name:
        pod["runtimeClassName"] = spec.resources.runtime_class_name
    if spec.resources.priority_class_name:
        pod["priorityClassName"] = spec.resources.priority_class_name
    if spec.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s.name} for s in spec.image_pull_secrets]
    return pod


def config_hash(pod: Obj, serving_json: str) -> str:
    """Digest of what the pods consume: the pod spec and the budget file they read (canonical JSON).

    The ConfigMap's human-readable ``plan.txt`` and ``plan.json`` are not read by the pods and
    stay out, so rewording them never restarts a model.
    """
    canonical = json.dumps({"pod": pod, "serving": serving_json}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def render_config_map(cr: VideoModel, plan: Plan, contract: ServingContract) -> Obj:
    """The budget file the server reads (``contract``), and the plan for people (``kubectl get cm -o yaml``)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(cr, config_map_name(cr.metadata.name), "plan"),
        "data": {
            BUDGET_FILE_KEY: contract.to_json(),
            "plan.json": json.dumps(plan.to_dict(), indent=2) + "\n",
            "plan.txt": plan_table(plan),
        },
    }


def render_deployment(cr: VideoModel, plan: Plan, contract: ServingContract) -> Obj:
    """The Deployment, sized for the server's ``contract``. With autoscaling it leaves ``spec.replicas`` to the HPA."""
    spec = cr.spec
    size = sizing(spec, plan, contract)
    pod = pod_spec(cr, plan, size)
    digest = config_hash(pod, contract.to_json())
    name = cr.metadata.name
    rollout = spec.rollout
    deployment_spec: Obj = {
        "selector": {"matchLabels": selector_labels(name)},
        "strategy": {
            # Default: no spare GPU is needed to roll: take one pod down, then bring the new one up.
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": rollout.max_surge, "maxUnavailable": rollout.max_unavailable},
        },
        "progressDeadlineSeconds": startup_budget(spec, plan).progress_deadline_seconds,
        "revisionHistoryLimit": 3,
        "template": {
            "metadata": {"labels": labels(cr), "annotations": {HASH_ANNOTATION: digest}},
            "spec": pod,
        },
    }
    owner = REPLICAS_BY_OPERATOR
    if spec.autoscaling is None:
        deployment_spec = {"replicas": spec.desired_replicas, **deployment_spec}
    else:
        # The HPA owns .spec.replicas; applying it here would fight the HPA.
        owner = REPLICAS_BY_AUTOSCALER
    meta = metadata(cr, name)
    meta["annotations"] = {HASH_ANNOTATION: digest, REPLICAS_ANNOTATION: owner}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": deployment_spec}


def keep_live_selector(deployment: Obj, live: Obj | None) -> Obj:
    """``deployment`` as it may be applied over ``live``: a Deployment's selector is immutable.

    Deployments made by releases that selected pods by ``app.kubernetes.io/instance`` keep
    their selector, and their pod template keeps the labels it matches, so upgrading the
    operator neither fails the apply (422) nor rolls any pod. New Deployments select by
    ``videomodel.io/model``. To move an old one over, delete it with ``--cascade=orphan``: the
    operator recreates it with the new selector and the running pods are adopted, then replaced.
    """
    if live is None:
        return deployment
    selector = ((live.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not selector or selector == deployment["spec"]["selector"]["matchLabels"]:
        return deployment
    kept = copy.deepcopy(deployment)
    kept["spec"]["selector"] = {"matchLabels": dict(selector)}
    template_labels = kept["spec"]["template"]["metadata"]["labels"]
    kept["spec"]["template"]["metadata"]["labels"] = {**template_labels, **selector}
    return kept
