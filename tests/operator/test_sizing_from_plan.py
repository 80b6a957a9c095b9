"""Admission and decoding are sized from the plan and the pod, not from constants (issue 11).

The admission cap follows the plan's concurrency (the full-budget requests the GPU memory holds),
the decode pool follows the pod's CPU, an unset CPU request is sized for the decode pool, and a
value set in the CR's ``spec.admission`` always wins. The server side is the real parser, run on
the ConfigMap and command line the operator renders.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.harness.operator import EXAMPLES, load_body, sizing_for
from videomodel_devtools.pod import container_argv
from videomodel_operator.planning import plan_for
from videomodel_operator.rendering import render, serving_contract
from videomodel_operator.rendering.sizing import MAX_DERIVED_DECODE_WORKERS, admission_settings, reserved_cpu_milli
from videomodel_operator.spec import VideoModel, parse_video_model
from videomodel_server.budget.contract import (
    BUDGET_FILE_KEY,
    DECODE_CPU_MILLI,
    MAX_DECODE_THREADS,
    MAX_DERIVED_CONCURRENT_REQUESTS,
    AdmissionSettings,
    concurrency_cap,
    decode_pool,
    default_concurrency,
)
from videomodel_server.cli import parse_settings

EXAMPLE = EXAMPLES / "qwen2.5-vl-7b-l4.yaml"


def _cr(**edits: Any) -> VideoModel:
    """The L4 example with ``section={key: value}`` merged into its spec."""
    body = copy.deepcopy(load_body(EXAMPLE))
    spec = body["spec"]
    for section, values in edits.items():
        target = spec.setdefault(section, {})
        for key, value in values.items():
            if isinstance(value, dict):
                target[key] = {**target.get(key, {}), **value}
            else:
                target[key] = value
    return parse_video_model(body)


def _gpu(memory: str) -> VideoModel:
    return _cr(resources={"gpu": {"memory": memory}})


def test_a_big_gpu_admits_more_than_a_small_one() -> None:
    small, big = _gpu("24Gi"), _gpu("80Gi")
    small_plan, big_plan = plan_for(small.spec), plan_for(big.spec)
    assert small_plan.concurrent_requests is not None and big_plan.concurrent_requests is not None
    assert big_plan.concurrent_requests > small_plan.concurrent_requests
    small_cap = serving_contract(small.spec, small_plan).admission.max_concurrent_requests
    big_cap = serving_contract(big.spec, big_plan).admission.max_concurrent_requests
    assert small_cap == min(small_plan.concurrent_requests, MAX_DERIVED_CONCURRENT_REQUESTS) == 7
    assert big_cap == min(big_plan.concurrent_requests, MAX_DERIVED_CONCURRENT_REQUESTS) > small_cap
    # Every admitted request holds its download in /tmp: the pod is sized for the larger cap too.
    assert sizing_for(big.spec, big_plan).tmp_bytes > sizing_for(small.spec, small_plan).tmp_bytes


def test_the_cap_is_never_below_one_and_keeps_the_default_without_a_memory_model() -> None:
    assert concurrency_cap(0) == 1
    assert concurrency_cap(3) == 3
    assert concurrency_cap(10_000) == MAX_DERIVED_CONCURRENT_REQUESTS
    assert concurrency_cap(None) == default_concurrency() == AdmissionSettings().max_concurrent_requests


def test_serving_on_cpu_admits_at_most_the_default() -> None:
    demo = parse_video_model(load_body(EXAMPLES / "demo-tiny-qwen2-vl.yaml"))
    plan = plan_for(demo.spec)
    assert demo.spec.resources.gpu.count == 0 and (plan.concurrent_requests or 0) > default_concurrency()
    assert admission_settings(demo.spec, plan).max_concurrent_requests == default_concurrency()


def test_the_decode_pool_follows_the_cpu_request() -> None:
    cr = _cr(resources={"cpu": "12"})
    plan = plan_for(cr.spec)
    admission = admission_settings(cr.spec, plan)
    cores = (12_000 - reserved_cpu_milli(cr.spec)) // DECODE_CPU_MILLI
    parallel = admission.max_concurrent_requests * max(1, plan.videos_per_prompt)
    assert admission.decode_workers == min(cores, parallel)
    assert admission.decode_threads == cores  # a lone request decodes on every decoding core
    assert sizing_for(cr.spec, plan).cpu_milli == 12_000  # a request set in the CR is kept

    # A small request still gets one worker with one thread.
    tight = _cr(resources={"cpu": "500m"})
    assert admission_settings(tight.spec, plan_for(tight.spec)).decode_workers == 1
    assert decode_pool(0, 4) == (1, 1)
    assert decode_pool(64_000, 2) == (2, MAX_DECODE_THREADS)
    assert decode_pool(6_500, 100) == (6, 6)


def test_the_cpu_request_grows_with_the_decode_workers() -> None:
    tiny = _gpu("20992Mi")  # room for about one full-budget request
    tiny_plan = plan_for(tiny.spec)
    big = _gpu("80Gi")
    big_plan = plan_for(big.spec)
    few, many = admission_settings(tiny.spec, tiny_plan), admission_settings(big.spec, big_plan)
    videos = max(1, tiny_plan.videos_per_prompt)
    assert few.decode_workers == min(few.max_concurrent_requests * videos, MAX_DERIVED_DECODE_WORKERS)
    assert (many.decode_workers, many.decode_threads) == (MAX_DERIVED_DECODE_WORKERS, MAX_DERIVED_DECODE_WORKERS)
    assert few.decode_workers < many.decode_workers and few.decode_threads == few.decode_workers
    cpu_few, cpu_many = sizing_for(tiny.spec, tiny_plan).cpu_milli, sizing_for(big.spec, big_plan).cpu_milli
    assert cpu_few == reserved_cpu_milli(tiny.spec) + few.decode_workers * DECODE_CPU_MILLI
    assert cpu_many - cpu_few == (many.decode_workers - few.decode_workers) * DECODE_CPU_MILLI

    explicit = [_cr(admission={"decodeWorkers": n, "decodeThreads": 2}) for n in (1, 3)]
    cpus = [sizing_for(cr.spec, plan_for(cr.spec)).cpu_milli for cr in explicit]
    assert cpus[1] - cpus[0] == 2 * DECODE_CPU_MILLI


def test_values_set_in_the_cr_win() -> None:
    cr = _cr(admission={"maxConcurrentRequests": 3, "decodeWorkers": 5, "decodeThreads": 2})
    plan = plan_for(cr.spec)
    assert plan.concurrent_requests != 3
    admission = serving_contract(cr.spec, plan).admission
    assert (admission.max_concurrent_requests, admission.decode_workers, admission.decode_threads) == (3, 5, 2)
    assert sizing_for(cr.spec, plan).cpu_milli == reserved_cpu_milli(cr.spec) + 5 * DECODE_CPU_MILLI
    hpa = next(o for o in render(cr, plan) if o["kind"] == "HorizontalPodAutoscaler")
    assert float(hpa["spec"]["metrics"][0]["pods"]["target"]["averageValue"]) == 3

    # Explicit workers on an explicit CPU request: every decoding core is a thread of each.
    cut = _cr(admission={"decodeWorkers": 2}, resources={"cpu": "10"})
    admission = admission_settings(cut.spec, plan_for(cut.spec))
    cores = (10_000 - reserved_cpu_milli(cut.spec)) // DECODE_CPU_MILLI
    assert (admission.decode_workers, admission.decode_threads) == (2, cores)


@pytest.mark.parametrize(
    "edits",
    [
        {},
        {"admission": {"maxConcurrentRequests": 2, "decodeWorkers": 3, "decodeThreads": 0}},
        {"resources": {"cpu": "9"}},
    ],
    ids=["derived", "explicit", "cpu-request"],
)
def test_the_rendered_contract_carries_the_values_and_the_server_parses_them(
    edits: dict[str, Any], tmp_path: Path
) -> None:
    cr = _cr(**edits)
    plan = plan_for(cr.spec)
    objects = render(cr, plan)
    expected = admission_settings(cr.spec, plan)
    config_map = next(o for o in objects if o["kind"] == "ConfigMap")
    rendered = json.loads(config_map["data"][BUDGET_FILE_KEY])["admission"]
    assert rendered["max_concurrent_requests"] == expected.max_concurrent_requests
    assert rendered["decode_workers"] == expected.decode_workers
    assert rendered["decode_threads"] == expected.decode_threads
    settings = parse_settings(container_argv(objects, tmp_path), environ={})
    assert settings.admission == expected == serving_contract(cr.spec, plan).admission
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    cpu = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
    from videomodel_operator.units import parse_cpu

    assert parse_cpu(cpu) == sizing_for(cr.spec, plan).cpu_milli


@pytest.mark.parametrize("drain_seconds", [120, 40, 5])
def test_the_server_drains_inside_the_pods_grace_period(drain_seconds: int, tmp_path: Path) -> None:
    """SIGTERM comes after the preStop pause; the kubelet kills ``drainSeconds`` later. The server's
    drain plus vLLM's engine stop (ENGINE_STOP_SECONDS) must fit in that."""
    from videomodel_operator.rendering.sizing import ENGINE_STOP_SECONDS

    cr = _cr(lifecycle={"drainSeconds": drain_seconds})
    objects = render(cr, plan_for(cr.spec))
    settings = parse_settings(container_argv(objects, tmp_path), environ={})
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    after_sigterm = pod["terminationGracePeriodSeconds"] - cr.spec.lifecycle.pre_stop_seconds
    assert after_sigterm == drain_seconds
    assert settings.admission.drain_timeout == max(0, drain_seconds - ENGINE_STOP_SECONDS)
    assert settings.admission.drain_timeout + ENGINE_STOP_SECONDS <= max(after_sigterm, ENGINE_STOP_SECONDS)
