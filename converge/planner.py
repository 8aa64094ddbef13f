"""Diff -> Plan (pure): ordered actions in fixed phases, and the checks of the resulting swarm.

Phases: node labels, roles and availability active/pause -> networks -> volumes -> services
created, updated, scaled, replaced -> drains -> (with prune) owned services removed, then owned
networks -> load balancer. Checks run on the node set the plan leaves behind: a constraint that
matches no active node, a drain that leaves a service nowhere to run, a published port taken by
a service converge does not own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from ipaddress import ip_network

from converge.actions import (
    RERUN_REASON,
    Action,
    ObjectKind,
    Phase,
    Plan,
    PlanFinding,
    Severity,
)
from converge.checks import NodeFacts, evaluate_constraint
from converge.diff import OLD_VERSION, Diff, FieldChange, ObjectDiff
from converge.errors import PlanError
from converge.lb.config import (
    REPLACE_FIELDS,
    container_name,
    follows_placement,
    loadbalancer_findings,
    rolls_out,
    server_names,
)
from converge.lb.rollout import describe_rollout
from converge.membership import EngineProbe, plan_membership
from converge.naming import (
    ROLLOUT_SUFFIX,
    STACK_LABEL,
    VERSION_OF_LABEL,
    candidate_name,
    is_converge_record,
    object_name,
    owned_by,
    spec_key,
)
from converge.ordering import depths, waits_for
from converge.placement import PlacementPreview, preview_placement
from converge.spec import Spec
from converge.state import ObservedState
from converge.targeting import target_plan

__all__ = ["PlanOptions", "PortCollision", "plan", "port_collisions"]

# Changes the engine cannot make in place (a service's mode: replicated, global, jobs).
_SERVICE_REPLACE_FIELDS = frozenset({"deploy.mode"})


@dataclass(frozen=True)
class PlanOptions:
    prune: bool = False
    rebalance: bool = False
    destroy: bool = False
    """Remove every object of the stack instead of converging it (``converge destroy``)."""
    targets: tuple[str, ...] = ()
    """Only these addresses and what they need (``--target``, see ``converge.targeting``)."""
    adopt: bool = False
    """Take over the spec's services that exist outside any stack (``--adopt``)."""
    take_over: bool = False
    """Make this cluster spec the owner of the nodes when another spec owns them."""
    rotate: tuple[str, ...] = ()
    """Secrets to give a new version although their current one cannot be verified (made
    without converge's fingerprint): ``--rotate KEY``."""
    resolve_image: str | None = None
    """``always``, ``changed`` or ``never`` (``--resolve-image``, ``converge.images``); None:
    the spec's ``x-converge.resolve_image``, else ``always``."""
    with_registry_auth: bool = False
    """Send registry credentials (``--with-registry-auth``; the spec can turn it on too)."""
    rerun: tuple[str, ...] = ()
    """Jobs to run again although their spec did not change (``--rerun``)."""


