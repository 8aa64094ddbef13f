"""The wheel a release would publish installs into a fresh venv, and what it installs works.

scripts/test.sh builds the wheel (scripts/build-wheel.sh) and passes its path as
``CONVERGE_WHEEL``; run alone, this module builds its own. Installing resolves the declared
dependencies from the package index, so a dependency imported but not declared fails here.
Slow (about half a minute): ``-m "not wheel"`` leaves it out of a quick run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import converge

# Slow (a fresh venv): with the integration tests, out of the quick unit run; needs no lab.
pytestmark = [pytest.mark.integration, pytest.mark.wheel]

ROOT = Path(__file__).resolve().parents[2]
_TIMEOUT = 300


def _run(argv: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    # Outside the checkout, so that nothing can import converge from the source tree.
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(part) for part in argv],
        cwd=cwd,
        env={**environment, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=_TIMEOUT,
    )


def _checked(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args} exited {result.returncode}:\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel (and its declared dependencies) installed; its bin dir."""
    work = tmp_path_factory.mktemp("wheel")
    wheel = os.environ.get("CONVERGE_WHEEL")
    if not wheel:
        _checked(
            _run(
                [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", work, ROOT],
                work,
            )
        )
        [built] = work.glob("converge_swarm-*.whl")
        wheel = str(built)
    _checked(_run([sys.executable, "-m", "venv", work / "venv"], work))
    bin_dir = work / "venv" / "bin"
    _checked(
        _run(
            [bin_dir / "python", "-m", "pip", "install", "--quiet", "--no-input", wheel],
            work,
        )
    )
    return bin_dir


def test_the_wheel_is_named_for_the_distribution_and_the_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == "converge-swarm"
    assert project["dynamic"] == ["version"]
    wheel = os.environ.get("CONVERGE_WHEEL")
    if wheel:
        assert Path(wheel).name == f"converge_swarm-{converge.__version__}-py3-none-any.whl"


def test_the_installed_package_reports_its_version_and_runs(installed: Path) -> None:
    probe = (
        "import importlib.metadata, converge, converge.version\n"
        "print(converge.version.converge_version())\n"
        "print(importlib.metadata.version('converge-swarm'))\n"
        "print(converge.__file__)\n"
    )
    version, metadata_version, location = _checked(
        _run([installed / "python", "-c", probe], installed)
    ).splitlines()
    assert version == metadata_version == converge.__version__
    assert Path(location).is_relative_to(installed.parent), "imported from outside the venv"

    assert "Make a Docker Swarm cluster match" in _checked(
        _run([installed / "converge", "--help"], installed)
    )
    # A real command from the wheel alone: the spec models, YAML and the example spec.
    validated = _run([installed / "converge", "validate", ROOT / "specs" / "exampleapp.yml"], ROOT)
    assert validated.returncode == 0, validated.stderr
    # Every module imports from the wheel and its declared dependencies alone (docker,
    # deepdiff, prometheus_client ... load lazily in places, so import them all).
    every_module = (
        "import importlib, pkgutil, converge\n"
        "for module in pkgutil.walk_packages(converge.__path__, 'converge.'):\n"
        "    if module.name != 'converge.__main__':  # that one runs the command\n"
        "        importlib.import_module(module.name)\n"
        "import prometheus_client\n"
        "print('imported')\n"
    )
    assert _checked(_run([installed / "python", "-c", every_module], installed)) == "imported\n"
    # Package data the lab needs at run time.
    assets = _checked(
        _run(
            [
                installed / "python",
                "-c",
                "import importlib.resources as r; "
                "print(r.files('converge.lab').joinpath('assets/haproxy.cfg').is_file(), "
                "r.files('converge').joinpath('py.typed').is_file())",
            ],
            installed,
        )
    )
    assert assets.split() == ["True", "True"]


def test_the_installed_command_prints_its_version(installed: Path) -> None:
    assert converge.__version__ in _checked(_run([installed / "converge", "--version"], installed))
