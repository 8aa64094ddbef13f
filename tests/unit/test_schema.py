"""The JSON Schema of the spec: valid Draft 2020-12, accepts every good spec, never drifts."""

from __future__ import annotations

import json
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


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = spec_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _document(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


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


@pytest.mark.parametrize("path", WHOLE_SPECS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_the_schema_accepts_every_good_spec(
    path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    errors = [
        f"{list(error.path)}: {error.message}" for error in validator.iter_errors(_document(path))
    ]
    assert errors == []


def test_an_override_file_is_a_partial_spec(validator: jsonschema.Draft202012Validator) -> None:
    document = _document(GOOD / "override" / "2-prod.yml")
    messages = {error.message for error in validator.iter_errors(document)}
    assert messages == {"'version' is a required property", "'stack' is a required property"}


# Bad fixtures whose fault is one of type or shape, which a schema can see (the others are
# cross-references, placement, interpolation and YAML syntax, which only the loader can).
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
    "env_list_bad_entry",
    "lb_unknown_key",
    "missing_image",
    "missing_stack",
    "missing_version",
    "negative_replicas",
    "not_a_mapping",
    "port_out_of_range",
    "port_with_host_ip",
    "service_not_a_mapping",
    "unknown_key_did_you_mean",
    "unknown_nested_key",
    "unknown_top_level_key",
    "version_2",
    "wrong_type_replicas",
]


@pytest.mark.parametrize("case", SCHEMA_VISIBLE)
def test_the_schema_rejects_bad_types_and_shapes(
    case: str, validator: jsonschema.Draft202012Validator
) -> None:
    assert list(validator.iter_errors(_document(BAD / f"{case}.yml")))


def test_x_keys_are_allowed_at_the_top_only(validator: jsonschema.Draft202012Validator) -> None:
    base = {"version": 1, "stack": "s"}
    assert validator.is_valid({**base, "x-anything": {"deep": [1]}})
    assert not validator.is_valid({**base, "services": {"web": {"image": "a", "x-note": 1}}})


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
