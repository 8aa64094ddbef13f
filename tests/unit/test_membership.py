"""Membership steps from the cluster spec (converge.membership, pure)."""

from __future__ import annotations

from typing import Any

from converge.actions import Phase
from converge.membership import EngineProbe, plan_membership
from converge.spec import ClusterSpec
from converge.state import ObservedNode

NAMES = ("manager", "dbhost", "worker1", "worker2", "worker3")


def cluster(**roles: str) -> ClusterSpec:
    nodes: dict[str, Any] = {
        name: {"role": roles.get(name, "manager" if name == "manager" else "worker")}
        for name in NAMES
    }
    for name in nodes:
        nodes[name]["engine"] = f"unix:///lab/{name}.sock"
    return ClusterSpec.model_validate({"nodes": nodes})


def member(hostname: str, role: str = "worker") -> ObservedNode:
    return ObservedNode(
        id=f"id-{hostname}",
        version=1,
        hostname=hostname,
        role=role,
        availability="active",
        labels={},
        state="ready",
        address="",
        engine_labels={},
        os="linux",
        arch="x86_64",
        view={},
        raw_spec={},
    )


FREE = EngineProbe(True, local_state="inactive")
SWARM = [member("manager", "manager"), *(member(name) for name in NAMES[1:])]


def steps(actions: list[Any]) -> list[str]:
    return [f"{action.key} {action.changes[0].after}" for action in actions]


def test_no_swarm_inits_on_the_first_manager_then_joins_the_others() -> None:
    actions, findings = plan_membership(cluster(), dict.fromkeys(NAMES, FREE), [], prune=False)
    assert steps(actions) == [
        "manager init",
        "dbhost join",
        "worker1 join",
        "worker2 join",
        "worker3 join",
    ]
    assert all(action.phase is Phase.MEMBERSHIP for action in actions)
    assert findings == []


def test_a_swarm_that_matches_needs_no_step() -> None:
    assert plan_membership(cluster(), {}, SWARM, prune=False, connected_to="manager") == ([], [])


def test_promotions_come_before_demotions_one_node_each() -> None:
    current = [member("manager", "manager"), member("dbhost"), member("worker1", "manager")]
    current += [member("worker2", "manager"), member("worker3")]
    wanted = cluster(worker1="worker", worker2="manager", worker3="manager", dbhost="manager")
    actions, findings = plan_membership(wanted, {}, current, prune=False)
    assert steps(actions) == ["dbhost manager", "worker3 manager", "worker1 worker"]
    assert [f.message for f in findings] == [
        "4 managers: an even number tolerates no more manager failures than 3 (quorum needs 3)"
    ]


def test_more_than_seven_managers_is_a_warning() -> None:
    nodes = {f"m{index}": {"role": "manager"} for index in range(9)}
    current = [member(name, "manager") for name in nodes]
    _, findings = plan_membership(ClusterSpec.model_validate({"nodes": nodes}), {}, current, False)
    assert any("more than seven" in finding.message for finding in findings)


def test_a_departed_node_leaves_only_with_prune_a_manager_demoted_first() -> None:
    current = [*SWARM, member("worker4", "manager")]
    actions, findings = plan_membership(cluster(), {}, current, prune=False)
    assert actions == []
    assert findings[0].message == (
        "worker4 is a member of the swarm but not in the cluster spec; --prune removes it"
    )
    actions, _ = plan_membership(cluster(), {}, current, prune=True)
    assert [(action.key, action.kind) for action in actions] == [
        ("worker4", "update"),
        ("worker4", "remove"),
    ]
    assert actions[0].changes[0].after == "worker"


def test_the_manager_converge_talks_to_is_never_demoted() -> None:
    actions, findings = plan_membership(
        cluster(manager="worker", worker1="manager"), {}, SWARM, False, connected_to="manager"
    )
    assert steps(actions) == ["worker1 manager"]
    assert findings[0].severity == "error"
    assert "converge is connected to this manager" in findings[0].message


def test_an_engine_that_does_not_answer_is_an_error() -> None:
    probes = {**dict.fromkeys(NAMES, FREE), "worker3": EngineProbe(False, "connection refused")}
    actions, findings = plan_membership(cluster(), probes, [], prune=False)
    assert "worker3" not in {action.key for action in actions}
    assert findings[0].message == (
        "cannot reach its engine unix:///lab/worker3.sock: connection refused"
    )


def test_no_manager_to_init_on() -> None:
    probes = {**dict.fromkeys(NAMES, FREE), "manager": EngineProbe(False, "refused")}
    actions, findings = plan_membership(cluster(), probes, [], prune=False)
    assert actions == []
    assert "no declared manager whose engine answers" in findings[-1].message


def test_an_engine_already_in_a_swarm_is_not_joined() -> None:
    current = [member("manager", "manager"), member("node-7")]
    probes = {
        "dbhost": EngineProbe(True, local_state="active", node_id="id-node-7"),
        "worker1": EngineProbe(True, local_state="active", node_id="elsewhere"),
    }
    spec = ClusterSpec.model_validate(
        {
            "nodes": {
                "manager": {"role": "manager"},
                "dbhost": {"engine": "unix:///lab/dbhost.sock"},
                "worker1": {"engine": "unix:///lab/worker1.sock"},
                "node-7": {},
            }
        }
    )
    actions, findings = plan_membership(spec, probes, current, prune=False)
    assert actions == []
    assert [finding.message for finding in findings] == [
        "its engine is the member named node-7: the cluster spec must use the node's hostname",
        "its engine is in another swarm (node elsewhere); make it leave that swarm first "
        "(docker swarm leave)",
    ]
