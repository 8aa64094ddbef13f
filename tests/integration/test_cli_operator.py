"""The command line as an operator meets it, on the lab: progress of a rolling update, status
exit codes, ``show`` of a saved plan, ``--target``, and exit 1 for a usage error."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import ConvergeCli
from waiting import wait_for

from converge.lab import Lab

pytestmark = pytest.mark.integration

SPEC = """
x-converge:
  stack: {stack}
services:
  web:
    image: converge-lab/app:{tag}
    deploy:
      replicas: 3
      update_config: {{parallelism: 1, delay: 2s, monitor: 1s}}
  worker:
    image: converge-lab/app:v1
    deploy:
      update_config: {{monitor: 1s}}
"""


def _write(path: Path, stack: str, tag: str = "v1") -> Path:
    path.write_text(SPEC.format(stack=stack, tag=tag))
    return path


def test_a_rolling_update_logs_updated_tasks_and_times(
    stack: str, converge_cli: ConvergeCli, tmp_path: Path
) -> None:
    spec = _write(tmp_path / "spec.yml", stack)
    created = converge_cli("apply", str(spec), "--yes")
    assert created.returncode == 0, created.stdout + created.stderr
    assert "service.web: creating..." in created.stdout
    assert re.search(r"^service\.web: created in \d", created.stdout, re.MULTILINE)
    assert re.search(r"^service\.web: converged in \d", created.stdout, re.MULTILINE)

    _write(spec, stack, "v2")
    updated = converge_cli("apply", str(spec), "--yes")
    assert updated.returncode == 0, updated.stdout + updated.stderr
    lines = updated.stdout.splitlines()
    assert "service.web: updating..." in lines
    # One task at a time, 2s apart: the log shows the update half way, not only 3/3 running.
    halfway = [
        line for line in lines if re.search(rf"{stack}_web 3/3 running, [12]/3 updated", line)
    ]
    assert halfway, updated.stdout
    assert all(line.startswith("Waiting (") for line in halfway)
    assert re.search(r"^service\.web: converged in \d", updated.stdout, re.MULTILINE)
    assert " ok" not in updated.stdout


def test_status_exits_2_while_a_service_fails_and_says_why(
    stack: str, converge_cli: ConvergeCli, lab: Lab, tmp_path: Path
) -> None:
    spec = _write(tmp_path / "spec.yml", stack)
    missing = converge_cli("status", str(spec))
    assert missing.returncode == 2
    assert "service.web: declared in the spec, not in the swarm" in missing.stdout
    assert converge_cli("apply", str(spec), "--yes").returncode == 0
    assert converge_cli("status", str(spec)).returncode == 0

    # By hand, an image no node has: its tasks are rejected and the update pauses.
    subprocess.run(
        [
            *("docker", "service", "update", "--detach", "--no-resolve-image"),
            *("--image", "converge-lab/app:missing", f"{stack}_worker"),
        ],
        env={**os.environ, "DOCKER_HOST": lab.docker_host()},
        check=True,
        capture_output=True,
    )

    def failing() -> subprocess.CompletedProcess[str] | None:
        status = converge_cli("status", str(spec), "-o", "json")
        worker = next(s for s in json.loads(status.stdout)["services"] if s["key"] == "worker")
        return status if worker["failure"] else None

    as_json = wait_for(failing, timeout=90, interval=1, what="the worker to count as failed")
    assert as_json.returncode == 2
    text = converge_cli("status", str(spec))
    assert text.returncode == 2
    assert f"{stack}_worker" in text.stdout
    assert "failure: " in text.stdout


def test_show_renders_a_plan_saved_on_the_lab(
    stack: str, converge_cli: ConvergeCli, tmp_path: Path
) -> None:
    spec = _write(tmp_path / "spec.yml", stack)
    plan_file = tmp_path / "plans" / "plan.json"
    plan_file.parent.mkdir()
    planned = converge_cli("plan", str(spec), "--out", str(plan_file))
    assert planned.returncode == 0, planned.stderr
    shown = converge_cli("show", str(plan_file))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == planned.stdout
    as_json = json.loads(converge_cli("show", str(plan_file), "-o", "json").stdout)
    assert as_json["spec_files"][0]["relative_to_plan"] == "../spec.yml"
    applied = converge_cli("apply", str(plan_file))
    assert applied.returncode == 0, applied.stdout + applied.stderr


def test_target_applies_one_service_and_leaves_the_rest(
    stack: str, converge_cli: ConvergeCli, tmp_path: Path
) -> None:
    spec = _write(tmp_path / "spec.yml", stack)
    targeted = converge_cli("apply", str(spec), "--yes", "--target", "service.worker")
    assert targeted.returncode == 0, targeted.stdout + targeted.stderr
    assert "Warning: resource targeting is in effect (service.worker)" in targeted.stderr
    rest = json.loads(converge_cli("plan", str(spec), "-o", "json").stdout)
    assert [action["address"] for action in rest["actions"]] == ["service.web"]
    unknown = converge_cli("plan", str(spec), "--target", "service.nope")
    assert unknown.returncode == 1
    assert "Error: --target service.nope: no such object" in unknown.stderr


def test_a_mistyped_option_is_exit_1_not_2(converge_cli: ConvergeCli, tmp_path: Path) -> None:
    # A systemd unit with SuccessExitStatus=2 (drift) must not count a typo as success.
    mistyped = converge_cli("drift", str(tmp_path / "spec.yml"), "--fail-onn", "drift")
    assert mistyped.returncode == 1
    assert "Error: No such option: --fail-onn" in mistyped.stderr
