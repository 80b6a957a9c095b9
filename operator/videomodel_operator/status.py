"""Summarize a VideoModel's state into ``status``: pure, given the observed children and a clock value.

The conditions (``metav1.Condition`` shape) mean:

- ``BudgetFits``: the declared budget can be served by the model and the declared GPUs (the
  plan is feasible). False carries the plan's sentences.
- ``Ready``: the Deployment runs the current spec on every desired replica and all of them pass
  readiness. A crash-looping pod never passes readiness, so Ready is False while one does.
- ``Progressing``: a rollout (or a scale-up) is under way.
- ``Degraded``: something needs a human: the budget is infeasible or the spec invalid (the last
  good workload keeps serving), or the rollout exceeded its progress deadline, or the
  Deployment reports a replica failure, or a pod that is not ready says why
  (``Unschedulable``, ``ImagePullFailed``, ``OOMKilled``, ``CrashLoopBackOff``,
  ``ContainerConfigError``): that reason is also Ready's, at once rather than at the deadline.
- ``Stalled`` (kstatus): this generation cannot be applied as written (invalid spec, infeasible
  budget, the API server refused an object, or an object of the same name belongs to someone
  else). Ready is False for such a generation even while the last applied one keeps serving:
  ``kubectl wait --for=condition=Ready`` and kstatus-based health checks (Flux, Argo CD with
  the chart's health check) see the truth, not the previous generation's readiness.

``status.plan`` is the plan of the current spec; ``status.appliedPlan`` and
``status.appliedGeneration`` describe what the running workload was rendered from, and the
printer columns show the applied values.

``lastTransitionTime`` changes only when a condition's status changes, so a resync that sees
the same world computes the same status and the operator writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .pods import POD_REASONS

Obj = dict[str, Any]

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"


@dataclass(frozen=True)
class Observed:
    """What the operator saw of its Deployment (None: it does not exist)."""

    generation: int
    observed_generation: int
    replicas: int
    ready_replicas: int
    updated_replicas: int
    available_replicas: int
    conditions: tuple[Obj, ...]
    config_hash: str | None

    @classmethod
    def from_deployment(cls, deployment: Obj | None) -> Observed | None:
        if deployment is None:
            return None
        meta = deployment.get("metadata", {})
        status = deployment.get("status", {}) or {}
        return cls(
            generation=int(meta.get("generation", 0) or 0),
            observed_generation=int(status.get("observedGeneration", 0) or 0),
            replicas=int(status.get("replicas", 0) or 0),
            ready_replicas=int(status.get("readyReplicas", 0) or 0),
            updated_replicas=int(status.get("updatedReplicas", 0) or 0),
            available_replicas=int(status.get("availableReplicas", 0) or 0),
            conditions=tuple(status.get("conditions", []) or []),
            config_hash=(meta.get("annotations") or {}).get("videomodel.io/config-hash"),
        )

    def condition(self, kind: str) -> Obj | None:
        return next((c for c in self.conditions if c.get("type") == kind), None)


@dataclass(frozen=True)
class Verdict:
    """The operator's own verdict on the spec in this pass."""

    generation: int
    desired_replicas: int
    feasible: bool
    problems: tuple[str, ...] = ()
    invalid: str | None = None
    """A validation message when the spec could not be parsed at all."""
    applied: bool = True
    """False when this pass did not apply the workload (infeasible/invalid spec)."""
    summary: str = ""
    """One line on what fits (for BudgetFits=True)."""
    blocked: tuple[str, str] | None = None
    """(reason, message) when a feasible spec could not be applied (API refusal, not our object)."""

    @property
    def stall(self) -> tuple[str, str] | None:
        """(reason, message) when this generation cannot be applied as written; None when it was."""
        if self.invalid is not None:
            return "InvalidSpec", self.invalid
        if not self.feasible:
            return "InfeasibleBudget", " ".join(self.problems)
        return self.blocked


def _condition(
    kind: str, status: str, reason: str, message: str, generation: int, now: str, previous: Obj | None
) -> Obj:
    if previous is not None and previous.get("status") == status and previous.get("lastTransitionTime"):
        since = previous["lastTransitionTime"]
    else:
        since = now
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message[:32768],
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }


