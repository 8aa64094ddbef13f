"""What the reliability tests share: the CLI as a process, kill points, and independent checks.

Every check here reads the swarm through the docker SDK, never through converge: the tests
judge converge's claims (exit 0 means converged and healthy) against what the engine says.

``CONVERGE_RELIABILITY=full`` runs the whole campaign (every kill point, every variant);
without it each test runs the sample that fits the CI budget. ``CONVERGE_RELIABILITY_FIGURES``
names a file that collects one JSON line per trial (scripts/reliability.sh prints them).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from waiting import wait_for

from converge.lab import Lab
from converge.naming import LB_CHECK_LABEL, LB_LABEL, STACK_LABEL, lock_name

FULL = os.environ.get("CONVERGE_RELIABILITY") == "full"


def campaign(sample: Iterable[Any], everything: Iterable[Any]) -> list[Any]:
    """The CI sample, or everything when the full campaign runs."""
    return list(everything if FULL else sample)


def record(suite: str, **figures: Any) -> None:
    """Append one trial's figures to ``CONVERGE_RELIABILITY_FIGURES`` (when set)."""
    target = os.environ.get("CONVERGE_RELIABILITY_FIGURES")
    if not target:
        return
    line = {"suite": suite, **figures, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with Path(target).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


# ---------------------------------------------------------------------------------------------
# The command line, as a process


@dataclass
class Cli:
    """``converge`` against the lab's manager, run from ``directory`` (where specs are written)."""

    lab: Lab
    directory: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DOCKER_HOST": self.lab.docker_host(),
            "NO_COLOR": "1",
            "PYTHONUNBUFFERED": "1",
            "COLUMNS": "200",
            **self.extra_env,
        }

    def write(self, name: str, text: str) -> Path:
        path = self.directory / name
        path.write_text(text, encoding="utf-8")
        return path

    def command(self, *arguments: str | Path) -> list[str]:
        return [sys.executable, "-m", "converge", *map(str, arguments)]

    def run(self, *arguments: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*arguments),
            capture_output=True,
            text=True,
            env=self.env(),
            cwd=self.directory,
            timeout=timeout,
            check=False,
        )

    def start(self, *arguments: str | Path) -> subprocess.Popen[str]:
        """A running converge; its stdout and stderr merged, read line by line."""
        return subprocess.Popen(
            self.command(*arguments),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env(),
            cwd=self.directory,
        )


@dataclass(frozen=True)
class KillPoint:
    """Where to kill -9 a running apply: ``delay`` seconds after the ``nth`` output line that
    matches ``pattern`` (progress lines: ``service.x: creating...``, ``service.x: created in
    1.2s``, ``Waiting (3.0s): ...``)."""

    name: str
    pattern: str
    nth: int = 1
    delay: float = 0.0

    def __str__(self) -> str:
        return self.name


@dataclass
class Killed:
    """What the killed process printed, and whether the point was reached before it ended."""

    output: list[str]
    reached: bool
    returncode: int | None


def kill_at(process: subprocess.Popen[str], point: KillPoint, timeout: float = 240) -> Killed:
    """Read ``process``'s output until ``point``, then SIGKILL it (no cleanup of any kind)."""
    assert process.stdout is not None
    output: list[str] = []
    matched = threading.Event()
    pattern = re.compile(point.pattern)

    def read() -> None:
        seen = 0
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            if not matched.is_set() and pattern.search(line):
                seen += 1
                if seen >= point.nth:
                    matched.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not matched.is_set() and process.poll() is None and time.monotonic() < deadline:
        matched.wait(0.05)
    reached = matched.is_set()
    if reached and point.delay:
        time.sleep(point.delay)  # the point is a moment after the line: nothing to wait on
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    reader.join(timeout=5)
    process.stdout.close()
    return Killed(output, reached, process.returncode)


# ---------------------------------------------------------------------------------------------
# Independent checks of the swarm


@dataclass(frozen=True)
class Expected:
    """A service as it should run: image and task count (None: global, one per active node)."""

    image: str
    replicas: int | None
    env: Mapping[str, str] = field(default_factory=dict)


def _node_states(client: docker.DockerClient) -> dict[str, tuple[str, str]]:
    return {
        node.id: (node.attrs["Status"]["State"], node.attrs["Spec"].get("Availability", ""))
        for node in client.nodes.list()
    }


