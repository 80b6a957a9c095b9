"""From a validated spec to the budget module's Plan, and the Plan in readable forms.

Pure: the operator, the CLI and the ConfigMap all print the plan through these functions, so a
user reading ``videomodel plan -o table`` sees what ``kubectl get cm NAME-plan`` shows.
"""

from __future__ import annotations

from typing import Any

from videomodel_server.budget import Plan, derive

from .spec import VideoModelSpec

GiB = 1024**3


def plan_for(spec: VideoModelSpec) -> Plan:
    """The budget module's verdict on this spec (never raises for an unservable budget)."""
    return derive(spec.to_budget(), spec.to_model_spec(), spec.to_gpu_spec())


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / GiB:.1f} GiB"


def plan_table(plan: Plan) -> str:
    """A two-column, human summary of a plan (problems listed last)."""
    frame = plan.worst_case_frame
    geometry = f"{frame['width']}x{frame['height']}" if frame else "-"
    rows: list[tuple[str, Any]] = [
        ("model", f"{plan.model} ({plan.family})"),
        ("feasible", "yes" if plan.feasible else "NO"),
        ("max video", f"{plan.max_seconds:g} s at {plan.fps:g} fps"),
        ("frames per video", plan.frames_per_video),
        ("worst-case frame", f"{geometry} (cap {plan.frame_max_pixels:,} px)"),
        ("tokens per video", f"{plan.tokens_per_video:,}"),
        ("tokens per image", f"{plan.tokens_per_image:,}"),
        ("media per prompt", f"{plan.videos_per_prompt} video(s), {plan.images_per_prompt} image(s)"),
        ("max model len", f"{plan.max_model_len:,} of {plan.context_limit:,}"),
        ("KV per request", _gib(plan.kv_bytes_per_request)),
        ("weights", _gib(plan.weights_bytes)),
        ("KV cache available", _gib(plan.kv_cache_bytes_available)),
        ("concurrent requests", "-" if plan.concurrent_requests is None else plan.concurrent_requests),
        ("max video bytes", f"{plan.max_video_bytes:,}"),
        ("fetch timeout", f"{plan.fetch_timeout_seconds:g} s"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name.ljust(width)}  {value}" for name, value in rows]
    for problem in plan.problems:
        lines.append(f"problem: {problem}")
    for note in plan.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def plan_status(plan: Plan) -> dict[str, Any]:
    """The plan as it appears in ``status.plan``: top-level keys camelCase (Kubernetes style).

    Nested values (``limitMmPerPrompt``, ``mmProcessorKwargs``) keep the keys vLLM uses.
    Floats that are whole numbers stay floats; JSON keeps them as the server prints them.
    """
    return {_camel(key): value for key, value in plan.to_dict().items() if value is not None}