def plan(
    spec: Spec,
    difference: Diff,
    observed: ObservedState,
    options: PlanOptions = PlanOptions(),
    spec_digest: str | Callable[[], str] = "",
    spec_files: tuple[str, ...] = (),
    engines: Mapping[str, EngineProbe] | None = None,
) -> Plan:
    """Turn a diff into an ordered plan and check the swarm it would leave.

    ``engines``: what each declared node's own engine says (``converge.members``), for a
    cluster spec that makes nodes members; membership steps come first, in the order they run.
    ``spec_digest``: the plan's ``spec_digest``, or a function computing it when first read.

    Raises:
        PlanError: a target (``options.targets``) names nothing in the spec or the swarm.
    """
    if options.destroy:
        removals = _destroy_actions(observed)
        return Plan(
            stack=difference.stack,
            actions=tuple(removals),
            findings=_ownership_note(difference.stack, removals),
            versions=_versions(spec, observed, destroy=True),
            spec_digest=spec_digest,
            spec_files=spec_files,
        )
    actions: list[Action] = []
    findings: list[PlanFinding] = []
    membership: list[Action] = []
    if spec.cluster is not None:
        membership, found = plan_membership(
            spec.cluster, engines or {}, observed.nodes, options.prune, observed.manager
        )
        findings.extend(found)
    joining = {action.key for action in membership if action.kind == "create"}
    for item in difference.objects:
        if item.status == "missing" and item.key in joining and item.kind == "node":
            continue  # it joins first; its settings are planned once it is a member
        if item.status == "missing":
            severity: Severity = "warning" if item.kind == "node" else "error"
            findings.append(
                PlanFinding(
                    severity, item.address, f"{item.name}: {item.detail}", "missing", item.name
                )
            )
        elif item.status == "collision":
            findings.append(PlanFinding("error", item.address, item.detail, "collision", item.name))
        elif item.status == "unowned" and options.adopt:
            actions.append(_adopt_action(item, observed))
        elif item.status == "unowned":
            message = f"{item.detail}; --adopt takes it over"
            findings.append(PlanFinding("error", item.address, message, "collision", item.name))
        elif item.status == "unverifiable":
            findings.append(PlanFinding("warning", item.address, item.detail, "", item.name))
        elif item.status == "remove" and item.detail == OLD_VERSION:
            actions.append(_file_object_action(spec, item, observed))
        elif item.status == "remove" and not options.prune:
            findings.append(
                PlanFinding(
                    "warning",
                    item.address,
                    f"{item.name} is owned by stack {difference.stack} but no longer "
                    "in the spec; --prune removes it",
                    "not_in_spec",
                    item.name,
                )
            )
        elif item.kind == "loadbalancer":
            continue  # planned last: its backends may follow the other actions
        else:
            actions.extend(_actions_for(item, observed, spec))
    actions = _rollout_actions(spec, observed, actions)
    ownership, refusal = _cluster_ownership(spec, observed, options.take_over)
    actions.extend(ownership)
    findings.extend(refusal)
    findings.extend(_kept_label_findings(spec, observed, options.prune))
    actions.extend(_rerun_actions(spec, observed, actions, options.rerun))
    actions.extend(_redrive_actions(spec, observed, actions))
    if options.rebalance:
        actions.extend(_rebalance_actions(spec, observed, actions))
    actions.extend(_loadbalancer_actions(spec, difference, observed, actions, options.prune))
    actions.extend(_check_removals(observed))
    findings.extend(
        PlanFinding("error", address, message)
        for address, message in loadbalancer_findings(spec, observed)
    )
    if joining:
        preview = PlacementPreview()
        findings.append(
            PlanFinding(
                "warning",
                "cluster",
                f"{', '.join(sorted(joining))} join the swarm first: apply plans node settings, "
                "services and their placement again once they are members",
            )
        )
    else:
        findings.extend(_placement_findings(spec, observed))
        preview = _preview(spec, observed, actions)
        findings.extend(
            PlanFinding(finding.severity, finding.address, finding.message)
            for finding in preview.findings
        )
    findings.extend(
        _ownership_note(difference.stack, [a for a in actions if a.reason == NOT_IN_SPEC])
    )
    adopted = frozenset(action.name for action in actions if action.kind == "adopt")
    findings.extend(_port_findings(spec, observed, adopted))
    findings.extend(_subnet_findings(spec, observed))
    actions = _in_waves(spec, actions)
    actions.sort(key=lambda action: (action.phase, action.wave, action.object_kind, action.key))
    actions[:0] = membership  # in the order they must run
    versions = _versions(spec, observed)
    # A saved plan that adopts is stale when the service it would take over moved.
    versions.update(
        {
            action.address: action.observed_version
            for action in actions
            if action.kind == "adopt" and action.observed_version is not None
        }
    )
    result = Plan(
        stack=difference.stack,
        actions=tuple(actions),
        findings=tuple(findings),
        versions=versions,
        spec_digest=spec_digest,
        spec_files=spec_files,
        placement=preview.services,
    )
    if options.targets:
        result = target_plan(result, options.targets, spec, observed)
        # Waves count only depths that still have an action.
        result = replace(result, actions=tuple(_in_waves(spec, list(result.actions))))
    return result


NOT_IN_SPEC = "owned but no longer in the spec"


