"""tests/constraints-lowest.txt pins every floor pyproject.toml declares, and nothing else.

scripts/test-lowest.sh runs the unit suite on those pins: a floor raised in one file and not in
the other would leave the lowest allowed release untested.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "tests" / "constraints-lowest.txt"
# Tools the lowest run does not use (see the constraints file).
UNPINNED = {"ruff", "mypy"}


def _name(text: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", text.strip())
    assert match, f"not a requirement: {text!r}"
    return re.sub(r"[-_.]+", "-", match.group()).lower()  # PEP 503 normalisation


def _release(version: str) -> tuple[int, ...]:
    """``6.0`` and ``6.0.0`` are the same release."""
    parts = [int(part) for part in version.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _floors() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = [*project["dependencies"]]
    for extra in project.get("optional-dependencies", {}).values():
        requirements.extend(extra)
    floors: dict[str, str] = {}
    for text in requirements:
        floor = re.search(r">=\s*([0-9][0-9.]*)", text)
        if floor and _name(text) not in UNPINNED:
            floors[_name(text)] = floor.group(1)
    return floors


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert re.fullmatch(r"[0-9][0-9.]*", version.strip()), (
                f"{CONSTRAINTS.name}: {line!r} is not an exact pin (name==version)"
            )
            pins[_name(name)] = version.strip()
    return pins


def test_every_floor_is_pinned_in_the_lowest_constraints() -> None:
    floors, pins = _floors(), _pins()
    assert floors, "no floors found in pyproject.toml"
    mismatched = {
        name: (floor, pins.get(name))
        for name, floor in floors.items()
        if name not in pins or _release(pins[name]) != _release(floor)
    }
    assert not mismatched, f"floor in pyproject.toml vs pin in {CONSTRAINTS.name}: {mismatched}"
    extra = sorted(set(pins) - set(floors))
    assert not extra, f"{CONSTRAINTS.name} pins what pyproject.toml does not require: {extra}"


def _imported_top_level_modules() -> set[str]:
    """Every module converge/ imports (at any depth of its code), by its top-level name."""
    import ast

    found: set[str] = set()
    for path in (ROOT / "converge").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def test_every_directly_imported_distribution_is_declared() -> None:
    import sys
    from importlib.metadata import packages_distributions

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_name(text) for text in project["dependencies"]}
    providers = packages_distributions()
    third_party = _imported_top_level_modules() - set(sys.stdlib_module_names) - {"converge"}
    assert {"docker", "yaml", "typer"} <= third_party
    undeclared = {
        module: providers.get(module)
        for module in sorted(third_party)
        if not {_name(dist) for dist in providers.get(module, [])} & declared
    }
    # A module only a transitive dependency brings may vanish with its next release.
    assert not undeclared, f"imported by converge/, not declared in pyproject.toml: {undeclared}"
