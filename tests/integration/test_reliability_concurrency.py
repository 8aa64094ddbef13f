"""Concurrency: several applies at once, apply and destroy at once, destroy then apply.

Exactly one run writes at a time (the stack lock); a run that exits 0 promised a verified
state, so right when it exits the engine must show that state; and none may leave a lock.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import docker
import pytest
from reliability import (
    FULL,
    Cli,
    Expected,
    leftovers,
    record,
    service_problems,
)

from converge.lab import Lab

pytestmark = pytest.mark.integration

SPEC = """
x-converge:
  stack: {stack}
networks:
  backend: {{}}
services:
  web:
    image: converge-lab/app:{version}
    networks: [backend]
    deploy:
      replicas: {replicas}
      update_config: {{parallelism: 1, monitor: 1s}}
"""


def spec(stack: str, version: str = "v1", replicas: int = 3) -> str:
    return SPEC.format(stack=stack, version=version, replicas=replicas)


def _run_all(
    cli: Cli,
    commands: list[tuple[str, ...]],
    gap: float,
    on_exit: list[tuple[int, subprocess.Popen[str], list[str]]],
    check: dict[int, list[str]],
    verify: dict[int, object] | None = None,
) -> list[tuple[int, str]]:
    """Start ``commands`` ``gap`` seconds apart; when one exits 0, run its ``verify`` at once.

    Returns (exit code, output) per command, in start order.
    """
    processes: list[subprocess.Popen[str]] = []
    outputs: list[list[str]] = []
    watchers: list[threading.Thread] = []

    def watch(index: int, process: subprocess.Popen[str], lines: list[str]) -> None:
        assert process.stdout is not None
        lines.extend(process.stdout.read().splitlines())
        process.wait()
        process.stdout.close()
        probe = (verify or {}).get(index)
        if process.returncode == 0 and callable(probe):
            check[index] = probe()
        on_exit.append((index, process, lines))

    for index, command in enumerate(commands):
        if index:
            time.sleep(gap)  # the gap between starts is the scenario itself
        process = cli.start(*command)
        lines: list[str] = []
        processes.append(process)
        outputs.append(lines)
        watcher = threading.Thread(target=watch, args=(index, process, lines), daemon=True)
        watcher.start()
        watchers.append(watcher)
    for watcher in watchers:
        watcher.join(timeout=600)
    return [
        (process.returncode, "\n".join(lines))
        for process, lines in zip(processes, outputs, strict=True)
    ]


def _locked_out(output: str) -> bool:
    return "is locked by" in output


def test_applies_started_together_each_exit_0_only_on_a_verified_state(
    lab: Lab, stack: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    cli = Cli(lab, tmp_path)
    assert cli.run("apply", "--yes", cli.write("v1.yml", spec(stack))).returncode == 0
    target = cli.write("v2.yml", spec(stack, "v2"))
    expected = {"web": Expected("converge-lab/app:v2", 3)}
    count = 4 if FULL else 3
    checks: dict[int, list[str]] = {}
    exits: list[tuple[int, subprocess.Popen[str], list[str]]] = []
    results = _run_all(
        cli,
        [("apply", "--yes", "--lock-timeout", "120", str(target))] * count,
        gap=0.6,
        on_exit=exits,
        check=checks,
        verify={
            index: lambda: service_problems(docker_client, stack, expected)
            for index in range(count)
        },
    )
    record(
        "concurrency",
        scenario=f"{count} applies of one change, 0.6 s apart",
        exits=[code for code, _ in results],
        unverified={index: problems for index, problems in checks.items() if problems},
    )
    for code, output in results:
        assert code == 0 or (code == 1 and _locked_out(output)), output
    assert {index: problems for index, problems in checks.items() if problems} == {}
    assert leftovers(docker_client, stack, balancers=0) == []
    assert cli.run("plan", "--detailed-exitcode", target).returncode == 0


@pytest.mark.skipif(not FULL, reason="full campaign only (scripts/reliability.sh)")
def test_applies_of_different_changes_at_once_end_in_the_last_ones_state(
    lab: Lab, stack: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    cli = Cli(lab, tmp_path)
    assert cli.run("apply", "--yes", cli.write("v1.yml", spec(stack))).returncode == 0
    specs = [
        cli.write("v2.yml", spec(stack, "v2")),
        cli.write("scaled.yml", spec(stack, "v1", replicas=5)),
    ]
    exits: list[tuple[int, subprocess.Popen[str], list[str]]] = []
    results = _run_all(
        cli,
        [("apply", "--yes", "--lock-timeout", "120", str(path)) for path in specs],
        gap=0.0,
        on_exit=exits,
        check={},
    )
    for code, output in results:
        assert code == 0 or (code == 1 and _locked_out(output)), output
    last = exits[-1][0]
    assert results[last][0] == 0
    assert cli.run("plan", "--detailed-exitcode", specs[last]).returncode == 0
    assert leftovers(docker_client, stack, balancers=0) == []


@pytest.mark.skipif(not FULL, reason="full campaign only (scripts/reliability.sh)")
def test_apply_and_destroy_at_once_take_turns(
    lab: Lab, stack: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    cli = Cli(lab, tmp_path)
    assert cli.run("apply", "--yes", cli.write("v1.yml", spec(stack))).returncode == 0
    target = cli.write("v2.yml", spec(stack, "v2"))
    exits: list[tuple[int, subprocess.Popen[str], list[str]]] = []
    results = _run_all(
        cli,
        [
            ("apply", "--yes", "--lock-timeout", "120", str(target)),
            ("destroy", "--yes", "--lock-timeout", "120", str(target)),
        ],
        gap=0.5,
        on_exit=exits,
        check={},
    )
    record("concurrency", scenario="apply and destroy at once", exits=[c for c, _ in results])
    assert [code for code, _ in results] == [0, 0], results
    assert service_problems(docker_client, stack, {}) == []
    assert leftovers(docker_client, stack, balancers=0) == []


def test_destroy_then_apply_at_once_converges(
    lab: Lab, stack: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    cli = Cli(lab, tmp_path)
    target = cli.write("v1.yml", spec(stack))
    assert cli.run("apply", "--yes", target).returncode == 0
    destroyed = cli.run("destroy", "--yes", target)
    applied = cli.run("apply", "--yes", target)
    record(
        "concurrency",
        scenario="destroy then apply",
        exits=[destroyed.returncode, applied.returncode],
    )
    assert destroyed.returncode == 0, destroyed.stderr
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert service_problems(docker_client, stack, {"web": Expected("converge-lab/app:v1", 3)}) == []
