"""docs/tutorial.md, executed: every command of its ``console`` blocks runs on the lab, in order,
and its output must be what the page shows, so the tutorial cannot rot.

Masked on both sides, because they change from run to run: durations (``in 2.8s``), container
hostnames, the node that answered over HTTP, how tasks happen to be spread before a rebalance,
and ``Waiting (...)`` progress lines (their number depends on timing). Consecutive progress
lines of actions that run at once (``node.worker1: updating...``) are compared as a set. A
``...`` line of the page stands for any lines. The page's manager address (the default lab's)
becomes this lab's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from stacks import remove_stack, restore_node_specs
from waiting import wait_for

from converge.lab import Lab

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial.md"
STACK = "exampleapp"
PAGE_MANAGER = "10.213.0.10"

_BLOCK = re.compile(r"^```console\n(.*?)^```", re.MULTILINE | re.DOTALL)
_PROGRESS = re.compile(r"^(node|network|service|loadbalancer)\.\S+: ")
_MASKS = [
    (re.compile(r"\b\d+m\d\ds\b|\b\d+(\.\d+)?s\b"), "<time>"),
    (re.compile(r"hostname=[0-9a-f]{12}\b"), "hostname=<container>"),
    (re.compile(r"node=worker\d\b"), "node=<worker>"),
    (re.compile(r"\b(worker\d|dbhost|manager)=\d+\b"), r"\1=<n>"),
]


def commands(text: str) -> list[tuple[str, str]]:
    """``(command, expected output)`` of every ``$ `` line of the page's console blocks."""
    found: list[tuple[str, str]] = []
    for block in _BLOCK.findall(text):
        for chunk in re.split(r"^\$ ", block, flags=re.MULTILINE)[1:]:
            command, _, output = chunk.partition("\n")
            found.append((command, output))
    return found


def normalise(output: str) -> list[str]:
    """The lines that must match: masked, progress lines of one burst sorted."""
    lines: list[str] = []
    burst: list[str] = []
    for line in output.rstrip("\n").split("\n"):
        if line.startswith("Waiting ("):
            continue
        for pattern, replacement in _MASKS:
            line = pattern.sub(replacement, line)
        if _PROGRESS.match(line):
            burst.append(line)
            continue
        lines.extend(sorted(burst))
        burst = []
        lines.append(line)
    lines.extend(sorted(burst))
    return lines


def matches(expected: list[str], actual: list[str]) -> bool:
    """Line by line, a ``...`` line of ``expected`` standing for any number of lines."""
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if line == "..." else re.escape(line) + r"\n" for line in expected
    )
    return re.fullmatch(pattern, "".join(line + "\n" for line in actual)) is not None


def test_the_page_is_parsed() -> None:
    found = commands(TUTORIAL.read_text(encoding="utf-8"))
    assert len(found) >= 12
    assert found[0][0].startswith("converge plan ")
    assert found[-1][0].startswith("converge destroy ")
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert not matches(["a", "...", "d"], ["a", "b"])
    burst = "service.b: creating...\nservice.a: creating...\nPlan: 1s"
    assert normalise(burst) == ["service.a: creating...", "service.b: creating...", "Plan: <time>"]


@pytest.fixture
def empty_lab(lab: Lab, docker_client: docker.DockerClient) -> Iterator[Lab]:
    """No stack exampleapp, node labels and availability as a fresh lab has them; afterwards
    the nodes as they were."""
    remove_stack(lab, docker_client, STACK)
    saved = {node.id: node.attrs["Spec"] for node in docker_client.nodes.list()}
    for node in docker_client.nodes.list():
        spec = dict(node.attrs["Spec"])
        if spec.get("Labels") or spec.get("Availability") != "active":
            node.update({**spec, "Labels": {}, "Availability": "active"})
    yield lab
    remove_stack(lab, docker_client, STACK)
    restore_node_specs(docker_client, saved)


def test_every_command_of_the_tutorial(empty_lab: Lab, tmp_path: Path) -> None:
    wrapper = tmp_path / "bin" / "converge"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m converge "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    environment = {
        key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")
    }
    environment.update(
        PATH=f"{wrapper.parent}{os.pathsep}{environment.get('PATH', '')}",
        DOCKER_HOST=empty_lab.docker_host(),
        NO_COLOR="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), environment.get("PYTHONPATH")])),
    )
    manager = empty_lab.manager_address()

    def execute(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", "-c", command.replace(PAGE_MANAGER, manager)],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=300,
            check=False,
        )

    for command, expected in commands(TUTORIAL.read_text(encoding="utf-8")):
        want = normalise(expected)
        if command.startswith("curl "):
            # HAProxy finds the tasks through Docker's DNS a moment after it starts: a request
            # may come too early. A reader would simply ask again.
            def answered(
                command: str = command, want: list[str] = want
            ) -> subprocess.CompletedProcess[str] | None:
                attempt = execute(command)
                return attempt if matches(want, normalise(attempt.stdout)) else None

            run = wait_for(answered, timeout=15, interval=0.5, what=f"{command} to answer")
        else:
            run = execute(command)
        assert run.returncode == 0, f"$ {command}\n{run.stdout}"
        got = normalise(run.stdout)
        assert matches(want, got), (
            f"$ {command}: the output differs from docs/tutorial.md\n--- page\n"
            + "\n".join(want)
            + "\n--- lab\n"
            + "\n".join(got)
        )
