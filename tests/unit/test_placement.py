"""The placement preview (converge.placement) through the planner: tasks per node, shortfalls."""

from __future__ import annotations

from typing import Any

import pytest

from converge.actions import Plan
from converge.diff import diff
from converge.loader import load_spec_text
from converge.observe import state_from_engine_json
from converge.planner import PlanOptions, plan
from converge.render.plan import plan_document, plan_from_document, plan_markdown, plan_text
from tests.document_schemas import assert_valid

GIB = 1024**3
WORKERS = ("worker1", "worker2", "worker3")


def node(
    hostname: str,
    role: str = "worker",
    labels: dict[str, str] | None = None,
    availability: str = "active",
    memory: int = 4 * GIB,
    cpus: int = 2,
) -> dict[str, Any]:
    return {
        "ID": f"id-{hostname}",
        "Version": {"Index": 10},
        "Description": {
            "Hostname": hostname,
            "Resources": {"NanoCPUs": cpus * 10**9, "MemoryBytes": memory},
        },
        "Spec": {"Role": role, "Availability": availability, "Labels": labels or {}},
        "Status": {"State": "ready", "Addr": "10.0.0.1"},
    }


def service(
    name: str, stack: str | None = "app", ports: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    labels = {"com.docker.stack.namespace": stack} if stack else {}
    return {
        "ID": f"svc-{name}",
        "Version": {"Index": 20},
        "Spec": {
            "Name": name,
            "Labels": labels,
            "TaskTemplate": {"ContainerSpec": {"Image": "busybox"}},
            "Mode": {"Replicated": {"Replicas": 1}},
            "EndpointSpec": {"Ports": ports or []},
        },
    }


def task(service_id: str, hostname: str, reserve_memory: int = 0) -> dict[str, Any]:
    reservations = {"MemoryBytes": reserve_memory} if reserve_memory else {}
    return {
        "ID": f"task-{service_id}-{hostname}-{reserve_memory}",
        "ServiceID": service_id,
        "NodeID": f"id-{hostname}",
        "DesiredState": "running",
        "Status": {"State": "running"},
        "Spec": {"Resources": {"Reservations": reservations}},
    }


def make(
    spec_text: str,
    nodes: list[dict[str, Any]] | None = None,
    services: list[dict[str, Any]] | None = None,
    tasks: list[dict[str, Any]] | None = None,
) -> Plan:
    spec = load_spec_text("x-converge:\n  stack: app\n" + spec_text, environ={}).spec
    observed = state_from_engine_json(
        "app",
        "manager",
        nodes=nodes
        if nodes is not None
        else [node("manager", "manager")] + [node(name) for name in WORKERS],
        networks=[],
        services=services or [],
        tasks=tasks or [],
    )
    result = plan(spec, diff(spec, observed), observed, PlanOptions(), spec_digest="0" * 64)
    assert_valid("plan", plan_document(result))
    return result


def lines(result: Plan) -> list[str]:
    return [service.line for service in result.placement]


def messages(result: Plan, severity: str) -> list[str]:
    return [finding.message for finding in result.findings if finding.severity == severity]


WEB = """services:
  web:
    image: busybox
    deploy:
"""


def test_spread_only_goes_where_there_are_fewest() -> None:
    result = make(
        WEB + "      replicas: 5\n      placement: {constraints: [node.role == worker]}\n"
    )
    assert lines(result) == ["web: worker1 2, worker2 2, worker3 1"]
    assert result.findings == ()


def test_a_node_busy_with_other_tasks_gets_the_odd_task_last() -> None:
    other = service("other_thing", stack="other")
    result = make(
        WEB + "      replicas: 5\n      placement: {constraints: [node.role == worker]}\n",
        services=[other],
        tasks=[task("svc-other_thing", "worker1")],
    )
    assert lines(result) == ["web: worker1 1, worker2 2, worker3 2"]


def test_six_replicas_with_a_host_port_on_five_nodes_fail_at_plan_time() -> None:
    result = make(
        WEB + "      replicas: 6\n    ports: [{target: 80, published: 5000, mode: host}]\n",
        nodes=[node("manager", "manager"), node("dbhost"), *(node(name) for name in WORKERS)],
    )
    assert messages(result, "error") == [
        "5 of 6 can be placed: 6 replicas with host port 5000 need 6 eligible nodes; 5 are eligible"
    ]
    assert result.placement[0].placed == 5


def test_a_host_port_taken_by_another_service_excludes_its_node() -> None:
    other = service("edge", stack=None, ports=[{"PublishedPort": 5000, "PublishMode": "host"}])
    result = make(
        WEB
        + "      replicas: 3\n      placement: {constraints: [node.role == worker]}\n"
        + "    ports: [{target: 80, published: 5000, mode: host}]\n",
        services=[other],
        tasks=[task("svc-edge", "worker2")],
    )
    assert lines(result) == ["web: worker1 1, worker3 1 (1 of 3 unplaced)"]
    # (besides the port collision the planner reports for any port another owner publishes)
    assert (
        "2 of 3 can be placed: 3 replicas with host port 5000 need 3 eligible nodes; "
        "2 are eligible (1 more has the port taken by another service)"
    ) in messages(result, "error")


def test_max_replicas_per_node() -> None:
    result = make(
        WEB
        + "      replicas: 7\n"
        + "      placement: {constraints: [node.role == worker], max_replicas_per_node: 2}\n"
    )
    assert lines(result) == ["web: worker1 2, worker2 2, worker3 2 (1 of 7 unplaced)"]
    assert messages(result, "error") == [
        "6 of 7 can be placed: 7 replicas with max_replicas_per_node 2 need 4 eligible nodes; "
        "3 are eligible"
    ]


def test_memory_reservations_against_what_running_tasks_reserve() -> None:
    other = service("cache", stack="other")
    result = make(
        WEB
        + "      replicas: 3\n      placement: {constraints: [node.role == worker]}\n"
        + "      resources: {reservations: {memory: 3G}}\n",
        services=[other],
        tasks=[task("svc-cache", "worker3", reserve_memory=2 * GIB)],
    )
    assert lines(result) == ["web: worker1 1, worker2 1 (1 of 3 unplaced)"]
    [error] = messages(result, "error")
    assert error.startswith("2 of 3 can be placed: 3 replicas reserving 3G memory each do not fit")
    assert "worker3 2G" in error


def test_over_committed_nodes_are_warnings_with_numbers() -> None:
    other = service("cache", stack="other")
    result = make(
        WEB + "      replicas: 1\n",
        services=[other],
        tasks=[task("svc-cache", "worker3", reserve_memory=5 * GIB)],
    )
    assert messages(result, "warning") == [
        "running tasks reserve 5G memory of its 4G: over-committed"
    ]


def test_spread_preference_evens_out_the_label_groups_first() -> None:
    nodes = [
        node("manager", "manager"),
        node("worker1", labels={"zone": "a"}),
        node("worker2", labels={"zone": "a"}),
        node("worker3", labels={"zone": "b"}),
    ]
    result = make(
        WEB
        + "      replicas: 4\n"
        + "      placement:\n        constraints: [node.role == worker]\n"
        + "        preferences: [{spread: node.labels.zone}]\n",
        nodes=nodes,
    )
    assert lines(result) == ["web: worker1 1, worker2 1, worker3 2"]
    # The manager carries no zone and may not run web: swarm's split is random then.
    assert messages(result, "warning") == [
        "spread over node.labels.zone: no node of group (no value): manager may run the "
        "service, and swarm then splits the tasks unevenly at random; the preview shows an "
        "even split"
    ]
    nodes[0] = node("manager", "manager", labels={"zone": "a"})
    result = make(
        WEB
        + "      replicas: 4\n"
        + "      placement:\n        constraints: [node.role == worker]\n"
        + "        preferences: [{spread: node.labels.zone}]\n",
        nodes=nodes,
    )
    assert lines(result) == ["web: worker1 1, worker2 1, worker3 2"]
    assert messages(result, "warning") == []


def test_a_scaled_service_keeps_its_tasks_where_they_run() -> None:
    running = service("app_web")
    running["Spec"]["TaskTemplate"]["Placement"] = {"Constraints": ["node.role==worker"]}
    tasks = [task("svc-app_web", "worker1"), task("svc-app_web", "worker1")]
    tasks[1]["ID"] = "second"
    result = make(
        WEB + "      replicas: 4\n      placement: {constraints: [node.role == worker]}\n",
        services=[running],
        tasks=tasks,
    )
    assert lines(result) == ["web: worker1 2, worker2 1, worker3 1"]


def test_a_global_service_runs_once_on_every_eligible_node() -> None:
    result = make("services:\n  agent:\n    image: busybox\n    deploy: {mode: global}\n")
    assert lines(result) == ["agent: manager 1, worker1 1, worker2 1, worker3 1"]


def test_a_drain_of_the_plan_that_leaves_a_service_short_is_a_warning() -> None:
    result = make(
        "  cluster:\n    nodes:\n      manager: {role: manager}\n"
        "      worker1: {}\n      worker2: {}\n      worker3: {availability: drain}\n"
        + WEB
        + "      replicas: 3\n      placement: {constraints: [node.role == worker]}\n"
        + "    ports: [{target: 80, published: 5000, mode: host}]\n"
    )
    assert messages(result, "error") == []
    assert messages(result, "warning") == [
        "draining or pausing worker3 leaves service web short: 2 of 3 can be placed "
        "(3 replicas with host port 5000 need 3 eligible nodes; 2 are eligible)"
    ]


@pytest.mark.parametrize("render", [plan_text, plan_markdown])
def test_every_renderer_shows_the_preview(render: Any) -> None:
    result = make(
        WEB + "      replicas: 5\n      placement: {constraints: [node.role == worker]}\n"
    )
    output = render(result)
    assert "worker1 2, worker2 2, worker3 1" in output


def test_the_json_document_carries_the_preview() -> None:
    result = make(
        WEB + "      replicas: 2\n      placement: {constraints: [node.role == worker]}\n"
    )
    assert plan_document(result)["placement"] == [
        {
            "service": "web",
            "mode": "replicated",
            "desired": 2,
            "placed": 2,
            "nodes": {"worker1": 1, "worker2": 1},
            "reason": "",
        }
    ]


def test_a_saved_plan_shows_the_preview_again() -> None:
    result = make(
        WEB + "      replicas: 3\n      placement: {constraints: [node.role == worker]}\n"
    )
    again = plan_from_document(plan_document(result))
    assert again.placement == result.placement
