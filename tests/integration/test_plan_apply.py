"""converge plan and apply on the real lab swarm: idempotence and the field mutation loop.

Every managed field is changed by hand the way an operator would (docker CLI), and then:
plan reports exactly that field -> apply restores it -> plan is empty again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from converge.api import PlanResult, execute_plan, make_plan
from converge.engine import Engine
from converge.engine_spec import network_create_body, service_engine_spec
from converge.executor import ApplyOptions
from converge.lab import Lab
from converge.loader import LoadedSpec, load_spec_text
from converge.naming import object_name

pytestmark = pytest.mark.integration

RICH_SPEC = """
x-converge:
  stack: {stack}
  nodes:
    worker1: {{labels: {{type: mvc}}, availability: active}}
    worker2: {{labels: {{type: mvc}}, availability: active}}
    worker3: {{labels: {{type: mvc}}, availability: active}}
networks:
  front: {{attachable: true}}
volumes:
  data:
services:
  web:
    image: converge-lab/app:v1
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    entrypoint: ["/init"]
    ports: ["8081:80"]
    volumes: ["data:/data", "/tmp:/hosttmp:ro"]
    environment: {{A: one, B: two}}
    networks: [front]
    labels: {{role: app}}
    healthcheck: {{test: ["CMD", "true"], interval: 1s, timeout: 2s, retries: 3,
                  start_period: 1s}}
    stop_grace_period: 5s
    stop_signal: SIGTERM
    user: root
    working_dir: /
    hostname: web-{{{{.Task.Slot}}}}
    init: false
    read_only: false
    deploy:
      replicas: 1
      labels: {{tier: web}}
      placement:
        constraints: [node.labels.type == mvc]
        preferences: [{{spread: node.labels.type}}]
        max_replicas_per_node: 2
      update_config: {{parallelism: 1, delay: 0s, failure_action: pause, monitor: 1s,
                      max_failure_ratio: 0, order: stop-first}}
      rollback_config: {{parallelism: 1, delay: 0s, failure_action: pause, monitor: 1s,
                        max_failure_ratio: 0, order: stop-first}}
      restart_policy: {{condition: any, delay: 1s, max_attempts: 0, window: 0s}}
      resources:
        limits: {{cpus: "0.5", memory: 64M}}
        reservations: {{cpus: "0.1", memory: 16M}}
  # Sets nothing but its image: every other field is the engine's default, and managed.
  bare:
    image: converge-lab/app:v1
    networks: [front]
    deploy:
      update_config: {{monitor: 1s}}
  # Another tool owns its replicas and image.
  owned:
    image: converge-lab/app:v1
    networks: [front]
    deploy:
      update_config: {{monitor: 1s}}
    x-converge:
      ignore: [deploy.replicas, image]
