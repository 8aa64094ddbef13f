"""depends_on waves and swarm jobs on the lab: the migration pattern end to end.

A database with a healthcheck, a seed job that waits for it to be healthy, a web tier that
waits for the job to complete, and the external HAProxy in front of the web tier. The order is
read from the engine's own task timestamps; a job that exits 3 fails the apply naming the job,
its node, the exit code and its last log lines, and leaves the web tier's tasks as they were.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import pytest
from traffic import get
from waiting import wait_for

from converge.api import ApplyRequest, check_drift, make_plan, stack_status
from converge.api import apply as apply_stack
from converge.engine import Engine
from converge.executor import ApplyOptions, ApplyResult
from converge.lab import Lab
from converge.loader import load_spec_text
from converge.planner import PlanOptions

pytestmark = pytest.mark.integration

APPLY = ApplyOptions(timeout=180, stable_for=1.0, poll_interval=0.3)
PORT = 18240

SPEC = """
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
  backend: {{attachable: true}}
services:
  db:
    image: converge-lab/app:v1
    networks: [backend]
    healthcheck: {{test: [CMD, "true"], interval: 1s, start_period: 1s}}
    deploy:
      placement: {{constraints: [node.hostname == dbhost]}}
  seed:
    image: converge-lab/busybox:1.35.0
    command: [sh, -c, "{command}"]
    environment: {{ROUND: "{round}"}}
    networks: [backend]
    depends_on:
      db: {{condition: service_healthy}}
    deploy:
      mode: replicated-job
      restart_policy: {{condition: none}}
  web:
    image: converge-lab/app:{version}
    networks: [backend]
    depends_on:
      seed: {{condition: service_completed_successfully}}
    deploy:
      replicas: 2
"""

SEED_OK = "echo seeding round $$ROUND; sleep 1"
SEED_FAILS = "echo seeding round $$ROUND; echo migration failed: table exists >&2; exit 3"


def spec(stack: str, *, command: str = SEED_OK, round: int = 1, version: str = "v1") -> str:
    return SPEC.format(stack=stack, port=PORT, command=command, round=round, version=version)


def apply(engine: Engine, text: str, **options: Any) -> ApplyResult:
    """``converge apply`` (the use case: under the lock, recording the graph)."""
    request = ApplyRequest(plan_options=PlanOptions(**options), apply_options=APPLY)
    run = apply_stack(load_spec_text(text), engine, request)
    assert run.status in ("applied", "no_changes", "failed"), run.status
    assert run.result is not None
    return run.result


def tasks(client: docker.DockerClient, service: str) -> list[dict[str, Any]]:
    return list(client.api.tasks(filters={"service": service}))


def completed(client: docker.DockerClient, service: str) -> list[dict[str, Any]]:
    return [task for task in tasks(client, service) if task["Status"]["State"] == "complete"]


def test_migration_pattern_order_reruns_and_a_failing_job(
    lab: Lab, engine: Engine, docker_client: docker.DockerClient, stack: str, tmp_path: Path
) -> None:
    db, seed, web = (f"{stack}_{key}" for key in ("db", "seed", "web"))

    # 1. From nothing: db, then the job once db is healthy, then web once the job completed.
    first = apply(engine, spec(stack))
    assert first.ok, first.error
    (db_task,) = [t for t in tasks(docker_client, db) if t["Status"]["State"] == "running"]
    (seed_task,) = completed(docker_client, seed)
    web_tasks = tasks(docker_client, web)
    assert len(web_tasks) == 2
    # Engine timestamps (RFC 3339 in UTC, same width): comparable as text.
    assert db_task["Status"]["Timestamp"] <= seed_task["CreatedAt"]
    assert seed_task["Status"]["Timestamp"] < min(task["CreatedAt"] for task in web_tasks)

    # Status and drift count the completed job as healthy.
    loaded = load_spec_text(spec(stack))
    status = {item["key"]: item for item in stack_status(loaded.spec, engine)["services"]}
    assert (status["seed"]["job"], status["seed"]["completed"]) == (True, 1)
    assert status["seed"]["converged"]
    assert check_drift(loaded, engine).findings == ()

    # 2. Unchanged: no write, the job does not run again; the graph was recorded.
    assert make_plan(loaded, engine).plan.graph_changes == ()
    again = apply(engine, spec(stack))
    assert again.ok, again.error
    assert again.write_calls == 0
    assert len(completed(docker_client, seed)) == 1

    # 3. The job's env changed: it runs once more; --rerun runs it once more again.
    changed = apply(engine, spec(stack, round=2))
    assert changed.ok, changed.error
    assert len(completed(docker_client, seed)) == 2
    rerun = apply(engine, spec(stack, round=2), rerun=("seed",))
    assert rerun.ok, rerun.error
    assert [o.address for o in rerun.outcomes] == ["service.seed"]
    assert len(completed(docker_client, seed)) == 3

    url = f"http://{lab.manager_address()}:{PORT}/"
    assert wait_for(lambda: "app=v1" in (get(url) or ""), timeout=30, what="the web tier")
    running_web = sorted(
        task["ID"]
        for task in tasks(docker_client, web)
        if task["Status"]["State"] == "running" and task["DesiredState"] == "running"
    )

    # 4. The job fails (exit 3) in the same apply that would roll web to v2: web is skipped.
    path = tmp_path / "stack.yml"
    path.write_text(spec(stack, command=SEED_FAILS, round=3, version="v2"), encoding="utf-8")
    environment = {**os.environ, "DOCKER_HOST": lab.docker_host(), "NO_COLOR": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "converge", "apply", "--yes", "-c", str(path)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    failed = [t for t in tasks(docker_client, seed) if t["Status"]["State"] == "failed"]
    assert len(failed) == 1
    node = docker_client.nodes.get(failed[0]["NodeID"]).attrs["Description"]["Hostname"]
    assert f"job {seed}: task on {node} exited with code 3" in run.stderr
    assert "seeding round 3" in run.stderr
    assert "migration failed: table exists" in run.stderr
    assert "service.web: skipped: not touched: it depends on seed, which failed" in run.stdout
    after = sorted(
        task["ID"]
        for task in tasks(docker_client, web)
        if task["Status"]["State"] == "running" and task["DesiredState"] == "running"
    )
    assert after == running_web
    assert all("app=v1" in (get(url) or "") for _ in range(4))


def test_a_global_job_runs_once_per_eligible_node(
    engine: Engine, docker_client: docker.DockerClient, stack: str
) -> None:
    text = f"""
