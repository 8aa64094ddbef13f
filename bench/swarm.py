"""Talking to the lab for the benchmark: timed commands, condition waits, stack cleanup.

Every wait polls a condition with a deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import compileall
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

import converge
from converge.lab import Lab
from converge.naming import STACK_LABEL

__all__ = [
    "STACK_LABEL",
    "CommandResult",
    "Swarm",
    "timed",
]


POLL = 0.1


@dataclass
class CommandResult:
    seconds: float
    calls: dict[str, int] = field(default_factory=dict)
    output: str = ""
    peak_mb: float | None = None
    """The process's peak resident memory (``bench.counted`` processes only)."""

    @property
    def writes(self) -> int:
        return sum(n for call, n in self.calls.items() if not call.startswith(("GET", "HEAD")))

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


def timed(argv: Sequence[str], env: dict[str, str]) -> CommandResult:
    """Run a command to completion; its wall time. Fails loudly on a non-zero exit."""
    started = time.perf_counter()
    done = subprocess.run(list(argv), env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {done.returncode}:\n"
            f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return CommandResult(seconds, output=done.stdout + done.stderr)


def wait_for(probe: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(POLL)


class Swarm:
    """The lab's manager, for the benchmark (the lab is chosen by the CONVERGE_LAB_* variables)."""

    def __init__(self, lab: Lab | None = None) -> None:
        self.lab = lab or Lab()
        if not self.lab.exists():
            raise SystemExit("no lab is set up: run 'converge lab up' (with the same variables)")
        self.host = self.lab.docker_host()
        self.api: Any = docker.APIClient(base_url=self.host, version="1.41", timeout=120)
        self.env = {**os.environ, "DOCKER_HOST": self.host}
        self.work = Path(tempfile.mkdtemp(prefix="converge-bench-"))
        # Commands start as an installed package starts: pip compiles the bytecode when it
        # installs, while a source checkout under PYTHONDONTWRITEBYTECODE=1 (set on this
        # machine) compiles every converge module again at each start (about 0.1 s).
        for package in (Path(converge.__file__).parent, Path(__file__).parent):
            compileall.compile_dir(package, quiet=1)

    def close(self) -> None:
        self.api.close()

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = self.api.info()
        return info

    # -- commands --------------------------------------------------------------------------

    def converge(self, *args: str) -> CommandResult:
        """``converge ARGS`` in its own process, with the API calls it made."""
        calls_file = self.work / "calls.json"
        calls_file.unlink(missing_ok=True)
        result = timed([sys.executable, "-m", "bench.counted", str(calls_file), *args], self.env)
        counted = json.loads(calls_file.read_text(encoding="utf-8"))
        result.calls, result.peak_mb = counted["calls"], counted["peak_rss_mb"]
        return result

    def python_start(self) -> float:
        """``python -c pass``: the interpreter's own start, the floor of any Python CLI."""
        return timed([sys.executable, "-c", "pass"], self.env).seconds

    def stack_deploy(self, compose: Path, stack: str, wait: bool) -> CommandResult:
        argv = ["docker", "stack", "deploy", "-c", str(compose), "--resolve-image", "never"]
        argv += ["--detach=false", "--quiet"] if wait else ["--detach=true"]
        return timed([*argv, stack], self.env)

    # -- conditions ------------------------------------------------------------------------

    def stack_services(self, stack: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.api.services(
            filters={"label": f"{STACK_LABEL}={stack}"}, status=True
        )
        return found

    def all_running(self, stack: str, count: int) -> bool:
        """``count`` services in ``stack``, each with its one task running."""
        services = self.stack_services(stack)
        return len(services) == count and all(
            (item.get("ServiceStatus") or {}).get("RunningTasks", 0) >= 1 for item in services
        )

    def wait_all_running(self, stack: str, count: int, timeout: float = 900) -> None:
        wait_for(lambda: self.all_running(stack, count), timeout, f"{count} services of {stack}")

    def updated_running(self, service: str, env_item: str) -> bool:
        """The service's only task meant to run runs, with ``env_item`` in its environment."""
        tasks = self.api.tasks(filters={"service": service, "desired-state": "running"})
        return len(tasks) == 1 and all(
            task["Status"]["State"] == "running"
            and env_item in (task["Spec"]["ContainerSpec"].get("Env") or [])
            for task in tasks
        )

    def wait_updated(self, service: str, env_item: str, timeout: float = 300) -> None:
        wait_for(lambda: self.updated_running(service, env_item), timeout, f"{service} updated")

    def update_completed(self, service: str) -> bool:
        """The engine marked the service's update ``completed`` (after its monitor window)."""
        inspected = self.api.inspect_service(service)
        return bool((inspected.get("UpdateStatus") or {}).get("State") == "completed")

    def wait_update_completed(self, service: str, timeout: float = 300) -> None:
        wait_for(lambda: self.update_completed(service), timeout, f"{service} update completed")

    # -- the API floor ---------------------------------------------------------------------

    def list_calls(self) -> None:
        """The list calls converge's observer makes, straight through the SDK."""
        self.api.info()
        self.api.nodes()
        self.api.networks()
        self.api.services(status=True)
        self.api.tasks()

    # -- cleanup ---------------------------------------------------------------------------

    def remove_stack(self, stack: str, timeout: float = 600) -> float:
        """Remove every service and network of ``stack`` and wait until no container is left
        on any node; returns the seconds it took."""
        started = time.perf_counter()
        label = {"label": f"{STACK_LABEL}={stack}"}
        for service in self.api.services(filters=label):
            with contextlib.suppress(docker.errors.NotFound):
                self.api.remove_service(service["ID"])
        clients = [self.lab.client(name, timeout=60) for name in self.lab.nodes()]
        try:

            def gone() -> bool:
                for network in self.api.networks(filters=label):
                    try:
                        self.api.remove_network(network["Id"])
                    except docker.errors.NotFound:
                        pass
                    except docker.errors.APIError:
                        return False
                return not any(
                    client.api.containers(all=True, filters={"name": f"{stack}_"})
                    for client in clients
                )

            wait_for(gone, timeout, f"stack {stack} to be removed")
        finally:
            for client in clients:
                client.close()
        return time.perf_counter() - started
