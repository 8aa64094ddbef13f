"""The command line: parse options, call the library, render, choose the exit code.

No Docker import here; expected errors (``ConvergeError``) print one line and exit 1.

Exit codes: 0 done and verified; 1 an error, a usage error included (click's 2 would read as
"changes" to a script); 2 changes (``plan --detailed-exitcode``), drift, or a stack that is not
healthy (``status``).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from typer._click.exceptions import ClickException  # click as typer vendors it (0.26 and on)
from typer.core import TyperArgument, TyperGroup, TyperOption

from converge.errors import ConvergeError, Interrupted, PlanError, SpecError
from converge.loader import LoadedSpec, load_spec
from converge.masking import Masker
from converge.planner import PlanOptions
from converge.render import (
    ProgressReporter,
    apply_json,
    apply_summary_line,
    error_json,
    failure_metrics,
    plan_errors_json,
    plan_from_document,
    plan_json,
    plan_markdown,
    plan_text,
    report_json,
    report_markdown,
    report_metrics,
    report_text,
    status_json,
    status_text,
    targeting_warning,
    write_metrics,
)
from converge.schema import spec_json_schema
from converge.sources import with_sources
from converge.units import parse_duration
from converge.version import converge_version

if TYPE_CHECKING:
    from typer._click import Context, Parameter

    from converge.api import PlanResult
    from converge.engine import Engine

__all__ = ["app", "main"]

_log = logging.getLogger("converge")


# ---------------------------------------------------------------------------------------------
# The terminal: colour and debug logging, set per invocation from flags and the environment


@dataclass
class _Terminal:
    color: bool = True


_terminal = _Terminal()


def _set_color(enabled: bool) -> None:
    _terminal.color = enabled
    # Typer draws help and usage errors with its own consoles; None is its "no colour" value,
    # and with it rich writes no escape at all (bold and dim included).
    if enabled and "typer.rich_utils" not in sys.modules:
        return  # never changed, so still "auto"; importing it costs a tenth of the start
    from typer import rich_utils

    rich_utils.COLOR_SYSTEM = "auto" if enabled else None


class _StderrHandler(logging.Handler):
    """Log records on the current stderr (looked up per record: tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(self.format(record), err=True)


def _set_debug(enabled: bool) -> None:
    for handler in [item for item in _log.handlers if isinstance(item, _StderrHandler)]:
        _log.removeHandler(handler)
    if enabled:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("Debug: %(message)s"))
        _log.addHandler(handler)
        _log.setLevel(logging.DEBUG)
    else:
        _log.setLevel(logging.NOTSET)


def _reset_terminal() -> None:
    # https://no-color.org: set and not empty.
    _set_color(not os.environ.get("NO_COLOR"))
    _set_debug(os.environ.get("CONVERGE_LOG", "").strip().lower() == "debug")


def _console(stderr: bool = False) -> Console:
    return Console(
        highlight=False,
        soft_wrap=True,
        stderr=stderr,
        color_system="auto" if _terminal.color else None,
    )


def _warn(message: str) -> None:
    typer.echo(f"Warning: {message}", err=True)


def _warn_planned(planned: PlanResult) -> None:
    """The plan's warnings (an image tag may be written with a secret variable): masked."""
    masker = Masker(planned.loaded, planned.plan)
    for warning in planned.warnings:
        _warn(masker.text(warning))


# ---------------------------------------------------------------------------------------------
# Help and usage errors as the docker CLI and terraform users expect them


class _Argument(TyperArgument):
    """An argument written ``FILES...`` in usage and help, without a Python type beside it."""

    def display_type_rich(self, ctx: Context) -> str | None:
        return None

    def get_usage_pieces(self, ctx: Context) -> list[str]:
        name = self.metavar or self.name.upper()
        return [name if self.required else f"[{name}]"]


def _tidy(params: Sequence[Parameter]) -> None:
    """Help without ``<bool>`` beside flags, ``{files}`` or ``<list[Path]>`` (idempotent)."""
    for param in params:
        if type(param) is TyperArgument:
            # Typer offers no class per parameter; an _Argument only overrides how it displays.
            param.__class__ = _Argument
            name = param.metavar or param.name.upper()
            # A metavar that says which part repeats (FILE... STACK) keeps its own shape.
            many = "..." if param.nargs != 1 and "..." not in name else ""
            param.metavar = name + many
        elif isinstance(param, TyperOption) and param.metavar is None:
            if param.is_flag:
                param.metavar = ""
            elif not _is_choice(param):
                param.metavar = param.name.upper()