def _ownership_note(stack: str, removals: list[Action]) -> tuple[PlanFinding, ...]:
    """Said once when a plan removes what the stack owns: ownership is the stack label, which
    ``docker stack deploy`` sets exactly as converge does (they make the same objects), so
    objects that tool made under this stack name are removed too, as ``docker stack rm``
    removes converge's."""
    if not any(action.kind == "remove" for action in removals):
        return ()
    message = (
        f"what stack {stack} owns is told by the label {STACK_LABEL}={stack}, which docker "
        "stack deploy sets as converge does: objects it made under this stack name are "
        "removed too (as docker stack rm would)"
    )
    return (PlanFinding("warning", f"stack.{stack}", message),)


def _destroy_actions(observed: ObservedState) -> list[Action]:
    """Remove what the stack owns: services first, then networks (never nodes or volumes)."""
    reason = "destroying the stack"
    services = [
        Action(
            Phase.PRUNE_SERVICES,
            "remove",
            "service",
            key,
            service.name,
            reason,
            observed_id=service.id,
            observed_version=service.version,
        )
        for key, service in sorted(
            [
                *observed.owned_services().items(),
                *(
                    (f"{key}{ROLLOUT_SUFFIX}", c)
                    for key, c in observed.rollout_candidates().items()
                ),
            ]
        )
    ]
    networks = [
        Action(
            Phase.PRUNE_NETWORKS,
            "remove",
            "network",
            key,
            network.name,
            reason,
            observed_id=network.id,
        )
        for key, network in sorted(observed.owned_networks().items())
    ]
    files = [
        Action(
            Phase.PRUNE_FILES,
            "remove",
            "secret" if entry.kind == "secret" else "config",
            entry.labels.get(VERSION_OF_LABEL) or spec_key(observed.stack, entry.name),
            entry.name,
            "remove (destroying the stack)",
            observed_id=entry.id,
        )
        for entry in sorted(
            (*observed.secrets, *observed.configs), key=lambda entry: (entry.kind, entry.name)
        )
        if owned_by(entry.labels, observed.stack)
        and not is_converge_record(entry.name, observed.stack)
    ]
    return (
        services
        + _loadbalancer_removals(observed, reason)
        + _check_removals(observed)
        + files
        + networks
    )


def _versions(spec: Spec, observed: ObservedState, destroy: bool = False) -> dict[str, int]:
    """The versions a saved plan is checked against: the stack's services, and the nodes the
    spec manages (only those: another stack's node changes must not make this plan stale)."""
    managed = () if destroy else spec.nodes
    versions = {
        f"node.{node.hostname}": node.version for node in observed.nodes if node.hostname in managed
    }
    versions.update(
        {f"service.{key}": service.version for key, service in observed.owned_services().items()}
    )
    return versions


def _actions_for(item: ObjectDiff, observed: ObservedState, spec: Spec) -> list[Action]:
    if item.kind in ("secret", "config"):
        return [_file_object_action(spec, item, observed)] if item.status != "unchanged" else []
    if item.kind == "node":
        return _node_actions(item, observed)
    if item.kind == "network":
        return _network_actions(item, observed)
    return _service_actions(item, observed)


def _node_actions(item: ObjectDiff, observed: ObservedState) -> list[Action]:
    if item.status != "update":
        return []
    node = observed.node(item.key)
    assert node is not None
    draining = any(
        change.path == ("availability",) and change.after == "drain" for change in item.changes
    )
    return [
        Action(
            phase=Phase.DRAINS if draining else Phase.NODES,
            kind="update",
            object_kind="node",
            key=item.key,
            name=item.name,
            reason="drain moves the node's tasks elsewhere" if draining else "node settings differ",
            changes=item.changes,
            observed_id=node.id,
            observed_version=node.version,
        )
    ]


