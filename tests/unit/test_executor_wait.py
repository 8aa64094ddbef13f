"""Waiting for convergence (the executor's stability window) against a fake engine."""

from __future__ import annotations

import threading
import time
from typing import Any

from fake_engine import FakeClock
from test_health import TEMPLATE, node, task

from converge.engine import Engine
from converge.executor import (
    ApplyEvents,
    ApplyOptions,
    WaitMode,
    _Run,
    _wait_for_services,
    verify_converged,
)
from converge.observe import observe
from converge.spec import Spec


class FakeClient:
    """Answers the observer's list calls with one converged service."""

    def __init__(self, update: dict[str, Any]) -> None:
        self.hooks: dict[str, list[Any]] = {"response": []}
        self.update = update

    def info(self) -> dict[str, Any]:
        return {"Name": "n1", "Swarm": {"LocalNodeState": "active", "ControlAvailable": True}}

    def nodes(self) -> list[dict[str, Any]]:
        return [node("n1"), node("n2")]

    def networks(self) -> list[dict[str, Any]]:
        return []

    def services(self, status: bool = False) -> list[dict[str, Any]]:
        return [
            {
                "ID": "svc",
                "Version": {"Index": 5},
                "Spec": {
                    "Name": "s_web",
                    "Labels": {"com.docker.stack.namespace": "s"},
                    "TaskTemplate": TEMPLATE,
                    "Mode": {"Replicated": {"Replicas": 2}},
                    "UpdateConfig": {"Monitor": 600_000_000},
                },
                "UpdateStatus": self.update,
            }
        ]

    def tasks(self, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return [task(1, "n1"), task(2, "n2")]

    def containers(self, all: bool, filters: dict[str, Any]) -> list[dict[str, Any]]:
        return []

    def secrets(self, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return []

    def configs(self, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return []

    def close(self) -> None:
        pass


def wait(update: dict[str, Any], mode: WaitMode = "stable") -> float:
    """How long (on a fake clock) the wait for the service took."""
    engine = Engine(FakeClient(update), "fake")  # type: ignore[arg-type]
    spec = Spec.model_validate({"x-converge": {"stack": "s"}})
    clock = FakeClock()
    run = _Run(
        spec=spec,
        engine=engine,
        options=ApplyOptions(poll_interval=0.02, wait=mode, clock=clock),
        events=ApplyEvents(),
        deadline=clock.monotonic() + 30,
        observed=observe(engine, spec),
    )
    assert _wait_for_services(run, ["web"]) is None
    return clock.now


def test_converged_tasks_are_watched_for_the_monitor_window() -> None:
    assert wait({}) >= 0.6


def test_an_update_the_engine_completed_was_already_monitored() -> None:
    # swarmkit completes an update only after one more monitor window without failures.
    completed = {"State": "completed", "StartedAt": "2026-01-01T00:00:11Z"}
    assert wait(completed) < 0.6


def test_a_completed_update_from_before_this_apply_does_not_count() -> None:
    earlier = {"State": "completed", "StartedAt": "2026-01-01T00:00:01Z"}
    assert wait(earlier) >= 0.6


def test_wait_running_holds_no_window() -> None:
    assert wait({}, "running") < 0.6


def test_wait_running_does_not_wait_for_the_engines_monitor_of_an_update() -> None:
    # The new tasks run; the engine still watches them (updating) before it completes.
    updating = {"State": "updating", "StartedAt": "2026-01-01T00:00:11Z"}
    assert wait(updating, "running") < 0.6


def test_wait_none_verifies_nothing() -> None:
    engine = Engine(FakeClient({"State": "updating"}), "fake")  # type: ignore[arg-type]
    spec = Spec.model_validate(
        {"x-converge": {"stack": "s"}, "services": {"web": {"image": "app:1"}}}
    )
    observed = observe(engine, spec)
    calls = engine.call_count
    result = verify_converged(spec, engine, observed, options=ApplyOptions(wait="none"))
    assert result.ok
    assert engine.call_count == calls


class FakeStream:
    """An event stream that reports the service's update when the client completes it."""

    def __init__(self, completes_at: float) -> None:
        self.completes_at = completes_at
        self.closed = threading.Event()
        self.sent = False

    def __iter__(self) -> FakeStream:
        return self

    def __next__(self) -> dict[str, Any]:
        while not self.closed.wait(0.01):
            if time.monotonic() >= self.completes_at and not self.sent:
                self.sent = True
                attributes = {"name": "s_web"}
                return {"Type": "service", "Action": "update", "Actor": {"Attributes": attributes}}
        raise StopIteration

    def close(self) -> None:
        self.closed.set()


class UpdatingClient(FakeClient):
    """A service whose update completes ``after`` seconds from now; streams events if
    ``events`` (else, like an engine that cannot, it only answers polls)."""

    def __init__(self, after: float, events: bool) -> None:
        super().__init__({"State": "updating", "StartedAt": "2026-01-01T00:00:11Z"})
        self.completes_at = time.monotonic() + after
        self.observations = 0
        self.streams: list[FakeStream] = []
        if events:
            self.events = self._events

    def services(self, status: bool = False) -> list[dict[str, Any]]:
        self.observations += 1
        if time.monotonic() >= self.completes_at:
            self.update = {"State": "completed", "StartedAt": "2026-01-01T00:00:11Z"}
        return super().services(status)

    def _events(self, decode: bool, filters: dict[str, Any]) -> FakeStream:
        assert filters == {"type": ["service", "node"]}
        self.streams.append(FakeStream(self.completes_at))
        return self.streams[-1]


def observations_until_converged(client: UpdatingClient) -> int:
    engine = Engine(client, "fake")  # type: ignore[arg-type]
    spec = Spec.model_validate({"x-converge": {"stack": "s"}})
    # The fallback lies beyond the deadline: only the event can end this wait in time.
    run = _Run(
        spec=spec,
        engine=engine,
        options=ApplyOptions(poll_interval=0.01, event_fallback=60),
        events=ApplyEvents(),
        deadline=time.monotonic() + 10,
        observed=observe(engine, spec),
    )
    before = client.observations
    assert _wait_for_services(run, ["web"]) is None
    return client.observations - before


def test_an_update_the_engine_watches_is_awaited_through_its_events() -> None:
    # Polling alone observes every 10 ms until the update completes; with events the wait
    # observes, opens the stream, observes again, then sleeps until the completion's event.
    # Real time passes in both: a loaded machine may add a round or two to the event-woken
    # wait, but not the ~100 rounds of polling a whole second.
    client = UpdatingClient(after=1.0, events=True)
    with_events = observations_until_converged(client)
    assert client.streams
    assert client.streams[0].closed.is_set()  # the watch ends with the wait
    polled = observations_until_converged(UpdatingClient(after=1.0, events=False))
    assert with_events <= 5
    assert polled > 20
