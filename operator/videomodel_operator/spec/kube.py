"""Kubernetes-native pieces of the spec (tolerations, affinity, egress rules, env), typed.

Typed after the core/v1 and networking/v1 schemas, with unknown fields rejected, so a typo in
``affinity`` or an ``Exists`` toleration with a value fails at ``kubectl apply`` (the CRD) and
in ``videomodel render`` (this model), not when the operator applies the Deployment.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from .base import K8sName, Model, cel

LabelKey = str


class LocalObjectReference(Model):
    name: K8sName


class SecretKeyRef(Model):
    name: K8sName
    key: str = Field(default="api-key", min_length=1, max_length=253)


# -- tolerations -----------------------------------------------------------------------------


class Toleration(Model):
    """A core/v1 Toleration, with the API server's rules checked up front."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
                    "a toleration with operator Exists must not set value",
                ),
                cel(
                    "(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
                    "a toleration without key must use operator Exists",
                ),
                cel(
                    "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
                    "tolerationSeconds needs effect NoExecute",
                ),
            ]
        }
    )

    key: str | None = Field(default=None, max_length=317)
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = Field(default=None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None

    @model_validator(mode="after")
    def _api_rules(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError(f"toleration {self.key or '(any key)'}: operator Exists must not set value")
        if not self.key and self.operator != "Exists":
            raise ValueError("a toleration without key must use operator Exists")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds needs effect NoExecute")
        return self


# -- affinity --------------------------------------------------------------------------------


class LabelSelectorRequirement(Model):
    key: LabelKey = Field(min_length=1, max_length=317)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = None


class LabelSelector(Model):
    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


class NodeSelectorRequirement(Model):
    key: LabelKey = Field(min_length=1, max_length=317)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    values: list[str] | None = None


class NodeSelectorTerm(Model):
    match_expressions: list[NodeSelectorRequirement] | None = None
    match_fields: list[NodeSelectorRequirement] | None = None


class NodeSelector(Model):
    node_selector_terms: list[NodeSelectorTerm]


class PreferredSchedulingTerm(Model):
    weight: int = Field(ge=1, le=100)
    preference: NodeSelectorTerm


class NodeAffinity(Model):
    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] | None = None


class PodAffinityTerm(Model):
    label_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    namespaces: list[str] | None = None
    topology_key: str = Field(min_length=1, max_length=317)
    match_label_keys: list[str] | None = None
    mismatch_label_keys: list[str] | None = None


class WeightedPodAffinityTerm(Model):
    weight: int = Field(ge=1, le=100)
    pod_affinity_term: PodAffinityTerm


class PodAffinity(Model):
    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] | None = None
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] | None = None


class Affinity(Model):
    """A core/v1 Affinity (node, pod and pod anti-affinity)."""

    node_affinity: NodeAffinity | None = None
    pod_affinity: PodAffinity | None = None
    pod_anti_affinity: PodAffinity | None = None


# -- network policy --------------------------------------------------------------------------


class IpBlock(Model):
    cidr: str = Field(min_length=1, max_length=64)
    except_: list[str] | None = Field(default=None, alias="except")


class NetworkPolicyPeer(Model):
    ip_block: IpBlock | None = None
    namespace_selector: LabelSelector | None = None
    pod_selector: LabelSelector | None = None


class NetworkPolicyPort(Model):
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    port: int | None = Field(default=None, ge=1, le=65535)
    end_port: int | None = Field(default=None, ge=1, le=65535)


class EgressRule(Model):
    """A networking/v1 NetworkPolicyEgressRule: extra destinations (a proxy, a private store)."""

    to: list[NetworkPolicyPeer] | None = None
    ports: list[NetworkPolicyPort] | None = None


# -- environment -----------------------------------------------------------------------------


class KeyRef(Model):
    name: K8sName
    key: str = Field(min_length=1, max_length=253)
    optional: bool | None = None


class EnvVarSource(Model):
    secret_key_ref: KeyRef | None = None
    config_map_key_ref: KeyRef | None = None


class EnvVar(Model):
    name: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
    value: str | None = None
    value_from: EnvVarSource | None = None


class EnvFromRef(Model):
    name: K8sName
    optional: bool | None = None


class EnvFromSource(Model):
    prefix: str | None = Field(default=None, max_length=253)
    config_map_ref: EnvFromRef | None = None
    secret_ref: EnvFromRef | None = None