x-converge: {{stack: {stack}}}
services:
  warm:
    image: converge-lab/busybox:1.35.0
    command: [sh, -c, "echo warm"]
    deploy:
      mode: global-job
      placement: {{constraints: [node.role == worker]}}
"""
    result = apply(engine, text)
    assert result.ok, result.error
    done = completed(docker_client, f"{stack}_warm")
    workers = {node.id for node in docker_client.nodes.list(filters={"role": "worker"})}
    assert sorted(task["NodeID"] for task in done) == sorted(workers)
    again = apply(engine, text)
    assert again.ok, again.error
    assert again.write_calls == 0
    assert len(completed(docker_client, f"{stack}_warm")) == len(workers)


def test_a_failed_job_whose_log_driver_keeps_no_logs_says_so(engine: Engine, stack: str) -> None:
    text = f"""
x-converge: {{stack: {stack}}}
services:
  quiet:
    image: converge-lab/busybox:1.35.0
    command: [sh, -c, "echo never kept; exit 4"]
    logging: {{driver: none}}
    deploy:
      mode: replicated-job
      restart_policy: {{condition: none}}
"""
    result = apply(engine, text)
    assert result.error is not None
    assert f"job {stack}_quiet: task on " in result.error
    assert result.error.endswith(
        "exited with code 4; its logs cannot be read: its log driver is none"
    )


def test_a_cycle_and_a_dangling_dependency_are_refused_before_the_swarm_is_read(
    lab: Lab, stack: str, tmp_path: Path
) -> None:
    path = tmp_path / "stack.yml"
    environment = {**os.environ, "DOCKER_HOST": lab.docker_host(), "NO_COLOR": "1"}
    cases = {
        "    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n": (
            "stack.yml:4:18: services.a.depends_on.b: depends_on makes a cycle: a -> b -> a"
        ),
        "    depends_on: [db]\n": (
            "stack.yml:4:18: services.a.depends_on.db: service 'db' is not a service of this stack"
        ),
    }
    for tail, message in cases.items():
        path.write_text(f"services:\n  a:\n    image: x\n{tail}", encoding="utf-8")
        run = subprocess.run(
            [sys.executable, "-m", "converge", "plan", "-c", str(path), stack],
            capture_output=True,
            text=True,
            env=environment,
            timeout=60,
            check=False,
        )
        assert run.returncode == 1, run.stdout + run.stderr
        assert message in run.stderr
        assert "Traceback" not in run.stderr
