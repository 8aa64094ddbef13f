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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from converge.actions import Action, Plan, format_value
from converge.fileobjects import FileKind, versions_of
from converge.health import (
    FAILED_UPDATE_STATES,
    ServiceHealth,
    nodes_not_ready,
    service_health,
    update_detail,
)
from converge.loader import LoadedSpec
from converge.masking import Masker, scrub
from converge.naming import object_name
from converge.spec import Spec
from converge.state import ObservedState

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


@dataclass(frozen=True)
class DriftFinding:
    """One way the swarm is not what the spec says (``sync``) or not well (``health``).

    Attributes:
        address: the spec's address of the object: ``service.web``, ``node.worker3``.
        name: the object's name in the swarm: ``shop_web``, ``worker3``.
        field: the field that differs (``deploy.replicas``, ``environment.FOO``), ``state``
            or ``tasks`` for health, or None when the whole object is concerned.
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
    """Which spec was checked: its files, its digest and its git commit.

    ``digest`` is the plan's: ``converge.api.resolved_spec_hash``, a salted scrypt digest of
    the spec after interpolation and of its secrets' contents, the same value a plan document shows.
    """

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
        plan: as ``converge.api.make_plan`` makes it; its ``spec_digest`` identifies the spec.
        checked_at: when the swarm was observed (timezone-aware).
        duration: seconds the check took.
        git_commit, git_dirty: the spec's git commit, and whether its files differ from it.
    """
    owned = observed.owned_services()
    health = {
        key: service_health(observed, key, owned.get(key))
        for key in sorted(set(loaded.spec.services) | set(owned))
    }
    sync = _sync_findings(loaded, plan, observed)
    findings = (*sync, *_health_findings(loaded, observed, health))
    return DriftReport(
        stack=loaded.spec.stack,
        checked_at=checked_at,
        duration=duration,
        spec=SpecIdentity(loaded.files, plan.spec_digest, git_commit, git_dirty),
        findings=findings,
        services=_service_statuses(loaded, health, findings),
        nodes_not_ready=tuple(node.hostname for node in nodes_not_ready(observed)),
        notes=(
            *(
                f"{finding.severity}: {finding.address}: {scrub(finding.message, loaded)}"
                for finding in plan.findings
            ),
            # The new version beside a service is the rollout's, not an object to prune.
            *(
                f"rollout in progress: service.{key}: {candidate.name} runs the new version "
                "beside it (converge rollout status)"
                for key, candidate in sorted(observed.rollout_candidates().items())
            ),
        ),
    )


# ---------------------------------------------------------------------------------------------
# Sync


def _sync_findings(loaded: LoadedSpec, plan: Plan, observed: ObservedState) -> list[DriftFinding]:
    stack = loaded.spec.stack
    mask = Masker(loaded, plan)
    findings: list[DriftFinding] = []
    for action in plan.actions:
        if action.object_kind == "cluster":
            continue  # who owns the nodes is converge's bookkeeping, not the swarm's settings
        if action.object_kind in ("secret", "config") and action.kind in ("create", "remove"):
            message = _file_object_drift(action, loaded.spec, observed)
            findings.append(
                DriftFinding("sync", action.address, action.name, None, message, action=action.kind)
            )
        elif action.kind == "create":
            message = f"{action.object_kind} {action.name} is in the spec but not in the swarm"
            findings.append(
                DriftFinding("sync", action.address, action.name, None, message, action="create")
            )
        elif action.kind == "remove":
            message = f"{action.name} is owned by stack {stack} but not in the spec"
            findings.append(
                DriftFinding("sync", action.address, action.name, None, message, action="remove")
            )
        else:
            for change in action.changes:
                if change.path == ("managed_labels",):
                    continue  # the record of which labels the cluster spec manages
                shown = mask.change(action, change)
                message = (
                    f"{shown.field}: {format_value(shown.path, shown.before)} in the swarm, "
                    f"{format_value(shown.path, shown.after)} in the spec"
                )
                findings.append(
                    DriftFinding(
                        "sync",
                        action.address,
                        action.name,
                        shown.field,
                        message,
                        shown.before,
                        shown.after,
                        action.kind,
                    )
                )
    for finding in plan.findings:
        if finding.code in ("collision", "port_collision"):
            findings.append(
                DriftFinding(
                    "sync",
                    finding.address,
                    finding.name,
                    finding.field,
                    scrub(finding.message, loaded),
                    action="collision",
                )
            )
        elif finding.code == "not_in_spec":
            message = f"{finding.name} is owned by stack {stack} but not in the spec"
            findings.append(
                DriftFinding("sync", finding.address, finding.name, None, message, action="remove")
            )
        elif finding.code == "missing" and finding.address.startswith(
            ("network.", "secret.", "config.")
        ):
            findings.append(
                DriftFinding("sync", finding.address, finding.name, None, finding.message)
            )
    return findings