def _is_choice(option: TyperOption) -> bool:
    descriptor = getattr(option, "type_descriptor", None)  # typer 0.29 and on
    if descriptor is not None:
        return bool(descriptor.is_choice)
    return hasattr(getattr(option, "type", None), "choices")  # before: click's Choice type


def _tidy_command(command: Any, ctx: Context) -> None:
    _tidy(command.get_params(ctx))
    for child in getattr(command, "commands", {}).values():
        _tidy_command(child, ctx)


class _Group(TyperGroup):
    """The root command: tidy help, usage errors that exit 1, colour and logging per run."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        params = super().get_params(ctx)
        _tidy(params)
        return params

    def get_command(self, ctx: Context, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _tidy_command(command, ctx)
        return command

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        _reset_terminal()
        try:
            code = super().main(
                args,
                prog_name,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        except ClickException as error:  # usage errors
            if type(error).__name__ != "NoArgsIsHelpError":  # the help was printed already
                show = getattr(error, "show", None)
                if show is not None:
                    show()
                else:
                    typer.echo(f"Error: {error.format_message()}", err=True)
            code = 1
        except typer.Abort:
            typer.echo("Aborted.", err=True)
            code = 1
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    name="converge",
    cls=_Group,
    help="Make a Docker Swarm cluster match a declarative YAML spec.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


# ---------------------------------------------------------------------------------------------
# Options shared by the commands


def _version_flag(value: bool) -> None:
    if value:
        typer.echo(f"converge {converge_version()}")
        raise typer.Exit()


def _no_color_flag(value: bool) -> None:
    if value:
        _set_color(False)


def _debug_flag(value: bool) -> None:
    if value:
        _set_debug(True)


NoColorOption = Annotated[
    bool,
    typer.Option(
        "--no-color",
        help="No colours or other terminal escapes (also: NO_COLOR=1).",
        callback=_no_color_flag,
        is_eager=True,
        expose_value=False,
    ),
]
DebugOption = Annotated[
    bool,
    typer.Option(
        "--debug",
        help="Log each Docker engine call on stderr (also: CONVERGE_LOG=debug).",
        callback=_debug_flag,
        is_eager=True,
        expose_value=False,
    ),
]


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print converge's version and exit.",
            callback=_version_flag,
            is_eager=True,
            expose_value=False,
        ),
    ] = False,
    no_color: NoColorOption = False,
    debug: DebugOption = False,
) -> None:
    """Make a Docker Swarm cluster match a declarative YAML spec."""


SpecFiles = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="FILE... STACK",
        help="Compose files (or use -c), and the stack's name (default: the file's "
        "x-converge.stack or name).",
        show_default=False,
    ),
]
ComposeFiles = Annotated[
    list[Path] | None,
    typer.Option(
        "--compose-file",
        "-c",
        metavar="FILE",
        help="A compose file, as docker stack deploy -c; several merge in order.",
        show_default=False,
    ),
]
EnvFiles = Annotated[
    list[Path] | None,
    typer.Option(
        "--env-file",
        metavar="FILE",
        help="Variables for interpolation (default: .env beside the first file).",
        show_default=False,
    ),
]

HostOption = Annotated[
    str | None,
    typer.Option(
        "--host",
        "-H",
        metavar="ADDRESS",
        help="Docker engine address (default: DOCKER_HOST, as the docker CLI).",
        show_default=False,
    ),
]
ContextOption = Annotated[
    str | None,
    typer.Option(
        "--context",
        metavar="NAME",
        help="Docker context to use (default: DOCKER_CONTEXT, then 'docker context use').",
        show_default=False,
    ),
]


def _duration(value: str | float) -> float:
    """A duration option in seconds: ``10m``, ``30s``, ``1m30s``, or a plain number of seconds."""
    try:
        return parse_duration(value) / 1e9
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


TimeoutOption = Annotated[
    float,
    typer.Option(
        "--timeout",
        parser=_duration,
        metavar="DURATION",
        envvar="CONVERGE_TIMEOUT",
        show_envvar=True,
        show_default=False,
        help="How long to wait for convergence, overall: 10m (the default), 90s, 1h; a plain "
        "number is seconds.",
    ),
]
LockTimeoutOption = Annotated[
    float,
    typer.Option(
        "--lock-timeout",
        parser=_duration,
        metavar="DURATION",
        envvar="CONVERGE_LOCK_TIMEOUT",
        show_envvar=True,
        show_default=False,
        help="How long to wait for another apply on the same stack to finish: 0s (the "
        "default: fail at once), 30s, 5m.",
    ),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")]
PruneOption = Annotated[
    bool, typer.Option("--prune", help="Also remove owned objects no longer in the spec.")
]
RebalanceOption = Annotated[
    bool, typer.Option("--rebalance", help="Redeploy services whose tasks sit unevenly.")
]
AdoptOption = Annotated[
    bool,
    typer.Option(
        "--adopt",
        help="Take over the spec's services made outside any stack (docker service create): "
        "add the stack's ownership label, restarting no task.",
    ),
]
TakeOverOption = Annotated[
    bool,
    typer.Option(
        "--take-over",
        help="Make this spec the cluster's owner (its nodes) when another cluster spec owns it.",
    ),
]
RotateOption = Annotated[
    list[str] | None,
    typer.Option(
        "--rotate",
        metavar="SECRET",
        help="Give this secret a new version although its current one cannot be verified "
        "(made without converge's fingerprint); repeatable.",
    ),
]


class ResolveImage(StrEnum):
    always = "always"
    changed = "changed"
    never = "never"


ResolveImageOption = Annotated[
    ResolveImage | None,
    typer.Option(
        "--resolve-image",
        help="Pin each tag to the digest its registry gives: always (the default, or the "
        "spec's x-converge.resolve_image), changed (new services and changed images only), "
        "never; as docker stack deploy.",
        show_default=False,
    ),
]
WithRegistryAuthOption = Annotated[
    bool,
    typer.Option(
        "--with-registry-auth",
        help="Send the docker client's registry credentials (docker login) with every "
        "service create and update, so that nodes can pull private images.",
    ),
]
RerunOption = Annotated[
    list[str] | None,
    typer.Option(
        "--rerun",
        metavar="JOB",
        help="Run this job again although its spec did not change (a job runs on creation "
        "and when its spec changes); repeatable.",
        show_default=False,
    ),
]
TargetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--target",
        metavar="ADDRESS",
        help="Limit to this object and what it needs (service.web, network.backend, "
        "node.worker1); repeatable. For exceptional situations only.",
        show_default=False,
    ),
]


class PlanFormat(StrEnum):
    """What ``plan``, ``show`` and ``drift`` render."""

    text = "text"
    json = "json"
    markdown = "markdown"


class WaitFor(StrEnum):
    """How long ``apply`` waits once written (``converge.executor.ApplyOptions.wait``)."""

    stable = "stable"
    running = "running"
    none = "none"


WaitOption = Annotated[
    WaitFor,
    typer.Option(
        "--wait",
        envvar="CONVERGE_WAIT",
        show_envvar=True,
        help="stable (the default): every service converged and held its update monitor "
        "window (5s unless update_config.monitor says otherwise); running: every task of the "
        "current spec runs, no window held; none: do not wait (exit 0 then only means the "
        "engine accepted every write).",
    ),
]


class ResultFormat(StrEnum):
    """What ``apply``, ``destroy`` and ``status`` render: a result has no Markdown form."""

    text = "text"
    json = "json"


PlanOutputOption = Annotated[
    PlanFormat, typer.Option("--output", "-o", help="text, json or markdown.")
]
ResultOutputOption = Annotated[ResultFormat, typer.Option("--output", "-o", help="text or json.")]


# ---------------------------------------------------------------------------------------------
# Helpers of the commands


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
        _warn(warning)
    return loaded


def _connect(host: str | None, context: str | None) -> Engine:
    from converge.engine import connect

    engine = connect(host, context=context)
    _log.debug("Docker engine at %s", engine.address)
    return engine


@contextmanager
def _json_errors(as_json: bool) -> Iterator[None]:
    """With ``-o json``, an error also prints its JSON document on stdout (exit 1 follows)."""
    try:
        yield
    except ConvergeError as error:
        if as_json:
            typer.echo(error_json(error))
        raise


def _warn_targeting(targets: Sequence[str]) -> None:
    if targets:
        _warn(targeting_warning(targets))


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


# ---------------------------------------------------------------------------------------------
# Commands


@app.command()
def validate(
    files: SpecFiles = None,
    merge: Annotated[
        bool,
        typer.Option("--merge", help="Validate the files merged in order, as plan and apply do."),
    ] = False,
    compose: ComposeFiles = None,
    env_file: EnvFiles = None,
    no_color: NoColorOption = False,
) -> None:
    """Check compose files without touching any swarm: exit 0 when valid, 1 when not.

    Files given with -c merge in order, as plan and apply merge them; files given as
    arguments are checked each on its own, unless --merge.
    """
    given = _arguments(files, compose, env_file)
    groups = [given.files] if merge or compose else [[file] for file in given.files]
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


@app.command()
def plan(
    files: SpecFiles = None,
    compose: ComposeFiles = None,
    env_file: EnvFiles = None,
    output: PlanOutputOption = PlanFormat.text,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="FILE", help="Save the plan to this file for 'converge apply'."
        ),
    ] = None,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode", help="Exit 0 when nothing changes, 2 when something does."
        ),
    ] = False,
    prune: PruneOption = False,
    rebalance: RebalanceOption = False,
    adopt: AdoptOption = False,
    take_over: TakeOverOption = False,
    rotate: RotateOption = None,
    target: TargetOption = None,
    resolve_image: ResolveImageOption = None,
    with_registry_auth: WithRegistryAuthOption = False,
    rerun: RerunOption = None,
    host: HostOption = None,
    context: ContextOption = None,
    no_color: NoColorOption = False,
    debug: DebugOption = False,
) -> None:
    """Show what apply would change: observe the swarm, diff it against the spec, plan."""
    from converge.api import make_plan, save_plan

    as_json = output is PlanFormat.json
    options = PlanOptions(
        prune=prune,
        rebalance=rebalance,
        targets=tuple(target or ()),
        adopt=adopt,
        take_over=take_over,
        rotate=tuple(rotate or ()),
        resolve_image=resolve_image.value if resolve_image else None,
        with_registry_auth=with_registry_auth,
        rerun=tuple(rerun or ()),
    )
    with _json_errors(as_json):
        # The secrets' sources are read first: a failing one stops here, and every output
        # masks their values.
        loaded = with_sources(_load(_arguments(files, compose, env_file)))
        with _connect(host, context) as engine:
            result = make_plan(loaded, engine, options)
    _warn_targeting(options.targets)
    _warn_planned(result)
    if as_json and result.plan.errors:
        typer.echo(plan_errors_json(result.plan, loaded))
    elif as_json:
        typer.echo(plan_json(result.plan, loaded))
    elif output is PlanFormat.markdown:
        typer.echo(plan_markdown(result.plan, loaded))
    else:
        _console().print(plan_text(result.plan, loaded))
    if result.plan.errors:
        typer.echo("Error: the plan has errors; nothing can be applied", err=True)
        raise typer.Exit(1)
    if out is not None:
        save_plan(result, out)
        typer.echo(f"Saved the plan to {out}; apply it with: converge apply {out}", err=True)
    if detailed_exitcode and result.plan.has_changes:
        raise typer.Exit(2)


@app.command()
def show(
    plan_file: Annotated[
        Path,
        typer.Argument(
            metavar="PLAN", help="A plan saved by 'converge plan --out'.", show_default=False
        ),
    ],
    output: PlanOutputOption = PlanFormat.text,
    no_color: NoColorOption = False,
) -> None:
    """Show a saved plan, as 'converge plan' showed it (like terraform show)."""
    from converge.api import check_saved_plan_version, read_saved_plan, saved_plan_options

    with _json_errors(output is PlanFormat.json):
        document = read_saved_plan(plan_file)
        saved = plan_from_document(document)
    try:
        check_saved_plan_version(document, plan_file)
    except PlanError as error:
        _warn(f"{error} (showing it all the same)")
    _warn_targeting(saved_plan_options(document).targets)
    if output is PlanFormat.json:
        typer.echo(json.dumps(document, indent=2))
    elif output is PlanFormat.markdown:
        typer.echo(plan_markdown(saved))
    else:
        _console().print(plan_text(saved))


ConcurrencyOption = Annotated[
    int,
    typer.Option(
        "--concurrency",
        metavar="N",
        min=1,
        envvar="CONVERGE_CONCURRENCY",
        show_envvar=True,
        help="Actions run at once within a phase.",
    ),
]


def _run_apply(
    given: SpecArguments,
    *,
    yes: bool,
    plan_options: PlanOptions,
    timeout: float,
    lock_timeout: float,
    concurrency: int,
    output: ResultFormat,
    host: str | None,
    context: str | None,
    verb: str = "Apply",
    wait: WaitFor = WaitFor.stable,
) -> None:
    """Call ``api.apply`` with the terminal's hooks, then report; for apply and destroy."""
    from converge.api import ApplyHooks, ApplyRequest, apply_plan_options, load_apply_input
    from converge.api import apply as apply_spec
    from converge.executor import ApplyOptions, ApplyResult

    as_json = output is ResultFormat.json
    console = _console()
    messages = _console(stderr=True) if as_json else console
    with _json_errors(as_json):
        loaded, saved = load_apply_input(given.files, stack=given.stack, env_files=given.env_files)
        if not plan_options.destroy:  # a destroy needs no secret's value
            loaded = with_sources(loaded)
        request = ApplyRequest(
            plan_options=plan_options,
            apply_options=ApplyOptions(timeout=timeout, concurrency=concurrency, wait=wait.value),
            lock_timeout=lock_timeout,
            saved_plan=saved,
        )
        # Before connecting: a saved plan given with options is refused at once.
        plan_options = apply_plan_options(request)
        for warning in loaded.warnings:
            _warn(warning)
        _warn_targeting(plan_options.targets)

        def show(planned: PlanResult) -> None:
            _warn_planned(planned)
            if not as_json:
                console.print(plan_text(planned.plan, loaded))

        def confirm(planned: PlanResult) -> bool:
            if yes or saved is not None:
                return True
            if not sys.stdin.isatty():
                raise ConvergeError(
                    f"refusing to {verb.lower()} without confirmation: not on a terminal, "
                    "pass --yes"
                )
            return typer.confirm(f"{verb} these changes?", default=False)

        live = messages.is_terminal and _terminal.color
        masker = Masker(loaded)
        with (
            _connect(host, context) as engine,
            ProgressReporter(messages, live=live, masker=masker) as reporter,
        ):
            hooks = ApplyHooks(
                plan_ready=show,
                confirm=confirm,
                lock_waiting=lambda holder: messages.print(
                    f"Waiting for the lock of stack {escape(loaded.spec.stack)}: "
                    f"held by {escape(holder.describe())}"
                ),
                events=reporter.events(),
            )
            run = apply_spec(loaded, engine, request, hooks)
    result = run.result or ApplyResult(loaded.spec.stack, ())
    if run.status == "plan_errors":
        if as_json:
            typer.echo(plan_errors_json(run.plan.plan, loaded))
        typer.echo(f"Error: the plan has errors; nothing was changed ({verb.lower()})", err=True)
        raise typer.Exit(1)
    if run.status == "cancelled":
        typer.echo(f"{verb} cancelled; nothing was changed.", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(apply_json(result, run.plan.plan, run.plan.loaded))
    elif run.status == "applied":
        console.print(apply_summary_line(run.plan.plan, verb))
    if not run.ok:
        error = Masker(loaded, run.plan.plan).text(str(result.error))
        typer.echo(f"Error: {verb.lower()} failed: {error}", err=True)
        raise typer.Exit(1)


@app.command()
def apply(
    files: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="FILE... STACK",
            help="Compose files (or use -c), or one plan file saved by 'converge plan --out'; "
            "and the stack's name.",
            show_default=False,
        ),
    ] = None,
    compose: ComposeFiles = None,
    env_file: EnvFiles = None,
    yes: YesOption = False,
    prune: PruneOption = False,
    rebalance: RebalanceOption = False,
    adopt: AdoptOption = False,
    take_over: TakeOverOption = False,
    rotate: RotateOption = None,
    target: TargetOption = None,
    resolve_image: ResolveImageOption = None,
    with_registry_auth: WithRegistryAuthOption = False,
    rerun: RerunOption = None,
    timeout: TimeoutOption = 600.0,
    lock_timeout: LockTimeoutOption = 0.0,
    concurrency: ConcurrencyOption = 8,
    wait: WaitOption = WaitFor.stable,
    output: ResultOutputOption = ResultFormat.text,
    host: HostOption = None,
    context: ContextOption = None,
    no_color: NoColorOption = False,
    debug: DebugOption = False,
) -> None:
    """Make the swarm match the spec: plan, confirm, execute, wait until converged."""
    _run_apply(
        _arguments(files, compose, env_file),
        yes=yes,
        plan_options=PlanOptions(
            prune=prune,
            rebalance=rebalance,
            targets=tuple(target or ()),
            adopt=adopt,
            take_over=take_over,
            rotate=tuple(rotate or ()),
            resolve_image=resolve_image.value if resolve_image else None,
            with_registry_auth=with_registry_auth,
            rerun=tuple(rerun or ()),
        ),
        timeout=timeout,
        lock_timeout=lock_timeout,
        concurrency=concurrency,
        output=output,
        host=host,
        context=context,
        wait=wait,
    )


