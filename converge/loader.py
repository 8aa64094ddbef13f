"""Spec files -> ``LoadedSpec``: YAML with source positions, interpolation, merging, validation.

Every problem is reported as ``file:line:column: field.path: message`` and all problems of a
load are raised together in one ``SpecError``. Several files merge in order, later files
winning, as compose overrides do: mappings merge key by key, anything else is replaced.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from converge.checks import check_spec
from converge.errors import SpecError, SpecProblem
from converge.spec import NAME_PATTERN, STACK_PATTERN, Spec

__all__ = [
    "MAX_SPEC_BYTES",
    "FieldPath",
    "LoadedSpec",
    "load_spec",
    "load_spec_text",
    "path_text",
]

MAX_SPEC_BYTES = 8 * 1024 * 1024
"""The most spec text converge reads, all files together: parsing, validating and planning take
some twenty times the text's size in memory, so a larger spec is refused before it is parsed.
(A service spec cannot exceed 4 MiB anyway: ``checks.ENGINE_SPEC_LIMIT``.)"""

FieldPath = tuple[str | int, ...]
"""The location of a value inside a spec: ``("services", "mvc", "ports", 0)``."""

_SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE", re.IGNORECASE)


@dataclass(frozen=True)
class Position:
    file: str
    line: int | None = None
    column: int | None = None


@dataclass(frozen=True)
class LoadedSpec:
    """A valid spec plus what the loader learned about its sources.

    Attributes:
        spec: the validated spec.
        files: the files it was merged from, in order.
        sensitive_paths: spec paths whose values came from the environment and must be
            masked in output (env values, and any value from a variable named like a secret).
        warnings: problems that do not stop the load (an unset variable, for example).
        digest: sha256 over the files' contents, identifying this version of the spec.
    """

    spec: Spec
    files: tuple[str, ...]
    sensitive_paths: frozenset[FieldPath] = frozenset()
    warnings: tuple[str, ...] = ()
    digest: str = ""

    def is_sensitive(self, path: FieldPath) -> bool:
        """True when the value at ``path`` (or above it) came from a secret-like variable."""
        return any(path[: len(secret)] == secret for secret in self.sensitive_paths)


def path_text(path: Sequence[str | int]) -> str:
    """Render a field path as users read it: ``services.mvc.ports[0]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


# ---------------------------------------------------------------------------------------------
# Reading one file


@dataclass
class _Document:
    data: dict[str, Any]
    positions: dict[FieldPath, Position] = field(default_factory=dict)
    interpolated: dict[FieldPath, tuple[str, ...]] = field(default_factory=dict)


