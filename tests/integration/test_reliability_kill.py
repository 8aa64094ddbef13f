"""kill -9 of ``converge apply`` (and ``destroy``) at points spread over every phase, then
recovery: the next run converges, exits 0 only when the stack is converged and healthy, and
leaves no lock, duplicate or orphan; a plan after it is empty.

The points are found in the command's own progress output (``KillPoint``): nodes, networks,
services, the wait for convergence, the load balancer (its validation container included), a
rolling update, and removals; and the phases later work added (secrets and configs, a job,
a canary rollout). CI runs a sample; ``CONVERGE_RELIABILITY=full`` runs all 35
(scripts/reliability.sh).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import docker
import pytest
from reliability import (
    Cli,
    Expected,
    KillPoint,
    campaign,
    kill_at,
    leftovers,
    record,
    service_problems,
)
from traffic import Traffic

from converge.lab import Lab

pytestmark = pytest.mark.integration
# Each test SIGKILLs converge mid-change with traffic through the balancer: the lab's health probe
# runs before every one, so that a node the engine left unable to run tasks fails one test only.
LAB_PROBE_EACH_TEST = True

PORT = 18300

SPEC_A = """
x-converge:
  stack: {stack}
  cluster:
    nodes:
      manager: {{}}
      worker1: {{labels: {{rel: "yes"}}}}
      worker2: {{labels: {{rel: "yes"}}}}
  loadbalancer:
    image: converge-lab/haproxy:2.6
    node: manager
    frontends:
      web: {{port: {port}, backend: web}}
    backends:
      web: {{service: web, port: 80, balance: roundrobin}}
networks:
  front: {{attachable: true}}
  back: {{attachable: true}}
services:
  web:
    image: converge-lab/app:v1
    networks: [front, back]
    environment: {{MODE: one}}
    deploy:
      replicas: 3
      update_config: {{parallelism: 1, monitor: 1s}}
  api:
    image: converge-lab/app:v1
    networks: [back]
    deploy:
      replicas: 2
      placement: {{constraints: [node.labels.rel == yes]}}
      update_config: {{parallelism: 1, monitor: 1s}}
  worker:
    image: converge-lab/app:v1
    networks: [back]
    deploy:
      replicas: 1
