"""Membership I/O: ask each declared node's engine about itself, and run the membership steps.

The steps (``converge.membership``) run one at a time, in order, through each node's own engine
(init, join) or the manager converge is connected to (promote, demote, remove). Before and
after each promotion or demotion every manager must be reachable in Raft with a leader elected,
so that no step starts while the managers could lose quorum.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from converge.actions import Action, Phase
from converge.engine import Engine, connect
from converge.errors import EngineError
from converge.membership import EngineProbe
from converge.polling import Clock, PollTimeoutError, SystemClock, poll_until
from converge.spec import ClusterSpec, NodeSpec

__all__ = ["execute_membership", "probe_engines"]


def probe_engines(cluster: ClusterSpec) -> dict[str, EngineProbe]:
    """``/info`` of each declared node that gives its engine (unreachable ones say why)."""
    probes: dict[str, EngineProbe] = {}
    for hostname, declared in cluster.nodes.items():
        if declared.engine is None:
            continue
        try:
            with connect(declared.engine, timeout=15) as engine:
                info = engine.info()
        except EngineError as error:
            probes[hostname] = EngineProbe(False, str(error))
            continue
        probes[hostname] = EngineProbe(
            True,
            local_state=info.local_state,
            node_id=info.node_id,
            cluster_id=info.cluster_id,
            is_manager=info.is_manager,
        )
    return probes


def execute_membership(
    actions: Sequence[Action],
    cluster: ClusterSpec,
    engine: Engine,
    on_step: Callable[[Action], None] = lambda action: None,
    timeout: float = 120.0,
    clock: Clock | None = None,
) -> None:
    """Run the plan's membership steps in order, waiting after each until the swarm shows it.

    Raises:
        EngineError: a step was refused, or the swarm did not show it within ``timeout``.
    """
    clock = clock or SystemClock()
    for action in actions:
        if action.phase is not Phase.MEMBERSHIP:
            continue
        on_step(action)
        try:
            _run_step(action, cluster, engine, timeout, clock)
        except PollTimeoutError as error:
            raise EngineError(f"node {action.key}: {error}") from None


def _run_step(
    action: Action, cluster: ClusterSpec, engine: Engine, timeout: float, clock: Clock
) -> None:
    step = action.changes[0]
    declared = cluster.nodes.get(action.key)
    if step.path == ("membership",) and step.after in ("init", "join"):
        if declared is None or declared.engine is None:
            raise EngineError(f"node {action.key}: the cluster spec gives no engine for it")
        if step.after == "join":
            _join(engine, action.key, declared, timeout, clock)
            return
        with connect(declared.engine) as node:
            node.init_swarm(
                declared.advertise_addr,
                declared.listen_addr,
                declared.data_path_addr,
                list(cluster.swarm.default_addr_pool),
                cluster.swarm.subnet_size,
            )
        _wait(lambda: engine.info().is_manager, timeout, clock, "the swarm to be initialised")
    elif step.path == ("role",):
        role = str(step.after)
        _wait_quorum(engine, timeout, clock)
        _set_role(engine, action.key, role)
        _wait(
            lambda: _role_reached(engine, action.key, role),
            timeout,
            clock,
            f"node {action.key} to be a {role}",
        )
        _wait_quorum(engine, timeout, clock)
    elif action.kind == "remove" and action.observed_id:
        node_id = action.observed_id
        engine.remove_node(action.key, node_id, force=True)
        _wait(
            lambda: all(item["ID"] != node_id for item in engine.nodes()),
            timeout,
            clock,
            f"node {action.key} to be removed",
        )


def _wait(probe: Callable[[], Any], timeout: float, clock: Clock, what: str) -> None:
    try:
        poll_until(lambda: bool(probe()) or None, timeout=timeout, clock=clock)
    except PollTimeoutError:
        raise PollTimeoutError(f"timed out after {timeout:.0f}s waiting for {what}") from None


def _managers_reachable(nodes: Sequence[Mapping[str, Any]]) -> bool:
    managers = [node.get("ManagerStatus") or {} for node in nodes if node.get("ManagerStatus")]
    return (
        bool(managers)
        and all(status.get("Reachability") == "reachable" for status in managers)
        and sum(bool(status.get("Leader")) for status in managers) == 1
    )


def _wait_quorum(engine: Engine, timeout: float, clock: Clock) -> None:
    """Every manager reachable in Raft, one leader: the managers can lose none without harm."""
    _wait(
        lambda: _managers_reachable(engine.nodes()),
        timeout,
        clock,
        "every manager to be reachable (Raft quorum)",
    )


def _node(engine: Engine, hostname: str) -> Mapping[str, Any] | None:
    found = [
        node
        for node in engine.nodes()
        if (node.get("Description") or {}).get("Hostname") == hostname
    ]
    ready = [node for node in found if (node.get("Status") or {}).get("State") == "ready"]
    candidates = ready or found
    return candidates[0] if candidates else None


def _set_role(engine: Engine, hostname: str, role: str) -> None:
    node = _node(engine, hostname)
    if node is None:
        raise EngineError(f"node {hostname} is not part of the swarm")
    spec = {**(node.get("Spec") or {}), "Role": role}
    engine.update_node(hostname, node["ID"], node["Version"]["Index"], spec)


def _role_reached(engine: Engine, hostname: str, role: str) -> bool:
    node = _node(engine, hostname)
    if node is None or (node.get("Spec") or {}).get("Role") != role:
        return False
    status = node.get("ManagerStatus") or {}
    return (role == "worker" and not status) or status.get("Reachability") == "reachable"


def _join(engine: Engine, hostname: str, declared: NodeSpec, timeout: float, clock: Clock) -> None:
    tokens = engine.join_tokens()
    remotes = [
        (node.get("ManagerStatus") or {}).get("Addr", "")
        for node in engine.nodes()
        if (node.get("ManagerStatus") or {}).get("Reachability") == "reachable"
    ]
    with connect(declared.engine) as node:
        if node.info().local_state in ("pending", "error"):
            node.leave_swarm()
        node.join_swarm(
            [remote for remote in remotes if remote],
            tokens["Worker"],
            declared.advertise_addr,
            declared.listen_addr,
            declared.data_path_addr,
        )
    _wait(
        lambda: (
            (found := _node(engine, hostname)) is not None
            and (found.get("Status") or {}).get("State") == "ready"
        ),
        timeout,
        clock,
        f"node {hostname} to join and be Ready",
    )
