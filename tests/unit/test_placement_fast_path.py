"""The placement preview's shortcut for a service that keeps its tasks where they run.

``placement._kept_in_place`` may only answer where ``placement._place`` would place the same
tasks on the same nodes (and leave the nodes' counts as ``_place`` leaves them): every plan
fixture and every scenario below previews the same with and without it, and it declines the
services whose placement something limits or that have tasks left to place.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import converge.placement
from converge.actions import Plan
from converge.diff import diff
from converge.engine_spec import service_engine_spec
from converge.loader import load_spec_text
from converge.observe import state_from_engine_json
from converge.planner import PlanOptions, plan
from tests.unit.test_placement import WORKERS, node, service, task
from tests.unit.test_planner import CASES, PLANS, load_case_spec, observed_state


def _plan_both_ways(
    spec: Any, observed: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[Plan, Plan, list[bool]]:
    """The plan with the shortcut (and whether it answered, per service) and without it."""
    answers: list[bool] = []
    kept_in_place = converge.placement._kept_in_place

    def counted(*args: Any) -> Any:
        answer = kept_in_place(*args)
        answers.append(answer is not None)
        return answer

    with monkeypatch.context() as patched:
        patched.setattr(converge.placement, "_kept_in_place", counted)
        fast = plan(spec, diff(spec, observed), observed, PlanOptions())
    with monkeypatch.context() as patched:
        patched.setattr(converge.placement, "_kept_in_place", lambda *args: None)
        slow = plan(spec, diff(spec, observed), observed, PlanOptions())
    return fast, slow, answers


@pytest.mark.parametrize("name", CASES)
def test_every_fixture_previews_the_same_without_the_shortcut(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = PLANS / name
    loaded = load_case_spec(case)
    observed_json = json.loads((case / "observed.json").read_text(encoding="utf-8"))
    observed = observed_state(loaded.spec.stack, observed_json)
    fast, slow, answers = _plan_both_ways(loaded.spec, observed, monkeypatch)
    assert fast.placement == slow.placement
    assert fast.findings == slow.findings
    if name == "no_changes":
        assert any(answers)  # the fixtures do exercise the shortcut


def _running(replicas_on: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Service app_web (constraint node.role == worker) with a task on each host named."""
    running = service("app_web")
    running["Spec"]["TaskTemplate"]["Placement"] = {"Constraints": ["node.role == worker"]}
    tasks = []
    for index, hostname in enumerate(replicas_on):
        tasks.append(task("svc-app_web", hostname))
        tasks[-1]["ID"] = f"t{index}"
    return [running], tasks


WORKER = "node.role == worker"

# (web's deploy section, hosts its running tasks are on, whether the shortcut may answer)
SCENARIOS = [
    (f"replicas: 2, placement: {{constraints: [{WORKER}]}}", ["worker1", "worker2"], True),
    # scaled down: the task beyond the count goes from the node with the most
    (f"replicas: 1, placement: {{constraints: [{WORKER}]}}", ["worker1", "worker1"], True),
    (f"replicas: 4, placement: {{constraints: [{WORKER}]}}", ["worker1", "worker2"], False),
    # one task on a node it may no longer use: that one is placed again
    (f"replicas: 2, placement: {{constraints: [{WORKER}]}}", ["worker1", "manager"], False),
    (f"replicas: 2, placement: {{constraints: [{WORKER}]}}", [], False),
    (
        f"replicas: 2, placement: {{constraints: [{WORKER}]}}, "
        "resources: {reservations: {memory: 1G}}",
        ["worker1", "worker2"],
        False,
    ),
    (
        f"replicas: 2, placement: {{constraints: [{WORKER}], max_replicas_per_node: 2}}",
        ["worker1", "worker2"],
        False,
    ),
    (
        f"replicas: 2, placement: {{constraints: [{WORKER}], "
        "preferences: [{spread: node.labels.zone}]}",
        ["worker1", "worker2"],
        False,
    ),
    (f"mode: global, placement: {{constraints: [{WORKER}]}}", list(WORKERS), False),
]


@pytest.mark.parametrize(("deploy", "hosts", "shortcut"), SCENARIOS)
def test_the_shortcut_answers_only_where_nothing_is_left_to_decide(
    deploy: str, hosts: list[str], shortcut: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # zz is placed after web (by key): it sees the task counts web leaves on the nodes.
    text = (
        "x-converge: {stack: app}\nservices:\n"
        f"  web:\n    image: busybox\n    deploy: {{{deploy}}}\n"
        "  zz:\n    image: busybox\n    deploy: {replicas: 3}\n"
    )
    spec = load_spec_text(text, environ={}).spec
    running = service("app_web")
    running["Spec"] = service_engine_spec(spec, "web")  # web as the spec makes it: kept
    tasks = []
    for index, hostname in enumerate(hosts):
        tasks.append(task("svc-app_web", hostname))
        tasks[-1]["ID"] = f"t{index}"
    observed = state_from_engine_json(
        "app",
        "manager",
        nodes=[node("manager", "manager")] + [node(name) for name in WORKERS],
        networks=[],
        services=[running],
        tasks=tasks,
    )
    kept = diff(spec, observed).of("service", "web")
    assert kept is not None
    assert kept.status == "unchanged"  # so a decline is for its placement
    fast, slow, answers = _plan_both_ways(spec, observed, monkeypatch)
    assert fast.placement == slow.placement
    assert fast.findings == slow.findings
    assert answers == [shortcut, False]  # zz is created: placed afresh


def test_a_spread_warning_comes_before_the_shortfall_of_the_same_service() -> None:
    nodes = [node("manager", "manager")] + [
        node(name, labels={"zone": zone}) for name, zone in zip(WORKERS, "aab", strict=True)
    ]
    text = (
        "x-converge: {stack: app}\nservices:\n  web:\n    image: busybox\n"
        "    ports: [{target: 80, published: 5000, mode: host}]\n"
        f"    deploy: {{replicas: 4, placement: {{constraints: [{WORKER}], "
        "preferences: [{spread: node.labels.zone}]}}\n"
    )
    spec = load_spec_text(text, environ={}).spec
    observed = state_from_engine_json(
        "app", "manager", nodes=nodes, networks=[], services=[], tasks=[]
    )
    result = plan(spec, diff(spec, observed), observed, PlanOptions())
    assert [(finding.severity, finding.message.split(":")[0]) for finding in result.findings] == [
        ("warning", "spread over node.labels.zone"),
        ("error", "3 of 4 can be placed"),
    ]
