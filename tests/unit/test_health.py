"""Service health (converge.health.service_health) on synthetic observations."""

from __future__ import annotations

from typing import Any

from converge.health import nodes_not_ready, service_health
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
    job_run: int | None = None,
):  # type: ignore[no-untyped-def]
    """The health of service ``web``; with ``job_run``, of a replicated job of ``replicas``
    completions in that run (its ``JobIteration``), whose ``tasks`` are made part of it."""
    mode: dict[str, Any] = {"Replicated": {"Replicas": replicas}}
    if job_run is not None:
        mode = {"ReplicatedJob": {"MaxConcurrent": replicas, "TotalCompletions": replicas}}
        for item in tasks:
            item.update(DesiredState="complete", JobIteration={"Index": job_run})
    service = {
        "ID": "svc",
        "Version": {"Index": 5},
        "Spec": {
            "Name": "s_web",
            "Labels": {"com.docker.stack.namespace": "s"},
            "TaskTemplate": TEMPLATE,
            "Mode": mode,
        },
        "UpdateStatus": update or {},
        "JobStatus": {"JobIteration": {"Index": job_run or 0}},
    }
    state = state_from_engine_json(
        "s",
        "m",
        nodes=nodes or [node("n1"), node("n2")],
        networks=[],
        services=[service],
        tasks=tasks,
    )
    return service_health(state, "web", state.owned_services()["web"], since)


def test_converged_when_desired_tasks_run_the_current_template() -> None:
    result = progress([task(1, "n1"), task(2, "n2")])
    assert (result.running, result.desired, result.converged, result.failure) == (2, 2, True, None)
    assert result.updated == 2


def test_tasks_of_the_previous_template_do_not_count_as_converged() -> None:
    result = progress([task(1, "n1"), task(2, "n2", template=OLD_TEMPLATE)])
    assert result.running == 2
    assert result.updated == 1  # a rolling update half way: what progress shows
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
    assert result.failure.startswith("update rollback completed: update rolled back; ")
    assert "n2: failed: task: non-zero exit (3)" in result.failure


def test_an_engine_message_that_only_restates_the_state_is_not_repeated() -> None:
    update = {"State": "rollback_completed", "Message": "rollback completed"}
    result = progress([task(1, "n1")], update=update)
    assert result.failure == "update rollback completed"


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


def test_unplaceable_tasks_are_reported_while_fewer_than_wanted_run() -> None:
    complaint = "no suitable node (host-mode port already in use on 2 nodes)"
    placed = [task(1, "n1"), task(2, "n2")]
    pending = [task(n, "", state="pending", error=complaint) for n in (3, 4)]
    result = progress(placed + pending, replicas=4)
    assert result.unplaceable == f"2 of 4 tasks cannot be placed: {complaint}"
    # A pending task that was given up (desired shutdown) once all run is not a complaint.
    given_up = {**pending[0], "DesiredState": "shutdown"}
    assert progress([*placed, given_up], replicas=2).unplaceable is None


def test_a_failure_lists_only_errors_of_this_apply_not_older_ones() -> None:
    stale = task(
        1, "n1", state="failed", error="old: image not found", timestamp="2026-01-01T00:00:01Z"
    )
    fresh = [
        task(n, "n2", state="failed", error="exit 3", timestamp=f"2026-01-01T00:00:1{n}Z")
        for n in range(2, 5)
    ]
    result = progress([stale, *fresh], since="2026-01-01T00:00:05Z")
    assert result.failure is not None
    assert "exit 3" in result.failure
    assert "old: image not found" not in result.failure
    assert [str(error) for error in result.errors] == ["n2: failed: exit 3"] * 3


def test_without_a_start_time_errors_of_the_current_template_come_first() -> None:
    old = task(1, "n1", state="failed", error="old failure", template=OLD_TEMPLATE)
    current = task(
        2, "n2", state="rejected", error="no such image", timestamp="2026-01-01T00:00:01Z"
    )
    assert [error.message for error in progress([old, current]).errors] == ["no such image"]
    assert [error.message for error in progress([old]).errors] == ["old failure"]


def test_placement_counts_running_tasks_per_node() -> None:
    result = progress([task(1, "n1"), task(2, "n1"), task(3, "n2")], replicas=3)
    assert dict(result.placement) == {"n1": 2, "n2": 1}


def test_nodes_not_ready_skip_a_down_record_of_a_node_that_rejoined() -> None:
    rejoined_old = node("old-id", "down")
    rejoined_old["Description"]["Hostname"] = "n1"
    state = state_from_engine_json(
        "s",
        "m",
        nodes=[node("n1"), rejoined_old, node("n3", "down")],
        networks=[],
        services=[],
        tasks=[],
    )
    assert [item.hostname for item in nodes_not_ready(state)] == ["n3"]


def test_a_service_not_converged_names_its_newest_task_not_running_yet() -> None:
    waiting = task(2, "n2", state="pending", timestamp="2026-01-01T00:00:20Z")
    waiting["Status"]["Message"] = "pending task scheduling"
    waiting["Slot"] = 2
    result = progress([task(1, "n1"), waiting])
    assert not result.converged
    assert result.unfinished == (
        "task 2 on n2: pending since 2026-01-01T00:00:20: pending task scheduling"
    )
    assert progress([task(1, "n1"), task(2, "n2")]).unfinished is None


def test_a_job_not_complete_names_the_task_it_waits_on() -> None:
    done = task(1, "n1", state="complete")
    stuck = task(2, "n2", state="preparing", timestamp="2026-01-01T00:00:30Z")
    stuck["Slot"] = 1
    result = progress([done, stuck], job_run=7)
    assert (result.completed, result.desired, result.converged) == (1, 2, False)
    assert result.unfinished == "task 1 on n2: preparing since 2026-01-01T00:00:30"
    finished = progress(
        [task(1, "n1", state="complete"), task(2, "n2", state="complete")], job_run=7
    )
    assert finished.converged
    assert finished.unfinished is None
