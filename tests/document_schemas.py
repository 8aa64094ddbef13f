"""Check a JSON document converge prints against its published schema (docs/schemas/).

Used by the unit tests (documents rendered from fixtures) and the integration tests (documents
the real commands print on the lab): ``assert_valid("plan", document)``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "schemas"
KINDS = ("plan", "apply", "drift", "status", "rollout", "error")


@cache
def validator(kind: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


def assert_valid(kind: str, document: Any) -> None:
    """Fail with every violation, each at its JSON path, unless ``document`` fits the schema.

    The document goes through JSON first, as the commands print it.
    """
    as_printed = json.loads(json.dumps(document, default=str))
    errors = sorted(validator(kind).iter_errors(as_printed), key=lambda error: error.json_path)
    assert not errors, f"{kind} document does not fit docs/schemas/{kind}.schema.json:\n" + (
        "\n".join(f"  {error.json_path}: {error.message}" for error in errors)
    )
