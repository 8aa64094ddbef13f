"""Several compose files merged into one, by the compose specification's merge rules.

- mappings merge key by key, the later file winning;
- sequences are appended (``dns``, ``cap_add``, ``deploy.placement.constraints`` ...);
- ``command``, ``entrypoint`` and ``healthcheck.test`` are replaced, not appended;
- ``ports``, ``volumes``, ``secrets`` and ``configs`` hold unique entries: a later entry with the
  same key (a port's target/published/protocol, a volume's target, a secret's or config's
  target) replaces the earlier one, others are appended;
- fields that may be a list or a mapping (``environment``, ``labels``, ``deploy.labels``,
  ``sysctls``, ``extra_hosts``, ``networks``) merge as mappings.

Pure: values in, values out. Source positions follow the values: ``relocations`` says where an
override's value landed in the merged document, ``dropped`` which base values were replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from converge.spec import _expand_short_mount, _expand_short_port

__all__ = ["MergeResult", "Override", "Reset", "merge_documents", "relocate", "strip_markers"]

Path = tuple[str | int, ...]

_REPLACED = frozenset({"command", "entrypoint"})
_UNIQUE = frozenset({"ports", "volumes", "secrets", "configs"})
_ONE_OR_MANY = frozenset({("dns",), ("dns_search",), ("env_file",), ("tmpfs",)})
_MAP_OR_LIST = frozenset({"environment", "labels", "sysctls", "extra_hosts", "networks"})


@dataclass(frozen=True)
class Override:
    """compose's ``!override`` tag: this value replaces the earlier file's, not merged."""

    value: Any


@dataclass(frozen=True)
class Reset:
    """compose's ``!reset`` tag: the earlier file's value is removed."""


def strip_markers(value: Any) -> Any:
    """A document without ``!override``/``!reset`` markers (reset keys removed)."""
    if isinstance(value, Override):
        return strip_markers(value.value)
    if isinstance(value, dict):
        return {
            key: strip_markers(item) for key, item in value.items() if not isinstance(item, Reset)
        }
    if isinstance(value, list):
        return [strip_markers(item) for item in value if not isinstance(item, Reset)]
    return value


@dataclass
class MergeResult:
    data: dict[str, Any]
    relocations: dict[Path, Path] = field(default_factory=dict)
    """Override path prefix -> where that value is in the merged document."""
    dropped: list[Path] = field(default_factory=list)
    """Base path prefixes whose values the override replaced (after ``base_relocations``)."""
    base_relocations: dict[Path, Path] = field(default_factory=dict)
    """Base path prefix -> where that value is in the merged document (a list made a map)."""


def _role(path: Path) -> str:
    """What the value at ``path`` is, for the rules above ("" for an ordinary value)."""
    if len(path) >= 3 and path[0] == "services":
        inner = path[2:]
        if len(inner) == 1 and inner[0] in _REPLACED:
            return "replace"
        if inner == ("healthcheck", "test"):
            return "replace"
        if len(inner) == 1 and inner[0] in _UNIQUE:
            return "unique"
        if (len(inner) == 1 and inner[0] in _MAP_OR_LIST) or inner == ("deploy", "labels"):
            return "map_or_list"
    return ""


def _as_mapping(value: Any, path: Path) -> tuple[dict[Any, Any], dict[int, Any]]:
    """A list-form mapping as a mapping, plus which list index became which key."""
    if isinstance(value, dict):
        return dict(value), {}
    result: dict[Any, Any] = {}
    origin: dict[int, Any] = {}
    field_name = path[-1]
    for index, item in enumerate(value):
        text = str(item)
        if field_name == "networks":
            key, entry = text, None
        elif field_name == "extra_hosts":
            separator = "=" if "=" in text else ":"
            key, _, entry = text.partition(separator)
        else:
            key, has_value, entry_text = text.partition("=")
            entry = entry_text if has_value else (None if field_name == "environment" else "")
        result[key] = entry
        origin[index] = key
    return result, origin


def _unique_key(item: Any, field_name: str) -> Any:
    try:
        if field_name == "ports":
            expanded = _expand_short_port(item)
            return tuple(
                (entry.get("target"), entry.get("published"), entry.get("protocol") or "tcp")
                if isinstance(entry, dict)
                else entry
                for entry in expanded
            )
        if field_name == "volumes":
            parsed = _expand_short_mount(item)
            return parsed.get("target") if isinstance(parsed, dict) else parsed
        if isinstance(item, str):
            return item
        if isinstance(item, dict):
            return item.get("target") or item.get("source")
    except (ValueError, TypeError):
        pass
    return repr(item)


def merge_documents(base: dict[str, Any], override: dict[str, Any]) -> MergeResult:
    """``override`` merged over ``base`` (neither is changed)."""
    result = MergeResult({})

    def merge(left: Any, right: Any, path: Path) -> Any:
        role = _role(path)
        if isinstance(right, Override | Reset):
            result.dropped.append(path)
            return right
        if role == "replace" or right is None or left is None:
            result.dropped.append(path)
            return right
        mixed = isinstance(left, list) or isinstance(right, list)
        both = isinstance(left, dict | list) and isinstance(right, dict | list)
        if role == "map_or_list" and mixed and both:
            left_map, left_origin = _as_mapping(left, path)
            right_map, right_origin = _as_mapping(right, path)
            for index, key in left_origin.items():
                result.base_relocations[(*path, index)] = (*path, key)
            for index, key in right_origin.items():
                result.relocations[(*path, index)] = (*path, key)
            merged_map = dict(left_map)
            for key, value in right_map.items():
                if key in merged_map:
                    result.dropped.append((*path, key))
                merged_map[key] = value
            return merged_map
        if isinstance(left, dict) and isinstance(right, dict):
            merged = dict(left)
            for key, value in right.items():
                merged[key] = merge(left[key], value, (*path, key)) if key in left else value
            return merged
        left = strip_markers(left)
        if isinstance(left, list) and isinstance(right, list):
            merged_list = list(left)
            if role == "unique":
                field_name = str(path[-1])
                keys = [_unique_key(item, field_name) for item in merged_list]
                for index, item in enumerate(right):
                    key = _unique_key(item, field_name)
                    if key in keys:
                        at = keys.index(key)
                        result.dropped.append((*path, at))
                        merged_list[at] = item
                    else:
                        at = len(merged_list)
                        merged_list.append(item)
                        keys.append(key)
                    result.relocations[(*path, index)] = (*path, at)
                return merged_list
            for index, item in enumerate(right):
                result.relocations[(*path, index)] = (*path, len(merged_list))
                merged_list.append(item)
            return merged_list
        if path[-1:] in _ONE_OR_MANY and isinstance(left, str | list):
            # A single string is a one-item list (dns: 1.1.1.1): append as lists.
            before = [left] if isinstance(left, str) else list(left)
            if isinstance(right, list):
                result.relocations.update(
                    {(*path, index): (*path, len(before) + index) for index in range(len(right))}
                )
                return [*before, *right]
            if isinstance(right, str):
                result.relocations[path] = (*path, len(before))
                return [*before, right]
        result.dropped.append(path)
        return right

    result.data = merge(base, override, ())
    return result


def relocate(path: Path, relocations: dict[Path, Path]) -> Path:
    """Where the override's value at ``path`` is in the merged document."""
    for length in range(len(path), 0, -1):
        target = relocations.get(path[:length])
        if target is not None:
            return (*target, *path[length:])
    return path
