"""Apply's progress, from the executor's events. No decisions here.

Each action gets a start line (``service.web: updating...``) and a finish line with its time
(``service.web: updated in 0.3s``); each service the executor waited for gets a line when the
executor judged it converged (``service.web: converged in 34s``), and only then. While services
converge, a terminal shows a live display of each one's running and updated tasks; elsewhere (a
pipe, CI logs) a waiting line is printed when it changes, and a line with the elapsed time at
least every ``heartbeat`` seconds whatever happens, so a log never falls silent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.text import Text

from converge.actions import Action
from converge.health import SETTLING_STATES
from converge.masking import Masker

if TYPE_CHECKING:
    from rich.live import Live  # with rich.spinner, imported when a wait is shown live

    # Types only: the executor imports the engine (docker), which fast commands must not load.
    from converge.executor import ActionOutcome, ApplyEvents
    from converge.health import ServiceHealth

__all__ = ["ProgressReporter", "format_elapsed"]

_STARTING = {
    "create": "creating",
    "update": "updating",
    "scale": "scaling",
    "replace": "replacing",
    "remove": "removing",
    "force": "redeploying",
    "adopt": "adopting",
    "rollout": "rolling out",
}


def format_elapsed(seconds: float) -> str:
    """``0.3s``, ``12s``, ``1m05s``: tenths only where they matter."""
    if round(seconds, 1) < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    return f"{whole // 60}m{whole % 60:02d}s"


def _service_state(item: ServiceHealth) -> str:
    """``2/3 running, 1/3 updated (updating)``: updated tasks show while an update moves."""
    if item.job:
        return f"{item.completed}/{item.desired} completed" + (
            f", {item.running} running" if item.running else ""
        )
    text = f"{item.running}/{item.desired} running"
    if item.updated != item.running or item.update_state in SETTLING_STATES:
        text += f", {item.updated}/{item.desired} updated"
    if item.update_state:
        text += f" ({item.update_state.replace('_', ' ')})"
    return text


LISTED = 8
"""Services named in a waiting line: a stack of hundreds gets a count, not a line of each."""


def _listed(waiting: list[ServiceHealth]) -> tuple[list[ServiceHealth], int]:
    """The services to name (those not yet at their count first) and how many are left out."""
    if len(waiting) <= LISTED:
        return waiting, 0
    behind = sorted(waiting, key=lambda item: item.converged)  # stable: in the executor's order
    return behind[:LISTED], len(waiting) - LISTED


def _totals(waiting: list[ServiceHealth]) -> str:
    """``1000 services, 212/1000 tasks running`` (a job's completed tasks count as done)."""
    done = sum(item.completed if item.job else item.running for item in waiting)
    desired = sum(item.desired for item in waiting)
    return f"{len(waiting)} services, {done}/{desired} tasks running or done"


class ProgressReporter:
    """Executor events -> ``console``; a context manager that stops the live display on exit.

    Args:
        live: a live display while services converge (default: when ``console`` is a terminal).
        quiet: print nothing.
        clock: monotonic seconds (replaced in tests).
        heartbeat: without a live display, the longest silence while applying, in seconds.
        masker: masks the secrets of the spec being applied in every line (engine and task
            errors); None masks only by name (``converge.masking``).
    """

    def __init__(
        self,
        console: Console,
        *,
        live: bool | None = None,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
        heartbeat: float = 10.0,
        masker: Masker | None = None,
    ) -> None:
        self.console = console
        self.live = console.is_terminal if live is None else live
        self.quiet = quiet
        self.clock = clock
        self.heartbeat = heartbeat
        self._lock = threading.RLock()
        self._begun = clock()
        self._last_print = self._begun
        self._started: dict[str, float] = {}
        self._in_flight: dict[str, str] = {}
        self._wait_started = self._begun
        self._waiting: list[ServiceHealth] = []
        self._last_line = ""
        self._display: Live | None = None
        self._stopped = threading.Event()
        self._ticker: threading.Thread | None = None
        self.masker = masker or Masker(None)

    def __enter__(self) -> ProgressReporter:
        if not self.live and not self.quiet:
            self._ticker = threading.Thread(target=self._tick_until_stopped, daemon=True)
            self._ticker.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def events(self) -> ApplyEvents:
        """The callbacks to hand to the executor."""
        from converge.executor import ApplyEvents

        return ApplyEvents(
            action_started=self.started,
            action_finished=self.finished,
            waiting=self.waiting,
            service_converged=self.converged,
            rollout_progress=self.rollout,
        )

    def _print(self, markup: str) -> None:
        self.console.print(markup)
        self._last_print = self.clock()

    def started(self, action: Action) -> None:
        """An action's write begins."""
        with self._lock:
            now = self.clock()
            self._started[action.address] = now
            self._in_flight[action.address] = _STARTING[action.kind]
            if not self.quiet:
                self._print(f"{escape(action.address)}: {_STARTING[action.kind]}...")

    def finished(self, outcome: ActionOutcome) -> None:
        """An action's write ended: its outcome and time, the engine's message when it failed."""
        with self._lock:
            self._in_flight.pop(outcome.address, None)
            took = format_elapsed(self.clock() - self._started.get(outcome.address, self._begun))
            if self.quiet:
                return
            address = escape(outcome.address)
            if outcome.outcome == "failed":
                message = escape(self.masker.text(outcome.message))
                self._print(f"{address}: [red]failed[/red] after {took}: {message}")
            elif outcome.outcome == "skipped":
                message = escape(self.masker.text(outcome.message))
                self._print(f"{address}: [yellow]skipped[/yellow]: {message}")
            else:
                self._print(f"{address}: [green]{outcome.outcome}[/green] in {took}")

    def waiting(self, progress: list[ServiceHealth]) -> None:
        """Services still converging: running, updated and desired tasks of each."""
        with self._lock:
            now = self.clock()
            if not self._waiting:  # a new wait (the executor waits after each phase)
                self._wait_started = now
            self._waiting = list(progress)
            if self.quiet:
                return
            if self.live:
                self._show_live()
                return
            line = self._waiting_line()
            if line != self._last_line or now - self._last_print >= self.heartbeat:
                self._print(escape(f"Waiting ({format_elapsed(now - self._wait_started)}): {line}"))
            self._last_line = line

    def converged(self, health: ServiceHealth) -> None:
        """The executor judged a service converged: say so, with the time since its start."""
        with self._lock:
            address = f"service.{health.key}"
            since = self._started.get(address, self._wait_started)
            took = format_elapsed(self.clock() - since)
            # A wait ends with every service of it converged: the next one starts afresh.
            self._waiting, self._last_line = [], ""
            self._stop_live()
            if not self.quiet:
                self._print(f"{escape(address)}: [green]converged[/green] in {took}")

    def rollout(self, line: str) -> None:
        """A blue-green or canary rollout moved on."""
        with self._lock:
            self._stop_live()
            if not self.quiet:
                self._print(escape(f"Rollout: {line}"))

    def tick(self) -> None:
        """Without a live display: a line with the elapsed time after ``heartbeat`` of silence."""
        with self._lock:
            now = self.clock()
            if self.quiet or self.live or now - self._last_print < self.heartbeat:
                return
            if self._waiting:
                elapsed = format_elapsed(now - self._wait_started)
                self._print(escape(f"Waiting ({elapsed}): {self._waiting_line()}"))
            elif self._in_flight:
                doing = ", ".join(
                    f"{address} {verb}" for address, verb in sorted(self._in_flight.items())
                )
                self._print(
                    escape(f"Still applying ({format_elapsed(now - self._begun)}): {doing}")
                )

    def stop(self) -> None:
        """Stop the live display and the heartbeat, if they run."""
        self._stopped.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join(timeout=5)
        with self._lock:
            self._stop_live()

    def _tick_until_stopped(self) -> None:
        while not self._stopped.wait(1.0):
            self.tick()

    def _waiting_line(self) -> str:
        shown, more = _listed(self._waiting)
        line = "; ".join(f"{item.name} {_service_state(item)}" for item in shown)
        return f"{_totals(self._waiting)}: {line}; and {more} more" if more else line

    def _live_view(self) -> RenderableType:
        from rich.spinner import Spinner  # only a live terminal waits with one: not for plan

        elapsed = format_elapsed(self.clock() - self._wait_started)
        rows: list[RenderableType] = [Spinner("dots", Text(f"Waiting for services ({elapsed})"))]
        shown, more = _listed(self._waiting)
        rows.extend(Text(f"  {item.name}  {_service_state(item)}") for item in shown)
        if more:
            rows.append(Text(f"  and {more} more ({_totals(self._waiting)})"))
        return Group(*rows)

    def _show_live(self) -> None:
        if self._display is None:
            from rich.live import Live

            self._display = Live(
                self._live_view(), console=self.console, transient=True, refresh_per_second=4
            )
            self._display.start()
        else:
            self._display.update(self._live_view())

    def _stop_live(self) -> None:
        if self._display is not None:
            self._display.stop()
            self._display = None
