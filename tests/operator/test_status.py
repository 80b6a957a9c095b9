"""Pure status summarizing: conditions follow the Deployment's real state."""

from __future__ import annotations

from typing import Any

from videomodel_operator.status import Verdict, status_patch, summarize

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def deployment(
    generation: int = 1, observed: int = 1, replicas: int = 2, ready: int = 2, updated: int = 2, **kw: Any
) -> dict[str, Any]:
    status = {
        "observedGeneration": observed,
        "replicas": replicas,
        "readyReplicas": ready,
        "updatedReplicas": updated,
        "availableReplicas": ready,
        **kw,
    }
    return {"metadata": {"generation": generation}, "status": status}


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def summary(
    verdict: Verdict, dep: dict[str, Any] | None, previous: dict[str, Any] | None = None, now: str = T0
) -> dict[str, Any]:
    return summarize(
        verdict, dep, previous, now, url="http://x/v1", selector="a=b", plan={"maxModelLen": 1}, config_hash="h"
    )


FEASIBLE = Verdict(generation=3, desired_replicas=2, feasible=True, summary="fits")


def test_all_ready_is_ready_and_not_progressing() -> None:
    c = conditions(summary(FEASIBLE, deployment()))
    assert c["Ready"]["status"] == "True" and c["Progressing"]["status"] == "False"
    assert c["BudgetFits"]["status"] == "True" and c["Degraded"]["status"] == "False"
    assert all(x["observedGeneration"] == 3 for x in c.values())


def test_crash_looping_pods_are_not_ready() -> None:
    c = conditions(summary(FEASIBLE, deployment(ready=0)))
    assert c["Ready"]["status"] == "False" and c["Ready"]["reason"] == "ReplicasNotReady"
    assert "0/2" in c["Ready"]["message"]


def test_a_rollout_in_flight_is_progressing_not_ready() -> None:
    for dep in (deployment(generation=2, observed=1), deployment(updated=1), deployment(replicas=3, updated=2)):
        c = conditions(summary(FEASIBLE, dep))
        assert c["Ready"]["status"] == "False" and c["Ready"]["reason"] == "RollingOut"
        assert c["Progressing"]["status"] == "True"


def test_missing_deployment() -> None:
    status = summary(FEASIBLE, None)
    assert conditions(status)["Ready"]["reason"] == "DeploymentMissing"
    assert status["replicas"] == 0 and status["ready"] == "0/2"


def test_progress_deadline_is_degraded() -> None:
    stuck = deployment(
        ready=0,
        conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "x"}],
    )
    c = conditions(summary(FEASIBLE, stuck))
    assert c["Degraded"]["status"] == "True" and c["Degraded"]["reason"] == "ProgressDeadlineExceeded"
    assert c["Progressing"]["status"] == "False"


def test_infeasible_keeps_serving_and_says_so() -> None:
    """Issue 8 defect 4: an unapplied generation is never Ready, and the applied plan stays apart."""
    verdict = Verdict(generation=4, desired_replicas=2, feasible=False, problems=("too long",), applied=False)
    previous = {"appliedGeneration": 3, "appliedPlan": {"maxModelLen": 7}, "configHash": "old"}
    status = summary(verdict, deployment(), previous)
    c = conditions(status)
    assert c["BudgetFits"]["status"] == "False" and c["BudgetFits"]["message"] == "too long"
    assert c["Degraded"]["status"] == "True" and "generation 3 keeps serving" in c["Degraded"]["message"]
    # kubectl wait --for=condition=Ready must not pass on generation 4, which runs nowhere.
    assert c["Ready"]["status"] == "False" and c["Ready"]["reason"] == "InfeasibleBudget"
    assert c["Stalled"]["status"] == "True" and c["Stalled"]["observedGeneration"] == 4
    assert status["appliedGeneration"] == 3 and status["appliedPlan"] == {"maxModelLen": 7}
    assert status["plan"] == {"maxModelLen": 1} and status["configHash"] == "old"


def test_an_applied_generation_records_its_plan() -> None:
    status = summary(FEASIBLE, deployment())
    assert status["appliedGeneration"] == 3 and status["appliedPlan"] == status["plan"]
    assert conditions(status)["Stalled"]["status"] == "False"


def test_an_apply_refusal_is_stalled_with_the_servers_message() -> None:
    """Issue 8 defect 3 (pure part): the API server's message reaches a condition."""
    verdict = Verdict(3, 2, True, applied=False, blocked=("ApplyFailed", "Deployment m/x: 422 Invalid: bad"))
    c = conditions(summary(verdict, deployment(), {"appliedGeneration": 2}))
    assert c["Stalled"]["reason"] == "ApplyFailed" and "422 Invalid: bad" in c["Stalled"]["message"]
    assert c["Ready"]["status"] == "False" and c["Degraded"]["status"] == "True"


def test_invalid_spec() -> None:
    verdict = Verdict(generation=1, desired_replicas=1, feasible=False, invalid="spec.budget.fps: bad", applied=False)
    c = conditions(summary(verdict, None))
    assert c["BudgetFits"]["reason"] == "InvalidSpec" and c["Degraded"]["reason"] == "InvalidSpec"


