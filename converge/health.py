"""Per-service health, one definition for apply's wait, drift and status (pure).

A service is **converged** when as many tasks as it wants run the service's current task
template on nodes that are ready, and no update is in flight. It has **failed** when the
engine rolled its update back or paused it, or when tasks of its current template keep
failing. It is **unplaceable** while tasks wait for a node the scheduler cannot find (a
failure only if it persists: right after node labels change the scheduler may still judge on
the old ones). Node state matters: a node that just died reads as Ready for a while and its
tasks as running, so tasks count only on nodes that are ready.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from converge.state import ObservedNode, ObservedService, ObservedState, ObservedTask

__all__ = [
    "FAILED_TASK_STATES",
    "FAILED_UPDATE_STATES",
    "ROLLBACK_STATES",
    "SETTLING_STATES",
    "ServiceHealth",
    "TaskError",
    "desired_task_count",
    "has_failed_tasks",
    "nodes_not_ready",
    "running_tasks",
    "service_health",
    "task_errors",
    "update_detail",
]

ROLLBACK_STATES = frozenset({"rollback_started", "rollback_paused", "rollback_completed"})
"""Update states that mean the engine undid (or is undoing) the last update."""
SETTLING_STATES = frozenset({"updating", "rollback_started"})
"""Update states in which the engine is still moving tasks: let it finish before judging."""
FAILED_UPDATE_STATES = ROLLBACK_STATES | {"paused"}
"""Update states that make a service failed: rolled back (or rolling back), or paused."""
FAILED_TASK_STATES = frozenset({"failed", "rejected"})
_ENDED_TASK_STATES = FAILED_TASK_STATES | {"complete", "shutdown", "orphaned", "remove"}
FAILURES_BEFORE_GIVING_UP = 3
"""Failed tasks of the current template (since the apply began) that make a failure."""


@dataclass(frozen=True)
class TaskError:
    """The last word of a task that failed or could not start."""

    node: str
    state: str
    message: str
    timestamp: str

    def __str__(self) -> str:
        return f"{self.node}: {self.state}: {self.message}"


@dataclass(frozen=True)
class ServiceHealth:
    """How one service of the stack stands, from one observation.

    Attributes:
        running: tasks running the current template or not, on ready nodes.
        update_state: the engine's update state (None: no update, or one older than ``since``).
        failure: why the service counts as failed, with its last task errors (None: it does not).
        unplaceable: the scheduler's complaint while tasks wait for a node (not yet a failure).
        placement: running tasks per node hostname.
        errors: the last task errors (of this apply when ``since`` was given), oldest first.
        updated: of the running tasks, those that run the current task template (during a
            rolling update, how far it got).
    """

    key: str
    name: str
    exists: bool
    running: int
    desired: int
    update_state: str | None
    converged: bool
    failure: str | None = None
    unplaceable: str | None = None
    update_message: str | None = None
    placement: Mapping[str, int] = field(default_factory=dict)
    errors: tuple[TaskError, ...] = ()
    updated: int = 0
    job: bool = False
    """A swarm job: ``completed`` of ``desired`` tasks of its current run completed, and it
    is converged once all have (its tasks then run no more: that is no sign of trouble)."""
    completed: int = 0
    failed_task: str | None = None
    """The id of a job's failed task, whose logs tell why (see ``failure``)."""
    unfinished: str | None = None
    """The newest task that is meant to run (or, for a job, to complete) and does not yet:
    where it is, its state and the engine's message, e.g. for a timeout's report."""


def desired_task_count(service: ObservedService) -> int:
    """Replicas for a replicated service; the engine's own count for a global one."""
    mode = service.raw_spec.get("Mode") or {}
    if "Replicated" in mode:
        return int((mode["Replicated"] or {}).get("Replicas", 1))
    return service.desired_tasks


def _hostname(state: ObservedState, node_id: str) -> str:
    node = state.node_by_id(node_id)
    return node.hostname if node else "(unassigned)"


def task_errors(
    state: ObservedState, service: ObservedService, since: str = "", limit: int = 3
) -> tuple[TaskError, ...]:
    """The last ``limit`` errors of the service's tasks, oldest first.

    With ``since`` (an engine timestamp taken when the apply began), only tasks of this apply;
    without it, tasks of the current template when there are any (older errors may be fixed
    already), else any.
    """
    tasks = state.tasks_of(service.id)
    if since:
        candidates = [[task for task in tasks if task.timestamp >= since]]
    else:
        current = [task for task in tasks if task.template_digest == service.template_digest]
        candidates = [current, tasks]
    for group in candidates:
        failing = sorted(
            (task for task in group if task.error or task.state in FAILED_TASK_STATES),
            key=lambda task: task.timestamp,
        )
        if failing:
            return tuple(
                TaskError(
                    _hostname(state, task.node_id),
                    task.state,
                    task.error or task.message,
                    task.timestamp,
                )
                for task in failing[-limit:]
            )
    return ()


