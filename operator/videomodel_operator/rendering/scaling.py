"""How many replicas run and how they are watched: the PDB, the HPA, the ServiceMonitor.

Pure. The HPA scales on a per-pod gauge that keeps growing under load: by default
:data:`LOAD_METRIC`, the requests a replica holds in flight plus those queued for admission. The
target is the server's admission cap (``max_concurrent_requests`` from the serving contract), so
a replica that is exactly full sits at the target and any queue asks for more replicas. A gauge
of admitted requests alone can never exceed the cap, so it could never scale out.
"""

from __future__ import annotations

from videomodel_server.budget.contract import ServingContract

from ..spec import DEFAULT_AUTOSCALING_METRIC, VideoModel
from ..units import format_decimal_milli, parse_cpu
from .common import Obj, metadata, selector_labels

LOAD_METRIC = DEFAULT_AUTOSCALING_METRIC
"""``videomodel_requests_outstanding``: in flight plus queued for admission, per replica."""


def render_pdb(cr: VideoModel) -> Obj | None:
    spec = cr.spec
    many = spec.autoscaling.max_replicas > 1 if spec.autoscaling is not None else spec.desired_replicas > 1
    if not many:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(cr, cr.metadata.name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(cr.metadata.name)}},
    }


def hpa_target(cr: VideoModel, contract: ServingContract) -> str:
    """The per-pod average the HPA aims at: the CR's, else the admission cap of the server's ``contract``."""
    auto = cr.spec.autoscaling
    assert auto is not None
    if auto.metric.average_value is not None:
        return format_decimal_milli(parse_cpu(auto.metric.average_value))
    return str(contract.admission.max_concurrent_requests)


def render_hpa(cr: VideoModel, contract: ServingContract) -> Obj | None:
    auto = cr.spec.autoscaling
    if auto is None:
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(cr, cr.metadata.name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": cr.metadata.name},
            "minReplicas": auto.min_replicas,
            "maxReplicas": auto.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": auto.metric.name},
                        "target": {"type": "AverageValue", "averageValue": hpa_target(cr, contract)},
                    },
                }
            ],
            # A new replica needs a GPU and minutes to load: scale down slowly.
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}},
        },
    }


def render_service_monitor(cr: VideoModel, service_monitor: bool) -> Obj | None:
    monitoring = cr.spec.monitoring
    if not (service_monitor and monitoring.service_monitor):
        return None
    meta = metadata(cr, cr.metadata.name)
    if monitoring.labels:
        # kube-prometheus-stack selects ServiceMonitors by label (e.g. release: prometheus).
        meta["labels"] = {**monitoring.labels, **meta["labels"]}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": selector_labels(cr.metadata.name)},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": monitoring.interval}],
        },
    }
