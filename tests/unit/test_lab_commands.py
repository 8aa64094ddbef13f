"""The lab CLI's rendering (no lab needed)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from converge.lab.commands import render_status
from converge.lab.lab import LabStatus, NodeStatus


def _node(name: str, running: bool, state: str | None) -> NodeStatus:
    return NodeStatus(
        name=name,
        address="10.213.0.10",
        socket=Path(f"/lab/nodes/{name}/docker.sock"),
        running=running,
        pid=42 if running else None,
        link_up=True,
        state=state,
        availability="active" if state else None,
        role="manager" if name == "manager" else "worker",
        node_id="abc",
    )


def test_status_of_a_lab_that_is_not_set_up() -> None:
    status = LabStatus(directory=Path("/lab"), subnet="10.213.0.0/24", exists=False, nodes=())
    assert render_status(status) == ("lab is not set up (/lab); start it with `converge lab up`")


def test_status_table() -> None:
    status = LabStatus(
        directory=Path("/lab"),
        subnet="10.213.0.0/24",
        exists=True,
        nodes=(_node("manager", True, "ready"), _node("worker1", False, "down")),
    )
    assert not status.ready
    lines = render_status(status).splitlines()
    assert lines[0].split() == [
        "NODE",
        "ADDRESS",
        "DAEMON",
        "LINK",
        "SWARM",
        "AVAILABILITY",
        "ROLE",
    ]
    assert lines[1].split() == [
        "manager",
        "10.213.0.10",
        "running",
        "(pid",
        "42)",
        "up",
        "ready",
        "active",
        "manager",
    ]
    assert lines[2].split() == [
        "worker1",
        "10.213.0.10",
        "stopped",
        "up",
        "down",
        "active",
        "worker",
    ]
    assert lines[-1] == "lab not ready: 2 nodes, subnet 10.213.0.0/24, directory /lab"


def test_status_of_a_lab_that_is_not_set_up_exits_2() -> None:
    # As `converge status`: 0 ready, 2 not (a script can wait on it), 1 an error.
    directory = f"/tmp/converge-no-lab-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [sys.executable, "-m", "converge", "lab", "status"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CONVERGE_LAB_DIR": directory},
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == f"lab is not set up ({directory}); start it with `converge lab up`\n"


def test_env_of_a_lab_that_is_not_set_up_is_one_line_and_exit_1() -> None:
    directory = f"/tmp/converge-no-lab-{uuid.uuid4().hex[:8]}"  # short: it holds sockets
    result = subprocess.run(
        [sys.executable, "-m", "converge", "lab", "env"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CONVERGE_LAB_DIR": directory},
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (f"Error: the lab is not set up ({directory}): run `converge lab up`\n")
