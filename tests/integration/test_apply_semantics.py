"""What apply and destroy promise on the real swarm (issue 15): exit 0 only when verified, the
way out of paused and rolled-back updates, partial placement failing fast, signals and locks
left by dead applies, destroy returning only once its objects are gone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from conftest import ConvergeCli
from waiting import wait_for, wait_for_running

from converge.engine import Engine
from converge.lab import Lab
from converge.lock import read_lock

pytestmark = pytest.mark.integration

NETWORKED = """
x-converge:
  stack: {stack}
networks:
  backend: {{}}
services:
  web:
    image: converge-lab/app:v1
    networks: [backend]
    deploy:
      replicas: 2
      update_config: {{monitor: 1s}}
"""


def _write(path: Path, text: str, stack: str) -> Path:
    path.write_text(text.format(stack=stack))
    return path


def test_destroy_then_apply_at_once_works_every_time(
    stack: str, converge_cli: ConvergeCli, tmp_path: Path
) -> None:
    spec = _write(tmp_path / "spec.yml", NETWORKED, stack)
    assert converge_cli("apply", str(spec), "--yes").returncode == 0
    for attempt in range(3):
        destroyed = converge_cli("destroy", str(spec), "--yes")
        assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
        applied = converge_cli("apply", str(spec), "--yes")
        assert applied.returncode == 0, f"try {attempt}: {applied.stdout}{applied.stderr}"


# ---------------------------------------------------------------------------------------------
# Updates the engine never leaves by itself: paused, rolled back


FLAGGED = """
x-converge:
  stack: {stack}
services:
  web:
    image: converge-lab/app:{tag}
    entrypoint: ["/init"]
    command: ["sh", "-c", "test ! -e /flags/crash || exit 3; exec httpd -f -p 80 -h /www"]
    volumes: ["{flags}:/flags:ro"]
    stop_grace_period: 1s
    deploy:
      replicas: 2
      update_config: {{parallelism: 1, monitor: 2s, failure_action: {failure_action}}}
      restart_policy: {{condition: any, delay: 1s}}
