"""Secrets and configs on the lab: what containers see, rotation, sources, destroy.

Each container's files are read with ``docker exec`` through the engine of the node that runs
it. One story per test, with as few applies as the story needs.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from conftest import ConvergeCli
from waiting import wait_for

from converge.naming import FINGERPRINT_LABEL, STACK_LABEL

pytestmark = pytest.mark.integration

SPEC = """
x-converge:
  stack: {stack}
services:
  api:
    image: converge-lab/app:v1
    secrets:
      - db_password
      - source: api_key
        target: api.key
        uid: "1000"
        mode: 0400
    configs:
      - source: site
        target: /etc/site.conf
    deploy:
      update_config: {{monitor: 1s}}
  worker:
    image: converge-lab/app:v1
    secrets: [db_password]
    deploy:
      update_config: {{monitor: 1s}}
secrets:
  db_password:
    file: ./db_password.txt
  api_key:
    environment: LAB_API_KEY
configs:
  site:
    content: "service={{{{.Service.Name}}}}\\n"
    template_driver: golang
"""

Reader = Callable[[str, str], str]


@pytest.fixture
def read_file(
    docker_client: docker.DockerClient, node_client: Callable[[str], docker.DockerClient]
) -> Reader:
    """The content of ``path`` in the running container of service ``name``."""

    def read(name: str, path: str) -> str:
        def running() -> tuple[str, str] | None:
            for task in docker_client.api.tasks(filters={"service": name}):
                status = task.get("Status") or {}
                if task.get("DesiredState") == "running" and status.get("State") == "running":
                    node = docker_client.nodes.get(task["NodeID"])
                    container = (status.get("ContainerStatus") or {}).get("ContainerID")
                    if container:
                        return node.attrs["Description"]["Hostname"], container
            return None

        hostname, container_id = wait_for(running, timeout=60, what=f"a task of {name}")
        container = node_client(hostname).containers.get(container_id)
        code, output = container.exec_run(["cat", path])
        assert code == 0, output
        return bytes(output).decode()

    return read


def _versions(docker_client: docker.DockerClient, stack: str, kind: str = "secrets") -> set[str]:
    collection = docker_client.secrets if kind == "secrets" else docker_client.configs
    return {
        item.name
        for item in collection.list(filters={"label": f"{STACK_LABEL}={stack}"})
        if not item.name.startswith("converge-lock-")
    }


def test_secrets_and_configs_reach_containers_rotate_and_are_destroyed(
    stack: str,
    converge_cli: ConvergeCli,
    docker_client: docker.DockerClient,
    read_file: Reader,
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text("LAB_API_KEY=lab-api-key-3141\n")
    spec = tmp_path / "stack.yml"
    spec.write_text(SPEC.format(stack=stack))
    password = tmp_path / "db_password.txt"
    password.write_text("lab-password-one\n")
    unowned = docker_client.secrets.create(name=f"{stack}-unowned", data=b"not ours")
    try:
        applied = converge_cli("apply", "--yes", str(spec))
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert read_file(f"{stack}_api", "/run/secrets/db_password") == "lab-password-one\n"
        assert read_file(f"{stack}_worker", "/run/secrets/db_password") == "lab-password-one\n"
        assert read_file(f"{stack}_api", "/run/secrets/api.key") == "lab-api-key-3141"
        assert read_file(f"{stack}_api", "/etc/site.conf") == f"service={stack}_api\n"
        # Named as docker stack deploy names them; the fingerprint shows no value.
        assert _versions(docker_client, stack) == {f"{stack}_db_password", f"{stack}_api_key"}
        assert _versions(docker_client, stack, "configs") == {f"{stack}_site"}
        secret = docker_client.secrets.get(f"{stack}_db_password")
        assert secret.attrs["Spec"]["Labels"][FINGERPRINT_LABEL].startswith("scrypt$")
        again = converge_cli("plan", "--detailed-exitcode", str(spec))
        assert again.returncode == 0, again.stdout + again.stderr

        # Rotation: a new version, both services roll onto it, the old one is kept (keep 1).
        password.write_text("lab-password-two\n")
        planned = converge_cli("plan", str(spec))
        assert f"+ secret db_password ({stack}_db_password_" in planned.stdout
        assert "): new version; 2 services roll" in planned.stdout
        assert "lab-password" not in planned.stdout + planned.stderr
        applied = converge_cli("apply", "--yes", str(spec))
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert read_file(f"{stack}_api", "/run/secrets/db_password") == "lab-password-two\n"
        assert read_file(f"{stack}_worker", "/run/secrets/db_password") == "lab-password-two\n"
        second = _versions(docker_client, stack) - {f"{stack}_db_password", f"{stack}_api_key"}
        assert len(second) == 1
        assert f"{stack}_db_password" in _versions(docker_client, stack)

        # A third value: the second version is kept for rollback, the first removed.
        password.write_text("lab-password-three\n")
        applied = converge_cli("apply", "--yes", str(spec))
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert f"- secret db_password ({stack}_db_password): remove an old" in applied.stdout
        assert read_file(f"{stack}_worker", "/run/secrets/db_password") == "lab-password-three\n"
        names = _versions(docker_client, stack)
        assert f"{stack}_db_password" not in names
        assert second <= names
        assert len(names) == 3  # api_key, the second and the third db_password
        again = converge_cli("plan", "--detailed-exitcode", str(spec))
        assert again.returncode == 0, again.stdout + again.stderr

        destroyed = converge_cli("destroy", "--yes", str(spec))
        assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
        assert _versions(docker_client, stack) == set()
        assert _versions(docker_client, stack, "configs") == set()
        assert docker_client.secrets.get(unowned.id).name == f"{stack}-unowned"
    finally:
        unowned.remove()


AGE_SPEC = """
x-converge:
  stack: {stack}
