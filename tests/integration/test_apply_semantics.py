"""What apply and destroy promise on the real swarm (issue 15): exit 0 only when verified, the
way out of paused and rolled-back updates, partial placement failing fast, signals and locks
left by dead applies, destroy returning only once its objects are gone."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ConvergeCli

pytestmark = pytest.mark.integration

NETWORKED = """
version: 1
stack: {stack}
networks:
  backend: {{}}
services:
  web:
    image: converge-lab/app:v1
    replicas: 2
    networks: [backend]
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