"""

# Every kind of change at once: a node label, a new network, a rolling update (image and env),
# a scale, and a load-balancer reload.
SPEC_B = (
    SPEC_A.replace(
        '      worker2: {{labels: {{rel: "yes"}}}}\n',
        '      worker2: {{labels: {{rel: "yes"}}}}\n      worker3: {{labels: {{rel: "yes"}}}}\n',
    )
    .replace("  back: {{attachable: true}}\n", "  back: {{attachable: true}}\n  extra: {{}}\n")
    .replace(
        "    image: converge-lab/app:v1\n    networks: [front, back]\n"
        "    environment: {{MODE: one}}",
        "    image: converge-lab/app:v2\n    networks: [front, back]\n"
        "    environment: {{MODE: two}}",
    )
    .replace("      replicas: 2\n", "      replicas: 3\n")
    .replace(
        "    networks: [back]\n    deploy:\n      replicas: 1",
        "    networks: [back, extra]\n    deploy:\n      replicas: 1",
    )
    .replace("balance: roundrobin", "balance: leastconn")
)

EXPECTED_A = {
    "web": Expected("converge-lab/app:v1", 3, {"MODE": "one"}),
    "api": Expected("converge-lab/app:v1", 2),
    "worker": Expected("converge-lab/app:v1", 1),
}
EXPECTED_B = {
    "web": Expected("converge-lab/app:v2", 3, {"MODE": "two"}),
    "api": Expected("converge-lab/app:v1", 3),
    "worker": Expected("converge-lab/app:v1", 1),
}

LB_CREATING = r"^loadbalancer\.\S+: creating\.\.\.$"
CREATE_POINTS = [
    KillPoint("create: plan shown, lock held", r"^Plan: "),
    KillPoint("create: node update started", r"^node\.\S+: updating\.\.\.$"),
    KillPoint("create: node updated", r"^node\.\S+: updated in "),
    KillPoint("create: network create started", r"^network\.\S+: creating\.\.\.$"),
    KillPoint("create: network created", r"^network\.\S+: created in "),
    KillPoint("create: service create started", r"^service\.\S+: creating\.\.\.$"),
    KillPoint("create: first service created", r"^service\.\S+: created in "),
    KillPoint("create: waiting, first look", r"^Waiting \("),
    KillPoint("create: waiting, later", r"^Waiting \(", nth=2, delay=0.3),
    KillPoint("create: load balancer started", LB_CREATING),
    KillPoint("create: load balancer validating", LB_CREATING, delay=0.3),
    KillPoint("create: load balancer starting", LB_CREATING, delay=0.8),
    KillPoint("create: load balancer created", r"^loadbalancer\.\S+: created in "),
]
UPDATE_POINTS = [
    KillPoint("update: plan shown, lock held", r"^Plan: "),
    KillPoint("update: node update started", r"^node\.\S+: updating\.\.\.$"),
    KillPoint("update: network create started", r"^network\.\S+: creating\.\.\.$"),
    KillPoint("update: service update started", r"^service\.\S+: updating\.\.\.$"),
    KillPoint("update: rolling, first look", r"^Waiting \("),
    KillPoint("update: rolling, mid-way", r"^Waiting \(", delay=2.5),
    KillPoint("update: rolling, late", r"^Waiting \(", delay=5.0),
    KillPoint("update: load balancer reload started", r"^loadbalancer\.\S+: updating\.\.\.$"),
]
DESTROY_POINTS = [
    KillPoint("destroy: service removal started", r"^service\.\S+: removing\.\.\.$"),
    KillPoint("destroy: first service removed", r"^service\.\S+: removed in "),
    KillPoint("destroy: load balancer removed", r"^loadbalancer\.\S+: removed in "),
]
POINTS = [
    pytest.param(scenario, point, id=point.name)
    for scenario, points in (
        ("create", CREATE_POINTS),
        ("update", UPDATE_POINTS),
        ("destroy", DESTROY_POINTS),
    )
    for point in points
]
SAMPLE = [POINTS[index] for index in (6, 10, 16, 18, 21)]


def stack_networks(client: docker.DockerClient, stack: str) -> list[str]:
    return [
        f"network {network.name} left"
        for network in client.networks.list(
            filters={"label": f"com.docker.stack.namespace={stack}"}
        )
        if network.attrs.get("Scope") == "swarm"
    ]


@pytest.mark.parametrize(("scenario", "point"), campaign(SAMPLE, POINTS))
def test_kill_9_then_the_next_run_recovers(
    lab: Lab,
    stack: str,
    docker_client: docker.DockerClient,
    tmp_path: Path,
    scenario: str,
    point: KillPoint,
) -> None:
    cli = Cli(lab, tmp_path)
    spec_a = cli.write("a.yml", SPEC_A.format(stack=stack, port=PORT))
    spec_b = cli.write("b.yml", SPEC_B.format(stack=stack, port=PORT))
    if scenario != "create":
        first = cli.run("apply", "--yes", spec_a)
        assert first.returncode == 0, first.stdout + first.stderr
    verb, target, expected = {
        "create": ("apply", spec_a, EXPECTED_A),
        "update": ("apply", spec_b, EXPECTED_B),
        "destroy": ("destroy", spec_a, {}),
    }[scenario]

    killed = kill_at(cli.start(verb, "--yes", target), point)
    assert killed.reached, f"never reached {point.name}:\n" + "\n".join(killed.output)
    assert killed.returncode == -9, killed.output  # killed, not finished by itself

    recovery = cli.run(verb, "--yes", "--lock-timeout", "10", target)
    extra = stack_networks(docker_client, stack) if scenario == "destroy" else []
    assert_recovered(cli, docker_client, stack, scenario, point, recovery, target, expected, extra)


def assert_recovered(
    cli: Cli,
    docker_client: docker.DockerClient,
    stack: str,
    scenario: str,
    point: KillPoint,
    recovery: subprocess.CompletedProcess[str],
    target: Path,
    expected: dict[str, Expected],
    extra_problems: list[str],
) -> None:
    """Right after a success the stack must be what converge claims: converged, no lock, no
    leftover; and the next plan is empty. The trial is recorded for docs/reliability.md."""
    problems = (
        service_problems(docker_client, stack, expected)
        + leftovers(docker_client, stack, balancers=0 if scenario == "destroy" else 1)
        + extra_problems
        if recovery.returncode == 0
        else []
    )
    plan = cli.run("plan", "--detailed-exitcode", target) if scenario != "destroy" else None
    record(
        "kill",
        point=point.name,
        recovered=recovery.returncode == 0 and not problems,
        exit=recovery.returncode,
        problems=problems,
    )
    assert recovery.returncode == 0, recovery.stdout + recovery.stderr
    assert problems == [], "\n".join([*problems, "recovery output:", recovery.stdout[-3000:]])
    if plan is not None:
        assert plan.returncode == 0, plan.stdout + plan.stderr


# ---------------------------------------------------------------------------------------------
# The phases later work added: secrets and configs (versions), a job the web tier waits for
# (depends_on, the graph record), and a canary rollout through the balancer (<stack>_web-next).

NEWER_PORT = 18301

SPEC_C = """
x-converge:
  stack: {stack}
  loadbalancer:
    image: converge-lab/haproxy:2.6
    node: manager
    frontends:
      web: {{port: {port}, backend: web}}
    backends:
      web: {{service: web, port: 80, method: dns}}
networks:
  back: {{attachable: true}}
secrets:
  token:
    environment: KILL_TOKEN
configs:
  settings:
    content: "mode={mode}\\n"