def service_problems(
    client: docker.DockerClient,
    stack: str,
    expected: Mapping[str, Expected],
    settled: tuple[str | None, ...] = (None, "completed"),
) -> list[str]:
    """Why the stack is not converged and healthy as ``expected`` says (empty: it is).

    Converged means, per service: its spec has the image (and env), no update is in flight,
    paused or rolled back, and exactly the desired tasks run, on ready nodes, from that spec.

    Args:
        settled: the update states that count as done (add ``rollback_completed`` to check
            that a rollback brought the old replicas back).
    """
    problems: list[str] = []
    nodes = _node_states(client)
    services = {
        service.name: service
        for service in client.services.list(filters={"label": f"{STACK_LABEL}={stack}"})
    }
    for key, want in expected.items():
        name = f"{stack}_{key}"
        service = services.get(name)
        if service is None:
            problems.append(f"{name}: missing")
            continue
        attrs = service.attrs
        container = attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
        if not container["Image"].startswith(want.image):
            problems.append(f"{name}: image {container['Image']}, not {want.image}")
        env = dict(item.split("=", 1) for item in container.get("Env") or [])
        for variable, value in want.env.items():
            if env.get(variable) != value:
                problems.append(f"{name}: env {variable}={env.get(variable)!r}, not {value!r}")
        update = (attrs.get("UpdateStatus") or {}).get("State")
        if update not in settled:
            problems.append(f"{name}: update {update}")
        tasks = client.api.tasks(filters={"service": service.id, "desired-state": "running"})
        running = [
            task
            for task in tasks
            if task["Status"]["State"] == "running"
            and nodes.get(task.get("NodeID", ""), ("", ""))[0] == "ready"
            and task["Spec"]["ContainerSpec"]["Image"].startswith(want.image)
        ]
        desired = want.replicas
        if desired is None:
            desired = sum(state == ("ready", "active") for state in nodes.values())
        if len(running) != desired or len(tasks) != desired:
            problems.append(
                f"{name}: {len(running)} of {desired} tasks running the spec "
                f"({len(tasks)} meant to run)"
            )
    extra = sorted(set(services) - {f"{stack}_{key}" for key in expected})
    problems += [f"{name}: not in the spec" for name in extra]
    return problems


def leftovers(client: docker.DockerClient, stack: str, balancers: int) -> list[str]:
    """Locks, orphans and duplicates the stack should not have (empty: none).

    Args:
        balancers: how many load-balancer containers the spec asks for (0 or 1).
    """
    found: list[str] = []
    locks = client.configs.list(filters={"name": lock_name(stack)})
    found += [f"lock {config.name} ({config.attrs['Spec'].get('Labels')})" for config in locks]
    containers = client.containers.list(all=True, filters={"label": f"{STACK_LABEL}={stack}"})
    checks = [c.name for c in containers if LB_CHECK_LABEL in (c.labels or {})]
    found += [f"validation container {name}" for name in checks]
    lbs = [c for c in containers if LB_LABEL in (c.labels or {})]
    if len(lbs) != balancers:
        found.append(f"{len(lbs)} load-balancer containers, not {balancers}")
    found += [f"load balancer {c.name} is {c.status}" for c in lbs if c.status != "running"]
    names = [
        network.name
        for network in client.networks.list(filters={"label": f"{STACK_LABEL}={stack}"})
        if network.attrs.get("Scope") == "swarm"
    ]
    found += [
        f"network {name} x{names.count(name)}" for name in set(names) if names.count(name) > 1
    ]
    return found


def wait_converged(
    client: docker.DockerClient,
    stack: str,
    expected: Mapping[str, Expected],
    timeout: float = 120,
    settled: tuple[str | None, ...] = (None, "completed"),
) -> None:
    """Wait until ``service_problems`` finds nothing."""
    seen: list[str] = []

    def probe() -> bool:
        seen[:] = service_problems(client, stack, expected, settled)
        return not seen

    try:
        wait_for(probe, timeout=timeout, what=f"stack {stack} to converge")
    except AssertionError as error:
        raise AssertionError(f"{error}: {seen}") from None


def verified_exit(
    run: subprocess.CompletedProcess[str],
    check: Callable[[], list[str]],
) -> list[str]:
    """For a command that exited 0: what was wrong right after (it promised a verified state)."""
    if run.returncode != 0:
        return []
    return check()
