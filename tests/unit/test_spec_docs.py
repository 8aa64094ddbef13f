"""docs/spec.md is generated from the models and covers every field and every guide topic."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from converge import spec as spec_models
from converge.docgen import _is_ignored, render_spec_reference

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "spec.md"


def test_the_committed_reference_is_the_generated_one() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render_spec_reference(), (
        "docs/spec.md is stale: run `python -m converge.docgen > docs/spec.md`"
    )


def _spec_models() -> list[type[BaseModel]]:
    return [
        value
        for value in vars(spec_models).values()
        if isinstance(value, type)
        and issubclass(value, BaseModel)
        and value.__module__ == spec_models.__name__
        and value is not spec_models.Model
    ]


def test_every_model_and_field_is_documented() -> None:
    text = render_spec_reference()
    for model in _spec_models():
        assert f"### {model.__name__}\n" in text
        section = text.split(f"### {model.__name__}\n", 1)[1].split("\n### ", 1)[0]
        for field_name, field in model.model_fields.items():
            name = field.alias or field_name
            if _is_ignored(field):
                assert f"`{name}`" in section.split("Accepted and ignored, as by swarm:")[1]
                continue
            row = re.search(rf"^\| `{name}` \|(.*)\|$", section, re.MULTILINE)
            assert row, f"{model.__name__}.{name} is missing"
            kind, default, description = (cell.strip() for cell in row[1].split(" | "))
            assert kind, f"{model.__name__}.{name}"
            assert default, f"{model.__name__}.{name}"
            assert description, f"{model.__name__}.{name} has no description"


def test_types_are_in_user_terms() -> None:
    text = render_spec_reference()
    rows = {
        "stop_grace_period": "duration",
        "memory": "size",
        "cpus": "number of CPUs",
        "constraints": "list of constraint",
        "ports": "list of ports",
        "volumes": "list of volumes",
        "command": "command",
        "replicas": "integer (>= 0, <= 10000)",
        "stack": "stack name",
        "target": "absolute path",
        "extra_hosts": "list of `HOST:IP`, or mapping of host to IP",
    }
    for name, kind in rows.items():
        assert f"| `{name}` | {kind} |" in text, name
    assert "| `connect` | duration | `500ms` |" in text
    assert (
        "| `mode` | `replicated`, `global`, `replicated-job` or `global-job` | `replicated` |"
        in text
    )


def test_the_compose_sections_are_there() -> None:
    text = render_spec_reference()
    for heading in (
        "## What a file means",
        "## What converge adds: x-converge",
        "## Keys swarm ignores",
        "## Differences from docker stack deploy",
        "## Environment files",
    ):
        assert f"\n{heading}\n" in text
    for key in ("build", "container_name", "links", "network_mode"):
        assert f"`{key}`" in text.split("## Keys swarm ignores")[1].split("\n## ")[0]
    differences = text.split("## Differences from docker stack deploy")[1].split("\n## ")[0]
    for topic in (".env", "--env-file", "depends_on", "dns_opt", "Secrets", "--prune"):
        assert topic in differences


def test_every_link_has_a_heading() -> None:
    text = render_spec_reference()
    anchors = set(re.findall(r"\]\(#([a-z0-9-]+)\)", text))
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in text.splitlines()
        if line.startswith("#")
    }
    assert anchors
    assert anchors <= headings


def test_the_guide_sections_are_there() -> None:
    text = render_spec_reference()
    for heading in (
        "## Types",
        "## Short forms",
        "## Variable interpolation",
        "## Secrets",
        "## Several files",
        "## `x-` keys and anchors",
        "## Editors",
    ):
        assert f"\n{heading}\n" in text
    assert "# yaml-language-server: $schema=../docs/converge.schema.json" in text
    for written in ("${VAR:-default}", "${VAR-default}", "${VAR:?message}", "${VAR:+alternative}"):
        assert written in text
    assert "`PASS`, `SECRET`, `TOKEN`, `KEY`, `CREDENTIAL` or `PRIVATE`" in text
