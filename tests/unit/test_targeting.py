"""``--target``: plans of the recorded fixtures limited to the named objects and their needs."""

from __future__ import annotations

import json

import pytest
from test_planner import PLANS, load_case_spec, observed_state

from converge.actions import Plan
from converge.diff import diff
from converge.errors import PlanError
from converge.loader import LoadedSpec
from converge.planner import PlanOptions, plan
from converge.state import ObservedState


def case(name: str) -> tuple[LoadedSpec, ObservedState]:
    loaded = load_case_spec(PLANS / name)
    observed_json = json.loads((PLANS / name / "observed.json").read_text(encoding="utf-8"))
    return loaded, observed_state(loaded.spec.stack, observed_json)


def planned(name: str, *targets: str, prune: bool = False) -> Plan:
    loaded, observed = case(name)
    options = PlanOptions(prune=prune, targets=targets)
    return plan(loaded.spec, diff(loaded.spec, observed), observed, options)


def addresses(result: Plan) -> list[str]:
    return [action.address for action in result.actions]


def test_a_service_brings_the_networks_it_attaches_to() -> None:
    assert addresses(planned("empty_swarm", "service.db")) == ["network.backend", "service.db"]


def test_a_service_without_networks_comes_with_the_stack_default() -> None:
    assert addresses(planned("empty_swarm", "service.pinned")) == [
        "network.default",
        "service.pinned",
    ]


def test_targets_add_up_and_keep_the_plans_order() -> None:
    result = planned("empty_swarm", "service.web", "service.pinned", "network.monitoring")
    assert addresses(result) == [
        "network.backend",
        "network.default",
        "network.monitoring",
        "service.pinned",
        "service.web",
    ]


def test_nodes_come_only_when_named() -> None:
    whole = planned("node_labels")
    assert "node.dbhost" in addresses(whole)
    assert addresses(planned("node_labels", "service.labelled")) == ["service.labelled"]
    assert addresses(planned("node_labels", "node.dbhost")) == ["node.dbhost"]


def test_a_target_that_needs_nothing_plans_nothing() -> None:
    result = planned("node_labels", "service.web")
    assert result.actions == ()
    assert result.versions == planned("node_labels").versions  # still checked when saved


def test_findings_of_objects_not_targeted_are_left_out() -> None:
    whole = planned("name_collision")
    assert [finding.address for finding in whole.errors] == ["service.hand"]
    assert planned("name_collision", "service.web").errors == ()
    assert [finding.address for finding in planned("name_collision", "service.hand").errors] == [
        "service.hand"
    ]


def test_a_service_no_longer_in_the_spec_can_be_targeted() -> None:
    assert addresses(planned("service_left_out_prune", prune=True)) == [
        "service.agent",
        "network.monitoring",
    ]
    assert addresses(planned("service_left_out_prune", "service.agent", prune=True)) == [
        "service.agent"
    ]


@pytest.mark.parametrize(
    "target", ["service.nope", "web", "network.nope", "node.nowhere", "volume.data"]
)
def test_a_target_naming_nothing_is_refused(target: str) -> None:
    with pytest.raises(PlanError, match=rf"--target {target}: no such object in the spec"):
        planned("empty_swarm", "service.web", target)
