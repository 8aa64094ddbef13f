"""Drift: is the swarm still what the spec says, and is it healthy? (pure)

Two separate questions, answered from one plan and the observation it was made from:

- **sync**: every difference between spec and swarm, field by field, as the plan's actions
  state them; objects that stand in the spec's way (a service or network of the spec's name, or
  a published port, that the stack does not own); owned objects the spec no longer lists; an
  external network the spec names that does not exist.
- **health**: per service, tasks running on ready nodes vs desired, a rollback or a paused
  update, tasks that fail or cannot be placed (with the last task error); nodes down or not
  ready; nodes the spec declares that are not part of the swarm.

A report is built with secrets already masked (``converge.masking``), so it can be
printed, saved or sent anywhere. No clock and no I/O here: the caller passes the time of the
check, its duration and the spec's git commit. ``converge.render`` renders the report.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from converge.actions import Plan, format_value
from converge.diff import diff
from converge.executor import service_progress
from converge.loader import LoadedSpec
from converge.masking import scrub
from converge.normalize import object_name
from converge.planner import port_collisions
from converge.render.plan import plan_document
from converge.state import ObservedService, ObservedState

__all__ = [
    "DriftFinding",
    "DriftReport",
    "FailOn",
    "ServiceStatus",
    "SpecIdentity",
    "drift_report",
]

FindingKind = Literal["sync", "health"]
FailOn = Literal["drift", "health", "any"]

_ROLLED_BACK = frozenset({"rollback_started", "rollback_paused", "rollback_completed"})
_FAILED_TASK_STATES = frozenset({"failed", "rejected"})


@dataclass(frozen=True)
class DriftFinding:
    """One way the swarm is not what the spec says (``sync``) or not well (``health``).

    Attributes:
        address: the spec's address of the object: ``service.web``, ``node.worker3``.
        name: the object's name in the swarm: ``shop_web``, ``worker3``.
        field: the field that differs (``replicas``, ``env.FOO``), ``state`` or ``tasks`` for
            health, or None when the whole object is concerned.
        before: sync only: the swarm's value (None: absent there).
        after: sync only: the spec's value (None: absent there).
        action: sync only: what ``converge apply`` would do (create, update, scale, replace,
            remove) or ``collision`` when it cannot.
    """

    kind: FindingKind
    address: str
    name: str
    field: str | None
    message: str
    before: Any = None
    after: Any = None
    action: str | None = None


@dataclass(frozen=True)
class ServiceStatus:
    """One service of the spec (or owned by the stack): in sync? healthy? counts."""

    key: str
    name: str
    running: int
    desired: int
    update_state: str | None
    in_sync: bool
    healthy: bool


@dataclass(frozen=True)
class SpecIdentity:
    """Which spec was checked: its files, a sha256 of their contents, and its git commit."""

    files: tuple[str, ...]
    digest: str
    git_commit: str | None = None
    git_dirty: bool | None = None


@dataclass(frozen=True)
class DriftReport:
    stack: str
    checked_at: datetime
    duration: float
    spec: SpecIdentity
    findings: tuple[DriftFinding, ...]
    services: tuple[ServiceStatus, ...]
    nodes_not_ready: tuple[str, ...]
    notes: tuple[str, ...] = ()
    """The plan's own errors and warnings, for context; they do not decide the exit code."""

    @property
    def sync_findings(self) -> tuple[DriftFinding, ...]:
        return tuple(finding for finding in self.findings if finding.kind == "sync")

    @property
    def health_findings(self) -> tuple[DriftFinding, ...]:
        return tuple(finding for finding in self.findings if finding.kind == "health")

    @property
    def in_sync(self) -> bool:
        return not self.sync_findings

    @property
    def healthy(self) -> bool:
        return not self.health_findings

    @property
    def services_unhealthy(self) -> int:
        return sum(not service.healthy for service in self.services)

    def exit_code(self, fail_on: FailOn = "any") -> int:
        """0 when fine for ``fail_on``, 2 when not (1, errors, is the caller's)."""
        failed = {
            "drift": not self.in_sync,
            "health": not self.healthy,
            "any": not (self.in_sync and self.healthy),
        }[fail_on]
        return 2 if failed else 0


