"""How the model is reached and what it may reach: the Service and the NetworkPolicy.

Pure. The NetworkPolicy (docs/security.md#network-policy) lets in only the API port, and lets out DNS to the
cluster's resolvers only (kube-dns in ``kube-system`` or a node-local cache), HTTPS (and HTTP
when allowed) to the public internet, never to cluster-private ranges or the cloud metadata
address, plus whatever the CR lists in ``security.extraEgress`` (a proxy, a private store).
"""

from __future__ import annotations

from ..spec import SERVER_PORT, VideoModel
from .common import Obj, metadata, selector_labels

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

DNS_NAMESPACE = "kube-system"
DNS_POD_LABELS = {"k8s-app": "kube-dns"}
"""The label kube-dns and CoreDNS deployments carry (kubeadm, GKE, EKS, AKS)."""
NODE_LOCAL_DNS = "169.254.20.10/32"
"""NodeLocal DNSCache's default link-local listen address."""


def render_service(cr: VideoModel) -> Obj:
    spec = cr.spec
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(cr, cr.metadata.name),
        "spec": {
            "type": spec.service.type.value,
            "selector": selector_labels(cr.metadata.name),
            "ports": [{"name": "http", "port": spec.service.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def dns_egress() -> Obj:
    """Port 53 to the cluster DNS only: kube-dns pods in kube-system, or the node-local cache."""
    return {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": DNS_NAMESPACE}},
                "podSelector": {"matchLabels": dict(DNS_POD_LABELS)},
            },
            {"ipBlock": {"cidr": NODE_LOCAL_DNS}},
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }


def render_network_policy(cr: VideoModel) -> Obj:
    egress_ports = [{"protocol": "TCP", "port": 443}]
    if cr.spec.security.allow_http:
        egress_ports.append({"protocol": "TCP", "port": 80})
    egress: list[Obj] = [
        dns_egress(),
        # Media and model hubs on the public internet; never cluster-private ranges or the
        # cloud metadata address (defence in depth behind the server's SSRF guard).
        {
            "to": [
                {"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_V4)}},
                {"ipBlock": {"cidr": "::/0", "except": list(PRIVATE_V6)}},
            ],
            "ports": egress_ports,
        },
    ]
    egress += [rule.model_dump(by_alias=True, exclude_none=True) for rule in cr.spec.security.extra_egress]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(cr, cr.metadata.name),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(cr.metadata.name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": SERVER_PORT}]}],
            "egress": egress,
        },
    }