def test_transition_time_moves_only_when_the_status_changes() -> None:
    first = summary(FEASIBLE, deployment(ready=0), now=T0)
    same = summary(FEASIBLE, deployment(ready=0), first, now=T1)
    assert same == first and status_patch(first, same) is None
    changed = summary(FEASIBLE, deployment(), first, now=T1)
    c = conditions(changed)
    assert c["Ready"]["lastTransitionTime"] == T1
    assert c["BudgetFits"]["lastTransitionTime"] == T0


def test_status_patch_removes_keys_that_went_away() -> None:
    assert status_patch({"a": 1, "b": 2}, {"a": 1}) == {"b": None}
    assert status_patch(None, {"a": 1}) == {"a": 1}


# -- issue 8: pod-level reasons and transition Events ---------------------------------------------


def _container(state: dict[str, Any], last: dict[str, Any] | None = None, name: str = "server") -> dict[str, Any]:
    return {"name": name, "state": state, "lastState": last or {}, "restartCount": 1}


def _pod(name: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": status}


def test_pod_problem_names_the_most_urgent_reason_and_the_pod() -> None:
    from videomodel_operator.pods import pod_problem

    pending = _pod(
        "a",
        conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "no GPU"}],
    )
    pulling = _pod("b", containerStatuses=[_container({"waiting": {"reason": "ErrImagePull", "message": "404"}})])
    oom = _pod(
        "c",
        containerStatuses=[
            _container({"waiting": {"reason": "CrashLoopBackOff"}}, {"terminated": {"reason": "OOMKilled"}})
        ],
    )
    crash = _pod(
        "d",
        containerStatuses=[_container({"waiting": {"reason": "CrashLoopBackOff"}}, {"terminated": {"exitCode": 3}})],
    )
    healthy = _pod("e", containerStatuses=[_container({"running": {}})])
    assert pod_problem([healthy]) is None and pod_problem([]) is None
    assert pod_problem([pending]) == ("Unschedulable", "pod a cannot be scheduled: no GPU")
    assert pod_problem([pending, pulling])[0] == "ImagePullFailed"  # type: ignore[index]
    reason, message = pod_problem([crash, pending, pulling, oom])  # type: ignore[misc]
    assert reason == "OOMKilled" and "pod c container server" in message
    assert pod_problem([crash]) == ("CrashLoopBackOff", "pod d container server is crash-looping (last exit code 3)")
    # Deterministic whatever the order the API lists them in (no status churn on resync).
    assert pod_problem([pulling, pending, crash]) == pod_problem([crash, pending, pulling])
    two = [_pod(n, conditions=pending["status"]["conditions"]) for n in ("x", "y")]
    assert pod_problem(two) == ("Unschedulable", "pod x cannot be scheduled: no GPU (and 1 more like it)")


def test_a_pod_reason_replaces_replicas_not_ready_and_degrades() -> None:
    dep = deployment(ready=0)
    status = summarize(
        FEASIBLE,
        dep,
        None,
        T0,
        url="u",
        selector="s",
        plan=None,
        config_hash="h",
        pods=("Unschedulable", "pod a cannot be scheduled: no GPU"),
    )
    got = conditions(status)
    assert got["Ready"]["reason"] == "Unschedulable" and "0/2 replicas ready" in got["Ready"]["message"]
    assert (got["Degraded"]["status"], got["Degraded"]["reason"]) == ("True", "Unschedulable")
    # All ready: a stale pod reason does not override the truth.
    fine = summarize(
        FEASIBLE, deployment(), None, T0, url="u", selector="s", plan=None, config_hash="h", pods=("X", "y")
    )
    assert conditions(fine)["Ready"]["status"] == "True" and conditions(fine)["Degraded"]["status"] == "False"


def test_transitions_are_posted_once_per_change() -> None:
    from videomodel_operator.status import transitions

    plan_a, plan_b = {"maxSeconds": 120, "maxModelLen": 1}, {"maxSeconds": 60, "maxModelLen": 1}
    first = summarize(FEASIBLE, deployment(), None, T0, url="u", selector="s", plan=plan_a, config_hash="h")
    assert [(t, r) for t, r, _ in transitions({}, first)] == [("Normal", "Created"), ("Normal", "RolledOut")]
    assert transitions(first, first) == []
    edit = Verdict(generation=4, desired_replicas=2, feasible=True, summary="fits")
    rolling = summarize(edit, deployment(2, 1), first, T1, url="u", selector="s", plan=plan_b, config_hash="h2")
    ((kind, reason, message),) = transitions(first, rolling)
    assert (kind, reason) == ("Normal", "PlanChanged") and "maxSeconds 120 -> 60" in message
    done = summarize(edit, deployment(2, 2), rolling, T1, url="u", selector="s", plan=plan_b, config_hash="h2")
    assert [r for _, r, _ in transitions(rolling, done)] == ["RolledOut"]
    sick = summarize(
        edit,
        deployment(2, 2, ready=1),
        done,
        T1,
        url="u",
        selector="s",
        plan=plan_b,
        config_hash="h2",
        pods=("OOMKilled", "pod p container server was OOMKilled"),
    )
    assert [(t, r) for t, r, _ in transitions(done, sick)] == [("Warning", "OOMKilled")]
    assert transitions(sick, sick) == []
