"""The fake swarm keeps the engine's promises that converge relies on (see fake_engine.py)."""

from __future__ import annotations

import copy
from collections import Counter
from types import SimpleNamespace
from typing import Any, cast

import pytest
from fake_engine import FakeSwarm
from test_planner import load_recording

from converge.engine import Engine
from converge.errors import AlreadyExistsError, InUseError, NotFoundError, OutOfSequenceError
from converge.observe import observe, state_from_engine_json
from converge.spec import Spec
from converge.state import template_digest


def service(swarm: FakeSwarm, name: str) -> dict[str, Any]:
    return next(item for item in swarm.services() if item["Spec"]["Name"] == name)


def live_tasks(swarm: FakeSwarm, service_id: str) -> list[dict[str, Any]]:
    return [
        task
        for task in swarm.tasks()
        if task["ServiceID"] == service_id and task["DesiredState"] == "running"
    ]


def test_a_recording_is_observed_as_recorded() -> None:
    recording = load_recording("fxrec")
    swarm = FakeSwarm(recording)
    observed = observe(cast(Engine, swarm), Spec.model_validate({"x-converge": {"stack": "fxrec"}}))
    expected = state_from_engine_json(
        "fxrec",
        "manager",
        nodes=recording["nodes"],
        networks=recording["networks"],
        services=recording["services"],
        tasks=recording["tasks"],
    )
    # The scheduler leaves a converged recording alone: same tasks, same counts.
    assert observed.services == expected.services
    assert observed.tasks == expected.tasks
    assert observed.api_calls == 8  # the seven swarm reads and the stack's containers


def test_writes_bump_versions_and_a_stale_version_is_out_of_sequence() -> None:
    swarm = FakeSwarm.recorded("fxrec")
    web = service(swarm, "fxrec_web")
    version = web["Version"]["Index"]
    swarm.update_service("fxrec_web", web["ID"], version, web["Spec"])
    assert service(swarm, "fxrec_web")["Version"]["Index"] > version
    with pytest.raises(OutOfSequenceError, match=r"failed to update service fxrec_web: .*sequence"):
        swarm.update_service("fxrec_web", web["ID"], version, web["Spec"])
    node = swarm.nodes()[0]
    with pytest.raises(OutOfSequenceError):
        swarm.update_node("dbhost", node["ID"], node["Version"]["Index"] - 1, node["Spec"])


def test_names_ids_and_users_are_checked() -> None:
    swarm = FakeSwarm.recorded("fxrec")
    web = service(swarm, "fxrec_web")
    with pytest.raises(AlreadyExistsError):
        swarm.create_service("fxrec_web", web["Spec"])
    with pytest.raises(AlreadyExistsError):
        swarm.create_network("fxrec_backend", {"Driver": "overlay"})
    swarm.create_config("lock", b"", {})
    with pytest.raises(AlreadyExistsError):
        swarm.create_config("lock", b"", {})
    with pytest.raises(NotFoundError):
        swarm.remove_service("fxrec_gone", "nosuchid")
    backend = next(item for item in swarm.networks() if item["Name"] == "fxrec_backend")
    with pytest.raises(InUseError, match="fxrec_db"):
        swarm.remove_network("fxrec_backend", backend["Id"])


