"""Compose files -> ``LoadedSpec``: YAML with source positions, interpolation, merging, checks.

Every problem is reported as ``file:line:column: field.path: message`` and all problems of a
load are raised together in one ``SpecError``. What compose and docker stack deploy do between
reading a file and using it happens here: variables (``${VAR}`` forms, a ``.env`` file beside
the first file or ``--env-file``), several files merged by compose's rules
(``converge.merge``), each service's ``env_file`` and bare ``environment`` entries resolved, a
warning for each key swarm ignores, and the stack's name taken from the command line or the
files (which must agree).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from converge.checks import check_spec
from converge.collector import collector_paused
from converge.envfiles import EnvFileError, parse_dotenv, parse_env_file
from converge.errors import SpecError, SpecProblem
from converge.merge import Override, Reset, merge_documents, relocate, strip_markers
from converge.spec import (
    IGNORED_SERVICE_KEYS,
    NAME_PATTERN,
    STACK_PATTERN,
    ClusterSpec,
    ConvergeSpec,
    DeploySpec,
    ServiceSpec,
    Spec,
)

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
        source_variables: the values of the variables that secrets and configs name as their
            ``environment`` source (read when a plan needs the contents: ``converge.sources``).
        working_dir: the first file's directory: where ``x-converge.command`` sources run.
        contents: each secret's and config's content by (kind, key), once read
            (``converge.sources.with_sources``, when a plan is made); masked in all output.
    """

    spec: Spec
    files: tuple[str, ...]
    sensitive_paths: frozenset[FieldPath] = frozenset()
    warnings: tuple[str, ...] = ()
    digest: str = ""
    source_variables: Mapping[str, str] = field(default_factory=dict, repr=False)
    working_dir: str = ""
    contents: Mapping[tuple[str, str], bytes] | None = field(
        default=None, repr=False, compare=False
    )

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
    """A parsed file. Its source positions are computed when first asked for (``locate``):
    only a spec with a problem or a warning to report needs them, and recording them costs
    more than parsing."""

    data: dict[str, Any]
    locate: Callable[[], dict[FieldPath, Position]] = dict
    interpolated: dict[FieldPath, tuple[str, ...]] = field(default_factory=dict)
    _positions: dict[FieldPath, Position] | None = None
    source_sizes: dict[str, int] | None = None
    """Per service key, at most how many characters its data came from (its text, plus what
    interpolation and the environment added): lets ``check_spec`` skip converting a service
    that cannot reach the engine's size limit. ``None``: unknown (the careful path)."""

    @property
    def positions(self) -> dict[FieldPath, Position]:
        if self._positions is None:
            self._positions = self.locate()
        return self._positions

    def relocate(self, moves: Callable[[dict[FieldPath, Position]], None]) -> None:
        """Apply ``moves`` to the positions, now if they exist, else once they are computed."""
        if self._positions is not None:
            moves(self._positions)
            return
        locate = self.locate

        def moved() -> dict[FieldPath, Position]:
            positions = locate()
            moves(positions)
            return positions

        self.locate = moved


_Where = Callable[[], Position]
"""A position found only when asked for (see ``_Document``)."""


def _mark(file: str, node: yaml.Node) -> Position:
    return Position(file, node.start_mark.line + 1, node.start_mark.column + 1)


class _ComposeLoader(yaml.SafeLoader):
    """PyYAML's safe loader plus compose's merge tags ``!reset`` and ``!override``."""


