"""observe against a fake engine: the calls it makes, and the load balancer it finds."""

from __future__ import annotations

import io
import tarfile
import threading
from collections import Counter
from typing import Any

import pytest

from converge.engine import EngineInfo
from converge.errors import EngineError
from converge.lb.config import CONFIG_PATH
from converge.loader import load_spec_text
from converge.naming import LB_CHECK_LABEL, LB_LABEL
from converge.observe import observe
from converge.spec import Spec
from converge.state import ObservedState

WITH_LB = """
x-converge:
  stack: shop
  loadbalancer:
    image: haproxy:2.8
    node: manager
    frontends: {http: {port: 80, backend: web}}
    backends: {web: {service: web, port: 80, method: dns}}
networks:
  backend: {attachable: true}
services:
  web: {image: app:1, networks: [backend]}
"""
CONFIG = "global\n"
STACK = {"com.docker.stack.namespace": "shop"}


def service(index: int) -> dict[str, Any]:
    return {
        "ID": f"svc{index}",
        "Version": {"Index": 1},
        "Spec": {"Name": f"shop_s{index}", "Labels": STACK, "TaskTemplate": {}},
    }


def container(name: str, **labels: str) -> dict[str, Any]:
    return {"Id": f"id-{name}", "Names": [f"/{name}"], "Labels": {**STACK, **labels}}