"""


def _flagged(path: Path, stack: str, flags: Path, tag: str, failure_action: str) -> Path:
    path.write_text(
        FLAGGED.format(stack=stack, tag=tag, flags=flags, failure_action=failure_action)
    )
    return path


def test_a_paused_update_whose_spec_matches_is_resumed_by_apply(
    stack: str, converge_cli: ConvergeCli, tmp_path: Path
) -> None:
    """As after a node loss mid-update: the engine keeps the update paused though nothing is
    wrong any more; plan and apply --rebalance show the way out, apply takes it."""
    flags = tmp_path / "flags"
    flags.mkdir()
    spec = _flagged(tmp_path / "spec.yml", stack, flags, "v1", "pause")
    assert converge_cli("apply", str(spec), "--yes").returncode == 0
    (flags / "crash").touch()  # the update's new tasks will crash
    _flagged(spec, stack, flags, "v2", "pause")
    failed = converge_cli("apply", str(spec), "--yes", "--timeout", "120")
    assert failed.returncode == 1
    assert f"service {stack}_web: update paused" in failed.stderr
    (flags / "crash").unlink()  # the cause is gone: the spec is right, the update stays paused

    planned = converge_cli("plan", str(spec), "-o", "json")
    (action,) = json.loads(planned.stdout)["actions"]
    assert (action["address"], action["kind"]) == ("service.web", "force")
    assert action["reason"] == "the last update was paused: re-apply resumes it"
    assert converge_cli("drift", str(spec)).returncode == 2
    rebalance = converge_cli("plan", str(spec), "--rebalance")
    assert "No changes" not in rebalance.stdout

    resumed = converge_cli("apply", str(spec), "--yes", "--timeout", "120")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert converge_cli("plan", str(spec), "--detailed-exitcode").returncode == 0
    assert converge_cli("drift", str(spec)).returncode == 0


def test_a_rolled_back_update_is_left_by_fixing_the_spec_or_by_re_applying_it(
    stack: str, converge_cli: ConvergeCli, tmp_path: Path
) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    spec = _flagged(tmp_path / "spec.yml", stack, flags, "v1", "rollback")
    assert converge_cli("apply", str(spec), "--yes").returncode == 0

    # An image no node has: the engine rolls back to v1; apply says so.
    _flagged(spec, stack, flags, "missing", "rollback")
    failed = converge_cli("apply", str(spec), "--yes", "--timeout", "120")
    assert failed.returncode == 1
    assert f"service {stack}_web: update rollback completed" in failed.stderr
    assert "rollback completed: rollback completed" not in failed.stderr

    # The spec fixed forward: a plain update, which converges cleanly.
    _flagged(spec, stack, flags, "v2", "rollback")
    fixed = converge_cli("apply", str(spec), "--yes", "--timeout", "120")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert converge_cli("drift", str(spec)).returncode == 0

    # Rolled back again, and the spec set back to what runs: re-applying re-drives it.
    _flagged(spec, stack, flags, "missing", "rollback")
    assert converge_cli("apply", str(spec), "--yes", "--timeout", "120").returncode == 1
    _flagged(spec, stack, flags, "v2", "rollback")
    planned = json.loads(converge_cli("plan", str(spec), "-o", "json").stdout)
    assert [(a["kind"], a["reason"]) for a in planned["actions"]] == [
        ("force", "the last update was rolled back: re-apply deploys the spec again")
    ]
    again = converge_cli("apply", str(spec), "--yes", "--timeout", "120")
    assert again.returncode == 0, again.stdout + again.stderr
    assert converge_cli("plan", str(spec), "--detailed-exitcode").returncode == 0
    assert converge_cli("drift", str(spec)).returncode == 0


# ---------------------------------------------------------------------------------------------
# An empty plan is verified, not assumed


def test_a_failed_apply_run_again_still_fails(
    stack: str, converge_cli: ConvergeCli, tmp_path: Path
) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    (flags / "crash").touch()
    spec = _flagged(tmp_path / "spec.yml", stack, flags, "v1", "pause")
    first = converge_cli("apply", str(spec), "--yes", "--timeout", "120")
    assert first.returncode == 1
    again = converge_cli("apply", str(spec), "--yes", "--timeout", "120")
    assert "No changes. The swarm matches the spec." in again.stdout  # nothing to change...
    assert again.returncode == 1  # ...and yet not healthy: no exit 0
    assert f"service {stack}_web: " in again.stderr


def test_concurrent_applies_wait_for_the_lock_or_fail_none_reports_an_unverified_success(
    stack: str, converge_cli: ConvergeCli, lab: Lab, engine: Engine, tmp_path: Path
) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    spec = _flagged(tmp_path / "spec.yml", stack, flags, "v1", "pause")
    assert converge_cli("apply", str(spec), "--yes").returncode == 0
    _flagged(spec, stack, flags, "v2", "pause")
    environment = {**os.environ, "DOCKER_HOST": lab.docker_host(), "NO_COLOR": "1"}
    first = subprocess.Popen(
        [sys.executable, "-m", "converge", "apply", str(spec), "--yes"],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: read_lock(engine, stack), timeout=60, what="the first apply's lock")
        refused = converge_cli("apply", str(spec), "--yes")
        waiting = converge_cli("apply", str(spec), "--yes", "--lock-timeout", "300")
    finally:
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    assert refused.returncode == 1
    assert f"stack {stack} is locked by" in refused.stderr
    assert waiting.returncode == 0, waiting.stdout + waiting.stderr
    assert f"Waiting for the lock of stack {stack}" in waiting.stdout
    assert "No changes. The swarm matches the spec." in waiting.stdout


# ---------------------------------------------------------------------------------------------
# Partial placement


def test_more_replicas_than_nodes_for_a_host_port_fails_fast_with_the_reason(
    stack: str, converge_cli: ConvergeCli, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    """The placement preview refuses it before any write (once the executor found it only
    after its grace for the scheduler; the fake swarm's tests keep that path)."""
    spec = tmp_path / "spec.yml"
    spec.write_text(
        f"""
x-converge:
  stack: {stack}
services:
  web:
    image: converge-lab/app:v1
    ports: [{{target: 80, published: 39181, mode: host}}]
    deploy:
      replicas: 7
"""
    )
    failed = converge_cli("apply", str(spec), "--yes", "--timeout", "300")
    assert failed.returncode == 1
    assert "timed out" not in failed.stderr
    reason = "7 replicas with host port 39181 need 7 eligible nodes; 5 are eligible"
    assert reason in failed.stdout + failed.stderr
    assert not docker_client.services.list(filters={"name": f"{stack}_web"})  # nothing written


# ---------------------------------------------------------------------------------------------
# Signals and locks of dead applies


SLOW = """
x-converge:
  stack: {stack}
services:
  web:
    image: converge-lab/app:v1
    deploy:
      replicas: {replicas}
      update_config: {{monitor: {monitor}}}
"""


def _replicas(client: docker.DockerClient, name: str) -> int | None:
    spec = client.api.inspect_service(name)["Spec"]
    return int((spec.get("Mode") or {}).get("Replicated", {}).get("Replicas", 0))


StartApply = Callable[[Path], "subprocess.Popen[str]"]


@pytest.fixture
def start_apply(lab: Lab) -> Iterator[StartApply]:
    """Starts ``converge apply SPEC --yes`` in the background; whatever still runs when the test
    ends (a failed assertion) is killed, so no apply outlives its test."""
    started: list[subprocess.Popen[str]] = []

    def start(spec: Path) -> subprocess.Popen[str]:
        environment = {**os.environ, "DOCKER_HOST": lab.docker_host(), "NO_COLOR": "1"}
        process = subprocess.Popen(
            [sys.executable, "-m", "converge", "apply", str(spec), "--yes"],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_sigterm_releases_the_lock_and_sigkill_leaves_one_the_next_apply_takes_over(
    stack: str,
    converge_cli: ConvergeCli,
    start_apply: StartApply,
    engine: Engine,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    spec = tmp_path / "spec.yml"
    # A 120s monitor window: apply waits that long for a changed service to prove stable.
    spec.write_text(SLOW.format(stack=stack, replicas=1, monitor="120s"))

    terminated = start_apply(spec)
    wait_for(lambda: read_lock(engine, stack), timeout=60, what="the apply's lock")
    terminated.send_signal(signal.SIGTERM)
    _, err = terminated.communicate(timeout=60)
    assert terminated.returncode == 143, err
    assert f"Interrupted: SIGTERM; the lock of stack {stack} was released" in err
    assert read_lock(engine, stack) is None

    spec.write_text(SLOW.format(stack=stack, replicas=2, monitor="120s"))
    killed = start_apply(spec)
    held = wait_for(lambda: read_lock(engine, stack), timeout=60, what="the apply's lock")
    # Killed once its write landed (the lock comes first, then a plan, then the write).
    wait_for(
        lambda: _replicas(docker_client, f"{stack}_web") == 2,
        timeout=60,
        what="the apply's scale to 2 replicas",
        # SIGTERM may have come before the first apply created the service.
        ignore=(docker.errors.NotFound,),
    )
    killed.kill()
    killed.communicate(timeout=60)
    assert read_lock(engine, stack) == held  # SIGKILL: nothing could release it
    wait_for_running(docker_client, f"{stack}_web", 2)
    gone = "which is no longer running; the next apply takes the lock over, or remove it with: "
    assert gone in converge_cli("plan", str(spec)).stdout
    assert gone in converge_cli("status", str(spec)).stdout
    noop = converge_cli("apply", str(spec), "--yes")
    assert noop.returncode == 0, noop.stdout + noop.stderr
    # Nothing to change: the dead holder's lock is its one write.
    assert f"removed the lock of stack {stack} left by {held.owner}" in noop.stdout
    assert read_lock(engine, stack) is None


def test_a_subnet_taken_by_another_swarm_network_is_refused_at_plan_time(
    stack: str, docker_client: docker.DockerClient, converge_cli: ConvergeCli, tmp_path: Path
) -> None:
    # Made by hand: the engine would create the stack's network over it, and the tasks on it
    # would then wait in New for an address until apply's timeout.
    taken = docker_client.networks.create(
        f"{stack}-by-hand",
        driver="overlay",
        ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.93.0.0/24")]),
    )
    try:
        spec = _write(
            tmp_path / "spec.yml",
            NETWORKED.replace(
                "backend: {{}}", "backend: {{ipam: {{config: [{{subnet: 10.93.0.0/16}}]}}}}"
            ),
            stack,
        )
        planned = converge_cli("plan", str(spec))
        assert planned.returncode == 1, planned.stdout + planned.stderr
        assert (
            f"network.backend: subnet 10.93.0.0/16 overlaps 10.93.0.0/24 of network "
            f"{stack}-by-hand" in planned.stdout + planned.stderr
        )
        applied = converge_cli("apply", str(spec), "--yes")
        assert applied.returncode == 1, applied.stdout + applied.stderr
        assert not docker_client.networks.list(names=[f"{stack}_backend"])
    finally:
        taken.remove()
