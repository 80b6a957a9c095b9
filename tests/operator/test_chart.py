"""The Helm chart, rendered by a real Helm engine: lint, templates, schema, RBAC.

``helm`` (v4) comes from a registry package (see :mod:`tests.operator.helm`). Every value set
below is linted with ``helm lint --strict`` and rendered with ``helm template``; each rendered
object must pass kubernetes-validate (strict) and the operator's pod the Pod Security
"restricted" profile. The RBAC rules live in ``files/*.yaml`` (included by the templates):
the rendered Roles must be exactly those files, and the scenario tests enforce exactly these
rules on every operator request, so what the chart grants is proven sufficient there and least
privilege here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.harness.operator import EXAMPLES, K8S_VERSION, ROOT, assert_pss_restricted, load_body
from videomodel_operator.rendering import MANAGED_KINDS

from .harness import chart_rules, running_cluster
from .helm import Helm, helm_binary

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
        "pods",
        "namespaces",
        "customresourcedefinitions",
    }
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"], rule
        assert set(rule["resources"]) <= allowed, rule
        assert "secrets" not in rule["resources"]
        if set(rule["resources"]) & {"namespaces", "customresourcedefinitions"}:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
    # Nothing the operator never does: it does not delete its workload; of pods it only lists
    # the status (why one is not ready): no get of one, no watch, no logs, no exec, no writes.
    deployment_verbs = next(r["verbs"] for r in rules if "deployments" in r["resources"])
    assert "delete" not in deployment_verbs and "update" not in deployment_verbs
    pod_rules = [r for r in rules if {"pods", "pods/log", "pods/exec"} & set(r["resources"])]
    assert pod_rules == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]


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


# -- a real Helm engine --------------------------------------------------------------------------

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "existing-service-account": {"serviceAccount": {"create": False, "name": "ops-operator"}},
    "namespaced-and-every-knob": {
        "image": {"repository": "registry.example/vm/operator", "tag": "1.2.3", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "pull-secret"}],
        "watchNamespaces": ["models", "other"],
        "resyncSeconds": 30,
        "eventLevel": "info",
        "logLevel": "debug",
        "serviceAccount": {"create": True, "name": "vm-ops", "annotations": {"iam.example/role": "vm"}},
        "resources": {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "192Mi"}},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}
                    ]
                }
            }
        },
        "priorityClassName": "system-cluster-critical",
        "podAnnotations": {"example.com/team": "ml"},
        "podLabels": {"example.com/tier": "ops"},
    },
}


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Helm]:
    yield Helm(helm_binary(), tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def rendered(helm: Helm) -> dict[str, list[dict[str, Any]]]:
    return {name: helm.template(CHART, values=values) for name, values in VALUE_SETS.items()}


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, (kind, [o["kind"] for o in objects])
    return found[0]


def test_helm_is_the_pinned_v4_engine(helm: Helm) -> None:
    assert helm.version().startswith("v4."), helm.version()


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint_strict_passes(helm: Helm, tmp_path: Path, name: str) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(VALUE_SETS[name]))
    result = helm.run("lint", "--strict", str(CHART), "--values", str(values))
    assert "0 chart(s) failed" in result.stdout, result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def test_helm_lint_strict_rejects_values_outside_the_schema(helm: Helm, tmp_path: Path) -> None:
    for bad in ({"eventLevel": "loud"}, {"watchNamespaces": ["Not_A_Namespace"]}, {"replicas": 2}):
        values = tmp_path / "bad.yaml"
        values.write_text(yaml.safe_dump(bad))
        result = helm.run("lint", "--strict", str(CHART), "--values", str(values), check=False)
        assert result.returncode != 0, (bad, result.stdout)


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_rendered_chart_object_validates(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    objects = rendered[name]
    kinds = {o["kind"] for o in objects}
    assert {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Deployment"} <= kinds, kinds
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_the_operator_pod_meets_pod_security_restricted(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    deployment = _one(rendered[name], "Deployment")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert_pss_restricted(pod, shm=False)
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "limits" in container["resources"] and "memory" in container["resources"]["limits"]


def test_the_chart_crd_is_the_checked_in_crd(rendered: dict[str, list[dict[str, Any]]]) -> None:
    crd = _one(rendered["defaults"], "CustomResourceDefinition")
    assert crd == _yaml(ROOT / "crds" / "videomodels.videomodel.io.yaml")


def test_service_account_the_pod_runs_as(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Created by default (fullname), an existing named one with create=false: never `default`."""
    for name, expected, created in (
        ("defaults", "vm-videomodel-operator", True),
        ("existing-service-account", "ops-operator", False),
        ("namespaced-and-every-knob", "vm-ops", True),
    ):
        objects = rendered[name]
        pod = _one(objects, "Deployment")["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == expected, name
        accounts = [o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"]
        assert accounts == ([expected] if created else []), name
        for binding in (o for o in objects if o["kind"] in ("ClusterRoleBinding", "RoleBinding")):
            assert binding["subjects"] == [{"kind": "ServiceAccount", "name": expected, "namespace": "ops"}]


def test_service_account_create_false_without_a_name_does_not_render(helm: Helm, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"serviceAccount": {"create": False}}))
    result = helm.run("template", "vm", str(CHART), "--values", str(values), check=False)
    assert result.returncode != 0
    assert "serviceAccount" in result.stderr and "name" in result.stderr, result.stderr


