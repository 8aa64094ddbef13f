"""Apply's progress on the terminal, from the executor's events. No decisions here.

On a terminal the waiting line is a live status line, updated in place; elsewhere (a pipe, CI
logs) each waiting line is printed once, when it changes.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.status import Status

from converge.actions import Action
from converge.masking import Masker

if TYPE_CHECKING:
    # Types only: the executor imports the engine (docker), which fast commands must not load.
    from converge.executor import ActionOutcome, ApplyEvents
    from converge.health import ServiceHealth

__all__ = ["ProgressReporter"]


class ProgressReporter:
    """Executor events -> ``console``; a context manager that stops the live line on exit.

    Args:
        quiet: print nothing.
        masker: masks the secrets of the spec being applied in every line (actions' changes,
            engine and task errors); None masks only by name (``converge.masking``).
    """

    def __init__(self, console: Console, quiet: bool = False, masker: Masker | None = None) -> None:
        self.console = console
        self.quiet = quiet
        self.masker = masker or Masker(None)
        self.last_line = ""
        self.status: Status | None = None

    def __enter__(self) -> ProgressReporter:
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
            action_started=self.started, action_finished=self.finished, waiting=self.waiting
        )

    def started(self, action: Action) -> None:
        """An action starts: its one-line description."""
        if not self.quiet:
            shown = self.masker.text(self.masker.action(action).description)
            # A multi-line value (a load balancer's config) is for the plan, not this line.
            first, *rest = shown.splitlines() or [""]
            self.console.print(f"{escape(first)}{' (...)' if rest else ''} ...")

    def finished(self, outcome: ActionOutcome) -> None:
        """An action ended: its outcome, and the engine's message when it failed."""
        if self.quiet:
            return
        if outcome.outcome == "failed":
            address, message = escape(outcome.address), escape(self.masker.text(outcome.message))
            self.console.print(f"[red]failed[/red] {address}: {message}")
        else:
            self.console.print(f"[green]{outcome.outcome}[/green] {escape(outcome.address)}")

    def waiting(self, progress: list[ServiceHealth]) -> None:
        """Services still converging: running/desired tasks and update state of each."""
        if self.quiet:
            return
        line = "waiting: " + ", ".join(
            f"{item.name} {item.running}/{item.desired}"
            + (f" ({item.update_state})" if item.update_state else "")
            + (" ok" if item.converged else "")
            for item in progress
        )
        if self.console.is_terminal:
            if self.status is None:
                self.status = self.console.status(escape(line))
                self.status.start()
            else:
                self.status.update(escape(line))
        elif line != self.last_line:
            self.console.print(escape(line))
        self.last_line = line

    def stop(self) -> None:
        """Stop the live status line, if one runs."""
        if self.status is not None:
            self.status.stop()
            self.status = None
