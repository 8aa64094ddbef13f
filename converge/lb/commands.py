"""``converge lb``: the external load balancer's commands (no Docker import at module level)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from converge.cli import DebugOption, _connect
from converge.errors import ConvergeError
from converge.lb.config import render_config
from converge.loader import load_spec

__all__ = ["lb_app"]

lb_app = typer.Typer(
    help="The external HAProxy load balancer.", no_args_is_help=True, add_completion=False
)


@lb_app.command("render")
def render(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Spec files, merged in order as plan and apply do.", show_default=False
        ),
    ],
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Do not read the swarm: ingress servers are the spec's node names, tasks "
            "backends have no servers.",
        ),
    ] = False,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            "-H",
            metavar="ADDRESS",
            help="Docker engine address (default: DOCKER_HOST, as the docker CLI).",
            show_default=False,
        ),
    ] = None,
    context: Annotated[
        str | None,
        typer.Option(
            "--context",
            metavar="NAME",
            help="Docker context to use (default: DOCKER_CONTEXT, then 'docker context use').",
            show_default=False,
        ),
    ] = None,
    debug: DebugOption = False,
) -> None:
    """Print the haproxy.cfg that apply would write, from the spec and the swarm as it is."""
    loaded = load_spec(files)
    for warning in loaded.warnings:
        typer.echo(f"Warning: {warning}", err=True)
    spec = loaded.spec
    if spec.loadbalancer is None:
        raise ConvergeError(f"{', '.join(map(str, files))}: the spec declares no loadbalancer")
    observed = None
    if not offline:
        from converge.observe import observe

        with _connect(host, context) as engine:
            observed = observe(engine, spec)
    typer.echo(render_config(spec, observed), nl=False)
