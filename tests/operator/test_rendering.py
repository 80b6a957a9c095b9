"""Rendered objects: valid Kubernetes (kubernetes-validate), Pod Security "restricted", and the
details the operator promises (flags from the plan, hash rolls, owner refs, sizing)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.harness.operator import (
    EXAMPLES,
    K8S_VERSION,
    assert_pss_restricted,
    deployment_for,
    load_body,
    load_cr,
    sizing_for,
)
from videomodel_operator.planning import plan_for
from videomodel_operator.rendering import (
    HASH_ANNOTATION,
    Capabilities,
    keep_live_selector,
    render,
    selector_string,
    server_args,
    serving_contract,
)
from videomodel_operator.spec import parse_video_model
from videomodel_operator.units import parse_bytes


def _objects(path: Path, **caps: bool) -> list[dict[str, Any]]:
    cr = load_cr(path)
    plan = plan_for(cr.spec)
    assert plan.feasible, plan.problems
    return render(cr, plan, Capabilities(**caps))


def test_kubernetes_validate_ships_the_release_we_check() -> None:
    assert K8S_VERSION.rsplit(".", 1)[0] in {v.rsplit(".", 1)[0] for v in _shipped_versions()}


def _shipped_versions() -> list[str]:
    import importlib.resources

    root = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    return [
        p.name.removeprefix("v").removesuffix("-standalone-strict") for p in root.iterdir() if p.name.startswith("v")
    ]


def test_every_rendered_object_validates_against_the_kubernetes_schema(example_path: Path) -> None:
    objects = _objects(example_path)
    kinds = [o["kind"] for o in objects]
    assert {"ConfigMap", "Service", "NetworkPolicy", "Deployment"} <= set(kinds)
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_a_broken_object_fails_validation() -> None:
    """The validator is not a no-op: a typo'd field and a wrong type are both caught."""
    deployment = next(o for o in _objects(EXAMPLES / "qwen2-vl-7b-a100.yaml") if o["kind"] == "Deployment")
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["imagePulPolicy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, K8S_VERSION, strict=True)
    wrong = copy.deepcopy(deployment)
    wrong["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, K8S_VERSION, strict=True)


def test_pods_meet_pod_security_restricted(example_path: Path) -> None:
    deployment = next(o for o in _objects(example_path) if o["kind"] == "Deployment")
    assert_pss_restricted(deployment["spec"]["template"]["spec"])


def test_pss_check_catches_a_privileged_pod() -> None:
    deployment = next(o for o in _objects(EXAMPLES / "qwen2-vl-7b-a100.yaml") if o["kind"] == "Deployment")
    pod = copy.deepcopy(deployment["spec"]["template"]["spec"])
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    with pytest.raises(AssertionError):
        assert_pss_restricted(pod)


def test_every_child_has_a_controller_owner_reference(example_path: Path) -> None:
    for obj in _objects(example_path, service_monitor=True):
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref["kind"] == "VideoModel" and ref["controller"] is True and ref["uid"]
        assert obj["metadata"]["namespace"] == load_body(example_path)["metadata"]["namespace"]


def test_server_flags_carry_the_plan() -> None:
    cr = load_cr(EXAMPLES / "qwen2-vl-7b-a100.yaml")
    plan = plan_for(cr.spec)
    args = server_args(cr.spec, plan)
    flags = dict(zip(args[::2], args[1::2], strict=False))
    assert flags["--model"] == "/models/Qwen2-VL-7B-Instruct"
    assert flags["--family"] == "qwen2_vl"
    assert flags["--budget-file"] == "/etc/videomodel/serving.json"
    assert flags["--allowed-media-domains"] == "media.example.com,storage.googleapis.com"
    contract = json.loads(serving_contract(cr.spec, plan).to_json())
    assert contract["engine"]["max_model_len"] == plan.max_model_len == 20804
    assert contract["budget"]["max_frames"] == 128
    assert contract["plan"]["fetch_timeout_seconds"] == 72.1
    assert contract["engine"]["tensor_parallel_size"] == 1
    deployment = deployment_for(cr, plan)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    env = {e["name"]: e for e in container["env"]}
    assert env["VIDEOMODEL_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "qwen2-vl-7b-api-key", "key": "api-key"}
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    assert deployment["spec"]["template"]["spec"]["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"


def test_extra_engine_args_come_after_a_double_dash() -> None:
    body = load_body(EXAMPLES / "qwen2-vl-7b-a100.yaml")
    body["spec"]["engine"]["extraArgs"] = ["--enable-prefix-caching"]
    cr = parse_video_model(body)
    args = server_args(cr.spec, plan_for(cr.spec))
    assert args[-2:] == ["--", "--enable-prefix-caching"]


def _hash(body: dict[str, Any]) -> str:
    cr = parse_video_model(body)
    deployment = deployment_for(cr, plan_for(cr.spec))
    annotation: str = deployment["spec"]["template"]["metadata"]["annotations"][HASH_ANNOTATION]
    return annotation


def test_config_hash_rolls_on_budget_and_engine_changes_only() -> None:
    body = load_body(EXAMPLES / "qwen2-vl-7b-a100.yaml")
    base = _hash(body)
    assert _hash(copy.deepcopy(body)) == base
    budget = copy.deepcopy(body)
    budget["spec"]["budget"]["maxSeconds"] = 60
    assert _hash(budget) != base
    engine = copy.deepcopy(body)
    engine["spec"]["engine"]["gpuMemoryUtilization"] = 0.85
    assert _hash(engine) != base
    scaled = copy.deepcopy(body)
    scaled["spec"]["replicas"] = 5
    assert _hash(scaled) == base, "scaling must not roll pods"


def test_optional_children_follow_the_spec() -> None:
    def kinds(path: Path, **caps: bool) -> list[str]:
        return [o["kind"] for o in _objects(path, **caps)]

    assert "PodDisruptionBudget" in kinds(EXAMPLES / "qwen2-vl-7b-a100.yaml")  # replicas 2
    assert "PodDisruptionBudget" not in kinds(EXAMPLES / "qwen2-vl-2b-l4.yaml")  # replicas 1
    assert "HorizontalPodAutoscaler" in kinds(EXAMPLES / "qwen2.5-vl-7b-l4.yaml")
    assert "HorizontalPodAutoscaler" not in kinds(EXAMPLES / "qwen2-vl-7b-a100.yaml")
    assert "ServiceMonitor" not in kinds(EXAMPLES / "qwen2-vl-7b-a100.yaml")
    assert "ServiceMonitor" in kinds(EXAMPLES / "qwen2-vl-7b-a100.yaml", service_monitor=True)


def test_autoscaled_deployment_leaves_replicas_to_the_hpa() -> None:
    deployment = next(o for o in _objects(EXAMPLES / "qwen2.5-vl-7b-l4.yaml") if o["kind"] == "Deployment")
    assert "replicas" not in deployment["spec"]


def test_network_policy_admits_only_the_api_port_and_blocks_private_egress() -> None:
    policy = next(o for o in _objects(EXAMPLES / "qwen2-vl-7b-a100.yaml") if o["kind"] == "NetworkPolicy")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8000}]}]
    dns, internet = spec["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    v4 = internet["to"][0]["ipBlock"]
    assert v4["cidr"] == "0.0.0.0/0"
    import ipaddress

    metadata = ipaddress.ip_address("169.254.169.254")
    assert any(metadata in ipaddress.ip_network(block) for block in v4["except"])
    for private in ("10.1.2.3", "172.20.0.1", "192.168.1.1", "100.64.0.1"):
        assert any(ipaddress.ip_address(private) in ipaddress.ip_network(b) for b in v4["except"]), private


def test_memory_is_sized_from_the_budget() -> None:
    small = load_body(EXAMPLES / "qwen2-vl-7b-a100.yaml")
    large = copy.deepcopy(small)
    large["spec"]["budget"]["maxVideoBytes"] = "2Gi"

    def memory(body: dict[str, Any]) -> str:
        cr = parse_video_model(body)
        container = deployment_for(cr, plan_for(cr.spec))["spec"]["template"]["spec"]["containers"][0]
        requested: str = container["resources"]["requests"]["memory"]
        assert container["resources"]["limits"]["memory"] == requested
        return requested

    from videomodel_operator.units import parse_bytes

    assert parse_bytes(memory(large)) > parse_bytes(memory(small))


def test_huggingface_source_downloads_in_an_init_container() -> None:
    objects = _objects(EXAMPLES / "qwen2-vl-2b-l4.yaml")
    pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert "Qwen/Qwen2-VL-2B-Instruct" in init["command"]
    assert pod["containers"][0]["args"][1] == "/cache/models/Qwen/Qwen2-VL-2B-Instruct"


def test_cpu_demo_requests_no_gpu() -> None:
    deployment = next(o for o in _objects(EXAMPLES / "demo-tiny-qwen2-vl.yaml") if o["kind"] == "Deployment")
    resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert "nvidia.com/gpu" not in resources["requests"]
    assert resources["requests"]["memory"] == "6Gi"


# -- issue 8 -----------------------------------------------------------------------------------


def _cr(body: dict[str, Any]) -> Any:
    return parse_video_model(body)


def _kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind)


