"""``converge.diff``: field-level changes between aligned views, and per-object statuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from converge.diff import FieldChange, compare_views, creation_changes, diff
from converge.loader import load_spec_text
from converge.observe import state_from_engine_json
from converge.state import ObservedState

RECORDED = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "recorded"


def recorded(name: str, stack: str = "fxrec") -> ObservedState:
    engine = json.loads((RECORDED / f"{name}.json").read_text(encoding="utf-8"))
    return state_from_engine_json(
        stack,
        engine["manager"],
        nodes=engine["nodes"],
        networks=engine["networks"],
        services=engine["services"],
        tasks=engine["tasks"],
    )


def test_equal_views_have_no_changes() -> None:
    view = {"image": "x:1", "env": {"A": "1"}, "constraints": ["a", "b"]}
    assert compare_views(view, dict(view)) == []


def test_changes_name_the_leaf_field() -> None:
    before = {"env": {"A": "1", "B": "2"}, "update_config": {"parallelism": 1}}
    after = {"env": {"A": "1", "C": "3"}, "update_config": {"parallelism": 2}}
    assert compare_views(before, after) == [
        FieldChange(("env", "B"), "2", None),
        FieldChange(("env", "C"), None, "3"),
        FieldChange(("update_config", "parallelism"), 1, 2),
    ]


def test_a_changed_list_is_reported_whole() -> None:
    before = {"constraints": ["node.role == worker"]}
    after = {"constraints": ["node.role == worker", "node.labels.a == b"]}
    assert compare_views(before, after) == [
        FieldChange(("constraints",), before["constraints"], after["constraints"])
    ]


def test_a_type_change_is_one_change() -> None:
    assert compare_views({"replicas": None}, {"replicas": 3}) == [
        FieldChange(("replicas",), None, 3)
    ]


def test_creation_lists_only_what_is_set() -> None:
    changes = creation_changes(
        {"image": "x:1", "user": None, "env": {}, "ports": {}, "cmd": [], "labels": {"a": None}}
    )
    assert changes == [FieldChange(("image",), None, "x:1"), FieldChange(("labels",), None, {})]


def test_creation_leaves_out_what_equals_the_default() -> None:
    defaults = {"user": "", "deploy": {"replicas": 1, "mode": "replicated"}, "env": {}}
    desired = {"user": "", "deploy": {"replicas": 3, "mode": "replicated"}, "env": {"A": "1"}}
    assert creation_changes(desired, defaults) == [
        FieldChange(("deploy", "replicas"), None, 3),
        FieldChange(("env",), None, {"A": "1"}),
    ]


def test_statuses_against_the_recorded_swarm() -> None:
    spec = load_spec_text(
        "x-converge:\n  stack: fxrec\n"
        "  cluster:\n    nodes:\n      manager: {role: manager}\n      ghost: {role: worker}\n"
        "networks:\n  backend: {attachable: true}\n  new: {}\n"
        "  outside: {external: true, name: nowhere}\n"
        "services:\n"
        "  web: {image: converge-lab/app:v2, networks: [backend]}\n"
        "  fresh: {image: converge-lab/app:v1, networks: [new, outside]}\n"
        "  hand: {image: converge-lab/app:v1}\n",
        environ={},
    ).spec
    result = diff(spec, recorded("fxrec"))
    statuses = {item.address: item.status for item in result.objects}
    assert statuses == {
        "node.manager": "unchanged",
        "node.ghost": "missing",
        "network.backend": "unchanged",
        "network.default": "unchanged",
        "network.new": "create",
        "network.outside": "missing",
        "network.monitoring": "remove",
        "service.web": "update",
        "service.fresh": "create",
        "service.hand": "unowned",
        "service.agent": "remove",
        "service.db": "remove",
        "service.labelled": "remove",
        "service.latest": "remove",
        "service.pinned": "remove",
    }
    web = result.of("service", "web")
    assert web is not None
    # The file is the full desired state: everything web no longer sets goes back to default.
    assert [change.field for change in web.changes] == [
        "deploy.labels.tier",
        "deploy.placement.constraints",
        "deploy.placement.preferences",
        "deploy.replicas",
        "deploy.resources.limits.cpus",
        "deploy.resources.limits.memory",
        "deploy.resources.reservations.memory",
        "deploy.restart_policy.condition",
        "deploy.restart_policy.max_attempts",
        "deploy.update_config.delay",
        "deploy.update_config.monitor",
        "deploy.update_config.order",
        "deploy.update_config.parallelism",
        "environment",
        "healthcheck",
        "image",
        "labels.logging",
        "networks.backend.aliases",
        "ports.39080:80/tcp",
    ]


def test_a_declared_network_nobody_uses_is_not_created() -> None:
    spec = load_spec_text(
        "x-converge:\n  stack: fxrec\nnetworks:\n  spare: {}\n"
        "services:\n  web: {image: converge-lab/app:v1}\n",
        environ={},
    ).spec
    result = diff(spec, recorded("empty"))
    assert [(item.address, item.status) for item in result.objects if item.kind == "network"] == [
        ("network.default", "create")
    ]


@pytest.mark.parametrize(
    ("first", "second", "identical"),
    [
        ({"a": [1, "x", None, True]}, {"a": [1, "x", None, True]}, True),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, True),
        ({"a": 1}, {"a": 1.0}, False),
        ({"a": 1}, {"a": True}, False),
        ({"a": [1]}, {"a": (1,)}, False),
        ({1: "x"}, {"1": "x"}, False),
        ({"a": {1, 2}}, {"a": {1, 2}}, True),  # not JSON: compared by walking
        ({"a": float("nan")}, {"a": float("nan")}, False),
        ({"a": "x"}, {"a": "y"}, False),
    ],
)
def test_identical_is_equal_with_the_same_types_all_the_way_down(
    first: object, second: object, identical: bool
) -> None:
    from converge.diff import _identical

    assert _identical(first, second) is identical
