"""Services made by hand (``docker service create``), on the lab: adopted on request without a
restart, and exported to a compose file that plans no change.

- ``converge apply --adopt`` of a compose file naming two hand-made services with their
  settings: exit 0, the same task IDs before and after (a metadata-only update), then an empty
  plan without ``--adopt``;
- ``converge export`` of those services (adopted, or labelled with the stack by hand): the file
  it writes plans no change.

The docker CLI talks to the lab's engine; ``--no-resolve-image`` keeps it off registries.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from converge.lab import Lab
from converge.naming import STACK_LABEL
from converge.polling import poll_until

pytestmark = pytest.mark.integration

IMAGE = "converge-lab/app:v1"


def _run(lab: Lab, argv: list[str]) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value for key, value in os.environ.items() if key not in ("BARE", "DOCKER_CONTEXT")
    }
    environment.update({"DOCKER_HOST": lab.docker_host(), "NO_COLOR": "1"})
    return subprocess.run(
        argv, env=environment, capture_output=True, text=True, check=False, timeout=600
    )


def _converge(lab: Lab, *arguments: str) -> subprocess.CompletedProcess[str]:
    return _run(lab, [sys.executable, "-m", "converge", *arguments])


@pytest.fixture
def handmade(lab: Lab, docker_client: docker.DockerClient, stack: str) -> Iterator[str]:
    """An overlay network made by hand; the services the test makes are removed after it."""
    network = f"{stack}-hand"
    made = _run(lab, ["docker", "network", "create", "--driver", "overlay", network])
    assert made.returncode == 0, made.stderr
    yield network
    for service in docker_client.services.list(filters={"name": f"{stack}_"}):
        service.remove()
    # The engine refuses while the removed services' tasks still hold endpoints on it.
    poll_until(lambda: _run(lab, ["docker", "network", "rm", network]).returncode == 0, timeout=60)


def _service_create(lab: Lab, name: str, network: str, *options: str) -> None:
    argv = ["docker", "service", "create", "--no-resolve-image", "--detach", "--name", name]
    argv += ["--network", network, *options, IMAGE]
    created = _run(lab, argv)
    assert created.returncode == 0, created.stderr


def _compose(tmp_path: Path, network: str) -> Path:
    """The hand-made services, as a compose file (the network is theirs: external)."""
    file = tmp_path / "stack.yml"
    file.write_text(
        f"""
networks:
  hand:
    external: true
    name: {network}
services:
  web:
    image: {IMAGE}
    init: false  # docker service create sends Init false, stack deploy sends nothing
    networks: [hand]
    environment:
      MODE: hand
    deploy:
      replicas: 2
  api:
    image: {IMAGE}
    init: false
    networks: [hand]
    deploy:
      replicas: 1
""",
        encoding="utf-8",
    )
    return file


def _running_tasks(client: docker.APIClient, name: str) -> list[str]:
    tasks = client.tasks(filters={"service": name, "desired-state": "running"})
    return sorted(task["ID"] for task in tasks)


def _wait_running(client: docker.APIClient, name: str, count: int) -> list[str]:
    def running() -> list[str]:
        tasks = client.tasks(filters={"service": name, "desired-state": "running"})
        return sorted(t["ID"] for t in tasks if t["Status"]["State"] == "running")

    poll_until(lambda: len(running()) == count, timeout=60)
    return running()


def test_apply_adopt_takes_over_handmade_services_without_a_restart_and_exports_them(
    lab: Lab,
    docker_client: docker.DockerClient,
    stack: str,
    handmade: str,
    tmp_path: Path,
) -> None:
    client = docker_client.api
    _service_create(lab, f"{stack}_web", handmade, "--replicas", "2", "--env", "MODE=hand")
    _service_create(lab, f"{stack}_api", handmade, "--replicas", "1")
    tasks_before = {
        name: _wait_running(client, name, count)
        for name, count in ((f"{stack}_web", 2), (f"{stack}_api", 1))
    }
    compose = _compose(tmp_path, handmade)

    refused = _converge(lab, "plan", "-c", str(compose), stack)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "--adopt takes it over" in refused.stdout + refused.stderr

    planned = _converge(lab, "plan", "-c", str(compose), stack, "--adopt")
    assert f"~ service {stack}_web: adopt (add the stack's ownership label)" in planned.stdout, (
        planned.stdout + planned.stderr
    )
    applied = _converge(lab, "apply", "-c", str(compose), stack, "--adopt", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr

    for name, before in tasks_before.items():
        service = client.inspect_service(name)
        assert service["Spec"]["Labels"].get(STACK_LABEL) == stack
        assert STACK_LABEL not in (
            service["Spec"]["TaskTemplate"]["ContainerSpec"].get("Labels") or {}
        )
        assert _running_tasks(client, name) == before, name
    again = _converge(lab, "plan", "-c", str(compose), stack, "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr

    # Export of the adopted services: a file that plans no change.
    exported = tmp_path / "exported.yml"
    written = _converge(lab, "export", stack, "--out", str(exported))
    assert written.returncode == 0, written.stderr
    replanned = _converge(lab, "plan", "-c", str(exported), stack, "--detailed-exitcode")
    assert replanned.returncode == 0, exported.read_text() + replanned.stdout + replanned.stderr


def test_export_of_services_labelled_with_the_stack_by_hand_plans_no_change(
    lab: Lab,
    docker_client: docker.DockerClient,
    stack: str,
    handmade: str,
    tmp_path: Path,
) -> None:
    label = f"{STACK_LABEL}={stack}"
    _service_create(lab, f"{stack}_web", handmade, "--replicas", "2", "--label", label)
    _service_create(
        lab, f"{stack}_worker", handmade, "--mode", "global", "--label", label, "--env", "A=1"
    )
    exported = tmp_path / "exported.yml"
    written = _converge(lab, "export", stack, "--out", str(exported))
    assert written.returncode == 0, written.stderr
    replanned = _converge(lab, "plan", "-c", str(exported), stack, "--detailed-exitcode")
    assert replanned.returncode == 0, exported.read_text() + replanned.stdout + replanned.stderr
