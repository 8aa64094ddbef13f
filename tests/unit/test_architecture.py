"""The layout's rules, read from the code itself (docs/architecture.md lists them).

Each rule has one home: a later module that repeats it (a second ``<stack>_<name>``, an
ownership label spelt out, a task judged running, a file renamed into place, a sleep) would
drift from it unnoticed. These tests read the modules' source and imports, never run them.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "converge"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


@cache
def _tree(name: str) -> ast.Module:
    return ast.parse(MODULES[name].read_text(encoding="utf-8"))


@cache
def _code(name: str) -> str:
    """The module's source without its docstrings and comments (prose may name anything)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body[0] = ast.Pass()
    return ast.unparse(tree)


@cache
def _imports(name: str, *, lazy: bool) -> frozenset[str]:
    """The converge modules ``name`` imports: at module level, or anywhere with ``lazy``
    (imports under ``if TYPE_CHECKING:`` are never counted)."""
    tree = _tree(name)
    found: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for item in child.orelse:
                    visit(item, top)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom) and (top or lazy):
                targets = (
                    [alias.name for alias in child.names]
                    if isinstance(child, ast.Import)
                    else [child.module or ""]
                )
                found.update(target for target in targets if target.startswith("converge"))
            inner = top and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            visit(child, inner)

    visit(tree, True)
    return frozenset(module for module in found if module in MODULES)


@cache
def _closure(name: str) -> frozenset[str]:
    """Every converge module that importing ``name`` loads (module-level imports)."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(_imports(current, lazy=False))
        parts = current.split(".")
        todo.extend(".".join(parts[:end]) for end in range(1, len(parts)))  # the packages
    return frozenset(seen - {name})


def _offenders(pattern: str, home: str) -> dict[str, list[str]]:
    regex = re.compile(pattern)
    found: dict[str, list[str]] = {}
    for name in MODULES:
        if name == home:
            continue
        lines = [line.strip() for line in _code(name).splitlines() if regex.search(line)]
        if lines:
            found[name] = lines
    return found


def test_drift_is_pure_and_does_not_import_the_executor() -> None:
    loaded = _closure("converge.drift")
    assert not loaded & {"converge.executor", "converge.engine", "converge.lock"}, loaded


def test_the_cli_reaches_the_swarm_only_through_the_api() -> None:
    # The engine for connecting, the executor for ApplyOptions (a value); everything that
    # reads or writes the swarm is a call into converge.api.
    imported = _imports("converge.cli", lazy=True)
    reaching = {"converge.lock", "converge.observe", "converge.rollout", "converge.members"}
    assert not imported & reaching, imported & reaching


RULES = {
    # docker/cli's Namespace: one module names a stack's objects and tests ownership.
    "the stack label": (r"""["']com\.docker\.stack\.(namespace|image)["']""", "converge.naming"),
    "the <stack>_<name> rule": (r"""f["'][^"']*\{[\w.]*stack\}_""", "converge.naming"),
    # One definition of a running task (on a ready node, meant to run).
    "a task judged running": (r"\.state\s*==\s*['\"]running['\"]", "converge.health"),
    # Typed errors: only the engine seam reads what an engine error says.
    "an error's text matched": (
        r"""in str\(\w*(error|exc)\w*\)|\.explanation|status_code""",
        "converge.engine",
    ),
    # One atomic write and one poll loop.
    "a file renamed into place": (r"os\.replace\(|mkstemp\(", "converge.files"),
    "a sleep": (r"time\.sleep\(", "converge.polling"),
}


@pytest.mark.parametrize("rule", list(RULES))
def test_each_rule_has_one_home(rule: str) -> None:
    pattern, home = RULES[rule]
    offenders = _offenders(pattern, home)
    assert not offenders, f"{rule} outside {home}: {offenders}"


def test_the_load_balancer_is_one_package() -> None:
    outside = [
        name
        for name in MODULES
        if re.search(r"haproxy|loadbalancer|(^|\.)lb_", name) and not name.startswith("converge.lb")
    ]
    assert outside == []


# The pure core: values in, values out (docs/architecture.md, the table's "Pure?" column).
PURE = (
    "converge.actions",
    "converge.checks",
    "converge.diff",
    "converge.drift",
    "converge.engine_spec",
    "converge.export",
    "converge.fileobjects",
    "converge.health",
    "converge.images",
    "converge.lb.config",
    "converge.lb.rollout",
    "converge.membership",
    "converge.normalize",
    "converge.ordering",
    "converge.placement",
    "converge.planner",
    "converge.targeting",
)
IMPURE = {"converge.engine", "converge.executor", "converge.lock", "converge.observe"}


def _standard_imports(name: str) -> set[str]:
    tree = _tree(name)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("name", PURE)
def test_decision_code_takes_no_engine_clock_or_logger(name: str) -> None:
    assert not _closure(name) & IMPURE, _closure(name) & IMPURE
    assert not _standard_imports(name) & {"logging", "time", "random", "docker", "requests"}
