"""Why the pods of a VideoModel are not ready, read from the pods themselves (pure).

The Deployment only says "0/2 ready" until its progress deadline (often 40 minutes for a GPU
model) runs out. The pods say why at once: the scheduler's ``PodScheduled=False/Unschedulable``
("0/3 nodes are available: 3 Insufficient nvidia.com/gpu"), a container waiting in
``ErrImagePull``/``ImagePullBackOff``, or one whose last run ended ``OOMKilled``. The
reconciler lists the pods of the Deployment's selector only while the workload is not ready,
and :func:`pod_problem` picks the one reason a human should see first.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

IMAGE_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
CONFIG_REASONS = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError")

POD_REASONS: tuple[str, ...] = (
    "OOMKilled",
    "ImagePullFailed",
    "ContainerConfigError",
    "CrashLoopBackOff",
    "Unschedulable",
)
"""Condition reasons :func:`pod_problem` returns, most urgent first."""

MESSAGE_LIMIT = 400


def matches(selector: dict[str, str], pod: Obj) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def _statuses(pod: Obj) -> list[Obj]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def _terminated(cs: Obj, which: str) -> Obj:
    return ((cs.get(which) or {}).get("terminated")) or {}


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def _problems(pod: Obj) -> list[tuple[int, str, str]]:
    """(rank, reason, message) of each problem of one pod."""
    name = (pod.get("metadata") or {}).get("name", "?")
    found: list[tuple[int, str, str]] = []
    for cs in _statuses(pod):
        container = cs.get("name", "?")
        where = f"pod {name} container {container}"
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason", ""))
        last, now = _terminated(cs, "lastState"), _terminated(cs, "state")
        if "OOMKilled" in (last.get("reason"), now.get("reason")):
            found.append((0, "OOMKilled", f"{where} was OOMKilled: it exceeded its memory limit"))
        if reason in IMAGE_REASONS:
            detail = waiting.get("message") or cs.get("image", "")
            found.append((1, "ImagePullFailed", f"{where}: {reason}: {_short(detail)}"))
        elif reason in CONFIG_REASONS:
            found.append((2, "ContainerConfigError", f"{where}: {reason}: {_short(waiting.get('message', ''))}"))
        elif reason == "CrashLoopBackOff":
            exit_code = last.get("exitCode")
            tail = f" (last exit code {exit_code})" if exit_code is not None else ""
            found.append((3, "CrashLoopBackOff", f"{where} is crash-looping{tail}"))
    for condition in (pod.get("status") or {}).get("conditions") or []:
        scheduled = (condition.get("type"), condition.get("status"), condition.get("reason"))
        if scheduled == ("PodScheduled", "False", "Unschedulable"):
            why = _short(condition.get("message", ""))
            found.append((4, "Unschedulable", f"pod {name} cannot be scheduled: {why}"))
    return found


def pod_problem(pods: list[Obj]) -> tuple[str, str] | None:
    """The most urgent (reason, message) among ``pods``, or None when none has a known problem.

    Deterministic for the same pods (sorted by rank, then pod name), so a resync over an
    unchanged world computes the same condition and writes nothing.
    """
    found: list[tuple[int, str, str, str]] = []
    for pod in pods:
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        name = str((pod.get("metadata") or {}).get("name", ""))
        found += [(rank, name, reason, message) for rank, reason, message in _problems(pod)]
    if not found:
        return None
    found.sort()
    rank, _, reason, message = found[0]
    same = sum(1 for f in found if f[0] == rank)
    if same > 1:
        message += f" (and {same - 1} more like it)"
    return reason, message
