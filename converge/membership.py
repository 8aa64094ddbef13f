"""Swarm membership from the cluster spec (pure): init, join, promote, demote, remove.

A node whose cluster spec entry gives its ``engine`` is made a member: the swarm is initialised
on the first declared manager when there is none, missing nodes join (as workers: a manager is
then promoted, so that every change of the managers is one promotion or demotion at a time),
and nodes that left the spec are removed with ``--prune`` only (a manager demoted first).
Roles are reached by promotions first, then demotions, one at a time; apply waits for every
manager to be reachable in Raft before and after each (``converge.members``). The steps are
plan actions in the ``membership`` phase, in the order apply runs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from converge.actions import Action, Phase, PlanFinding
from converge.diff import FieldChange
from converge.spec import ClusterSpec
from converge.state import ObservedNode

__all__ = ["EngineProbe", "manages_membership", "plan_membership"]

StepKind = Literal["init", "join", "promote", "demote", "remove"]


@dataclass(frozen=True)
class EngineProbe:
    """What a node's own engine said about itself (``/info``), or why it did not answer."""

    reachable: bool
    error: str = ""
    local_state: str = "inactive"
    node_id: str = ""
    cluster_id: str = ""
    is_manager: bool = False


def manages_membership(cluster: ClusterSpec | None) -> bool:
    """Whether the cluster spec makes nodes members (some node gives its engine)."""
    return cluster is not None and any(node.engine for node in cluster.nodes.values())


def _action(
    kind: StepKind, hostname: str, change: FieldChange, reason: str, node_id: str = ""
) -> Action:
    action_kind: Literal["create", "update", "remove"] = (
        "create" if kind in ("init", "join") else "remove" if kind == "remove" else "update"
    )
    return Action(
        Phase.MEMBERSHIP,
        action_kind,
        "node",
        hostname,
        hostname,
        reason,
        (change,),
        observed_id=node_id or None,
    )


def plan_membership(
    cluster: ClusterSpec,
    probes: Mapping[str, EngineProbe],
    nodes: Sequence[ObservedNode],
    prune: bool,
    connected_to: str = "",
) -> tuple[list[Action], list[PlanFinding]]:
    """The membership steps that make the swarm's members and roles those ``cluster`` declares.

    Args:
        probes: each declared node's own engine, by hostname (nodes that give an engine).
        nodes: the swarm's nodes as a manager lists them (empty: there is no swarm yet).
        connected_to: the hostname of the manager converge talks to (never demoted or removed).

    Returns:
        the steps as actions, in order, and findings (unreachable engines, quorum warnings).
    """
    steps: list[Action] = []
    findings: list[PlanFinding] = []
    members: dict[str, ObservedNode] = {}
    for node in nodes:  # a Down record of a node that rejoined loses to the Ready one
        if node.hostname not in members or node.is_ready:
            members[node.hostname] = node
    roles = {hostname: node.role for hostname, node in members.items()}
    by_id = {node.id: node.hostname for node in nodes}
    joining: list[str] = []
    for hostname, declared in cluster.nodes.items():
        probe = probes.get(hostname)
        if declared.engine is None or probe is None or hostname in members:
            continue
        address = f"node.{hostname}"
        if not probe.reachable:
            message = f"cannot reach its engine {declared.engine}: {probe.error}"
            findings.append(PlanFinding("error", address, message))
        elif probe.local_state == "active" and probe.node_id in by_id:
            message = (
                f"its engine is the member named {by_id[probe.node_id]}: the cluster spec must "
                "use the node's hostname"
            )
            findings.append(PlanFinding("error", address, message))
        elif probe.local_state == "active":
            message = (
                f"its engine is in another swarm (node {probe.node_id[:12]}); "
                "make it leave that swarm first (docker swarm leave)"
            )
            findings.append(PlanFinding("error", address, message))
        else:
            joining.append(hostname)
    if not members and manages_membership(cluster):
        first = next((h for h in joining if cluster.nodes[h].role == "manager"), None)
        if first is None:
            message = (
                "there is no swarm, and no declared manager whose engine answers to "
                "initialise it on"
            )
            return steps, [*findings, PlanFinding("error", "cluster", message)]
        change = FieldChange(("membership",), None, "init")
        steps.append(_action("init", first, change, "no swarm yet: the first declared manager"))
        roles[first] = "manager"
        joining.remove(first)
    for hostname in joining:
        change = FieldChange(("membership",), None, "join")
        steps.append(_action("join", hostname, change, "not a member yet: joins as a worker"))
        roles[hostname] = "worker"

    promotions, demotions = [], []
    for hostname, declared in cluster.nodes.items():
        current = roles.get(hostname)
        if declared.role is None or current is None or current == declared.role:
            continue
        node_id = members[hostname].id if hostname in members else ""
        if declared.role == "manager":
            promotions.append(
                _action(
                    "promote",
                    hostname,
                    FieldChange(("role",), current, "manager"),
                    "promoted to manager (one at a time, waiting for Raft)",
                    node_id,
                )
            )
        elif hostname == connected_to:
            findings.append(
                PlanFinding(
                    "error",
                    f"node.{hostname}",
                    "converge is connected to this manager: demote it through another one "
                    "(point DOCKER_HOST at it)",
                )
            )
        else:
            demotions.append(
                _action(
                    "demote",
                    hostname,
                    FieldChange(("role",), current, "worker"),
                    "demoted to worker (one at a time, waiting for Raft)",
                    node_id,
                )
            )
    steps.extend(promotions)
    steps.extend(demotions)

    if manages_membership(cluster):
        for hostname, node in sorted(members.items()):
            if hostname in cluster.nodes:
                continue
            address = f"node.{hostname}"
            if not prune:
                findings.append(
                    PlanFinding(
                        "warning",
                        address,
                        f"{hostname} is a member of the swarm but not in the cluster spec; "
                        "--prune removes it",
                        "",
                        hostname,
                    )
                )
                continue
            if hostname == connected_to:
                findings.append(
                    PlanFinding("error", address, "converge is connected to this manager: it stays")
                )
                continue
            if node.role == "manager":
                steps.append(
                    _action(
                        "demote",
                        hostname,
                        FieldChange(("role",), "manager", "worker"),
                        "leaves the swarm: demoted first (waiting for Raft)",
                        node.id,
                    )
                )
                roles[hostname] = "worker"
            steps.append(
                _action(
                    "remove",
                    hostname,
                    FieldChange(("membership",), "member", None),
                    "no longer in the cluster spec (--prune)",
                    node.id,
                )
            )
            roles.pop(hostname, None)

    final = {**roles, **{h: n.role for h, n in cluster.nodes.items() if n.role and h in roles}}
    managers = sum(role == "manager" for role in final.values())
    if managers and managers % 2 == 0:
        findings.append(
            PlanFinding(
                "warning",
                "cluster",
                f"{managers} managers: an even number tolerates no more manager failures than "
                f"{managers - 1} (quorum needs {managers // 2 + 1})",
            )
        )
    if managers > 7:
        findings.append(
            PlanFinding(
                "warning",
                "cluster",
                f"{managers} managers: more than seven slow Raft down for no more safety",
            )
        )
    if roles and managers == 0:
        findings.append(
            PlanFinding("error", "cluster", "the swarm would be left without a manager")
        )
    return steps, findings