def _workload_conditions(
    verdict: Verdict, seen: Observed | None, pods: tuple[str, str] | None = None
) -> dict[str, tuple[str, str, str]]:
    desired = verdict.desired_replicas
    if seen is None:
        return {
            "Ready": (FALSE, "DeploymentMissing", "the Deployment does not exist yet"),
            "Progressing": (TRUE, "Creating", "creating the Deployment") if verdict.applied else (FALSE, "Blocked", ""),
            "DegradedWorkload": (FALSE, "", ""),
        }
    progress = seen.condition("Progressing")
    deadline = progress is not None and progress.get("reason") == "ProgressDeadlineExceeded"
    failure = seen.condition("ReplicaFailure")
    stale = seen.observed_generation < seen.generation
    rolling = stale or seen.updated_replicas < desired or seen.replicas > seen.updated_replicas
    ready_text = f"{seen.ready_replicas}/{desired} replicas ready"
    if desired == 0:
        ready = (FALSE, "ScaledToZero", "spec.replicas is 0")
    elif rolling:
        ready = (FALSE, "RollingOut", f"rollout in progress: {seen.updated_replicas}/{desired} updated, {ready_text}")
    elif seen.ready_replicas < desired:
        ready = (FALSE, "ReplicasNotReady", ready_text)
    else:
        ready = (TRUE, "AllReplicasReady", ready_text)
    if deadline:
        progressing = (FALSE, "ProgressDeadlineExceeded", str(progress.get("message", "")) if progress else "")
    elif rolling or (seen.ready_replicas < desired):
        progressing = (TRUE, "RollingOut", f"{seen.updated_replicas}/{desired} updated, {ready_text}")
    else:
        progressing = (FALSE, "RolloutComplete", f"{desired} replicas run the current spec")
    if pods is not None and ready[0] != TRUE and desired > 0:
        # What the pods say beats "n/m ready": the reason shows within one pass, not at the deadline.
        ready = (FALSE, pods[0], f"{pods[1]}; {ready_text}")
    if deadline:
        degraded = (TRUE, "ProgressDeadlineExceeded", "the rollout did not progress in time: check the pods")
        if pods is not None:
            degraded = (TRUE, "ProgressDeadlineExceeded", f"the rollout did not progress in time: {pods[1]}")
    elif failure is not None and failure.get("status") == TRUE:
        degraded = (TRUE, "ReplicaFailure", str(failure.get("message", "")))
    elif pods is not None and ready[0] != TRUE and desired > 0:
        degraded = (TRUE, pods[0], pods[1])
    else:
        degraded = (FALSE, "", "")
    return {"Ready": ready, "Progressing": progressing, "DegradedWorkload": degraded}


def workload_ready(verdict: Verdict, deployment: Obj | None) -> bool:
    """Whether the Deployment runs the current spec on every desired replica, all ready
    (the reconciler asks the pods why only when not)."""
    return _workload_conditions(verdict, Observed.from_deployment(deployment))["Ready"][0] == TRUE


def summarize(
    verdict: Verdict,
    deployment: Obj | None,
    previous_status: Obj | None,
    now: str,
    *,
    url: str,
    selector: str,
    plan: Obj | None,
    config_hash: str | None,
    pods: tuple[str, str] | None = None,
) -> Obj:
    """The whole ``status`` for this pass. ``now`` is an RFC 3339 timestamp from the caller;
    ``pods`` the (reason, message) of the pods' most urgent problem (:mod:`.pods`), if any."""
    previous_status = previous_status or {}
    previous = {c.get("type"): c for c in previous_status.get("conditions", []) or []}
    seen = Observed.from_deployment(deployment)
    workload = _workload_conditions(verdict, seen, pods)
    gen = verdict.generation
    stall = verdict.stall
    applied_generation = gen if stall is None else previous_status.get("appliedGeneration")
    if stall is not None:
        running = (
            f"generation {applied_generation} keeps serving ({seen.ready_replicas} ready)"
            if seen is not None and applied_generation is not None
            else ("the last applied workload keeps serving" if seen is not None else "nothing is serving")
        )
        not_applied = f"spec generation {gen} was not applied ({stall[0]}: {stall[1]}); {running}"
        workload["Ready"] = (FALSE, stall[0], not_applied)
        workload["Progressing"] = (FALSE, stall[0], not_applied)

    if verdict.invalid is not None:
        fits = (FALSE, "InvalidSpec", verdict.invalid)
    elif not verdict.feasible:
        fits = (FALSE, "Infeasible", " ".join(verdict.problems))
    else:
        fits = (TRUE, "Fits", verdict.summary)

    degraded = workload["DegradedWorkload"]
    if stall is not None:
        degraded = (TRUE, stall[0], workload["Ready"][2])
        stalled = (TRUE, stall[0], workload["Ready"][2])
    else:
        stalled = (FALSE, "AsExpected", "")
    if degraded[0] == FALSE:
        degraded = (FALSE, "AsExpected", "")

    conditions = [
        _condition("Ready", *workload["Ready"], gen, now, previous.get("Ready")),
        _condition("Progressing", *workload["Progressing"], gen, now, previous.get("Progressing")),
        _condition("BudgetFits", *fits, gen, now, previous.get("BudgetFits")),
        _condition("Degraded", *degraded, gen, now, previous.get("Degraded")),
        _condition("Stalled", *stalled, gen, now, previous.get("Stalled")),
    ]
    # Conditions want a non-empty reason (CamelCase) per metav1.Condition validation.
    for condition in conditions:
        condition["reason"] = condition["reason"] or "Unknown"

    replicas = seen.replicas if seen is not None else 0
    ready = seen.ready_replicas if seen is not None else 0
    status: Obj = {
        "observedGeneration": gen,
        "conditions": conditions,
        "replicas": replicas,
        "readyReplicas": ready,
        "ready": f"{ready}/{verdict.desired_replicas}",
        "selector": selector,
        "url": url,
    }
    if plan is not None:
        status["plan"] = plan
    elif "plan" in previous_status:
        status["plan"] = previous_status["plan"]
    if applied_generation is not None:
        status["appliedGeneration"] = applied_generation
    applied_plan = plan if stall is None else previous_status.get("appliedPlan")
    if applied_plan is not None:
        status["appliedPlan"] = applied_plan
    hash_value = (config_hash if stall is None else None) or previous_status.get("configHash")
    if hash_value:
        status["configHash"] = hash_value
    return status


