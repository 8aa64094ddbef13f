"""The command line: parse options, call the library, render, choose the exit code.

No Docker import here; expected errors (``ConvergeError``) print one line and exit 1.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from converge.errors import ConvergeError, SpecError
from converge.loader import LoadedSpec, load_spec
from converge.planner import PlanOptions
from converge.render import (
    ProgressReporter,
    apply_json,
    apply_summary_line,
    failure_metrics,
    plan_json,
    plan_markdown,
    plan_text,
    report_json,
    report_markdown,
    report_metrics,
    report_text,
    status_json,
    status_text,
    write_metrics,
)
from converge.schema import spec_json_schema

app = typer.Typer(
    name="converge",
    help="Make a Docker Swarm cluster match a declarative YAML spec.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SpecFiles = Annotated[
    list[str] | None,
    typer.Argument(
        help="[FILE]... [STACK]: compose files (or use -c), and the stack's name (default: the "
        "file's x-converge.stack or name).",
        show_default=False,
    ),
]
ComposeFiles = Annotated[
    list[Path] | None,
    typer.Option(
        "--compose-file",
        "-c",
        help="A compose file, as docker stack deploy -c; several merge in order.",
        show_default=False,
    ),
]
EnvFiles = Annotated[
    list[Path] | None,
    typer.Option(
        "--env-file",
        help="Variables for interpolation (default: .env beside the first file).",
        show_default=False,
    ),
]


@dataclass(frozen=True)
class SpecArguments:
    """What the command line says to load: ``-c FILE... [STACK]`` or ``FILE... [STACK]``."""

    files: list[Path]
    stack: str | None
    env_files: list[Path] | None


def _arguments(
    arguments: list[str] | None, compose: list[Path] | None, env_files: list[Path] | None
) -> SpecArguments:
    """Positional arguments are files (an existing path, or a name ending in .yml, .yaml or
    .json) and at most one stack name, which a file name can never be."""
    files, stacks = list(compose or []), []
    for argument in arguments or []:
        if Path(argument).exists() or argument.endswith((".yml", ".yaml", ".json")):
            files.append(Path(argument))
        else:
            stacks.append(argument)
    if len(stacks) > 1:
        raise typer.BadParameter(
            f"one stack at a time, got {', '.join(stacks)} (a file that does not exist?)",
            param_hint="STACK",
        )
    if not files:
        raise typer.BadParameter(
            "no compose file given (-c docker-stack.yml)", param_hint="'-c' / FILE"
        )
    return SpecArguments(files, stacks[0] if stacks else None, env_files)


def _load(given: SpecArguments, require_stack: bool = True) -> LoadedSpec:
    loaded = load_spec(
        given.files, stack=given.stack, env_files=given.env_files, require_stack=require_stack
    )
    for warning in loaded.warnings:
        typer.echo(f"warning: {warning}", err=True)
    return loaded


def _summary(loaded: LoadedSpec) -> str:
    spec = loaded.spec
    counts = [
        (len(spec.nodes), "node"),
        (len(spec.stack_networks()), "network"),
        (len(spec.volumes), "volume"),
        (len(spec.services), "service"),
    ]
    parts = [f"{count} {noun}{'' if count == 1 else 's'}" for count, noun in counts]
    if spec.loadbalancer is not None:
        parts.append("a load balancer")
    named = f"stack {spec.stack}" if spec.stack else "no stack named"
    return f"{named}: " + ", ".join(parts)


@app.command()
def validate(
    files: SpecFiles = None,
    merge: Annotated[
        bool,
        typer.Option("--merge", help="Validate the files merged in order, as plan and apply do."),
    ] = False,
    compose: ComposeFiles = None,
    env_file: EnvFiles = None,
) -> None:
    """Check compose files without touching any swarm: exit 0 when valid, 1 when not.

    Each file is checked on its own, unless --merge.
    """
    given = _arguments(files, compose, env_file)
    groups = [given.files] if merge else [[file] for file in given.files]
    failed = False
    for group in groups:
        try:
            loaded = _load(SpecArguments(group, given.stack, given.env_files), require_stack=False)
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


ReportOutputOption = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="text, json or markdown.")
]


PruneOption = Annotated[
    bool, typer.Option("--prune", help="Also remove owned objects no longer in the spec.")
]
RebalanceOption = Annotated[
    bool, typer.Option("--rebalance", help="Redeploy services whose tasks sit unevenly.")
]


def _console() -> Console:
    # rich honours NO_COLOR and only colours a terminal.
    return Console(highlight=False, soft_wrap=True)


@app.command()
def plan(
    files: SpecFiles = None,
    compose: ComposeFiles = None,
    env_file: EnvFiles = None,
    output: ReportOutputOption = OutputFormat.text,
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
    prune: PruneOption = False,
    rebalance: RebalanceOption = False,
    host: HostOption = None,
) -> None:
    """Show what apply would change: observe the swarm, diff it against the spec, plan."""
    from converge.api import make_plan, save_plan
    from converge.engine import connect

    loaded = _load(_arguments(files, compose, env_file))
    with connect(host) as engine:
        result = make_plan(loaded, engine, PlanOptions(prune=prune, rebalance=rebalance))
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


YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for convergence, overall.")
]
LockTimeoutOption = Annotated[
    float,
    typer.Option(
        "--lock-timeout", help="Seconds to wait for another apply on the same stack to finish."
    ),
]
ApplyOutputOption = Annotated[OutputFormat, typer.Option("--output", "-o", help="text or json.")]


def _run_apply(
    given: SpecArguments,
    *,
    yes: bool,
    plan_options: PlanOptions,
    timeout: float,
    lock_timeout: float,
    concurrency: int,
    output: OutputFormat,
    host: str | None,
    verb: str = "Apply",
) -> None:
    """Call ``api.apply`` with the terminal's hooks, then report; for apply and destroy."""
    from converge.api import ApplyHooks, ApplyRequest, PlanResult, load_apply_input
    from converge.api import apply as apply_spec
    from converge.engine import connect
    from converge.executor import ApplyOptions, ApplyResult

    loaded, saved = load_apply_input(given.files, stack=given.stack, env_files=given.env_files)
    for warning in loaded.warnings:
        typer.echo(f"warning: {warning}", err=True)
    console = _console()
    as_json = output is OutputFormat.json
    messages = Console(stderr=True, highlight=False) if as_json else console

    def show(planned: PlanResult) -> None:
        if not as_json:
            console.print(plan_text(planned.plan, loaded))

    def confirm(planned: PlanResult) -> bool:
        if yes or saved is not None:
            return True
        if not sys.stdin.isatty():
            raise ConvergeError(
                f"refusing to {verb.lower()} without confirmation: not on a terminal, pass --yes"
            )
        return typer.confirm(f"{verb} these changes?", default=False)

    request = ApplyRequest(
        plan_options=plan_options,
        apply_options=ApplyOptions(timeout=timeout, concurrency=concurrency),
        lock_timeout=lock_timeout,
        saved_plan=saved,
    )
    with connect(host) as engine, ProgressReporter(messages) as reporter:
        hooks = ApplyHooks(
            plan_ready=show,
            confirm=confirm,
            lock_waiting=lambda holder: messages.print(
                f"waiting for the lock of stack {loaded.spec.stack}: "
                f"held by {escape(holder.describe())}"
            ),
            events=reporter.events(),
        )
        run = apply_spec(loaded, engine, request, hooks)
    result = run.result or ApplyResult(loaded.spec.stack, ())
    if run.status == "plan_errors":
        raise typer.Exit(1)
    if run.status == "cancelled":
        typer.echo(f"{verb} cancelled; nothing was changed.", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(apply_json(result, run.plan.plan, run.plan.loaded))
    elif run.status == "applied":
        console.print(apply_summary_line(run.plan.plan, verb))
    if not run.ok:
        typer.echo(f"error: {verb.lower()} failed: {result.error}", err=True)
        raise typer.Exit(1)


@app.command()
def apply(
    files: Annotated[
        list[str] | None,
        typer.Argument(
            help="[FILE]... [STACK]: compose files (or use -c), or one plan file saved by "
            "'converge plan --out'; and the stack's name.",
            show_default=False,
        ),
    ] = None,
    compose: ComposeFiles = None,
    env_file: EnvFiles = None,
    yes: YesOption = False,
    prune: PruneOption = False,
    rebalance: RebalanceOption = False,
    timeout: TimeoutOption = 600.0,
    lock_timeout: LockTimeoutOption = 0.0,
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Actions run at once within a phase.", min=1)
    ] = 8,
    output: ApplyOutputOption = OutputFormat.text,
    host: HostOption = None,
) -> None:
    """Make the swarm match the spec: plan, confirm, execute, wait until converged."""
    _run_apply(
        _arguments(files, compose, env_file),
        yes=yes,
        plan_options=PlanOptions(prune=prune, rebalance=rebalance),
        timeout=timeout,
        lock_timeout=lock_timeout,
        concurrency=concurrency,
        output=output,
        host=host,
    )


