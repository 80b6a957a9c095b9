"""The sections of a VideoModel's spec: what to serve, the budget, engine, resources, scaling.

Schema only: the conversions into the budget module's inputs live in :mod:`.conversions`.
Cross-field rules live twice on purpose: as CEL (``x-kubernetes-validations``) so the API
server rejects a bad CR at ``kubectl apply``, and as pydantic validators so the CLI and the
operator (which may meet a CR that predates a rule) say the same thing.
"""

from __future__ import annotations

from dataclasses import fields
from enum import StrEnum
from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from videomodel_server.budget import BUILTIN_MODELS, Family, VideoBudget, lookup
from videomodel_server.budget.contract import MAX_DECODE_THREADS, MAX_DERIVED_CONCURRENT_REQUESTS, AdmissionSettings

from ..units import QuantityError, format_bytes, parse_bandwidth, parse_bytes
from . import conversions
from .base import Bandwidth, ByteQuantity, DnsName, K8sName, Model, cel
from .engine_flags import extra_args_problems
from .kube import Affinity, EgressRule, SecretKeyRef, Toleration

DEFAULT_AUTOSCALING_METRIC = "videomodel_requests_outstanding"
"""The server's per-replica gauge of requests in flight plus queued for admission."""


# -- model ---------------------------------------------------------------------------------
class PvcSource(Model):
    """The checkpoint directory on a PersistentVolumeClaim, mounted read-only at ``/models``."""

    claim_name: K8sName = Field(description="Name of the PVC in the VideoModel's namespace.")
    path: str = Field(
        default="",
        max_length=1024,
        pattern=r"^[^/].*$|^$",
        description="Directory of the checkpoint inside the volume (relative, e.g. 'Qwen2-VL-7B-Instruct').",
    )


class HuggingFaceSource(Model):
    """Download from a model hub at start-up into the pod's cache volume or a shared cache PVC."""

    repo: str = Field(
        min_length=1, max_length=256, pattern=r"^[\w.-]+/[\w.-]+$", description="e.g. Qwen/Qwen2-VL-7B-Instruct"
    )
    revision: str | None = Field(default=None, max_length=128, description="Branch, tag or commit.")
    token_secret: SecretKeyRef | None = Field(default=None, description="Secret holding a hub token (HF_TOKEN).")
    cache_claim_name: K8sName | None = Field(
        default=None,
        description=(
            "PVC (ReadWriteMany for several replicas; its filesystem must support file locks) that "
            "keeps downloaded snapshots: a restart or a new replica only verifies the files instead of "
            "downloading the weights again. Without it the snapshot lives in the pod's emptyDir."
        ),
    )


class LocalSource(Model):
    """A path that already exists inside the container (baked into the image)."""

    path: str = Field(min_length=1, max_length=1024, description="Absolute or working-directory-relative path.")


