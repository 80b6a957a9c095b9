"""``render(cr, plan) -> [objects]``: every child object of a VideoModel, as plain dicts.

Pure: no I/O, clock or environment. The operator applies exactly this list (server-side apply);
``videomodel render`` prints it. Rules the rest of the system relies on:

- Never emit ``None`` or an empty map/list the API server would drop: the operator compares
  the rendered objects with the live ones to skip no-op writes, so what is rendered must be
  what the server stores. Quantities are printed in the server's canonical form for the same
  reason (:mod:`videomodel_operator.units`).
- The pod template carries ``videomodel.io/config-hash``: a digest of what the pods consume.

Laid out by job, each module importing only those listed before it (pyproject.toml's import
contracts check it): :mod:`.common` (names, labels, metadata), :mod:`.sizing` (CPU, memory,
disk, and the admission settings the CPU implies), :mod:`.server` (the serving contract and the
command line), then, independent of each other, :mod:`.workload` (ConfigMap, pod, Deployment,
config hash), :mod:`.networking` (Service, NetworkPolicy) and :mod:`.scaling` (PDB, HPA,
ServiceMonitor). Objects that read the serving contract are given it by :func:`render`.
"""

from __future__ import annotations

from videomodel_server.budget import Plan

from ..spec import VideoModel
from .common import (
    FIELD_MANAGER,
    HASH_ANNOTATION,
    MANAGED_BY,
    Capabilities,
    Obj,
    config_map_name,
    selector_labels,
    selector_string,
    service_url,
)
from .networking import render_network_policy, render_service
from .scaling import LOAD_METRIC, render_hpa, render_pdb, render_service_monitor
from .server import model_path, server_args, serving_contract
from .sizing import Sizing, sizing
from .workload import (
    REPLICAS_ANNOTATION,
    REPLICAS_BY_AUTOSCALER,
    REPLICAS_BY_OPERATOR,
    config_hash,
    keep_live_selector,
    render_config_map,
    render_deployment,
)


def render(cr: VideoModel, plan: Plan, caps: Capabilities | None = None) -> list[Obj]:
    """Every object the operator applies for ``cr``, in apply order (config before workload).

    The serving contract is derived once, here: the ConfigMap carries it, the pod is sized and
    hashed for it and the HPA aims at its admission cap.
    """
    caps = caps or Capabilities()
    contract = serving_contract(cr.spec, plan)
    optional = [render_pdb(cr), render_hpa(cr, contract), render_service_monitor(cr, caps.service_monitor)]
    return [
        render_config_map(cr, plan, contract),
        render_service(cr),
        render_network_policy(cr),
        render_deployment(cr, plan, contract),
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

__all__ = [
    "FIELD_MANAGER",
    "HASH_ANNOTATION",
    "LOAD_METRIC",
    "MANAGED_BY",
    "MANAGED_KINDS",
    "REPLICAS_ANNOTATION",
    "REPLICAS_BY_AUTOSCALER",
    "REPLICAS_BY_OPERATOR",
    "Capabilities",
    "Sizing",
    "config_hash",
    "config_map_name",
    "keep_live_selector",
    "model_path",
    "render",
    "render_config_map",
    "render_deployment",
    "render_hpa",
    "render_network_policy",
    "render_pdb",
    "render_service",
    "render_service_monitor",
    "selector_labels",
    "selector_string",
    "server_args",
    "service_url",
    "serving_contract",
    "sizing",
]
