"""The JSON Schema of the compose format: valid Draft 2020-12, accepts every good file (and
override fragments), works with ECMA-262 validators, never drifts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from converge.cli import app
from converge.schema import spec_json_schema

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "converge.schema.json"
GOOD = ROOT / "tests" / "fixtures" / "specs" / "good"
BAD = ROOT / "tests" / "fixtures" / "specs" / "bad"
WHOLE_SPECS = sorted(
    [*(ROOT / "specs").glob("*.yml"), *GOOD.glob("*.yml"), GOOD / "override" / "1-base.yml"]
)
STACK_DEPLOY = ROOT / "tests" / "fixtures" / "stackdeploy"


def _has_content(path: Path) -> bool:
    """False for a file of comments only (a plan fixture's empty override): nothing to check."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return any(line.strip() and not line.lstrip().startswith("#") for line in lines)


# Every compose file of the repository (scripts/check-schema.sh checks the same with ajv): the
# specs, the tutorial's files, and the test compose files (whole files and override fragments).
COMPOSE_FILES = sorted(
    path
    for path in {
        *WHOLE_SPECS,
        *(GOOD / "override").glob("*.yml"),
        *STACK_DEPLOY.glob("*.yml"),
        *(STACK_DEPLOY / "twofiles").glob("*.yml"),
        ROOT / "tests" / "fixtures" / "recorded" / "fxrec.yml",
        *(ROOT / "tests" / "fixtures" / "plans").glob("*/*.yml"),
        *(ROOT / "docs" / "tutorial").glob("*.yml"),
    }
    if _has_content(path)
)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = spec_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


class _TaggedLoader(yaml.SafeLoader):
    """compose's !reset and !override tags, read as an editor would see the values."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    # A scalar keeps the type YAML gives it untagged: `!reset null` is null, `!override 3` is 3.
    plain = node.style is None
    tag = loader.resolve(yaml.ScalarNode, node.value, (plain, not plain))
    untagged = yaml.ScalarNode(tag, node.value, node.start_mark, node.end_mark, node.style)
    return loader.construct_object(untagged)


_TaggedLoader.add_constructor("!reset", _tagged)
_TaggedLoader.add_constructor("!override", _tagged)


def _document(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_TaggedLoader)


def test_the_schema_is_draft_2020_12() -> None:
    schema = spec_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft202012Validator


def test_every_reference_resolves(validator: jsonschema.Draft202012Validator) -> None:
    text = json.dumps(validator.schema)
    names = {part.split('"')[0] for part in text.split('"$ref": "#/$defs/')[1:]}
    assert names
    assert names <= set(validator.schema["$defs"])


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_the_schema_accepts_every_good_spec(
    path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    errors = [
        f"{list(error.path)}: {error.message}" for error in validator.iter_errors(_document(path))
    ]
    assert errors == []


def test_an_override_file_is_a_partial_spec(validator: jsonschema.Draft202012Validator) -> None:
    # No required keys: an override file names no image and no stack.
    assert list(validator.iter_errors(_document(GOOD / "override" / "2-prod.yml"))) == []


# Bad fixtures whose fault is one of type or shape, which a schema can see (the others are
# cross-references, placement, interpolation, YAML syntax and completeness, which only the
# loader can).
SCHEMA_VISIBLE = [
    "absurd_replicas",
    "bad_constraint_syntax",
    "bad_cpus",
    "bad_duration",
    "bad_enum_mode",
    "bad_enum_node_availability",
    "bad_memory",
    "bad_node_role",
    "bad_port_string",
    "bad_service_name",
    "bad_stack_name",
    "empty_image",
    "ignore_unknown_field",
    "lb_unknown_key",
    "negative_replicas",
    "not_a_mapping",
    "port_out_of_range",
    "service_not_a_mapping",
    "unknown_key_did_you_mean",
    "unknown_nested_key",
    "unknown_top_level_key",
    "wrong_type_replicas",
]


@pytest.mark.parametrize("case", SCHEMA_VISIBLE)
def test_the_schema_rejects_bad_types_and_shapes(
    case: str, validator: jsonschema.Draft202012Validator
) -> None:
    assert list(validator.iter_errors(_document(BAD / f"{case}.yml")))


def test_x_keys_are_allowed_in_every_compose_mapping(
    validator: jsonschema.Draft202012Validator,
) -> None:
    base = {"x-converge": {"stack": "s"}}
    assert validator.is_valid({**base, "x-anything": {"deep": [1]}})
    assert validator.is_valid({**base, "services": {"web": {"image": "a", "x-note": 1}}})
    assert validator.is_valid({**base, "services": {"web": {"deploy": {"x-note": 1}}}})
    assert not validator.is_valid({**base, "services": {"web": {"image": "a", "note": 1}}})


@pytest.mark.parametrize(
    "service",
    [
        {"deploy": {"replicas": "${REPLICAS}"}},
        {"deploy": {"replicas": "${REPLICAS:-2}"}},
        {"init": "$INIT"},
        {"ports": ["${PORT}:80"]},
        {"deploy": {"placement": {"constraints": ["${CONSTRAINT}"]}}},
        {"stop_grace_period": "${GRACE}"},
        # One of a closed set of words (the loader checks the value once it is known).
        {"deploy": {"mode": "${MODE:-global}"}},
        {"deploy": {"endpoint_mode": "$ENDPOINT_MODE"}},
        {"deploy": {"update_config": {"order": "${ORDER}"}}},
    ],
)
def test_a_variable_is_accepted_where_a_value_is_expected(
    service: dict[str, Any], validator: jsonschema.Draft202012Validator
) -> None:
    assert validator.is_valid({"services": {"web": service}})


def test_a_string_without_a_variable_is_still_checked(
    validator: jsonschema.Draft202012Validator,
) -> None:
    assert not validator.is_valid({"services": {"web": {"deploy": {"replicas": "three"}}}})
    assert not validator.is_valid({"services": {"web": {"ports": ["80:http"]}}})
    assert not validator.is_valid({"services": {"web": {"deploy": {"mode": "globle"}}}})


def test_a_variable_is_accepted_for_a_node_availability(
    validator: jsonschema.Draft202012Validator,
) -> None:
    # docs/tutorial/exampleapp.yml drains a node with WORKER2=drain.
    def cluster(availability: str) -> dict[str, Any]:
        return {"x-converge": {"cluster": {"nodes": {"w1": {"availability": availability}}}}}

    assert validator.is_valid(cluster("${WORKER2:-active}"))
    assert not validator.is_valid(cluster("drained"))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("replicas: !reset null", None),
        ("replicas: !override 3", 3),
        ("replicas: !reset 0", 0),
    ],
)
def test_a_tagged_scalar_keeps_its_yaml_type(
    text: str, value: object, validator: jsonschema.Draft202012Validator, tmp_path: Path
) -> None:
    # As compose reads it: `!reset null` is null (the key goes back to its default), not the
    # text 'null'; `!override 3` is the number 3.
    path = tmp_path / "override.yml"
    path.write_text(f"services:\n  web:\n    deploy:\n      {text}\n", encoding="utf-8")
    document = _document(path)
    assert document["services"]["web"]["deploy"]["replicas"] == value
    assert validator.is_valid(document)


def test_the_schema_uses_ecma_262_regular_expressions_only() -> None:
    text = json.dumps(spec_json_schema())
    assert "(?P<" not in text
    assert "(?i)" not in text
    for pattern in _patterns(spec_json_schema()):
        # What ECMA-262 lacks and Python has: inline flags, named groups, possessives.
        assert not re.search(r"\(\?[a-zA-Z]|\(\?P|\\A|\\Z", pattern), pattern


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return found + [item for value in node.values() for item in _patterns(value)]
    if isinstance(node, list):
        return [item for value in node for item in _patterns(value)]
    return []


def test_the_schema_claims_no_foreign_identity() -> None:
    assert "$id" not in spec_json_schema()


def test_the_committed_schema_is_the_generated_one() -> None:
    generated = json.dumps(spec_json_schema(), indent=2) + "\n"
    assert COMMITTED.read_text(encoding="utf-8") == generated, (
        "docs/converge.schema.json is stale: run `converge schema > docs/converge.schema.json`"
    )


def test_converge_schema_prints_the_committed_file() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    assert result.stdout == COMMITTED.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", WHOLE_SPECS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_specs_point_editors_at_the_schema(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    target = (path.parent / first.split("$schema=", 1)[1]).resolve()
    assert target == COMMITTED


AJV = ROOT / "scripts" / "schema-check"


@pytest.mark.skipif(
    shutil.which("node") is None or not (AJV / "node_modules" / "ajv").is_dir(),
    reason="node and scripts/schema-check's packages (sh scripts/check-schema.sh installs them)",
)
def test_a_javascript_validator_accepts_every_compose_file_and_refuses_bad_ones(
    tmp_path: Path,
) -> None:
    def ajv(*files: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["node", str(AJV / "check.mjs"), str(COMMITTED), *map(str, files)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    accepted = ajv(*COMPOSE_FILES)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    # Tagged scalars keep their YAML type here too.
    tagged = tmp_path / "tagged.yml"
    tagged.write_text(
        "services:\n  web:\n    deploy:\n      replicas: !reset null\n"
        "      mode: !override global\n    init: !override true\n",
        encoding="utf-8",
    )
    assert ajv(tagged).returncode == 0, ajv(tagged).stdout
    for case in ("bad_enum_mode", "bad_port_string", "unknown_key_did_you_mean"):
        assert ajv(BAD / f"{case}.yml").returncode == 1, case
