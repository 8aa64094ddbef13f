"""The command line: parse options, call the library, render, choose the exit code.

No Docker import here; expected errors (``ConvergeError``) print one line and exit 1.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from converge.errors import ConvergeError

app = typer.Typer(
    name="converge",
    help="Make a Docker Swarm cluster match a declarative YAML spec.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_subcommands() -> None:
    from converge.lab.commands import lab_app

    app.add_typer(lab_app, name="lab")


def fail(message: str) -> NoReturn:
    """Print an expected error on stderr and exit 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def main() -> None:
    """Entry point of the ``converge`` console script."""
    _register_subcommands()
    try:
        app()
    except ConvergeError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(1)
