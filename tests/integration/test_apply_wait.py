"""``apply --wait stable|running|none`` on the real swarm: what each mode waits for (issue 19).

The engine completes an update only after watching the new tasks for its monitor window (here
5 s, the default), so its update state tells where each mode returned."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest
from conftest import ConvergeCli

pytestmark = pytest.mark.integration

SPEC = """
x-converge:
  stack: {stack}
services:
  web:
    image: converge-lab/app:v1
    environment: {{LEVEL: "{level}"}}
"""


def _apply(converge_cli: ConvergeCli, path: Path, stack: str, level: str, wait: str) -> None:
    path.write_text(SPEC.format(stack=stack, level=level))
    done = converge_cli("apply", str(path), "--yes", "--wait", wait)
    assert done.returncode == 0, done.stdout + done.stderr


def _update_state(docker_client: docker.DockerClient, stack: str) -> str | None:
    service = docker_client.services.get(f"{stack}_web")
    return (service.attrs.get("UpdateStatus") or {}).get("State")


def test_wait_modes_return_where_they_say(
    stack: str, converge_cli: ConvergeCli, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yml"
    _apply(converge_cli, spec, stack, "one", "stable")
    # running: the new task runs; the engine is still inside its monitor window.
    _apply(converge_cli, spec, stack, "two", "running")
    tasks = docker_client.services.get(f"{stack}_web").tasks({"desired-state": "running"})
    assert [task["Status"]["State"] for task in tasks] == ["running"]
    assert "LEVEL=two" in tasks[0]["Spec"]["ContainerSpec"]["Env"]
    assert _update_state(docker_client, stack) == "updating"
    # stable: the engine's own completion (after its window) is what apply waits for.
    _apply(converge_cli, spec, stack, "three", "stable")
    assert _update_state(docker_client, stack) == "completed"
    # none: written, not waited for.
    _apply(converge_cli, spec, stack, "four", "none")
    assert _update_state(docker_client, stack) == "updating"