def _construct_override(loader: yaml.SafeLoader, node: yaml.Node) -> Override:
    if isinstance(node, yaml.MappingNode):
        return Override(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return Override(loader.construct_sequence(node, deep=True))
    return Override(loader.construct_scalar(node))  # type: ignore[arg-type]


_ComposeLoader.add_constructor("!override", _construct_override)
_ComposeLoader.add_constructor("!reset", lambda loader, node: Reset())


class _FastLoader(yaml.CSafeLoader):
    """libyaml's parser with the same constructors: no positions kept, for the common case.

    libyaml calls back into Python for every node: its tag, and the path resolvers' descend
    and ascend. Safe loading registers no path resolver (checked below), so a tag depends on
    the node's kind and, for a plain scalar, its text alone: answered here without PyYAML's
    general lookup, and the descend and ascend calls do nothing."""

    def resolve(self, kind: type[yaml.Node], value: str, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            # A spec repeats the same few texts (images, modes, keys) thousands of times.
            tag = _PLAIN_TAGS.get(value)
            if tag is None:
                tag = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
                if len(_PLAIN_TAGS) < 10_000:
                    _PLAIN_TAGS[value] = tag
            return tag
        return _DEFAULT_TAGS[kind]

    def descend_resolver(self, current_node: yaml.Node | None, current_index: object) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass


assert not _FastLoader.yaml_path_resolvers, "path resolvers: _FastLoader would ignore them"
_DEFAULT_TAGS: dict[type[yaml.Node], str] = {
    yaml.ScalarNode: _FastLoader.DEFAULT_SCALAR_TAG,
    yaml.SequenceNode: _FastLoader.DEFAULT_SEQUENCE_TAG,
    yaml.MappingNode: _FastLoader.DEFAULT_MAPPING_TAG,
}
_PLAIN_TAGS: dict[str, str] = {}


_FastLoader.add_constructor("!override", _construct_override)
_FastLoader.add_constructor("!reset", lambda loader, node: Reset())


class _NeedsCarefulPathError(Exception):
    """The text has aliases, merge keys, duplicate or complex keys: take the careful path."""


_STR, _INT = "tag:yaml.org,2002:str", "tag:yaml.org,2002:int"
_SEQ, _MAP = "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"


def _plain_value(loader: Any, node: yaml.Node, seen: set[int] | None) -> Any:
    """The data of ``node``; ``seen`` (None when the text has no anchor, so no alias) finds
    aliases, which take the careful path."""
    kind = type(node)
    if kind is yaml.ScalarNode:
        tag, value = node.tag, node.value
        if tag == _STR:
            return value
        if tag == _INT and value.isascii() and value.isdigit() and value[0] != "0":
            return int(value)  # decimal, as construct_yaml_int reads it (0... is octal)
        return loader.construct_object(node, deep=True)
    if seen is not None:
        if id(node) in seen:
            raise _NeedsCarefulPathError  # an alias: the careful path checks cycles and bombs
        seen.add(id(node))
    if kind is yaml.SequenceNode and node.tag == _SEQ:
        return [
            item.value
            if type(item) is yaml.ScalarNode and item.tag == _STR
            else _plain_value(loader, item, seen)
            for item in node.value
        ]
    if kind is not yaml.MappingNode or node.tag != _MAP:
        return loader.construct_object(node, deep=True)  # !override and friends
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        tag = key_node.tag
        if tag == _STR and type(key_node) is yaml.ScalarNode:
            key = key_node.value
        elif tag == _INT and type(key_node) is yaml.ScalarNode:
            key = loader.construct_object(key_node)
        else:
            raise _NeedsCarefulPathError  # merge keys (<<), complex keys
        if key in mapping:
            raise _NeedsCarefulPathError  # a duplicate key: the careful path names it
        if type(value_node) is yaml.ScalarNode and value_node.tag == _STR:
            mapping[key] = value_node.value
        else:
            mapping[key] = _plain_value(loader, value_node, seen)
    return mapping


def _end(event: Any) -> int:
    """Where ``event`` ends in the text (libyaml's events always carry their marks)."""
    return event.end_mark.index  # type: ignore[no-any-return]


class _EventBuilder:
    """A document's data straight from libyaml's events, without PyYAML's node tree.

    The tree holds a node and two marks for every scalar until the data is built: about
    9 KB per service of the benchmark's spec (94 MB at 10,000 services, four times the data
    it becomes), most of a large spec's peak memory while it loads. Events are freed as they
    are read. What this does not
    handle (an anchor or alias, a tag on a mapping or sequence, a merge or complex or
    duplicate key) raises ``_NeedsCarefulPathError``: the node-based path below builds the
    same data for the usual spec, and handles or refuses those."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader
        self._get = loader.get_event
        self.end = 0
        """Where the last value built ends in the text (characters, as libyaml's marks)."""

    def document(self) -> tuple[Any, dict[str, int]]:
        """The single document's data (``{}`` for a text without one) and each service's
        text length (see ``_service_text_sizes``)."""
        get = self._get
        get()  # stream start
        event = get()
        if type(event) is yaml.StreamEndEvent:
            return {}, {}  # as get_single_node's None
        sizes: dict[str, int] = {}
        data = self._value(get(), sizes)
        get()  # document end
        if type(get()) is not yaml.StreamEndEvent:
            raise _NeedsCarefulPathError  # several documents: that path names the error
        return data, sizes

    def _scalar_tag(self, event: Any) -> str:
        tag: str | None = event.tag
        if tag is None or tag == "!":
            return self._loader.resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-any-return]
        return tag

    def _constructed(self, event: Any, tag: str, deep: bool) -> Any:
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        return self._loader.construct_object(node, deep=deep)

    def _value(self, event: Any, sizes: dict[str, int] | None = None) -> Any:
        # ``sizes``: given for the document's mapping, filled for its ``services`` entries.
        kind = type(event)
        if event.anchor is not None or kind is yaml.AliasEvent:
            raise _NeedsCarefulPathError
        if kind is yaml.ScalarEvent:
            self.end = _end(event)
            tag, value = self._scalar_tag(event), event.value
            if tag == _STR:
                return value
            if tag == _INT and value.isascii() and value.isdigit() and value[0] != "0":
                return int(value)  # decimal, as construct_yaml_int reads it (0... is octal)
            return self._constructed(event, tag, deep=True)
        get = self._get
        if kind is yaml.SequenceStartEvent:
            if event.tag not in (None, "!", _SEQ):
                raise _NeedsCarefulPathError  # !override and friends
            items = []
            event = get()
            while type(event) is not yaml.SequenceEndEvent:
                items.append(self._value(event))
                event = get()
            self.end = _end(event)
            return items
        if event.tag not in (None, "!", _MAP):
            raise _NeedsCarefulPathError
        mapping: dict[Any, Any] = {}
        event = get()
        while type(event) is not yaml.MappingEndEvent:
            key = self._key(event, mapping)
            event = get()
            if sizes is not None and key == "services" and type(event) is yaml.MappingStartEvent:
                mapping[key] = self._services(event, sizes)
            else:
                mapping[key] = self._value(event)
            event = get()
        self.end = _end(event)
        return mapping

    def _key(self, event: Any, mapping: dict[Any, Any]) -> Any:
        """The key ``event`` gives in ``mapping``: a text or a whole number, new there."""
        if type(event) is not yaml.ScalarEvent or event.anchor is not None:
            raise _NeedsCarefulPathError  # complex keys, aliases
        tag = self._scalar_tag(event)
        if tag == _STR:
            key = event.value
        elif tag == _INT:
            key = self._constructed(event, tag, deep=False)
        else:
            raise _NeedsCarefulPathError  # merge keys (<<), complex keys
        if key in mapping:
            raise _NeedsCarefulPathError  # a duplicate key: the careful path names it
        return key

    def _services(self, event: Any, sizes: dict[str, int]) -> Any:
        """The ``services`` mapping, each entry's text length in ``sizes`` (the node-based
        path's ``_service_text_sizes``)."""
        if event.anchor is not None or event.tag not in (None, "!", _MAP):
            raise _NeedsCarefulPathError
        get = self._get
        mapping: dict[Any, Any] = {}
        event = get()
        while type(event) is not yaml.MappingEndEvent:
            key = self._key(event, mapping)
            name = event.value
            event = get()
            start = event.start_mark.index
            mapping[key] = self._value(event)
            sizes[name] = sizes.get(name, 0) + self.end - start
            event = get()
        self.end = _end(event)
        return mapping


def _parse_fast(file: str, text: str) -> _Document | None:
    """The usual spec through libyaml, positions left for later; None when the text needs
    the careful path (any YAML error, aliases, merge keys, duplicate keys: that path reports
    them with positions, or handles them)."""
    loader = _FastLoader(text)
    try:
        data, sizes = _EventBuilder(loader).document()
    except _NeedsCarefulPathError:
        return _parse_fast_nodes(file, text)
    except (yaml.YAMLError, RecursionError):
        return None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        return None
    document = _Document(data, locate=lambda: _positions_in(file, text))
    document.source_sizes = sizes
    return document


def _parse_fast_nodes(file: str, text: str) -> _Document | None:
    """``_parse_fast`` through PyYAML's node tree: aliases (made once), tags on mappings and
    sequences (``!override``, ``!reset``)."""
    loader = _FastLoader(text)
    try:
        root = loader.get_single_node()
        seen: set[int] | None = set() if "&" in text else None  # an alias needs an &anchor
        data = {} if root is None else _plain_value(loader, root, seen)
    except (yaml.YAMLError, _NeedsCarefulPathError, RecursionError):
        return None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        return None
    document = _Document(data, locate=lambda: _positions_in(file, text))
    document.source_sizes = {} if root is None else _service_text_sizes(root)
    return document


def _service_text_sizes(root: yaml.Node) -> dict[str, int]:
    """Each service's text length in characters (libyaml's marks count characters): without
    aliases or merge keys (the fast path has none), all of a service's data is written there."""
    sizes: dict[str, int] = {}
    for key_node, value_node in root.value:
        if key_node.value == "services" and type(value_node) is yaml.MappingNode:
            for name_node, service_node in value_node.value:
                size = service_node.end_mark.index - service_node.start_mark.index
                sizes[name_node.value] = sizes.get(name_node.value, 0) + size
    return sizes


def _positions_in(file: str, text: str) -> dict[FieldPath, Position]:
    """Every path's source position, by parsing ``text`` again with the position-keeping
    loader (the fast path parsed it already, so it is known to be valid YAML)."""
    try:
        loader = _ComposeLoader(text)
    except yaml.reader.ReaderError:
        return {}  # a character only libyaml accepts: positions unknown (line 1)
    try:
        positions: dict[FieldPath, Position] = {}
        root = loader.get_single_node()
        if root is not None:
            _record_positions(loader, file, root, (), positions)
        return positions
    except yaml.MarkedYAMLError as error:
        # libyaml accepted what PyYAML refuses (a byte-order mark inside the text): report it
        # as the careful path always did, now that there is a problem to report.
        raise SpecError([_yaml_problem(file, error)]) from None
    except (yaml.YAMLError, RecursionError):
        return {}
    finally:
        loader.dispose()


def _parse_yaml(file: str, text: str, problems: list[SpecProblem]) -> _Document | None:
    fast = _parse_fast(file, text)
    if fast is not None:
        return fast
    try:
        loader = _ComposeLoader(text)  # refuses control characters right away
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
                    "a compose file is a mapping of sections (services, networks, ...), "
                    f"got {_kind_of(data)}",
                )
            )
            return None
        positions: dict[FieldPath, Position] = {}
        _record_positions(loader, file, root, (), positions)
        return _Document(data, _positions=positions)
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
    sizes = document.source_sizes

    def walk(value: Any, path: FieldPath) -> Any:
        if isinstance(value, Override):
            return Override(walk(value.value, path))
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
        if sizes is not None and len(path) > 1 and path[0] == "services" and path[1] in sizes:
            sizes[str(path[1])] += len(result)
        for name in unset:
            where = _position_of(document.positions, file, path)
            warnings.append(
                f"{where.file}:{where.line}: {path_text(path)}: variable {name} is not set; "
                "using an empty string"
            )
        return result

    document.data = walk(document.data, ())


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


