"""Property: whatever text it is given, the loader returns a LoadedSpec or raises SpecError.

Random YAML-ish text, random YAML documents built from the spec's own vocabulary, and
mutations of real specs (lines deleted, duplicated or swapped, characters changed, values
swapped for random scalars) all go through ``load_spec_text``; anything but a LoadedSpec or a
SpecError (a crash, a traceback) is a bug.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from converge.errors import SpecError
from converge.loader import LoadedSpec, load_spec_text

ROOT = Path(__file__).resolve().parents[2]
GOOD = ROOT / "tests" / "fixtures" / "specs" / "good"
SEEDS = sorted(
    [*(ROOT / "specs").glob("*.yml"), *GOOD.glob("*.yml"), GOOD / "override" / "1-base.yml"]
)
SEED_TEXTS = [path.read_text(encoding="utf-8") for path in SEEDS]
ENVIRON = {"TAG": "1.0", "EMPTY": "", "MYSQL_ROOT_PASSWORD": "pw", "DB_PASSWORD": "x"}

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _outcome(text: str) -> LoadedSpec | SpecError:
    try:
        return load_spec_text(text, "fuzz.yml", ENVIRON)
    except SpecError as error:
        return error


def _load_or_spec_error(text: str) -> None:
    outcome = _outcome(text)  # anything else raised fails the test with its traceback
    if isinstance(outcome, SpecError):
        assert outcome.problems
        assert all(problem.file == "fuzz.yml" and problem.message for problem in outcome.problems)
        assert len(str(outcome).splitlines()) >= len(outcome.problems)
    else:
        assert isinstance(outcome, LoadedSpec)


# ---------------------------------------------------------------------------------------------
# Random text

YAMLISH = st.sampled_from(
    [
        *":-[]{},#&*!|>'\"%@`?$ \t\n",
        "version: '3.8'\n",
        "x-converge:\n  stack: s\n",
        "services:\n",
        "  web:\n",
        "    image: x\n",
        "<<: ",
        "${",
        "}",
        "---\n",
        "  ",
        "- ",
        "~",
        ".inf",
        ".nan",
        "0x1F",
        "0o17",
        "1e400",
        "!!binary ",
        "!!python/object ",
        "\x00",
        "\ufeff",
        "é",
        "\u2028",
    ]
)


@SETTINGS
@given(st.lists(st.one_of(YAMLISH, st.text(max_size=5)), max_size=40).map("".join))
def test_random_text(text: str) -> None:
    _load_or_spec_error(text)


# ---------------------------------------------------------------------------------------------
# Random documents in the spec's vocabulary

WORDS = [
    "version", "stack", "nodes", "networks", "volumes", "services", "loadbalancer", "image",
    "replicas", "mode", "global", "replicated", "ports", "mounts", "env", "placement",
    "constraints", "max_replicas_per_node", "target", "published", "protocol", "host",
    "ingress", "type", "source", "tmpfs", "bind", "volume", "external", "subnet", "gateway",
    "role", "labels", "availability", "drain", "frontends", "backends", "service", "port",
    "method", "dns", "tasks", "node", "healthcheck", "test", "resources", "limits", "cpus",
    "memory", "update_config", "delay", "x-anchor", "name", "attachable", "web", "db",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.sampled_from(
        [
            "1",
            "3000:80",
            "data:/d",
            "node.role == worker",
            "10s",
            "512M",
            "0.5",
            "${TAG}",
            "${NOPE:?x}",
            "$$",
            "10.0.0.0/8",
            "10.0.0.1",
            "a=b",
            "/abs",
            "rel/path",
            "",
        ]
    ),
    st.text(max_size=8),
)
KEYS = st.one_of(st.sampled_from(WORDS), st.text(max_size=6), st.integers(-3, 3))
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(KEYS, children, max_size=5),
    ),
    max_leaves=30,
)


@SETTINGS
@given(DOCUMENTS)
def test_random_documents(document: Any) -> None:
    _load_or_spec_error(yaml.safe_dump(document, allow_unicode=True))


@SETTINGS
@given(st.dictionaries(st.sampled_from(WORDS), DOCUMENTS, max_size=6))
def test_random_documents_with_a_valid_header(document: dict[str, Any]) -> None:
    _load_or_spec_error(yaml.safe_dump({"version": 1, "stack": "fuzz", **document}))


# ---------------------------------------------------------------------------------------------
# Mutations of real specs

_VALUE = re.compile(r"(?<=: )[^\s#{}\[\],][^#\n{}\[\],]*")


@st.composite
def mutated_specs(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(SEED_TEXTS)).splitlines(keepends=True)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        if not lines:
            break
        index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        operation = draw(
            st.sampled_from(["delete", "duplicate", "swap", "char", "value", "indent", "insert"])
        )
        line = lines[index]
        if operation == "delete":
            del lines[index]
        elif operation == "duplicate":
            lines.insert(index, line)
        elif operation == "swap":
            other = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines[index], lines[other] = lines[other], line
        elif operation == "char" and line:
            position = draw(st.integers(min_value=0, max_value=len(line) - 1))
            character = draw(st.one_of(YAMLISH, st.characters()))
            lines[index] = line[:position] + character + line[position + 1 :]
        elif operation == "value":
            matches = list(_VALUE.finditer(line))
            if matches:
                match = draw(st.sampled_from(matches))
                scalar = draw(SCALARS)
                text = yaml.safe_dump(scalar, default_flow_style=True).removesuffix("\n...\n")
                text = text.strip().replace("\n", " ")
                lines[index] = line[: match.start()] + text + line[match.end() :]
        elif operation == "indent":
            lines[index] = draw(st.sampled_from(["", " ", "  ", "\t"])) + line.lstrip(" ")
        else:
            lines.insert(index, draw(st.one_of(YAMLISH, st.text(max_size=10))) + "\n")
    return "".join(lines)


@SETTINGS
@given(mutated_specs())
def test_mutated_specs(text: str) -> None:
    _load_or_spec_error(text)


def test_the_seeds_load() -> None:
    assert len(SEED_TEXTS) >= 5
    for text in SEED_TEXTS:
        assert isinstance(load_spec_text(text, "seed.yml", ENVIRON), LoadedSpec)
