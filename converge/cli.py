"""The command line: parse options, call the library, render, choose the exit code.

No Docker import here; expected errors (``ConvergeError``) print one line and exit 1.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from converge.errors import ConvergeError, SpecError
from converge.loader import LoadedSpec, load_spec
from converge.planner import PlanOptions
from converge.render import plan_json, plan_markdown, plan_text
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


class OutputFormat(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


HostOption = Annotated[
    str | None,
    typer.Option(
        "--host",
        "-H",
        help="Docker engine address (default: DOCKER_HOST, as the docker CLI).",
        show_default=False,
    ),
]


def _console() -> Console:
    # rich honours NO_COLOR and only colours a terminal.
    return Console(highlight=False, soft_wrap=True)


@app.command()
def plan(
    files: SpecFiles,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="text, json or markdown.")
    ] = OutputFormat.text,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Save the plan to this file for 'converge apply' to use."),
    ] = None,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode", help="Exit 0 when nothing changes, 2 when something does."
        ),
    ] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="Also remove owned objects no longer in the spec.")
    ] = False,
    rebalance: Annotated[
        bool,
        typer.Option("--rebalance", help="Redeploy services whose tasks sit unevenly."),
    ] = False,
    host: HostOption = None,
) -> None:
    """Show what apply would change: observe the swarm, diff it against the spec, plan."""
    from converge.api import make_plan, save_plan
    from converge.engine import connect

    loaded = _load(files)
    engine = connect(host)
    try:
        result = make_plan(loaded, engine, PlanOptions(prune=prune, rebalance=rebalance))
    finally:
        engine.close()
    if output is OutputFormat.json:
        typer.echo(plan_json(result.plan, loaded))
    elif output is OutputFormat.markdown:
        typer.echo(plan_markdown(result.plan, loaded))
    else:
        _console().print(plan_text(result.plan, loaded))
    if out is not None:
        save_plan(result, out)
        typer.echo(f"Saved the plan to {out}; apply it with: converge apply {out}", err=True)
    if result.plan.errors:
        raise typer.Exit(1)
    if detailed_exitcode and result.plan.has_changes:
        raise typer.Exit(2)


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
