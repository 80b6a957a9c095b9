"""The CRD: generated from the spec model without drift, structural, and it accepts the examples
and rejects broken CRs (JSON-schema validation of the openAPIV3Schema; CEL parsed when a CEL
library is installed, and always checked to name only real fields)."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.harness.operator import EXAMPLES, FEASIBLE_EXAMPLES, INFEASIBLE_EXAMPLES, ROOT, load_body
from videomodel_operator.crdgen import CRD_FILENAME, crd, crd_yaml
from videomodel_operator.spec import SpecError, parse_video_model

CRD_PATH = ROOT / "crds" / CRD_FILENAME
CHART_CRD_PATH = ROOT / "charts" / "videomodel-operator" / "crds" / CRD_FILENAME


def test_checked_in_crd_matches_the_spec_model() -> None:
    expected = crd_yaml()
    for path in (CRD_PATH, CHART_CRD_PATH):
        assert path.read_text() == expected, f"{path} drifted: run python -m videomodel_operator.crdgen --write"


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_schema_is_structural() -> None:
    """Every node has a type (or is int-or-string / free-form); no $ref, no nullable unions."""
    for path, node in _walk(_schema()):
        assert "$ref" not in node, path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            continue
        assert "type" in node, f"{path} has no type"
        assert "anyOf" not in node and "oneOf" not in node, path
        assert node.get("additionalProperties") is not False, path
        if node["type"] == "object" and "properties" in node:
            assert "additionalProperties" not in node, path


def test_crd_declares_subresources_columns_and_names() -> None:
    spec = crd()["spec"]
    assert spec["names"]["shortNames"] == ["vidm"] and spec["scope"] == "Namespaced"
    version = spec["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert "status" in version["subresources"]
    names = [c["name"] for c in version["additionalPrinterColumns"]]
    assert names == ["Model", "Ready", "Max video (s)", "Frames", "Context", "GPUs", "BudgetFits", "Stalled", "Age"]
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    # The columns show what runs, not what was asked for (an infeasible edit is not applied).
    assert columns["Context"] == ".status.appliedPlan.maxModelLen"
    assert columns["Max video (s)"] == ".status.appliedPlan.maxSeconds"


def _validate(body: dict[str, Any]) -> None:
    # OpenAPI 3.0 schemas use draft-4 style boolean exclusiveMinimum; x-* keys are ignored.
    jsonschema.Draft4Validator(_schema()).validate(body)


@pytest.mark.parametrize("path", FEASIBLE_EXAMPLES + INFEASIBLE_EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_against_the_crd_schema(path: Path) -> None:
    _validate(load_body(path))


BAD_EDITS = {
    "unknown family": ("spec.model.family", "qwen9_vl"),
    "negative fps": ("spec.budget.fps", -1),
    "zero fps": ("spec.budget.fps", 0),
    "frames below 2": ("spec.budget.maxFrames", 1),
    "bad byte quantity": ("spec.budget.maxVideoBytes", "lots"),
    "bad bandwidth": ("spec.budget.minFetchBandwidth", "fast"),
    "utilization above 0.99": ("spec.engine.gpuMemoryUtilization", 1.5),
    "unknown dtype": ("spec.engine.dtype", "int3"),
    "string replicas": ("spec.replicas", "two"),
    "service type": ("spec.service.type", "ExternalName"),
    "port out of range": ("spec.service.port", 70000),
    "bad gpu memory": ("spec.resources.gpu.memory", "80 GB"),
}


def _set(body: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    *parents, leaf = dotted.split(".")
    node = body
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return body


@pytest.mark.parametrize("edit", sorted(BAD_EDITS), ids=str)
def test_bad_crs_fail_schema_validation_and_the_spec_model(edit: str) -> None:
    dotted, value = BAD_EDITS[edit]
    body = _set(load_body(EXAMPLES / "qwen2-vl-7b-a100.yaml"), dotted, value)
    with pytest.raises(jsonschema.ValidationError):
        _validate(body)
    with pytest.raises(SpecError):
        parse_video_model(body)


CROSS_FIELD: dict[str, dict[str, Any]] = {
    "minPixels above maxPixels": {"spec": {"budget": {"minPixels": 300000, "maxPixels": 200000}}},
    "replicas and autoscaling": {"spec": {"replicas": 2, "autoscaling": {"minReplicas": 1, "maxReplicas": 3}}},
    "autoscaling min above max": {"spec": {"replicas": None, "autoscaling": {"minReplicas": 4, "maxReplicas": 2}}},
    "two model sources": {"spec": {"model": {"source": {"local": {"path": "/m"}}}}},
    "tensor parallel above gpus": {"spec": {"engine": {"tensorParallelSize": 2}}},
    "no media at all": {"spec": {"budget": {"videosPerPrompt": 0, "imagesPerPrompt": 0}}},
    # Issue 8 defect 6: what the API server would refuse only at apply time of a child.
    "name not a DNS label": {"metadata": {"name": "qwen2.5-vl-7b"}},
    "name over 58 characters": {"metadata": {"name": "a" * 59}},
    "toleration Exists with a value": {
        "spec": {"resources": {"tolerations": [{"key": "gpu", "operator": "Exists", "value": "present"}]}}
    },
    "tolerationSeconds without NoExecute": {
        "spec": {"resources": {"tolerations": [{"key": "gpu", "operator": "Exists", "tolerationSeconds": 30}]}}
    },
    "rollout that cannot move": {"spec": {"rollout": {"maxSurge": 0, "maxUnavailable": 0}}},
}


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("case", sorted(CROSS_FIELD), ids=str)
def test_cross_field_rules_are_enforced_by_the_spec_model(case: str) -> None:
    """What the CEL rules reject at the API server, the spec model rejects in the CLI/operator."""
    body = _merge(load_body(EXAMPLES / "qwen2-vl-7b-a100.yaml"), CROSS_FIELD[case])
    with pytest.raises(SpecError):
        parse_video_model(body)


def _cel_rules() -> list[tuple[str, dict[str, Any], str]]:
    rules = []
    for path, node in _walk(_schema()):
        for rule in node.get("x-kubernetes-validations", []):
            rules.append((path, node, rule["rule"]))
    return rules


def test_cel_rules_exist_where_expected() -> None:
    where = {path for path, _, _ in _cel_rules()}
    assert {".spec", ".spec.budget", ".spec.autoscaling", ".spec.model.source"} <= where


def _resolve(node: dict[str, Any], dotted: list[str]) -> bool:
    for part in dotted:
        props = node.get("properties", {})
        if part not in props:
            return False
        node = props[part]
    return True


def test_cel_rules_reference_only_fields_of_their_schema() -> None:
    for path, node, rule in _cel_rules():
        for match in re.finditer(r"self((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", rule):
            fields = match.group(1).strip(".").split(".")
            if fields[-1] in ("size", "matches"):
                fields = fields[:-1]
            if fields[:2] == ["metadata", "name"]:
                continue  # the API server always serves metadata.name to root rules
            assert _resolve(node, fields), f"{path}: rule {rule!r} names unknown field self.{'.'.join(fields)}"
        assert rule.count("(") == rule.count(")"), rule


def test_cel_rules_parse() -> None:
    import celpy

    env = celpy.Environment()
    for _, _, rule in _cel_rules():
        env.compile(rule)


def _default(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it: fill absent fields that have defaults."""
    if isinstance(value, dict) and "properties" in schema:
        out = dict(value)
        for name, sub in schema["properties"].items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = _default(sub, out[name])
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_default(schema["items"], item) for item in value]
    return value