@app.command()
def destroy(
    files: SpecFiles = None,
    compose: ComposeFiles = None,
    env_file: EnvFiles = None,
    yes: YesOption = False,
    timeout: TimeoutOption = 600.0,
    lock_timeout: LockTimeoutOption = 0.0,
    output: ResultOutputOption = ResultFormat.text,
    host: HostOption = None,
    context: ContextOption = None,
    no_color: NoColorOption = False,
    debug: DebugOption = False,
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
        context=context,
        verb="Destroy",
    )


@app.command()
def status(
    files: SpecFiles = None,
    compose: ComposeFiles = None,
    env_file: EnvFiles = None,
    output: ResultOutputOption = ResultFormat.text,
    host: HostOption = None,
    context: ContextOption = None,
    no_color: NoColorOption = False,
    debug: DebugOption = False,
) -> None:
    """Per service: running/desired tasks, where they run, update state and last errors.

    Exit 0: every service of the spec runs converged; 2: one does not, or is missing, or a
    rollout is in progress; 1: error.
    """
    from converge.api import stack_settled, stack_status

    with _json_errors(output is ResultFormat.json):
        loaded = _load(_arguments(files, compose, env_file))
        with _connect(host, context) as engine:
            report = stack_status(loaded.spec, engine)
    if output is ResultFormat.json:
        typer.echo(status_json(report, loaded))
    else:
        text = status_text(report, loaded)
        if text:  # a stack with nothing to show prints nothing, not an empty line
            _console().print(text)
    raise typer.Exit(0 if stack_settled(report) else 2)