async def test_the_hpa_metric_exceeds_its_target_under_load_so_it_scales_out() -> None:
    """Defect 1: drive the server's admission past its cap; the metric the HPA reads must pass the
    target, so the HPA's rule (ceil(replicas x value / target)) asks for more than minReplicas."""
    import asyncio
    import math

    from videomodel_server.admission import Admission
    from videomodel_server.budget.contract import concurrency_cap
    from videomodel_server.metrics import Metrics

    cr = load_cr(EXAMPLES / "qwen2.5-vl-7b-l4.yaml")
    plan = plan_for(cr.spec)
    hpa = _kind(render(cr, plan), "HorizontalPodAutoscaler")["spec"]
    (metric,) = hpa["metrics"]
    name, target = metric["pods"]["metric"]["name"], float(metric["pods"]["target"]["averageValue"])
    cap = serving_contract(cr.spec, plan).admission.max_concurrent_requests
    assert cap == concurrency_cap(plan.concurrent_requests), "the cap follows the plan (issue 11)"
    assert target == cap, "the target is the server's admission cap, not a copy"
    assert json.loads(serving_contract(cr.spec, plan).to_json())["admission"]["max_concurrent_requests"] == cap

    admission = Admission(max_in_flight=cap, max_queued=4 * cap, queue_timeout=30, retry_after=1)
    release = asyncio.Event()

    async def request() -> None:
        async with admission.slot():
            await release.wait()

    tasks = [asyncio.create_task(request()) for _ in range(3 * cap)]
    await asyncio.sleep(0.05)
    # Scrape the server's own /metrics registry, bound to this admission as the app binds it.
    metrics = Metrics()
    metrics.bind(
        in_flight=lambda: admission.in_flight,
        queued=lambda: admission.queued,
        engine_unfinished=lambda: 0,
        engine_ready=lambda: 1,
    )
    observed = {
        family.name: family.samples[0].value
        for family in metrics.registry.collect()
        if family.name.startswith("videomodel_requests_") and family.samples
    }
    release.set()
    await asyncio.gather(*tasks)
    assert observed["videomodel_requests_in_flight"] == cap  # the old metric: stuck at the target
    value = observed[name]
    assert value > target
    desired = math.ceil(hpa["minReplicas"] * value / target)
    assert desired > hpa["minReplicas"], f"{name}={value} against {target} never scales out"


