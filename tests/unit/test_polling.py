"""The shared poll loop and atomic write, on a fake clock (no real sleeping)."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest
from fake_engine import FakeClock

from converge.files import atomic_file, atomic_write
from converge.polling import Backoff, PollTimeoutError, backoff_delays, poll_until


def test_poll_returns_the_first_value_that_is_not_none_or_false() -> None:
    answers = iter([None, False, 0, "late"])
    clock = FakeClock()
    assert poll_until(lambda: next(answers), timeout=10, clock=clock) == 0
    assert len(clock.sleeps) == 2


def test_poll_times_out_after_checking_once_more_at_the_deadline() -> None:
    clock = FakeClock()
    calls: list[float] = []

    def probe() -> None:
        calls.append(clock.now)

    with pytest.raises(PollTimeoutError):
        poll_until(probe, timeout=3, clock=clock)
    assert calls[-1] == pytest.approx(3.0)
    assert sum(clock.sleeps) == pytest.approx(3.0)


def test_backoff_grows_to_its_maximum_with_bounded_jitter() -> None:
    delays = backoff_delays(Backoff(initial=0.1, maximum=1.0, jitter=0.2), random.Random(7))
    taken = [next(delays) for _ in range(20)]
    assert taken[0] == pytest.approx(0.1, rel=0.21)
    assert all(0.0 < delay <= 1.2 for delay in taken)
    assert taken[-1] == pytest.approx(1.0, rel=0.21)
    assert len(set(taken)) > 1


def test_atomic_write_replaces_whole_and_sets_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "out.prom"
    target.write_text("old\n")
    atomic_write(target, "new\n", mode=0o644)
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert [path.name for path in tmp_path.iterdir()] == ["out.prom"]


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "missing-dir" / "x", "data")
    assert list(tmp_path.iterdir()) == []


def test_an_atomic_file_interrupted_while_written_leaves_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "image.tar"
    target.write_bytes(b"old")

    def write_half() -> None:
        with atomic_file(target) as out:
            out.write(b"half of the new one")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_half()
    assert target.read_bytes() == b"old"
    assert [path.name for path in tmp_path.iterdir()] == ["image.tar"]
    with atomic_file(target) as out:
        out.write(b"new")
    assert target.read_bytes() == b"new"