def _cluster_ownership(
    spec: Spec, observed: ObservedState, take_over: bool
) -> tuple[list[Action], list[PlanFinding]]:
    """Record this cluster spec as the nodes' owner, or refuse when another spec owns them.

    A stack spec (no cluster section) never writes nodes, so it needs no ownership.
    """
    if spec.cluster is None:
        return [], []
    name, owner = spec.cluster_name, observed.cluster_owner
    if owner is not None and owner.name == name:
        return [], []
    if owner is not None and not take_over:
        recorded = " ".join(part for part in (owner.since, owner.by and f"by {owner.by}") if part)
        message = (
            f"the cluster is owned by spec {owner.name!r}"
            + (f" (recorded {recorded})" if recorded else "")
            + f"; spec {name!r} may not write its nodes: --take-over makes it the owner"
        )
        return [], [PlanFinding("error", f"cluster.{name}", message, "collision", owner.name)]
    reason = (
        f"--take-over: the cluster was owned by spec {owner.name!r}"
        if owner is not None
        else "no spec owns the cluster yet"
    )
    action = Action(
        Phase.NODES,
        "update" if owner is not None else "create",
        "cluster",
        name,
        name,
        reason,
        (FieldChange(("owner",), owner.name if owner else None, name),),
        observed_id=owner.config_id if owner is not None else None,
    )
    return [action], []


def _kept_label_findings(spec: Spec, observed: ObservedState, prune: bool) -> list[PlanFinding]:
    """Labels the cluster spec managed and no longer names: kept, and said so, without --prune."""
    if prune:
        return []
    findings: list[PlanFinding] = []
    for hostname, node in spec.nodes.items():
        current = observed.node(hostname)
        if current is None:
            continue
        stopped = (current.managed_labels - set(node.labels or {})) & set(current.labels)
        for label in sorted(stopped):
            findings.append(
                PlanFinding(
                    "warning",
                    f"node.{hostname}",
                    f"label {label} is no longer in the cluster spec; --prune removes it",
                    "",
                    hostname,
                    f"labels.{label}",
                )
            )
    return findings


def _file_object_action(spec: Spec, item: ObjectDiff, observed: ObservedState) -> Action:
    """A secret's or config's create, new version (``rotate``) or removal."""
    kind: ObjectKind = "secret" if item.kind == "secret" else "config"
    if item.status in ("create", "rotate"):
        owned = observed.owned_services()
        rolling = [
            key
            for key, service in spec.services.items()
            if key in owned and any(ref.source == item.key for ref in getattr(service, f"{kind}s"))
        ]
        reason = "create"
        if item.status == "rotate":
            roll = f"{len(rolling)} service{'' if len(rolling) == 1 else 's'} roll"
            reason = f"new version; {roll}"
        return Action(Phase.FILES, "create", kind, item.key, item.name, reason)
    objects = observed.secrets if kind == "secret" else observed.configs
    found = next((entry for entry in objects if entry.name == item.name), None)
    reason = (
        "remove an old version no service uses"
        if item.detail == OLD_VERSION
        else "remove (owned, no longer in the spec)"
    )
    return Action(
        Phase.PRUNE_FILES,
        "remove",
        kind,
        item.key,
        item.name,
        reason,
        observed_id=found.id if found else None,
    )


def _base_action(
    item: ObjectDiff, phase: Phase, observed_id: str | None, version: int | None
) -> Action:
    """The update of ``item`` in ``phase``; creations, removals and replacements derive from it."""
    object_kind: ObjectKind = "network" if item.kind == "network" else "service"
    return Action(
        phase,
        "update",
        object_kind,
        item.key,
        item.name,
        "settings differ",
        item.changes,
        observed_id=observed_id,
        observed_version=version,
    )


def _network_actions(item: ObjectDiff, observed: ObservedState) -> list[Action]:
    current = observed.network_named(item.name)
    base = _base_action(item, Phase.NETWORKS, current.id if current else None, None)
    if item.status == "create":
        return [replace(base, kind="create", reason="not in the swarm yet")]
    if item.status == "remove":
        return [
            replace(
                base,
                phase=Phase.PRUNE_NETWORKS,
                kind="remove",
                reason=NOT_IN_SPEC,
            )
        ]
    if item.status == "update":
        forced = tuple(change.field for change in item.changes)
        return [
            replace(
                base, kind="replace", reason="networks cannot be changed in place", forced_by=forced
            )
        ]
    return []