services:
  app:
    image: converge-lab/app:v1
    secrets: [from_age, from_command]
    deploy:
      update_config: {{monitor: 1s}}
secrets:
  from_age:
    x-converge:
      age: {{file: ./token.age, identity: ./{identity}}}
  from_command:
    x-converge:
      command: {command}
"""


def _age(tmp_path: Path, name: str) -> str:
    """A new age identity file; returns its public key."""
    subprocess.run(["age-keygen", "-o", str(tmp_path / name)], check=True, capture_output=True)
    found = subprocess.run(
        ["age-keygen", "-y", str(tmp_path / name)], check=True, capture_output=True, text=True
    )
    return found.stdout.strip()


def test_age_and_command_sources_converge_and_bad_ones_write_nothing(
    stack: str,
    converge_cli: ConvergeCli,
    docker_client: docker.DockerClient,
    read_file: Reader,
    tmp_path: Path,
) -> None:
    recipient = _age(tmp_path, "identity.txt")
    _age(tmp_path, "wrong.txt")
    subprocess.run(
        ["age", "-r", recipient, "-o", str(tmp_path / "token.age")],
        input=b"age-decrypted-token-2718",
        check=True,
    )
    (tmp_path / "value.txt").write_text("from-a-command-1618")
    spec = tmp_path / "stack.yml"

    def write(identity: str, command: str) -> None:
        spec.write_text(AGE_SPEC.format(stack=stack, identity=identity, command=command))

    # A wrong identity, then a failing command: each names the secret, nothing is written.
    write("wrong.txt", "cat value.txt")
    failed = converge_cli("apply", "--yes", "-o", "json", str(spec))
    assert failed.returncode == 1
    error = json.loads(failed.stdout)["error"]
    assert error["kind"] == "source"
    assert "secret from_age: cannot decrypt" in error["message"]
    write("identity.txt", "echo vault says no >&2; exit 7")
    failed = converge_cli("apply", "--yes", str(spec))
    assert failed.returncode == 1
    assert "secret from_command: the command" in failed.stderr
    assert "exit code 7" in failed.stderr
    assert _versions(docker_client, stack) == set()
    assert docker_client.services.list(filters={"label": f"{STACK_LABEL}={stack}"}) == []

    write("identity.txt", "cat value.txt")
    applied = converge_cli("apply", "--yes", str(spec))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert read_file(f"{stack}_app", "/run/secrets/from_age") == "age-decrypted-token-2718"
    assert read_file(f"{stack}_app", "/run/secrets/from_command") == "from-a-command-1618"
    again = converge_cli("plan", "--detailed-exitcode", str(spec))
    assert again.returncode == 0, again.stdout + again.stderr