def drift_report(
    loaded: LoadedSpec,
    plan: Plan,
    observed: ObservedState,
    *,
    checked_at: datetime,
    duration: float = 0.0,
    git_commit: str | None = None,
    git_dirty: bool | None = None,
) -> DriftReport:
    """Sync and health findings from a plan (made without prune or rebalance) and the
    observation it was made from.

    Args:
        checked_at: when the swarm was observed (timezone-aware).
        duration: seconds the check took.
        git_commit, git_dirty: the spec's git commit, and whether its files differ from it.
    """
    sync = _sync_findings(loaded, plan, observed)
    health = _health_findings(loaded, observed)
    findings = (*sync, *health)
    services = _service_statuses(loaded, observed, findings)
    ready = {node.hostname for node in observed.nodes if node.is_ready}
    not_ready = tuple(
        sorted({node.hostname for node in observed.nodes if node.hostname not in ready})
    )
    document = plan_document(plan, loaded)
    notes = tuple(
        f"{item['severity']}: {item['address']}: {item['message']}" for item in document["findings"]
    )
    return DriftReport(
        stack=loaded.spec.stack,
        checked_at=checked_at,
        duration=duration,
        spec=SpecIdentity(loaded.files, loaded.digest, git_commit, git_dirty),
        findings=findings,
        services=services,
        nodes_not_ready=not_ready,
        notes=notes,
    )


# ---------------------------------------------------------------------------------------------
# Sync


def _sync_findings(loaded: LoadedSpec, plan: Plan, observed: ObservedState) -> list[DriftFinding]:
    stack = loaded.spec.stack
    findings: list[DriftFinding] = []
    # The plan's document carries every change already masked.
    for action in plan_document(plan, loaded)["actions"]:
        address, name, kind = action["address"], action["name"], action["kind"]
        if kind == "create":
            message = f"{action['object_kind']} {name} is in the spec but not in the swarm"
            findings.append(DriftFinding("sync", address, name, None, message, action=kind))
        elif kind == "remove":
            message = f"{name} is owned by stack {stack} but not in the spec"
            findings.append(DriftFinding("sync", address, name, None, message, action=kind))
        else:
            for change in action["changes"]:
                path = tuple(change["path"])
                before, after = change["before"], change["after"]
                message = (
                    f"{change['field']}: {format_value(path, before)} in the swarm, "
                    f"{format_value(path, after)} in the spec"
                )
                findings.append(
                    DriftFinding(
                        "sync", address, name, change["field"], message, before, after, kind
                    )
                )
    planned = {action.address for action in plan.actions}
    for item in diff(loaded.spec, observed).objects:
        if item.status == "collision":
            findings.append(
                DriftFinding("sync", item.address, item.name, None, item.detail, action="collision")
            )
        elif item.status == "remove" and item.address not in planned:
            message = f"{item.name} is owned by stack {stack} but not in the spec"
            findings.append(
                DriftFinding("sync", item.address, item.name, None, message, action="remove")
            )
        elif item.status == "missing" and item.kind == "network":
            message = f"{item.name}: {item.detail}"
            findings.append(DriftFinding("sync", item.address, item.name, None, message))
    findings.extend(_port_collisions(loaded, observed))
    return findings


def _port_collisions(loaded: LoadedSpec, observed: ObservedState) -> list[DriftFinding]:
    spec = loaded.spec
    return [
        DriftFinding(
            "sync",
            f"service.{collision.key}",
            object_name(spec.stack, collision.key),
            f"ports.{collision.published}/{collision.protocol}",
            collision.message,
            action="collision",
        )
        for collision in port_collisions(spec, observed)
    ]


# ---------------------------------------------------------------------------------------------
# Health