class ModelSource(Model):
    """Where the weights come from: exactly one of ``pvc``, ``huggingFace``, ``local``."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "[has(self.pvc), has(self.huggingFace), has(self.local)].filter(x, x).size() == 1",
                    "set exactly one of pvc, huggingFace, local",
                )
            ]
        }
    )

    pvc: PvcSource | None = None
    hugging_face: HuggingFaceSource | None = None
    local: LocalSource | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSource:
        if sum(x is not None for x in (self.pvc, self.hugging_face, self.local)) != 1:
            raise ValueError("set exactly one of pvc, huggingFace, local")
        return self


class ModelSection(Model):
    """What to serve. ``name`` finds the built-in geometry table; every value can be overridden."""

    source: ModelSource
    name: str = Field(
        min_length=1,
        max_length=256,
        description="Model name for the built-in table (e.g. Qwen/Qwen2-VL-7B-Instruct) and the default served name.",
    )
    family: Family | None = Field(
        default=None, description="Model family; required when name is not in the built-in table."
    )
    served_name: str | None = Field(
        default=None, min_length=1, max_length=256, description="Name clients send as 'model'; defaults to name."
    )
    max_position_embeddings: int | None = Field(default=None, ge=64, le=16_777_216, description="Context override.")
    num_hidden_layers: int | None = Field(default=None, ge=1, le=1024)
    num_key_value_heads: int | None = Field(default=None, ge=1, le=1024)
    head_dim: int | None = Field(default=None, ge=1, le=4096)
    parameters: float | None = Field(default=None, gt=0, le=1e13, description="Total parameter count (weights).")

    @model_validator(mode="after")
    def _resolvable(self) -> ModelSection:
        builtin = lookup(self.name)
        if builtin is not None and self.family is not None and builtin.family != self.family:
            raise ValueError(
                f"family {self.family.value} contradicts the built-in {builtin.name} ({builtin.family.value})"
            )
        if builtin is None:
            missing = [
                camel
                for camel, value in (
                    ("family", self.family),
                    ("maxPositionEmbeddings", self.max_position_embeddings),
                    ("numHiddenLayers", self.num_hidden_layers),
                    ("numKeyValueHeads", self.num_key_value_heads),
                    ("headDim", self.head_dim),
                    ("parameters", self.parameters),
                )
                if value is None
            ]
            if missing:
                known = ", ".join(sorted(BUILTIN_MODELS))
                raise ValueError(
                    f"{self.name!r} is not a built-in model ({known}): set {', '.join(missing)} in spec.model"
                )
        return self


# -- budget --------------------------------------------------------------------------------

_BUDGET_FIELDS = {f.name: f for f in fields(VideoBudget)}


def _budget(name: str, **bounds: float) -> Any:
    """A CR budget field: default and description from :class:`VideoBudget`'s field ``name``.

    Quantity fields (``metadata["cr"]``) default to the canonical quantity string (``256Mi``).
    """
    f = _BUDGET_FIELDS[name]
    default = f.default
    if f.metadata.get("cr") in ("bytes", "bandwidth"):
        default = format_bytes(int(default))  # type: ignore[arg-type]
    unit = f" ({f.metadata['unit']})" if f.metadata.get("unit") else ""
    return Field(default=default, description=f.metadata["help"] + unit, **bounds)  # type: ignore[call-overload]


class Budget(Model):
    """The video budget: what users may send (camelCase of ``VideoBudget``; see docs/budget.md)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.minPixels) || !has(self.maxPixels) || self.minPixels <= self.maxPixels",
                    "minPixels must not exceed maxPixels",
                ),
                cel(
                    "!has(self.imageMinPixels) || !has(self.imageMaxPixels) || "
                    "self.imageMinPixels <= self.imageMaxPixels",
                    "imageMinPixels must not exceed imageMaxPixels",
                ),
                cel(
                    "self.videosPerPrompt + self.imagesPerPrompt > 0", "videosPerPrompt and imagesPerPrompt are both 0"
                ),
                cel(
                    "!has(self.totalPixels) || !has(self.minPixels) || self.totalPixels >= self.minPixels",
                    "totalPixels must be at least minPixels",
                ),
            ]
        }
    )

    max_seconds: float = _budget("max_seconds", gt=0, le=86_400)
    fps: float = _budget("fps", gt=0, le=60)
    max_frames: int = _budget("max_frames", ge=2, le=16_384)
    min_pixels: int | None = _budget("min_pixels", ge=1, le=100_000_000)
    max_pixels: int | None = _budget("max_pixels", ge=1, le=100_000_000)
    total_pixels: int | None = _budget("total_pixels", ge=1, le=10_000_000_000)
    videos_per_prompt: int = _budget("videos_per_prompt", ge=0, le=64)
    images_per_prompt: int = _budget("images_per_prompt", ge=0, le=256)
    image_min_pixels: int | None = _budget("image_min_pixels", ge=1, le=100_000_000)
    image_max_pixels: int | None = _budget("image_max_pixels", ge=1, le=100_000_000)
    max_video_bytes: ByteQuantity = _budget("max_video_bytes")
    max_prompt_tokens: int = _budget("max_prompt_tokens", ge=0, le=10_000_000)
    max_output_tokens: int = _budget("max_output_tokens", ge=1, le=10_000_000)
    min_fetch_bandwidth: Bandwidth = _budget("min_fetch_bandwidth")

    @model_validator(mode="after")
    def _consistent(self) -> Budget:
        if self.min_pixels is not None and self.max_pixels is not None and self.min_pixels > self.max_pixels:
            raise ValueError(f"minPixels ({self.min_pixels}) must not exceed maxPixels ({self.max_pixels})")
        if (
            self.image_min_pixels is not None
            and self.image_max_pixels is not None
            and self.image_min_pixels > self.image_max_pixels
        ):
            raise ValueError("imageMinPixels must not exceed imageMaxPixels")
        if self.videos_per_prompt + self.images_per_prompt == 0:
            raise ValueError("videosPerPrompt and imagesPerPrompt are both 0")
        if self.total_pixels is not None and self.min_pixels is not None and self.total_pixels < self.min_pixels:
            raise ValueError("totalPixels must be at least minPixels")
        try:
            parse_bytes(self.max_video_bytes)
            parse_bandwidth(self.min_fetch_bandwidth)
        except QuantityError as exc:
            raise ValueError(str(exc)) from exc
        if parse_bytes(self.max_video_bytes) == 0:
            raise ValueError("maxVideoBytes must be positive")
        return self

    def to_budget(self) -> VideoBudget:
        """The budget module's :class:`VideoBudget` (see :func:`.conversions.video_budget`)."""
        return conversions.video_budget(self)