def _service_actions(item: ObjectDiff, observed: ObservedState) -> list[Action]:
    if item.status not in ("create", "remove", "update"):
        return []  # unchanged: most services of a plan
    current = observed.owned_services().get(item.key)
    base = _base_action(
        item,
        Phase.SERVICES,
        current.id if current else None,
        current.version if current else None,
    )
    if item.status == "create":
        return [replace(base, kind="create", reason="not in the swarm yet")]
    if item.status == "remove":
        return [
            replace(
                base,
                phase=Phase.PRUNE_SERVICES,
                kind="remove",
                reason=NOT_IN_SPEC,
            )
        ]
    fields = {change.field for change in item.changes}
    forced = tuple(sorted(fields & _SERVICE_REPLACE_FIELDS))
    if forced:
        reason = "the engine cannot change a service's mode (replicated, global, job)"
        return [replace(base, kind="replace", reason=reason, forced_by=forced)]
    if fields == {"deploy.replicas"}:
        return [replace(base, kind="scale", reason="only the replica count differs")]
    return [replace(base, reason="service settings differ")]


def _rollout_actions(spec: Spec, observed: ObservedState, planned: list[Action]) -> list[Action]:
    """Updates of blue-green and canary services become rollouts through the balancer; a
    rollout an interrupted apply left is taken up (or its new version removed, when the spec
    no longer asks for one)."""
    balancer = spec.loadbalancer
    running = balancer is not None and any(
        lb.owned and lb.name == container_name(spec.stack, balancer)
        for lb in observed.loadbalancers
    )

    def rolls(key: str) -> bool:
        return running and rolls_out(spec, key)

    result: list[Action] = []
    for action in planned:
        if action.object_kind == "service" and action.kind == "update" and rolls(action.key):
            rollout = spec.services[action.key].x_converge.rollout
            reason = describe_rollout(rollout, candidate_name(spec.stack, action.key))
            if action.key in observed.rollout_candidates():
                reason = f"take up the rollout in progress (an apply was interrupted): {reason}"
            result.append(replace(action, kind="rollout", reason=reason))
        else:
            result.append(action)
    for key, candidate in sorted(observed.rollout_candidates().items()):
        if any(a.kind == "rollout" and a.key == key for a in result):
            continue
        home = observed.owned_services().get(key)
        if rolls(key) and home is not None:
            result = [a for a in result if not (a.object_kind == "service" and a.key == key)]
            reason = (
                f"an interrupted rollout left {candidate.name}: take it up where it stands "
                "(its traffic share in the balancer), judge the steps left, finish"
            )
            result.append(
                Action(
                    Phase.SERVICES,
                    "rollout",
                    "service",
                    key,
                    home.name,
                    reason,
                    observed_id=home.id,
                    observed_version=home.version,
                )
            )
        else:
            result.append(
                Action(
                    Phase.PRUNE_SERVICES,
                    "remove",
                    "service",
                    f"{key}{ROLLOUT_SUFFIX}",
                    candidate.name,
                    "the new version of an abandoned rollout (the spec no longer asks for one)",
                    observed_id=candidate.id,
                    observed_version=candidate.version,
                )
            )
    return result


def _adopt_action(item: ObjectDiff, observed: ObservedState) -> Action:
    """Take over a service made outside any stack: add the stack's ownership label to the
    service's labels alone (a metadata update: the task template, so every task, stays), then
    converge what differs (``item.changes``) as an update of the now owned service would."""
    current = observed.service_named(item.name)
    assert current is not None
    return Action(
        Phase.SERVICES,
        "adopt",
        "service",
        item.key,
        item.name,
        "made outside any stack; --adopt takes it over",
        item.changes,
        observed_id=current.id,
        observed_version=current.version,
    )


def _rerun_actions(
    spec: Spec, observed: ObservedState, planned: list[Action], jobs: tuple[str, ...]
) -> list[Action]:
    """A new run of each job named by ``--rerun`` (an update of the service starts one); a job
    the plan updates or creates anyway runs again by that.

    Raises:
        PlanError: a name that is not a job of the spec.
    """
    touched = {action.key for action in planned if action.object_kind == "service"}
    result: list[Action] = []
    for key in dict.fromkeys(jobs):
        declared = spec.services.get(key)
        if declared is None or not declared.deploy.is_job:
            jobs_in_spec = sorted(k for k, s in spec.services.items() if s.deploy.is_job)
            raise PlanError(
                f"--rerun {key}: not a job of stack {spec.stack} (its jobs: "
                f"{', '.join(jobs_in_spec) or 'none'})"
            )
        current = observed.owned_services().get(key)
        if key in touched or current is None:
            continue
        result.append(
            Action(
                Phase.SERVICES,
                "force",
                "service",
                key,
                current.name,
                RERUN_REASON,
                observed_id=current.id,
                observed_version=current.version,
            )
        )
    return result


