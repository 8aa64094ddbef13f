"""Convergence judgement (service_progress) on synthetic observations."""

from __future__ import annotations

from typing import Any

from converge.executor import service_progress
from converge.observe import state_from_engine_json

TEMPLATE: dict[str, Any] = {"ContainerSpec": {"Image": "app:v2"}, "ForceUpdate": 0}
OLD_TEMPLATE: dict[str, Any] = {"ContainerSpec": {"Image": "app:v1"}, "ForceUpdate": 0}


def node(node_id: str, state: str = "ready") -> dict[str, Any]:
    return {
        "ID": node_id,
        "Version": {"Index": 1},
        "Spec": {"Role": "worker", "Availability": "active"},
        "Description": {"Hostname": node_id},
        "Status": {"State": state},
    }


def task(
    number: int,
    node_id: str,
    state: str = "running",
    template: dict[str, Any] | None = None,
    error: str = "",
    timestamp: str = "2026-01-01T00:00:10Z",
) -> dict[str, Any]:
    return {
        "ID": f"task{number}",
        "ServiceID": "svc",
        "NodeID": node_id,
        "DesiredState": "running" if state in ("running", "pending") else "shutdown",
        "Status": {"State": state, "Err": error, "Timestamp": timestamp},
        "Spec": template or TEMPLATE,
    }


def progress(
    tasks: list[dict[str, Any]],
    replicas: int = 2,
    update: dict[str, Any] | None = None,
    nodes: list[dict[str, Any]] | None = None,
    since: str = "",
):  # type: ignore[no-untyped-def]
    service = {
        "ID": "svc",
        "Version": {"Index": 5},
        "Spec": {
            "Name": "s_web",
            "Labels": {"com.docker.stack.namespace": "s"},
            "TaskTemplate": TEMPLATE,
            "Mode": {"Replicated": {"Replicas": replicas}},
        },
        "UpdateStatus": update or {},
    }
    state = state_from_engine_json(
        "s",
        "m",
        nodes=nodes or [node("n1"), node("n2")],
        networks=[],
        services=[service],
        tasks=tasks,
    )
    return service_progress(state, "web", state.owned_services()["web"], since)


def test_converged_when_desired_tasks_run_the_current_template() -> None:
    result = progress([task(1, "n1"), task(2, "n2")])
    assert (result.running, result.desired, result.converged, result.failure) == (2, 2, True, None)


def test_tasks_of_the_previous_template_do_not_count_as_converged() -> None:
    result = progress([task(1, "n1"), task(2, "n2", template=OLD_TEMPLATE)])
    assert result.running == 2
    assert not result.converged


def test_tasks_on_a_node_that_is_down_do_not_count() -> None:
    result = progress([task(1, "n1"), task(2, "n2")], nodes=[node("n1"), node("n2", "down")])
    assert result.running == 1
    assert not result.converged


def test_a_rollback_is_a_failure_with_the_last_task_errors() -> None:
    result = progress(
        [task(1, "n1"), task(2, "n2", state="failed", error="task: non-zero exit (3)")],
        update={
            "State": "rollback_completed",
            "Message": "update rolled back",
            "StartedAt": "2026-01-01T00:00:05Z",
        },
    )
    assert result.failure is not None
    assert "rollback completed" in result.failure
    assert "n2: failed: task: non-zero exit (3)" in result.failure


def test_an_update_state_from_before_this_apply_is_ignored() -> None:
    result = progress(
        [task(1, "n1"), task(2, "n2")],
        update={"State": "paused", "StartedAt": "2026-01-01T00:00:01Z"},
        since="2026-01-01T00:00:09Z",
    )
    assert result.failure is None
    assert result.converged


def test_repeated_task_failures_of_the_current_spec_fail_the_service() -> None:
    failures = [task(n, "n1", state="failed", error="exit 1") for n in range(3)]
    assert progress(failures, since="2026-01-01T00:00:00Z").failure is not None
    old_failures = [task(n, "n1", state="failed", template=OLD_TEMPLATE) for n in range(3)]
    assert progress(old_failures, since="2026-01-01T00:00:00Z").failure is None


def test_unplaceable_tasks_are_reported_while_nothing_runs() -> None:
    pending = task(1, "", state="pending", error="no suitable node (scheduling constraints)")
    result = progress([pending], replicas=1)
    assert result.unplaceable is not None
    assert "no suitable node" in result.unplaceable
    assert result.failure is None
