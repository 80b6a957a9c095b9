"""Summarize a VideoModel's state into ``status``: pure, given the observed children and a clock value.

The conditions (``metav1.Condition`` shape) mean:

- ``BudgetFits``: the declared budget can be served by the model and the declared GPUs (the
  plan is feasible). False carries the plan's sentences.
- ``Ready``: the Deployment runs the current spec on every desired replica and all of them pass
  readiness. A crash-looping pod never passes readiness, so Ready is False while one does.
- ``Progressing``: a rollout (or a scale-up) is under way.
- ``Degraded``: something needs a human: the budget is infeasible or the spec invalid (the last
  good workload keeps serving), or the rollout exceeded its progress deadline, or the
  Deployment reports a replica failure.

``lastTransitionTime`` changes only when a condition's status changes, so a resync that sees
the same world computes the same status and the operator writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def _workload_conditions(verdict: Verdict, seen: Observed | None) -> dict[str, tuple[str, str, str]]:
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
    if deadline:
        degraded = (TRUE, "ProgressDeadlineExceeded", "the rollout did not progress in time: check the pods")
    elif failure is not None and failure.get("status") == TRUE:
        degraded = (TRUE, "ReplicaFailure", str(failure.get("message", "")))
    else:
        degraded = (FALSE, "", "")
    return {"Ready": ready, "Progressing": progressing, "DegradedWorkload": degraded}


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
) -> Obj:
    """The whole ``status`` for this pass. ``now`` is an RFC 3339 timestamp from the caller."""
    previous_status = previous_status or {}
    previous = {c.get("type"): c for c in previous_status.get("conditions", []) or []}
    seen = Observed.from_deployment(deployment)
    workload = _workload_conditions(verdict, seen)
    gen = verdict.generation

    if verdict.invalid is not None:
        fits = (FALSE, "InvalidSpec", verdict.invalid)
    elif not verdict.feasible:
        fits = (FALSE, "Infeasible", " ".join(verdict.problems))
    else:
        fits = (TRUE, "Fits", verdict.summary)

    degraded = workload["DegradedWorkload"]
    if verdict.invalid is not None or not verdict.feasible:
        serving = "the last applied workload keeps serving" if seen is not None else "nothing was applied"
        reason = "InvalidSpec" if verdict.invalid is not None else "InfeasibleBudget"
        degraded = (TRUE, reason, f"spec generation {gen} was not applied ({fits[2]}); {serving}")
    if degraded[0] == FALSE:
        degraded = (FALSE, "AsExpected", "")

    conditions = [
        _condition("Ready", *workload["Ready"], gen, now, previous.get("Ready")),
        _condition("Progressing", *workload["Progressing"], gen, now, previous.get("Progressing")),
        _condition("BudgetFits", *fits, gen, now, previous.get("BudgetFits")),
        _condition("Degraded", *degraded, gen, now, previous.get("Degraded")),
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
    hash_value = config_hash or previous_status.get("configHash")
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
