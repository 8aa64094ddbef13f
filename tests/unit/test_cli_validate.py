"""``converge validate`` and ``converge schema`` through the command line.

The commands run on ``converge.cli.app`` with typer's runner, and through ``converge.cli.main``
(the console script's entry point) where its error handling matters. The ``lab`` subcommands
are another module's business: ``main`` is run with their registration stubbed out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from converge import cli
from converge.schema import spec_json_schema

ROOT = Path(__file__).resolve().parents[2]
BAD = "tests/fixtures/specs/bad"
GOOD = "tests/fixtures/specs/good"

# Bad fixtures whose errors do not depend on the environment.
CLI_CASES = [
    f"{BAD}/wrong_type_replicas.yml",
    f"{BAD}/unknown_key_did_you_mean.yml",
    f"{BAD}/invalid_yaml.yml",
    f"{BAD}/placement_impossible.yml",
    f"{BAD}/several_problems.yml",
    f"{BAD}/lb_port_not_published.yml",
]


@pytest.fixture(autouse=True)
def _in_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MYSQL_ROOT_PASSWORD", "from-the-environment")


def _expected(path: str) -> str:
    return Path(path).with_suffix(".expected").read_text(encoding="utf-8")


def _run_main(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    monkeypatch.setattr(cli, "_register_subcommands", lambda: None)
    monkeypatch.setattr(sys, "argv", ["converge", *args])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


@pytest.mark.parametrize("spec", CLI_CASES)
def test_validate_prints_the_errors_and_exits_1(spec: str) -> None:
    result = CliRunner().invoke(cli.app, ["validate", spec])
    assert result.exit_code == 1
    assert result.stderr == _expected(spec)
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("spec", CLI_CASES[:3])
def test_main_prints_the_errors_without_traceback(
    spec: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run_main(["validate", spec], monkeypatch, capsys)
    assert code == 1
    assert out == ""
    assert err == _expected(spec)
    assert "Traceback" not in err


def test_validate_a_good_spec_exits_0_with_a_summary() -> None:
    result = CliRunner().invoke(cli.app, ["validate", "specs/exampleapp.yml"])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "specs/exampleapp.yml: valid (stack exampleapp: 5 nodes, 1 network, 1 volume, "
        "2 services, a load balancer)\n"
    )
    assert result.stderr == ""


def test_validate_every_shipped_spec() -> None:
    specs = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "specs").glob("*.yml"))
    result = CliRunner().invoke(cli.app, ["validate", *specs])
    assert result.exit_code == 0, result.output


def test_validate_merges_files_in_order() -> None:
    files = [f"{GOOD}/override/1-base.yml", f"{GOOD}/override/2-prod.yml"]
    result = CliRunner().invoke(cli.app, ["validate", "--merge", *files])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(" + ".join(files) + ": valid (stack shop: ")


def test_validate_merges_files_given_with_c_as_stack_deploy_does() -> None:
    # An override file alone may lack what the base gives (here: the services' images).
    files = [f"{GOOD}/override/1-base.yml", f"{GOOD}/override/2-prod.yml"]
    result = CliRunner().invoke(cli.app, ["validate", "-c", files[0], "-c", files[1]])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(" + ".join(files) + ": valid (stack shop: ")


@pytest.mark.parametrize(
    "case", sorted(path.name for path in (ROOT / BAD).iterdir() if path.is_dir())
)
def test_merged_files_give_their_errors(case: str) -> None:
    files = sorted(str(path.relative_to(ROOT)) for path in (ROOT / BAD / case).glob("*.yml"))
    result = CliRunner().invoke(cli.app, ["validate", "--merge", *files])
    assert result.exit_code == 1
    assert result.stderr == (ROOT / BAD / case / "expected").read_text(encoding="utf-8")


def test_validate_checks_each_file_on_its_own_by_default() -> None:
    good, bad = f"{GOOD}/minimal.yml", f"{BAD}/missing_image.yml"
    result = CliRunner().invoke(cli.app, ["validate", good, bad])
    assert result.exit_code == 1
    assert (
        result.stdout
        == f"{good}: valid (stack empty: 0 nodes, 0 networks, 0 volumes, 0 services)\n"
    )
    assert result.stderr == _expected(bad)


def test_validate_an_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    result = CliRunner().invoke(cli.app, ["validate", str(missing)])
    assert result.exit_code == 1
    assert result.stderr == f"{missing}: cannot read the file: No such file or directory\n"


def test_validate_warns_about_unset_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MYSQL_ROOT_PASSWORD")
    result = CliRunner().invoke(cli.app, ["validate", "specs/exampleapp.yml"])
    assert result.exit_code == 0
    assert result.stderr == (
        "Warning: specs/exampleapp.yml:46: services.mysql.environment.MYSQL_ROOT_PASSWORD: "
        "variable MYSQL_ROOT_PASSWORD is not set; using an empty string\n"
    )


def test_required_variable_message_reaches_the_user(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DB_PASSWORD", raising=False)
    spec = f"{BAD}/required_variable_unset.yml"
    code, out, err = _run_main(["validate", spec], monkeypatch, capsys)
    assert (code, out) == (1, "")
    assert err == _expected(spec)


def test_validate_needs_a_file() -> None:
    result = CliRunner().invoke(cli.app, ["validate"])
    assert result.exit_code == 1  # a usage error: 2 means "changes" or "drift"
    assert "no compose file given (-c docker-stack.yml)" in result.stderr


def test_main_validates_a_good_spec(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run_main(["validate", "specs/exampleapp.yml"], monkeypatch, capsys)
    assert (code, err) == (0, "")
    assert out.startswith("specs/exampleapp.yml: valid")


def test_schema_prints_the_json_schema() -> None:
    result = CliRunner().invoke(cli.app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == spec_json_schema()


def test_compose_files_come_with_c_and_the_stack_as_an_argument(tmp_path: Path) -> None:
    compose = tmp_path / "docker-stack.yml"
    compose.write_text("services:\n  web:\n    image: nginx\n", encoding="utf-8")
    override = tmp_path / "override.yml"
    override.write_text("services:\n  web:\n    deploy: {replicas: 2}\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli.app, ["validate", "--merge", "-c", str(compose), "-c", str(override), "shop"]
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        f"{compose} + {override}: valid (stack shop: 0 nodes, 1 network, 0 volumes, 1 service)\n"
    )
    # Without a stack, a file that names none is still valid on its own (validate needs none).
    result = CliRunner().invoke(cli.app, ["validate", str(compose)])
    assert result.exit_code == 0, result.stderr


def test_two_stacks_or_no_file_are_usage_errors(tmp_path: Path) -> None:
    compose = tmp_path / "docker-stack.yml"
    compose.write_text("services: {}\n", encoding="utf-8")
    # Usage errors exit 1 (2 means "changes" or "drift").
    assert CliRunner().invoke(cli.app, ["validate", "-c", str(compose), "a", "b"]).exit_code == 1
    assert CliRunner().invoke(cli.app, ["validate", "shop"]).exit_code == 1


def test_an_env_file_supplies_variables(tmp_path: Path) -> None:
    compose = tmp_path / "docker-stack.yml"
    compose.write_text("services:\n  web:\n    image: 'nginx:${TAG:?}'\n", encoding="utf-8")
    variables = tmp_path / "prod.env"
    variables.write_text("TAG=1.25\n", encoding="utf-8")
    result = CliRunner().invoke(cli.app, ["validate", str(compose)])
    assert result.exit_code == 1
    result = CliRunner().invoke(cli.app, ["validate", str(compose), "--env-file", str(variables)])
    assert result.exit_code == 0, result.stderr
