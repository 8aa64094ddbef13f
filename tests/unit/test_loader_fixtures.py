"""Data-fixture tests of the loader: bad specs give their exact errors, good specs load.

A bad case is ``tests/fixtures/specs/bad/<case>.yml`` with ``<case>.expected`` beside it, or a
directory ``<case>/`` whose ``*.yml`` files are merged in name order, with ``<case>/expected``.
The expected text is exactly ``str(SpecError)`` plus a newline: one ``file:line:col: path:
message`` line per problem. To write the expected files after changing a message on purpose,
run ``CONVERGE_UPDATE_FIXTURES=1 pytest tests/unit/test_loader_fixtures.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from converge.errors import SpecError
from converge.loader import load_spec
from converge.spec import Spec

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "specs"
BAD = FIXTURES / "bad"
GOOD = FIXTURES / "good"

# The whole environment the fixtures see: nothing leaks in from the developer's shell.
ENVIRON = {"TAG": "1.25", "EMPTY": "", "REPLICAS": "three", "API_TOKEN": "s3cr3t-token"}


def _bad_cases() -> list[tuple[str, list[Path], Path]]:
    cases = []
    for entry in sorted(BAD.iterdir()):
        if entry.is_dir():
            cases.append((entry.name, sorted(entry.glob("*.yml")), entry / "expected"))
        elif entry.suffix == ".yml":
            cases.append((entry.stem, [entry], entry.with_suffix(".expected")))
    return cases


BAD_CASES = _bad_cases()


def _relative(files: list[Path]) -> list[str]:
    return [file.relative_to(ROOT).as_posix() for file in files]


@pytest.mark.parametrize(
    ("files", "expected"),
    [pytest.param(files, expected, id=name) for name, files, expected in BAD_CASES],
)
def test_bad_spec_gives_its_exact_error(
    files: list[Path], expected: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(SpecError) as caught:
        load_spec(_relative(files), environ=ENVIRON)
    actual = f"{caught.value}\n"
    if os.environ.get("CONVERGE_UPDATE_FIXTURES"):
        expected.write_text(actual, encoding="utf-8")
    assert actual == expected.read_text(encoding="utf-8")


@pytest.mark.parametrize("files", [pytest.param(files, id=name) for name, files, _ in BAD_CASES])
def test_every_problem_is_located(files: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(SpecError) as caught:
        load_spec(_relative(files), environ=ENVIRON)
    assert caught.value.problems
    for problem in caught.value.problems:
        assert problem.file in _relative(files)
        assert problem.line is not None
        assert problem.column is not None
        assert problem.message
        assert "\n" not in str(problem)


def test_there_are_enough_bad_fixtures_and_no_stray_files() -> None:
    assert len(BAD_CASES) >= 30
    expected_files = {expected for _, _, expected in BAD_CASES}
    for path in BAD.rglob("*"):
        if path.is_file() and path.suffix != ".yml":
            assert path in expected_files, f"{path} belongs to no case"
    for _, files, expected in BAD_CASES:
        assert files, f"{expected.parent} holds no spec"
        assert expected.is_file(), f"{expected} is missing"


# ---------------------------------------------------------------------------------------------
# Good specs

GOOD_SINGLE = sorted(GOOD.glob("*.yml"))
GOOD_OVERRIDE = sorted((GOOD / "override").glob("*.yml"))
SPECS = sorted((ROOT / "specs").glob("*.yml"))
EVERY_GOOD = [
    *[pytest.param([file], id=f"good/{file.name}") for file in GOOD_SINGLE],
    pytest.param(GOOD_OVERRIDE, id="good/override"),
    *[pytest.param([file], id=f"specs/{file.name}") for file in SPECS],
]


@pytest.mark.parametrize("files", EVERY_GOOD)
def test_good_spec_loads_without_warnings(files: list[Path]) -> None:
    loaded = load_spec(files, environ={"MYSQL_ROOT_PASSWORD": "pw"})
    assert loaded.warnings == ()
    assert loaded.files == tuple(str(file) for file in files)
    assert len(loaded.digest) == 64


@pytest.mark.parametrize("files", EVERY_GOOD)
def test_good_spec_round_trips_through_a_json_dump(files: list[Path]) -> None:
    spec = load_spec(files, environ={"MYSQL_ROOT_PASSWORD": "pw"}).spec
    again = Spec.model_validate(spec.model_dump(mode="json"))
    assert again == spec
    assert again.model_dump() == spec.model_dump()
    # The canonical form is a fixed point: validating it changes nothing.
    assert Spec.model_validate(again.model_dump(mode="json")).model_dump(mode="json") == (
        spec.model_dump(mode="json")
    )


@pytest.mark.parametrize("files", EVERY_GOOD)
def test_good_spec_round_trips_through_a_python_dump_without_revalidation(
    files: list[Path],
) -> None:
    # Python-mode dumps are in engine units (ns, nano-CPUs) that the parsers would read as
    # seconds and CPUs; model_construct-free equality of the dumps is what callers rely on.
    spec = load_spec(files, environ={"MYSQL_ROOT_PASSWORD": "pw"}).spec
    dumped = spec.model_dump()
    assert dumped == load_spec(files, environ={"MYSQL_ROOT_PASSWORD": "pw"}).spec.model_dump()
    assert Spec.model_validate_json(spec.model_dump_json()) == spec


def test_short_forms_equal_their_long_forms() -> None:
    short = load_spec([GOOD / "short_forms.yml"], environ={}).spec
    long = load_spec([GOOD / "long_forms.yml"], environ={}).spec
    assert short == long
    web = short.services["web"]
    assert [(port.published, port.target, port.protocol) for port in web.ports] == [
        (8080, 80, "tcp"),
        (5353, 53, "udp"),
        (None, 9000, "tcp"),
        (7000, 8000, "tcp"),
        (7001, 8001, "tcp"),
    ]
    assert [(mount.type, mount.source, mount.read_only) for mount in web.volumes] == [
        ("volume", "data", False),
        ("volume", "data", True),
        ("bind", "/etc/localtime", True),
        ("volume", None, False),
    ]
    assert web.environment == {"MODE": "production", "GREETING": "hello=world", "EMPTY": ""}
    assert web.command == ("nginx", "-g", "daemon off;")
    assert web.deploy.placement.constraints == ("node.labels.type==web", "node.role != manager")
    assert web.extra_hosts == ("cache.local:10.0.0.6", "db.local:10.0.0.5")
    assert web.ulimits["nproc"].soft == web.ulimits["nproc"].hard == 512
    assert web.dns == ("10.0.0.2",)
    assert web.healthcheck is not None
    assert web.healthcheck.test == ("CMD-SHELL", "curl -f http://localhost/ || exit 1")
    assert web.healthcheck.interval == 90_000_000_000
    assert web.healthcheck.timeout == 500_000_000
    assert web.stop_grace_period == 10_000_000_000
    limits = web.deploy.resources.limits
    assert limits is not None
    assert limits.cpus == 500_000_000
    assert limits.memory == 2 * 1024**3
    assert short.nodes["worker1"].labels == {"type": "web", "ssd": "true", "rack": "3"}


def test_anchors_and_yaml_merge_keys() -> None:
    loaded = load_spec([GOOD / "anchors.yml"], environ={"TAG": "2.0"})
    api, worker = loaded.spec.services["api"], loaded.spec.services["worker"]
    assert loaded.spec.stack == "anchors"
    assert api.image == worker.image == "example/app:2.0"
    assert api.deploy.restart_policy == worker.deploy.restart_policy
    assert api.deploy.restart_policy is not None
    assert api.deploy.restart_policy.max_attempts == 3
    assert api.deploy.update_config is not None
    assert worker.deploy.update_config is not None
    assert api.deploy.update_config.parallelism == 1
    assert worker.deploy.update_config.parallelism == 3
    assert worker.deploy.update_config.delay == api.deploy.update_config.delay == 10_000_000_000
    assert list(api.networks) == ["backend"]
    assert load_spec([GOOD / "anchors.yml"], environ={}).spec.services["api"].image == (
        "example/app:latest"
    )


def test_override_merges_by_the_compose_rules() -> None:
    loaded = load_spec(GOOD_OVERRIDE, environ={"WEB_TAG": "1.2.3"})
    web = loaded.spec.services["web"]
    assert web.image == "example/web:1.2.3"
    assert web.deploy.replicas == 6
    # ports are unique by their key: a new published port is added.
    assert [(port.published, port.target) for port in web.ports] == [(8080, 80), (80, 80)]
    # a list-form environment merges into the mapping one.
    assert web.environment == {"MODE": "production", "LOG_LEVEL": "debug"}
    # sequences are appended, unless !override says otherwise.
    assert web.dns == ("10.0.0.2", "10.0.0.3")
    assert web.deploy.placement.constraints == ("node.labels.type == web",)
    assert list(web.networks) == ["backend"]
    assert set(loaded.spec.services) == {"web", "cache"}
    assert loaded.files == tuple(str(file) for file in GOOD_OVERRIDE)


def test_full_spec_sets_what_it_says() -> None:
    spec = load_spec([GOOD / "full.yml"], environ={}).spec
    assert spec.networks["proxy"].external
    assert spec.networks["proxy"].name == "traefik_public"
    ipam = spec.networks["backend"].ipam
    assert ipam is not None
    assert ipam.config[0].gateway == "10.20.0.1"
    assert spec.networks["backend"].encrypted
    db = spec.services["db"]
    assert db.environment == {"POSTGRES_PASSWORD": "changeme", "POSTGRES_USER": "shop"}
    assert db.volumes[1].tmpfs is not None
    assert db.volumes[1].tmpfs.size == 64 * 1024**2
    assert db.networks["backend"].aliases == ("database", "pg")
    assert db.networks["isolated"].aliases == ()
    assert spec.services["agent"].deploy.mode == "global"
    assert spec.services["migrate"].deploy.mode == "replicated-job"
    assert spec.services["web"].x_converge.ignore == ("deploy.replicas",)
    assert spec.loadbalancer is not None
    assert spec.loadbalancer.timeouts.client == 60_000_000_000
    assert spec.loadbalancer.stats is not None
    assert spec.loadbalancer.stats.uri == "/haproxy"
