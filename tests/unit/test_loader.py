"""The loader: interpolation, secrets, merging, positions, and what a LoadedSpec carries."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from converge.errors import SpecError, SpecProblem
from converge.loader import LoadedSpec, load_spec, load_spec_text, path_text

HEADER = "x-converge:\n  stack: shop\n"


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
    body = "services:\n  web:\n    image: app\n    labels: {'${TAG}': '${TAG}'}\n    init: true\n"
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
        "services:\n  db:\n    image: 'mysql:${TAG}'\n    environment:\n"
        "      PASSWORD: ${ROOT_PW}\n      PLAIN: literal\n      MIXED: pre-${TAG}\n"
    )
    loaded = _load(body, {"ROOT_PW": "hunter2", "TAG": "8"})
    assert loaded.sensitive_paths == {
        ("services", "db", "environment", "PASSWORD"),
        ("services", "db", "environment", "MIXED"),
    }
    assert loaded.is_sensitive(("services", "db", "environment", "PASSWORD"))
    assert not loaded.is_sensitive(("services", "db", "environment", "PLAIN"))
    assert not loaded.is_sensitive(("services", "db", "environment"))
    assert not loaded.is_sensitive(("services", "db", "image"))


def test_env_list_form_is_sensitive_by_key() -> None:
    body = (
        "services:\n  db:\n    image: mysql\n    environment:\n      - A=1\n      - PW=${ROOT_PW}\n"
    )
    loaded = _load(body, {"ROOT_PW": "hunter2"})
    assert loaded.spec.services["db"].environment == {"A": "1", "PW": "hunter2"}
    assert loaded.sensitive_paths == {("services", "db", "environment", "PW")}


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
    body = "services:\n  web:\n    image: app\n    deploy:\n      replicas: ${DB_PASSWORD}\n"
    message = _error(body, {"DB_PASSWORD": "hunter2"})
    assert "hunter2" not in message
    assert message == (
        "spec.yml:7:7: services.web.deploy.replicas: expected a whole number, got '***'"
    )


def test_a_secret_overridden_by_a_literal_is_no_longer_sensitive(tmp_path: Path) -> None:
    base = tmp_path / "base.yml"
    base.write_text(
        HEADER + "services:\n  db:\n    image: x\n    environment: {PW: '${PW}', A: '${PW}'}\n"
    )
    override = tmp_path / "override.yml"
    override.write_text("services:\n  db:\n    environment: {PW: literal}\n")
    loaded = load_spec([base, override], environ={"PW": "secret"})
    assert loaded.sensitive_paths == {("services", "db", "environment", "A")}


# ---------------------------------------------------------------------------------------------
# Merging


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_files_merge_by_the_compose_rules(tmp_path: Path) -> None:
    base = _write(
        tmp_path,
        "base.yml",
        HEADER
        + "networks: {a: {}, b: {}}\n"
        + "services:\n  web:\n    image: app:1\n    command: [serve, --debug]\n"
        + "    environment: {A: '1', B: '2'}\n    networks: [a]\n    dns: [10.0.0.1]\n"
        + "    ports: ['8080:80', '9000:9000']\n    volumes: ['/data', '/logs']\n"
        + "    deploy:\n      replicas: 2\n      labels: [team=web]\n"
        + "      placement: {constraints: [node.role == worker], max_replicas_per_node: 3}\n",
    )
    override = _write(
        tmp_path,
        "prod.yml",
        "services:\n  web:\n    command: [serve]\n    environment: [B=20, C=30]\n"
        "    networks: {b: {aliases: [www]}}\n    dns: 10.0.0.2\n"
        "    ports: [{target: 80, published: 8080, protocol: tcp, mode: host}]\n"
        "    volumes: [{type: tmpfs, target: /logs}]\n"
        "    deploy:\n      replicas: 5\n      labels: {tier: front}\n"
        "      placement: {constraints: [node.labels.ssd == true]}\n",
    )
    spec = load_spec([base, override], environ={}).spec
    web = spec.services["web"]
    assert web.image == "app:1"
    assert web.command == ("serve",)  # replaced, not appended
    assert web.deploy.replicas == 5
    assert web.environment == {"A": "1", "B": "20", "C": "30"}  # list merged into mapping
    assert list(web.networks) == ["a", "b"]
    assert web.networks["b"].aliases == ("www",)
    assert web.dns == ("10.0.0.1", "10.0.0.2")  # sequences are appended
    assert [(port.published, port.mode) for port in web.ports] == [
        (8080, "host"),
        (9000, "ingress"),
    ]
    assert [(mount.target, mount.type) for mount in web.volumes] == [
        ("/data", "volume"),
        ("/logs", "tmpfs"),
    ]
    assert web.deploy.labels == {"team": "web", "tier": "front"}
    assert web.deploy.placement.constraints == ("node.role == worker", "node.labels.ssd == true")
    assert web.deploy.placement.max_replicas_per_node == 3
    assert set(spec.networks) == {"a", "b"}


def test_override_and_reset_tags(tmp_path: Path) -> None:
    base = _write(
        tmp_path,
        "base.yml",
        HEADER
        + "services:\n  web:\n    image: app\n    dns: [10.0.0.1]\n    hostname: web\n"
        + "    deploy:\n      placement: {constraints: [node.role == worker]}\n",
    )
    override = _write(
        tmp_path,
        "prod.yml",
        "services:\n  web:\n    dns: !override [10.0.0.2]\n    hostname: !reset null\n"
        "    deploy:\n      placement:\n        constraints: !override [node.role == manager]\n",
    )
    web = load_spec([base, override], environ={}).spec.services["web"]
    assert web.dns == ("10.0.0.2",)
    assert web.hostname is None
    assert web.deploy.placement.constraints == ("node.role == manager",)


def test_files_that_name_different_stacks_are_an_error(tmp_path: Path) -> None:
    one = _write(tmp_path, "one.yml", HEADER + "services:\n  web: {image: a}\n")
    two = _write(tmp_path, "two.yml", "x-converge:\n  stack: blog\n")
    with pytest.raises(SpecError, match="the files name different stacks: 'blog' here"):
        load_spec([one, two], environ={})
    # A compose project name that differs from x-converge.stack gives way to it.
    named = _write(tmp_path, "named.yml", "name: project\n")
    assert load_spec([one, named], environ={}).spec.stack == "shop"


def test_the_stack_comes_from_the_command_line_or_the_files(tmp_path: Path) -> None:
    plain = _write(tmp_path, "plain.yml", "services:\n  web: {image: a}\n")
    with pytest.raises(SpecError, match="no stack name: give STACK on the command line"):
        load_spec([plain], environ={})
    assert load_spec([plain], environ={}, stack="shop").spec.stack == "shop"
    assert load_spec([plain], environ={}, require_stack=False).spec.stack == ""
    named = _write(tmp_path, "named.yml", "name: project\nservices:\n  web: {image: a}\n")
    assert load_spec([named], environ={}).spec.stack == "project"
    # docker stack deploy -c F STACK: the command line wins over compose's project name ...
    assert load_spec([named], environ={}, stack="shop").spec.stack == "shop"
    # ... and over converge's own x-converge.stack, with a warning (a copy of a stack).
    ours = _write(tmp_path, "ours.yml", HEADER)
    copied = load_spec([ours], environ={}, stack="blog")
    assert copied.spec.stack == "blog"
    assert copied.warnings == (
        f"{ours}:2: x-converge.stack: the file names stack 'shop'; deploying it as stack "
        "'blog', as the command line says",
    )
    assert load_spec([ours], environ={}, stack="shop").warnings == ()


def test_merge_order_matters(tmp_path: Path) -> None:
    one = _write(tmp_path, "one.yml", HEADER + "services:\n  web: {image: one}\n")
    two = _write(tmp_path, "two.yml", HEADER + "services:\n  web: {image: two}\n")
    assert load_spec([one, two], environ={}).spec.services["web"].image == "two"
    assert load_spec([two, one], environ={}).spec.services["web"].image == "one"


def test_an_empty_entry_in_an_override_keeps_the_base(tmp_path: Path) -> None:
    base = _write(tmp_path, "base.yml", HEADER + "volumes:\n  data: {driver: local}\n")
    override = _write(tmp_path, "override.yml", "volumes:\n  data:\n")
    assert load_spec([base, override], environ={}).spec.volumes["data"].driver is None


def test_errors_point_into_the_file_that_gave_the_value(tmp_path: Path) -> None:
    base = _write(tmp_path, "base.yml", HEADER + "services:\n  web:\n    image: app\n")
    override = _write(
        tmp_path, "prod.yml", "services:\n  web:\n    deploy:\n      replicas: many\n"
    )
    with pytest.raises(SpecError) as caught:
        load_spec([base, override], environ={})
    assert caught.value.problems == (
        SpecProblem(
            str(override),
            4,
            7,
            "services.web.deploy.replicas",
            "expected a whole number, got 'many'",
        ),
    )


def test_problems_of_every_file_are_reported_together(tmp_path: Path) -> None:
    one = _write(tmp_path, "one.yml", "x-converge:\n  stack: [\n")
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


def test_x_keys_are_ignored_in_every_compose_mapping() -> None:
    assert _load("x-anything: {whatever: [1, 2]}\n").spec.services == {}
    spec = _load("services:\n  x-web:\n    image: app\n    x-note: hi\n").spec
    assert spec.services["x-web"].image == "app"
    assert _error("services:\n  web:\n    image: app\n    colour: blue\n") == (
        "spec.yml:6:5: services.web.colour: unknown field 'colour'"
    )


def test_keys_swarm_ignores_are_warnings_with_their_place() -> None:
    body = (
        "services:\n  web:\n    image: app\n    build: .\n    container_name: web\n"
        "    links: [db]\n    ports: ['127.0.0.1:80:80']\n"
        "    volumes: [{type: tmpfs, target: /t, tmpfs: {mode: 01777}}]\n"
    )
    loaded = _load(body)
    assert loaded.warnings == (
        "spec.yml:6: services.web.build: ignored by swarm (build and push the image first)",
        "spec.yml:7: services.web.container_name: ignored by swarm (a swarm names the "
        "containers of a service's tasks itself)",
        "spec.yml:8: services.web.links: ignored by swarm",
        "spec.yml:9: services.web.ports[0]: the host IP is ignored: a swarm service listens on "
        "every address",
        "spec.yml:10: services.web.volumes[0].tmpfs.mode: ignored, as by docker stack deploy "
        "(the tmpfs mode is not sent)",
    )


def test_a_network_key_swarm_ignores_is_a_warning_with_its_place() -> None:
    body = "services:\n  web: {image: app, networks: [v6]}\nnetworks:\n  v6: {enable_ipv6: true}\n"
    assert _load(body).warnings == ("spec.yml:6: networks.v6.enable_ipv6: ignored by swarm",)


def test_did_you_mean_knows_compose_and_converge_names() -> None:
    body = "replicas: 2\nservices:\n  web:\n    image: app\n    env: {A: 1}\n    replicas: 2\n"
    assert _error(body).splitlines() == [
        "spec.yml:3:1: replicas: unknown field 'replicas'; expected one of version, name, "
        "services, networks, volumes, secrets, configs, x-converge",
        "spec.yml:7:5: services.web.env: unknown field 'env'; did you mean 'environment'?",
        "spec.yml:8:5: services.web.replicas: unknown field 'replicas'; did you mean "
        "'deploy.replicas'?",
    ]
    # Not x-converge.nodes, which is refused since the cluster spec owns the nodes.
    assert _error("nodes: {}\n") == (
        "spec.yml:3:1: nodes: unknown field 'nodes'; did you mean 'x-converge.cluster.nodes'?"
    )


def test_yaml_merge_keys_are_not_duplicates() -> None:
    body = "x-d: &d {image: app, init: true}\nservices:\n  web:\n    <<: *d\n    init: false\n"
    assert _load(body).spec.services["web"].init is False


def test_empty_entries_declare_defaults() -> None:
    spec = _load("networks:\n  net:\nvolumes:\n  data:\n").spec
    assert spec.networks["net"].driver is None
    assert spec.volumes["data"].driver is None
    spec = load_spec_text(
        "x-converge:\n  stack: shop\n  cluster:\n    nodes:\n      manager:\n", "s.yml", {}
    ).spec
    assert spec.nodes["manager"].role is None


def test_all_problems_are_reported_in_file_order() -> None:
    body = (
        "services:\n  b:\n    image: app\n    deploy: {replicas: x}\n"
        "  a:\n    image: app\n    deploy:\n      mode: nope\n      replicas: y\n"
    )
    assert _error(body).splitlines() == [
        "spec.yml:6:14: services.b.deploy.replicas: expected a whole number, got 'x'",
        "spec.yml:10:7: services.a.deploy.mode: expected 'replicated', 'global', "
        "'replicated-job' or 'global-job', got 'nope'",
        "spec.yml:11:7: services.a.deploy.replicas: expected a whole number, got 'y'",
    ]


# ---------------------------------------------------------------------------------------------
# Variable files and environments, as compose and docker stack deploy read them


def test_a_dot_env_file_beside_the_first_file_supplies_variables(tmp_path: Path) -> None:
    _write(tmp_path, ".env", "# comment\nTAG=1.2\nexport REG='my.registry'\nQ=\"a b\"\n")
    spec_file = _write(
        tmp_path, "stack.yml", HEADER + "services:\n  web: {image: '${REG}/x:${TAG}'}\n"
    )
    loaded = load_spec([spec_file], environ={})
    assert loaded.spec.services["web"].image == "my.registry/x:1.2"
    # The environment wins over the file, as in compose.
    assert load_spec([spec_file], environ={"TAG": "9"}).spec.services["web"].image == (
        "my.registry/x:9"
    )
    # --env-file replaces .env.
    other = _write(tmp_path, "prod.env", "TAG=3\nREG=prod\n")
    assert load_spec([spec_file], environ={}, env_files=[other]).spec.services["web"].image == (
        "prod/x:3"
    )
    with pytest.raises(SpecError, match="cannot read the file"):
        load_spec([spec_file], environ={}, env_files=[tmp_path / "missing.env"])


def test_env_file_and_bare_environment_entries(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "web.env",
        "# docker's format: taken as written\nA=1\nQUOTED='x'\nFROM_SHELL\nGONE\n",
    )
    spec_file = _write(
        tmp_path,
        "stack.yml",
        HEADER
        + "services:\n  web:\n    image: app\n    env_file: web.env\n"
        + "    environment: [A=2, BARE, EMPTY=, KEPT=k]\n",
    )
    environ = {"FROM_SHELL": "shell", "BARE": "bare", "EMPTY": "filled"}
    loaded = load_spec([spec_file], environ=environ)
    # environment wins over env_file; a bare or empty entry takes the variable when it is set.
    assert loaded.spec.services["web"].environment == {
        "A": "2",
        "QUOTED": "'x'",
        "FROM_SHELL": "shell",
        "BARE": "bare",
        "EMPTY": "filled",
        "KEPT": "k",
    }
    path = ("services", "web", "environment")
    assert loaded.is_sensitive((*path, "QUOTED"))
    assert loaded.is_sensitive((*path, "BARE"))
    assert not loaded.is_sensitive((*path, "KEPT"))
    assert not loaded.is_sensitive((*path, "A"))
    # Unset, a bare entry stays bare: docker sends the name alone.
    unset = load_spec([spec_file], environ={})
    assert unset.spec.services["web"].environment["BARE"] is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "",
            "spec.yml:1:1: no stack name: give STACK on the command line, or x-converge.stack "
            "or name in the file",
        ),
        (
            "'just text'",
            "spec.yml:1:1: a compose file is a mapping of sections (services, networks, "
            "...), got a string",
        ),
        (
            "42",
            "spec.yml:1:1: a compose file is a mapping of sections (services, networks, "
            "...), got 42",
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


# ---------------------------------------------------------------------------------------------
# The fast path: libyaml first, positions only when something is reported

PLAIN = HEADER + (
    "services:\n"
    "  web:\n"
    "    image: app:1\n"
    "    environment: {A: '1', B: 'on', C: 2}\n"
    "    deploy: {replicas: 2, labels: [x=1]}\n"
    "  db:\n"
    "    image: db:1\n"
    "    networks: [back]\n"
    "networks:\n"
    "  back: {}\n"
)


def _without_positions(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("positions were computed for a spec with nothing to report")

    monkeypatch.setattr("converge.loader._record_positions", refuse)


def test_a_valid_spec_loads_without_computing_positions(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = load_spec_text(PLAIN, "spec.yml", {})
    _without_positions(monkeypatch)
    assert load_spec_text(PLAIN, "spec.yml", {}) == expected


def test_an_error_found_after_the_fast_parse_still_names_line_and_field() -> None:
    text = PLAIN.replace("replicas: 2", "replicas: two")
    with pytest.raises(SpecError) as caught:
        load_spec_text(text, "spec.yml", {})
    assert str(caught.value) == (
        "spec.yml:7:14: services.web.deploy.replicas: expected a whole number, got 'two'"
    )


@pytest.mark.parametrize(
    "text",
    [
        # aliases and merge keys take the careful path, which checks cycles and expansion
        HEADER + "x-base: &base {image: app:1}\nservices:\n  web: *base\n  api:\n    <<: *base\n",
        # the same values as PLAIN, written in flow and block styles, quoted and not
        PLAIN.replace("{A: '1', B: 'on', C: 2}", "\n      A: '1'\n      B: 'on'\n      C: 2"),
        PLAIN.replace("app:1", '"app:1"').replace("[back]", "\n      - back"),
        # integers in each form YAML 1.1 reads (the fast path reads plain decimals itself)
        PLAIN.replace("{A: '1', B: 'on', C: 2}", "{A: 0, B: 010, C: 1_000, D: +5, E: 0x1f, F: 12}"),
        # an anchor and an alias inside one value's text, not YAML's
        PLAIN.replace("app:1", "'app:1&x=*y'"),
    ],
)
def test_fast_and_careful_paths_give_the_same_spec(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = load_spec_text(text, "spec.yml", {})
    monkeypatch.setattr("converge.loader._parse_fast", lambda file, text: None)
    assert load_spec_text(text, "spec.yml", {}) == fast


def test_a_duplicate_key_is_reported_with_its_position() -> None:
    text = PLAIN.replace("    image: db:1\n", "    image: db:1\n    image: db:2\n")
    with pytest.raises(SpecError) as caught:
        load_spec_text(text, "spec.yml", {})
    assert "spec.yml:10:5: services.db.image: key 'image' is given twice" in str(caught.value)


def test_the_collector_is_running_again_after_a_load() -> None:
    import gc

    load_spec_text(PLAIN, "spec.yml", {})
    assert gc.isenabled()
    with pytest.raises(SpecError):
        load_spec_text(PLAIN + "bogus: 1\n", "spec.yml", {})
    assert gc.isenabled()


def test_text_only_libyaml_accepts_reports_pyyamls_error_once_a_problem_needs_a_line() -> None:
    # A byte-order mark inside the text: libyaml reads on, PyYAML (which places problems) stops.
    text = HEADER.replace("x-converge:\n", "x-converge:\n\ufeff\n") + "services:\n  web: {}\n"
    with pytest.raises(SpecError) as caught:
        load_spec_text(text, "spec.yml", {})
    assert "invalid YAML" in str(caught.value)


def test_text_with_a_lone_surrogate_is_refused_with_its_position() -> None:
    """Found by the property test: text from Python that no file can hold."""
    with pytest.raises(SpecError) as refused:
        load_spec_text("x-converge:\n  stack: a\n\ud800 services: {}\n", "fuzz.yml", {})
    assert str(refused.value.problems[0]) == (
        "fuzz.yml:3:1: not valid text: character '\\ud800' cannot be encoded as UTF-8"
    )
