from videomodel_server.budget import BUILTIN_MODELS, GpuSpec, VideoBudget, derive


def test_qwen2_vl_7b_kv_bytes_per_token_is_56_kib() -> None:
    plan = derive(VideoBudget(), BUILTIN_MODELS["Qwen2-VL-7B"], GpuSpec())
    assert plan.kv_bytes_per_token == 56 * 1024


def test_over_context_budget_is_infeasible_with_a_suggestion() -> None:
    budget = VideoBudget(max_seconds=300, fps=2, max_frames=768, max_pixels=768 * 28 * 28)
    plan = derive(budget, BUILTIN_MODELS["Qwen2-VL-7B"])
    assert not plan.feasible
    assert "context is 32,768" in plan.problems[0]
    assert "lower maxFrames to" in plan.problems[0]
