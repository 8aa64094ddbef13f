"""Node loss and a link cut mid-apply, and recovery once the node is back.

A rolling update with a long monitor window; while the first updated task is inside that
window, its node is lost (every process of it killed) or cut off the network. The apply in
flight may finish (the swarm reschedules the task on another node) or fail, but it exits 0
only on a state the engine confirms right then; once the node is back, the next apply exits 0
on a verified state, leaves no lock, and a plan after it is empty.

With a spare eligible node the swarm completes the update elsewhere. Without one (``no spare
node``: the three replicas may run on worker1-3 only, one per node), the task of the lost node
cannot be placed: an apply in flight that fails must fail at once naming the reason (not wait
for its timeout), and once the node is back the next apply must converge. The engine may keep
such an update paused after the node returns (the lab notes record it; not reproducible on
purpose: in the audit run of 2026-11-28 it was still ``updating`` and went on by itself); when
it is paused, the next apply must resume it and say so. The re-drive of a paused update is also
tested with a crash-induced pause (``test_apply_semantics.py``) and on the fake swarm.
"""

from __future__ import annotations

import threading
from pathlib import Path

import docker
import pytest
from reliability import FULL, Cli, Expected, leftovers, record, service_problems
from waiting import node_state, wait_for

from converge.lab import Lab

pytestmark = pytest.mark.integration

SPEC = """
x-converge:
  stack: {stack}
services:
  web:
    image: converge-lab/app:{version}
    deploy:
      replicas: 3
      placement:
        constraints: [node.role == worker]
        max_replicas_per_node: 1
      update_config: {{parallelism: 1, monitor: 10s, failure_action: pause}}
"""
NO_SPARE = "constraints: [node.role == worker, node.hostname != dbhost]"


def _new_task_node(client: docker.DockerClient, service: str) -> str | None:
    """The hostname of a node running a task of the updated spec (v2), once there is one."""
    hostnames = {node.id: node.attrs["Description"]["Hostname"] for node in client.nodes.list()}
    for task in client.api.tasks(filters={"service": service, "desired-state": "running"}):
        image = task["Spec"]["ContainerSpec"]["Image"]
        if task["Status"]["State"] == "running" and image.startswith("converge-lab/app:v2"):
            return hostnames.get(task["NodeID"])
    return None


@pytest.mark.parametrize(
    "fault", ["node loss", "link cut", "node loss, no spare node"] if FULL else ["node loss"]
)
def test_a_fault_mid_apply_then_the_next_apply_recovers(
    lab: Lab,
    stack: str,
    docker_client: docker.DockerClient,
    faults: Lab,
    tmp_path: Path,
    fault: str,
) -> None:
    cli = Cli(lab, tmp_path)
    service = f"{stack}_web"
    spec = SPEC
    if "spare" in fault:
        spec = SPEC.replace("constraints: [node.role == worker]", NO_SPARE)
    first = cli.run("apply", "--yes", cli.write("v1.yml", spec.format(stack=stack, version="v1")))
    assert first.returncode == 0, first.stdout + first.stderr
    target = cli.write("v2.yml", spec.format(stack=stack, version="v2"))
    expected = {"web": Expected("converge-lab/app:v2", 3)}
    running = cli.start("apply", "--yes", "--timeout", "240", target)
    at_exit: list[list[str]] = []
    lines: list[str] = []

    def judge_at_exit() -> None:
        # The engine's word right when the apply exits: a node that just died still counts as
        # Ready for 10-14 s, and converge can only know what the engine says.
        assert running.stdout is not None
        lines.extend(running.stdout)
        running.wait()
        running.stdout.close()
        at_exit.append(
            service_problems(docker_client, stack, expected) if running.returncode == 0 else []
        )

    judge = threading.Thread(target=judge_at_exit, daemon=True)
    judge.start()
    victim = wait_for(
        lambda: _new_task_node(docker_client, service), timeout=180, what="a task of v2 to run"
    )
    if fault.startswith("node loss"):
        faults.stop_node(victim)
    else:
        faults.cut_link(victim)
    wait_for(
        lambda: node_state(docker_client, victim) == "down",
        timeout=60,
        what=f"{victim} to be seen down",
    )
    judge.join(timeout=300)
    output, in_flight = "".join(lines), at_exit[0]
    # Back again: the node returns with its data (and the same node id).
    if fault.startswith("node loss"):
        faults.start_node(victim)
    else:
        faults.restore_link(victim)
    wait_for(lambda: node_state(docker_client, victim) == "ready", timeout=60, what="ready")
    update_state = (docker_client.api.inspect_service(service).get("UpdateStatus") or {}).get(
        "State"
    )

    recovery = cli.run("apply", "--yes", "--timeout", "240", target)
    problems = service_problems(docker_client, stack, expected) if recovery.returncode == 0 else []
    record(
        "fault",
        fault=fault,
        apply_in_flight_exit=running.returncode,
        in_flight_problems=in_flight,
        recovery_exit=recovery.returncode,
        update_state_before_recovery=update_state,
        problems=problems,
    )
    # The apply that met the fault claimed success only for a state the engine confirmed.
    assert running.returncode in (0, 1), output
    assert in_flight == [], output
    if running.returncode == 1:
        assert service in output
    if "spare" in fault and running.returncode == 1:  # failed at once, with the reason
        assert "cannot be placed: no suitable node" in output, output
    if update_state == "paused":  # the engine kept the update paused: the plan resumes it
        assert "the last update was paused: re-apply resumes it" in recovery.stdout
    assert recovery.returncode == 0, recovery.stdout + recovery.stderr
    assert problems == []
    assert leftovers(docker_client, stack, balancers=0) == []
    assert cli.run("plan", "--detailed-exitcode", target).returncode == 0