def _cel_failures(body: dict[str, Any]) -> list[str]:
    """Evaluate every CEL rule where the API server would, on the defaulted object."""
    import celpy

    env = celpy.Environment()
    failures: list[str] = []

    def visit(schema: dict[str, Any], value: Any, path: str) -> None:
        for rule in schema.get("x-kubernetes-validations", []):
            program = env.program(env.compile(rule["rule"]))
            if not bool(program.evaluate({"self": celpy.json_to_cel(value)})):
                failures.append(f"{path}: {rule['message']}")
        if isinstance(value, dict):
            for name, sub in schema.get("properties", {}).items():
                if name in value:
                    visit(sub, value[name], f"{path}.{name}")
        if isinstance(value, list) and isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                visit(schema["items"], item, f"{path}[{index}]")

    schema = _schema()
    visit(schema, _default(schema, body), "")
    return failures


@pytest.mark.parametrize("path", FEASIBLE_EXAMPLES + INFEASIBLE_EXAMPLES, ids=lambda p: p.name)
def test_examples_pass_the_cel_rules(path: Path) -> None:
    assert _cel_failures(load_body(path)) == []


@pytest.mark.parametrize("case", sorted(CROSS_FIELD), ids=str)
def test_cel_rules_reject_what_the_spec_model_rejects(case: str) -> None:
    body = _merge(load_body(EXAMPLES / "qwen2-vl-7b-a100.yaml"), CROSS_FIELD[case])
    assert _cel_failures(body), f"no CEL rule rejects: {case}"


def test_crd_file_is_valid_yaml_for_kubectl() -> None:
    docs = list(yaml.safe_load_all(CRD_PATH.read_text()))
    assert len(docs) == 1 and docs[0]["kind"] == "CustomResourceDefinition"


def test_the_crd_itself_validates_as_a_kubernetes_object() -> None:
    import kubernetes_validate

    kubernetes_validate.validate(crd(), "1.34.0", strict=True)
