"""scripts/test.sh runs the integration tests on a lab of its own, not on the main job's.

`sh scripts/lab.sh` (the README's main job) leaves the default lab running with the example
stack applied and its cluster spec recorded as the nodes' owner. A test run sharing that lab
was refused by it (a test's cluster spec "may not write its nodes") and met its stack: the
README's two set-up commands, run one after the other, failed the second.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
from pathlib import Path

from converge.lab.layout import DEFAULT_LAB_DIR, DEFAULT_NAME, DEFAULT_SUBNET, LabConfig

ROOT = Path(__file__).resolve().parents[2]


def _lab_of_test_sh(environ: dict[str, str]) -> dict[str, str]:
    """The CONVERGE_LAB_* variables test.sh hands to pytest, from its own lines that set them."""
    lines = (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8").splitlines()
    setting = "\n".join(line for line in lines if "CONVERGE_LAB_" in line)
    assert setting, "scripts/test.sh does not choose its lab"
    script = setting + '\nenv | grep "^CONVERGE_LAB_" || true\n'
    printed = subprocess.run(
        ["sh", "-eu", "-c", script], env=environ, capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split("=", 1) for line in printed.splitlines())


def test_test_sh_uses_a_lab_apart_from_the_default_one() -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CONVERGE_LAB_")}
    chosen = _lab_of_test_sh(environ)
    config = LabConfig.from_env(chosen)
    assert config.name != DEFAULT_NAME
    assert config.directory != Path(DEFAULT_LAB_DIR)
    assert not config.subnet.overlaps(ipaddress.IPv4Network(DEFAULT_SUBNET))
    # Nor the small lab tests/integration/test_lab.py starts beside it.
    assert not config.subnet.overlaps(ipaddress.IPv4Network("10.213.1.0/24"))


def test_a_lab_chosen_by_the_caller_is_kept() -> None:
    mine = {"CONVERGE_LAB_NAME": "a16", "CONVERGE_LAB_SUBNET": "10.224.0.0/24"}
    mine["CONVERGE_LAB_DIR"] = "/var/lib/cvl-a16"
    chosen = _lab_of_test_sh({**os.environ, **mine})
    assert {name: chosen[name] for name in mine} == mine