class FakeEngine:
    """Answers the observer's reads and counts them, as ``Engine.call_count`` does."""

    def __init__(self, services: int = 1, containers: list[dict[str, Any]] | None = None) -> None:
        self.calls: Counter[str] = Counter()
        self._services = [service(index) for index in range(services)]
        self._containers = containers or []

    @property
    def call_count(self) -> int:
        return sum(self.calls.values())

    def require_manager(self) -> EngineInfo:
        self.calls["info"] += 1
        return EngineInfo({"Name": "manager", "Swarm": {"ControlAvailable": True}})

    def nodes(self) -> list[dict[str, Any]]:
        self.calls["nodes"] += 1
        return []

    def networks(self) -> list[dict[str, Any]]:
        self.calls["networks"] += 1
        return []

    def services(self) -> list[dict[str, Any]]:
        self.calls["services"] += 1
        return self._services

    def tasks(self) -> list[dict[str, Any]]:
        self.calls["tasks"] += 1
        return []

    def secrets(self) -> list[dict[str, Any]]:
        self.calls["secrets"] += 1
        return []

    def configs(self) -> list[dict[str, Any]]:
        self.calls["configs"] += 1
        return []

    def containers(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        self.calls["containers"] += 1
        assert filters == {"label": ["com.docker.stack.namespace=shop"]}
        return [item for item in self._containers if STACK.items() <= item["Labels"].items()]

    def inspect_container(self, name: str) -> dict[str, Any] | None:
        self.calls["inspect"] += 1
        found = [c for c in self._containers if name in (c["Id"], c["Names"][0].lstrip("/"))]
        if not found:
            return None
        return {
            "Id": found[0]["Id"],
            "Config": {"Image": "haproxy:2.8", "Labels": found[0]["Labels"]},
            "State": {"Running": True, "Pid": 7},
        }

    def get_archive(self, name: str, container_id: str, path: str) -> bytes | None:
        self.calls["archive"] += 1
        assert path == CONFIG_PATH
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            info = tarfile.TarInfo("haproxy.cfg")
            info.size = len(CONFIG)
            archive.addfile(info, io.BytesIO(CONFIG.encode()))
        return buffer.getvalue()


def spec(text: str = "x-converge:\n  stack: shop\n") -> Spec:
    return load_spec_text(text, environ={}).spec


def observed(engine: FakeEngine, of: Spec) -> ObservedState:
    return observe(engine, of)  # type: ignore[arg-type]


@pytest.mark.parametrize("services", [1, 50])
def test_the_calls_do_not_grow_with_the_services(services: int) -> None:
    engine = FakeEngine(services)
    state = observed(engine, spec())
    # The seven swarm reads, and one list of the stack's load-balancer containers.
    assert state.api_calls == 8
    assert engine.calls["containers"] == 1
    assert len(state.services) == services


class SlowInfoEngine(FakeEngine):
    """/info answers only once the observer has asked for ``waits_for``: read one after the
    other, the two would never meet."""

    def __init__(self, waits_for: str, worker: bool = False) -> None:
        super().__init__()
        self.waits_for = waits_for
        self.worker = worker
        self.asked = threading.Event()

    def require_manager(self) -> EngineInfo:
        assert self.asked.wait(timeout=10), f"/info was not read beside /{self.waits_for}"
        if self.worker:
            raise EngineError("the Docker engine at fake (node-2) is a swarm worker")
        return super().require_manager()

    def nodes(self) -> list[dict[str, Any]]:
        if self.waits_for == "nodes":
            self.asked.set()
        if self.worker:
            raise EngineError("failed to list the nodes: This node is not a swarm manager.")
        return super().nodes()

    def tasks(self) -> list[dict[str, Any]]:
        if self.waits_for == "tasks":
            self.asked.set()
        return super().tasks()


def test_the_engine_info_is_read_beside_the_lists() -> None:
    engine = SlowInfoEngine(waits_for="tasks")
    state = observed(engine, spec())
    assert state.manager == "manager"
    assert state.api_calls == 8


def test_a_worker_is_refused_with_its_info_s_reason_not_a_list_s_error() -> None:
    engine = SlowInfoEngine(waits_for="nodes", worker=True)
    with pytest.raises(EngineError, match="is a swarm worker"):
        observed(engine, spec())


def test_without_a_balancer_in_the_spec_a_leftover_one_is_still_found() -> None:
    engine = FakeEngine(containers=[container("shop_old", **{LB_LABEL: "old"})])
    state = observed(engine, spec())
    assert [(lb.name, lb.owned, lb.config) for lb in state.loadbalancers] == [
        ("shop_old", True, CONFIG)
    ]
    assert state.loadbalancer_engine == "manager"
    assert state.api_calls == 8 + 2  # its inspect and its config


def test_the_spec_balancer_is_read_with_its_config() -> None:
    balancer = container("shop_loadbalancer", **{LB_LABEL: "loadbalancer"})
    engine = FakeEngine(containers=[balancer])
    state = observed(engine, spec(WITH_LB))
    (found,) = state.loadbalancers
    assert (found.name, found.owned, found.config, found.pid) == (
        "shop_loadbalancer",
        True,
        CONFIG,
        7,
    )
    assert state.api_calls == 8 + 2


def test_a_missing_balancer_costs_one_inspect_of_its_name() -> None:
    engine = FakeEngine()
    state = observed(engine, spec(WITH_LB))
    assert state.loadbalancers == ()
    assert state.api_calls == 8 + 1


def test_an_unowned_container_holding_the_name_is_seen_as_not_owned() -> None:
    stranger = {"Id": "x", "Names": ["/shop_loadbalancer"], "Labels": {}}
    engine = FakeEngine(containers=[stranger])
    state = observed(engine, spec(WITH_LB))
    assert [(lb.name, lb.owned) for lb in state.loadbalancers] == [("shop_loadbalancer", False)]


def test_a_leftover_config_check_container_is_found_without_more_calls() -> None:
    check = container("shop_loadbalancer-check-123456", **{LB_CHECK_LABEL: "shop_loadbalancer"})
    task = container("shop_web.1.abc")  # a task container carrying the stack label
    engine = FakeEngine(containers=[check, task])
    state = observed(engine, spec())
    assert state.loadbalancers == ()
    assert [(c.id, c.name) for c in state.loadbalancer_checks] == [
        ("id-shop_loadbalancer-check-123456", "shop_loadbalancer-check-123456")
    ]
    assert state.api_calls == 8
