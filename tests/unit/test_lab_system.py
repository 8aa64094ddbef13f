"""Host-facing helpers that can be checked without root: tool checks, cgroups, waiting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fake_engine import FakeClock

from converge.errors import LabError
from converge.lab import system


def test_missing_dockerd_says_exactly_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system, "which", lambda tool: None if tool in ("dockerd", "runc") else "/x")
    with pytest.raises(LabError) as raised:
        system.check_tools(system.REQUIRED_TOOLS)
    assert str(raised.value) == "dockerd, runc not found: install with `apt-get install docker.io`"


def test_present_tools_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system, "which", lambda tool: f"/usr/bin/{tool}")
    system.check_tools(system.REQUIRED_TOOLS)


def test_cgroups_v2_layout_and_pids(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    cgroups = system.Cgroups(tmp_path)
    assert not cgroups.v1
    cgroups.create("lab/node/daemon")
    (tmp_path / "lab/node/daemon/cgroup.procs").write_text(f"{os.getpid()}\n999999999\n")
    (tmp_path / "lab/node/containers").mkdir()
    (tmp_path / "lab/node/containers/cgroup.procs").write_text("")
    assert cgroups.procs_file("lab/node/daemon") == tmp_path / "lab/node/daemon/cgroup.procs"
    assert cgroups.pids("lab") == [os.getpid()]  # the dead pid is not counted
    assert cgroups.pids("other") == []
    assert cgroups.exists("lab") == [tmp_path / "lab"]


def test_cgroups_v1_tracks_in_the_freezer_hierarchy(tmp_path: Path) -> None:
    (tmp_path / "freezer").mkdir()
    (tmp_path / "freezer/cgroup.procs").write_text("")
    cgroups = system.Cgroups(tmp_path)
    assert cgroups.v1
    assert cgroups.procs_file("lab/n/daemon") == tmp_path / "freezer/lab/n/daemon/cgroup.procs"


def test_no_cgroups_is_a_lab_error(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="no freezer cgroup hierarchy"):
        system.Cgroups(tmp_path)


def test_wait_until_returns_the_value_or_times_out() -> None:
    values = iter([None, False, "done"])
    assert system.wait_until(lambda: next(values), timeout=5, what="x", interval=0.001) == "done"
    with pytest.raises(LabError, match=r"timed out after 0\.01s waiting for never"):
        system.wait_until(lambda: None, timeout=0.01, what="never", interval=0.001)


def test_wait_until_backs_off_to_its_maximum_interval_and_names_what_it_waited_for() -> None:
    clock = FakeClock()
    with pytest.raises(LabError, match=r"^timed out after 30s waiting for node x's dockerd$"):
        system.wait_until(
            lambda: False, timeout=30, what="node x's dockerd", max_interval=0.5, clock=clock
        )
    assert clock.sleeps[0] < 0.1
    assert max(clock.sleeps) <= 0.5 * 1.2
    assert sum(clock.sleeps) == pytest.approx(30)


def test_run_failure_is_one_line() -> None:
    with pytest.raises(LabError) as raised:
        system.run(["sh", "-c", "echo first >&2; echo last words >&2; exit 3"])
    assert (
        str(raised.value)
        == "`sh -c echo first >&2; echo last words >&2; exit 3` failed: last words"
    )
