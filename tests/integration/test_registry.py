"""A private image from the lab's registry: credentials, digests, a re-pushed tag (issue 13).

The lab runs Debian's docker-registry with htpasswd basic auth at the host's lab address;
every node trusts it. One stack, three applies: refused without credentials (the error names
the registry), deployed with --with-registry-auth and pinned to the digest, and rolled onto
the new content of a re-pushed tag, which plan shows as a digest change.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from waiting import running_tasks

from converge.lab import APP_V1, APP_V2, Lab

pytestmark = pytest.mark.integration

SPEC = """
x-converge:
  stack: {stack}
services:
  web:
    image: {image}
    deploy:
      replicas: 2
      placement:
        constraints: [node.role == worker]
      update_config: {{monitor: 1s}}
"""


def test_a_private_image_deploys_with_registry_auth_and_follows_a_re_pushed_tag(
    stack: str,
    lab: Lab,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    node_client: Callable[[str], docker.DockerClient],
) -> None:
    registry = lab.registry_address()
    image = f"{registry}/{stack}/app:1.2"
    first = lab.push_image(APP_V1, f"{stack}/app:1.2")
    spec = tmp_path / "docker-stack.yml"
    spec.write_text(SPEC.format(stack=stack, image=image))
    environment = {
        **os.environ,
        "DOCKER_HOST": lab.docker_host(),
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),
        "NO_COLOR": "1",
    }

    def run(*arguments: str, tool: str = "converge") -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "converge"] if tool == "converge" else [tool]
        return subprocess.run(
            [*command, *arguments],
            env=environment,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            input=lab.registry_credentials()["password"] if tool == "docker" else None,
        )

    # Without credentials the nodes cannot pull it, and the error says where and what to do.
    refused = run("apply", "--yes", "--timeout", "90s", str(spec))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"No such image: {image}" in refused.stderr
    assert (
        f"image {image} could not be pulled from registry {registry} without credentials: "
        f"if it is private, run `docker login {registry}` and apply with --with-registry-auth"
    ) in refused.stderr
    assert f"image {image} could not be resolved to a digest" in refused.stderr

    login = run("login", registry, "-u", "converge", "--password-stdin", tool="docker")
    assert login.returncode == 0, login.stderr
    applied = run("apply", "--yes", "--with-registry-auth", str(spec))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    service = docker_client.services.get(f"{stack}_web")
    assert service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == f"{image}@{first}"
    assert service.attrs["Spec"]["Labels"]["com.docker.stack.image"] == image
    same = run("plan", "--with-registry-auth", "--detailed-exitcode", str(spec))
    assert same.returncode == 0, same.stdout + same.stderr

    # The same tag, new content: plan shows the digest moving, drift reports it when asked.
    second = lab.push_image(APP_V2, f"{stack}/app:1.2")
    assert second != first
    moved = run("plan", "--with-registry-auth", "--detailed-exitcode", str(spec))
    assert moved.returncode == 2, moved.stdout + moved.stderr
    assert f"~ image: {image} ({first[:19]}… → {second[:19]}…)" in moved.stdout
    assert run("drift", str(spec)).returncode == 0  # tags only, by default
    drifted = run("drift", "--resolve-image", "always", "--with-registry-auth", str(spec))
    assert drifted.returncode == 2, drifted.stdout + drifted.stderr
    assert "image" in drifted.stdout

    rolled = run("apply", "--yes", "--with-registry-auth", str(spec))
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    service.reload()
    assert service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == f"{image}@{second}"
    task = running_tasks(docker_client, f"{stack}_web")[0]
    node = docker_client.nodes.get(task["NodeID"]).attrs["Description"]["Hostname"]
    container = node_client(node).containers.get(task["Status"]["ContainerStatus"]["ContainerID"])
    answer = container.exec_run(["timeout", "5", "wget", "-qO-", "http://127.0.0.1/version"])
    assert answer.output.decode().strip() == "v2"
