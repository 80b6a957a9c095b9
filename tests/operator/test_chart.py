"""The Helm chart: values match their schema, RBAC is least privilege and sufficient.

No helm binary is available here, so templates are not rendered; the RBAC rules live in
``files/*.yaml`` (included by the templates) so they can be checked directly. Sufficiency is
proven by the scenario tests, which enforce exactly these rules on every operator request;
this module proves the enforcement bites and that nothing broader than needed is granted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from videomodel_operator.rendering import MANAGED_KINDS

from .conftest import EXAMPLES, ROOT, load_body
from .harness import chart_rules, running_cluster

CHART = ROOT / "charts" / "videomodel-operator"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_chart_metadata() -> None:
    chart = _yaml(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2" and chart["name"] == "videomodel-operator"
    assert (CHART / "crds" / "videomodels.videomodel.io.yaml").exists()
    for name in ("deployment.yaml", "rbac.yaml", "serviceaccount.yaml", "_helpers.tpl"):
        assert (CHART / "templates" / name).exists(), name


def test_values_match_the_values_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    values = _yaml(CHART / "values.yaml")
    jsonschema.Draft7Validator(schema).validate(values)
    bad = dict(values, eventLevel="loud")
    assert list(jsonschema.Draft7Validator(schema).iter_errors(bad))
    bad = dict(values, watchNamespaces=["Not_A_Namespace"])
    assert list(jsonschema.Draft7Validator(schema).iter_errors(bad))


def test_rbac_grants_no_wildcards_no_secrets_and_only_managed_kinds() -> None:
    rules = chart_rules()
    managed = {plural for _, _, plural in MANAGED_KINDS}
    allowed = managed | {
        "videomodels",
        "videomodels/status",
        "videomodels/finalizers",
        "events",
        "namespaces",
        "customresourcedefinitions",
    }
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"], rule
        assert set(rule["resources"]) <= allowed, rule
        assert "secrets" not in rule["resources"]
        if set(rule["resources"]) & {"namespaces", "customresourcedefinitions"}:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
    # Nothing the operator never does: it does not delete its workload or read pods.
    deployment_verbs = next(r["verbs"] for r in rules if "deployments" in r["resources"])
    assert "delete" not in deployment_verbs and "update" not in deployment_verbs


async def test_rbac_enforcement_bites_when_a_needed_verb_is_missing() -> None:
    """The scenario tests pass under the chart's rules; without 'patch' on Deployments they cannot."""
    rules = [dict(r) for r in chart_rules()]
    for rule in rules:
        if "deployments" in rule["resources"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != "patch"]
    async with running_cluster(rules=rules, allow_denials=True) as cluster:
        await cluster.create(load_body(EXAMPLES / "qwen2-vl-2b-l4.yaml"))

        async def denied() -> bool:
            return "patch apps/deployments" in cluster.server.denied

        await cluster.eventually(denied, what="a denied Deployment apply")
        assert await cluster.get("Deployment", "models", "qwen2-vl-2b") is None


def test_one_writer_no_peering_offered() -> None:
    """Issue 8 defect 8: peering was described as leader election but let two replicas write.
    The option is gone from the operator and the chart, which runs exactly one replica."""
    import pytest

    from videomodel_operator.handlers import OperatorConfig
    from videomodel_operator.main import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--peering", "videomodel"])
    assert not {"standalone", "peering_name"} & set(OperatorConfig.__dataclass_fields__)
    values = _yaml(CHART / "values.yaml")
    assert "peering" not in values
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    assert "replicas: 1" in deployment and "type: Recreate" in deployment and "peering" not in deployment
    assert "peering" not in (CHART / "templates" / "rbac.yaml").read_text()


def test_service_account_create_false_requires_a_name() -> None:
    """serviceAccount.create=false must not fall back to the namespace's `default` account."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = _yaml(CHART / "values.yaml")
    unnamed = dict(values, serviceAccount={"create": False})
    assert list(jsonschema.Draft7Validator(schema).iter_errors(unnamed))
    named = dict(values, serviceAccount={"create": False, "name": "ops"})
    assert not list(jsonschema.Draft7Validator(schema).iter_errors(named))
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert 'default "default"' not in helpers and "required" in helpers