def update_detail(state: str, message: str | None) -> str:
    """The engine's update message, or "" when it only restates the state (its
    ``rollback completed`` for the state ``rollback_completed``)."""
    words = state.replace("_", " ")
    detail = (message or "").strip()
    return "" if detail.lower().rstrip(".") in ("", words, f"update {words}") else detail


def _update_failure(state: str, message: str | None) -> str:
    """``update paused: <the engine's reason>``, or ``update rollback completed`` alone."""
    detail = update_detail(state, message)
    words = state.replace("_", " ")
    return f"update {words}: {detail}" if detail else f"update {words}"


def _errors_suffix(errors: Iterable[TaskError]) -> str:
    lines = [str(error) for error in errors]
    return "; last task errors: " + " | ".join(lines) if lines else ""


def _unfinished(state: ObservedState, tasks: Iterable[ObservedTask], goal: str) -> str | None:
    """``task 2 on worker1: preparing since 2026-11-28T15:20:01: <message>`` for the newest of
    ``tasks`` that the engine wants in state ``goal`` and that is not there yet."""
    there = _ENDED_TASK_STATES | {goal}
    waiting = [
        task for task in tasks if task.desired_state in (goal, "ready") and task.state not in there
    ]
    if not waiting:
        return None
    task = max(waiting, key=lambda task: task.timestamp)
    slot = f" {task.slot}" if task.slot is not None else ""
    detail = task.error or task.message
    return (
        f"task{slot} on {_hostname(state, task.node_id)}: {task.state}"
        f" since {task.timestamp[:19]}{': ' + detail if detail else ''}"
    )


