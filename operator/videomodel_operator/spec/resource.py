"""The whole VideoModel: the spec, the metadata the operator reads, and parsing at the edge."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from videomodel_server.budget import GpuSpec, ModelSpec, VideoBudget

from . import conversions
from .base import DEFAULT_IMAGE, NAME_MAX, NAME_PATTERN, Model, SpecError, cel
from .kube import EnvFromSource, EnvVar, LocalObjectReference
from .sections import (
    Admission,
    Autoscaling,
    Budget,
    Engine,
    Lifecycle,
    ModelSection,
    Monitoring,
    Resources,
    Rollout,
    Security,
    Service,
)

RESERVED_ENV = frozenset(
    {"HOME", "XDG_CACHE_HOME", "HF_HOME", "HF_HUB_OFFLINE", "VLLM_NO_USAGE_STATS", "DO_NOT_TRACK", "VIDEOMODEL_API_KEY"}
)
"""Environment variables the operator sets itself; ``spec.env`` may not override them."""


class VideoModelSpec(Model):
    """``spec`` of a VideoModel."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("!(has(self.replicas) && has(self.autoscaling))", "set replicas or autoscaling, not both"),
                cel(
                    "!has(self.engine) || !has(self.engine.tensorParallelSize) || "
                    "self.engine.tensorParallelSize <= (has(self.resources) && has(self.resources.gpu) && "
                    "self.resources.gpu.count > 0 ? self.resources.gpu.count : 1)",
                    "engine.tensorParallelSize must not exceed resources.gpu.count",
                ),
            ]
        }
    )

    model: ModelSection
    budget: Budget = Field(default_factory=Budget)
    engine: Engine = Field(default_factory=Engine)
    resources: Resources = Field(default_factory=Resources)
    admission: Admission = Field(default_factory=Admission)
    image: str = Field(default=DEFAULT_IMAGE, min_length=1, max_length=512)
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    image_pull_secrets: list[LocalObjectReference] = Field(default_factory=list)
    replicas: int | None = Field(default=None, ge=0, le=1000, description="Fixed replicas (default 1).")
    autoscaling: Autoscaling | None = None
    service: Service = Field(default_factory=Service)
    security: Security = Field(default_factory=Security)
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    rollout: Rollout = Field(default_factory=Rollout)
    env: list[EnvVar] = Field(default_factory=list, max_length=128, description="Extra server environment.")
    env_from: list[EnvFromSource] = Field(
        default_factory=list, max_length=32, description="Env from Secrets/ConfigMaps."
    )

    @model_validator(mode="after")
    def _cross(self) -> VideoModelSpec:
        if self.replicas is not None and self.autoscaling is not None:
            raise ValueError("set replicas or autoscaling, not both")
        tp = self.engine.tensor_parallel_size
        if tp is not None and tp > max(1, self.resources.gpu.count):
            raise ValueError(
                f"engine.tensorParallelSize ({tp}) must not exceed resources.gpu.count ({self.resources.gpu.count})"
            )
        reserved = sorted({e.name for e in self.env} & RESERVED_ENV)
        if reserved:
            raise ValueError(f"env: {', '.join(reserved)} are set by the operator and cannot be overridden")
        return self

    @property
    def tensor_parallel_size(self) -> int:
        if self.engine.tensor_parallel_size is not None:
            return self.engine.tensor_parallel_size
        return max(1, self.resources.gpu.count)

    @property
    def served_name(self) -> str:
        return self.model.served_name or self.model.name

    @property
    def desired_replicas(self) -> int:
        """Replicas the workload should run now (autoscaling starts at its minimum)."""
        if self.autoscaling is not None:
            return self.autoscaling.min_replicas
        return 1 if self.replicas is None else self.replicas

    # The budget module's inputs (:mod:`.conversions` does the work).

    def to_budget(self) -> VideoBudget:
        return self.budget.to_budget()

    def to_model_spec(self) -> ModelSpec:
        return conversions.model_spec(self.model)

    def to_gpu_spec(self) -> GpuSpec:
        return conversions.gpu_spec(self.resources.gpu, self.engine, self.tensor_parallel_size)


class ObjectMeta(BaseModel):
    """The metadata fields the operator reads; everything else is ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=NAME_MAX, pattern=NAME_PATTERN)] = Field(
        description="A DNS-1035 label of at most 58 characters: it names the Service and is a label value."
    )
    namespace: str = "default"
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class VideoModel(BaseModel):
    """A parsed VideoModel: metadata plus a validated spec."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    api_version: Literal["videomodel.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["VideoModel"]
    metadata: ObjectMeta
    spec: VideoModelSpec


def parse_video_model(body: dict[str, Any]) -> VideoModel:
    """Validate a VideoModel body; raise :class:`SpecError` with every problem in one message."""
    try:
        return VideoModel.model_validate(body)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc)) from None


def format_validation_error(exc: ValidationError) -> str:
    """``spec.budget.fps: Input should be greater than 0`` lines, without pydantic's URLs."""
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(root)"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return "; ".join(lines)