# -- admission -----------------------------------------------------------------------------

_ADMISSION_FIELDS = {f.name: f for f in fields(AdmissionSettings)}


def _admission(name: str, derived: str, **bounds: int) -> Any:
    """A CR admission field: unset (derived), its description from :class:`AdmissionSettings`."""
    help_text = _ADMISSION_FIELDS[name].metadata["help"]
    return Field(default=None, description=f"{help_text} Default: {derived}.", **bounds)  # type: ignore[call-overload]


class Admission(Model):
    """How much work one replica takes on at once; unset fields are derived from the plan and the pod's CPU."""

    max_concurrent_requests: int | None = _admission(
        "max_concurrent_requests",
        "the requests the GPU memory holds at the full budget (status.plan.concurrentRequests), "
        f"at most {MAX_DERIVED_CONCURRENT_REQUESTS}",
        ge=1,
        le=4096,
    )
    decode_workers: int | None = _admission(
        "decode_workers",
        "one per CPU of the request left for decoding, at most one per video that can be decoding at once",
        ge=1,
        le=256,
    )
    decode_threads: int | None = _admission(
        "decode_threads", "one per CPU of the request left for decoding", ge=0, le=MAX_DECODE_THREADS
    )


# -- engine, resources ---------------------------------------------------------------------


class Dtype(StrEnum):
    AUTO = "auto"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"
    FLOAT32 = "float32"

    @property
    def bytes(self) -> int:
        return 4 if self is Dtype.FLOAT32 else 2


class Engine(Model):
    """vLLM engine settings the budget does not decide."""

    tensor_parallel_size: int | None = Field(
        default=None, ge=1, le=64, description="GPUs per replica used by the engine; defaults to resources.gpu.count."
    )
    dtype: Dtype = Field(default=Dtype.AUTO, description="Weights and KV cache dtype (auto = checkpoint's, bf16).")
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=0.99, description="Fraction of GPU memory vLLM takes.")
    extra_args: list[Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=list,
        max_length=64,
        description="Any other vLLM engine flag, passed through after '--' (e.g. ['--enable-prefix-caching', "
        "'--max-num-seqs', '8']). Checked against vLLM's own engine-argument parser; flags the operator derives "
        "from the budget (--max-model-len, --limit-mm-per-prompt, --mm-processor-cache-gb, --mm-encoder-tp-mode...) "
        "are refused.",
    )

    @model_validator(mode="after")
    def _check_extra_args(self) -> Engine:
        problems = extra_args_problems(self.extra_args)
        if problems:
            raise ValueError("extraArgs: " + "; ".join(problems))
        return self


class Gpu(Model):
    count: int = Field(default=1, ge=0, le=64, description="GPUs per replica; 0 serves on CPU.")
    type: str | None = Field(
        default=None, max_length=128, description="GPU product (e.g. NVIDIA-L4); adds a node selector on productLabel."
    )
    memory: ByteQuantity = Field(default="80Gi", description="Memory per GPU (e.g. 80Gi, 24Gi).")
    resource_name: str = Field(default="nvidia.com/gpu", max_length=253, description="Extended resource name.")
    product_label: str = Field(
        default="nvidia.com/gpu.product", max_length=317, description="Node label matched against type."
    )

    @model_validator(mode="after")
    def _memory(self) -> Gpu:
        try:
            if parse_bytes(self.memory) <= 0:
                raise ValueError("gpu.memory must be positive")
        except QuantityError as exc:
            raise ValueError(str(exc)) from exc
        return self