def test_tmp_and_every_emptydir_are_sized_and_covered_by_ephemeral_storage() -> None:
    """Defect 2: /tmp holds in-flight x videos x maxVideoBytes of spooled downloads."""
    from videomodel_operator.units import parse_bytes

    cr = load_cr(EXAMPLES / "qwen3-vl-8b-h100.yaml")
    plan = plan_for(cr.spec)
    pod = deployment_for(cr, plan)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    in_flight = serving_contract(cr.spec, plan).admission.max_concurrent_requests
    spooled = in_flight * max(1, plan.videos_per_prompt) * plan.max_video_bytes
    assert parse_bytes(volumes["tmp"]["emptyDir"]["sizeLimit"]) >= spooled > 1024**3
    disk = sum(
        parse_bytes(v["emptyDir"]["sizeLimit"])
        for v in pod["volumes"]
        if "emptyDir" in v and "medium" not in v["emptyDir"]
    )
    for container in pod["containers"] + pod.get("initContainers", []):
        resources = container["resources"]
        assert parse_bytes(resources["requests"]["ephemeral-storage"]) >= disk, container["name"]
        assert parse_bytes(resources["limits"]["ephemeral-storage"]) >= disk, container["name"]


def test_host_memory_grows_with_tensor_parallelism_and_counts_the_processor_cache() -> None:
    """Defect 2: a flat 6 Gi base no longer; mm_processor_cache_gb is accounted."""
    from videomodel_operator.rendering.sizing import BASE_MEMORY

    body = load_body(EXAMPLES / "qwen2-vl-7b-a100.yaml")
    one = copy.deepcopy(body)
    four = copy.deepcopy(body)
    four["spec"]["resources"]["gpu"]["count"] = 4
    four["spec"].setdefault("engine", {})["tensorParallelSize"] = 4
    small, big = (sizing_for(_cr(b).spec, plan_for(_cr(b).spec)) for b in (one, four))
    assert big.memory_bytes - big.shm_bytes >= small.memory_bytes - small.shm_bytes + 3 * 2 * 1024**3
    cr = _cr(one)
    plan = plan_for(cr.spec)
    contract = serving_contract(cr.spec, plan)
    assert contract.engine.mm_processor_cache_gb > 0  # written out for the server, and priced here
    assert small.memory_bytes >= BASE_MEMORY + contract.engine.mm_processor_cache_gb * 1024**3 + small.shm_bytes


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"metadata": {"name": "qwen2.5-vl-7b"}}, "metadata.name"),
        ({"metadata": {"name": "a" * 64}}, "metadata.name"),
        (
            {"spec": {"resources": {"tolerations": [{"key": "gpu", "operator": "Exists", "value": "x"}]}}},
            "operator Exists must not set value",
        ),
        ({"spec": {"resources": {"affinity": {"nodeAfinity": {}}}}}, "nodeAfinity"),
    ],
)
def test_names_and_fields_the_api_server_rejects_fail_at_render(
    edit: dict[str, Any], message: str, tmp_path: Path
) -> None:
    """Defect 6: `videomodel render` exits non-zero with a clear message; the CRD's CEL agrees."""
    import io

    import yaml

    from videomodel_operator.cli import EXIT_INVALID, main

    body = load_body(EXAMPLES / "qwen2-vl-7b-a100.yaml")
    if "metadata" in edit:
        body["metadata"].update(edit["metadata"])
    else:
        body["spec"]["resources"].update(edit["spec"]["resources"])
    path = tmp_path / "cr.yaml"
    path.write_text(yaml.safe_dump(body))
    out, err = io.StringIO(), io.StringIO()
    code = main(["render", "-f", str(path)], out=out, err=err)
    assert code == EXIT_INVALID, out.getvalue()
    assert message in err.getvalue()


