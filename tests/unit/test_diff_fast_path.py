"""The diff tells an unchanged service from its engine spec, without making views.

``diff._unchanged_service`` may only answer where comparing the views would find no change:
on every plan fixture (real recorded engine JSON) the diff is the same with and without it,
and it does answer for the services a real engine reports unchanged.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest

import converge.diff
from converge.diff import _identical, diff
from converge.engine_spec import service_engine_spec
from converge.loader import load_spec_text
from converge.normalize import (
    LazyServiceView,
    comparable_service_spec,
    observed_service_view,
    service_view,
)
from converge.observe import state_from_engine_json
from tests.unit.test_planner import CASES, PLANS, load_case_spec, observed_state

SPEC = """
x-converge: {stack: shop}
networks:
  front: {}
services:
  web:
    image: nginx
    environment: {A: "1"}
    networks: [front]
    deploy:
      update_config: {parallelism: 2}
      placement: {constraints: ["node.role == worker"]}
"""


def _case(name: str) -> tuple[Any, Any]:
    case = PLANS / name
    loaded = load_case_spec(case)
    observed_json = json.loads((case / "observed.json").read_text(encoding="utf-8"))
    return loaded.spec, observed_state(loaded.spec.stack, observed_json)


@pytest.mark.parametrize("name", CASES)
def test_the_diff_is_the_same_without_the_fast_path(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, observed = _case(name)
    answers: list[bool] = []
    unchanged = converge.diff._unchanged_service

    def counted(*args: Any) -> bool:
        answers.append(unchanged(*args))
        return answers[-1]

    monkeypatch.setattr(converge.diff, "_unchanged_service", counted)
    fast = diff(spec, observed)
    monkeypatch.setattr(converge.diff, "_unchanged_service", lambda *args: False)
    assert diff(spec, observed) == fast
    if name == "no_changes":
        # db (replicas filled in by the engine) and web (update_config's failure action)
        # included; labelled (another constraint spelling) and pinned (a digest) are not.
        assert answers.count(True) == 4


def _engine_json(spec_text: str) -> tuple[Any, dict[str, Any]]:
    """A spec and the engine JSON of its one service as the engine reports it."""
    spec = load_spec_text(spec_text).spec
    body = service_engine_spec(spec, "web")
    body["TaskTemplate"]["ContainerSpec"]["Isolation"] = "default"
    body["TaskTemplate"]["Runtime"] = "container"
    body["TaskTemplate"]["ForceUpdate"] = 3
    body["TaskTemplate"]["Networks"][0]["Target"] = "netid1"
    body["EndpointSpec"]["Mode"] = "vip"
    body["Mode"]["Replicated"]["Replicas"] = 1
    body["UpdateConfig"]["FailureAction"] = "pause"
    body["UpdateConfig"]["Order"] = "stop-first"
    return spec, {
        "nodes": [],
        "networks": [{"Id": "netid1", "Name": "shop_front", "Labels": {}}],
        "services": [
            {"ID": "s1", "Version": {"Index": 7}, "Spec": body, "ServiceStatus": {}},
        ],
        "tasks": [],
    }


def test_what_the_engine_fills_in_is_set_aside_as_the_view_sets_it_aside() -> None:
    spec, engine = _engine_json(SPEC)
    observed = engine["services"][0]["Spec"]
    names = {"netid1": "shop_front"}
    payload = service_engine_spec(spec, "web")
    assert observed_service_view(observed, "shop", names) == service_view(payload, "shop", {})
    comparable = comparable_service_spec(observed, names)
    assert comparable is not None
    assert _identical(comparable, comparable_service_spec(payload, {}))
    assert observed["TaskTemplate"]["ForceUpdate"] == 3  # left intact


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("TaskTemplate", "ContainerSpec", "Isolation"), "process"),
        (("TaskTemplate", "ContainerSpec", "Env"), ["A=2"]),
        (("Mode", "Replicated", "Replicas"), 2),
        (("Mode", "Replicated", "Replicas"), 1.0),  # a type change is a change
        (("UpdateConfig", "Order"), "start-first"),
        (("EndpointSpec", "Mode"), "dnsrr"),
    ],
)
def test_a_field_the_view_shows_still_differs(path: tuple[str, ...], value: Any) -> None:
    spec, engine = _engine_json(SPEC)
    changed = copy.deepcopy(engine)
    target = changed["services"][0]["Spec"]
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    observed = state_from_engine_json("shop", "manager", **changed)
    difference = diff(spec, observed).of("service", "web")
    assert difference is not None
    assert difference.status == "update"
    assert diff(spec, state_from_engine_json("shop", "manager", **engine)).of(
        "service", "web"
    ) == converge.diff.ObjectDiff("service", "web", "shop_web", "unchanged")


def test_an_ignored_field_or_another_stack_takes_the_views() -> None:
    spec, engine = _engine_json(SPEC)
    observed = state_from_engine_json("shop", "manager", **engine)
    service = observed.owned_services()["web"]
    payload = service_engine_spec(spec, "web")
    names = {"netid1": "shop_front"}
    assert converge.diff._unchanged_service(spec, (), payload, service, names)
    assert not converge.diff._unchanged_service(spec, ("environment",), payload, service, names)
    elsewhere = dataclasses.replace(service, stack="other")
    assert not converge.diff._unchanged_service(spec, (), payload, elsewhere, names)


def test_the_observed_view_is_made_once_and_only_when_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, engine = _engine_json(SPEC)
    made: list[str] = []
    real = converge.normalize.service_view

    def counted(*args: Any) -> dict[str, Any]:
        made.append(args[0]["Name"])
        return real(*args)

    monkeypatch.setattr(converge.normalize, "service_view", counted)
    observed = state_from_engine_json("shop", "manager", **engine)
    view = observed.services[0].view
    assert isinstance(view, LazyServiceView)
    assert made == []
    expected = real(engine["services"][0]["Spec"], "shop", {"netid1": "shop_front"})
    assert dict(view) == expected
    assert view == expected
    assert view["image"] == "nginx:latest"
    assert made == ["shop_web"]


def _slow_same(observed: Any, desired: Any, names: dict[str, str]) -> bool:
    """The reference: both comparable forms made, then compared."""
    first = comparable_service_spec(observed, names)
    second = comparable_service_spec(desired, {})
    return first is not None and second is not None and _identical(first, second)


# Each changes one place of the engine's spec: a spelling the view reads as the same, a value
# it reads as different, or a shape the rules do not assume (then the views decide).
MUTATIONS: list[tuple[tuple[str, ...], Any]] = [
    (("TaskTemplate", "ContainerSpec", "Isolation"), ""),
    (("TaskTemplate", "ContainerSpec", "Isolation"), "process"),
    (("TaskTemplate", "ContainerSpec", "Isolation"), None),
    (("TaskTemplate", "ContainerSpec"), "not a mapping"),
    (("TaskTemplate", "ForceUpdate"), 9),
    (("TaskTemplate", "Runtime"), "plugin"),
    (("TaskTemplate", "Networks"), []),
    (("TaskTemplate", "Networks"), None),
    (("TaskTemplate", "Networks"), "netid1"),
    (("TaskTemplate", "Networks"), ["netid1"]),
    (("TaskTemplate", "Networks"), [{"Target": "shop_front", "Aliases": ["web"]}]),
    (("TaskTemplate", "Networks"), [{"Target": "netid2", "Aliases": ["web"]}]),
    (("TaskTemplate", "Networks"), [{"Target": "netid1"}]),
    (("TaskTemplate", "Placement"), {}),
    (("TaskTemplate",), None),
    (("TaskTemplate",), []),
    (("Networks",), [{"Target": "netid1"}]),
    (("Networks",), []),
    (("EndpointSpec", "Mode"), ""),
    (("EndpointSpec", "Mode"), "dnsrr"),
    (("EndpointSpec",), None),
    (("Mode", "Replicated", "Replicas"), 2),
    (("Mode", "Replicated", "Replicas"), True),
    (("Mode", "Replicated", "Replicas"), 1.0),
    (("Mode", "Replicated"), None),
    (("Mode",), {"Global": {}}),
    (("UpdateConfig", "FailureAction"), ""),
    (("UpdateConfig", "FailureAction"), "stop-first"),
    (("UpdateConfig", "FailureAction"), "rollback"),
    (("UpdateConfig", "Order"), ""),
    (("UpdateConfig", "Order"), "pause"),
    (("UpdateConfig", "Order"), "start-first"),
    (("RollbackConfig",), {"FailureAction": "pause", "Order": "stop-first"}),
    (("RollbackConfig",), {"Parallelism": 1}),
    (("Labels", "extra"), "1"),
    (("Extra",), {}),
]


def _mutated(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    result = copy.deepcopy(body)
    target = result
    for part in path[:-1]:
        target = target[part]
    if value is None and path[-1] == "Isolation":
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    return result


@pytest.mark.parametrize(("path", "value"), MUTATIONS)
def test_the_one_walk_answers_as_the_comparable_forms(path: tuple[str, ...], value: Any) -> None:
    spec, engine = _engine_json(SPEC)
    observed = engine["services"][0]["Spec"]
    payload = service_engine_spec(spec, "web")
    names = {"netid1": "shop_front"}
    assert converge.diff._same_comparable(observed, payload, names)  # as reported: the same
    changed = _mutated(observed, path, value)
    sent = _mutated(payload, path, value)
    for first, second in ((changed, payload), (observed, sent), (changed, sent)):
        assert converge.diff._same_comparable(first, second, names) == _slow_same(
            first, second, names
        ), (path, value)


def test_the_one_walk_answers_as_the_comparable_forms_on_every_fixture() -> None:
    seen = {True: 0, False: 0}
    for name in CASES:
        spec, observed = _case(name)
        names = {network.id: network.name for network in observed.networks}
        for key, current in observed.owned_services().items():
            if key not in spec.services:
                continue
            payload = service_engine_spec(spec, key)
            answer = converge.diff._same_comparable(current.raw_spec, payload, names)
            assert answer == _slow_same(current.raw_spec, payload, names), (name, key)
            seen[answer] += 1
    assert seen[True]  # both answers are exercised
    assert seen[False]
