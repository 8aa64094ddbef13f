"""converge and docker stack deploy take over from each other, on the lab, with no change.

For each compose file of tests/fixtures/stackdeploy/ (a multi-network web application with
x-converge keys at the top level and in a service, a monitoring-style stack, a stack in two
files with .env variables, every field, secrets and configs):

- ``docker stack deploy -c F S``, then ``converge plan -c F S``: no change (adoption; a secret
  stack deploy made cannot be verified, which is a warning, not a change);
- ``converge export S``: the file it writes plans no change either (its secrets' values put
  where its warnings say: the engine never returns them);
- ``converge apply -c F S`` on an empty stack, then ``docker stack deploy -c F S``: no
  service's ``.Spec`` changed (and no network was created or removed).

The docker CLI talks to the lab's engine; ``--resolve-image never`` keeps it off registries.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from stacks import remove_stack

from converge.lab import Lab
from converge.naming import STACK_LABEL

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stackdeploy"
TWO_FILES = FIXTURES / "twofiles"
# docker stack deploy reads no .env file: it gets the same variables from its environment.
TWO_FILES_VARIABLES = {
    line.partition("=")[0]: line.partition("=")[2]
    for line in (TWO_FILES / ".env").read_text(encoding="utf-8").splitlines()
    if line and not line.startswith("#")
}

CASES = [
    pytest.param([FIXTURES / "webapp.yml"], {}, id="webapp"),
    pytest.param([FIXTURES / "monitoring.yml"], {}, id="monitoring"),
    pytest.param(
        [TWO_FILES / "base.yml", TWO_FILES / "prod.yml"], TWO_FILES_VARIABLES, id="two-files"
    ),
    pytest.param([FIXTURES / "everything.yml"], {}, id="everything"),
    pytest.param([FIXTURES / "secrets.yml"], {}, id="secrets"),
]
# What an exported file reads its secrets from (the engine never returns their values): the
# values the fixtures deployed.
SECRET_VALUES = {"site_password": FIXTURES / "secrets" / "site_password.txt"}


def _run(
    lab: Lab, argv: list[str], variables: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value for key, value in os.environ.items() if key not in ("BARE", "DOCKER_CONTEXT")
    }
    environment.update({"DOCKER_HOST": lab.docker_host(), "NO_COLOR": "1", **(variables or {})})
    return subprocess.run(
        argv, env=environment, capture_output=True, text=True, check=False, timeout=600
    )


def _compose_arguments(files: list[Path]) -> list[str]:
    return [argument for file in files for argument in ("-c", str(file))]


def _stack_deploy(lab: Lab, files: list[Path], stack: str, variables: dict[str, str]) -> None:
    argv = ["docker", "stack", "deploy", "--resolve-image", "never", "--detach"]
    deployed = _run(lab, [*argv, *_compose_arguments(files), stack], variables)
    assert deployed.returncode == 0, deployed.stderr


def _converge(lab: Lab, *arguments: str) -> subprocess.CompletedProcess[str]:
    # No variables from the test: converge reads the .env file beside the first file.
    return _run(lab, [sys.executable, "-m", "converge", *arguments])


def _service_specs(client: docker.APIClient, stack: str) -> dict[str, dict[str, Any]]:
    services = client.services(filters={"label": f"{STACK_LABEL}={stack}"})
    return {service["Spec"]["Name"]: service["Spec"] for service in services}


def _networks(client: docker.APIClient, stack: str) -> dict[str, str]:
    networks = client.networks(filters={"label": f"{STACK_LABEL}={stack}"})
    return {network["Name"]: network["Id"] for network in networks}


@pytest.mark.parametrize(("files", "variables"), CASES)
def test_a_stack_deploy_stack_is_adopted_and_a_converge_stack_is_kept_by_stack_deploy(
    files: list[Path],
    variables: dict[str, str],
    stack: str,
    lab: Lab,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    client = docker_client.api
    compose = _compose_arguments(files)

    # docker stack deploy, then converge: nothing to change.
    _stack_deploy(lab, files, stack, variables)
    assert _service_specs(client, stack)
    planned = _converge(lab, "plan", *compose, stack, "--detailed-exitcode")
    assert planned.returncode == 0, planned.stdout + planned.stderr

    # converge export writes it back as a file that plans no change either, once the secrets'
    # values are where it says.
    exported = tmp_path / "exported.yml"
    written = _converge(lab, "export", stack, "--out", str(exported))
    assert written.returncode == 0, written.stderr
    for key in yaml.safe_load(exported.read_text()).get("secrets") or {}:
        assert f"Warning: secret {key}: the engine never gives" in written.stderr
        (tmp_path / "secrets").mkdir(exist_ok=True)
        (tmp_path / "secrets" / key).write_bytes(SECRET_VALUES[key].read_bytes())
    replanned = _converge(lab, "plan", "-c", str(exported), stack, "--detailed-exitcode")
    assert replanned.returncode == 0, exported.read_text() + replanned.stdout + replanned.stderr

    # converge first, then docker stack deploy: no service spec changes.
    remove_stack(lab, docker_client, stack)
    applied = _converge(lab, "apply", *compose, stack, "--yes", "--timeout", "90")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    before, networks_before = _service_specs(client, stack), _networks(client, stack)
    assert before
    _stack_deploy(lab, files, stack, variables)
    after, networks_after = _service_specs(client, stack), _networks(client, stack)
    assert after.keys() == before.keys()
    changed = [name for name in before if after[name] != before[name]]
    assert changed == [], {name: (before[name], after[name]) for name in changed}
    assert networks_after == networks_before

    # And converge still sees nothing to do.
    again = _converge(lab, "plan", *compose, stack, "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
