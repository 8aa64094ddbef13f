"""The services' dependency graph (``depends_on``), pure: cycles, dangling names and waves.

A service's **depth** is the length of the longest chain of ``depends_on`` below it: services
that depend on nothing have depth 0. The planner puts the actions of one apply into waves by
depth: every service of a wave reaches its dependents' conditions before the next wave starts,
and services of one wave run in parallel. ``docker stack deploy`` has no such order.
"""

from __future__ import annotations

from collections.abc import Mapping

from converge.spec import DependencySpec, Spec

__all__ = [
    "CONDITION_WORDS",
    "Graph",
    "dangling_dependencies",
    "dependency_cycle",
    "depths",
    "graph_changes",
    "graph_of",
    "waits_for",
]

CONDITION_WORDS = {
    "service_started": "started",
    "service_healthy": "healthy",
    "service_completed_successfully": "completed successfully",
}
"""How plans name each condition: ``waits for mysql (healthy)``."""


def _edges(spec: Spec) -> dict[str, Mapping[str, DependencySpec]]:
    return {key: service.depends_on for key, service in spec.services.items()}


def dangling_dependencies(spec: Spec) -> list[tuple[str, str]]:
    """``(service, dependency)`` pairs whose dependency is not a service of the spec."""
    return [
        (key, dependency)
        for key, service in spec.services.items()
        for dependency in service.depends_on
        if dependency not in spec.services
    ]


def dependency_cycle(spec: Spec) -> list[str] | None:
    """One cycle of ``depends_on``, as the chain of keys that closes it
    (``["a", "b", "a"]``), or None. Dangling names are left to ``dangling_dependencies``."""
    edges = _edges(spec)
    done: set[str] = set()

    def visit(key: str, path: list[str]) -> list[str] | None:
        if key in path:
            return [*path[path.index(key) :], key]
        if key in done or key not in edges:
            return None
        for dependency in sorted(edges[key]):
            found = visit(dependency, [*path, key])
            if found is not None:
                return found
        done.add(key)
        return None

    for key in sorted(edges):
        found = visit(key, [])
        if found is not None:
            return found
    return None


def depths(spec: Spec) -> dict[str, int]:
    """Each service's depth in the graph (0: it depends on nothing). The spec is acyclic
    (the loader refused it otherwise)."""
    edges = _edges(spec)
    result: dict[str, int] = {}

    def depth(key: str) -> int:
        if key not in result:
            below = [depth(d) + 1 for d in edges.get(key, {}) if d in edges]
            result[key] = max(below, default=0)
        return result[key]

    for key in edges:
        depth(key)
    return result


Graph = dict[str, dict[str, str]]
"""``{service: {dependency: condition}}`` for the services that depend on something."""


def graph_of(spec: Spec) -> Graph:
    """The spec's dependency graph, as an apply records it (``converge.api``)."""
    return {
        key: {name: entry.condition for name, entry in sorted(service.depends_on.items())}
        for key, service in sorted(spec.services.items())
        if service.depends_on
    }


def graph_changes(before: Graph | None, after: Graph) -> tuple[str, ...]:
    """How the graph ``after`` differs from the one the last apply recorded, one line per
    change (``web: now waits for seed (completed successfully)``). None: no apply recorded a
    graph; a graph is then new only if it has an edge."""
    if before is None:
        before = {}
    lines: list[str] = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key, {}), after.get(key, {})
        for name in sorted(set(old) | set(new)):
            if name not in old:
                lines.append(f"{key}: now waits for {name} ({CONDITION_WORDS[new[name]]})")
            elif name not in new:
                lines.append(f"{key}: no longer waits for {name}")
            elif old[name] != new[name]:
                lines.append(
                    f"{key}: waits for {name} {CONDITION_WORDS[new[name]]} "
                    f"(was {CONDITION_WORDS[old[name]]})"
                )
    return tuple(lines)


def waits_for(spec: Spec, key: str) -> tuple[str, ...]:
    """``("mysql (healthy)", "seed (completed successfully)")``: what ``key`` waits for
    (nothing for a service not in the spec)."""
    service = spec.services.get(key)
    if service is None:
        return ()
    return tuple(
        f"{name} ({CONDITION_WORDS[dependency.condition]})"
        + ("" if dependency.required else ", not required")
        for name, dependency in sorted(service.depends_on.items())
    )
