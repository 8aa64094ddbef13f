"""Failing updates: converge exits 1 naming the service and its current task errors, while the
old replicas keep serving through the load balancer (HTTP counted); and the same compose file
and the same bad update side by side with ``docker stack deploy``, which exits 0 after the
swarm rolled it back (docker/cli#6752).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import docker
import pytest
from reliability import Cli, Expected, campaign, record, wait_converged
from stacks import remove_stack
from traffic import Traffic
from waiting import wait_for

from converge.lab import Lab

pytestmark = pytest.mark.integration

PORT = 18310

SPEC = """
x-converge:
  stack: {stack}
  loadbalancer:
    image: converge-lab/haproxy:2.6
    node: manager
    frontends:
      web: {{port: {port}, backend: web}}
    backends:
      web: {{service: web, port: 80}}
networks:
  backend: {{attachable: true}}
services:
  web:
    image: {image}
    networks: [backend]
{command}    deploy:
      replicas: 3
      update_config: {{parallelism: 1, monitor: 2s, failure_action: {failure_action}}}
"""

# What goes wrong, and the words of the engine that must reach the user.
BAD = {
    "missing image": ("converge-lab/app:missing", "", "No such image"),
    "crashing command": ("converge-lab/app:v2", '    command: ["false"]\n', "non-zero exit"),
}
VARIANTS = [(bad, action) for bad in BAD for action in ("rollback", "pause")]
SAMPLE = [("missing image", "rollback"), ("crashing command", "pause")]


def spec(stack: str, failure_action: str, bad: str | None = None) -> str:
    image, command = ("converge-lab/app:v1", "") if bad is None else BAD[bad][:2]
    return SPEC.format(
        stack=stack, image=image, command=command, failure_action=failure_action, port=PORT
    )


@pytest.mark.parametrize(("bad", "failure_action"), campaign(SAMPLE, VARIANTS))
def test_a_failing_update_exits_1_naming_the_errors_and_old_replicas_keep_serving(
    lab: Lab,
    stack: str,
    docker_client: docker.DockerClient,
    tmp_path: Path,
    bad: str,
    failure_action: str,
) -> None:
    cli = Cli(lab, tmp_path)
    good = cli.write("good.yml", spec(stack, failure_action))
    broken = cli.write("bad.yml", spec(stack, failure_action, bad))
    first = cli.run("apply", "--yes", good)
    assert first.returncode == 0, first.stdout + first.stderr
    host = lab.manager_address()
    wait_for(lambda: Traffic(host, PORT).answers(), timeout=30, what="the balancer")

    with Traffic(host, PORT, clients=2, max_seconds=300) as load, load.phase(bad) as figures:
        run = cli.run("apply", "--yes", "--timeout", "120", broken)
    record(
        "failing-update",
        variant=f"{bad}, {failure_action}",
        exit=run.returncode,
        requests=figures.requests,
        failures=figures.failures,
        longest_s=round(figures.longest, 3),
    )
    print(f"\n{bad}, {failure_action}: exit {run.returncode}; {figures.line()}")
    assert run.returncode == 1, run.stdout + run.stderr
    error = run.stderr
    assert f"{stack}_web" in error, error
    assert BAD[bad][2] in run.stdout + error, run.stdout + error
    assert figures.requests > 20
    assert figures.failures == 0, figures.reasons
    state = docker_client.services.get(f"{stack}_web").attrs["UpdateStatus"]["State"]
    if failure_action == "rollback":
        assert state == "rollback_completed", state
        wait_converged(
            docker_client,
            stack,
            {"web": Expected("converge-lab/app:v1", 3)},
            settled=("rollback_completed",),
        )
    else:
        assert state == "paused", state


def test_a_failed_apply_run_again_still_fails(
    lab: Lab, stack: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    # Paused, the service already has the spec's image: a plan finds nothing to change.
    # (Rolled back, it has the old one: the plan updates it again, and that fails again.)
    cli = Cli(lab, tmp_path)
    assert cli.run("apply", "--yes", cli.write("good.yml", spec(stack, "pause"))).returncode == 0
    broken = cli.write("bad.yml", spec(stack, "pause", "missing image"))
    assert cli.run("apply", "--yes", "--timeout", "120", broken).returncode == 1
    again = cli.run("apply", "--yes", "--timeout", "120", broken)
    assert again.returncode == 1, again.stdout + again.stderr


COMPOSE = """
version: "3.8"
services:
  web:
    image: {image}
    deploy:
      replicas: 2
      update_config: {{parallelism: 1, monitor: 2s, failure_action: rollback}}
