"""Apply's progress: start and finish lines with times, waiting lines, heartbeat, live display."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from converge.actions import Action, Phase
from converge.executor import ActionOutcome
from converge.health import ServiceHealth
from converge.render import ProgressReporter
from converge.render.progress import format_elapsed

WEB = Action(Phase.SERVICES, "update", "service", "web", "shop_web", "the image differs")
OLD = Action(Phase.PRUNE_SERVICES, "remove", "service", "old", "shop_old", "not in the spec")


class Clock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def health(
    running: int, updated: int, state: str | None = "updating", converged: bool = False
) -> ServiceHealth:
    return ServiceHealth("web", "shop_web", True, running, 3, state, converged, updated=updated)


def _reporter(clock: Clock, **options: object) -> tuple[ProgressReporter, io.StringIO]:
    buffer = io.StringIO()
    console = Console(file=buffer, highlight=False, soft_wrap=True, force_terminal=False)
    return ProgressReporter(console, clock=clock, **options), buffer  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0.25, "0.2s"), (9.96, "10s"), (12.4, "12s"), (65, "1m05s")]
)
def test_elapsed_times_read_as_people_write_them(seconds: float, shown: str) -> None:
    assert format_elapsed(seconds) == shown


def test_each_action_has_a_start_and_a_finish_line_with_its_time() -> None:
    clock = Clock()
    reporter, buffer = _reporter(clock)
    reporter.started(WEB)
    clock.now += 0.3
    reporter.finished(ActionOutcome("service.web", "update", "updated"))
    reporter.started(OLD)
    clock.now += 2
    reporter.finished(ActionOutcome("service.old", "remove", "failed", "in [bold]use"))
    assert buffer.getvalue().splitlines() == [
        "service.web: updating...",
        "service.web: updated in 0.3s",
        "service.old: removing...",
        "service.old: failed after 2.0s: in [bold]use",
    ]


def test_a_rolling_update_shows_updated_tasks_and_converged_only_when_judged() -> None:
    clock = Clock()
    reporter, buffer = _reporter(clock)
    reporter.started(WEB)
    reporter.finished(ActionOutcome("service.web", "update", "updated"))
    reporter.waiting([health(3, 0)])
    clock.now += 4
    reporter.waiting([health(3, 0)])  # unchanged within the heartbeat: not printed again
    reporter.waiting([health(3, 1)])
    clock.now += 8
    # Converged by its counts, but the executor has not judged it so yet: no word of it.
    reporter.waiting([health(3, 3, state="completed", converged=True)])
    clock.now += 5
    reporter.converged(health(3, 3, state="completed", converged=True))
    assert buffer.getvalue().splitlines() == [
        "service.web: updating...",
        "service.web: updated in 0.0s",
        "Waiting (0.0s): shop_web 3/3 running, 0/3 updated (updating)",
        "Waiting (4.0s): shop_web 3/3 running, 1/3 updated (updating)",
        "Waiting (12s): shop_web 3/3 running (completed)",
        "service.web: converged in 17s",
    ]
    assert "ok" not in buffer.getvalue().split()


def test_off_a_terminal_a_line_comes_at_least_every_heartbeat() -> None:
    clock = Clock()
    reporter, buffer = _reporter(clock)
    reporter.started(WEB)
    reporter.finished(ActionOutcome("service.web", "update", "updated"))
    reporter.waiting([health(3, 1)])
    for _ in range(25):  # 25 polls of 0.5s with nothing new: one repeat at 10s
        clock.now += 0.5
        reporter.waiting([health(3, 1)])
    lines = buffer.getvalue().splitlines()
    assert lines[2:] == [
        "Waiting (0.0s): shop_web 3/3 running, 1/3 updated (updating)",
        "Waiting (10s): shop_web 3/3 running, 1/3 updated (updating)",
    ]


def test_the_heartbeat_speaks_during_a_long_write_too() -> None:
    clock = Clock()
    reporter, buffer = _reporter(clock)
    reporter.started(OLD)
    clock.now += 9
    reporter.tick()
    clock.now += 1
    reporter.tick()
    reporter.tick()
    assert buffer.getvalue().splitlines() == [
        "service.old: removing...",
        "Still applying (10s): service.old removing",
    ]


def test_quiet_progress_prints_nothing() -> None:
    clock = Clock()
    reporter, buffer = _reporter(clock, quiet=True)
    reporter.started(WEB)
    reporter.finished(ActionOutcome("service.web", "update", "updated"))
    reporter.waiting([health(1, 1)])
    clock.now += 60
    reporter.tick()
    reporter.converged(health(3, 3, converged=True))
    reporter.stop()
    assert buffer.getvalue() == ""


def test_on_a_terminal_the_waiting_display_is_live_and_gone_at_the_end() -> None:
    clock = Clock()
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=80, color_system=None)
    with ProgressReporter(console, clock=clock) as reporter:
        assert reporter.live
        reporter.started(WEB)
        reporter.waiting([health(3, 1)])
        assert reporter._display is not None
        reporter.converged(health(3, 3, converged=True))
        assert reporter._display is None
        reporter.waiting([health(2, 2)])
    assert reporter._display is None
    output = buffer.getvalue()
    assert "service.web: updating..." in output
    assert "service.web: converged in 0.0s" in output
    assert "\x1b[1m" not in output  # no colour system: no bold either


def test_a_wait_for_hundreds_of_services_names_a_few_and_counts_the_rest() -> None:
    clock = Clock()
    reporter, buffer = _reporter(clock)
    waiting = [
        ServiceHealth(f"s{index:03}", f"big_s{index:03}", True, 1, 1, None, True, updated=1)
        for index in range(300)
    ]
    waiting[150] = ServiceHealth("s150", "big_s150", True, 0, 1, None, False)
    reporter.waiting(waiting)
    (line,) = buffer.getvalue().splitlines()
    assert line == (
        "Waiting (0.0s): 300 services, 299/300 tasks running or done: big_s150 0/1 running; "
        "big_s000 1/1 running; big_s001 1/1 running; big_s002 1/1 running; "
        "big_s003 1/1 running; big_s004 1/1 running; big_s005 1/1 running; "
        "big_s006 1/1 running; and 292 more"
    )
