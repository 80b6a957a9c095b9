"""``videomodel plan|render|crd``: output shapes, exit codes, and that render prints what the
operator applies."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from videomodel_operator.cli import EXIT_INFEASIBLE, EXIT_INVALID, EXIT_OK, main
from videomodel_operator.crdgen import crd_yaml
from videomodel_operator.planning import plan_for
from videomodel_operator.rendering import render
from videomodel_operator.spec import parse_video_model

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SEVEN_B = EXAMPLES / "qwen2-vl-7b-a100.yaml"
INFEASIBLE = next((EXAMPLES / "infeasible").glob("*.yaml"))


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_plan_json_has_the_contract_keys() -> None:
    code, out, err = run("plan", "-f", str(SEVEN_B), "-o", "json")
    assert code == EXIT_OK and err == ""
    plan = json.loads(out)
    for key in (
        "max_model_len",
        "frames_per_video",
        "tokens_per_video",
        "limit_mm_per_prompt",
        "fetch_timeout_seconds",
        "feasible",
        "problems",
    ):
        assert key in plan, key
    assert plan["feasible"] is True and plan["problems"] == []
    assert plan["max_model_len"] == 20804
    # vLLM's profile dummy (14 frames is its Qwen2-VL cap), not the worst case: see Plan.profile_video.
    # Its frame is the processor's largest, which holds the budget's 1120x896 image as well.
    assert plan["limit_mm_per_prompt"]["video"] == {"count": 1, "num_frames": 14, "width": 1120, "height": 896}
    assert plan["frames_per_video"] == 128
    # Fewer, larger frames than the worst case, as many vision tokens or more.
    assert plan["profile_video"]["covers"] == 1 and plan["profile_video"]["tokens"] >= plan["tokens_per_video"] - 2


def test_plan_yaml_equals_json() -> None:
    _, as_json, _ = run("plan", "-f", str(SEVEN_B), "-o", "json")
    _, as_yaml, _ = run("plan", "-f", str(SEVEN_B), "-o", "yaml")
    assert yaml.safe_load(as_yaml) == json.loads(as_json)


def test_plan_table_is_readable() -> None:
    code, out, _ = run("plan", "-f", str(SEVEN_B))
    assert code == EXIT_OK
    assert "max model len        20,804 of 32,768" in out
    assert "feasible             yes" in out


def test_infeasible_plan_prints_the_plan_and_exits_3_with_problems_on_stderr() -> None:
    code, out, err = run("plan", "-f", str(INFEASIBLE), "-o", "json")
    assert code == EXIT_INFEASIBLE == 3
    plan = json.loads(out)
    assert plan["feasible"] is False and plan["problems"]
    assert err.startswith("infeasible: needs ")
    assert "lower maxFrames" in err


def test_invalid_cr_exits_1_with_a_message_naming_the_field(tmp_path: Path) -> None:
    body = yaml.safe_load(SEVEN_B.read_text())
    body["spec"]["budget"]["fps"] = 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(body))
    code, out, err = run("plan", "-f", str(bad))
    assert code == EXIT_INVALID and out == ""
    assert "spec.budget.fps" in err and "greater than 0" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a: [", "not valid YAML"),
        ("- 1\n- 2\n", "must be a mapping"),
        ("kind: ConfigMap\napiVersion: v1\n", "holds 0 VideoModel"),
    ],
)
def test_unusable_files_exit_1(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(content)
    code, _, err = run("plan", "-f", str(path))
    assert code == EXIT_INVALID and message in err


def test_missing_file_exits_1() -> None:
    code, _, err = run("plan", "-f", "/nonexistent/cr.yaml")
    assert code == EXIT_INVALID and "cannot read" in err


def test_render_prints_exactly_the_operator_objects_and_they_validate() -> None:
    code, out, _ = run("render", "-f", str(SEVEN_B))
    assert code == EXIT_OK
    documents = [d for d in yaml.safe_load_all(out) if d]
    cr = parse_video_model(yaml.safe_load(SEVEN_B.read_text()))
    assert documents == render(cr, plan_for(cr.spec))
    for obj in documents:
        kubernetes_validate.validate(obj, "1.34.0", strict=True)
        assert "ownerReferences" not in obj["metadata"]  # no uid in a file: see `render --help`


def test_render_with_a_uid_sets_owner_references(tmp_path: Path) -> None:
    body = yaml.safe_load(SEVEN_B.read_text())
    body["metadata"]["uid"] = "0b6a3b53-5d2e-4a8c-9d34-1b1f8a9c0e11"
    path = tmp_path / "cr.yaml"
    path.write_text(yaml.safe_dump(body))
    _, out, _ = run("render", "-f", str(path), "--service-monitor")
    documents = [d for d in yaml.safe_load_all(out) if d]
    assert "ServiceMonitor" in [d["kind"] for d in documents]
    assert all(d["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"] for d in documents)


def test_render_of_an_infeasible_cr_prints_nothing_and_exits_3() -> None:
    code, out, err = run("render", "-f", str(INFEASIBLE))
    assert code == EXIT_INFEASIBLE and out == "" and "infeasible" in err


def test_crd_command_prints_the_generated_crd() -> None:
    code, out, _ = run("crd")
    assert code == EXIT_OK and out == crd_yaml()


def test_stdin_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(SEVEN_B.read_text()))
    code, out, _ = run("plan", "-f", "-", "-o", "json")
    assert code == EXIT_OK and json.loads(out)["max_model_len"] == 20804


def test_console_script_is_installed_and_works() -> None:
    script = Path(sys.executable).parent / "videomodel"
    assert script.exists(), "the videomodel console script is not installed (pip install -e .)"
    result = subprocess.run(
        [str(script), "plan", "-f", str(SEVEN_B), "-o", "json"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames_per_video"] == 128


def test_every_example_plans_as_its_directory_says() -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        assert run("plan", "-f", str(path), "-o", "json")[0] == EXIT_OK, path.name
    for path in sorted((EXAMPLES / "infeasible").glob("*.yaml")):
        assert run("plan", "-f", str(path), "-o", "json")[0] == EXIT_INFEASIBLE, path.name
