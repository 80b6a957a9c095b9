"""``render(cr, plan) -> [objects]``: every child object of a VideoModel, as plain dicts.

Pure: no I/O, clock or environment. The operator applies exactly this list (server-side apply);
``videomodel render`` prints it. Rules the rest of the system relies on:

- Never emit ``None`` or an empty map/list the API server would drop: the operator compares
  the rendered objects with the live ones to skip no-op writes, so what is rendered must be
  what the server stores. Quantities are printed in the server's canonical form for the same
  reason (:mod:`videomodel_operator.units`).
- The pod template carries ``videomodel.io/config-hash``: a digest of the rendered pod spec
  and the plan, so any budget, engine or image change rolls the pods, and nothing else does.
- Security (SECURITY.md 13-14): Pod Security "restricted" for every container, a
  ``/dev/shm`` memory emptyDir with a size limit, and a NetworkPolicy that lets in only the
  API port and lets out only DNS and the public internet.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from videomodel_server.budget import Plan, flag
from videomodel_server.budget.contract import BUDGET_FILE_KEY, AdmissionSettings, EngineSettings, ServingContract

from .planning import plan_table
from .spec import API_VERSION, KIND, SERVER_PORT, VideoModel, VideoModelSpec
from .units import format_bytes, format_cpu, format_decimal_milli, parse_bytes, parse_cpu, round_up_mib

Obj = dict[str, Any]

GiB = 1024**3
MiB = 1024**2
FIELD_MANAGER = "videomodel-operator"
HASH_ANNOTATION = "videomodel.io/config-hash"
MANAGED_BY = "videomodel-operator"
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
APP_NAME = "videomodel-server"
RUN_AS_USER = 1000

MODELS_MOUNT = "/models"
CACHE_MOUNT = "/cache"
DOWNLOAD_DIR = f"{CACHE_MOUNT}/models"
SERVING_MOUNT = "/etc/videomodel"
"""Where the ConfigMap's ``serving.json`` (the server's budget file) is mounted."""

# Egress the NetworkPolicy never allows: private, shared (CGNAT), loopback, link-local (which
# holds the cloud metadata address 169.254.169.254) and multicast/reserved ranges.
PRIVATE_V4 = (
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/3",
)
PRIVATE_V6 = ("fc00::/7", "fe80::/10", "ff00::/8", "::ffff:0:0/96", "64:ff9b::/96", "2002::/16")

BASE_MEMORY = 6 * GiB
"""Python, tokenizer, vLLM's host side, CUDA host allocations: before any video arrives."""
BASE_CPU_MILLI = 2000


@dataclass(frozen=True)
class Capabilities:
    """What the target cluster offers beyond core Kubernetes (discovered by the operator)."""

    service_monitor: bool = False


def selector_labels(name: str) -> dict[str, str]:
    return {NAME_LABEL: APP_NAME, INSTANCE_LABEL: name}