def _health_findings(loaded: LoadedSpec, observed: ObservedState) -> list[DriftFinding]:
    spec = loaded.spec
    findings: list[DriftFinding] = []
    owned = observed.owned_services()
    for key, declared in spec.services.items():
        name = object_name(spec.stack, key)
        service = owned.get(key)
        if service is None:
            # Reported by sync too; it is also a service that does not run.
            if declared.mode == "global" or declared.replicas != 0:
                message = f"service {name} does not exist in the swarm: nothing runs"
                findings.append(DriftFinding("health", f"service.{key}", name, "tasks", message))
            continue
        findings.extend(
            DriftFinding("health", f"service.{key}", name, field, scrub(message, loaded))
            for field, message in _service_problems(observed, key, service)
        )
    ready = {node.hostname for node in observed.nodes if node.is_ready}
    for node in sorted(observed.nodes, key=lambda item: item.hostname):
        # A Down record beside a Ready one of the same hostname: a node that rejoined.
        if node.is_ready or node.hostname in ready:
            continue
        message = (
            f"node {node.hostname} ({node.role}, {node.address or 'no address'}) is {node.state}"
        )
        findings.append(
            DriftFinding("health", f"node.{node.hostname}", node.hostname, "state", message)
        )
    for hostname in spec.nodes:
        if observed.node(hostname) is None:
            message = f"node {hostname} is declared in the spec but not part of the swarm"
            findings.append(DriftFinding("health", f"node.{hostname}", hostname, None, message))
    return findings


def _service_problems(
    observed: ObservedState, key: str, service: ObservedService
) -> list[tuple[str, str]]:
    """(field, message) for each way one existing service is unwell."""
    progress = service_progress(observed, key, service)
    problems: list[tuple[str, str]] = []
    state = service.update_state
    if state in _ROLLED_BACK or state == "paused":
        what = "was rolled back" if state == "rollback_completed" else state.replace("_", " ")
        detail = f": {service.update_message}" if service.update_message else ""
        problems.append(("update_state", f"the last update {what}{detail}"))
    if progress.running < progress.desired:
        message = f"{progress.running}/{progress.desired} tasks running"
        if progress.unplaceable:
            message += f"; {progress.unplaceable}"
        else:
            last = _last_task_error(observed, service)
            if last:
                message += f"; last task error: {last}"
        problems.append(("tasks", message))
    return problems


def _last_task_error(observed: ObservedState, service: ObservedService) -> str | None:
    tasks = observed.tasks_of(service.id)
    # Prefer errors of the service's current spec: older ones may be fixed already.
    current = [task for task in tasks if task.template_digest == service.template_digest]
    for candidates in (current, tasks):
        failing = sorted(
            (task for task in candidates if task.error or task.state in _FAILED_TASK_STATES),
            key=lambda task: task.timestamp,
        )
        if failing:
            task = failing[-1]
            node = observed.node_by_id(task.node_id)
            where = node.hostname if node else "(unassigned)"
            return f"{where}: {task.state}: {task.error or task.message}"
    return None


def _service_statuses(
    loaded: LoadedSpec, observed: ObservedState, findings: Iterable[DriftFinding]
) -> tuple[ServiceStatus, ...]:
    spec = loaded.spec
    by_address: dict[str, set[str]] = {}
    for finding in findings:
        by_address.setdefault(finding.address, set()).add(finding.kind)
    owned = observed.owned_services()
    statuses = []
    for key in sorted(set(spec.services) | set(owned)):
        service = owned.get(key)
        kinds = by_address.get(f"service.{key}", set())
        if service is None:
            running, desired, update_state = 0, _declared_replicas(loaded, key), None
        else:
            progress = service_progress(observed, key, service)
            running, desired, update_state = (
                progress.running,
                progress.desired,
                service.update_state,
            )
        statuses.append(
            ServiceStatus(
                key=key,
                name=service.name if service else object_name(spec.stack, key),
                running=running,
                desired=desired,
                update_state=update_state,
                in_sync="sync" not in kinds,
                healthy="health" not in kinds,
            )
        )
    return tuple(statuses)


def _declared_replicas(loaded: LoadedSpec, key: str) -> int:
    declared = loaded.spec.services[key]
    if declared.mode == "global":
        return 0
    return 1 if declared.replicas is None else declared.replicas