def test_rendered_rbac_is_exactly_the_rule_files(rendered: dict[str, list[dict[str, Any]]]) -> None:
    cluster_only = _yaml(CHART / "files" / "cluster-rules.yaml")
    namespaced = _yaml(CHART / "files" / "namespaced-rules.yaml")
    everything = rendered["defaults"]
    assert _one(everything, "ClusterRole")["rules"] == cluster_only + namespaced == chart_rules()
    assert not [o for o in everything if o["kind"] in ("Role", "RoleBinding")]
    scoped = rendered["namespaced-and-every-knob"]
    assert _one(scoped, "ClusterRole")["rules"] == cluster_only
    roles = {o["metadata"]["namespace"]: o["rules"] for o in scoped if o["kind"] == "Role"}
    assert roles == {"models": namespaced, "other": namespaced}
    bindings = {o["metadata"]["namespace"] for o in scoped if o["kind"] == "RoleBinding"}
    assert bindings == {"models", "other"}


def test_every_value_reaches_the_rendered_objects(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Each knob of values.yaml set in the third value set shows up where it should."""
    values = VALUE_SETS["namespaced-and-every-knob"]
    objects = rendered["namespaced-and-every-knob"]
    assert set(values) == set(_yaml(CHART / "values.yaml")), "a value of values.yaml is not exercised"
    pod_template = _one(objects, "Deployment")["spec"]["template"]
    pod = pod_template["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example/vm/operator:1.2.3"
    assert container["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == values["imagePullSecrets"]
    assert container["args"] == [
        "--namespace=models",
        "--namespace=other",
        "--event-level=info",
        "--log-level=debug",
        "--resync-seconds=30",
        "--liveness=http://0.0.0.0:8080/healthz",
    ]
    assert container["resources"] == values["resources"]
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName"):
        assert pod[key] == values[key], key
    assert values["podAnnotations"].items() <= pod_template["metadata"]["annotations"].items()
    assert values["podLabels"].items() <= pod_template["metadata"]["labels"].items()
    account = _one(objects, "ServiceAccount")
    assert account["metadata"]["annotations"] == values["serviceAccount"]["annotations"]
    default_pod = _one(rendered["defaults"], "Deployment")["spec"]["template"]["spec"]
    assert default_pod["containers"][0]["image"] == "ghcr.io/videomodel/videomodel-operator:0.1.0"
    assert "--all-namespaces" in default_pod["containers"][0]["args"]
