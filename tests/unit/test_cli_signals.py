"""SIGINT and SIGTERM stop a command cleanly: locks released, a message, exit 128 + signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import cast

import pytest
from fake_engine import FakeSwarm

from converge import cli
from converge.engine import Engine
from converge.lock import stack_lock


@pytest.fixture
def restored_handlers() -> Iterator[None]:
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


def run_main(monkeypatch: pytest.MonkeyPatch, command: Callable[[], None]) -> int:
    monkeypatch.setattr(cli, "_app_for", lambda args: command)
    monkeypatch.setattr(cli, "_register_subcommands", lambda: None)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    return cast(int, exited.value.code)


@pytest.mark.parametrize(("number", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
@pytest.mark.usefixtures("restored_handlers")
def test_a_signal_during_an_apply_releases_the_lock_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], number: int, code: int
) -> None:
    swarm = FakeSwarm.recorded("empty")

    def apply_that_gets_a_signal() -> None:
        with stack_lock(cast(Engine, swarm), "prod", wait=0, hold_for=60):
            os.kill(os.getpid(), number)
            raise AssertionError("the signal did not stop the command")

    assert run_main(monkeypatch, apply_that_gets_a_signal) == code
    name = signal.Signals(number).name
    assert capsys.readouterr().err == f"Interrupted: {name}; the lock of stack prod was released\n"
    assert swarm.configs() == []


@pytest.mark.usefixtures("restored_handlers")
def test_a_signal_outside_any_lock_still_says_what_stopped_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(monkeypatch, lambda: os.kill(os.getpid(), signal.SIGTERM)) == 143
    assert capsys.readouterr().err == "Interrupted: SIGTERM\n"


def test_a_second_signal_while_stopping_exits_at_once() -> None:
    script = textwrap.dedent(
        """
        import os, signal, time
        from converge import cli

        def command():
            try:
                os.kill(os.getpid(), signal.SIGINT)
            finally:  # cleaning up takes long, and the user presses Ctrl-C again
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(30)

        cli._app_for = lambda args: command
        cli._register_subcommands = lambda: None
        cli.main()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == 143
    assert done.stderr.startswith("Interrupted again (SIGTERM): exiting at once")
