"""``converge lab ...``: thin commands over :mod:`converge.lab`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from converge.errors import LabError
from converge.lab.layout import DEFAULT_WORKERS, MANAGER

if TYPE_CHECKING:
    from converge.lab.lab import Lab, LabStatus

__all__ = ["lab_app"]

lab_app = typer.Typer(
    name="lab",
    help="A throwaway multi-node Docker Swarm on this machine (needs root).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _lab() -> Lab:
    # converge.lab.lab imports docker: only the lab commands pay for it, not `converge --help`.
    from converge.lab.lab import Lab

    return Lab()


def render_status(status: LabStatus) -> str:
    """The lab's status as a table (no decisions here)."""
    if not status.exists:
        return f"lab is not set up ({status.directory}); start it with `converge lab up`"
    header = ("NODE", "ADDRESS", "DAEMON", "LINK", "SWARM", "AVAILABILITY", "ROLE")
    rows = [header]
    for node in status.nodes:
        rows.append(
            (
                node.name,
                node.address,
                f"running (pid {node.pid})" if node.running else "stopped",
                "up" if node.link_up else "down",
                node.state or "-",
                node.availability or "-",
                node.role or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    summary = "ready" if status.ready else "not ready"
    lines.append(
        f"lab {summary}: {len(status.nodes)} nodes, subnet {status.subnet}, "
        f"directory {status.directory}"
    )
    return "\n".join(lines)


@lab_app.command("up")
def up_command(
    workers: int = typer.Option(
        DEFAULT_WORKERS, "--workers", "-w", help="Worker nodes: dbhost, worker1, worker2, ..."
    ),
    images: bool = typer.Option(True, "--images/--no-images", help="Build and load test images."),
    join: bool = typer.Option(
        True,
        "--join/--no-join",
        help="Init the swarm and join the nodes; --no-join starts the daemons without a swarm "
        "(for a cluster spec to make it).",
    ),
) -> None:
    """Start the lab swarm (harmless if it already runs)."""
    status = _lab().up(workers, images=images, join=join, progress=_say)
    typer.echo(render_status(status))


@lab_app.command("down")
def down_command() -> None:
    """Remove the lab: processes, namespaces, links, firewall rules, cgroups and data."""
    if not _lab().down(progress=_say):
        _say("lab was not set up; nothing to remove")


@lab_app.command("status")
def status_command() -> None:
    """Show each node's daemon, link and swarm state.

    Exit 0: the lab is ready; 2: it is not set up or not ready (as ``converge status``).
    """
    status = _lab().status()
    typer.echo(render_status(status))
    if not status.ready:
        raise typer.Exit(2)


@lab_app.command("env")
def env_command(
    node: str = typer.Option(MANAGER, "--node", "-n", help="Node whose engine to point at."),
) -> None:
    """Print `export DOCKER_HOST=...` for the manager (or --node); use with eval.

    How to log in to the lab's registry goes to stderr.
    """
    lab = _lab()
    if not lab.exists():
        raise LabError(f"the lab is not set up ({lab.config.directory}): run `converge lab up`")
    typer.echo(lab.env(node))
    # On stderr: `eval "$(converge lab env)"` takes stdout only, and the operator reads this.
    _say(lab.registry_login_hint())