def test_the_config_hash_covers_only_what_the_pod_consumes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 7: rewording plan.txt (or plan.json) must not roll every model on an operator upgrade."""
    from videomodel_operator.rendering import workload

    cr = load_cr(EXAMPLES / "qwen2-vl-7b-a100.yaml")
    plan = plan_for(cr.spec)
    before = deployment_for(cr, plan)["spec"]["template"]["metadata"]["annotations"][HASH_ANNOTATION]
    monkeypatch.setattr(workload, "plan_table", lambda plan: "reworded\n")
    assert workload.render_config_map(cr, plan, serving_contract(cr.spec, plan))["data"]["plan.txt"] == "reworded\n"
    after = deployment_for(cr, plan)["spec"]["template"]["metadata"]["annotations"][HASH_ANNOTATION]
    assert after == before


def test_dns_egress_reaches_only_the_cluster_dns_and_extra_egress_is_added() -> None:
    """Defect 10: port 53 is open to kube-dns / node-local DNS only; security.extraEgress adds rules."""
    import ipaddress

    body = load_body(EXAMPLES / "qwen2-vl-7b-a100.yaml")
    extra = {"to": [{"ipBlock": {"cidr": "10.20.0.5/32"}}], "ports": [{"protocol": "TCP", "port": 3128}]}
    body["spec"].setdefault("security", {})["extraEgress"] = [extra]
    cr = _cr(body)
    policy = _kind(render(cr, plan_for(cr.spec)), "NetworkPolicy")
    kubernetes_validate.validate(policy, K8S_VERSION, strict=True)
    egress = policy["spec"]["egress"]
    dns = [rule for rule in egress if any(p.get("port") == 53 for p in rule.get("ports", []))]
    assert len(dns) == 1 and dns[0]["to"], "DNS egress must name its destinations"
    for peer in dns[0]["to"]:
        if "ipBlock" in peer:
            network = ipaddress.ip_network(peer["ipBlock"]["cidr"])
            assert network.num_addresses == 1 and ipaddress.ip_address("169.254.169.254") not in network
        else:
            assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
            assert peer["podSelector"]["matchLabels"]
    assert egress[-1] == extra


ARGO_CD_TRACKING_LABEL = "app.kubernetes.io/instance"


def _legacy(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    """The Deployment as the releases that selected pods by app.kubernetes.io/instance made it."""
    legacy = copy.deepcopy(deployment)
    legacy["spec"]["selector"] = {
        "matchLabels": {"app.kubernetes.io/name": "videomodel-server", ARGO_CD_TRACKING_LABEL: name}
    }
    legacy["spec"]["template"]["metadata"]["labels"][ARGO_CD_TRACKING_LABEL] = name
    legacy["metadata"]["labels"][ARGO_CD_TRACKING_LABEL] = name
    return legacy


def test_no_child_carries_argo_cds_tracking_label_and_pods_are_selected_by_the_model_label() -> None:
    """Argo CD's default tracking label would let an Application named like a model claim (and
    prune) its children: the model's name lives under videomodel.io/model instead."""
    objects = _objects(EXAMPLES / "qwen2.5-vl-7b-l4.yaml", service_monitor=True)
    cr = load_cr(EXAMPLES / "qwen2.5-vl-7b-l4.yaml")
    name = cr.metadata.name
    expected = {"app.kubernetes.io/name": "videomodel-server", "videomodel.io/model": name}
    for obj in objects:
        assert ARGO_CD_TRACKING_LABEL not in obj["metadata"]["labels"], obj["kind"]
        assert obj["metadata"]["labels"]["videomodel.io/model"] == name
    deployment = _kind(objects, "Deployment")
    assert ARGO_CD_TRACKING_LABEL not in deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == expected
    assert _kind(objects, "Service")["spec"]["selector"] == expected
    assert _kind(objects, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"] == expected
    assert _kind(objects, "ServiceMonitor")["spec"]["selector"]["matchLabels"] == expected
    assert selector_string(name) == f"app.kubernetes.io/name=videomodel-server,videomodel.io/model={name}"


def test_an_existing_deployment_keeps_its_immutable_selector_and_its_pods() -> None:
    """Upgrading from a release that selected by app.kubernetes.io/instance: the apply keeps the
    live selector (a changed one is a 422) and the template labels (no rollout), and the new
    Service/NetworkPolicy/PDB selectors still match the old pods."""
    objects = _objects(EXAMPLES / "qwen2-vl-7b-a100.yaml")
    name = _kind(objects, "Deployment")["metadata"]["name"]
    deployment = _kind(objects, "Deployment")
    live = _legacy(deployment, name)
    kept = keep_live_selector(deployment, live)
    assert kept["spec"]["selector"] == live["spec"]["selector"]
    assert kept["spec"]["template"] == live["spec"]["template"]  # same template: nothing rolls
    pod_labels = live["spec"]["template"]["metadata"]["labels"]
    for selector in (
        _kind(objects, "Service")["spec"]["selector"],
        _kind(objects, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
        _kind(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= pod_labels.items()
    assert keep_live_selector(deployment, None) is deployment
    assert keep_live_selector(deployment, deployment) is deployment
    kubernetes_validate.validate(kept, K8S_VERSION, strict=True)


def _with_cache_claim(claim: str = "hub-cache", revision: str | None = None) -> dict[str, Any]:
    body = load_body(EXAMPLES / "qwen2-vl-2b-l4.yaml")
    body["metadata"]["uid"] = "3f1d3c1e-0000-4000-8000-000000000001"
    hf = body["spec"]["model"]["source"]["huggingFace"]
    hf["cacheClaimName"] = claim
    if revision:
        hf["revision"] = revision
    return body


def _render_body(body: dict[str, Any]) -> list[dict[str, Any]]:
    cr = _cr(body)
    return render(cr, plan_for(cr.spec))


def test_a_huggingface_cache_claim_keeps_the_snapshot_across_restarts() -> None:
    """The snapshot goes to a shared PVC (written by the init container only, read-only in the
    server), per revision; the pod's emptyDir no longer holds (or requests disk for) the weights."""
    plain = _kind(_objects(EXAMPLES / "qwen2-vl-2b-l4.yaml"), "Deployment")
    objects = _render_body(_with_cache_claim(revision="v1.1"))
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    pod = _kind(objects, "Deployment")["spec"]["template"]["spec"]
    assert_pss_restricted(pod)
    volume = next(v for v in pod["volumes"] if v["name"] == "hf-cache")
    assert volume == {"name": "hf-cache", "persistentVolumeClaim": {"claimName": "hub-cache"}}
    (init,) = pod["initContainers"]
    server = pod["containers"][0]
    target = "/hf-cache/models/Qwen/Qwen2-VL-2B-Instruct/v1.1"
    assert init["command"][-1] == target and server["args"][1] == target
    assert {"name": "hf-cache", "mountPath": "/hf-cache"} in init["volumeMounts"]
    assert {"name": "hf-cache", "mountPath": "/hf-cache", "readOnly": True} in server["volumeMounts"]
    assert {"name": "HF_HOME", "value": "/hf-cache/huggingface"} in init["env"]
    # The weights no longer sit in the emptyDir: less ephemeral storage requested.
    plain_disk = parse_bytes(
        plain["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["ephemeral-storage"]
    )
    disk = parse_bytes(server["resources"]["requests"]["ephemeral-storage"])
    assert disk < plain_disk
    cache = next(v for v in pod["volumes"] if v["name"] == "cache")
    assert parse_bytes(cache["emptyDir"]["sizeLimit"]) == 2 * 1024**3
    # Without a revision: "main", so a later pinned revision gets its own directory.
    default = _kind(_render_body(_with_cache_claim()), "Deployment")["spec"]["template"]["spec"]
    assert default["containers"][0]["args"][1] == "/hf-cache/models/Qwen/Qwen2-VL-2B-Instruct/main"


def test_the_cache_claim_name_is_validated() -> None:
    from videomodel_operator.spec import SpecError

    with pytest.raises(SpecError, match="cacheClaimName"):
        _cr(_with_cache_claim(claim="Not_A_Claim"))


def test_the_startup_budget_grows_with_the_weights_and_the_deadline_counts_the_download() -> None:
    from videomodel_operator.rendering.sizing import MIN_STARTUP_SECONDS, startup_budget

    def deployment_of(path: Path) -> dict[str, Any]:
        return _kind(_objects(path), "Deployment")

    def probe_seconds(deployment: dict[str, Any]) -> int:
        probe = deployment["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
        return int(probe["periodSeconds"] * probe["failureThreshold"])

    small = deployment_of(EXAMPLES / "qwen2-vl-7b-a100.yaml")  # PVC source, 7B: the floor, as before
    assert probe_seconds(small) == MIN_STARTUP_SECONDS
    assert small["spec"]["progressDeadlineSeconds"] == MIN_STARTUP_SECONDS + 600
    large_body = load_body(EXAMPLES / "qwen2-vl-7b-a100.yaml")
    large_body["spec"]["model"].update(name="Qwen/Qwen2-VL-72B-Instruct", servedName="qwen2-vl-72b")
    large_cr = _cr(large_body)
    large_plan = plan_for(large_cr.spec)
    weights = large_plan.weights_bytes or 0
    assert weights > 140e9
    large = startup_budget(large_cr.spec, large_plan)
    assert large.startup_seconds > MIN_STARTUP_SECONDS, "a 72B checkpoint needs more than the 7B floor"
    assert large.startup_seconds >= 600 + weights / (100 * 1024**2)
    assert large.download_seconds == 0  # a PVC source downloads nothing
    # A hub source: the deadline adds the download on top of the load.
    hub_cr = load_cr(EXAMPLES / "qwen2-vl-2b-l4.yaml")
    budget = startup_budget(hub_cr.spec, plan_for(hub_cr.spec))
    hub = deployment_of(EXAMPLES / "qwen2-vl-2b-l4.yaml")
    assert budget.download_seconds > 0
    assert hub["spec"]["progressDeadlineSeconds"] == budget.download_seconds + budget.startup_seconds + 600
    # An explicit lifecycle.startupTimeoutSeconds still wins.
    body = load_body(EXAMPLES / "qwen2-vl-7b-a100.yaml")
    body["metadata"]["uid"] = "3f1d3c1e-0000-4000-8000-000000000001"
    body["spec"].setdefault("lifecycle", {})["startupTimeoutSeconds"] = 900
    explicit = _kind(_render_body(body), "Deployment")
    assert probe_seconds(explicit) == 900