services:
  seed:
    image: converge-lab/busybox:1.35.0
    command: [sh, -c, "test -s /run/secrets/token && test -s /settings"]
    networks: [back]
    secrets: [token]
    configs: [{{source: settings, target: /settings}}]
    deploy:
      mode: replicated-job
      restart_policy: {{condition: none}}
  web:
    image: converge-lab/app:{version}
    networks: [back]
    secrets: [token]
    configs: [{{source: settings, target: /settings}}]
    depends_on:
      seed: {{condition: service_completed_successfully}}
    deploy:
      replicas: 2
      update_config: {{monitor: 1s}}
    x-converge:
      rollout:
        strategy: canary
        steps: [50, 100]
        pause: 2s
        gates: {{max_error_rate: 1, min_requests: 5}}
"""

NEWER_CREATE = [
    KillPoint("newer create: secret create started", r"^secret\.\S+: creating\.\.\.$"),
    KillPoint("newer create: config created", r"^config\.\S+: created in "),
    KillPoint("newer create: job created", r"^service\.seed: created in "),
    KillPoint("newer create: web create started", r"^service\.web: creating\.\.\.$"),
]
NEWER_UPDATE = [
    KillPoint("newer update: new secret version created", r"^secret\.\S+: created in "),
    KillPoint("newer update: job running again", r"^service\.seed: \w+\.\.\.$"),
    KillPoint("newer update: rollout, new version created", r"^Rollout: .* created with the new"),
    KillPoint("newer update: rollout, 50% step passed", r"^Rollout: .*step 50% passed"),
    KillPoint("newer update: rollout, service updated", r"^Rollout: .*updated to the new version"),
]
NEWER_DESTROY = [
    KillPoint("newer destroy: secret removal started", r"^secret\.\S+: removing\.\.\.$"),
    KillPoint("newer destroy: first service removed", r"^service\.\S+: removed in "),
]
NEWER_POINTS = [
    pytest.param(scenario, point, id=point.name)
    for scenario, points in (
        ("create", NEWER_CREATE),
        ("update", NEWER_UPDATE),
        ("destroy", NEWER_DESTROY),
    )
    for point in points
]
NEWER_SAMPLE = [NEWER_POINTS[index] for index in (7,)]


def job_problems(client: docker.DockerClient, stack: str) -> list[str]:
    """The seed job's newest run must have completed (empty: it has)."""
    name = f"{stack}_seed"
    found = client.services.list(filters={"name": name})
    service = next((item for item in found if item.name == name), None)
    if service is None:
        return [f"{name}: missing"]
    tasks = sorted(client.api.tasks(filters={"service": service.id}), key=lambda t: t["CreatedAt"])
    state = tasks[-1]["Status"]["State"] if tasks else "no task"
    return [] if state == "complete" else [f"{name}: newest run {state}"]


def stack_files(client: docker.DockerClient, stack: str) -> list[str]:
    """Secrets and configs of the stack (its versions, the graph record) left after a destroy."""
    found = [f"secret {item.name} left" for item in client.secrets.list()]
    found += [f"config {item.name} left" for item in client.configs.list()]
    return [item for item in found if f" {stack}_" in item or item.endswith(f"-{stack} left")]


@pytest.mark.parametrize(("scenario", "point"), campaign(NEWER_SAMPLE, NEWER_POINTS))
def test_kill_9_in_the_newer_phases_then_the_next_run_recovers(
    lab: Lab,
    stack: str,
    docker_client: docker.DockerClient,
    tmp_path: Path,
    scenario: str,
    point: KillPoint,
) -> None:
    cli = Cli(lab, tmp_path, {"KILL_TOKEN": "kill-token-one"})
    spec_c = cli.write("c.yml", SPEC_C.format(stack=stack, port=NEWER_PORT, version="v1", mode=1))
    spec_d = cli.write("d.yml", SPEC_C.format(stack=stack, port=NEWER_PORT, version="v2", mode=2))
    if scenario != "create":
        first = cli.run("apply", "--yes", spec_c)
        assert first.returncode == 0, first.stdout + first.stderr
        cli.extra_env["KILL_TOKEN"] = "kill-token-two"
    verb, target, image = {
        "create": ("apply", spec_c, "converge-lab/app:v1"),
        "update": ("apply", spec_d, "converge-lab/app:v2"),
        "destroy": ("destroy", spec_c, ""),
    }[scenario]
    expected = (
        {}
        if scenario == "destroy"
        else {"web": Expected(image, 2), "seed": Expected("converge-lab/busybox:1.35.0", 0)}
    )

    # The rollout's steps are judged on requests through the balancer: a bounded load.
    with Traffic(lab.manager_address(), NEWER_PORT, clients=1, max_seconds=240):
        killed = kill_at(cli.start(verb, "--yes", target), point)
        assert killed.reached, f"never reached {point.name}:\n" + "\n".join(killed.output)
        assert killed.returncode == -9, killed.output
        recovery = cli.run(verb, "--yes", "--lock-timeout", "10", target)
    extra = (
        stack_networks(docker_client, stack) + stack_files(docker_client, stack)
        if scenario == "destroy"
        else job_problems(docker_client, stack)
    )
    assert_recovered(cli, docker_client, stack, scenario, point, recovery, target, expected, extra)