@app.command()
def export(
    stack: Annotated[str, typer.Argument(help="The stack to export.", show_default=False)],
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE", help="Write the file here (default: stdout)."),
    ] = None,
    host: HostOption = None,
    context: ContextOption = None,
    debug: DebugOption = False,
) -> None:
    """Write a running stack as a compose file that plans no change against it."""
    from converge.api import export_stack
    from converge.files import atomic_write

    with _connect(host, context) as engine:
        exported = export_stack(stack, engine)
    for note in exported.fill_in:
        _warn(note)
    if out is None:
        typer.echo(exported.text, nl=False)
    else:
        atomic_write(out, exported.text, mode=0o644)


@app.command()
def unlock(
    stack: Annotated[str, typer.Argument(help="The stack whose lock to remove.")],
    lock_id: Annotated[
        str | None,
        typer.Argument(
            help="The lock's id, as the lock message shows it (without it: show the lock).",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Remove the lock even if its holder may still be running."),
    ] = False,
    host: HostOption = None,
    context: ContextOption = None,
    debug: DebugOption = False,
) -> None:
    """Remove a stack's apply lock left behind by an apply that died (as terraform force-unlock).

    The lock's id is required; a live holder's lock is kept unless --force.
    """
    from converge.api import unlock_stack

    with _connect(host, context) as engine:
        removed = unlock_stack(engine, stack, lock_id, force=force)
    if removed is None:
        typer.echo(f"stack {stack} is not locked")
    else:
        typer.echo(f"removed the lock of stack {stack}, held by {removed.describe()}")


class FailOnOption(StrEnum):
    drift = "drift"
    health = "health"
    any = "any"


@app.command()
def drift(
    files: SpecFiles = None,
    compose: ComposeFiles = None,
    env_file: EnvFiles = None,
    output: PlanOutputOption = PlanFormat.text,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            "--metrics-file",
            metavar="FILE",
            envvar="CONVERGE_METRICS_FILE",
            show_envvar=True,
            help="Also write Prometheus metrics here, atomically (node_exporter textfile).",
        ),
    ] = None,
    fail_on: Annotated[
        FailOnOption,
        typer.Option("--fail-on", help="Exit 2 on: drift (sync), health, or any of them."),
    ] = FailOnOption.any,
    resolve_image: Annotated[
        ResolveImage,
        typer.Option(
            "--resolve-image",
            help="always: also report tags re-pushed since they were deployed (asks each "
            "image's registry); never (the default) compares the tags only.",
        ),
    ] = ResolveImage.never,
    with_registry_auth: WithRegistryAuthOption = False,
    host: HostOption = None,
    context: ContextOption = None,
    no_color: NoColorOption = False,
    debug: DebugOption = False,
) -> None:
    """Is the swarm still what the spec says, and healthy? Never writes to the swarm.

    Exit 0: in sync and healthy; 2: drift or unhealthy (per --fail-on); 1: error.
    """
    import time
    from datetime import UTC, datetime

    from converge.api import check_drift

    started, stack = datetime.now(UTC), None
    try:
        with _json_errors(output is PlanFormat.json):
            loaded = _load(_arguments(files, compose, env_file))
            stack = loaded.spec.stack
            loaded = with_sources(loaded)
            with _connect(host, context) as engine:
                report = check_drift(
                    loaded,
                    engine,
                    resolve_image=resolve_image.value,
                    with_registry_auth=with_registry_auth,
                )
    except ConvergeError:
        if metrics_file is not None:
            elapsed = time.time() - started.timestamp()
            write_metrics(metrics_file, failure_metrics(stack, started, elapsed))
        raise
    if metrics_file is not None:
        write_metrics(metrics_file, report_metrics(report))
    if output is PlanFormat.json:
        typer.echo(report_json(report))
    elif output is PlanFormat.markdown:
        typer.echo(report_markdown(report))
    else:
        _console().print(report_text(report))
    raise typer.Exit(report.exit_code(fail_on.value))


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec format, for editors and CI checks."""
    typer.echo(json.dumps(spec_json_schema(), indent=2))


rollout_app = typer.Typer(
    help="Blue-green and canary rollouts in progress: where they stand, finish or undo them.",
    no_args_is_help=True,
    add_completion=False,
)

RolloutArguments = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="FILE... [STACK] SERVICE",
        help="Compose files (or use -c), the stack's name (default: from the file), and the "
        "service (its key in the spec).",
        show_default=False,
    ),
]


def _rollout_arguments(
    arguments: list[str] | None, compose: list[Path] | None, env_files: list[Path] | None
) -> tuple[SpecArguments, str]:
    """The last positional argument that is not a file names the service."""
    given = list(arguments or [])
    for index in range(len(given) - 1, -1, -1):
        argument = given[index]
        if not (Path(argument).exists() or argument.endswith((".yml", ".yaml", ".json"))):
            rest = given[:index] + given[index + 1 :]
            return _arguments(rest, compose, env_files), argument
    raise typer.BadParameter("name the service (converge rollout status -c FILE SERVICE)")


@rollout_app.command("status")
def rollout_status(
    files: RolloutArguments = None,
    compose: ComposeFiles = None,
    env_file: EnvFiles = None,
    output: ResultOutputOption = ResultFormat.text,
    host: HostOption = None,
    context: ContextOption = None,
    no_color: NoColorOption = False,
    debug: DebugOption = False,
) -> None:
    """Where a service's rollout stands: the new version, its traffic share, its figures.

    Exit 0: no rollout in progress and nothing to roll out; 2: one is in progress or pending;
    1: error.
    """
    from converge.api import rollout_state
    from converge.render.rollout import rollout_status_json, rollout_status_text

    given, service = _rollout_arguments(files, compose, env_file)
    with _json_errors(output is ResultFormat.json):
        loaded = _load(given)
        with _connect(host, context) as engine:
            state = rollout_state(loaded, engine, service)
    if output is ResultFormat.json:
        typer.echo(rollout_status_json(state))
    else:
        _console().print(escape(rollout_status_text(state)))
    raise typer.Exit(2 if state.in_progress or state.pending else 0)


def _rollout_write(
    what: Literal["promote", "abort"],
    files: list[str] | None,
    compose: list[Path] | None,
    env_file: list[Path] | None,
    timeout: float,
    lock_timeout: float,
    host: str | None,
    context: str | None,
) -> None:
    from converge.api import rollout_command

    given, service = _rollout_arguments(files, compose, env_file)
    loaded = _load(given)
    console = _console()
    masker = Masker(loaded)  # engine and task errors may quote the spec's values
    try:
        with _connect(host, context) as engine:
            outcome = rollout_command(
                loaded,
                engine,
                service,
                what,
                timeout=timeout,
                lock_timeout=lock_timeout,
                progress=lambda line: console.print(escape(f"Rollout: {masker.text(line)}")),
            )
    except ConvergeError as error:
        # Masked with the spec, as apply's errors are (main() has no spec to mask with).
        typer.echo(f"Error: {masker.text(str(error))}", err=True)
        raise typer.Exit(1) from None
    console.print(f"service.{escape(service)}: [green]{outcome}[/green]")


@rollout_app.command("promote")
def rollout_promote(
    files: RolloutArguments = None,
    compose: ComposeFiles = None,
    env_file: EnvFiles = None,
    timeout: TimeoutOption = 600.0,
    lock_timeout: LockTimeoutOption = 0.0,
    host: HostOption = None,
    context: ContextOption = None,
    no_color: NoColorOption = False,
    debug: DebugOption = False,
) -> None:
    """Finish a rollout now: all traffic to the new version, which then becomes the service."""
    _rollout_write("promote", files, compose, env_file, timeout, lock_timeout, host, context)


@rollout_app.command("abort")
def rollout_abort(
    files: RolloutArguments = None,
    compose: ComposeFiles = None,
    env_file: EnvFiles = None,
    timeout: TimeoutOption = 600.0,
    lock_timeout: LockTimeoutOption = 0.0,
    host: HostOption = None,
    context: ContextOption = None,
    no_color: NoColorOption = False,
    debug: DebugOption = False,
) -> None:
    """Undo a rollout: all traffic back to the running version, the new one removed."""
    _rollout_write("abort", files, compose, env_file, timeout, lock_timeout, host, context)


lb_app = typer.Typer(
    help="The external HAProxy load balancer.", no_args_is_help=True, add_completion=False
)


@lb_app.command("render")
def lb_render(
    files: SpecFiles = None,
    compose: ComposeFiles = None,
    env_file: EnvFiles = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Do not read the swarm: ingress servers are the spec's node names, tasks "
            "backends have no servers.",
        ),
    ] = False,
    host: HostOption = None,
    context: ContextOption = None,
    debug: DebugOption = False,
) -> None:
    """Print the haproxy.cfg that apply would write, from the spec and the swarm as it is."""
    from converge.api import loadbalancer_config

    loaded = _load(_arguments(files, compose, env_file))
    if offline:
        typer.echo(loadbalancer_config(loaded), nl=False)
        return
    with _connect(host, context) as engine:
        typer.echo(loadbalancer_config(loaded, engine), nl=False)


def _register_subcommands() -> None:
    from converge.lab.commands import lab_app

    app.add_typer(lab_app, name="lab")
    app.add_typer(lb_app, name="lb")
    app.add_typer(rollout_app, name="rollout")


def _app_for(args: Sequence[str]) -> typer.Typer:
    """``app`` narrowed to the command ``args`` name, when they name one.

    Typer makes a click command of every registered command before it parses (12 ms of a
    0.3 s ``converge plan``), and a command line runs one. The root's options are all flags,
    so the first argument not starting with ``-`` is the command's name. Without one, with a
    name that is no command (click's did-you-mean needs them all) or while a shell completes
    (``_CONVERGE_COMPLETE``), it is the whole app.
    """
    name = next((arg for arg in args if not arg.startswith("-")), None)
    if name is None or any(key.endswith("_COMPLETE") for key in os.environ):
        return app
    commands = [info for info in app.registered_commands if _command_name(info) == name]
    groups = [info for info in app.registered_groups if info.name == name]
    if not commands and not groups:
        return app
    narrowed = copy.copy(app)
    narrowed.registered_commands = commands
    narrowed.registered_groups = groups
    return narrowed


def _command_name(info: typer.models.CommandInfo) -> str | None:
    """The name typer gives a registered command: its own, or its function's."""
    if info.name or info.callback is None:
        return info.name
    return typer.main.get_command_name(info.callback.__name__)


def _stop_on_signals() -> None:
    """SIGINT and SIGTERM (what CI runners and systemd send) both stop the command by raising
    ``Interrupted`` in the main thread, so that locks are released on the way out; a second
    signal while stopping exits at once."""
    received: list[int] = []

    def handler(number: int, frame: object) -> None:
        if received:
            name = signal.Signals(number).name
            typer.echo(
                f"Interrupted again ({name}): exiting at once; a stack lock may be left "
                "behind (converge unlock STACK shows it)",
                err=True,
            )
            os._exit(128 + number)
        received.append(number)
        raise Interrupted(number)

    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, handler)


def _interrupted_message(interruption: Interrupted) -> str:
    message = f"Interrupted: {interruption.signal_name}"
    if interruption.locks_released:
        stacks = ", ".join(interruption.locks_released)
        message += f"; the lock of stack {stacks} was released"
    for kept in interruption.locks_kept:
        message += f"; the lock of {kept}"
    return message


def main() -> None:
    """Entry point of the ``converge`` console script."""
    _register_subcommands()
    _stop_on_signals()
    try:
        _app_for(sys.argv[1:])()
    except Interrupted as interruption:
        typer.echo(_interrupted_message(interruption), err=True)
        sys.exit(interruption.exit_code)
    except SpecError as error:
        typer.echo(str(error), err=True)
        sys.exit(1)
    except ConvergeError as error:
        # No spec is at hand here: mask by rule (URL passwords) what an engine error may carry.
        typer.echo(f"Error: {Masker(None).text(str(error))}", err=True)
        sys.exit(1)