def _fields_by_key(model: type[BaseModel]) -> dict[str, Any]:
    """A model's fields by the key a file uses for them (the alias, where there is one)."""
    return {field.alias or name: field for name, field in model.model_fields.items()}


def _model_at(path: FieldPath) -> type[BaseModel] | None:
    """The spec model that validates the mapping at ``path``, if any."""
    current: Any = Spec
    remaining = list(path)
    while remaining:
        current = _unwrap(current)
        part = remaining.pop(0)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = _fields_by_key(current)
            if not isinstance(part, str) or part not in fields:
                return None
            current = fields[part].annotation
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
            known = [key for key in _fields_by_key(model) if key not in IGNORED_SERVICE_KEYS]
            candidates = known
            if model is ServiceSpec:
                # Swarm's settings live under deploy in compose: replicas -> deploy.replicas.
                candidates = [*known, *(f"deploy.{key}" for key in _fields_by_key(DeploySpec))]
                candidates += list(_FORMER_NAMES)
            elif model is Spec:
                # converge's own settings live under x-converge: stack -> x-converge.stack;
                # the nodes under x-converge.cluster (x-converge.nodes is refused: moved).
                candidates = [
                    *known,
                    *(
                        f"x-converge.{key}"
                        for key in _fields_by_key(ConvergeSpec)
                        if key != "nodes"
                    ),
                    *(f"x-converge.cluster.{key}" for key in _fields_by_key(ClusterSpec)),
                ]
            nested = [item for item in candidates if item.rpartition(".")[2] == unknown]
            close = nested or difflib.get_close_matches(unknown, candidates, n=1, cutoff=0.6)
            if close:
                text += f"; did you mean {_FORMER_NAMES.get(close[0], close[0])!r}?"
            elif len(known) <= 12:
                text += "; expected one of " + ", ".join(known)
        return text
    if kind == "missing":
        return "required field is missing"
    given = error.get("input")
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


