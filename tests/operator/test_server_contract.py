"""The Deployment's command line is one the real ``videomodel-server`` accepts, meaning what the plan says.

This runs the server's own flag parser (no engine is started) on the rendered arguments, so a
renamed or retyped flag on either side fails here rather than in a crash-looping pod.
"""

from __future__ import annotations

from pathlib import Path

from videomodel_operator.planning import plan_for
from videomodel_operator.rendering import render_deployment
from videomodel_server.cli import parse_settings

from .conftest import EXAMPLES, load_cr


def test_rendered_flags_parse_into_the_same_budget_and_engine_settings(example_path: Path) -> None:
    cr = load_cr(example_path)
    plan = plan_for(cr.spec)
    container = render_deployment(cr, plan)["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["videomodel-server"]
    settings = parse_settings(container["args"], environ={"VIDEOMODEL_API_KEY": "k"})
    assert settings.max_model_len == plan.max_model_len
    assert settings.fetch_timeout == plan.fetch_timeout_seconds
    assert settings.tensor_parallel_size == cr.spec.tensor_parallel_size
    assert settings.gpu_memory_utilization == cr.spec.engine.gpu_memory_utilization
    assert settings.served_model_name == cr.spec.served_name
    assert settings.family is not None and settings.family.value == plan.family
    assert settings.port == 8000
    budget = cr.spec.to_budget().resolved(cr.spec.to_model_spec().geometry)
    server_budget = settings.budget().resolved(cr.spec.to_model_spec().geometry)
    for field in (
        "max_seconds",
        "fps",
        "max_frames",
        "min_pixels",
        "max_pixels",
        "total_pixels",
        "videos_per_prompt",
        "images_per_prompt",
        "max_video_bytes",
        "max_prompt_tokens",
        "max_output_tokens",
    ):
        assert getattr(server_budget, field) == getattr(budget, field), field
    assert settings.allowed_media_domains == tuple(cr.spec.security.allowed_media_domains)


def test_security_and_passthrough_flags_reach_the_server() -> None:
    body_path = EXAMPLES / "qwen2-vl-7b-a100.yaml"
    cr = load_cr(body_path)
    spec = cr.spec.model_copy(
        update={
            "security": cr.spec.security.model_copy(update={"allow_http": True, "local_media_path": "/media"}),
            "engine": cr.spec.engine.model_copy(update={"extra_args": ["--enable-prefix-caching"]}),
        }
    )
    cr = cr.model_copy(update={"spec": spec})
    args = render_deployment(cr, plan_for(cr.spec))["spec"]["template"]["spec"]["containers"][0]["args"]
    settings = parse_settings(args, environ={})
    assert settings.allow_http is True
    assert str(settings.allowed_local_media_path) == "/media"
    assert settings.engine_args == ("--enable-prefix-caching",)