"""

# (the service, what an operator does, the docker CLI arguments, the field the plan must report)
SERVICE_MUTATIONS = [
    ("web", "add an env var", ["--env-add", "C=three"], "environment.C"),
    ("web", "change an env var", ["--env-add", "A=changed"], "environment.A"),
    ("web", "remove an env var", ["--env-rm", "B"], "environment.B"),
    ("web", "scale", ["--replicas", "2"], "deploy.replicas"),
    (
        "web",
        "add a constraint",
        ["--constraint-add", "node.role==worker"],
        "deploy.placement.constraints",
    ),
    ("web", "publish a port", ["--publish-add", "3999:80"], "ports.3999:80/tcp"),
    # --publish-rm names the target port.
    ("web", "unpublish a port", ["--publish-rm", "80"], "ports.8081:80/tcp"),
    ("web", "add a mount", ["--mount-add", "type=tmpfs,target=/scratch"], "volumes./scratch"),
    ("web", "remove a mount", ["--mount-rm", "/hosttmp"], "volumes./hosttmp"),
    ("web", "change the image", ["--image", "converge-lab/app:v2"], "image"),
    ("web", "limit memory", ["--limit-memory", "96M"], "deploy.resources.limits.memory"),
    ("web", "limit cpu", ["--limit-cpu", "0.75"], "deploy.resources.limits.cpus"),
    (
        "web",
        "reserve memory",
        ["--reserve-memory", "32M"],
        "deploy.resources.reservations.memory",
    ),
    ("web", "reserve cpu", ["--reserve-cpu", "0.2"], "deploy.resources.reservations.cpus"),
    (
        "web",
        "update parallelism",
        ["--update-parallelism", "3"],
        "deploy.update_config.parallelism",
    ),
    ("web", "update delay", ["--update-delay", "7s"], "deploy.update_config.delay"),
    (
        "web",
        "update failure action",
        ["--update-failure-action", "continue"],
        "deploy.update_config.failure_action",
    ),
    ("web", "update monitor", ["--update-monitor", "3s"], "deploy.update_config.monitor"),
    ("web", "update order", ["--update-order", "start-first"], "deploy.update_config.order"),
    (
        "web",
        "update max failure ratio",
        ["--update-max-failure-ratio", "0.5"],
        "deploy.update_config.max_failure_ratio",
    ),
    (
        "web",
        "rollback parallelism",
        ["--rollback-parallelism", "4"],
        "deploy.rollback_config.parallelism",
    ),
    ("web", "rollback monitor", ["--rollback-monitor", "4s"], "deploy.rollback_config.monitor"),
    (
        "web",
        "restart condition",
        ["--restart-condition", "on-failure"],
        "deploy.restart_policy.condition",
    ),
    (
        "web",
        "restart attempts",
        ["--restart-max-attempts", "5"],
        "deploy.restart_policy.max_attempts",
    ),
    ("web", "restart delay", ["--restart-delay", "2s"], "deploy.restart_policy.delay"),
    ("web", "restart window", ["--restart-window", "9s"], "deploy.restart_policy.window"),
    ("web", "stop grace period", ["--stop-grace-period", "20s"], "stop_grace_period"),
    ("web", "stop signal", ["--stop-signal", "SIGINT"], "stop_signal"),
    ("web", "user", ["--user", "nobody"], "user"),
    ("web", "workdir", ["--workdir", "/tmp"], "working_dir"),
    ("web", "hostname", ["--hostname", "other"], "hostname"),
    ("web", "service label", ["--label-add", "extra=1"], "deploy.labels.extra"),
    ("web", "container label", ["--container-label-add", "extra=1"], "labels.extra"),
    ("web", "args", ["--args", "httpd -f -p 81 -h /www"], "command"),
    ("web", "health interval", ["--health-interval", "9s"], "healthcheck.interval"),
    ("web", "health retries", ["--health-retries", "7"], "healthcheck.retries"),
    ("web", "init", ["--init"], "init"),
    ("web", "read only", ["--read-only"], "read_only"),
    (
        "web",
        "placement preference",
        ["--placement-pref-add", "spread=node.id"],
        "deploy.placement.preferences",
    ),
    (
        "web",
        "max replicas per node",
        ["--replicas-max-per-node", "1"],
        "deploy.placement.max_replicas_per_node",
    ),
    # Fields the file leaves unset are the engine's defaults, and managed all the same.
    ("bare", "user", ["--user", "nobody"], "user"),
    ("bare", "workdir", ["--workdir", "/tmp"], "working_dir"),
    ("bare", "hostname", ["--hostname", "other"], "hostname"),
    ("bare", "healthcheck", ["--health-cmd", "true", "--health-interval", "5s"], "healthcheck"),
    ("bare", "init", ["--init"], "init"),
    ("bare", "read only", ["--read-only"], "read_only"),
    ("bare", "tty", ["--tty"], "tty"),
    (
        "bare",
        "rollback policy",
        ["--rollback-order", "start-first"],
        "deploy.rollback_config.order",
    ),
    (
        "bare",
        "cpu reservation",
        ["--reserve-cpu", "0.1"],
        "deploy.resources.reservations.cpus",
    ),
    (
        "bare",
        "restart policy",
        ["--restart-condition", "none"],
        "deploy.restart_policy.condition",
    ),
    ("bare", "dns", ["--dns-add", "10.0.0.2"], "dns"),
    ("bare", "dns search", ["--dns-search-add", "example.internal"], "dns_search"),
    ("bare", "dns option", ["--dns-option-add", "ndots:2"], "dns_opt"),
    ("bare", "cap_add", ["--cap-add", "NET_ADMIN"], "cap_add"),
    ("bare", "cap_drop", ["--cap-drop", "CHOWN"], "cap_drop"),
    ("bare", "ulimit", ["--ulimit-add", "nofile=1024:2048"], "ulimits.nofile"),
    ("bare", "sysctl", ["--sysctl-add", "net.core.somaxconn=1024"], "sysctls.net.core.somaxconn"),
    ("bare", "log driver", ["--log-driver", "json-file"], "logging"),
    ("bare", "extra host", ["--host-add", "db.local:10.0.0.5"], "extra_hosts"),
    ("bare", "endpoint mode", ["--endpoint-mode", "dnsrr"], "deploy.endpoint_mode"),
]


def _docker(lab: Lab, *args: str) -> None:
    environment = {**os.environ, "DOCKER_HOST": lab.docker_host()}
    completed = subprocess.run(
        ["docker", *args], env=environment, capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr


def _changed_fields(result: PlanResult) -> set[str]:
    return {
        f"{action.address}:{change.field}"
        for action in result.plan.actions
        for change in action.changes
    }


def _apply(loaded: LoadedSpec, engine: Engine) -> PlanResult:
    result = make_plan(loaded, engine)
    assert not result.plan.errors, result.plan.errors
    outcome = execute_plan(result, engine, options=ApplyOptions(timeout=120, stable_for=0.5))
    assert outcome.ok, outcome.error
    return result


def test_apply_then_plan_is_empty_and_second_apply_writes_nothing(
    stack: str, engine: Engine
) -> None:
    loaded = load_spec_text(RICH_SPEC.format(stack=stack), "rich.yml")
    first = _apply(loaded, engine)
    assert {action.kind for action in first.plan.actions} >= {"create"}
    again = make_plan(loaded, engine)
    assert again.plan.actions == (), [action.description for action in again.plan.actions]
    writes_before = engine.write_count
    result = execute_plan(again, engine)
    assert result.ok
    assert engine.write_count == writes_before


def test_every_hand_change_is_planned_exactly_then_restored(
    stack: str, engine: Engine, lab: Lab
) -> None:
    loaded = load_spec_text(RICH_SPEC.format(stack=stack), "rich.yml")
    _apply(loaded, engine)
    mismatches = []
    for key, what, arguments, field in SERVICE_MUTATIONS:
        service = object_name(stack, key)
        _docker(lab, "service", "update", "--detach", "--no-resolve-image", *arguments, service)
        planned = make_plan(loaded, engine)
        fields = _changed_fields(planned)
        if fields != {f"service.{key}:{field}"}:
            mismatches.append(f"{key} {what}: expected {field}, planned {sorted(fields)}")
        _apply(loaded, engine)
        assert make_plan(loaded, engine).plan.actions == (), f"not restored after: {what}"
    assert not mismatches, "\n".join(mismatches)


def test_fields_another_tool_owns_are_left_alone(stack: str, engine: Engine, lab: Lab) -> None:
    loaded = load_spec_text(RICH_SPEC.format(stack=stack), "rich.yml")
    _apply(loaded, engine)
    service = object_name(stack, "owned")
    # An autoscaler scales it and an updater bumps its image: no drift, nothing to apply.
    _docker(lab, "service", "update", "--detach", "--no-resolve-image", "--replicas", "2", service)
    _docker(
        lab, "service", "update", "--detach", "--no-resolve-image",
        "--image", "converge-lab/app:v2", service,
    )  # fmt: skip
    assert make_plan(loaded, engine).plan.actions == ()
    # A field the file does own is restored, and the update keeps the other tool's values.
    _docker(lab, "service", "update", "--detach", "--no-resolve-image", "--user", "nobody", service)
    assert _changed_fields(make_plan(loaded, engine)) == {"service.owned:user"}
    _apply(loaded, engine)
    observed = make_plan(loaded, engine).observed.owned_services()["owned"]
    assert observed.view["deploy"]["replicas"] == 2
    assert observed.view["image"] == "converge-lab/app:v2"
    assert observed.view["user"] == ""


def test_node_changes_are_planned_and_restored(stack: str, engine: Engine, lab: Lab) -> None:
    loaded = load_spec_text(RICH_SPEC.format(stack=stack), "rich.yml")
    _apply(loaded, engine)
    for arguments, field in (
        (["--label-add", "type=db"], "labels.type"),
        (["--label-rm", "type"], "labels.type"),
        (["--label-add", "zone=a"], "labels.zone"),
        (["--availability", "pause"], "availability"),
    ):
        _docker(lab, "node", "update", *arguments, "worker2")
        assert _changed_fields(make_plan(loaded, engine)) == {f"node.worker2:{field}"}
        _apply(loaded, engine)
        assert make_plan(loaded, engine).plan.actions == ()


def test_observer_calls_do_not_grow_with_services(stack: str, engine: Engine) -> None:
    def calls_for(count: int) -> int:
        services = "\n".join(
            f"  s{index}: {{image: converge-lab/app:v1, deploy: {{replicas: 0}}}}"
            for index in range(count)
        )
        loaded = load_spec_text(f"x-converge:\n  stack: {stack}\nservices:\n{services}\n", "n.yml")
        result = make_plan(loaded, engine)
        for action in result.plan.actions:  # networks come first: the default one
            if action.kind == "create" and action.object_kind == "network":
                engine.create_network(action.name, network_create_body(loaded.spec, action.key))
            elif action.kind == "create":
                engine.create_service(action.name, service_engine_spec(loaded.spec, action.key))
        return make_plan(loaded, engine).observed.api_calls

    # The seven swarm reads, and one list of the stack's load-balancer containers (none here).
    assert calls_for(5) == calls_for(100) == 8


def test_plan_cli_json_and_detailed_exit_code(
    stack: str, engine: Engine, lab: Lab, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yml"
    spec.write_text(RICH_SPEC.format(stack=stack))
    environment = {**os.environ, "DOCKER_HOST": lab.docker_host()}
    converge = [sys.executable, "-m", "converge"]
    planned = subprocess.run(
        [*converge, "plan", str(spec), "--detailed-exitcode", "-o", "json"],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert planned.returncode == 2, planned.stderr
    assert '"format_version"' in planned.stdout
    applied = subprocess.run(
        [*converge, "apply", str(spec), "--yes"],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Apply complete!" in applied.stdout
    clean = subprocess.run(
        [*converge, "plan", str(spec), "--detailed-exitcode"],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert clean.returncode == 0, clean.stdout
    assert "No changes. The swarm matches the spec." in clean.stdout


def test_a_network_change_replaces_it_and_reattaches_its_services(
    stack: str, engine: Engine
) -> None:
    spec = """
x-converge:
  stack: {stack}
networks:
  net: {{attachable: {attachable}}}
services:
  app:
    image: converge-lab/app:v1
    networks: [net]
    deploy:
      update_config: {{monitor: 1s}}
"""
    _apply(load_spec_text(spec.format(stack=stack, attachable="false"), "net.yml"), engine)
    changed = load_spec_text(spec.format(stack=stack, attachable="true"), "net.yml")
    planned = make_plan(changed, engine)
    assert [(a.address, a.kind, a.forced_by) for a in planned.plan.actions] == [
        ("network.net", "replace", ("attachable",))
    ]
    _apply(changed, engine)
    after = make_plan(changed, engine)
    assert after.plan.actions == ()
    network = after.observed.owned_networks()["net"]
    assert network.view["attachable"] is True
    assert list(after.observed.owned_services()["app"].view["networks"]) == ["net"]
