"""The loader: interpolation, secrets, merging, positions, and what a LoadedSpec carries."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from converge.errors import SpecError, SpecProblem
from converge.loader import LoadedSpec, load_spec, load_spec_text, path_text

HEADER = "version: 1\nstack: shop\n"


def _load(body: str, environ: Mapping[str, str] | None = None) -> LoadedSpec:
    return load_spec_text(HEADER + body, "spec.yml", environ or {})


def _image(value: str, environ: Mapping[str, str]) -> str:
    body = f"services:\n  web:\n    image: '{value}'\n"
    return _load(body, environ).spec.services["web"].image


def _error(body: str, environ: Mapping[str, str] | None = None) -> str:
    with pytest.raises(SpecError) as caught:
        _load(body, environ)
    return str(caught.value)


# ---------------------------------------------------------------------------------------------
# Interpolation

ENV = {"TAG": "1.2", "EMPTY": "", "DEFAULT_TAG": "stable"}


@pytest.mark.parametrize(
    ("written", "image"),
    [
        ("app:${TAG}", "app:1.2"),
        ("app:$TAG", "app:1.2"),
        ("app:$TAG-slim", "app:1.2-slim"),
        ("app:${TAG}${TAG}", "app:1.21.2"),
        ("app:$$TAG", "app:$TAG"),
        ("app:$${TAG}", "app:${TAG}"),
        ("app:${MISSING:-latest}", "app:latest"),
        ("app:${EMPTY:-latest}", "app:latest"),
        ("app:${TAG:-latest}", "app:1.2"),
        ("app:${MISSING-latest}", "app:latest"),
        ("app:${EMPTY-latest}x", "app:x"),
        ("app:${TAG:+alt}", "app:alt"),
        ("app:${EMPTY:+alt}x", "app:x"),
        ("app:${EMPTY+alt}", "app:alt"),
        ("app:${MISSING+alt}x", "app:x"),
        ("app:${TAG:?the tag}", "app:1.2"),
        ("app:${EMPTY?ignored}x", "app:x"),
        ("app:${MISSING:-${DEFAULT_TAG}}", "app:stable"),
        ("app:${TAG:-${DEFAULT_TAG}}", "app:1.2"),
        ("app:${MISSING:-${ALSO_MISSING:-last}}", "app:last"),
        ("price$1", "price$1"),
        ("trailing$", "trailing$"),
    ],
)
def test_interpolation(written: str, image: str) -> None:
    assert _image(written, ENV) == image


def test_unset_variable_becomes_empty_with_a_warning() -> None:
    loaded = _load("services:\n  web:\n    image: app\n    hostname: h${NOPE}x\n", ENV)
    assert loaded.spec.services["web"].hostname == "hx"
    assert loaded.warnings == (
        "spec.yml:6: services.web.hostname: variable NOPE is not set; using an empty string",
    )


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("${MISSING:?set MISSING please}", "set MISSING please (${MISSING} is not set)"),
        ("${MISSING?}", "variable MISSING is required (${MISSING} is not set)"),
        ("${EMPTY:?must not be empty}", "must not be empty (${EMPTY} is empty)"),
        ("${TAG", "invalid interpolation '${TAG'"),
        ("${}", "invalid interpolation '${}'"),
        ("${1ABC}", "invalid interpolation '${1ABC}'"),
        ("${TAG:x}", "invalid interpolation '${TAG:x}'"),
    ],
)
def test_interpolation_errors(written: str, message: str) -> None:
    body = f"services:\n  web:\n    image: '{written}'\n"
    assert _error(body, ENV) == f"spec.yml:5:5: services.web.image: {message}"


def test_interpolation_in_a_list_item_is_located_at_the_item() -> None:
    body = "services:\n  web:\n    image: app\n    command:\n      - run\n      - ${NOPE:?x}\n"
    assert _error(body) == "spec.yml:8:9: services.web.command[1]: x (${NOPE} is not set)"


def test_keys_and_non_strings_are_not_interpolated() -> None:
    body = "services:\n  web:\n    image: app\n    labels: {'${TAG}': '${TAG}'}\n    replicas: 2\n"
    assert _load(body, ENV).spec.services["web"].labels == {"${TAG}": "1.2"}


def test_interpolation_uses_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONVERGE_TEST_TAG", "9.9")
    text = HEADER + "services:\n  web:\n    image: app:${CONVERGE_TEST_TAG}\n"
    assert load_spec_text(text).spec.services["web"].image == "app:9.9"


# ---------------------------------------------------------------------------------------------
# Values that came from the environment


def test_env_values_from_the_environment_are_sensitive() -> None:
    body = (
        "services:\n  db:\n    image: 'mysql:${TAG}'\n    env:\n"
        "      PASSWORD: ${ROOT_PW}\n      PLAIN: literal\n      MIXED: pre-${TAG}\n"
    )
    loaded = _load(body, {"ROOT_PW": "hunter2", "TAG": "8"})
    assert loaded.sensitive_paths == {
        ("services", "db", "env", "PASSWORD"),
        ("services", "db", "env", "MIXED"),
    }
    assert loaded.is_sensitive(("services", "db", "env", "PASSWORD"))
    assert not loaded.is_sensitive(("services", "db", "env", "PLAIN"))
    assert not loaded.is_sensitive(("services", "db", "env"))
    assert not loaded.is_sensitive(("services", "db", "image"))


def test_env_list_form_is_sensitive_by_key() -> None:
    body = "services:\n  db:\n    image: mysql\n    env:\n      - A=1\n      - PW=${ROOT_PW}\n"
    loaded = _load(body, {"ROOT_PW": "hunter2"})
    assert loaded.spec.services["db"].env == {"A": "1", "PW": "hunter2"}
    assert loaded.sensitive_paths == {("services", "db", "env", "PW")}


@pytest.mark.parametrize(
    ("variable", "sensitive"),
    [
        ("TAG", False),
        ("VERSION", False),
        ("REGISTRY_TOKEN", True),
        ("DB_PASSWORD", True),
        ("db_pass", True),
        ("API_KEY", True),
        ("CLIENT_SECRET", True),
        ("AWS_CREDENTIALS", True),
        ("PRIVATE_THING", True),
    ],
)
def test_other_values_are_sensitive_when_the_variable_looks_secret(
    variable: str, sensitive: bool
) -> None:
    body = f"services:\n  web:\n    image: 'app:${{{variable}}}'\n"
    loaded = _load(body, {variable: "x"})
    assert loaded.is_sensitive(("services", "web", "image")) is sensitive


def test_secret_values_are_masked_in_errors() -> None:
    body = "services:\n  web:\n    image: app\n    replicas: ${DB_PASSWORD}\n"
    message = _error(body, {"DB_PASSWORD": "hunter2"})
    assert "hunter2" not in message
    assert message == "spec.yml:6:5: services.web.replicas: expected a whole number, got '***'"


def test_a_secret_overridden_by_a_literal_is_no_longer_sensitive(tmp_path: Path) -> None:
    base = tmp_path / "base.yml"
    base.write_text(HEADER + "services:\n  db:\n    image: x\n    env: {PW: '${PW}', A: '${PW}'}\n")
    override = tmp_path / "override.yml"
    override.write_text("services:\n  db:\n    env: {PW: literal}\n")
    loaded = load_spec([base, override], environ={"PW": "secret"})
    assert loaded.sensitive_paths == {("services", "db", "env", "A")}


# ---------------------------------------------------------------------------------------------
# Merging


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_later_files_win_mappings_merge_lists_replace(tmp_path: Path) -> None:
    base = _write(
        tmp_path,
        "base.yml",
        HEADER
        + "networks: {a: {}, b: {}}\n"
        + "services:\n  web:\n    image: app:1\n    replicas: 2\n"
        + "    env: {A: '1', B: '2'}\n    networks: [a, b]\n"
        + "    placement: {constraints: [node.role == worker], max_replicas_per_node: 3}\n",
    )
    override = _write(
        tmp_path,
        "prod.yml",
        "services:\n  web:\n    replicas: 5\n    env: {B: '20', C: '30'}\n    networks: [b]\n"
        "    placement: {constraints: [node.role == manager]}\n",
    )
    spec = load_spec([base, override], environ={}).spec
    web = spec.services["web"]
    assert web.image == "app:1"
    assert web.replicas == 5
    assert web.env == {"A": "1", "B": "20", "C": "30"}
    assert list(web.networks) == ["b"]
    assert web.placement.constraints == ("node.role == manager",)
    assert web.placement.max_replicas_per_node == 3
    assert set(spec.networks) == {"a", "b"}


def test_merge_order_matters(tmp_path: Path) -> None:
    one = _write(tmp_path, "one.yml", HEADER + "services:\n  web: {image: one}\n")
    two = _write(tmp_path, "two.yml", HEADER + "services:\n  web: {image: two}\n")
    assert load_spec([one, two], environ={}).spec.services["web"].image == "two"
    assert load_spec([two, one], environ={}).spec.services["web"].image == "one"


def test_a_scalar_may_replace_a_mapping_and_back(tmp_path: Path) -> None:
    base = _write(tmp_path, "base.yml", HEADER + "volumes:\n  data: {driver: local}\n")
    override = _write(tmp_path, "override.yml", "volumes:\n  data:\n")
    assert load_spec([base, override], environ={}).spec.volumes["data"].driver == "local"


def test_errors_point_into_the_file_that_gave_the_value(tmp_path: Path) -> None:
    base = _write(tmp_path, "base.yml", HEADER + "services:\n  web:\n    image: app\n")
    override = _write(tmp_path, "prod.yml", "services:\n  web:\n    replicas: many\n")
    with pytest.raises(SpecError) as caught:
        load_spec([base, override], environ={})
    assert caught.value.problems == (
        SpecProblem(
            str(override), 3, 5, "services.web.replicas", "expected a whole number, got 'many'"
        ),
    )


def test_problems_of_every_file_are_reported_together(tmp_path: Path) -> None:
    one = _write(tmp_path, "one.yml", "version: 1\nstack: [\n")
    two = _write(tmp_path, "two.yml", "- a list\n")
    with pytest.raises(SpecError) as caught:
        load_spec([one, two], environ={})
    assert [problem.file for problem in caught.value.problems] == [str(one), str(two)]


def test_files_digest_and_warnings(tmp_path: Path) -> None:
    one = _write(tmp_path, "one.yml", HEADER)
    two = _write(tmp_path, "two.yml", "services:\n  web: {image: 'a${X}'}\n")
    loaded = load_spec([one, two], environ={})
    assert loaded.files == (str(one), str(two))
    assert len(loaded.digest) == 64
    assert loaded.digest != load_spec([two, one], environ={}).digest
    assert loaded.digest == load_spec([one, two], environ={"X": "1"}).digest
    assert loaded.warnings == (
        f"{two}:2: services.web.image: variable X is not set; using an empty string",
    )


def test_no_file_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no spec file given"):
        load_spec([])
    missing = tmp_path / "missing.yml"
    binary = _write(tmp_path, "binary.yml", "")
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SpecError) as caught:
        load_spec([missing, binary])
    assert [problem.file for problem in caught.value.problems] == [str(missing), str(binary)]
    assert caught.value.problems[0].message == "cannot read the file: No such file or directory"
    assert caught.value.problems[1].message.startswith("cannot read the file: ")


# ---------------------------------------------------------------------------------------------
# Parsing details


def test_x_keys_are_ignored_only_at_the_top() -> None:
    assert _load("x-anything: {whatever: [1, 2]}\n").spec.services == {}
    assert _error("services:\n  x-web:\n    image: app\n    x-note: hi\n") == (
        "spec.yml:6:5: services.x-web.x-note: unknown field 'x-note'; expected one of "
        "image, entrypoint, command, mode, replicas, placement, ports, mounts, env, networks, "
        "labels, container_labels, endpoint_mode, update_config, rollback_config, "
        "restart_policy, resources, healthcheck, stop_grace_period, stop_signal, user, "
        "workdir, hostname, init, read_only"
    )


def test_yaml_merge_keys_are_not_duplicates() -> None:
    body = "x-d: &d {image: app, replicas: 2}\nservices:\n  web:\n    <<: *d\n    replicas: 3\n"
    assert _load(body).spec.services["web"].replicas == 3


def test_empty_entries_declare_defaults() -> None:
    spec = _load("nodes:\n  manager:\nnetworks:\n  net:\nvolumes:\n  data:\n").spec
    assert spec.nodes["manager"].role is None
    assert spec.networks["net"].driver == "overlay"
    assert spec.volumes["data"].driver == "local"


def test_all_problems_are_reported_in_file_order() -> None:
    body = (
        "services:\n  b:\n    image: app\n    replicas: x\n"
        "  a:\n    image: app\n    mode: nope\n    replicas: y\n"
    )
    assert _error(body).splitlines() == [
        "spec.yml:6:5: services.b.replicas: expected a whole number, got 'x'",
        "spec.yml:9:5: services.a.mode: expected 'replicated' or 'global', got 'nope'",
        "spec.yml:10:5: services.a.replicas: expected a whole number, got 'y'",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "spec.yml:1:1: version: required field is missing"),
        (
            "'just text'",
            "spec.yml:1:1: a spec is a mapping of sections (version, stack, "
            "services, ...), got a string",
        ),
        (
            "42",
            "spec.yml:1:1: a spec is a mapping of sections (version, stack, services, ...), got 42",
        ),
        (
            "a: 1\n---\nb: 2\n",
            "spec.yml:2:1: invalid YAML: expected a single document in the "
            "stream but found another document",
        ),
        (
            "a: !!python/object:os.system x\n",
            "spec.yml:1:4: invalid YAML: could not determine "
            "a constructor for the tag 'tag:yaml.org,2002:python/object:os.system'",
        ),
    ],
)
def test_documents_that_are_not_specs(text: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec_text(text, "spec.yml", {})
    assert str(caught.value).splitlines()[0] == message


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ((), ""),
        (("services",), "services"),
        (("services", "mvc", "ports", 0), "services.mvc.ports[0]"),
        (("services", "mvc", "ports", 0, "target"), "services.mvc.ports[0].target"),
        ((0, 1), "[0][1]"),
    ],
)
def test_path_text(path: tuple[str | int, ...], text: str) -> None:
    assert path_text(path) == text
