"""The apply command's contract on the lab: saved plans, --prune, the stack lock, status."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import ConvergeCli

from converge.engine import connect
from converge.lab import Lab
from converge.lock import acquire, read_lock

pytestmark = pytest.mark.integration

SPEC = """
x-converge:
  stack: {stack}
services:
  web:
    image: converge-lab/app:v1
    deploy:
      replicas: 2
      update_config: {{monitor: 1s}}
{extra}
"""
EXTRA_SERVICE = """
  worker:
    image: converge-lab/app:v1
    deploy:
      update_config: {monitor: 1s}
"""


def _write(path: Path, stack: str, extra: str = "") -> Path:
    path.write_text(SPEC.format(stack=stack, extra=extra))
    return path


def test_saved_plan_applies_once_and_is_refused_when_the_swarm_moved(
    stack: str, converge_cli: ConvergeCli, lab: Lab, tmp_path: Path
) -> None:
    spec = _write(tmp_path / "spec.yml", stack)
    plan_file = tmp_path / "plan.json"
    planned = converge_cli("plan", str(spec), "--out", str(plan_file))
    assert planned.returncode == 0, planned.stderr
    # The service and the stack's default network it joins.
    assert json.loads(plan_file.read_text())["summary"] == {"add": 2, "change": 0, "destroy": 0}
    applied = converge_cli("apply", str(plan_file))
    assert applied.returncode == 0, applied.stdout + applied.stderr

    # A plan made now, then a hand change: applying the saved plan is refused.
    spec.write_text(SPEC.format(stack=stack, extra="").replace("replicas: 2", "replicas: 3"))
    assert converge_cli("plan", str(spec), "--out", str(plan_file)).returncode == 0
    subprocess.run(
        ["docker", "service", "scale", "--detach", f"{stack}_web=1"],
        env={**os.environ, "DOCKER_HOST": lab.docker_host()},
        check=True,
        capture_output=True,
    )
    refused = converge_cli("apply", str(plan_file))
    assert refused.returncode == 1
    assert "the swarm changed since the plan was made: service.web" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_prune_removes_only_owned_objects_that_left_the_spec(
    stack: str, converge_cli: ConvergeCli, tmp_path: Path
) -> None:
    spec = _write(tmp_path / "spec.yml", stack, EXTRA_SERVICE)
    assert converge_cli("apply", str(spec), "--yes").returncode == 0
    _write(spec, stack)
    without_prune = converge_cli("plan", str(spec), "-o", "json")
    document = json.loads(without_prune.stdout)
    assert document["actions"] == []
    assert [f["address"] for f in document["findings"]] == ["service.worker"]
    pruned = converge_cli("apply", str(spec), "--yes", "--prune", "-o", "json")
    assert pruned.returncode == 0, pruned.stderr
    outcomes = {a["address"]: a["outcome"] for a in json.loads(pruned.stdout)["actions"]}
    assert outcomes == {"service.worker": "removed"}
    assert converge_cli("plan", str(spec), "--prune", "--detailed-exitcode").returncode == 0


def test_a_locked_stack_waits_then_fails_naming_the_holder(
    stack: str, converge_cli: ConvergeCli, lab: Lab, tmp_path: Path
) -> None:
    spec = _write(tmp_path / "spec.yml", stack)
    engine = connect(lab.docker_host())
    try:
        holder = acquire(engine, stack, wait=0, hold_for=600)
        locked = converge_cli("apply", str(spec), "--yes", "--lock-timeout", "1")
        assert locked.returncode == 1
        assert f"stack {stack} is locked by {holder.owner}" in locked.stderr
        # The holder (this test) still runs: unlock needs the lock's id, and --force.
        assert converge_cli("unlock", stack).returncode == 1
        assert converge_cli("unlock", stack, holder.lock_id).returncode == 1
        assert read_lock(engine, stack) == holder
        assert converge_cli("unlock", stack, holder.lock_id, "--force").returncode == 0
        assert read_lock(engine, stack) is None
        applied = converge_cli("apply", str(spec), "--yes", "--lock-timeout", "1")
        assert applied.returncode == 0, applied.stderr
        assert read_lock(engine, stack) is None  # released after the apply
    finally:
        engine.close()


def test_status_shows_counts_and_placement(
    stack: str, converge_cli: ConvergeCli, tmp_path: Path
) -> None:
    spec = _write(tmp_path / "spec.yml", stack)
    assert converge_cli("apply", str(spec), "--yes").returncode == 0
    status = converge_cli("status", str(spec), "-o", "json")
    assert status.returncode == 0, status.stderr
    (web,) = json.loads(status.stdout)["services"]
    assert (web["running"], web["desired"], web["converged"]) == (2, 2, True)
    assert sum(web["placement"].values()) == 2