def _mark(file: str, node: yaml.Node) -> Position:
    return Position(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _parse_yaml(file: str, text: str, problems: list[SpecProblem]) -> _Document | None:
    try:
        loader = yaml.SafeLoader(text)  # refuses control characters right away
    except yaml.reader.ReaderError as error:
        before = text[: error.position]
        line, column = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
        character = f"#x{error.character:04x}" if isinstance(error.character, int) else "?"
        message = f"invalid YAML: character {character} is not allowed ({error.reason})"
        problems.append(SpecProblem(file, line, column, "", message))
        return None
    try:
        root = loader.get_single_node()
        if root is None:
            return _Document({})
        shape = _shape_problem(file, root)
        if shape is not None:
            problems.append(shape)
            return None
        _find_duplicate_keys(file, root, (), problems)
        data = loader.construct_document(root)
        if not isinstance(data, dict):
            problems.append(
                SpecProblem(
                    file,
                    *_line_column(root),
                    "",
                    "a spec is a mapping of sections (version, stack, services, ...), "
                    f"got {_kind_of(data)}",
                )
            )
            return None
        document = _Document(data)
        _record_positions(loader, file, root, (), document.positions)
        return document
    except yaml.MarkedYAMLError as error:
        problems.append(_yaml_problem(file, error))
        return None
    except RecursionError:  # PyYAML composes nodes recursively
        problems.append(SpecProblem(file, 1, 1, "", "invalid YAML: nested too deeply"))
        return None
    except yaml.YAMLError as error:
        problems.append(SpecProblem(file, None, None, "", f"invalid YAML: {error}"))
        return None
    finally:
        loader.dispose()


_MAX_VALUES = 100_000


def _shape_problem(file: str, root: yaml.Node) -> SpecProblem | None:
    """Refuse documents that every later step would walk forever: an alias inside the very
    mapping or list it names (PyYAML builds a cyclic object), or aliases that expand into an
    enormous document ("billion laughs")."""
    stack: list[tuple[yaml.Node, frozenset[int]]] = [(root, frozenset())]
    distinct: set[int] = set()
    repeats = 0  # values met again through an alias: a large spec without aliases has none
    while stack:
        node, ancestors = stack.pop()
        if id(node) in distinct:
            repeats += 1
        distinct.add(id(node))
        if repeats > _MAX_VALUES:
            return SpecProblem(
                file,
                *_line_column(root),
                "",
                f"the document expands to more than {_MAX_VALUES} values through its aliases",
            )
        if id(node) in ancestors:
            return SpecProblem(
                file,
                *_line_column(node),
                "",
                "this anchored value contains an alias to itself",
            )
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            continue
        inside = ancestors | {id(node)}
        stack.extend((child, inside) for child in children)
    return None


def _yaml_problem(file: str, error: yaml.MarkedYAMLError) -> SpecProblem:
    """PyYAML's "while parsing X ... expected Y" as "expected Y (in the X that starts at ...)"."""
    mark = error.problem_mark or error.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
    problem, context, context_mark = error.problem, error.context, error.context_mark
    if problem and context and context.startswith("while "):
        context = re.sub(r"^while \w+ an? ", "in the ", context)
        if context_mark is not None and context_mark is not mark:
            context += f" that starts at line {context_mark.line + 1}, column "
            context += str(context_mark.column + 1)
        message = f"{problem} ({context})"
    else:  # "expected a single document in the stream" "but found another document"
        message = " ".join(part for part in (context, problem) if part) or "cannot parse"
    return SpecProblem(file, line, column, "", f"invalid YAML: {message}")


def _kind_of(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"{value!r}"


def _line_column(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _find_duplicate_keys(
    file: str, node: yaml.Node, path: FieldPath, problems: list[SpecProblem]
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                key_node, yaml.ScalarNode
            ):
                continue
            key = key_node.value
            if key in seen:
                problems.append(
                    SpecProblem(
                        file,
                        *_line_column(key_node),
                        path_text((*path, key)),
                        f"key {key!r} is given twice in the same mapping",
                    )
                )
            seen.add(key)
            _find_duplicate_keys(file, value_node, (*path, key), problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _find_duplicate_keys(file, item, (*path, index), problems)


def _record_positions(
    loader: yaml.SafeLoader,
    file: str,
    node: yaml.Node,
    path: FieldPath,
    positions: dict[FieldPath, Position],
) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int):
                continue
            child = (*path, key)
            positions.setdefault(child, _mark(file, key_node))
            _record_positions(loader, file, value_node, child, positions)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            positions.setdefault(child, _mark(file, item))
            _record_positions(loader, file, item, child, positions)


# ---------------------------------------------------------------------------------------------
# Interpolation, as compose does it

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)"
    # A default may itself hold one level of ${...}, as in ${TAG:-${DEFAULT_TAG}}.
    r"(?:(?P<operator>:?[-?+])(?P<argument>(?:\$\{[^}]*\}|[^}])*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<invalid>\{[^}]*\}?))"
)


class _InterpolationError(ValueError):
    pass


def _interpolate_text(
    text: str, environ: Mapping[str, str], unset: list[str]
) -> tuple[str, tuple[str, ...]]:
    used: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["invalid"] is not None:
            raise _InterpolationError(f"invalid interpolation {match[0]!r}")
        name = match["braced"] or match["named"]
        used.append(name)
        operator, argument = match["operator"], match["argument"] or ""
        value = environ.get(name)
        is_empty = value is None or (value == "" and operator is not None and ":" in operator)
        if operator in ("?", ":?") and (value is None or (operator == ":?" and value == "")):
            reason = argument or f"variable {name} is required"
            state = "is not set" if value is None else "is empty"
            raise _InterpolationError(f"{reason} (${{{name}}} {state})")
        if operator in ("-", ":-"):
            return _VARIABLE.sub(substitute, argument) if is_empty else str(value)
        if operator in ("+", ":+"):
            return "" if is_empty else _VARIABLE.sub(substitute, argument)
        if value is None:
            unset.append(name)
            return ""
        return value

    return _VARIABLE.sub(substitute, text), tuple(used)


def _interpolate(
    file: str,
    document: _Document,
    environ: Mapping[str, str],
    problems: list[SpecProblem],
    warnings: list[str],
) -> None:
    def walk(value: Any, path: FieldPath) -> Any:
        if isinstance(value, dict):
            return {key: walk(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, (*path, index)) for index, item in enumerate(value)]
        if not isinstance(value, str) or "$" not in value:
            return value
        unset: list[str] = []
        try:
            result, used = _interpolate_text(value, environ, unset)
        except _InterpolationError as error:
            problems.append(_problem(document.positions, file, path, str(error)))
            return value
        if used:
            document.interpolated[path] = used
        for name in unset:
            where = _position_of(document.positions, file, path)
            warnings.append(
                f"{where.file}:{where.line}: {path_text(path)}: variable {name} is not set; "
                "using an empty string"
            )
        return result

    document.data = walk(document.data, ())


# ---------------------------------------------------------------------------------------------
# Merging several files


def _merge(
    base: _Document,
    override: _Document,
) -> _Document:
    replaced: list[FieldPath] = []

    def merge(left: Any, right: Any, path: FieldPath) -> Any:
        if isinstance(left, dict) and isinstance(right, dict):
            merged = dict(left)
            for key, value in right.items():
                merged[key] = merge(left[key], value, (*path, key)) if key in left else value
            return merged
        replaced.append(path)
        return right

    data = merge(base.data, override.data, ())

    def survives(path: FieldPath) -> bool:
        return not any(path[: len(prefix)] == prefix for prefix in replaced)

    positions = {path: pos for path, pos in base.positions.items() if survives(path)}
    positions.update(override.positions)
    interpolated = {path: used for path, used in base.interpolated.items() if survives(path)}
    interpolated.update(override.interpolated)
    return _Document(data, positions, interpolated)


# ---------------------------------------------------------------------------------------------
# Locating problems


def _position_of(
    positions: Mapping[FieldPath, Position], file: str, path: FieldPath, data: Any = None
) -> Position:
    """The source position of ``path``, or of its nearest ancestor that has one.

    ``data`` (the document) lets a name given in list form (``networks: [backend]``,
    ``env: [K=V]``), which validation turned into a mapping key, point at its list item.
    """
    for length in range(len(path), 0, -1):
        found = positions.get(path[:length]) or _list_item_position(positions, path[:length], data)
        if found is not None:
            return found
    return Position(file, 1, 1)


def _list_item_position(
    positions: Mapping[FieldPath, Position], path: FieldPath, data: Any
) -> Position | None:
    if data is None or not path or not isinstance(path[-1], str):
        return None
    parent: Any = data
    for part in path[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return None
    if not isinstance(parent, list):
        return None
    name = path[-1]
    for index, item in enumerate(parent):
        if isinstance(item, str) and (item == name or item.startswith(f"{name}=")):
            return positions.get((*path[:-1], index))
    return None


def _problem(
    positions: Mapping[FieldPath, Position],
    file: str,
    path: FieldPath,
    message: str,
    data: Any = None,
) -> SpecProblem:
    where = _position_of(positions, file, path, data)
    return SpecProblem(where.file, where.line, where.column, path_text(path), message)


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` down to the type that holds the fields."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _model_at(path: FieldPath) -> type[BaseModel] | None:
    """The spec model that validates the mapping at ``path``, if any."""
    current: Any = Spec
    remaining = list(path)
    while remaining:
        current = _unwrap(current)
        part = remaining.pop(0)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return None
            current = current.model_fields[part].annotation
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        elif typing.get_origin(current) is tuple:
            current = typing.get_args(current)[0]
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _message(error: Mapping[str, Any], path: FieldPath) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        model = _model_at(path[:-1])
        unknown = str(path[-1])
        text = f"unknown field {unknown!r}"
        if model is not None:
            close = difflib.get_close_matches(unknown, list(model.model_fields), n=1, cutoff=0.6)
            if close:
                text += f"; did you mean {close[0]!r}?"
            else:
                text += "; expected one of " + ", ".join(model.model_fields)
        return text
    if kind == "missing":
        return "required field is missing"
    given = error.get("input")
    if kind == "literal_error" and path == ("version",):
        return f"converge knows spec version 1 only, got {given!r}"
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern")
        if pattern in _PATTERN_MEANING:
            return f"{_PATTERN_MEANING[pattern]}, got {given!r}"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if kind in ("value_error", "assertion_error"):
        return message  # our own validators name the value they reject
    if kind in _PLAIN_MESSAGES:
        message = _PLAIN_MESSAGES[kind].format(**error.get("ctx", {}))
    else:
        message = message.replace("Input should be ", "expected ", 1)
    return message + _given(given)


_PLAIN_MESSAGES = {
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
}


def _given(value: object) -> str:
    if value is None:
        return ", got an empty value"
    if isinstance(value, list):
        return ", got a list"
    if isinstance(value, dict):
        return ", got a mapping"
    if isinstance(value, str | int | float) and len(repr(value)) <= 80:
        return f", got {value!r}"
    return ""


_PATTERN_MEANING = {
    NAME_PATTERN: "a name is letters, digits, '_', '.' and '-', starting with a letter or digit",
    STACK_PATTERN: (
        "a stack name is at most 40 lowercase letters, digits, '_' and '-', "
        "starting with a letter or digit"
    ),
    "^/": "expected an absolute path (starting with /)",
}


def _is_key_marker(location: FieldPath, data: Any) -> bool:
    """Whether Pydantic's trailing ``"[key]"`` says the mapping key itself is invalid (rather
    than being a key that the user really wrote as ``[key]``)."""
    if len(location) < 2 or location[-1] != "[key]":
        return False
    value: Any = data
    for part in location:
        in_mapping = isinstance(value, dict) and part in value
        in_list = isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)
        if not (in_mapping or in_list):
            return True
        value = value[part]
    return False


def _problems_from_validation(
    error: ValidationError, document: _Document, file: str
) -> list[SpecProblem]:
    problems: list[SpecProblem] = []
    secret = _sensitive(document.data, document.interpolated)
    for item in error.errors():
        location: FieldPath = tuple(item["loc"])
        is_key = _is_key_marker(location, document.data)
        path = location[:-1] if is_key else location
        message = _message(item, path)
        if is_key:
            message = f"name {path[-1]!r} is not allowed: {message.partition(', got ')[0]}"
        given = item.get("input")
        if isinstance(given, str) and given and _touches(path, secret):
            # A value from a secret-like variable must not be printed, not even when invalid.
            message = message.replace(repr(given), "'***'")
        problems.append(_problem(document.positions, file, path, message, document.data))
    return problems


# ---------------------------------------------------------------------------------------------
# The public entry points


def _in_file_order(problems: list[SpecProblem]) -> list[SpecProblem]:
    return sorted(
        problems, key=lambda problem: (problem.file, problem.line or 0, problem.column or 0)
    )


def _touches(path: FieldPath, paths: set[FieldPath]) -> bool:
    """True when ``path`` is one of ``paths``, or above or below one of them."""
    return any(path[: len(other)] == other or other[: len(path)] == path for other in paths)


def _sensitive(
    data: Mapping[str, Any], interpolated: Mapping[FieldPath, tuple[str, ...]]
) -> set[FieldPath]:
    sensitive: set[FieldPath] = set()
    for raw_path, variables in interpolated.items():
        path = raw_path
        in_env = len(path) >= 4 and path[0] == "services" and path[2] == "env"
        if in_env and isinstance(path[3], int):
            # The list form KEY=VALUE became a map: the entry's key is its text before "=".
            item = data["services"][path[1]]["env"][path[3]]
            path = (*path[:3], str(item).partition("=")[0])
        if in_env or any(_SECRET_NAME.search(name) for name in variables):
            sensitive.add(path)
    return sensitive


def load_spec_text(
    text: str, file: str = "<spec>", environ: Mapping[str, str] | None = None
) -> LoadedSpec:
    """Load a spec from text; ``file`` names it in error messages.

    Raises:
        SpecError: with every problem found.
    """
    return _load([(file, text)], environ)


def load_spec(
    paths: Sequence[str | os.PathLike[str]], environ: Mapping[str, str] | None = None
) -> LoadedSpec:
    """Load, interpolate, merge (later files win) and validate spec files.

    Args:
        paths: one or more YAML files.
        environ: variables for ``${VAR}`` interpolation (default: the process environment).

    Raises:
        SpecError: with every problem found, each located by file, line and field.
    """
    if not paths:
        raise SpecError([SpecProblem("<command line>", None, None, "", "no spec file given")])
    sources: list[tuple[str, str]] = []
    problems: list[SpecProblem] = []
    left = MAX_SPEC_BYTES
    for path in paths:
        name = os.fspath(path)
        try:
            with open(name, "rb") as handle:
                data = handle.read(left + 1)  # never more than the limit, whatever the file
            left -= len(data)
            if left < 0:
                problems.append(_too_large(name, len(paths) > 1))
                break
            # As text mode reads it: universal newlines.
            text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
            sources.append((name, text))
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            problems.append(SpecProblem(name, None, None, "", f"cannot read the file: {reason}"))
    if problems:
        raise SpecError(problems)
    return _load(sources, environ)


def _too_large(file: str, several: bool) -> SpecProblem:
    what = "the spec files are" if several else "the file is"
    return SpecProblem(
        file,
        None,
        None,
        "",
        f"{what} larger than {MAX_SPEC_BYTES >> 20} MiB, the most converge reads for a spec "
        "(planning a larger one would take too much memory); refused before parsing",
    )


def _load(sources: Sequence[tuple[str, str]], environ: Mapping[str, str] | None) -> LoadedSpec:
    environment = os.environ if environ is None else environ
    if sum(len(text.encode()) for _, text in sources) > MAX_SPEC_BYTES:
        raise SpecError([_too_large(sources[-1][0], len(sources) > 1)])
    problems: list[SpecProblem] = []
    warnings: list[str] = []
    merged: _Document | None = None
    digest = hashlib.sha256()
    for file, text in sources:
        digest.update(text.encode())
        document = _parse_yaml(file, text, problems)
        if document is None:
            continue
        _interpolate(file, document, environment, problems, warnings)
        merged = document if merged is None else _merge(merged, document)
    last_file = sources[-1][0] if sources else "<spec>"
    if problems:
        raise SpecError(problems)
    assert merged is not None
    data = {key: value for key, value in merged.data.items() if not str(key).startswith("x-")}
    try:
        spec = Spec.model_validate(data)
    except ValidationError as error:
        raise SpecError(
            _in_file_order(_problems_from_validation(error, merged, last_file))
        ) from None
    semantic = [
        _problem(merged.positions, last_file, path, message, merged.data)
        for path, message in check_spec(spec)
    ]
    if semantic:
        raise SpecError(_in_file_order(semantic))
    return LoadedSpec(
        spec=spec,
        files=tuple(file for file, _ in sources),
        sensitive_paths=frozenset(_sensitive(merged.data, merged.interpolated)),
        warnings=tuple(warnings),
        digest=digest.hexdigest(),
    )