@app.command()
def destroy(
    files: SpecFiles = None,
    compose: ComposeFiles = None,
    env_file: EnvFiles = None,
    yes: YesOption = False,
    timeout: TimeoutOption = 600.0,
    lock_timeout: LockTimeoutOption = 0.0,
    output: ApplyOutputOption = OutputFormat.text,
    host: HostOption = None,
) -> None:
    """Remove every service and network the spec's stack owns (like docker stack rm).

    Nodes keep their labels and availability; volumes and their data are kept.
    """
    _run_apply(
        _arguments(files, compose, env_file),
        yes=yes,
        plan_options=PlanOptions(destroy=True),
        timeout=timeout,
        lock_timeout=lock_timeout,
        concurrency=8,
        output=output,
        host=host,
        verb="Destroy",
    )


@app.command()
def status(
    files: SpecFiles = None,
    compose: ComposeFiles = None,
    env_file: EnvFiles = None,
    output: ApplyOutputOption = OutputFormat.text,
    host: HostOption = None,
) -> None:
    """Per service: running/desired tasks, where they run, update state and last errors."""
    from converge.api import stack_status
    from converge.engine import connect

    loaded = _load(_arguments(files, compose, env_file))
    with connect(host) as engine:
        report = stack_status(loaded.spec, engine)
    if output is OutputFormat.json:
        typer.echo(status_json(report))
        return
    text = status_text(report)
    if text:  # a stack with nothing to show prints nothing, not an empty line
        _console().print(text)