"""


def _docker_cli() -> str | None:
    """A docker CLI whose ``stack deploy`` can wait (``--detach=false``: CLI 26 and later)."""
    for candidate in ("/usr/local/bin/docker", shutil.which("docker")):
        if candidate is None or not Path(candidate).exists():
            continue
        helped = subprocess.run(
            [candidate, "stack", "deploy", "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        if "--detach" in helped.stdout:
            return candidate
    return None


def test_side_by_side_docker_stack_deploy_exits_0_after_a_rollback_converge_exits_1(
    lab: Lab, stack: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    docker_cli = _docker_cli()
    if docker_cli is None:
        pytest.skip("no docker CLI with `stack deploy --detach` (26+) on this machine")
    cli = Cli(lab, tmp_path)
    theirs = f"{stack}d"
    compose = tmp_path / "docker-stack.yml"

    def deploy(image: str) -> subprocess.CompletedProcess[str]:
        compose.write_text(COMPOSE.format(image=image), encoding="utf-8")
        return subprocess.run(
            [
                docker_cli,
                "stack",
                "deploy",
                "--detach=false",
                "--resolve-image",
                "never",
                "-c",
                str(compose),
                theirs,
            ],
            capture_output=True,
            text=True,
            env=cli.env(),
            timeout=300,
            check=False,
        )

    try:
        assert deploy("converge-lab/app:v1").returncode == 0
        docker_bad = deploy("converge-lab/app:missing")
        docker_state = docker_client.services.get(f"{theirs}_web").attrs["UpdateStatus"]["State"]
    finally:
        remove_stack(lab, docker_client, theirs)

    # The very same compose file, given to converge instead.
    compose.write_text(COMPOSE.format(image="converge-lab/app:v1"), encoding="utf-8")
    assert cli.run("apply", "--yes", "-c", compose, stack).returncode == 0
    compose.write_text(COMPOSE.format(image="converge-lab/app:missing"), encoding="utf-8")
    converge_bad = cli.run("apply", "--yes", "--timeout", "120", "-c", compose, stack)
    converge_state = docker_client.services.get(f"{stack}_web").attrs["UpdateStatus"]["State"]
    record(
        "side-by-side",
        docker_exit=docker_bad.returncode,
        docker_state=docker_state,
        converge_exit=converge_bad.returncode,
        converge_state=converge_state,
    )
    print(
        f"\ndocker stack deploy --detach=false: exit {docker_bad.returncode}, service "
        f"{docker_state}\nconverge apply: exit {converge_bad.returncode}, service "
        f"{converge_state}\n{converge_bad.stderr.strip()}"
    )
    # docker/cli#6752: the swarm rolled the update back (or is rolling it back), yet exit 0.
    assert docker_state in ("rollback_started", "rollback_completed"), docker_state
    assert docker_bad.returncode == 0, docker_bad.stdout + docker_bad.stderr
    # converge: the same swarm state is a failure, and says why.
    assert converge_state in ("rollback_started", "rollback_completed"), converge_state
    assert converge_bad.returncode == 1
    assert "rolled back" in converge_bad.stderr or "rollback" in converge_bad.stderr
    assert "No such image" in converge_bad.stdout + converge_bad.stderr
    # And the old replicas are back.
    wait_converged(
        docker_client,
        stack,
        {"web": Expected("converge-lab/app:v1", 2)},
        settled=("rollback_completed",),
    )