def selector_string(name: str) -> str:
    """The label selector of the pods, in the string form ``status.selector`` holds."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(name).items())


def _labels(cr: VideoModel, component: str = "inference") -> dict[str, str]:
    return {
        **selector_labels(cr.metadata.name),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "videomodel.io/model": cr.metadata.name,
    }


def _metadata(cr: VideoModel, name: str, component: str = "inference") -> Obj:
    meta: Obj = {"name": name, "namespace": cr.metadata.namespace, "labels": _labels(cr, component)}
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


# -- sizing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizing:
    """Per-replica CPU and memory, from the budget (or the spec when it sets them)."""

    cpu_milli: int
    memory_bytes: int
    shm_bytes: int
    cache_bytes: int


def _decoded_video_bytes(plan: Plan) -> int:
    frame = plan.worst_case_frame
    if not frame:
        return 0
    return plan.frames_per_video * frame["height"] * frame["width"] * 3


def sizing(spec: VideoModelSpec, plan: Plan) -> Sizing:
    admission = serving_contract(spec, plan).admission
    in_flight, workers = admission.max_concurrent_requests, admission.decode_workers
    """CPU, memory, /dev/shm and cache sizes for one replica.

    Video work per admitted request: the download buffer (up to maxVideoBytes) plus the decoded
    worst-case frames, twice (the decoder's output and the engine's copy), for every video of a
    prompt and every request the server admits at once. /dev/shm carries frames between the
    decode workers and the engine (and NCCL's buffers under tensor parallelism); as a memory
    emptyDir it counts against the container's memory, so it is added to the request.
    """
    per_video = plan.max_video_bytes + 2 * _decoded_video_bytes(plan)
    videos = max(1, plan.videos_per_prompt)
    video_work = in_flight * videos * per_video
    tp = spec.tensor_parallel_size
    if spec.resources.shm_size is not None:
        shm = parse_bytes(spec.resources.shm_size)
    else:
        shm = round_up_mib(GiB + in_flight * videos * _decoded_video_bytes(plan) + (tp - 1) * GiB)
    memory = BASE_MEMORY + video_work + shm
    if spec.resources.gpu.count == 0:
        # CPU serving: the weights and the KV cache live in host memory too.
        memory += (plan.weights_bytes or 0) + max(0, plan.kv_cache_bytes_available or 0)
    memory = parse_bytes(spec.resources.memory) if spec.resources.memory is not None else _round_up_gib(memory)
    cpu = BASE_CPU_MILLI + workers * 1000 + (tp - 1) * 1000
    if spec.resources.cpu is not None:
        cpu = parse_cpu(spec.resources.cpu)
    cache = 2 * GiB
    if spec.model.source.hugging_face is not None:
        cache += int(spec.to_model_spec().parameters * 2 * 1.25)
    return Sizing(cpu_milli=cpu, memory_bytes=memory, shm_bytes=shm, cache_bytes=_round_up_gib(cache))


def _round_up_gib(value: float) -> int:
    return int(math.ceil(value / GiB) * GiB)


# -- the server's command line ------------------------------------------------------------------


def model_path(spec: VideoModelSpec) -> str:
    source = spec.model.source
    if source.pvc is not None:
        return f"{MODELS_MOUNT}/{source.pvc.path}".rstrip("/") if source.pvc.path else MODELS_MOUNT
    if source.hugging_face is not None:
        return f"{DOWNLOAD_DIR}/{source.hugging_face.repo}"
    assert source.local is not None
    return source.local.path


def serving_contract(spec: VideoModelSpec, plan: Plan) -> ServingContract:
    """What the server is told, in one piece: the budget, engine and admission settings, the plan.

    The budget goes in resolved (the family's pixel defaults filled in); the server re-derives
    the plan from it and refuses to start if its plan differs from the one here. Admission and
    engine settings the CR does not set are the server's own defaults, written out so the
    sizing here and the server's behaviour come from the same numbers.
    """
    model = spec.to_model_spec()
    engine = EngineSettings(
        tensor_parallel_size=spec.tensor_parallel_size,
        dtype=spec.engine.dtype.value,
        gpu_memory_utilization=spec.engine.gpu_memory_utilization,
        max_model_len=plan.max_model_len,
    )
    return ServingContract.for_plan(spec.to_budget().resolved(model.geometry), engine, AdmissionSettings(), plan)


def server_args(spec: VideoModelSpec, plan: Plan) -> list[str]:
    """The ``videomodel-server`` command line: the model, where to listen, and the budget file.

    Everything the budget decides travels in :func:`serving_contract` (the ConfigMap's
    ``serving.json``, mounted at :data:`SERVING_MOUNT`), not as hand-listed flags. The flags here
    are the ones that are not the budget's: the checkpoint and the media security settings,
    named by the server's own field-to-flag rule.
    """
    args = [
        flag("model"),
        model_path(spec),
        flag("served_model_name"),
        spec.served_name,
        flag("family"),
        spec.to_model_spec().family.value,
        flag("port"),
        str(SERVER_PORT),
        "--budget-file",
        f"{SERVING_MOUNT}/{BUDGET_FILE_KEY}",
    ]
    security = spec.security
    if security.allowed_media_domains:
        args += [flag("allowed_media_domains"), ",".join(security.allowed_media_domains)]
    if security.local_media_path:
        args += [flag("allowed_local_media_path"), security.local_media_path]
    if security.allow_http:
        args.append(flag("allow_http"))
    if spec.engine.extra_args:
        args += ["--", *spec.engine.extra_args]
    return args


# -- objects ---------------------------------------------------------------------------------


def _restricted_container_security() -> Obj:
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
    return env


def _volumes(cr: VideoModel, size: Sizing) -> tuple[list[Obj], list[Obj]]:
    spec = cr.spec
    serving = {
        "name": config_map_name(cr.metadata.name),
        "items": [{"key": BUDGET_FILE_KEY, "path": BUDGET_FILE_KEY}],
    }
    volumes: list[Obj] = [
        {"name": "serving", "configMap": serving},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": format_bytes(size.shm_bytes)}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
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
        volumes.append({"name": "model", "persistentVolumeClaim": {"claimName": pvc.claim_name, "readOnly": True}})
        mounts.append({"name": "model", "mountPath": MODELS_MOUNT, "readOnly": True})
    security = spec.security
    if security.local_media_claim_name and security.local_media_path:
        volumes.append(
            {
                "name": "media",
                "persistentVolumeClaim": {"claimName": security.local_media_claim_name, "readOnly": True},
            }
        )
        mounts.append({"name": "media", "mountPath": security.local_media_path, "readOnly": True})
    return volumes, mounts


def _download_init_container(spec: VideoModelSpec, mounts: list[Obj]) -> Obj | None:
    hf = spec.model.source.hugging_face
    if hf is None:
        return None
    script = (
        "import sys\n"
        "from huggingface_hub import snapshot_download\n"
        "snapshot_download(repo_id=sys.argv[1], revision=sys.argv[2] or None, local_dir=sys.argv[3])\n"
    )
    env: list[Obj] = [
        {"name": "HOME", "value": CACHE_MOUNT},
        {"name": "HF_HOME", "value": f"{CACHE_MOUNT}/huggingface"},
    ]
    if hf.token_secret is not None:
        env.append(
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": hf.token_secret.name, "key": hf.token_secret.key}},
            }
        )
    return {
        "name": "download-model",
        "image": spec.image,
        **({"imagePullPolicy": spec.image_pull_policy} if spec.image_pull_policy else {}),
        "command": ["python", "-c", script, hf.repo, hf.revision or "", model_path(spec)],
        "env": env,
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}},
        "securityContext": _restricted_container_security(),
        "volumeMounts": [m for m in mounts if m["name"] in ("cache", "tmp")],
    }


def _node_selector(spec: VideoModelSpec) -> dict[str, str]:
    selector = dict(spec.resources.node_selector)
    gpu = spec.resources.gpu
    if gpu.type and gpu.count > 0:
        selector.setdefault(gpu.product_label, gpu.type)
    return selector


def _pod_spec(cr: VideoModel, plan: Plan, size: Sizing) -> Obj:
    spec = cr.spec
    volumes, mounts = _volumes(cr, size)
    resources: Obj = {
        "requests": {"cpu": format_cpu(size.cpu_milli), "memory": format_bytes(size.memory_bytes)},
        "limits": {"memory": format_bytes(size.memory_bytes)},
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
        "ports": [{"name": "http", "containerPort": SERVER_PORT, "protocol": "TCP"}],
        "resources": resources,
        "startupProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": startup_period,
            "timeoutSeconds": 5,
            "failureThreshold": math.ceil(spec.lifecycle.startup_timeout_seconds / startup_period),
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
        "securityContext": _restricted_container_security(),
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
        "volumes": volumes,
    }
    init = _download_init_container(spec, mounts)
    if init is not None:
        pod["initContainers"] = [init]
    node_selector = _node_selector(spec)
    if node_selector:
        pod["nodeSelector"] = node_selector
    if spec.resources.tolerations:
        pod["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in spec.resources.tolerations]
    if spec.resources.affinity:
        pod["affinity"] = spec.resources.affinity
    if spec.resources.runtime_class_name:
        pod["runtimeClassName"] = spec.resources.runtime_class_name
    if spec.resources.priority_class_name:
        pod["priorityClassName"] = spec.resources.priority_class_name
    if spec.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s.name} for s in spec.image_pull_secrets]
    return pod


def config_hash(pod_spec: Obj, serving_json: str) -> str:
    """Digest of what the pods consume: the pod spec and the budget file they read (canonical JSON).

    The ConfigMap's human-readable ``plan.txt`` and ``plan.json`` are not read by the pods and
    stay out, so rewording them never restarts a model.
    """
    canonical = json.dumps({"pod": pod_spec, "serving": serving_json}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def render_config_map(cr: VideoModel, plan: Plan) -> Obj:
    """The budget file the server reads, and the plan for people (``kubectl get cm -o yaml``)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(cr, config_map_name(cr.metadata.name), "plan"),
        "data": {
            BUDGET_FILE_KEY: serving_contract(cr.spec, plan).to_json(),
            "plan.json": json.dumps(plan.to_dict(), indent=2) + "\n",
            "plan.txt": plan_table(plan),
        },
    }


def render_deployment(cr: VideoModel, plan: Plan) -> Obj:
    spec = cr.spec
    size = sizing(spec, plan)
    pod = _pod_spec(cr, plan, size)
    digest = config_hash(pod, serving_contract(spec, plan).to_json())
    name = cr.metadata.name
    deployment_spec: Obj = {
        "selector": {"matchLabels": selector_labels(name)},
        "strategy": {
            # No spare GPU is needed to roll: take one pod down, then bring the new one up.
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
        },
        "progressDeadlineSeconds": spec.lifecycle.startup_timeout_seconds + 600,
        "revisionHistoryLimit": 3,
        "template": {
            "metadata": {"labels": _labels(cr), "annotations": {HASH_ANNOTATION: digest}},
            "spec": pod,
        },
    }
    if spec.autoscaling is None:
        # With autoscaling the HPA owns .spec.replicas; applying it here would fight the HPA.
        deployment_spec = {"replicas": spec.desired_replicas, **deployment_spec}
    metadata = _metadata(cr, name)
    metadata["annotations"] = {HASH_ANNOTATION: digest}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": deployment_spec}


def render_service(cr: VideoModel) -> Obj:
    spec = cr.spec
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(cr, cr.metadata.name),
        "spec": {
            "type": spec.service.type.value,
            "selector": selector_labels(cr.metadata.name),
            "ports": [{"name": "http", "port": spec.service.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def render_network_policy(cr: VideoModel) -> Obj:
    egress_ports = [{"protocol": "TCP", "port": 443}]
    if cr.spec.security.allow_http:
        egress_ports.append({"protocol": "TCP", "port": 80})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(cr, cr.metadata.name),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(cr.metadata.name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": SERVER_PORT}]}],
            "egress": [
                # DNS wherever the cluster runs it (kube-dns pods or a node-local cache).
                {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                # Media and model hubs on the public internet; never cluster-private ranges or
                # the cloud metadata address (defence in depth behind the server's SSRF guard).
                {
                    "to": [
                        {"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_V4)}},
                        {"ipBlock": {"cidr": "::/0", "except": list(PRIVATE_V6)}},
                    ],
                    "ports": egress_ports,
                },
            ],
        },
    }


def render_pdb(cr: VideoModel) -> Obj | None:
    spec = cr.spec
    many = spec.autoscaling.max_replicas > 1 if spec.autoscaling is not None else spec.desired_replicas > 1
    if not many:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(cr, cr.metadata.name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(cr.metadata.name)}},
    }


def render_hpa(cr: VideoModel) -> Obj | None:
    auto = cr.spec.autoscaling
    if auto is None:
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(cr, cr.metadata.name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": cr.metadata.name},
            "minReplicas": auto.min_replicas,
            "maxReplicas": auto.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": auto.metric.name},
                        "target": {
                            "type": "AverageValue",
                            "averageValue": format_decimal_milli(parse_cpu(auto.metric.average_value)),
                        },
                    },
                }
            ],
            # A new replica needs a GPU and minutes to load: scale down slowly.
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}},
        },
    }


