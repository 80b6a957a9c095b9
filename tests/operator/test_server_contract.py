"""The operator and the server agree on what is served, field by field, for every field there is.

Nothing here lists budget fields by hand: the tests iterate over ``VideoBudget``,
``EngineSettings`` and ``AdmissionSettings`` and over the plan fields the server checks
(``SERVED_PLAN_FIELDS``), so a new field is covered the day it is added. The server side is the
real ``videomodel-server`` parser and start-up check (no engine), run on the command line and the
ConfigMap the operator renders, laid out the way the kubelet would mount them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from tests.harness.operator import EXAMPLES, image_budget_cr, load_cr, with_budget
from videomodel_devtools.pod import container_argv
from videomodel_operator.planning import plan_for
from videomodel_operator.rendering import render, serving_contract
from videomodel_operator.spec import VideoModel
from videomodel_server.budget import Plan, VideoBudget, cr_key, image_tokens
from videomodel_server.budget.contract import (
    BUDGET_FILE_KEY,
    SERVED_PLAN_FIELDS,
    AdmissionSettings,
    EngineSettings,
    plan_differences,
)
from videomodel_server.cli import parse_settings
from videomodel_server.settings import ServerSettings
from videomodel_server.wiring import Resolved, StartupError, resolve


def start_parse(cr: VideoModel, tmp_path: Path) -> tuple[Plan, ServerSettings, Resolved]:
    """Render with the operator, then parse and resolve with the server (no engine)."""
    plan = plan_for(cr.spec)
    assert plan.feasible, plan.problems
    settings = parse_settings(container_argv(render(cr, plan), tmp_path), environ={})
    return plan, settings, resolve(settings, cr.spec.to_model_spec())


def assert_same_plan(operator_plan: Plan, server_plan: Plan) -> None:
    for name in SERVED_PLAN_FIELDS:
        assert getattr(server_plan, name) == getattr(operator_plan, name), name


def test_every_example_starts_with_the_plan_the_operator_rendered(example_path: Path, tmp_path: Path) -> None:
    cr = load_cr(example_path)
    plan, settings, resolved = start_parse(cr, tmp_path)
    contract = serving_contract(cr.spec, plan)
    assert settings.budget == contract.budget
    assert settings.engine == contract.engine
    assert settings.admission == contract.admission
    assert_same_plan(plan, resolved.plan)
    assert resolved.max_model_len == plan.max_model_len
    assert settings.model.served_model_name == cr.spec.served_name
    assert settings.model.family is not None and settings.model.family.value == plan.family
    assert settings.media.allowed_media_domains == tuple(cr.spec.security.allowed_media_domains)


def test_the_image_budget_case_renders_a_server_that_starts(tmp_path: Path) -> None:
    plan, settings, resolved = start_parse(image_budget_cr(), tmp_path)
    assert settings.budget.images_per_prompt == 2 and settings.budget.image_max_pixels == 200704
    assert resolved.plan.limit_mm_per_prompt["image"]["count"] == 2
    # Before the budget travelled in one piece, the server dropped imageMaxPixels, priced each
    # image at the family default (1280 tokens) and asked for 22,086 tokens against 20,038.
    geometry = image_budget_cr().spec.to_model_spec().geometry
    assert resolved.plan.tokens_per_image == plan.tokens_per_image == image_tokens(geometry, 448, 448)
    assert image_tokens(geometry, 448, 448) < image_tokens(geometry, 1008, 980)  # the family default cap
    assert resolved.max_model_len == plan.max_model_len == 20_038


def _changed(name: str, value: Any, resolved_value: Any) -> Any:
    """A non-default value for a budget field, in the CR's terms."""
    f = next(f for f in dataclasses.fields(VideoBudget) if f.name == name)
    if f.metadata.get("cr") in ("bytes", "bandwidth"):
        return f"{int(value) // 2 // 1024**2}Mi"
    base = resolved_value if value is None else value
    if name == "total_pixels" and base is None:
        return 100 * 200704
    if isinstance(base, int) and base <= 2:
        return base - 1 if base > 0 else base + 1
    return base // 2 if isinstance(base, int) else base / 2


BUDGET_FIELDS = [f.name for f in dataclasses.fields(VideoBudget)]


@pytest.mark.parametrize("name", BUDGET_FIELDS)
def test_each_budget_field_reaches_the_server_and_both_plans_agree(name: str, tmp_path: Path) -> None:
    base = image_budget_cr()
    declared = base.spec.to_budget()
    resolved_base = declared.resolved(base.spec.to_model_spec().geometry)
    value = _changed(name, getattr(declared, name), getattr(resolved_base, name))
    cr = with_budget(base, {cr_key(name): value})
    assert getattr(cr.spec.to_budget(), name) != getattr(resolved_base, name), "the test must change the field"
    plan, settings, resolved = start_parse(cr, tmp_path)
    assert getattr(settings.budget, name) == getattr(cr.spec.to_budget().resolved(resolved.model.geometry), name)
    assert_same_plan(plan, resolved.plan)


