"""Generate the VideoModel CRD from the pydantic spec model.

``python -m videomodel_operator.crdgen [--write]`` (or ``videomodel crd``) prints the CRD; with
``--write`` it rewrites ``crds/videomodels.videomodel.io.yaml``. A test fails when the checked-in
file and the model drift apart.

Pydantic emits JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3.0 schema. The
translation: inline every ``$ref``; turn ``Optional[X]`` (``anyOf`` with ``null``) into ``X``
(absence, not null, means unset); byte quantities become ``x-kubernetes-int-or-string`` with a
pattern; free-form objects become ``x-kubernetes-preserve-unknown-fields``; numeric
``exclusiveMinimum`` becomes the v3.0 boolean form; titles and ``additionalProperties: false``
(not allowed beside ``properties``) are dropped. The model's CEL rules ride along in
``x-kubernetes-validations``.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from .spec import GROUP, KIND, NAME_MAX, NAME_PATTERN, PLURAL, SHORT_NAMES, SINGULAR, VERSION, VideoModelSpec

Schema = dict[str, Any]

CRD_FILENAME = f"{PLURAL}.{GROUP}.yaml"
CONDITION_TYPES = ("Ready", "Progressing", "BudgetFits", "Degraded", "Stalled")

_DROP = {"title", "$defs"}


def _resolve(node: Any, defs: dict[str, Schema]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return _resolve({**target, **siblings}, defs)
    return {key: _resolve(value, defs) for key, value in node.items()}


def _convert(node: Schema) -> Schema:
    node = dict(node)
    if "anyOf" in node:
        variants = [v for v in node["anyOf"] if v.get("type") != "null"]
        nullable = len(variants) != len(node["anyOf"])
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if nullable and rest.get("default", "unset") is None:
            rest.pop("default")
        node = {**variants[0], **rest} if len(variants) == 1 else {"anyOf": variants, **rest}
    for marker in ("x-vm-quantity", "x-vm-bandwidth"):
        if marker in node:
            pattern = node.pop(marker)
            node.pop("anyOf", None)
            node.update(
                {
                    "anyOf": [{"type": "integer"}, {"type": "string"}],
                    "x-kubernetes-int-or-string": True,
                    "pattern": pattern,
                }
            )
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        raise ValueError(f"no structural form for anyOf {node['anyOf']}")
    for key in _DROP:
        node.pop(key, None)
    if "exclusiveMinimum" in node:
        node["minimum"] = node.pop("exclusiveMinimum")
        node["exclusiveMinimum"] = True
    if "exclusiveMaximum" in node:
        node["maximum"] = node.pop("exclusiveMaximum")
        node["exclusiveMaximum"] = True
    if node.get("additionalProperties") is False:
        node.pop("additionalProperties")
    elif node.get("additionalProperties") is True:
        node.pop("additionalProperties")
        node["x-kubernetes-preserve-unknown-fields"] = True
    elif isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = _convert(node["additionalProperties"])
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "properties" in node:
        node["properties"] = {name: _convert(sub) for name, sub in node["properties"].items()}
        node.setdefault("type", "object")
    if "items" in node:
        node["items"] = _convert(node["items"])
    if node.get("type") == "object" and "properties" not in node and "additionalProperties" not in node:
        node["x-kubernetes-preserve-unknown-fields"] = True
    return _order(node)


_KEY_ORDER = ("description", "type", "format", "enum", "default", "minimum", "exclusiveMinimum", "maximum")


def _order(node: Schema) -> Schema:
    """Stable, readable key order (description and type first)."""
    ordered = {k: node[k] for k in _KEY_ORDER if k in node}
    ordered.update({k: v for k, v in node.items() if k not in ordered})
    return ordered


def spec_schema() -> Schema:
    raw = VideoModelSpec.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    return _convert(_resolve(raw, defs))


def status_schema() -> Schema:
    condition = {
        "type": "object",
        "required": ["type", "status", "lastTransitionTime", "reason", "message"],
        "properties": {
            "type": {"type": "string", "maxLength": 316},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string", "maxLength": 1024},
            "message": {"type": "string", "maxLength": 32768},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
        },
    }
    return {
        "description": "Observed state, written by the operator. Derived values live here, never in spec.",
        "type": "object",
        "properties": {
            "observedGeneration": {"type": "integer", "format": "int64"},
            "conditions": {
                "description": f"Conditions of types {', '.join(CONDITION_TYPES)} (metav1.Condition).",
                "type": "array",
                "items": condition,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            "replicas": {"type": "integer", "format": "int32"},
            "readyReplicas": {"type": "integer", "format": "int32"},
            "ready": {"description": "readyReplicas/replicas, for kubectl get.", "type": "string"},
            "selector": {"description": "Pod label selector (for the scale subresource).", "type": "string"},
            "url": {"description": "In-cluster OpenAI-compatible base URL.", "type": "string"},
            "configHash": {"description": "Config hash of the last applied workload.", "type": "string"},
            "appliedGeneration": {
                "description": "The spec generation the running workload was rendered from.",
                "type": "integer",
                "format": "int64",
            },
            "plan": {
                "description": "The plan of the current spec (camelCase keys of the budget module's Plan).",
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
            },
            "appliedPlan": {
                "description": "The plan the running workload serves (differs from plan until a spec is applied).",
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
            },
        },
    }


PRINTER_COLUMNS = [
    {"name": "Model", "type": "string", "jsonPath": ".spec.model.name"},
    {"name": "Ready", "type": "string", "jsonPath": ".status.ready"},
    {"name": "Max video (s)", "type": "number", "jsonPath": ".status.appliedPlan.maxSeconds"},
    {"name": "Frames", "type": "integer", "jsonPath": ".status.appliedPlan.framesPerVideo"},
    {"name": "Context", "type": "integer", "jsonPath": ".status.appliedPlan.maxModelLen"},
    {"name": "GPUs", "type": "integer", "jsonPath": ".spec.resources.gpu.count"},
    {"name": "BudgetFits", "type": "string", "jsonPath": '.status.conditions[?(@.type=="BudgetFits")].status'},
    {"name": "Stalled", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Stalled")].reason', "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def crd() -> Schema:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "videomodel"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["all"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "description": "A vision-language model served with a declared video budget.",
                            "type": "object",
                            "required": ["spec"],
                            "x-kubernetes-validations": [
                                {
                                    "rule": f"self.metadata.name.matches('{NAME_PATTERN}') && "
                                    f"size(self.metadata.name) <= {NAME_MAX}",
                                    "message": f"metadata.name must be a DNS-1035 label of at most {NAME_MAX} "
                                    "characters (lowercase letters, digits and '-', starting with a letter): "
                                    "it names the Service and is a label value",
                                }
                            ],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


HEADER = "# Generated by `python -m videomodel_operator.crdgen --write` from videomodel_operator.spec. Do not edit.\n"


def crd_yaml() -> str:
    return HEADER + yaml.safe_dump(crd(), sort_keys=False, width=120)


def default_path() -> Path:
    return Path(__file__).resolve().parents[2] / "crds" / CRD_FILENAME


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m videomodel_operator.crdgen", description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite crds/{CRD_FILENAME} (and the chart's copy)")
    args = parser.parse_args(argv)
    text = crd_yaml()
    if not args.write:
        sys.stdout.write(text)
        return 0
    targets = [default_path(), default_path().parents[1] / "charts" / "videomodel-operator" / "crds" / CRD_FILENAME]
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        sys.stdout.write(f"wrote {target}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