def _placement(state: ObservedState, running: Iterable[ObservedTask]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for task in running:
        where = _hostname(state, task.node_id)
        counts[where] = counts.get(where, 0) + 1
    return dict(sorted(counts.items()))


def service_health(
    state: ObservedState,
    key: str,
    service: ObservedService | None,
    since: str = "",
    *,
    update_since: str | None = None,
) -> ServiceHealth:
    """How converged and how well one owned service is.

    Args:
        since: an engine timestamp (the newest task timestamp when an apply began): update
            states and task failures older than it are history, not this apply's outcome.
        update_since: for update states only, instead of ``since`` ("": any update counts,
            as for an apply that changes nothing and reports the state the swarm is in).
    """
    if service is None:
        return ServiceHealth(
            key, key, False, 0, 0, None, False, failure="the service does not exist"
        )
    if service.is_job:
        return _job_health(state, key, service)
    tasks = state.tasks_of(service.id)
    running = running_tasks(state, service)
    desired = desired_task_count(service)
    # An update status left over from before this apply (a paused hand update) is history.
    update_state = (
        service.update_state
        if service.update_started >= (since if update_since is None else update_since)
        else None
    )
    errors = task_errors(state, service, since)
    failure = unplaceable = None
    if update_state in FAILED_UPDATE_STATES:
        failure = _update_failure(update_state, service.update_message) + _errors_suffix(errors)
    else:
        # Tasks the scheduler cannot place while fewer than wanted run: 5 of 7 placed waits for
        # a node as surely as 0 of 7 (a host-mode port on too few nodes, too little memory).
        pending = [
            task
            for task in tasks
            if task.desired_state == "running"
            and task.state == "pending"
            and "no suitable node" in task.error + task.message
        ]
        if pending and len(running) < desired:
            complaint = pending[-1].error or pending[-1].message
            count = "" if not running else f"{len(pending)} of {desired} "
            unplaceable = f"{count}tasks cannot be placed: {complaint}"
        recent_failures = [
            task
            for task in tasks
            if task.state in FAILED_TASK_STATES
            and task.timestamp >= since
            and task.template_digest == service.template_digest
        ]
        if len(recent_failures) >= FAILURES_BEFORE_GIVING_UP:
            failure = f"{len(recent_failures)} tasks failed" + _errors_suffix(errors)
    stale = [task for task in running if task.template_digest != service.template_digest]
    updating = update_state in SETTLING_STATES
    converged = failure is None and len(running) == desired and not stale and not updating
    return ServiceHealth(
        key=key,
        name=service.name,
        exists=True,
        running=len(running),
        desired=desired,
        update_state=update_state,
        converged=converged,
        failure=failure,
        unplaceable=unplaceable,
        update_message=service.update_message,
        placement=_placement(state, running),
        errors=errors,
        updated=len(running) - len(stale),
        unfinished=None if converged else _unfinished(state, tasks, "running"),
    )


def running_tasks(state: ObservedState, service: ObservedService) -> list[ObservedTask]:
    """The service's tasks that count as running: running, meant to, on a node that is ready
    (a node that just died reads as Ready for a while, and its tasks as running)."""
    ready = {node.id for node in state.nodes if node.is_ready}
    return [
        task
        for task in state.tasks_of(service.id)
        if task.state == "running" and task.desired_state == "running" and task.node_id in ready
    ]


def has_failed_tasks(state: ObservedState, service: ObservedService) -> bool:
    """Whether any task of the service's current template failed (however long ago)."""
    return any(
        task.state in FAILED_TASK_STATES and task.template_digest == service.template_digest
        for task in state.tasks_of(service.id)
    )


def nodes_not_ready(state: ObservedState) -> list[ObservedNode]:
    """Nodes that are not ready, by hostname; a Down record of a node that rejoined under the
    same hostname (a new node id) is not counted."""
    ready = {node.hostname for node in state.nodes if node.is_ready}
    return sorted(
        (node for node in state.nodes if node.hostname not in ready),
        key=lambda node: node.hostname,
    )


def _job_health(state: ObservedState, key: str, service: ObservedService) -> ServiceHealth:
    """A job's current run (its tasks of the service's ``JobIteration``; each update of the
    service starts a new run): converged once every task completed, failed once a task failed
    and the engine will not retry it (see ``_job_attempts``)."""
    iteration = service.job_iteration or 0
    tasks = [task for task in state.tasks_of(service.id) if (task.job_iteration or 0) == iteration]
    completed = [task for task in tasks if task.state == "complete"]
    running = [task for task in tasks if task.state == "running"]
    failed = sorted(
        (task for task in tasks if task.state in FAILED_TASK_STATES),
        key=lambda task: task.timestamp,
    )
    mode = service.raw_spec.get("Mode") or {}
    if "ReplicatedJob" in mode:
        desired = int((mode["ReplicatedJob"] or {}).get("TotalCompletions") or 1)
    else:
        # A global job: one task per eligible node, as many as the orchestrator made.
        desired = len({task.node_id for task in tasks}) or max(service.desired_tasks, 1)
    errors = task_errors(state, service) if failed else ()
    failure = failed_task = None
    if failed and len(failed) >= _job_attempts(service):
        last = failed[-1]
        where = _hostname(state, last.node_id)
        if last.exit_code:
            failure = f"task on {where} exited with code {last.exit_code}"
        else:
            failure = f"task on {where}: {last.state}: {last.error or last.message}"
        failed_task = last.id
    pending = [
        task
        for task in tasks
        if task.state == "pending" and "no suitable node" in task.error + task.message
    ]
    unplaceable = None
    if pending and not running:
        unplaceable = f"tasks cannot be placed: {pending[-1].error or pending[-1].message}"
    done = {task.node_id if "GlobalJob" in mode else task.slot or task.id for task in completed}
    converged = failure is None and bool(tasks) and len(done) >= desired
    return ServiceHealth(
        key=key,
        name=service.name,
        exists=True,
        running=len(running),
        desired=desired,
        update_state=None,
        converged=converged,
        failure=failure,
        unplaceable=unplaceable,
        placement=_placement(state, completed),
        errors=errors,
        updated=len(running),
        job=True,
        completed=min(len(done), desired),
        failed_task=failed_task,
        unfinished=None if converged else _unfinished(state, tasks, "complete"),
    )


def _job_attempts(service: ObservedService) -> int:
    """Failed tasks of one run after which a job has failed: the first when its restart
    policy retries nothing (condition none), else ``max_attempts`` + 1, at most
    ``FAILURES_BEFORE_GIVING_UP`` (the engine may go on retrying: apply does not wait)."""
    template = service.raw_spec.get("TaskTemplate") or {}
    policy = template.get("RestartPolicy") or {}
    if policy.get("Condition") == "none":
        return 1
    attempts = int(policy.get("MaxAttempts") or 0)
    if attempts:
        return min(attempts + 1, FAILURES_BEFORE_GIVING_UP)
    return FAILURES_BEFORE_GIVING_UP
