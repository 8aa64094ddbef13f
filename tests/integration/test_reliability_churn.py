"""Load under churn: HTTP through the managed HAProxy while converge scales, drains and rolls.

A bounded loop of requests (``traffic.Traffic``) runs through the load balancer while converge
applies, one after another: a scale-down, a drain of a node that runs a task, and a rolling
update. Per phase it counts failed requests and the longest one; the promise is no failure and
no request over a second (docs/reliability.md). Each phase also watches a few seconds after the
apply returned, when HAProxy may still hold a server that went away.

CI runs the ``dns`` method (the default); ``CONVERGE_RELIABILITY=full`` adds ``tasks``.
"""

from __future__ import annotations

import time

import docker
import pytest
from reliability import campaign, record
from traffic import PhaseFigures, Traffic
from waiting import running_tasks, wait_for

from converge.api import execute_plan, make_plan
from converge.engine import Engine
from converge.executor import ApplyOptions
from converge.lab import Lab
from converge.loader import load_spec_text

pytestmark = pytest.mark.integration

APPLY = ApplyOptions(timeout=180, stable_for=1.0, poll_interval=0.3)
NODES = ("manager", "dbhost", "worker1", "worker2", "worker3")
SETTLE = 6.0
"""Seconds each phase keeps counting after its apply returned."""
LONGEST_ALLOWED = 1.0

SPEC = """
x-converge:
  stack: {stack}
  cluster:
    nodes:
{nodes}
  loadbalancer:
    image: converge-lab/haproxy:2.6
    node: manager
    frontends:
      web: {{port: {port}, backend: web}}
    backends:
      web: {{service: web, port: {backend_port}, method: {method}}}
networks:
  backend: {{attachable: true}}
services:
  web:
    image: converge-lab/app:{version}
    networks: [backend]
{ports}    deploy:
      replicas: {replicas}
      update_config: {{parallelism: 1, monitor: 1s}}
"""

PORTS = {"dns": 18200, "tasks": 18202}
SERVICE_PORT = 18203


def spec(stack: str, method: str, replicas: int, version: str = "v1", drained: str = "") -> str:
    nodes = "\n".join(
        f"      {name}: {{availability: {'drain' if name == drained else 'active'}}}"
        for name in NODES
    )
    ports = (
        f"    ports: [{{target: 80, published: {SERVICE_PORT}, mode: host}}]\n"
        if method == "tasks"
        else ""
    )
    return SPEC.format(
        stack=stack,
        nodes=nodes,
        version=version,
        replicas=replicas,
        ports=ports,
        port=PORTS[method],
        backend_port=SERVICE_PORT if method == "tasks" else 80,
        method=method,
    )


def apply(engine: Engine, text: str) -> None:
    result = execute_plan(make_plan(load_spec_text(text), engine), engine, options=APPLY)
    assert result.ok, result.error


def report(method: str, figures: PhaseFigures) -> None:
    print(f"\n[{method}] {figures.line()}; {figures.reasons[:3]}")
    record(
        "churn",
        method=method,
        phase=figures.name,
        requests=figures.requests,
        failures=figures.failures,
        longest_s=round(figures.longest, 3),
    )


def _task_nodes(client: docker.DockerClient, service: str) -> list[str]:
    hostnames = {node.id: node.attrs["Description"]["Hostname"] for node in client.nodes.list()}
    return sorted(hostnames[task["NodeID"]] for task in running_tasks(client, service))


@pytest.mark.parametrize("method", campaign(["dns"], ["dns", "tasks"]))
def test_no_request_fails_or_stalls_while_converge_scales_drains_and_rolls(
    lab: Lab, stack: str, engine: Engine, docker_client: docker.DockerClient, method: str
) -> None:
    start = 5
    apply(engine, spec(stack, method, start))
    host = lab.manager_address()
    wait_for(
        lambda: Traffic(host, PORTS[method]).answers(),
        timeout=30,
        what="the load balancer to answer",
    )
    figures: list[PhaseFigures] = []
    with Traffic(host, PORTS[method], clients=2, max_seconds=600) as load:
        wait_for(lambda: load.phases["warm-up"].requests >= 20, timeout=30, what="warm-up")
        with load.phase("scale-down") as phase:
            apply(engine, spec(stack, method, 2))
            time.sleep(SETTLE)  # counting requests, not waiting on a condition
        figures.append(phase)
        nodes = _task_nodes(docker_client, f"{stack}_web")
        drained = next(name for name in nodes if name != "manager")
        with load.phase("drain") as phase:
            apply(engine, spec(stack, method, 2, drained=drained))
            time.sleep(SETTLE)
        figures.append(phase)
        assert drained not in _task_nodes(docker_client, f"{stack}_web")
        with load.phase("rolling update") as phase:
            apply(engine, spec(stack, method, 2, version="v2", drained=drained))
            time.sleep(SETTLE)
        figures.append(phase)
    for item in figures:
        report(method, item)
    for item in figures:
        assert item.requests > 20, item.line()
    # With host-mode ports (tasks) the old task keeps its port until it stops, so a request it
    # had begun when SIGTERM came is lost when the application drops it (the lab's busybox
    # httpd does): counted and reported (docs/reliability.md), not promised away.
    promised = [item for item in figures if method == "dns" or item.name != "rolling update"]
    assert [(item.name, item.failures) for item in promised] == [
        (item.name, 0) for item in promised
    ], [item.reasons for item in promised]
    assert all(item.longest <= LONGEST_ALLOWED for item in figures), [
        item.line() for item in figures
    ]