def render_service_monitor(cr: VideoModel, caps: Capabilities) -> Obj | None:
    if not (caps.service_monitor and cr.spec.monitoring.service_monitor):
        return None
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _metadata(cr, cr.metadata.name),
        "spec": {
            "selector": {"matchLabels": selector_labels(cr.metadata.name)},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": cr.spec.monitoring.interval}],
        },
    }


def render(cr: VideoModel, plan: Plan, caps: Capabilities | None = None) -> list[Obj]:
    """Every object the operator applies for ``cr``, in apply order (config before workload)."""
    caps = caps or Capabilities()
    optional = [render_pdb(cr), render_hpa(cr), render_service_monitor(cr, caps)]
    return [
        render_config_map(cr, plan),
        render_service(cr),
        render_network_policy(cr),
        render_deployment(cr, plan),
        *[obj for obj in optional if obj is not None],
    ]


MANAGED_KINDS: tuple[tuple[str, str, str], ...] = (
    ("", "v1", "configmaps"),
    ("", "v1", "services"),
    ("networking.k8s.io", "v1", "networkpolicies"),
    ("apps", "v1", "deployments"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("monitoring.coreos.com", "v1", "servicemonitors"),
)
"""(group, version, plural) of every kind render() may return, for RBAC and pruning."""
