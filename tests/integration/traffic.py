"""A bounded HTTP load through the load balancer, counted per phase of a change.

``Traffic`` sends requests one after another from a few client threads (a fresh connection
each, as a browser behind a proxy would not reuse one across a task's death) until stopped, or
until its request or time budget runs out. Each request is filed under the phase that was
current when it started; per phase it counts requests, failures (no answer, or not 200) and the
longest request: a request that waited for a dead server shows up there as a stall.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType


def get(url: str) -> str | None:
    """One request with a short timeout: the body, or None when it failed in any way (no
    connection, a timeout, or a server that closed the connection part-way through its
    answer, as a reloading or departing one may: ``http.client.IncompleteRead``)."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return str(response.read().decode())
    except (OSError, http.client.HTTPException):
        return None


@dataclass
class PhaseFigures:
    """What one phase saw: requests, failed ones (with the first reasons), the longest one."""

    name: str
    requests: int = 0
    failures: int = 0
    longest: float = 0.0
    reasons: list[str] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)
    """Answers per ``app=<version>`` of the lab's app (``?`` for anything else)."""

    def line(self) -> str:
        return (
            f"{self.name}: {self.requests} requests, {self.failures} failed, "
            f"longest {self.longest:.3f}s"
        )


class Traffic:
    """Requests to ``http://host:port/`` from ``clients`` threads while the block runs.

    Args:
        timeout: seconds one request may take before it counts as failed.
        max_requests, max_seconds: the load stops by itself at either bound.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        clients: int = 2,
        timeout: float = 10.0,
        max_requests: int = 200_000,
        max_seconds: float = 900.0,
    ) -> None:
        self.host, self.port = host, port
        self.clients, self.timeout = clients, timeout
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.phases: dict[str, PhaseFigures] = {}
        self._current = self._phase("warm-up")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sent = 0

    def _phase(self, name: str) -> PhaseFigures:
        return self.phases.setdefault(name, PhaseFigures(name))

    def __enter__(self) -> Traffic:
        deadline = time.monotonic() + self.max_seconds
        for _ in range(self.clients):
            thread = threading.Thread(target=self._run, args=(deadline,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)

    @contextmanager
    def phase(self, name: str) -> Iterator[PhaseFigures]:
        """Requests started inside the block count for phase ``name``; then ``idle`` again."""
        with self._lock:
            self._current = self._phase(name)
        try:
            yield self._current
        finally:
            with self._lock:
                self._current = self._phase("idle")

    def _run(self, deadline: float) -> None:
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                if self._sent >= self.max_requests:
                    return
                self._sent += 1
                phase = self._current
            started = time.monotonic()
            reason, version = self._request()
            elapsed = time.monotonic() - started
            with self._lock:
                phase.requests += 1
                if reason is None:
                    phase.versions[version] += 1
                phase.longest = max(phase.longest, elapsed)
                if reason is not None:
                    phase.failures += 1
                    if len(phase.reasons) < 10:
                        phase.reasons.append(f"{reason} after {elapsed:.2f}s")

    def answers(self) -> bool:
        """One request now: answered 200 (to wait for the balancer before a test's load)."""
        reason, _ = self._request()
        return reason is None

    def _request(self) -> tuple[str | None, str]:
        """(None when answered 200, else why not; the app version that answered)."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.request("GET", "/", headers={"Connection": "close"})
            response = connection.getresponse()
            body = response.read().decode(errors="replace")
            version = body.split()[0].removeprefix("app=") if body.startswith("app=") else "?"
            return (None if response.status == 200 else f"HTTP {response.status}"), version
        except (OSError, http.client.HTTPException) as error:
            return f"{type(error).__name__}: {error}", "?"
        finally:
            connection.close()
