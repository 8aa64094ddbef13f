"""Node loss and a link cut mid-apply, and recovery once the node is back.

A rolling update with a long monitor window; while the first updated task is inside that
window, its node is lost (every process of it killed) or cut off the network. The swarm counts
that task as failed and pauses the update (``failure_action: pause``). The apply in flight must
not report success; once the node is back, the next apply must finish the update and exit 0 only
on a verified state (this is the paused-update case: a re-apply must move it again).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker
import pytest
from reliability import FULL, Cli, Expected, leftovers, record, service_problems
from waiting import node_state, wait_for

from converge.lab import Lab

pytestmark = pytest.mark.integration

SPEC = """
version: 1
stack: {stack}
services:
  web:
    image: converge-lab/app:{version}
    replicas: 3
    placement:
      constraints: [node.role == worker]
      max_replicas_per_node: 1
    update_config: {{parallelism: 1, monitor: 30s, failure_action: pause}}
"""


def _new_task_node(client: docker.DockerClient, service: str) -> str | None:
    """The hostname of a node running a task of the updated spec (v2), once there is one."""
    hostnames = {node.id: node.attrs["Description"]["Hostname"] for node in client.nodes.list()}
    for task in client.api.tasks(filters={"service": service, "desired-state": "running"}):
        image = task["Spec"]["ContainerSpec"]["Image"]
        if task["Status"]["State"] == "running" and image.startswith("converge-lab/app:v2"):
            return hostnames.get(task["NodeID"])
    return None


def _update_state(client: docker.DockerClient, service: str) -> Any:
    return (client.services.get(service).attrs.get("UpdateStatus") or {}).get("State")


@pytest.mark.xfail(
    strict=True,
    reason="issue 15 item 2: after a node loss the engine keeps the update paused and apply "
    "says 'No changes' (exit 0) instead of moving it again",
)
@pytest.mark.parametrize("fault", ["node loss", "link cut"] if FULL else ["node loss"])
def test_a_fault_mid_apply_fails_it_and_the_next_apply_recovers(
    lab: Lab,
    stack: str,
    docker_client: docker.DockerClient,
    faults: Lab,
    tmp_path: Path,
    fault: str,
) -> None:
    cli = Cli(lab, tmp_path)
    service = f"{stack}_web"
    assert (
        cli.run(
            "apply", "--yes", cli.write("v1.yml", SPEC.format(stack=stack, version="v1"))
        ).returncode
        == 0
    )
    target = cli.write("v2.yml", SPEC.format(stack=stack, version="v2"))
    running = cli.start("apply", "--yes", "--timeout", "240", target)
    victim = wait_for(
        lambda: _new_task_node(docker_client, service), timeout=60, what="a task of v2 to run"
    )
    if fault == "node loss":
        faults.stop_node(victim)
    else:
        faults.cut_link(victim)
    wait_for(
        lambda: node_state(docker_client, victim) == "down",
        timeout=60,
        what=f"{victim} to be seen down",
    )
    output, _ = running.communicate(timeout=300)
    wait_for(
        lambda: _update_state(docker_client, service) == "paused",
        timeout=60,
        what="the update to pause",
    )
    # Back again: the node returns with its data (and the same node id).
    if fault == "node loss":
        faults.start_node(victim)
    else:
        faults.restore_link(victim)
    wait_for(lambda: node_state(docker_client, victim) == "ready", timeout=60, what="ready")

    recovery = cli.run("apply", "--yes", "--timeout", "240", target)
    expected = {"web": Expected("converge-lab/app:v2", 3)}
    problems = service_problems(docker_client, stack, expected) if recovery.returncode == 0 else []
    record(
        "fault",
        fault=fault,
        apply_in_flight_exit=running.returncode,
        recovery_exit=recovery.returncode,
        problems=problems,
    )
    # The apply that met the fault did not claim success while the update was paused.
    assert running.returncode == 1, output
    assert service in output
    assert recovery.returncode == 0, recovery.stdout + recovery.stderr
    assert problems == []
    assert leftovers(docker_client, stack, balancers=0) == []
    assert cli.run("plan", "--detailed-exitcode", target).returncode == 0
