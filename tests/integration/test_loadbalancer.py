"""The external HAProxy on the lab: real HTTP through it, reloads, validation, backends that follow.

Each test applies a spec with a ``loadbalancer`` (a plain container on the manager, created
through the manager's engine) and sends HTTP requests from the host to the manager's address
and the balancer's listen port. The app image answers ``app=v1 hostname=<container> node=<n>``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest
from traffic import get
from waiting import running_tasks, wait_for

from converge.api import execute_plan, loadbalancer_config, make_plan
from converge.engine import Engine
from converge.executor import ApplyOptions, ApplyResult
from converge.lab import Lab
from converge.lb.config import CONFIG_PATH
from converge.loader import load_spec_text
from converge.naming import LB_CHECK_LABEL

pytestmark = pytest.mark.integration

APPLY = ApplyOptions(timeout=180, stable_for=1.0, poll_interval=0.3)

DNS_SPEC = """
x-converge:
  stack: {stack}
  loadbalancer:
    image: converge-lab/haproxy:2.6
    node: manager
    frontends:
      web: {{port: {port}, backend: web}}
    backends:
      web: {{service: web, port: 80, method: dns, balance: {balance}{options}}}
    stats: {{port: {stats_port}}}
networks:
  backend: {{attachable: true}}
services:
  web:
    image: converge-lab/app:v1
    environment: {{NODE: "{{{{.Node.Hostname}}}}"}}
    networks: [backend]
    deploy:
      replicas: 3
"""

TASKS_SPEC = """
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
      web: {{service: web, port: {service_port}, method: tasks}}
services:
  web:
    image: converge-lab/app:v1
    environment: {{NODE: "{{{{.Node.Hostname}}}}"}}
    ports: [{{target: 80, published: {service_port}, mode: host}}]
    deploy:
      replicas: {replicas}
      update_config: {{monitor: 1s}}
"""

INGRESS_SPEC = """
x-converge:
  stack: {stack}
  loadbalancer:
    image: converge-lab/haproxy:2.6
    node: manager
    frontends:
      web: {{port: {port}, backend: web}}
    backends:
      web: {{service: web, port: {service_port}, method: ingress}}
services:
  web:
    image: converge-lab/app:v1
    ports: ["{service_port}:80"]
    deploy:
      replicas: 2
