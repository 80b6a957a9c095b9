"""The chart's Argo CD health check (files/argocd-health.lua) tells the truth the status tells.

Each case is a status the operator's own :func:`summarize` produces. The Lua runs in a real
Lua VM (``lupa`` from PyPI, in the lock), and its rule table is also read from the file and
evaluated by a line-by-line mirror here, so a reordered or changed rule fails.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.harness.operator import ROOT
from videomodel_operator.pods import POD_REASONS
from videomodel_operator.status import Verdict, summarize

LUA = ROOT / "charts" / "videomodel-operator" / "files" / "argocd-health.lua"
RULE = re.compile(r"^\s*\{(?P<body>type = [^}]*)\},\s*$")
FIELD = re.compile(r'(\w+) = "([^"]*)"')

T0 = "2026-01-01T00:00:00Z"


def rules() -> list[dict[str, str]]:
    return [dict(FIELD.findall(m.group("body"))) for line in LUA.read_text().splitlines() if (m := RULE.match(line))]


def mirror(obj: dict[str, Any]) -> tuple[str, str]:
    """The Lua, statement by statement."""
    status = obj.get("status")
    if status is None or status.get("conditions") is None:
        return "Progressing", "Waiting for the operator to report status"
    generation, observed = obj["metadata"].get("generation"), status.get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return "Progressing", f"Waiting for the operator to observe generation {generation}"
    by_type = {c["type"]: c for c in status["conditions"]}
    for rule in rules():
        condition = by_type.get(rule["type"])
        if (
            condition is not None
            and rule.get("status", condition["status"]) == condition["status"]
            and rule.get("reason", condition["reason"]) == condition["reason"]
        ):
            return rule["health"], condition.get("message", "")
    ready = by_type.get("Ready")
    return "Progressing", ready["message"] if ready else "Waiting for the operator to report status"


def deployment(generation: int = 1, observed: int = 1, replicas: int = 2, ready: int = 2) -> dict[str, Any]:
    status = {"observedGeneration": observed, "replicas": replicas, "readyReplicas": ready}
    return {"metadata": {"generation": generation}, "status": {**status, "updatedReplicas": replicas}}


def model(verdict: Verdict, dep: dict[str, Any] | None, pods: tuple[str, str] | None = None) -> dict[str, Any]:
    status = summarize(
        verdict, dep, None, T0, url="u", selector="s", plan={"maxModelLen": 1}, config_hash="h", pods=pods
    )
    return {"metadata": {"name": "m", "generation": verdict.generation}, "status": status}


OK = Verdict(generation=2, desired_replicas=2, feasible=True, summary="fits")
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "no-status": ({"metadata": {"generation": 1}}, "Progressing"),
    "all-ready": (model(OK, deployment()), "Healthy"),
    "rolling-out": (model(OK, deployment(2, 1)), "Progressing"),
    "creating": (model(OK, None), "Progressing"),
    "replicas-not-ready": (model(OK, deployment(ready=1)), "Progressing"),
    "unschedulable-pod": (model(OK, deployment(ready=0), ("Unschedulable", "pod p: no GPU")), "Degraded"),
    "oom-killed": (model(OK, deployment(ready=1), ("OOMKilled", "pod p was OOMKilled")), "Degraded"),
    "infeasible-edit-while-old-serves": (
        model(Verdict(generation=3, desired_replicas=2, feasible=False, problems=("too big",)), deployment()),
        "Degraded",
    ),
    "apply-refused": (
        model(Verdict(2, 2, True, blocked=("ApplyFailed", "422"), applied=False), deployment()),
        "Degraded",
    ),
    "scaled-to-zero": (model(Verdict(2, 0, True), deployment(replicas=0, ready=0)), "Suspended"),
}
# A spec edit the operator has not seen yet: the last status must not be read as Healthy.
_stale = model(OK, deployment())
_stale["metadata"]["generation"] = 3
CASES["spec-newer-than-status"] = (_stale, "Progressing")


def test_the_rule_table_reads_only_conditions_the_operator_writes() -> None:
    table = rules()
    assert [r["health"] for r in table] == ["Degraded", "Degraded", "Healthy", "Suspended"]
    written = {c["type"] for c in CASES["all-ready"][0]["status"]["conditions"]}
    assert {r["type"] for r in table} <= written
    assert "Unschedulable" in POD_REASONS  # pod reasons land in Degraded, which the table reads


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_health_mirrors_the_status(case: str) -> None:
    obj, expected = CASES[case]
    health, message = mirror(obj)
    assert health == expected, (case, message)
    if expected == "Degraded":
        assert message, case


def _to_lua(lua: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, v) for v in value])
    return value


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_lua_itself_when_a_lua_vm_is_available(case: str) -> None:
    import lupa  # in the lock: a missing Lua VM fails here rather than skipping

    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    check = lua.eval("function(obj) " + LUA.read_text() + "\nend")
    obj, expected = CASES[case]
    result = check(_to_lua(lua, obj))
    assert (result["status"], result["message"]) == mirror(obj) and result["status"] == expected
