"""The JSON Schema of the spec format, for editors (yaml-language-server) and CI checks."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from converge import spec as spec_models
from converge.spec import Spec

__all__ = ["SCHEMA_ID", "spec_json_schema"]

SCHEMA_ID = "https://converge.dev/schema/spec-v1.json"
_REF_TEMPLATE = "#/$defs/{model}"


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
    """The JSON Schema (draft 2020-12) that every valid spec file satisfies.

    Top-level keys starting with ``x-`` are allowed, for YAML anchors, as in compose.
    """
    schema = Spec.model_json_schema(mode="validation", ref_template=_REF_TEMPLATE)
    pending: dict[str, Any] = schema.pop("$defs", {})
    schema = _resolve_placeholders(schema, pending)
    definitions: dict[str, Any] = {}
    while pending:
        name, body = pending.popitem()
        found: dict[str, Any] = {}
        definitions[name] = _resolve_placeholders(body, found)
        pending.update({key: value for key, value in found.items() if key not in definitions})
    for section in ("nodes", "networks", "volumes"):
        _allow_empty_entries(schema["properties"][section])
    for section in schema["properties"].values():
        _names_must_match(section)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "converge spec",
        "patternProperties": {"^x-": {}},
        "additionalProperties": False,
        "$defs": definitions,
    }
