"""The command line: parse options, call the library, render, choose the exit code.

No Docker import here; expected errors (``ConvergeError``) print one line and exit 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from converge.errors import ConvergeError, SpecError
from converge.loader import LoadedSpec, load_spec
from converge.schema import spec_json_schema

app = typer.Typer(
    name="converge",
    help="Make a Docker Swarm cluster match a declarative YAML spec.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SpecFiles = Annotated[
    list[Path],
    typer.Argument(
        help="Spec files; several are merged in order, later ones winning.",
        show_default=False,
    ),
]


def _load(files: list[Path]) -> LoadedSpec:
    loaded = load_spec(files)
    for warning in loaded.warnings:
        typer.echo(f"warning: {warning}", err=True)
    return loaded


def _summary(loaded: LoadedSpec) -> str:
    spec = loaded.spec
    counts = [
        (len(spec.nodes), "node"),
        (len(spec.networks), "network"),
        (len(spec.volumes), "volume"),
        (len(spec.services), "service"),
    ]
    parts = [f"{count} {noun}{'' if count == 1 else 's'}" for count, noun in counts]
    if spec.loadbalancer is not None:
        parts.append("a load balancer")
    return f"stack {spec.stack}: " + ", ".join(parts)


@app.command()
def validate(
    files: SpecFiles,
    each: Annotated[
        bool, typer.Option("--each", help="Validate every file on its own instead of merging.")
    ] = False,
) -> None:
    """Check spec files without touching any swarm: exit 0 when valid, 1 when not."""
    groups = [[file] for file in files] if each else [files]
    failed = False
    for group in groups:
        try:
            loaded = _load(group)
        except SpecError as error:
            typer.echo(str(error), err=True)
            failed = True
            continue
        names = " + ".join(str(file) for file in group)
        typer.echo(f"{names}: valid ({_summary(loaded)})")
    if failed:
        raise typer.Exit(1)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec format, for editors and CI checks."""
    typer.echo(json.dumps(spec_json_schema(), indent=2))


def _register_subcommands() -> None:
    from converge.lab.commands import lab_app

    app.add_typer(lab_app, name="lab")


def main() -> None:
    """Entry point of the ``converge`` console script."""
    _register_subcommands()
    try:
        app()
    except SpecError as error:
        typer.echo(str(error), err=True)
        sys.exit(1)
    except ConvergeError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(1)