def test_services_get_tasks_of_their_current_template_on_eligible_nodes() -> None:
    swarm = FakeSwarm.recorded("fxrec")
    spec = copy.deepcopy(service(swarm, "fxrec_web")["Spec"])
    spec["Name"] = "fxrec_new"
    spec["Mode"] = {"Replicated": {"Replicas": 5}}
    spec["TaskTemplate"]["Networks"] = [{"Target": "fxrec_backend"}]  # by name, as converge sends
    created = swarm.create_service("fxrec_new", spec)
    stored = service(swarm, "fxrec_new")
    backend = next(item["Id"] for item in swarm.networks() if item["Name"] == "fxrec_backend")
    assert stored["Spec"]["TaskTemplate"]["Networks"] == [{"Target": backend}]
    tasks = live_tasks(swarm, created)
    assert sorted(task["Slot"] for task in tasks) == [1, 2, 3, 4, 5]
    nodes = {node["ID"]: node["Description"]["Hostname"] for node in swarm.nodes()}
    # node.role == worker: every worker, never the manager.
    assert {nodes[task["NodeID"]] for task in tasks} == {"dbhost", "worker1", "worker2", "worker3"}
    digest = template_digest(stored["Spec"]["TaskTemplate"])
    assert {template_digest(task["Spec"]) for task in tasks} == {digest}
    assert stored["ServiceStatus"]["RunningTasks"] == 5

    agent = service(swarm, "fxrec_agent")
    worker3 = next(node for node in swarm.nodes() if node["Description"]["Hostname"] == "worker3")
    drained = {**worker3["Spec"], "Availability": "drain"}
    swarm.update_node("worker3", worker3["ID"], worker3["Version"]["Index"], drained)
    assert worker3["ID"] not in {task["NodeID"] for task in live_tasks(swarm, agent["ID"])}
    assert len(live_tasks(swarm, agent["ID"])) == 4
    assert worker3["ID"] not in {task["NodeID"] for task in live_tasks(swarm, created)}


def test_a_template_change_replaces_the_tasks_and_completes_an_update() -> None:
    swarm = FakeSwarm.recorded("fxrec")
    web = service(swarm, "fxrec_web")
    before = {task["ID"] for task in live_tasks(swarm, web["ID"])}
    spec = copy.deepcopy(web["Spec"])
    spec["TaskTemplate"]["ContainerSpec"]["Env"].append("NEW=1")
    swarm.update_service("fxrec_web", web["ID"], web["Version"]["Index"], spec)
    after = live_tasks(swarm, web["ID"])
    assert len(after) == 3
    assert not before & {task["ID"] for task in after}
    assert service(swarm, "fxrec_web")["UpdateStatus"]["State"] == "completed"


# docker-py's request for each call of the seam, as Engine counts it.
_REQUESTS = {
    "info": ("GET", "/info"),
    "nodes": ("GET", "/nodes"),
    "networks": ("GET", "/networks"),
    "services": ("GET", "/services?status=1"),
    "tasks": ("GET", "/tasks"),
    "configs": ("GET", "/configs?filters=x"),
    "containers": ("GET", "/containers/json?all=1"),
    "create_service": ("POST", "/services/create"),
    "update_service": ("POST", "/services/abc/update?version=3"),
    "remove_service": ("DELETE", "/services/abc"),
    "update_node": ("POST", "/nodes/abc/update?version=3"),
    "create_network": ("POST", "/networks/create"),
    "remove_network": ("DELETE", "/networks/abc"),
    "create_config": ("POST", "/configs/create"),
    "remove_config": ("DELETE", "/configs/abc"),
}


def test_calls_are_counted_as_the_engine_counts_them() -> None:
    client = SimpleNamespace(hooks={"response": []})
    engine = Engine(client, "test")  # type: ignore[arg-type]
    for method, path in _REQUESTS.values():
        request = SimpleNamespace(method=method, url=f"http+docker://localhost/v1.41{path}")
        engine._count(SimpleNamespace(request=request))  # type: ignore[arg-type]

    swarm = FakeSwarm.recorded("fxrec")
    web, node = service(swarm, "fxrec_web"), swarm.nodes()[0]
    swarm.calls.clear()
    swarm.info()
    swarm.nodes()
    swarm.networks()
    swarm.services()
    swarm.tasks()
    swarm.configs({"name": "x"})
    swarm.containers()
    new = swarm.create_service("fxrec_x", {**web["Spec"], "Name": "fxrec_x"})
    swarm.update_service("fxrec_x", new, service(swarm, "fxrec_x")["Version"]["Index"], web["Spec"])
    swarm.remove_service("fxrec_x", new)
    swarm.update_node("dbhost", node["ID"], node["Version"]["Index"], node["Spec"])
    network = swarm.create_network("fxrec_x", {})
    swarm.remove_network("fxrec_x", network)
    swarm.remove_config("x", swarm.create_config("x", b"", {}))
    swarm.calls -= Counter({"GET /services": 1})  # the lookup of fxrec_x's version
    assert swarm.calls == engine.calls
    assert swarm.write_count == engine.write_count == 8