def _in_waves(spec: Spec, actions: list[Action]) -> list[Action]:
    """Number the waves of the services phase by ``depends_on`` depth, counting only depths
    that have an action (1, 2, ...), and note what each service waits for."""
    depth = depths(spec)
    used = sorted(
        {
            depth.get(action.key, 0)
            for action in actions
            if action.phase is Phase.SERVICES and action.object_kind == "service"
        }
    )
    wave_of = {value: index + 1 for index, value in enumerate(used)}
    return [
        replace(
            action,
            wave=wave_of[depth.get(action.key, 0)],
            waits_for=waits_for(spec, action.key),
        )
        if action.phase is Phase.SERVICES and action.object_kind == "service"
        else action
        for action in actions
    ]


_STUCK_UPDATES = {
    "paused": "the last update was paused: re-apply resumes it",
    "rollback_paused": "the rollback of the last update was paused: re-apply resumes it",
    "rollback_completed": "the last update was rolled back: re-apply deploys the spec again",
}
"""Update states the engine never leaves by itself: only a new update moves the service on."""


def _redrive_actions(spec: Spec, observed: ObservedState, planned: list[Action]) -> list[Action]:
    """Force-update services whose spec matches but whose last update is stuck.

    After a node loss mid-update the engine keeps the update ``paused``; after a rollback the
    service stays ``rollback_completed``. Neither changes until a new update, so without this
    the plan would be empty while drift reports the service unhealthy for ever. A service with
    another planned action needs none: any update starts afresh.
    """
    touched = {action.key for action in planned if action.object_kind == "service"}
    result: list[Action] = []
    for key, service in observed.owned_services().items():
        reason = _STUCK_UPDATES.get(service.update_state or "")
        if key in touched or key not in spec.services or reason is None:
            continue
        result.append(
            Action(
                Phase.SERVICES,
                "force",
                "service",
                key,
                service.name,
                reason,
                observed_id=service.id,
                observed_version=service.version,
            )
        )
    return result


def _rebalance_actions(spec: Spec, observed: ObservedState, planned: list[Action]) -> list[Action]:
    """Force-update services whose tasks sit unevenly across the nodes that may run them."""
    touched = {action.key for action in planned if action.object_kind == "service"}
    facts = _resulting_nodes(spec, observed)
    result: list[Action] = []
    for key, service in observed.owned_services().items():
        declared = spec.services.get(key)
        if key in touched or declared is None or declared.deploy.mode != "replicated":
            continue
        eligible = [
            node.hostname
            for node in facts.values()
            if all(
                evaluate_constraint(c, node) is not False
                for c in declared.deploy.placement.constraints
            )
        ]
        if len(eligible) < 2:
            continue
        per_node = dict.fromkeys(eligible, 0)
        for task in observed.tasks_of(service.id):
            node = observed.node_by_id(task.node_id)
            if task.desired_state == "running" and node and node.hostname in per_node:
                per_node[node.hostname] += 1
        if max(per_node.values()) - min(per_node.values()) > 1:
            spread = ", ".join(f"{name}={count}" for name, count in sorted(per_node.items()))
            result.append(
                Action(
                    Phase.SERVICES,
                    "force",
                    "service",
                    key,
                    service.name,
                    f"tasks are uneven across eligible nodes ({spread})",
                    (FieldChange(("tasks",), spread, "rebalanced"),),
                    observed_id=service.id,
                    observed_version=service.version,
                )
            )
    return result


def _resulting_nodes(
    spec: Spec, observed: ObservedState, active_only: bool = True
) -> dict[str, NodeFacts]:
    """The ready (and, unless told otherwise, active) nodes once the plan's node changes apply."""
    result: dict[str, NodeFacts] = {}
    for node in observed.nodes:
        declared = spec.nodes.get(node.hostname)
        availability = node.availability
        labels = dict(node.labels)
        role = node.role
        if declared is not None:
            availability = declared.availability or "active"
            labels.update(declared.labels or {})
            role = declared.role or role
        if (active_only and availability != "active") or not node.is_ready:
            continue
        result[node.hostname] = NodeFacts(
            hostname=node.hostname,
            role=role,
            labels=labels,
            node_id=node.id,
            engine_labels=node.engine_labels,
            os=node.os,
            arch=node.arch,
        )
    return result


