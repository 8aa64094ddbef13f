"""What the real commands print on the lab fits the published schemas (docs/schemas/).

One stack through ``plan``, ``apply``, ``drift``, ``status`` and ``rollout status`` with
``-o json``, then a hand change so that drift has a finding to describe; the plan's and drift's
``spec.digest`` are the same value for the same spec and variables.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from converge import __version__
from converge.lab import Lab
from tests.document_schemas import assert_valid

pytestmark = pytest.mark.integration

SPEC = """
x-converge:
  stack: {stack}
networks:
  backend: {{}}
services:
  web:
    image: converge-lab/app:v1
    networks: [backend]
    environment: {{GREETING: "${{GREETING}}"}}
    deploy:
      replicas: 2
      update_config: {{monitor: 1s}}
"""


def _converge(lab: Lab, greeting: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DOCKER_HOST": lab.docker_host(), "GREETING": greeting}
    return subprocess.run(
        [sys.executable, "-m", "converge", *arguments],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def _document(result: subprocess.CompletedProcess[str], code: int = 0) -> dict[str, Any]:
    assert result.returncode == code, result.stdout + result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    assert document["converge_version"] == __version__
    return document


def test_plan_apply_drift_and_status_json_fit_their_schemas(
    stack: str, lab: Lab, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yml"
    spec.write_text(SPEC.format(stack=stack))

    def converge_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
        return _converge(lab, "hello", *arguments)

    plan = _document(converge_cli("plan", str(spec), "-o", "json"))
    assert plan["summary"] == {"add": 2, "change": 0, "destroy": 0}
    assert_valid("plan", plan)

    applied = _document(converge_cli("apply", str(spec), "--yes", "-o", "json"))
    assert applied["ok"] is True
    assert_valid("apply", applied)

    clean = _document(converge_cli("drift", str(spec), "-o", "json"))
    assert (clean["in_sync"], clean["healthy"]) == (True, True)
    assert_valid("drift", clean)
    # One meaning of spec.digest: the resolved spec's, in the plan and in the drift report.
    assert clean["spec"]["digest"] == plan["spec"]["digest"]

    status = _document(converge_cli("status", str(spec), "-o", "json"))
    assert [service["name"] for service in status["services"]] == [f"{stack}_web"]
    assert_valid("status", status)

    # No rollout (the service rolls in place), none pending: exit 0.
    rollout = _document(converge_cli("rollout", "status", str(spec), "web", "-o", "json"))
    assert (rollout["in_progress"], rollout["pending"]) == (False, False)
    assert_valid("rollout", rollout)

    subprocess.run(
        ["docker", "service", "scale", "--detach", f"{stack}_web=1"],
        env={**os.environ, "DOCKER_HOST": lab.docker_host()},
        check=True,
        capture_output=True,
    )
    drifted = _document(converge_cli("drift", str(spec), "-o", "json"), code=2)
    assert [(f["kind"], f["field"], f["before"], f["after"]) for f in drifted["findings"]] == [
        ("sync", "deploy.replicas", 1, 2)
    ]
    assert_valid("drift", drifted)
    # The service now differs from the spec: the next apply changes it (exit 2).
    pending = _document(converge_cli("rollout", "status", str(spec), "web", "-o", "json"), code=2)
    assert (pending["in_progress"], pending["pending"]) == (False, True)
    assert_valid("rollout", pending)

    # Another value of a variable the spec reads is another spec: another digest.
    replanned = _document(_converge(lab, "bonjour", "plan", str(spec), "-o", "json"))
    assert replanned["spec"]["digest"] != plan["spec"]["digest"]
    assert_valid("plan", replanned)