# converge's own former field names, for users coming from them.
_FORMER_NAMES = {
    "env": "environment",
    "mounts": "volumes",
    "workdir": "working_dir",
    "container_labels": "labels",
}

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
# What compose and docker stack deploy do between reading and validating


def _ignored_key_warnings(document: _Document, file: str) -> list[str]:
    """Keys swarm ignores, named with their place, as stack deploy's "Ignoring unsupported
    options" (but never an error, so that files shared with ``docker compose up`` work)."""
    warnings: list[str] = []
    services = document.data.get("services")

    def warn(path: FieldPath, message: str) -> None:
        where = _position_of(document.positions, file, path)
        warnings.append(f"{where.file}:{where.line}: {path_text(path)}: {message}")

    for name, service in services.items() if isinstance(services, dict) else ():
        if not isinstance(service, dict):
            continue
        for key in service:
            if key in _IGNORED_KEYS:
                hint = _IGNORED_HINTS.get(key, "")
                warn(("services", name, key), f"ignored by swarm{hint}")
        for index, port in enumerate(_as_list(service.get("ports"))):
            if isinstance(port, str) and port.count(":") >= 2:
                warn(
                    ("services", name, "ports", index),
                    "the host IP is ignored: a swarm service listens on every address",
                )
            elif isinstance(port, dict) and port.get("host_ip") is not None:
                warn(("services", name, "ports", index, "host_ip"), "ignored by swarm")
        for index, volume in enumerate(_as_list(service.get("volumes"))):
            tmpfs = volume.get("tmpfs") if isinstance(volume, dict) else None
            if isinstance(tmpfs, dict) and tmpfs.get("mode") is not None:
                warn(
                    ("services", name, "volumes", index, "tmpfs", "mode"),
                    "ignored, as by docker stack deploy (the tmpfs mode is not sent)",
                )
        networks = service.get("networks")
        if isinstance(networks, dict):
            for network, options in networks.items():
                for key in ("ipv4_address", "ipv6_address", "link_local_ips", "priority"):
                    if isinstance(options, dict) and key in options:
                        warn(("services", name, "networks", network, key), "ignored by swarm")
    declared = document.data.get("networks")
    for network, settings in declared.items() if isinstance(declared, dict) else ():
        if isinstance(settings, dict) and "enable_ipv6" in settings:
            warn(("networks", network, "enable_ipv6"), "ignored by swarm")
    return warnings