ENGINE_CHANGES: dict[str, dict[str, Any]] = {
    "tensor_parallel_size": {"engine": {"tensorParallelSize": 2}, "resources": {"gpu": {"count": 2}}},
    "dtype": {"engine": {"dtype": "float16"}},
    "gpu_memory_utilization": {"engine": {"gpuMemoryUtilization": 0.8}},
    "max_model_len": {"budget": {"maxOutputTokens": 512}},
}


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(EngineSettings)])
def test_each_engine_setting_reaches_the_server(name: str, tmp_path: Path) -> None:
    base = image_budget_cr()
    doc = base.model_dump(by_alias=True, exclude_none=True, mode="json")
    for section, values in ENGINE_CHANGES.get(name, {}).items():
        for key, value in values.items():
            target = doc["spec"].setdefault(section, {})
            target[key] = {**target.get(key, {}), **value} if isinstance(value, dict) else value
    cr = VideoModel.model_validate(doc)
    plan, settings, _ = start_parse(cr, tmp_path)
    rendered = serving_contract(cr.spec, plan).engine
    assert getattr(settings.engine, name) == getattr(rendered, name)
    if name in ENGINE_CHANGES:
        assert getattr(rendered, name) != getattr(serving_contract(base.spec, plan_for(base.spec)).engine, name)


def test_admission_settings_are_passed_explicitly(tmp_path: Path) -> None:
    cr = image_budget_cr()
    plan = plan_for(cr.spec)
    data = json.loads(next(o for o in render(cr, plan) if o["kind"] == "ConfigMap")["data"][BUDGET_FILE_KEY])
    assert set(data["admission"]) == {f.name for f in dataclasses.fields(AdmissionSettings)}
    assert set(data["engine"]) == {f.name for f in dataclasses.fields(EngineSettings)}
    assert set(data["budget"]) == set(BUDGET_FIELDS)
    assert all(data["budget"][f] is not None for f in ("min_pixels", "max_pixels", "image_min_pixels"))


def test_a_plan_the_server_does_not_derive_refuses_to_start(tmp_path: Path) -> None:
    cr = image_budget_cr()
    argv = container_argv(render(cr, plan_for(cr.spec)), tmp_path)
    budget_file = Path(argv[argv.index("--budget-file") + 1])
    doc = json.loads(budget_file.read_text())
    doc["plan"]["tokens_per_video"] += 1
    budget_file.write_text(json.dumps(doc))
    settings = parse_settings(argv, environ={})
    with pytest.raises(StartupError, match=r"plan\.tokens_per_video"):
        resolve(settings, cr.spec.to_model_spec())


def test_a_flag_next_to_the_budget_file_wins_and_the_plan_check_catches_it(tmp_path: Path) -> None:
    cr = image_budget_cr()
    argv = container_argv(render(cr, plan_for(cr.spec)), tmp_path)
    settings = parse_settings([*argv, "--max-frames", "64"], environ={})
    assert settings.budget.max_frames == 64
    with pytest.raises(StartupError, match=r"plan\.frames_per_video"):
        resolve(settings, cr.spec.to_model_spec())


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: d.update(version=9), "version 9 is not supported"),
        (lambda d: d["budget"].update(max_secs=3), "unknown budget fields ['max_secs']"),
        (lambda d: d.update(extra={}), "unknown keys ['extra']"),
        (lambda d: d["budget"].update(fps=-1), "fps (--fps) must be positive"),
    ],
)
def test_a_bad_budget_file_exits_2_naming_the_key(
    edit: Any, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cr = image_budget_cr()
    argv = container_argv(render(cr, plan_for(cr.spec)), tmp_path)
    budget_file = Path(argv[argv.index("--budget-file") + 1])
    doc = json.loads(budget_file.read_text())
    edit(doc)
    budget_file.write_text(json.dumps(doc))
    with pytest.raises(SystemExit) as info:
        parse_settings(argv, environ={})
    assert info.value.code == 2
    assert needle in capsys.readouterr().err


def test_plan_differences_name_each_field() -> None:
    cr = image_budget_cr()
    plan = plan_for(cr.spec)
    expected = {name: getattr(plan, name) for name in SERVED_PLAN_FIELDS}
    assert plan_differences(expected, plan) == []
    for name in SERVED_PLAN_FIELDS:
        wrong = {**expected, name: "something else"}
        (problem,) = plan_differences(wrong, plan)
        assert problem.startswith(f"plan.{name}:")


def test_security_and_passthrough_flags_reach_the_server(tmp_path: Path) -> None:
    cr = load_cr(EXAMPLES / "qwen2-vl-7b-a100.yaml")
    spec = cr.spec.model_copy(
        update={
            "security": cr.spec.security.model_copy(update={"allow_http": True, "local_media_path": "/media"}),
            "engine": cr.spec.engine.model_copy(update={"extra_args": ["--enable-prefix-caching"]}),
        }
    )
    cr = cr.model_copy(update={"spec": spec})
    settings = parse_settings(container_argv(render(cr, plan_for(cr.spec)), tmp_path), environ={})
    assert settings.media.allow_http is True
    assert str(settings.media.allowed_local_media_path) == "/media"
    assert settings.engine_args == ("--enable-prefix-caching",)
