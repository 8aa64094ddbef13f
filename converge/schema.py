"""The JSON Schema of the compose format converge reads, for editors and CI checks.

Made from the spec models, then adjusted so that the tools that read compose files accept it:
yaml-language-server (VS Code's YAML extension), check-jsonschema and ajv. So: ECMA-262 regular
expressions only (no ``(?P<name>``), a ``${VAR}`` accepted wherever a value could be written
through a variable (a number, a boolean, a string with a pattern or from a set of words), no
``required`` keys (an override file is a fragment; the loader checks completeness), ``x-`` keys
allowed in every mapping compose defines, and no ``$id`` on a host the project does not own. The
compose specification's own schema (compose-spec/compose-spec, ``schema/compose-spec.json``) is
the reference for the compose part.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from converge import spec as spec_models
from converge.spec import Spec

__all__ = ["VARIABLE_PATTERN", "spec_json_schema"]

_REF_TEMPLATE = "#/$defs/{model}"

VARIABLE_PATTERN = r"\$\{?[A-Za-z_]"
"""A string holding a variable (``${VAR}``, ``$VAR``): its value is only known at load time."""

_VARIABLE = {"type": "string", "pattern": VARIABLE_PATTERN}
_TYPED = frozenset({"integer", "number", "boolean"})


def _resolve_placeholders(node: Any, definitions: dict[str, Any]) -> Any:
    """Short forms (``"3000:80"``) declare their long form with ``x-converge-ref``: a
    placeholder, because Pydantic cannot take a ``$ref`` to a model it has not reached yet."""
    if isinstance(node, dict):
        name = node.get("x-converge-ref")
        if isinstance(name, str):
            model: type[BaseModel] = getattr(spec_models, name)
            schema = model.model_json_schema(ref_template=_REF_TEMPLATE)
            for nested_name, nested in schema.pop("$defs", {}).items():
                definitions.setdefault(nested_name, nested)
            definitions.setdefault(name, schema)
            return {"$ref": _REF_TEMPLATE.format(model=name)}
        return {key: _resolve_placeholders(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve_placeholders(item, definitions) for item in node]
    return node


def _ecma(pattern: str) -> str:
    """A Python regular expression as ECMA-262 reads it: named groups become plain groups."""
    return re.sub(r"\(\?P<\w+>", "(", pattern)


_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs"})
_SCHEMA_LISTS = frozenset({"anyOf", "allOf", "oneOf", "prefixItems"})
_SCHEMA_VALUES = frozenset({"items", "additionalProperties", "not", "propertyNames"})


def _adapt(node: Any) -> Any:
    """Every adjustment above, applied to one schema and the schemas below it."""
    if not isinstance(node, dict):
        return node
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            result[key] = {name: _adapt(item) for name, item in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            result[key] = [_adapt(item) for item in value]
        elif key in _SCHEMA_VALUES:
            result[key] = _adapt(value)
        elif key not in ("required", "title"):
            result[key] = value
    if isinstance(result.get("pattern"), str):
        result["pattern"] = _ecma(result["pattern"])
    if result.get("additionalProperties") is False and "properties" in result:
        result.setdefault("patternProperties", {})["^x-"] = {}
    types = result.get("type")
    typed = set(types) if isinstance(types, list) else {types}
    if typed & _TYPED and "string" not in typed:
        return {"anyOf": [result, _VARIABLE]}
    if "string" in typed and ("pattern" in result or "enum" in result):
        return {"anyOf": [result, _VARIABLE]}
    return result


def _allow_empty_entries(section: dict[str, Any]) -> None:
    """``productdata:`` with nothing under it is a valid entry (every setting default)."""
    for key in ("additionalProperties", "patternProperties"):
        if key == "additionalProperties" and isinstance(section.get(key), dict):
            section[key] = {"anyOf": [{"type": "null"}, section[key]]}
        elif key == "patternProperties" and key in section:
            section[key] = {
                pattern: {"anyOf": [{"type": "null"}, entry]}
                for pattern, entry in section[key].items()
            }


def _names_must_match(section: dict[str, Any]) -> None:
    """Pydantic writes a key pattern as ``patternProperties``, which leaves keys that do not
    match it unchecked; the spec refuses them, so the schema must too."""
    patterns = list(section.get("patternProperties", {}))
    if len(patterns) == 1:
        section["propertyNames"] = {**section.get("propertyNames", {}), "pattern": patterns[0]}


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) that every valid compose file (or fragment) satisfies."""
    schema = Spec.model_json_schema(mode="validation", ref_template=_REF_TEMPLATE)
    pending: dict[str, Any] = schema.pop("$defs", {})
    schema = _resolve_placeholders(schema, pending)
    definitions: dict[str, Any] = {}
    while pending:
        name, body = pending.popitem()
        found: dict[str, Any] = {}
        definitions[name] = _resolve_placeholders(body, found)
        pending.update({key: value for key, value in found.items() if key not in definitions})
    for section in ("networks", "volumes", "secrets", "configs"):
        _allow_empty_entries(schema["properties"][section])
    _allow_empty_entries(definitions["ClusterSpec"]["properties"]["nodes"])
    for section in schema["properties"].values():
        _names_must_match(section)
    body = _adapt({**schema, "$defs": definitions})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **body,
        "title": "converge: a compose file for docker stack deploy, with x-converge",
        "additionalProperties": False,
        "patternProperties": {"^x-": {}},
        "$defs": dict(sorted(body["$defs"].items())),
    }