def _file_object_drift(action: Action, spec: Spec, observed: ObservedState) -> str:
    """A secret's or config's drift, in words (never its content).

    Told from the spec and the swarm as the diff tells them (an action's reason is for humans):
    the stack's versions of a declared key make a create a new version and a removal an old one.
    """
    kind: FileKind = "secret" if action.object_kind == "secret" else "config"
    what = f"{kind} {action.key}"
    declared = (spec.secrets if kind == "secret" else spec.configs).get(action.key)
    versions = (
        versions_of(spec, observed, kind, action.key)
        if declared is not None and not declared.external
        else []
    )
    if action.kind == "remove":
        if any(version.name == action.name for version in versions):
            return f"{action.name} is an old version of {what} beyond those kept"
        return f"{action.name} is owned by the stack but not in the spec"
    if versions:
        return f"{what}: the spec's content differs from the version the services use"
    return f"{what} is in the spec but not in the swarm"


# ---------------------------------------------------------------------------------------------
# Health


def _health_findings(
    loaded: LoadedSpec, observed: ObservedState, health: Mapping[str, ServiceHealth]
) -> list[DriftFinding]:
    spec = loaded.spec
    findings: list[DriftFinding] = []
    for key, declared in spec.services.items():
        item = health[key]
        address = f"service.{key}"
        if not item.exists:
            # Reported by sync too; it is also a service that does not run.
            if declared.deploy.is_global or declared.deploy.replicas != 0:
                name = object_name(spec.stack, key)
                message = f"service {name} does not exist in the swarm: nothing runs"
                findings.append(DriftFinding("health", address, name, "tasks", message))
            continue
        findings.extend(
            DriftFinding("health", address, item.name, field, scrub(message, loaded))
            for field, message in _service_problems(item)
        )
    for node in nodes_not_ready(observed):
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


def _service_problems(health: ServiceHealth) -> list[tuple[str, str]]:
    """(field, message) for each way one existing service is unwell."""
    problems: list[tuple[str, str]] = []
    state = health.update_state
    if state in FAILED_UPDATE_STATES:
        what = "was rolled back" if state == "rollback_completed" else state.replace("_", " ")
        detail = update_detail(state, health.update_message)
        detail = f": {detail}" if detail else ""
        problems.append(("update_state", f"the last update {what}{detail}"))
    if health.job:
        # A job's tasks stop once they completed: only a failed or unplaceable run is unwell.
        if health.failure or health.unplaceable:
            message = f"job: {health.completed}/{health.desired} tasks completed; "
            problems.append(("tasks", message + (health.failure or health.unplaceable or "")))
        return problems
    if health.running < health.desired:
        message = f"{health.running}/{health.desired} tasks running"
        if health.unplaceable:
            message += f"; {health.unplaceable}"
        elif health.errors:
            message += f"; last task error: {health.errors[-1]}"
        problems.append(("tasks", message))
    return problems


def _service_statuses(
    loaded: LoadedSpec, health: Mapping[str, ServiceHealth], findings: Iterable[DriftFinding]
) -> tuple[ServiceStatus, ...]:
    spec = loaded.spec
    by_address: dict[str, set[str]] = {}
    for finding in findings:
        by_address.setdefault(finding.address, set()).add(finding.kind)
    statuses = []
    for key, item in health.items():
        kinds = by_address.get(f"service.{key}", set())
        statuses.append(
            ServiceStatus(
                key=key,
                name=item.name if item.exists else object_name(spec.stack, key),
                running=item.running,
                desired=item.desired if item.exists else _declared_replicas(loaded, key),
                update_state=item.update_state,
                in_sync="sync" not in kinds,
                healthy="health" not in kinds,
            )
        )
    return tuple(statuses)


def _declared_replicas(loaded: LoadedSpec, key: str) -> int:
    deploy = loaded.spec.services[key].deploy
    if deploy.is_global:
        return 0
    return 1 if deploy.replicas is None else deploy.replicas