@app.command()
def unlock(
    stack: Annotated[str, typer.Argument(help="The stack whose lock to remove.")],
    host: HostOption = None,
) -> None:
    """Remove a stack's apply lock left behind by an apply that died."""
    from converge.engine import connect
    from converge.lock import unlock as remove_lock

    with connect(host) as engine:
        holder = remove_lock(engine, stack)
    if holder is None:
        typer.echo(f"stack {stack} is not locked")
    else:
        typer.echo(f"removed the lock of stack {stack}, held by {holder.describe()}")


class FailOnOption(StrEnum):
    drift = "drift"
    health = "health"
    any = "any"


@app.command()
def drift(
    files: SpecFiles = None,
    compose: ComposeFiles = None,
    env_file: EnvFiles = None,
    output: ReportOutputOption = OutputFormat.text,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            "--metrics-file",
            help="Also write Prometheus metrics here, atomically (node_exporter textfile).",
        ),
    ] = None,
    fail_on: Annotated[
        FailOnOption,
        typer.Option("--fail-on", help="Exit 2 on: drift (sync), health, or any of them."),
    ] = FailOnOption.any,
    host: HostOption = None,
) -> None:
    """Is the swarm still what the spec says, and healthy? Never writes to the swarm.

    Exit 0: in sync and healthy; 2: drift or unhealthy (per --fail-on); 1: error.
    """
    import time
    from datetime import UTC, datetime

    from converge.api import check_drift
    from converge.engine import connect

    started, stack = datetime.now(UTC), None
    try:
        loaded = _load(_arguments(files, compose, env_file))
        stack = loaded.spec.stack
        with connect(host) as engine:
            report = check_drift(loaded, engine)
    except ConvergeError:
        if metrics_file is not None:
            elapsed = time.time() - started.timestamp()
            write_metrics(metrics_file, failure_metrics(stack, started, elapsed))
        raise
    if metrics_file is not None:
        write_metrics(metrics_file, report_metrics(report))
    if output is OutputFormat.json:
        typer.echo(report_json(report))
    elif output is OutputFormat.markdown:
        typer.echo(report_markdown(report))
    else:
        _console().print(report_text(report))
    raise typer.Exit(report.exit_code(fail_on.value))


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec format, for editors and CI checks."""
    typer.echo(json.dumps(spec_json_schema(), indent=2))


def _register_subcommands() -> None:
    from converge.lab.commands import lab_app
    from converge.lb.commands import lb_app

    app.add_typer(lab_app, name="lab")
    app.add_typer(lb_app, name="lb")


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