def _preview(spec: Spec, observed: ObservedState, actions: list[Action]) -> PlacementPreview:
    """The placement preview on the nodes the plan leaves (see ``converge.placement``)."""
    fresh = {
        action.key
        for action in actions
        if action.object_kind == "service"
        and (action.kind in ("create", "update", "replace", "force") or action.changes)
        and action.kind != "scale"
    }
    before = {
        node.hostname: NodeFacts(
            node.hostname, node.role, dict(node.labels), node.id, node.engine_labels
        )
        for node in observed.nodes
        if node.is_ready and node.availability == "active"
    }
    after = _resulting_nodes(spec, observed)
    drained = {hostname for hostname in before if hostname not in after}
    return preview_placement(spec, observed, after, fresh, drained, before)


def _placement_findings(spec: Spec, observed: ObservedState) -> list[PlanFinding]:
    after = _resulting_nodes(spec, observed)
    every_ready = _resulting_nodes(spec, observed, active_only=False)
    findings: list[PlanFinding] = []
    # Whether some node may run a service depends on its constraints alone: asked once per
    # set of constraints, not once per service.
    runs_somewhere: dict[tuple[str, ...], bool] = {}
    for key, service in spec.services.items():
        if not service.deploy.is_global and service.deploy.replicas == 0:
            continue
        constraints = tuple(service.deploy.placement.constraints)

        def runnable(node: NodeFacts, constraints: tuple[str, ...] = constraints) -> bool:
            return all(evaluate_constraint(c, node) is not False for c in constraints)

        if constraints not in runs_somewhere:
            runs_somewhere[constraints] = any(runnable(node) for node in after.values())
        if runs_somewhere[constraints]:
            continue
        # Blame a drain only when the drained node could have run the service.
        drained = [
            hostname
            for hostname, node in spec.nodes.items()
            if node.availability in ("drain", "pause")
            and (current := observed.node(hostname)) is not None
            and current.availability == "active"
            and hostname in every_ready
            and runnable(every_ready[hostname])
        ]
        if drained:
            message = (
                f"draining or pausing {', '.join(drained)} leaves service {key} nowhere to run"
            )
        else:
            shown = ", ".join(constraints) or "(no constraints)"
            message = f"no ready, active node satisfies {shown}: its tasks would stay pending"
        findings.append(PlanFinding("error", f"service.{key}", message))
    return findings


@dataclass(frozen=True)
class PortCollision:
    """A port the spec publishes that a service of another owner already publishes."""

    key: str
    published: int
    protocol: str
    owner: str

    @property
    def message(self) -> str:
        return (
            f"port {self.published}/{self.protocol} is already published by service "
            f"{self.owner}, which this stack does not own"
        )


def port_collisions(
    spec: Spec, observed: ObservedState, adopted: frozenset[str] = frozenset()
) -> list[PortCollision]:
    """Ports of the spec's services already published by services this stack does not own
    (and will not own once the plan adopted the services named in ``adopted``)."""
    taken = {
        port: service.name
        for service in observed.services
        if not (service.owned and service.stack == spec.stack) and service.name not in adopted
        for port in service.published_ports
    }
    return [
        PortCollision(key, port.published, port.effective_protocol, owner)
        for key, service in spec.services.items()
        for port in service.ports
        if port.published is not None
        and (owner := taken.get((port.published, port.effective_protocol))) is not None
    ]


def _port_findings(
    spec: Spec, observed: ObservedState, adopted: frozenset[str]
) -> list[PlanFinding]:
    return [
        PlanFinding(
            "error",
            f"service.{collision.key}",
            collision.message,
            "port_collision",
            object_name(spec.stack, collision.key),
            f"ports.{collision.published}/{collision.protocol}",
        )
        for collision in port_collisions(spec, observed, adopted)
    ]


