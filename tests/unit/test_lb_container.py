"""converge.lb.container against a recording fake engine: the order of writes, and what an
invalid config leaves untouched."""

from __future__ import annotations

import io
import tarfile
from dataclasses import replace
from typing import Any

import pytest

import converge.lb.container as lbio
from converge.actions import Action, Phase
from converge.errors import LoadBalancerError
from converge.lb.config import CONFIG_DIR, render_config
from converge.loader import load_spec_text
from converge.state import ObservedLoadBalancer, ObservedState

SPEC = """
x-converge:
  stack: shop
  loadbalancer:
    image: haproxy:2.8
    node: manager
    frontends: {http: {port: 80, backend: web}}
    backends: {web: {service: web, port: 80}}
networks:
  backend: {attachable: true}
services:
  web: {image: app:1, networks: [backend]}
"""
INVALID = "[ALERT]    (7) : config : parsing [x.cfg:3] : unknown keyword 'nope' in 'backend'\n"


class FakeEngine:
    """Records every write; ``check_exit`` is what ``haproxy -c`` returns."""

    def __init__(self, check_exit: int = 0) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.check_exit = check_exit
        self.files: dict[str, str] = {}

    def create_container(self, name: str, body: dict[str, Any]) -> str:
        self.calls.append(("create", name, " ".join(body.get("Cmd") or [])))
        return f"id-{name}"

    def put_archive(self, name: str, container_id: str, path: str, tar: bytes) -> None:
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            member = archive.getmembers()[0]
            handle = archive.extractfile(member)
            assert handle is not None
            self.files[f"{path}/{member.name}"] = handle.read().decode()
            self.calls.append(("put", name, f"{path}/{member.name}"))

    def start_container(self, name: str, container_id: str) -> None:
        self.calls.append(("start", name))

    def wait_container(self, name: str, container_id: str, timeout: float) -> int:
        return self.check_exit

    def container_logs(self, name: str, container_id: str) -> str:
        return INVALID

    def remove_container(self, name: str, container_id: str) -> None:
        self.calls.append(("remove", name))

    def exec_run(self, name: str, container_id: str, command: list[str]) -> tuple[int, str]:
        self.calls.append(("exec", name, " ".join(command)))
        if command[0] == "haproxy":
            return self.check_exit, INVALID if self.check_exit else "Configuration file is valid"
        return 0, ""

    def kill_container(self, name: str, container_id: str, signal: str) -> None:
        self.calls.append(("kill", name, signal))

    def connect_network(self, name: str, container_id: str, network: str) -> None:
        self.calls.append(("connect", name, network))

    def inspect_container(self, name: str) -> dict[str, Any]:
        return {"State": {"Running": True}}


def run(engine: FakeEngine, current: ObservedLoadBalancer | None, kind: str = "update") -> str:
    spec = load_spec_text(SPEC, environ={}).spec
    observed = ObservedState(stack="shop", manager="manager", loadbalancer_engine="manager")
    observed = replace(observed, loadbalancers=(current,) if current else ())
    action = Action(Phase.LOADBALANCER, kind, "loadbalancer", "loadbalancer", "shop_x", "")  # type: ignore[arg-type]
    return lbio.execute_loadbalancer(spec, action, engine, observed)  # type: ignore[arg-type]


def running(config: str, **view: Any) -> ObservedLoadBalancer:
    base = {
        "image": "haproxy:2.8",
        "node": "manager",
        "ports": ["80/tcp"],
        "networks": ["shop_backend"],
        "running": True,
        "config": config,
    }
    return ObservedLoadBalancer("c1", "shop_loadbalancer", True, {**base, **view}, config)


def current_config() -> str:
    spec = load_spec_text(SPEC, environ={}).spec
    return render_config(spec, ObservedState(stack="shop", manager="manager"))


def test_a_new_balancer_is_validated_in_a_throwaway_container_then_created() -> None:
    engine = FakeEngine()
    assert run(engine, None, "create") == "created"
    assert [call[0] for call in engine.calls] == [
        "create",  # the check container
        "put",
        "start",
        "remove",
        "create",  # the balancer
        "put",
        "start",
    ]
    assert engine.calls[0][2] == "haproxy -c -f /usr/local/etc/haproxy/haproxy.cfg"
    assert engine.files[f"{CONFIG_DIR}/haproxy.cfg"] == current_config()


def test_a_config_change_is_checked_in_place_then_reloaded() -> None:
    engine = FakeEngine()
    assert run(engine, running("old\n")) == "updated"
    assert [call[0] for call in engine.calls] == ["put", "exec", "put", "exec", "kill"]
    assert engine.calls[1][2].startswith("haproxy -c -f /usr/local/etc/haproxy/haproxy.cfg.")
    assert engine.calls[2][2] == f"{CONFIG_DIR}/haproxy.cfg"
    assert engine.calls[-1][2] == "SIGUSR2"


def test_an_invalid_config_fails_and_leaves_the_live_one() -> None:
    engine = FakeEngine(check_exit=1)
    with pytest.raises(LoadBalancerError, match="the running one is kept: parsing"):
        run(engine, running("old\n"))
    assert f"{CONFIG_DIR}/haproxy.cfg" not in engine.files
    assert all(call[0] != "kill" for call in engine.calls)


def test_an_invalid_config_never_removes_a_container_it_would_replace() -> None:
    engine = FakeEngine(check_exit=1)
    with pytest.raises(LoadBalancerError, match="nothing was changed"):
        run(engine, running("old\n", image="haproxy:2.6"), "replace")
    assert ("remove", "shop_loadbalancer") not in engine.calls


def test_an_unchanged_config_is_not_reloaded() -> None:
    engine = FakeEngine()
    assert run(engine, running(current_config())) == "unchanged"
    assert engine.calls == []


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class StateEngine(FakeEngine):
    """A container whose inspect answers ``states`` in turn (the last one forever)."""

    def __init__(self, *states: dict[str, Any]) -> None:
        super().__init__()
        self.states = list(states)

    def inspect_container(self, name: str) -> dict[str, Any]:
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"State": state}


def test_a_container_that_restarts_then_runs_is_running() -> None:
    engine = StateEngine({"Restarting": True}, {"Running": True})
    lbio._check_running(engine, "shop_lb", "c1", "did not start", FakeClock())  # type: ignore[arg-type]


def test_a_container_that_exited_fails_with_its_last_log_lines() -> None:
    engine = StateEngine({"Running": False, "Status": "exited"})
    with pytest.raises(LoadBalancerError) as failure:
        lbio._check_running(engine, "shop_lb", "c1", "did not start", FakeClock())  # type: ignore[arg-type]
    assert (
        str(failure.value)
        == f"loadbalancer shop_lb did not start: exited; last log lines: {INVALID.strip()}"
    )


def test_a_container_that_keeps_restarting_times_out() -> None:
    engine = StateEngine({"Running": True, "Restarting": True, "Status": "restarting"})
    with pytest.raises(LoadBalancerError, match="stopped after the reload: restarting;"):
        lbio._check_running(engine, "shop_lb", "c1", "stopped after the reload", FakeClock())  # type: ignore[arg-type]
