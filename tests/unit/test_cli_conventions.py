"""The command line's conventions: version, help, usage errors, colour, debug, variables.

Commands that reach a swarm run on the fake swarm (``converge.engine.connect`` replaced), so
what is checked here is the command line itself: its options, exit codes and output.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from fake_engine import FakeClock, FakeSwarm
from test_planner import BASE_SPEC, ENVIRON, PLANS
from typer.testing import CliRunner

from converge import cli
from converge.api import ApplyRequest, apply, load_apply_input, make_plan, save_plan
from converge.errors import EngineError, EngineUnavailableError
from converge.executor import ApplyOptions
from converge.version import DISTRIBUTION, converge_version

ROOT = Path(__file__).resolve().parents[2]
SPEC = str(BASE_SPEC)
BAD_SPEC = str(ROOT / "tests" / "fixtures" / "specs" / "bad" / "several_problems.yml")
FAST = ApplyOptions(clock=FakeClock(), poll_interval=0.01)


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    for name in ("NO_COLOR", "FORCE_COLOR", "CONVERGE_LOG", "CONVERGE_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module", autouse=True)
def _subcommands() -> None:
    # main() registers lab and lb; the tests run the app itself, registered once.
    if not any(group.name == "lab" for group in cli.app.registered_groups):
        cli._register_subcommands()


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    # As main() runs it: the app narrowed to the command named, if any.
    return CliRunner().invoke(cli._app_for(args), list(args), env=env)


def on_swarm(monkeypatch: pytest.MonkeyPatch, swarm: FakeSwarm) -> list[tuple[Any, Any]]:
    """Commands connect to ``swarm``; returns the (host, context) of each connect."""
    connects: list[tuple[Any, Any]] = []

    def connect(host: str | None = None, timeout: float = 30.0, *, context: Any = None) -> Any:
        connects.append((host, context))
        return swarm

    monkeypatch.setattr("converge.engine.connect", connect)
    return connects


def applied_swarm() -> FakeSwarm:
    swarm = FakeSwarm.recorded("empty")
    loaded, _ = load_apply_input([BASE_SPEC], environ=ENVIRON)
    assert apply(loaded, swarm, ApplyRequest(apply_options=FAST)).ok  # type: ignore[arg-type]
    return swarm


# -- version ------------------------------------------------------------------------------------


def test_version_prints_converge_and_the_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"converge {converge_version()}\n"
    assert converge_version() == metadata.version(DISTRIBUTION)


# -- help ----------------------------------------------------------------------------------------

COMMANDS = [
    [],
    ["validate"],
    ["plan"],
    ["show"],
    ["apply"],
    ["destroy"],
    ["status"],
    ["unlock"],
    ["drift"],
    ["schema"],
    ["lab"],
    ["lab", "up"],
    ["lab", "env"],
    ["lb"],
    ["lb", "render"],
    ["lab", "down"],
    ["lab", "status"],
    ["export"],
    ["rollout"],
    ["rollout", "status"],
    ["rollout", "promote"],
    ["rollout", "abort"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda words: " ".join(words) or "converge")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_reads_as_an_operator_expects(command: list[str], flag: str) -> None:
    result = run(*command, flag)
    assert result.exit_code == 0, result.output
    assert "Usage: converge" in result.stdout
    for stray in ("<bool>", "{", "<list", "<str>", "<float>", "<int>", "<path>"):
        assert stray not in result.stdout, f"{stray} in the help of {command}"


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        (["plan"], "converge plan [OPTIONS] [FILE... STACK]"),
        (["apply"], "converge apply [OPTIONS] [FILE... STACK]"),
        (["rollout", "status"], "converge rollout status [OPTIONS] [FILE... [STACK] SERVICE]"),
        (["lb", "render"], "converge lb render [OPTIONS] [FILE... STACK]"),
        (["unlock"], "converge unlock [OPTIONS] STACK [LOCK_ID]"),
    ],
    ids=["plan", "apply", "rollout status", "lb render", "unlock"],
)
def test_usage_repeats_only_what_repeats(command: list[str], usage: str) -> None:
    # One stack, one service: a metavar that already says FILE... gets no "..." after it.
    assert f"Usage: {usage}" in " ".join(run(*command, "--help").stdout.split())


def test_connecting_commands_take_host_and_context() -> None:
    for command in (["plan"], ["apply"], ["destroy"], ["status"], ["drift"], ["unlock"]):
        text = run(*command, "--help").stdout
        assert "--context" in text, command
        assert "--host" in text, command
    assert "--context" in run("lb", "render", "--help").stdout


def test_shell_completion_is_typers_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without a shell named, typer asks the process tree which shell runs it: under `sh` (CI's
    # scripts/test.sh) it answers "Shell sh not supported". Typer's own tests name the shell so.
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    result = run("--show-completion", "bash")
    assert result.exit_code == 0, (result.output, repr(result.exception))
    assert "_CONVERGE_COMPLETE" in result.stdout


# -- usage errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "--bogus", SPEC],  # unknown option
        ["plan"],  # missing argument
        ["status", SPEC, "-o", "markdown"],  # a format status cannot render
        ["apply", SPEC, "-o", "markdown"],
        ["destroy", SPEC, "-o", "markdown"],
        ["rollout", "status", SPEC, "web", "-o", "markdown"],
        ["show", SPEC, "-o", "yaml"],
        ["drift", SPEC, "--fail-on", "sometimes"],
        ["lab", "up", "--workers", "many"],
        ["apply", SPEC, "--timeout", "soon"],  # a bad value
        ["nosuchcommand"],
    ],
    ids=lambda args: " ".join(args[:1] + args[2:]),
)
def test_a_usage_error_exits_1_not_2(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 1
    assert "Error: " in result.stderr
    assert result.stdout == ""


def test_no_command_shows_the_help_and_exits_1() -> None:
    result = run()
    assert result.exit_code == 1
    assert "Usage: converge" in result.stdout


def _names(app: Any) -> list[str | None]:
    commands = [info.callback.__name__ for info in app.registered_commands]
    return commands + [info.name for info in app.registered_groups]


def test_a_command_line_builds_only_the_command_it_names() -> None:
    assert _names(cli._app_for(["--no-color", "plan", "spec.yml"])) == ["plan"]
    assert _names(cli._app_for(["rollout", "status", "shop"])) == ["rollout"]
    assert _names(cli._app_for(["lb", "render", "--help"])) == ["lb"]
    # The whole app where the name is not a command (click suggests one), where none is given
    # (the help lists them all), and while a shell completes.
    for args in (["plna"], ["--help"], [], ["--version"]):
        assert cli._app_for(args) is cli.app
    assert "Did you mean 'plan'?" in run("plna").stderr
    listed = run("--help").stdout
    assert "rollout" in listed
    assert "destroy" in listed


def test_a_shell_completing_gets_every_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_CONVERGE_COMPLETE", "complete_bash")
    assert cli._app_for(["plan"]) is cli.app


def test_the_console_script_exits_1_on_a_usage_error() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "converge", "plan", "--bogus"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert completed.returncode == 1
    assert "Error: No such option: --bogus" in completed.stderr


# -- durations and environment variables ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"), [("10m", 600.0), ("1m30s", 90.0), ("90", 90.0), ("0.5", 0.5)]
)
def test_durations_take_units_and_plain_seconds(value: str, seconds: float) -> None:
    assert cli._duration(value) == seconds


def test_variables_set_what_ci_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(cli, "_run_apply", lambda files, **options: seen.update(options))
    env = {
        "CONVERGE_TIMEOUT": "15m",
        "CONVERGE_LOCK_TIMEOUT": "30s",
        "CONVERGE_CONCURRENCY": "3",
        "CONVERGE_WAIT": "running",
    }
    assert run("apply", SPEC, env=env).exit_code == 0
    assert (seen["timeout"], seen["lock_timeout"], seen["concurrency"]) == (900.0, 30.0, 3)
    assert seen["wait"] is cli.WaitFor.running
    assert run("apply", SPEC, "--timeout", "2m", "--wait", "none", env=env).exit_code == 0
    assert (seen["timeout"], seen["wait"]) == (120.0, cli.WaitFor.none)  # the flag wins

    rollout: list[tuple[Any, ...]] = []
    monkeypatch.setattr(cli, "_rollout_write", lambda *given: rollout.append(given))
    assert run("rollout", "promote", SPEC, "web", env=env).exit_code == 0
    assert rollout[-1][4:6] == (900.0, 30.0)


def test_the_metrics_file_variable_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_swarm(monkeypatch, applied_swarm())
    metrics = tmp_path / "converge.prom"
    result = run("drift", SPEC, env={"CONVERGE_METRICS_FILE": str(metrics)})
    assert result.exit_code == 0, result.output
    assert "converge_" in metrics.read_text(encoding="utf-8")


# -- colour --------------------------------------------------------------------------------------


def _saved_plan(tmp_path: Path) -> Path:
    loaded, _ = load_apply_input([BASE_SPEC], environ=ENVIRON)
    target = tmp_path / "plan.json"
    save_plan(make_plan(loaded, FakeSwarm.recorded("empty")), target)  # type: ignore[arg-type]
    return target


@pytest.mark.parametrize(
    ("before", "after", "env"),
    [(["--no-color"], [], {}), ([], ["--no-color"], {}), ([], [], {"NO_COLOR": "1"})],
    ids=["converge --no-color show", "converge show --no-color", "NO_COLOR=1"],
)
def test_no_color_means_no_escape_at_all(
    tmp_path: Path, before: list[str], after: list[str], env: dict[str, str]
) -> None:
    plan_file = str(_saved_plan(tmp_path))
    terminal = {"FORCE_COLOR": "1", "TERM": "xterm-256color"}
    coloured = run("show", plan_file, env=terminal)
    assert coloured.exit_code == 0
    assert "\x1b[1m" in coloured.stdout  # bold, with colours on a terminal
    plain = run(*before, "show", plan_file, *after, env={**terminal, **env})
    assert plain.exit_code == 0
    assert "\x1b" not in plain.stdout
    assert "Plan: 9 to add" in plain.stdout
    usage = run(*before, "plan", "--bogus", *after, env={**terminal, **env})
    assert usage.exit_code == 1
    assert "\x1b" not in usage.stderr


# -- debug ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["rollout", "status", SPEC, "web"],
        ["lb", "render", str(ROOT / "specs" / "exampleapp-lab.yml")],
    ],
    ids=lambda words: " ".join(words[:2]),
)
def test_debug_after_a_subcommand_names_the_engine(
    monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("MYSQL_ROOT_PASSWORD", "x")
    on_swarm(monkeypatch, applied_swarm())
    result = run(*command, "--debug")
    assert "Debug: Docker engine at fake\n" in result.stderr, result.output


@pytest.mark.parametrize(
    ("args", "env"), [(["--debug"], {}), ([], {"CONVERGE_LOG": "debug"})], ids=["flag", "var"]
)
def test_debug_names_the_engine(
    monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str]
) -> None:
    on_swarm(monkeypatch, applied_swarm())
    result = run(*args, "status", SPEC, env=env)
    assert result.exit_code == 0, result.output
    assert "Debug: Docker engine at fake\n" in result.stderr
    assert "Debug:" not in run("status", SPEC).stderr  # off again in the next run


# -- --context reaches the engine ----------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["plan", SPEC],
        ["apply", SPEC],
        ["destroy", SPEC],
        ["status", SPEC],
        ["drift", SPEC],
        ["unlock", "fxrec"],
        ["export", "fxrec"],
        ["rollout", "status", SPEC, "web"],
        ["rollout", "promote", SPEC, "web"],
        ["rollout", "abort", SPEC, "web"],
        ["lb", "render", str(ROOT / "specs" / "exampleapp-lab.yml")],
    ],
    ids=lambda words: " ".join(words[:2]) if words[0] in ("lb", "rollout") else words[0],
)
def test_every_connecting_command_passes_its_context(
    monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    def refuse(host: str | None = None, timeout: float = 30.0, *, context: Any = None) -> Any:
        raise EngineError(f"connect host={host} context={context}")

    monkeypatch.setenv("MYSQL_ROOT_PASSWORD", "x")
    monkeypatch.setattr("converge.engine.connect", refuse)
    yes = ["--yes"] if command[0] in ("apply", "destroy") else []
    result = run(*command, "--context", "prod", *yes)
    assert result.exit_code == 1
    assert refused(result) == "connect host=None context=prod"
    # --debug (and --no-color, where there is colour) after the command too, as before it.
    colour = ["--no-color"] if command[0] not in ("unlock", "export", "lb") else []
    result = run(*command, "--context", "prod", *yes, "--debug", *colour)
    assert result.exit_code == 1, result.output
    assert refused(result) == "connect host=None context=prod"


def refused(result: Any) -> str:
    """The error a command ended with: raised to main(), or printed masked by the command
    itself (rollout promote and abort mask with the spec)."""
    if isinstance(result.exception, SystemExit):
        return str(result.stderr).strip().removeprefix("Error: ")
    return str(result.exception)


def test_a_docker_context_is_used_and_named_when_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_engine_endpoint import _cli_context

    from converge.engine import Engine

    def unreachable(engine: Engine) -> Any:
        # As the real seam words it; a real failed unix connection leaks docker-py's socket.
        raise EngineUnavailableError(f"cannot reach the Docker engine at {engine.address}")

    # The observer reads /info beside the lists, the first of which is /nodes.
    monkeypatch.setattr(Engine, "info", unreachable)
    monkeypatch.setattr(Engine, "nodes", unreachable)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    (tmp_path / "config.json").write_text("{}")
    _cli_context(tmp_path, "lab", "unix:///run/lab/manager.sock")
    result = run("status", SPEC, "--context", "lab")
    assert result.exit_code == 1
    assert str(result.exception) == (
        "cannot reach the Docker engine at unix:///run/lab/manager.sock "
        "(from context lab (--context))"
    )
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "lab"}))
    result = run("plan", SPEC)
    assert str(result.exception).endswith("(from context lab (docker context use))")


# -- status --------------------------------------------------------------------------------------


def test_status_exits_0_when_healthy(monkeypatch: pytest.MonkeyPatch) -> None:
    on_swarm(monkeypatch, applied_swarm())
    result = run("status", SPEC)
    assert result.exit_code == 0, result.output
    assert "fxrec_web 3/3 running" in result.stdout


def test_status_exits_2_when_services_are_missing_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on_swarm(monkeypatch, FakeSwarm.recorded("empty"))
    result = run("status", SPEC)
    assert result.exit_code == 2
    assert "failure: the service does not exist" in result.stdout
    assert "service.web: declared in the spec, not in the swarm" in result.stdout
    as_json = run("status", SPEC, "-o", "json")
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["missing"]


def test_status_shows_the_failure_its_json_has(monkeypatch: pytest.MonkeyPatch) -> None:
    swarm = applied_swarm()
    swarm.fail_tasks("fxrec_db", "task: non-zero exit (3)")
    swarm.update_service("fxrec_db", *_id_version(swarm, "fxrec_db"), _spec_of(swarm, "fxrec_db"))
    on_swarm(monkeypatch, swarm)
    document = json.loads(run("status", SPEC, "-o", "json").stdout)
    failure = next(item for item in document["services"] if item["key"] == "db")["failure"]
    assert failure
    result = run("status", SPEC)
    assert result.exit_code == 2
    assert f"failure: {failure}" in result.stdout


def _id_version(swarm: FakeSwarm, name: str) -> tuple[str, int]:
    service = next(item for item in swarm.services() if item["Spec"]["Name"] == name)
    return service["ID"], service["Version"]["Index"]


def _spec_of(swarm: FakeSwarm, name: str) -> dict[str, Any]:
    service = next(item for item in swarm.services() if item["Spec"]["Name"] == name)
    spec: dict[str, Any] = json.loads(json.dumps(service["Spec"]))
    spec["TaskTemplate"]["ForceUpdate"] = 1  # a new template, whose tasks now fail
    return spec


# -- JSON errors and plans with errors -----------------------------------------------------------


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_json_output_has_an_error_document_on_a_spec_error(command: str) -> None:
    result = run(command, BAD_SPEC, "-o", "json", "--yes" if command == "apply" else "--prune")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["error"]["kind"] == "spec"
    assert document["error"]["message"] == "the spec has 3 problems"
    assert document["error"]["problems"][0]["path"] == "services.web.ports"
    assert document["converge_version"] == converge_version()


@pytest.mark.parametrize("command", [["status"], ["drift"], ["rollout", "status"]], ids=" ".join)
def test_every_json_output_has_an_error_document_on_a_spec_error(command: list[str]) -> None:
    service = ["web"] if command[0] == "rollout" else []
    result = run(*command, BAD_SPEC, *service, "-o", "json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["error"]["kind"] == "spec"
    assert document["error"]["problems"][0]["path"] == "services.web.ports"


def test_show_json_has_an_error_document_on_a_file_that_is_no_plan(tmp_path: Path) -> None:
    not_a_plan = tmp_path / "plan.json"
    not_a_plan.write_text('{"format_version": "1.0"}')
    result = run("show", str(not_a_plan), "-o", "json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["error"] == {
        "kind": "plan",
        "message": "not a plan document: missing or malformed 'actions'",
        "problems": [],
    }


COLLISION = [str(BASE_SPEC), str(PLANS / "name_collision" / "override.yml")]


def _collision_swarm(monkeypatch: pytest.MonkeyPatch) -> None:
    from test_executor_fake import case_swarm

    on_swarm(monkeypatch, case_swarm("name_collision"))


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_json_output_has_an_error_document_on_plan_errors(
    monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    _collision_swarm(monkeypatch)
    result = run(command, *COLLISION, "-o", "json", *(["--yes"] if command == "apply" else []))
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["error"]["kind"] == "plan"
    assert [problem["address"] for problem in document["error"]["problems"]] == ["service.hand"]
    assert "Error: the plan has errors" in result.stderr


def test_only_a_json_or_saved_plan_computes_the_slow_spec_digest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The digest is scrypt, slow on purpose: the text plan, which never shows it, skips it.
    import converge.api

    on_swarm(monkeypatch, FakeSwarm.recorded("empty"))
    computed: list[bytes] = []
    slow_digest = converge.api.slow_digest

    def counted(data: bytes, salt: bytes) -> str:
        computed.append(salt)
        return slow_digest(data, salt)

    monkeypatch.setattr(converge.api, "slow_digest", counted)
    text = run("plan", SPEC)
    assert text.exit_code == 0, text.output
    assert "Plan: 9 to add" in text.stdout
    assert computed == []
    as_json = run("plan", SPEC, "-o", "json")
    digest = json.loads(as_json.stdout)["spec"]["digest"]
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    saved = tmp_path / "plan.json"
    assert run("plan", SPEC, "--out", str(saved)).exit_code == 0
    assert json.loads(saved.read_text())["spec"]["digest"] == digest
    assert len(computed) == 2


def test_a_plan_with_errors_never_says_no_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    _collision_swarm(monkeypatch)
    result = run("plan", *COLLISION)
    assert result.exit_code == 1
    assert "No changes" not in result.stdout
    assert "The plan has 1 error: nothing can be applied." in result.stdout


# -- every option is accounted for in docs/cli.md ------------------------------------------------

_NOT_SETTINGS = {"--help", "--version", "--install-completion", "--show-completion"}


def _options() -> dict[str, set[str | None]]:
    """Each long option of every command, with the variables that set it."""
    import typer.main

    options: dict[str, set[str | None]] = {}

    def walk(command: Any) -> None:
        for param in command.params:
            if getattr(param, "param_type_name", "") == "option":
                name = next(opt for opt in param.opts if opt.startswith("--"))
                options.setdefault(name, set()).add(param.envvar)
        for child in getattr(command, "commands", {}).values():
            walk(child)

    walk(typer.main.get_command(cli.app))
    return {name: envvars for name, envvars in options.items() if name not in _NOT_SETTINGS}


def test_every_option_has_its_variable_or_says_why_not_in_the_docs() -> None:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = text.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    for name, envvars in _options().items():
        for envvar in envvars - {None}:
            assert f"`{envvar}`" in section, f"{envvar} ({name}) is not in docs/cli.md"
        # A flag without a variable is named there: with its variable, or why it has none.
        written = "-o" if name == "--output" else name
        assert re.search(rf"`[^`]*{re.escape(written)}(?![\w-])[^`]*`", section), (
            f"docs/cli.md's environment variables say nothing of {name}"
        )


_COMMAND_LINE = re.compile(r"^\s*(?:\$ )?converge [a-z-]")


def _shows_converge_commands(text: str) -> bool:
    """A line of code (indented, or in a fenced block) runs ``converge``."""
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif (fenced or line.startswith("    ")) and _COMMAND_LINE.match(line):
            return True
    return False


def test_every_doc_that_shows_converge_commands_says_how_to_get_it_on_path() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    texts = {page.relative_to(ROOT).as_posix(): page.read_text(encoding="utf-8") for page in pages}
    showing = {name: text for name, text in texts.items() if _shows_converge_commands(text)}
    assert {"README.md", "docs/apply.md", "docs/cluster.md"} <= set(showing)
    silent = [name for name, text in showing.items() if ". .venv/bin/activate" not in text]
    assert not silent, f"these pages show converge commands, not how to get it on PATH: {silent}"
