"""The ``VideoModel`` custom resource: its spec as pydantic models, validated once at the edge.

This package is the single source of truth for the CR's shape: the CRD in ``crds/`` is
generated from it (:mod:`videomodel_operator.crdgen`), the CLI and the operator parse CRs with
it. Field names are the camelCase of the CR; Python attributes are snake_case.

Laid out by job: :mod:`.base` (API names, base model, field types), :mod:`.kube`
(Kubernetes-native pieces: tolerations, affinity, egress rules, env), :mod:`.sections` (model,
budget, admission, engine, resources, scaling, security...), :mod:`.resource` (the spec, the object,
parsing), :mod:`.conversions` (into the budget module's inputs).
"""

from __future__ import annotations

from .base import (
    API_VERSION,
    DEFAULT_IMAGE,
    GROUP,
    KIND,
    NAME_MAX,
    NAME_PATTERN,
    PLURAL,
    SERVER_PORT,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    SpecError,
)
from .kube import Affinity, EgressRule, EnvFromSource, EnvVar, LocalObjectReference, SecretKeyRef, Toleration
from .resource import RESERVED_ENV, ObjectMeta, VideoModel, VideoModelSpec, format_validation_error, parse_video_model
from .sections import (
    DEFAULT_AUTOSCALING_METRIC,
    Admission,
    Autoscaling,
    AutoscalingMetric,
    Budget,
    Dtype,
    Engine,
    Gpu,
    Lifecycle,
    ModelSection,
    ModelSource,
    Monitoring,
    Resources,
    Rollout,
    Security,
    Service,
    ServiceType,
)

__all__ = [
    "API_VERSION",
    "DEFAULT_AUTOSCALING_METRIC",
    "DEFAULT_IMAGE",
    "GROUP",
    "KIND",
    "NAME_MAX",
    "NAME_PATTERN",
    "PLURAL",
    "RESERVED_ENV",
    "SERVER_PORT",
    "SHORT_NAMES",
    "SINGULAR",
    "VERSION",
    "Admission",
    "Affinity",
    "Autoscaling",
    "AutoscalingMetric",
    "Budget",
    "Dtype",
    "EgressRule",
    "Engine",
    "EnvFromSource",
    "EnvVar",
    "Gpu",
    "Lifecycle",
    "LocalObjectReference",
    "ModelSection",
    "ModelSource",
    "Monitoring",
    "ObjectMeta",
    "Resources",
    "Rollout",
    "SecretKeyRef",
    "Security",
    "Service",
    "ServiceType",
    "SpecError",
    "Toleration",
    "VideoModel",
    "VideoModelSpec",
    "format_validation_error",
    "parse_video_model",
]