def status_patch(current: Obj | None, desired: Obj) -> Obj | None:
    """A merge patch turning ``current`` status into ``desired``; None when they are equal."""
    current = current or {}
    patch: Obj = {}
    for key, value in desired.items():
        if current.get(key) != value:
            patch[key] = value
    for key in current:
        if key not in desired:
            patch[key] = None
    return patch or None


def _ready_at(status: Obj) -> tuple[str, int] | None:
    ready = next((c for c in status.get("conditions", []) or [] if c.get("type") == "Ready"), None)
    if ready is None:
        return None
    return str(ready.get("status")), int(ready.get("observedGeneration", 0) or 0)


def _plan_changes(before: Obj, after: Obj, limit: int = 8) -> str:
    keys = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    shown = [f"{k} {before.get(k, '-')} -> {after.get(k, '-')}" for k in keys[:limit]]
    if len(keys) > limit:
        shown.append(f"and {len(keys) - limit} more")
    return ", ".join(shown)


def transitions(previous: Obj | None, current: Obj) -> list[tuple[str, str, str]]:
    """The (type, reason, message) Events a status change is worth, in order.

    Derived from the persisted status before and after one pass, so each transition is posted
    once: a resync (or an operator restart) over an unchanged world sees equal statuses and
    posts nothing. ``Normal``: ``Created`` (the first generation is applied), ``PlanChanged``
    (the applied plan moved), ``RolledOut`` (Ready became True for this generation).
    ``Warning``: a pod-level reason newly in ``Degraded`` (unschedulable, image pull, OOM...).
    The Warnings for Stalled verdicts (invalid, infeasible, refused) are posted by the reconciler.
    """
    previous = previous or {}
    events: list[tuple[str, str, str]] = []
    generation = int(current.get("observedGeneration", 0) or 0)
    applied = current.get("appliedGeneration")
    conditions = {c.get("type"): c for c in current.get("conditions", []) or []}
    if applied is not None and previous.get("appliedGeneration") is None:
        fits = conditions.get("BudgetFits", {}).get("message", "")
        events.append(("Normal", "Created", f"generation {applied} applied: {fits}".rstrip(": ")))
    before, after = previous.get("appliedPlan"), current.get("appliedPlan")
    if before is not None and after is not None and before != after:
        events.append(
            ("Normal", "PlanChanged", f"generation {applied} applied a new plan: {_plan_changes(before, after)}")
        )
    ready = _ready_at(current)
    if ready == (TRUE, generation) and _ready_at(previous) != (TRUE, generation):
        message = conditions["Ready"].get("message", "")
        events.append(("Normal", "RolledOut", f"generation {generation} is ready: {message}"))
    degraded = conditions.get("Degraded", {})
    if degraded.get("status") == TRUE and degraded.get("reason") in POD_REASONS:
        was: Obj = next((c for c in previous.get("conditions", []) or [] if c.get("type") == "Degraded"), {})
        if (was.get("status"), was.get("reason")) != (TRUE, degraded.get("reason")):
            events.append(("Warning", str(degraded["reason"]), str(degraded.get("message", ""))))
    return events