class Resources(Model):
    """What one replica gets and where it may run. Unset CPU/memory are sized from the budget."""

    gpu: Gpu = Field(default_factory=Gpu)
    cpu: str | None = Field(default=None, pattern=r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$", description="CPU request.")
    memory: ByteQuantity | None = Field(default=None, description="Memory request and limit (e.g. 32Gi).")
    shm_size: ByteQuantity | None = Field(default=None, description="/dev/shm size limit; sized from the budget.")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    affinity: Affinity | None = Field(default=None, description="A core/v1 Affinity.")
    runtime_class_name: str | None = Field(default=None, max_length=253)
    priority_class_name: str | None = Field(default=None, max_length=253)

    @model_validator(mode="after")
    def _quantities(self) -> Resources:
        try:
            for value in (self.memory, self.shm_size):
                if value is not None:
                    parse_bytes(value)
        except QuantityError as exc:
            raise ValueError(str(exc)) from exc
        return self


# -- scaling, rollout, service, security, lifecycle, monitoring ------------------------------


class AutoscalingMetric(Model):
    """A per-pod metric (served through a custom-metrics adapter) and its target average."""

    name: str = Field(default=DEFAULT_AUTOSCALING_METRIC, min_length=1, max_length=253)
    average_value: str | None = Field(
        default=None,
        pattern=r"^[0-9]+(\.[0-9]+)?m?$",
        description="Target per pod; default: the server's admission cap (max_concurrent_requests).",
    )


class Autoscaling(Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self.minReplicas <= self.maxReplicas", "autoscaling.minReplicas must not exceed maxReplicas")
            ]
        }
    )

    min_replicas: int = Field(default=1, ge=1, le=1000)
    max_replicas: int = Field(ge=1, le=1000)
    metric: AutoscalingMetric = Field(default_factory=AutoscalingMetric)

    @model_validator(mode="after")
    def _order(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"autoscaling.minReplicas ({self.min_replicas}) must not exceed maxReplicas ({self.max_replicas})"
            )
        return self


class ServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"


class Service(Model):
    port: int = Field(default=8000, ge=1, le=65535, description="Service port (the API, /health and /metrics).")
    type: ServiceType = ServiceType.CLUSTER_IP


class Security(Model):
    allowed_media_domains: list[DnsName] = Field(
        default_factory=list, max_length=256, description="If set, media URLs must be on these domains (or below)."
    )
    local_media_path: str | None = Field(
        default=None, pattern=r"^/.*", max_length=1024, description="Root for file:// media inside the pod."
    )
    local_media_claim_name: K8sName | None = Field(default=None, description="PVC mounted read-only at localMediaPath.")
    api_key_secret: SecretKeyRef | None = Field(default=None, description="Bearer key for every API route.")
    allow_http: bool = Field(default=False, description="Allow plain http:// media URLs (https only by default).")
    extra_egress: list[EgressRule] = Field(
        default_factory=list,
        max_length=32,
        description="NetworkPolicy egress rules added to DNS and public HTTPS (a proxy, a private object store).",
    )

    @model_validator(mode="after")
    def _claim_needs_path(self) -> Security:
        if self.local_media_claim_name and not self.local_media_path:
            raise ValueError("security.localMediaClaimName needs security.localMediaPath")
        return self


class Lifecycle(Model):
    startup_timeout_seconds: int | None = Field(
        default=None,
        ge=60,
        le=14_400,
        description=(
            "How long a model load may take before the pod restarts. Default: derived from the weight "
            "size (at least 1800 s), like the Deployment's progress deadline, which also counts the download."
        ),
    )
    drain_seconds: int = Field(default=120, ge=0, le=3600, description="Grace for in-flight requests on shutdown.")
    pre_stop_seconds: int = Field(default=10, ge=0, le=300, description="Pause before SIGTERM (endpoint removal).")


class Monitoring(Model):
    service_monitor: bool = Field(default=True, description="Create a ServiceMonitor when its CRD exists.")
    interval: str = Field(default="30s", pattern=r"^[0-9]+(s|m)$")
    labels: dict[str, str] = Field(
        default_factory=dict, description="Extra ServiceMonitor labels (kube-prometheus-stack selects by label)."
    )


class Rollout(Model):
    """The Deployment's rolling update. Default: no spare GPU needed (one down, then one up)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self.maxSurge + self.maxUnavailable > 0", "rollout.maxSurge and maxUnavailable are both 0")
            ]
        }
    )

    max_surge: int = Field(default=0, ge=0, le=1000, description="Extra pods during a rollout (each needs GPUs).")
    max_unavailable: int = Field(default=1, ge=0, le=1000, description="Pods that may be down during a rollout.")

    @model_validator(mode="after")
    def _moves(self) -> Rollout:
        if self.max_surge + self.max_unavailable == 0:
            raise ValueError("rollout.maxSurge and maxUnavailable are both 0: the rollout could never move")
        return self