_IGNORED_KEYS = frozenset(IGNORED_SERVICE_KEYS)  # looked up for every key of every service

_IGNORED_HINTS = {
    "restart": "",
    "tmpfs": " (docker stack deploy drops it; use a volumes entry of type tmpfs)",
    "container_name": " (a swarm names the containers of a service's tasks itself)",
    "build": " (build and push the image first)",
    "cpus": " (use deploy.resources.limits.cpus)",
    "mem_limit": " (use deploy.resources.limits.memory)",
    "pids_limit": " (use deploy.resources.limits.pids)",
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _resolve_environment(
    document: _Document,
    file: str,
    working_dir: Path,
    environ: Mapping[str, str],
    problems: list[SpecProblem],
    digest: Any,
) -> set[FieldPath]:
    """Each service's ``env_file`` entries, then its ``environment``, into one mapping, as
    docker stack deploy does: an entry without a value, or with an empty one, takes the
    variable's value when it is set. Returns the paths whose values came from a file or from
    the environment (sensitive)."""
    sensitive: set[FieldPath] = set()
    services = document.data.get("services")
    if not isinstance(services, dict):
        return sensitive
    for name, service in services.items():
        if not isinstance(service, dict):
            continue
        env_files = service.get("env_file")
        environment = service.get("environment")
        if env_files is None and not _has_open_entries(environment):
            continue
        merged: dict[str, str | None] = {}
        from_outside: set[str] = set()
        added = 0  # characters from env files and the environment (see _Document.source_sizes)
        for index, entry in enumerate(_env_file_entries(env_files)):
            path, required = entry
            where: FieldPath = ("services", name, "env_file", index)
            if isinstance(env_files, str):
                where = ("services", name, "env_file")
            source = Path(os.path.expanduser(path))
            if not source.is_absolute():
                source = working_dir / source
            try:
                text = source.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                if not required and isinstance(error, FileNotFoundError):
                    continue
                reason = error.strerror if isinstance(error, OSError) and error.strerror else error
                problems.append(
                    _problem(document.positions, file, where, f"cannot read {path!r}: {reason}")
                )
                continue
            digest.update(text.encode())
            added += len(text)
            try:
                lines = parse_env_file(text, environ)
            except EnvFileError as error:
                problems.append(
                    SpecProblem(str(source), error.line, None, path_text(where), str(error))
                )
                continue
            for line in lines:
                key, _, value = line.partition("=")
                merged[key] = _from_environment(key, value, environ, from_outside)
                from_outside.add(key)
        explicit = _environment_mapping(environment)
        if explicit is None:
            continue  # malformed: validation reports it
        for key, value in explicit.items():
            merged[key] = _from_environment(key, value, environ, from_outside)
        added += sum(len(environ[key]) for key in from_outside if key in environ)
        if document.source_sizes is not None and name in document.source_sizes:
            document.source_sizes[name] += added
        service["environment"] = merged
        if isinstance(environment, list):
            # The list became a mapping: its items' positions and variables follow their keys.
            base: FieldPath = ("services", name, "environment")
            moved = {
                (*base, index): (*base, str(item).partition("=")[0])
                for index, item in enumerate(environment)
            }

            def move_items(
                positions: dict[FieldPath, Position], moved: dict[FieldPath, FieldPath] = moved
            ) -> None:
                positions.update(
                    {moved[path]: where for path, where in positions.items() if path in moved}
                )

            document.relocate(move_items)
            document.interpolated = {
                moved.get(path, path): used for path, used in document.interpolated.items()
            }
        sensitive.update(("services", name, "environment", key) for key in from_outside)
    return sensitive


def _has_open_entries(environment: Any) -> bool:
    """Whether ``environment`` has an entry that takes its value from the environment."""
    if isinstance(environment, dict):  # the usual form: no copy (this runs for every service)
        return any(value is None or value == "" for value in environment.values())
    mapping = _environment_mapping(environment)
    return mapping is not None and any(value in (None, "") for value in mapping.values())


def _environment_mapping(environment: Any) -> dict[str, Any] | None:
    if environment is None:
        return {}
    if isinstance(environment, dict):
        return dict(environment)
    if isinstance(environment, list) and all(isinstance(item, str) for item in environment):
        result: dict[str, Any] = {}
        for item in environment:
            key, has_value, value = item.partition("=")
            if key in result or not key:
                return None  # a duplicate or an empty name: validation reports it
            result[key] = value if has_value else None
        return result
    return None


def _from_environment(
    key: str, value: Any, environ: Mapping[str, str], from_outside: set[str]
) -> Any:
    if value in (None, "") and key in environ:
        from_outside.add(key)
        return environ[key]
    from_outside.discard(key)
    return value


def _env_file_entries(value: Any) -> list[tuple[str, bool]]:
    if isinstance(value, str):
        return [(value, True)]
    entries: list[tuple[str, bool]] = []
    for item in _as_list(value):
        if isinstance(item, str):
            entries.append((item, True))
        elif isinstance(item, dict) and isinstance(item.get("path"), str):
            entries.append((item["path"], item.get("required", True) is not False))
    return entries


def _read_dotenv(
    path: Path, problems: list[SpecProblem], digest: Any, must_exist: bool
) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if must_exist:
            problems.append(SpecProblem(str(path), None, None, "", "cannot read the file"))
        return {}
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        problems.append(SpecProblem(str(path), None, None, "", f"cannot read the file: {reason}"))
        return {}
    digest.update(text.encode())
    try:
        return parse_dotenv(text)
    except EnvFileError as error:
        problems.append(SpecProblem(str(path), error.line, None, "", str(error)))
        return {}


def _stack_names(document: _Document, file: str) -> list[tuple[str, str, _Where]]:
    """The stack names a file gives: (where, name, position) for x-converge.stack and name."""
    found: list[tuple[str, str, _Where]] = []

    def where(path: FieldPath) -> _Where:
        return lambda: _position_of(document.positions, file, path)

    extension = document.data.get("x-converge")
    if isinstance(extension, dict) and isinstance(extension.get("stack"), str):
        found.append(("x-converge.stack", extension["stack"], where(("x-converge", "stack"))))
    if isinstance(document.data.get("name"), str):
        found.append(("name", document.data["name"], where(("name",))))
    return found


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
        in_env = len(path) >= 4 and path[0] == "services" and path[2] == "environment"
        if in_env and isinstance(path[3], int):
            # The list form KEY=VALUE became a map: the entry's key is its text before "=".
            item = data["services"][path[1]]["environment"][path[3]]
            path = (*path[:3], str(item).partition("=")[0])
        if in_env or any(_SECRET_NAME.search(name) for name in variables):
            sensitive.add(path)
    return sensitive


def load_spec_text(
    text: str,
    file: str = "<spec>",
    environ: Mapping[str, str] | None = None,
    *,
    stack: str | None = None,
    require_stack: bool = True,
) -> LoadedSpec:
    """Load a compose file from text; ``file`` names it in error messages. Relative paths are
    relative to the current directory; no ``.env`` file is read.

    Raises:
        SpecError: with every problem found.
    """
    return _load(
        [(file, text)], environ, stack=stack, require_stack=require_stack, working_dir=Path.cwd()
    )


def load_spec(
    paths: Sequence[str | os.PathLike[str]],
    environ: Mapping[str, str] | None = None,
    *,
    stack: str | None = None,
    env_files: Sequence[str | os.PathLike[str]] | None = None,
    require_stack: bool = True,
) -> LoadedSpec:
    """Load, interpolate, merge (by compose's rules) and validate compose files.

    Args:
        paths: one or more compose files (``-c base.yml -c prod.yml``).
        environ: variables for ``${VAR}`` interpolation (default: the process environment).
        stack: the stack's name from the command line (``STACK``); otherwise the files'
            ``x-converge.stack`` or top-level ``name``.
        env_files: variable files (``--env-file``); default: ``.env`` beside the first file,
            if there is one. The environment wins over them, as in compose.
        require_stack: refuse a spec that names no stack (``validate`` does not need one).

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
    working_dir = Path(os.fspath(paths[0])).resolve().parent
    if env_files is None:
        variable_files, must_exist = [working_dir / ".env"], False
    else:
        variable_files, must_exist = [Path(os.fspath(item)) for item in env_files], True
    return _load(
        sources,
        environ,
        stack=stack,
        require_stack=require_stack,
        working_dir=working_dir,
        variable_files=variable_files,
        variable_files_required=must_exist,
    )


def _require_encodable(file: str, text: str) -> None:
    """Text given from Python may hold what no file can (a lone surrogate): refused, located."""
    try:
        text.encode()
    except UnicodeEncodeError as error:
        before = text[: error.start]
        line, column = before.count("\n") + 1, len(before) - before.rfind("\n")
        message = f"not valid text: character {text[error.start]!a} cannot be encoded as UTF-8"
        raise SpecError([SpecProblem(file, line, column, "", message)]) from None


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


def _load(
    sources: Sequence[tuple[str, str]],
    environ: Mapping[str, str] | None,
    *,
    stack: str | None,
    require_stack: bool,
    working_dir: Path,
    variable_files: Sequence[Path] = (),
    variable_files_required: bool = False,
) -> LoadedSpec:
    # A large spec is some 300,000 small objects, kept as long as the process (``keep``).
    with collector_paused(keep=True):
        return _load_sources(
            sources,
            environ,
            stack=stack,
            require_stack=require_stack,
            working_dir=working_dir,
            variable_files=variable_files,
            variable_files_required=variable_files_required,
        )


def _load_sources(
    sources: Sequence[tuple[str, str]],
    environ: Mapping[str, str] | None,
    *,
    stack: str | None,
    require_stack: bool,
    working_dir: Path,
    variable_files: Sequence[Path] = (),
    variable_files_required: bool = False,
) -> LoadedSpec:
    process = os.environ if environ is None else environ
    for file, text in sources:
        _require_encodable(file, text)
    if sum(len(text.encode()) for _, text in sources) > MAX_SPEC_BYTES:
        raise SpecError([_too_large(sources[-1][0], len(sources) > 1)])
    problems: list[SpecProblem] = []
    warnings: list[str] = []
    digest = hashlib.sha256()
    for _file, text in sources:
        digest.update(text.encode())
    from_files: dict[str, str] = {}
    for variable_file in variable_files:
        from_files.update(_read_dotenv(variable_file, problems, digest, variable_files_required))
    environment: Mapping[str, str] = {**from_files, **process}
    merged: _Document | None = None
    names: list[tuple[str, str, _Where]] = []
    first_file = sources[0][0] if sources else "<spec>"
    sensitive: set[FieldPath] = set()
    for file, text in sources:
        document = _parse_yaml(file, text, problems)
        if document is None:
            continue
        if "$" in text:  # nothing to interpolate otherwise: skip walking every value
            _interpolate(file, document, environment, problems, warnings)
        warnings.extend(_ignored_key_warnings(document, file))
        names.extend(_stack_names(document, file))
        merged = document if merged is None else _merge(merged, document)
    if problems:
        raise SpecError(problems)
    assert merged is not None
    if any("!reset" in text or "!override" in text for _, text in sources):
        merged.data = strip_markers(merged.data)
    _check_stack_names(names, stack, problems)
    warnings.extend(_stack_warning(names, stack))
    sensitive |= _resolve_environment(
        merged, first_file, working_dir, environment, problems, digest
    )
    if problems:
        raise SpecError(_in_file_order(problems))
    data = dict(merged.data)
    if stack is not None:
        extension = data.get("x-converge")
        data["x-converge"] = {**(extension if isinstance(extension, dict) else {}), "stack": stack}
    last_file = sources[-1][0] if sources else "<spec>"
    context = {
        "working_dir": str(working_dir),
        "home": environment.get("HOME"),
    }
    try:
        spec = Spec.model_validate(data, context=context)
    except ValidationError as error:
        raise SpecError(
            _in_file_order(_problems_from_validation(error, merged, last_file))
        ) from None
    semantic = [
        _problem(merged.positions, last_file, path, message, merged.data)
        for path, message in check_spec(spec, merged.source_sizes)
    ]
    if require_stack and not spec.stack:
        semantic.append(
            SpecProblem(
                first_file,
                1,
                1,
                "",
                "no stack name: give STACK on the command line, or x-converge.stack or name "
                "in the file",
            )
        )
    source_variables: dict[str, str] = {}
    for kind in ("secrets", "configs"):
        for key, declared in getattr(spec, kind).items():
            variable = declared.environment
            if variable is None:
                continue
            if variable in environment:
                source_variables[variable] = environment[variable]
            else:
                semantic.append(
                    _problem(
                        merged.positions,
                        last_file,
                        (kind, key, "environment"),
                        f"{kind[:-1]} {key}: the variable {variable} is not set",
                        merged.data,
                    )
                )
    if semantic:
        raise SpecError(_in_file_order(semantic))
    return LoadedSpec(
        spec=spec,
        files=tuple(file for file, _ in sources),
        sensitive_paths=frozenset(_sensitive(merged.data, merged.interpolated) | sensitive),
        warnings=tuple(warnings),
        digest=digest.hexdigest(),
        source_variables=source_variables,
        working_dir=str(working_dir),
    )


def _check_stack_names(
    names: Sequence[tuple[str, str, _Where]], stack: str | None, problems: list[SpecProblem]
) -> None:
    """Files that name different stacks are an error, not a merge into the last one (a
    top-level ``name``, compose's project name, gives way to ``x-converge.stack``). The
    command line's STACK wins over both, as with docker stack deploy (see ``_stack_warning``)."""
    named = {name for where, name, _ in names if where == "x-converge.stack"}
    project = {name for where, name, _ in names if where == "name"}
    for where, name, locate in names:
        others = named if where == "x-converge.stack" else (named or project)
        conflict = next((other for other in sorted(others) if other != name), None)
        if conflict is not None and not (where == "name" and named):
            position = locate()
            problems.append(
                SpecProblem(
                    position.file,
                    position.line,
                    position.column,
                    where,
                    f"the files name different stacks: {name!r} here, {conflict!r} elsewhere",
                )
            )


def _stack_warning(names: Sequence[tuple[str, str, _Where]], stack: str | None) -> list[str]:
    """The command line's STACK deploys a file under another name than ``x-converge.stack``
    says: allowed (a test or staging copy of a stack), and said."""
    return [
        f"{position.file}:{position.line}: {where}: the file names stack {name!r}; "
        f"deploying it as stack {stack!r}, as the command line says"
        for where, name, locate in names
        if stack is not None and where == "x-converge.stack" and name != stack
        for position in (locate(),)
    ]


def _merge(base: _Document, override: _Document) -> _Document:
    result = merge_documents(base.data, override.data)

    def survives(path: FieldPath) -> bool:
        return not any(path[: len(prefix)] == prefix for prefix in result.dropped)

    def locate() -> dict[FieldPath, Position]:
        moved = {
            relocate(path, result.base_relocations): pos for path, pos in base.positions.items()
        }
        positions = {path: pos for path, pos in moved.items() if survives(path)}
        for path, pos in override.positions.items():
            positions[relocate(path, result.relocations)] = pos
        return positions

    moved_interpolated = {
        relocate(path, result.base_relocations): used for path, used in base.interpolated.items()
    }
    interpolated = {path: used for path, used in moved_interpolated.items() if survives(path)}
    for path, used in override.interpolated.items():
        interpolated[relocate(path, result.relocations)] = used
    sizes = None
    if base.source_sizes is not None and override.source_sizes is not None:
        # A merged service holds at most what both files give it.
        sizes = dict(base.source_sizes)
        for key, size in override.source_sizes.items():
            sizes[key] = sizes.get(key, 0) + size
    return _Document(result.data, locate, interpolated, source_sizes=sizes)
