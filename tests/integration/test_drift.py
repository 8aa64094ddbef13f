"""converge drift on the real lab swarm: hand changes, tasks that cannot start, a node lost.

Drift never writes (the engine's write counter stays 0); the command's JSON names exactly the
object and field changed by hand; its metrics file parses with prometheus_client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from waiting import node_state, wait_for

from converge.api import check_drift, execute_plan, make_plan
from converge.drift import DriftReport
from converge.engine import Engine, connect
from converge.engine_spec import network_create_body, service_engine_spec
from converge.executor import ApplyOptions
from converge.lab import Lab
from converge.loader import LoadedSpec, load_spec

pytestmark = pytest.mark.integration

SPEC = """
x-converge:
  stack: {stack}
  cluster:
    nodes:
      worker2: {{labels: {{drift: watched}}}}
services:
  web:
    image: converge-lab/app:v1
    environment: {{MODE: web}}
    deploy:
      replicas: 2
      update_config: {{monitor: 1s}}
"""

BROKEN_SPEC = """
x-converge:
  stack: {stack}
services:
  broken:
    image: converge-lab/app:v1
    entrypoint: ["/nonexistent"]
  idle:
    image: converge-lab/app:v1
    deploy: {{replicas: 0}}
"""

IDLE_SPEC = """
x-converge:
  stack: {stack}
services:
  idle: {{image: converge-lab/app:v1, deploy: {{replicas: 0}}}}
"""


def _spec(tmp_path: Path, template: str, stack: str) -> tuple[Path, LoadedSpec]:
    path = tmp_path / "spec.yml"
    path.write_text(template.format(stack=stack))
    return path, load_spec([path])


def _docker(lab: Lab, *args: str) -> None:
    environment = {**os.environ, "DOCKER_HOST": lab.docker_host()}
    completed = subprocess.run(
        ["docker", *args], env=environment, capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr


def _drift_cli(lab: Lab, spec: Path, metrics: Path) -> tuple[int, dict[str, Any]]:
    arguments = ["-o", "json", "--metrics-file", str(metrics), "-H", lab.docker_host()]
    completed = subprocess.run(
        [sys.executable, "-m", "converge", "drift", str(spec), *arguments],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode in (0, 2), completed.stderr
    return completed.returncode, json.loads(completed.stdout)


def _sync_fields(document: dict[str, Any]) -> set[tuple[str, str | None]]:
    return {(f["address"], f["field"]) for f in document["findings"] if f["kind"] == "sync"}


def _metrics(path: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(path.read_text())
        for sample in family.samples
    }


def test_drift_is_clean_after_apply_and_names_each_hand_change(
    stack: str, engine: Engine, lab: Lab, tmp_path: Path
) -> None:
    spec, loaded = _spec(tmp_path, SPEC, stack)
    result = execute_plan(
        make_plan(loaded, engine), engine, options=ApplyOptions(timeout=60, stable_for=0.5)
    )
    assert result.ok, result.error
    reader = connect(lab.docker_host())
    try:
        report = check_drift(loaded, reader)
        assert reader.write_count == 0
    finally:
        reader.close()
    assert report.findings == (), report.findings
    metrics = tmp_path / "drift.prom"
    code, document = _drift_cli(lab, spec, metrics)
    assert (code, document["in_sync"], document["healthy"]) == (0, True, True)
    assert document["stack"] == stack
    assert document["spec"]["files"] == [str(spec)]
    web = frozenset({("stack", stack), ("service", "web")})
    assert _metrics(metrics)[("converge_service_in_sync", web)] == 1

    service = f"{stack}_web"
    seen: set[tuple[str, str | None]] = set()
    for command, expected in (
        (["service", "scale", "--detach", f"{service}=3"], ("service.web", "deploy.replicas")),
        (
            [
                "service",
                "update",
                "--env-add",
                "FOO=bar",
                "--detach",
                "--no-resolve-image",
                service,
            ],
            ("service.web", "environment.FOO"),
        ),
        (["node", "update", "--label-rm", "drift", "worker2"], ("node.worker2", "labels.drift")),
    ):
        _docker(lab, *command)
        code, document = _drift_cli(lab, spec, metrics)
        assert code == 2
        assert _sync_fields(document) - seen == {expected}, document["findings"]
        seen = _sync_fields(document)
        samples = _metrics(metrics)
        stack_label = frozenset({("stack", stack)})
        assert samples[("converge_drift_in_sync", stack_label)] == 0
        sync_count = samples[("converge_drift_findings", stack_label | {("kind", "sync")})]
        assert sync_count == len(seen)
        assert samples[("converge_service_in_sync", web)] == 0
    scaled = next(f for f in document["findings"] if f["field"] == "deploy.replicas")
    assert (scaled["before"], scaled["after"], scaled["action"]) == (3, 2, "update")


def _create_without_waiting(loaded: LoadedSpec, engine: Engine) -> None:
    for action in make_plan(loaded, engine).plan.actions:  # networks (the default) come first
        if action.kind == "create" and action.object_kind == "network":
            engine.create_network(action.name, network_create_body(loaded.spec, action.key))
        elif action.kind == "create" and action.object_kind == "service":
            engine.create_service(action.name, service_engine_spec(loaded.spec, action.key))


def test_tasks_that_cannot_start_are_unhealthy_but_in_sync(
    stack: str, engine: Engine, tmp_path: Path
) -> None:
    _, loaded = _spec(tmp_path, BROKEN_SPEC, stack)
    _create_without_waiting(loaded, engine)

    def failing() -> DriftReport | None:
        report = check_drift(loaded, engine)
        errors = [f for f in report.health_findings if "last task error" in f.message]
        return report if errors else None

    report = wait_for(failing, timeout=30, what="a task error in the drift report")
    assert report.in_sync, report.sync_findings
    [finding] = report.health_findings
    assert (finding.address, finding.field) == ("service.broken", "tasks")
    assert finding.message.startswith("0/1 tasks running; last task error: ")
    assert "/nonexistent" in finding.message
    assert report.exit_code("drift") == 0
    assert report.exit_code("health") == 2


def test_a_stopped_node_is_a_node_down_finding(
    stack: str, engine: Engine, faults: Lab, docker_client: Any, tmp_path: Path
) -> None:
    _, loaded = _spec(tmp_path, IDLE_SPEC, stack)
    _create_without_waiting(loaded, engine)
    assert check_drift(loaded, engine).findings == ()
    faults.stop_node("worker3")
    wait_for(
        lambda: node_state(docker_client, "worker3") == "down",
        timeout=40,
        what="worker3 seen down",
        interval=0.5,
    )
    report = check_drift(loaded, engine)
    assert report.in_sync
    assert [(f.address, f.field) for f in report.health_findings] == [("node.worker3", "state")]
    address = faults.node_address("worker3")
    assert report.health_findings[0].message == f"node worker3 (worker, {address}) is down"
    assert report.nodes_not_ready == ("worker3",)
