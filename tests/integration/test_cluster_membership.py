"""Membership from the cluster spec on the real lab: from daemons without a swarm (as after
``converge lab up --no-join``) to the seed chapter's 5-node swarm, roles changed one at a time
with quorum kept, and a node removed only with --prune.

The test takes the lab's swarm apart first (every node leaves: the state ``lab up --no-join``
leaves) and ends with the lab's usual swarm again: every node a member, the manager the only
manager, node labels as the cluster spec left them (the ``stack`` fixture restores those of
nodes that kept their id).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import docker
import pytest
import yaml

from converge.api import ApplyHooks, ApplyRequest, apply, make_plan
from converge.engine import Engine
from converge.executor import ApplyOptions
from converge.lab import Lab
from converge.loader import load_spec_text
from converge.naming import CLUSTER_LABELS_LABEL
from converge.planner import PlanOptions

pytestmark = pytest.mark.integration

CHAPTER_LABELS = {
    "manager": {},
    "dbhost": {},
    "worker1": {"type": "mvc"},
    "worker2": {"type": "mvc"},
    "worker3": {"type": "mvc"},
}


def cluster_spec(
    lab: Lab, stack: str, roles: dict[str, str], names: list[str], labels: bool = True
) -> dict[str, Any]:
    nodes = {
        name: {
            "role": roles.get(name, "manager" if name == "manager" else "worker"),
            "labels": CHAPTER_LABELS.get(name, {}) if labels else {},
            "engine": lab.docker_host(name),
            "advertise_addr": lab.node_address(name),
            "listen_addr": f"{lab.node_address(name)}:2377",
        }
        for name in names
    }
    return {"x-converge": {"stack": stack, "cluster": {"nodes": nodes}}}


def run(engine: Engine, spec: dict[str, Any], **options: bool) -> Any:
    loaded = load_spec_text(yaml.safe_dump(spec), "cluster.yml", {})
    request = ApplyRequest(PlanOptions(**options), ApplyOptions(timeout=180))
    result = apply(loaded, engine, request, ApplyHooks())
    assert result.ok, (result.status, result.plan.plan.findings, result.result)
    return result


def swarm(client: docker.DockerClient) -> dict[str, dict[str, Any]]:
    """``docker node ls``: each member's role, state, reachability and labels."""
    found: dict[str, dict[str, Any]] = {}
    for node in client.nodes.list():
        attrs = node.attrs
        hostname = attrs["Description"]["Hostname"]
        labels = {
            key: value
            for key, value in (attrs["Spec"].get("Labels") or {}).items()
            if key != CLUSTER_LABELS_LABEL
        }
        found[hostname] = {
            "role": attrs["Spec"]["Role"],
            "state": attrs["Status"]["State"],
            "reachability": (attrs.get("ManagerStatus") or {}).get("Reachability"),
            "labels": labels,
        }
    return found


def quorum_kept(client: docker.DockerClient) -> bool:
    managers = [node for node in swarm(client).values() if node["role"] == "manager"]
    return all(node["reachability"] == "reachable" for node in managers)


def test_a_cluster_spec_makes_the_swarm_and_its_roles(
    lab: Lab,
    engine: Engine,
    stack: str,
    node_client: Callable[[str], docker.DockerClient],
) -> None:
    names = lab.nodes()
    for name in reversed(names):  # workers first: the daemons as `lab up --no-join` leaves them
        client = node_client(name)
        if client.info()["Swarm"]["LocalNodeState"] != "inactive":
            client.swarm.leave(force=True)
    manager = node_client("manager")
    spec = cluster_spec(lab, stack, {}, names)
    loaded = load_spec_text(yaml.safe_dump(spec), "cluster.yml", {})
    preview = make_plan(loaded, engine, PlanOptions())
    # The membership steps first, in order; then the owner record (node settings and the
    # placement are planned again once the nodes are members).
    assert [action.description for action in preview.plan.actions] == [
        "+ node manager: swarm init",
        *(f"+ node {name}: swarm join" for name in names[1:]),
        f"+ cluster {stack}: create",
    ]

    run(engine, spec)
    members = swarm(manager)
    assert set(members) == set(names)
    assert all(node["state"] == "ready" for node in members.values())
    assert {name: node["labels"] for name, node in members.items()} == {
        name: CHAPTER_LABELS.get(name, {}) for name in names
    }
    assert [name for name, node in members.items() if node["role"] == "manager"] == ["manager"]
    again = make_plan(loaded, engine, PlanOptions())
    assert again.plan.actions == ()

    # Promote worker1 and worker2, then demote them back: one at a time, quorum kept.
    promoted = cluster_spec(lab, stack, {"worker1": "manager", "worker2": "manager"}, names)
    planned = make_plan(
        load_spec_text(yaml.safe_dump(promoted), "c.yml", {}), engine, PlanOptions()
    )
    assert [a.description for a in planned.plan.actions] == [
        "~ node worker1: role worker -> manager",
        "~ node worker2: role worker -> manager",
    ]
    run(engine, promoted)
    members = swarm(manager)
    assert {n for n, node in members.items() if node["role"] == "manager"} == {
        "manager",
        "worker1",
        "worker2",
    }
    assert quorum_kept(manager)
    run(engine, spec)
    assert quorum_kept(manager)
    assert [n for n, node in swarm(manager).items() if node["role"] == "manager"] == ["manager"]

    # A node left out of the spec stays without --prune, and leaves with it.
    without = cluster_spec(lab, stack, {}, [name for name in names if name != "worker3"])
    kept = run(engine, without)
    assert any("--prune removes it" in f.message for f in kept.plan.plan.findings)
    assert "worker3" in swarm(manager)
    run(engine, without, prune=True)
    assert "worker3" not in swarm(manager)

    # Back to the lab's swarm: worker3 leaves what it thinks it still belongs to, rejoins.
    worker3 = node_client("worker3")
    if worker3.info()["Swarm"]["LocalNodeState"] != "inactive":
        worker3.swarm.leave(force=True)
    run(engine, spec)
    assert set(swarm(manager)) == set(names)
    # The lab's nodes carry no labels between tests: the cluster spec stops naming them.
    run(engine, cluster_spec(lab, stack, {}, names, labels=False), prune=True)
    assert all(not node["labels"] for node in swarm(manager).values())
