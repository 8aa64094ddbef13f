"""Waiting on conditions in integration tests: poll with a deadline, never sleep a fixed time.

Swarm is eventually consistent; a test states the condition it needs and how long the swarm
may take to reach it, and fails with the last thing it saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import docker

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``probe`` until it returns something other than None/False, and return that.

    Args:
        timeout: seconds before failing the test.
        what: the condition, for the failure message.
        ignore: exception types that count as "not yet" (e.g. ``docker.errors.NotFound``).

    Raises:
        AssertionError: the deadline passed; names the condition and the last value or error.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except ignore as error:
            value, last = None, error
        else:
            last = value
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def node_ids(client: docker.DockerClient) -> dict[str, str]:
    """Hostname -> node id of the Ready nodes (a stale Down entry never hides a Ready one)."""
    found: dict[str, str] = {}
    for node in client.nodes.list():
        attrs = node.attrs
        if attrs["Status"]["State"] == "ready" or attrs["Description"]["Hostname"] not in found:
            found[attrs["Description"]["Hostname"]] = attrs["ID"]
    return found


def node_state(client: docker.DockerClient, hostname: str) -> str | None:
    """The manager's view of ``hostname``: ready, down, unknown... (Ready wins over stale)."""
    states = [
        node.attrs["Status"]["State"]
        for node in client.nodes.list()
        if node.attrs["Description"]["Hostname"] == hostname
    ]
    if not states:
        return None
    return "ready" if "ready" in states else states[0]


def running_tasks(client: docker.DockerClient, service: str) -> list[dict[str, Any]]:
    """Tasks of ``service`` that should run and do run."""
    return [
        task
        for task in client.api.tasks(filters={"service": service, "desired-state": "running"})
        if task["Status"]["State"] == "running"
    ]


def wait_for_running(
    client: docker.DockerClient, service: str, count: int, *, timeout: float = 60
) -> list[dict[str, Any]]:
    """Wait until exactly ``count`` tasks of ``service`` run; return them."""

    def probe() -> list[dict[str, Any]] | None:
        tasks = running_tasks(client, service)
        return tasks if len(tasks) == count else None

    return wait_for(probe, timeout=timeout, what=f"{count} running task(s) of {service}")