"""


def apply(engine: Engine, text: str) -> ApplyResult:
    result = execute_plan(make_plan(load_spec_text(text), engine), engine, options=APPLY)
    assert result.ok, result.error
    return result


def cli(lab: Lab, *args: str, spec: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "spec.yml"
    path.write_text(spec, encoding="utf-8")
    environment = {**os.environ, "DOCKER_HOST": lab.docker_host(), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "converge", *args, str(path)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )


def hostname_of(body: str) -> str:
    fields = dict(part.split("=", 1) for part in body.split() if "=" in part)
    return fields.get("hostname", "?")


def sample(url: str, count: int = 20) -> tuple[Counter[str], int]:
    """``count`` requests: answers per task hostname, and the number of failed requests."""
    answers: Counter[str] = Counter()
    failed = 0
    for _ in range(count):
        body = get(url)
        if body is None:
            failed += 1
        else:
            answers[hostname_of(body)] += 1
    return answers, failed


def assert_served(answers: Counter[str], failed: int, hosts: int = 2) -> None:
    """Every request answered, by at least ``hosts`` distinct tasks."""
    assert failed == 0, (answers, failed)
    assert len(answers) >= hosts, answers


def balancer(client: docker.DockerClient, stack: str) -> docker.models.containers.Container:
    return client.containers.get(f"{stack}_loadbalancer")


def processes(container: docker.models.containers.Container) -> list[str]:
    """PIDs of the HAProxy master and its workers: a reload replaces the workers."""
    return sorted(str(row[0]) for row in container.top(ps_args="-o pid")["Processes"])


def live_config(container: docker.models.containers.Container) -> str:
    code, output = container.exec_run(["cat", CONFIG_PATH])
    assert code == 0
    return str(output.decode())


@dataclass
class Traffic:
    """Requests sent one after another in the background; counts answers and failures."""

    url: str
    ok: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set() and self.ok + self.failed < 20_000:
            if get(self.url) is None:
                self.failed += 1
            else:
                self.ok += 1


def test_dns_backend_serves_reapply_is_a_noop_and_changes_reload_gracefully(
    lab: Lab, stack: str, engine: Engine, docker_client: docker.DockerClient
) -> None:
    port, stats_port = 18180, 18181
    url = f"http://{lab.manager_address()}:{port}/"

    def text(balance: str = "roundrobin") -> str:
        return DNS_SPEC.format(
            stack=stack, port=port, stats_port=stats_port, balance=balance, options=""
        )

    apply(engine, text())
    wait_for(lambda: get(url), timeout=30, what="the load balancer to answer")
    answers, failed = sample(url)
    assert failed == 0
    assert len(answers) >= 2, answers
    stats = get(f"http://{lab.manager_address()}:{stats_port}/stats")
    assert stats is not None
    assert "Statistics Report" in stats

    # Re-apply: nothing planned, no write, no reload (same master and worker processes).
    container = balancer(docker_client, stack)
    before = (container.attrs["State"]["StartedAt"], processes(container))
    again = make_plan(load_spec_text(text()), engine)
    assert again.plan.actions == (), [action.description for action in again.plan.actions]
    result = execute_plan(again, engine, options=APPLY)
    assert result.write_calls == 0
    container.reload()
    assert (container.attrs["State"]["StartedAt"], processes(container)) == before

    # A config change: validated, copied in, SIGUSR2: new workers, same master, same container.
    plan = make_plan(load_spec_text(text("leastconn")), engine).plan
    assert [(a.address, a.kind) for a in plan.actions] == [("loadbalancer.loadbalancer", "update")]
    assert [change.field for change in plan.actions[0].changes] == ["config"]
    apply(engine, text("leastconn"))
    container.reload()
    master = container.attrs["State"]["Pid"]
    assert container.attrs["State"]["StartedAt"] == before[0]
    assert str(master) in processes(container)
    wait_for(
        lambda: processes(container) != before[1] or None,
        timeout=10,
        what="new HAProxy workers after the reload",
    )
    assert "balance leastconn" in live_config(container)
    answers, failed = sample(url)
    assert_served(answers, failed)
    # `converge lb render` prints exactly the config apply wrote.
    assert loadbalancer_config(load_spec_text(text("leastconn")), engine) == live_config(container)


def test_invalid_config_fails_the_apply_and_the_old_haproxy_keeps_answering(
    lab: Lab, stack: str, engine: Engine, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    port, stats_port = 18182, 18183
    url = f"http://{lab.manager_address()}:{port}/"
    good = DNS_SPEC.format(
        stack=stack, port=port, stats_port=stats_port, balance="roundrobin", options=""
    )
    apply(engine, good)
    wait_for(lambda: get(url), timeout=30, what="the load balancer to answer")
    container = balancer(docker_client, stack)
    config, workers = live_config(container), processes(container)

    # The spec is valid; the line it adds is not HAProxy: only haproxy -c can tell.
    bad = DNS_SPEC.format(
        stack=stack,
        port=port,
        stats_port=stats_port,
        balance="roundrobin",
        options=', options: ["no-such-keyword here"]',
    )
    run = cli(lab, "apply", "--yes", spec=bad, tmp_path=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "invalid HAProxy configuration for loadbalancer" in run.stderr
    assert "unknown keyword 'no-such-keyword'" in run.stderr

    container.reload()
    assert container.status == "running"
    assert live_config(container) == config
    assert processes(container) == workers
    answers, failed = sample(url)
    assert_served(answers, failed)
    # And the plan still shows the change, since it was not made.
    replan = cli(lab, "plan", "--detailed-exitcode", spec=bad, tmp_path=tmp_path)
    assert replan.returncode == 2
    assert "+    no-such-keyword here" in replan.stdout


def _tasks_spec(stack: str, replicas: int, drained: str | None = None) -> str:
    nodes = "\n".join(
        f"      {name}: {{availability: {'drain' if name == drained else 'active'}}}"
        for name in ("manager", "dbhost", "worker1", "worker2", "worker3")
    )
    return TASKS_SPEC.format(
        stack=stack, nodes=nodes, replicas=replicas, service_port=18190, port=18184
    )


def _task_nodes(client: docker.DockerClient, service: str) -> set[str]:
    hostnames = {node.id: node.attrs["Description"]["Hostname"] for node in client.nodes.list()}
    return {hostnames[task["NodeID"]] for task in running_tasks(client, service)}


def _config_nodes(container: docker.models.containers.Container) -> set[str]:
    """The nodes the config sends traffic to (not its backups, used only when all are down)."""
    return {
        line.split()[1]
        for line in live_config(container).splitlines()
        if "    server " in line and not line.endswith(" backup")
    }


def test_tasks_backends_follow_scale_and_drain(
    lab: Lab, stack: str, engine: Engine, docker_client: docker.DockerClient, faults: Lab
) -> None:
    url = f"http://{lab.manager_address()}:18184/"
    service = f"{stack}_web"
    apply(engine, _tasks_spec(stack, 5))
    wait_for(lambda: get(url), timeout=30, what="the load balancer to answer")
    container = balancer(docker_client, stack)
    assert _config_nodes(container) == _task_nodes(docker_client, service)
    assert len(_config_nodes(container)) == 5
    answers, failed = sample(url)
    assert_served(answers, failed)

    traffic = Traffic(url)
    sender = threading.Thread(target=traffic.run, daemon=True)
    sender.start()
    try:
        plan = make_plan(load_spec_text(_tasks_spec(stack, 2)), engine).plan
        lb_action = next(a for a in plan.actions if a.object_kind == "loadbalancer")
        assert lb_action.kind == "update"  # recomputed once the scale converged
        apply(engine, _tasks_spec(stack, 2))
        after_scale = _task_nodes(docker_client, service)
        assert len(after_scale) == 2
        assert _config_nodes(container) == after_scale

        drained = sorted(after_scale)[0]
        apply(engine, _tasks_spec(stack, 2, drained=drained))
        after_drain = _task_nodes(docker_client, service)
        assert drained not in after_drain
        assert len(after_drain) == 2
        assert _config_nodes(container) == after_drain
    finally:
        traffic.stop.set()
        sender.join(timeout=10)
    total = traffic.ok + traffic.failed
    print(f"\nrequests during scale 5->2 and drain: {total}, failed: {traffic.failed}")
    assert total > 20
    # Reported, and bounded: retries + redispatch hide a server that just went away.
    assert traffic.failed <= total * 0.05, (traffic.ok, traffic.failed)
    answers, failed = sample(url)
    assert_served(answers, failed, hosts=2)


@pytest.mark.xfail(
    strict=False,
    reason="no IPVS in the lab's kernel: ingress published ports (the routing mesh) refuse "
    "connections on every node, so the ingress method cannot answer here",
)
def test_ingress_backend_answers(
    lab: Lab, stack: str, engine: Engine, docker_client: docker.DockerClient
) -> None:
    url = f"http://{lab.manager_address()}:18185/"
    apply(engine, INGRESS_SPEC.format(stack=stack, port=18185, service_port=18191))
    container = balancer(docker_client, stack)
    assert len(_config_nodes(container)) == 5  # rendered: every node
    wait_for(lambda: get(url), timeout=8, what="the load balancer to answer through ingress")


def test_a_leftover_config_check_container_is_removed(
    stack: str, engine: Engine, docker_client: docker.DockerClient
) -> None:
    # What an apply interrupted during validation leaves on the balancer's node.
    name = f"{stack}_loadbalancer-check-000001"
    docker_client.containers.create(
        "converge-lab/haproxy:2.6",
        ["haproxy", "-c", "-f", CONFIG_PATH],
        name=name,
        labels={
            "com.docker.stack.namespace": stack,
            "io.converge.managed-by": "converge",
            LB_CHECK_LABEL: f"{stack}_loadbalancer",
        },
        network_mode="none",
    )
    text = f"x-converge:\n  stack: {stack}\n"
    plan = make_plan(load_spec_text(text), engine).plan
    assert [(a.address, a.kind) for a in plan.actions] == [
        ("loadbalancer.loadbalancer-check-000001", "remove")
    ]
    apply(engine, text)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(name)
    assert make_plan(load_spec_text(text), engine).plan.actions == ()