def _subnet_findings(spec: Spec, observed: ObservedState) -> list[PlanFinding]:
    """Subnets of the spec's networks that overlap a swarm network of another name: the
    engine creates the network, and the tasks on it then wait in New for an address."""
    taken = [
        (network.name, subnet)
        for network in observed.networks
        if network.scope == "swarm"
        for pool in network.view.get("ipam", {}).get("config", ())
        if (subnet := pool.get("subnet"))
    ]
    findings = []
    for key, network in spec.stack_networks().items():
        if network.external or network.ipam is None:
            continue
        name = spec.network_name(key)
        for pool in network.ipam.config:
            for other, subnet in taken:
                if other != name and ip_network(pool.subnet).overlaps(
                    ip_network(subnet, strict=False)
                ):
                    message = (
                        f"subnet {pool.subnet} overlaps {subnet} of network {other}: the "
                        "engine would create the network, and its tasks would wait in New "
                        "for an address"
                    )
                    findings.append(
                        PlanFinding("error", f"network.{key}", message, "collision", name)
                    )
    return findings


# ---------------------------------------------------------------------------------------------
# The load balancer (see converge.lb)


def _loadbalancer_removals(observed: ObservedState, reason: str) -> list[Action]:
    # Removed with the services, before the networks it may be attached to.
    return [
        Action(
            Phase.PRUNE_SERVICES,
            "remove",
            "loadbalancer",
            spec_key(observed.stack, current.name),
            current.name,
            reason,
            observed_id=current.id,
        )
        for current in observed.loadbalancers
        if current.owned
    ]


def _check_removals(observed: ObservedState) -> list[Action]:
    # Always garbage: apply creates and removes them under the stack lock, so one that is seen
    # outlived an interrupted apply. Removed whatever --prune says.
    return [
        Action(
            Phase.PRUNE_SERVICES,
            "remove",
            "loadbalancer",
            spec_key(observed.stack, check.name),
            check.name,
            "a config check container left behind by an interrupted apply",
            observed_id=check.id,
        )
        for check in observed.loadbalancer_checks
    ]


def _loadbalancer_actions(
    spec: Spec, difference: Diff, observed: ObservedState, planned: list[Action], prune: bool
) -> list[Action]:
    """Create, reload (config only), recreate (container settings) or remove the balancer.

    A balancer whose config matches today still gets an update when the plan moves tasks
    its ``tasks`` backends follow: apply renders it again once the services converged and
    reloads only if it differs.
    """
    result: list[Action] = []
    for item in difference.objects:
        if item.kind != "loadbalancer":
            continue
        current = next((lb for lb in observed.loadbalancers if lb.name == item.name), None)
        base = Action(
            Phase.LOADBALANCER,
            "update",
            "loadbalancer",
            item.key,
            item.name,
            "the config differs: validated, then a graceful reload",
            item.changes,
            observed_id=current.id if current is not None else None,
        )
        if item.status == "create":
            node = spec.loadbalancer.node if spec.loadbalancer else "?"
            result.append(replace(base, kind="create", reason=f"not running on node {node} yet"))
        elif item.status == "remove" and prune:
            removals = _loadbalancer_removals(observed, NOT_IN_SPEC)
            result.extend(removal for removal in removals if removal.name == item.name)
        elif item.status == "update":
            forced = tuple(sorted({c.path[0] for c in item.changes} & REPLACE_FIELDS))
            if forced:
                reason = "a container's image, ports, networks or node cannot change in place"
                result.append(replace(base, kind="replace", reason=reason, forced_by=forced))
            else:
                result.append(base)
        elif item.status == "unchanged" and _moves_followed_tasks(spec, planned):
            changes = tuple(
                FieldChange(
                    ("backends", name, "servers"),
                    names,
                    "(recomputed after the services converge)",
                )
                for name, names in sorted(server_names(spec, observed).items())
            )
            reason = (
                "tasks backends follow task placement: rendered again after the services "
                "converge, reloaded only if it differs"
            )
            result.append(replace(base, reason=reason, changes=changes))
    return result


def _moves_followed_tasks(spec: Spec, planned: list[Action]) -> bool:
    followed = follows_placement(spec)
    return bool(followed) and any(
        action.object_kind == "node" or (action.object_kind == "service" and action.key in followed)
        for action in planned
    )
