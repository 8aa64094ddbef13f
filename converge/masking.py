"""Secret values masked out of everything converge shows: one place, below every renderer.

A value is secret when

- the spec took it from the environment at a sensitive path (``LoadedSpec.sensitive_paths``),
  on either side of a change (the rotated-away value too); or
- it is a service's environment value whose name looks sensitive (``sensitive_name``), on
  either side, whoever set it: the spec, an earlier spec, or someone by hand in the swarm; or
- it is the password of a URL (``postgres://user:PASSWORD@host``), anywhere; or
- it is the content of one of the spec's secrets (``LoadedSpec.contents``), anywhere.

Masked values show as ``(sensitive)``. The texts of all known secret values (the spec's, and
those a plan saw at sensitive names) are also scrubbed wherever they show up: a task or engine
error, a finding's message, a command line.

Sensitive names: an environment variable whose name contains one of ``SENSITIVE_NAME_WORDS``
(case-insensitive); ``CONVERGE_SENSITIVE_NAMES`` (comma-separated words) adds more.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from converge.actions import Action, Plan
from converge.diff import FieldChange
from converge.loader import FieldPath, LoadedSpec

__all__ = [
    "MASK",
    "SENSITIVE_NAMES_VARIABLE",
    "SENSITIVE_NAME_WORDS",
    "Masker",
    "plan_secret_texts",
    "scrub",
    "secret_texts",
    "sensitive_name",
    "sensitive_name_words",
]

MASK = "(sensitive)"

SENSITIVE_NAME_WORDS: tuple[str, ...] = (
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "KEY",
    "CREDENTIAL",
    "AUTH",
    "PRIVATE",
    "CERT",
    "DSN",
)
"""Words that make an environment variable's name sensitive (substring, case-insensitive)."""

SENSITIVE_NAMES_VARIABLE = "CONVERGE_SENSITIVE_NAMES"

# The spec's section that holds each kind of object, where its sensitive paths start.
_SECTIONS: dict[str, tuple[str, ...]] = {
    "node": ("x-converge", "nodes"),
    "network": ("networks",),
    "service": ("services",),
}

# scheme://user:password@ : the password part.
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)[^\s/@]+@")

# Shorter secrets are masked by their path only: hunting them in every value would mask noise.
_MIN_SECRET_TEXT = 4
# Values found by name only (not from a variable) may be plain words ("basic", "true"): hunt
# only those long enough to be a credential.
_MIN_NAMED_SECRET_TEXT = 8


def sensitive_name_words(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The built-in words plus those of ``CONVERGE_SENSITIVE_NAMES`` (comma-separated).

    The variable only adds words: masking can be widened, never switched off.
    """
    environ = os.environ if environ is None else environ
    extra = environ.get(SENSITIVE_NAMES_VARIABLE, "")
    added = tuple(word.strip().upper() for word in extra.split(",") if word.strip())
    return SENSITIVE_NAME_WORDS + added


def sensitive_name(name: str, words: Iterable[str] | None = None) -> bool:
    """Whether an environment variable called ``name`` holds a secret by its name."""
    upper = name.upper()
    return any(word in upper for word in (sensitive_name_words() if words is None else words))


def secret_texts(loaded: LoadedSpec | None) -> frozenset[str]:
    """The values at the spec's sensitive paths, to be found wherever they show up."""
    if loaded is None:
        return frozenset()
    data: Any = loaded.spec.model_dump()
    texts: set[str] = set()
    for path in loaded.sensitive_paths:
        value = data
        for part in path:
            try:
                value = value[part]
            except (KeyError, IndexError, TypeError):
                value = None
                break
        texts.update(_texts(value))
    for (kind, _key), content in (loaded.contents or {}).items():
        if kind == "secret":
            shown = content.decode("utf-8", errors="replace")
            texts.update(_texts(shown) | _texts(shown.strip()))
    words = sensitive_name_words()
    for service in data.get("services", {}).values():
        for name, value in (service.get("environment") or {}).items():
            if sensitive_name(name, words):
                texts.update(_texts(value, _MIN_NAMED_SECRET_TEXT))
    return frozenset(texts)


def plan_secret_texts(plan: Plan | None, loaded: LoadedSpec | None = None) -> frozenset[str]:
    """Values a plan saw on either side of a change at a sensitive place: an environment name
    that looks sensitive (a hand-set token too), or a sensitive path of ``loaded`` (the value
    a rotation replaces)."""
    if plan is None:
        return frozenset()
    words = sensitive_name_words()
    texts: set[str] = set()
    for action in plan.actions:
        section = _SECTIONS.get(action.object_kind)
        for change in action.changes:
            for side in (change.before, change.after):
                for path, value in _leaves(change.path, side):
                    if action.object_kind == "service" and _named_secret(path, words):
                        texts.update(_texts(value, _MIN_NAMED_SECRET_TEXT))
                    elif (
                        loaded is not None
                        and section is not None
                        and loaded.is_sensitive((*section, action.key, *path))
                    ):
                        texts.update(_texts(value))
    return frozenset(texts)


def _leaves(path: tuple[str, ...], value: Any) -> list[tuple[tuple[str, ...], Any]]:
    """(path, value) of every leaf below ``path`` (lists are leaves, as the diff reports them)."""
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in _leaves((*path, str(key)), item)]
    return [(path, value)]


def _named_secret(path: tuple[str, ...], words: Iterable[str]) -> bool:
    return len(path) == 2 and path[0] == "environment" and sensitive_name(path[1], words)


def _texts(value: Any, shortest: int = _MIN_SECRET_TEXT) -> set[str]:
    shown = "" if value is None or isinstance(value, bool | dict | list | tuple) else str(value)
    return {shown} if len(shown) >= shortest else set()


def _shows_secret(value: Any, secrets: frozenset[str]) -> bool:
    if isinstance(value, list | tuple):
        return any(_shows_secret(item, secrets) for item in value)
    if isinstance(value, dict):
        return any(_shows_secret(item, secrets) for item in value.values())
    return isinstance(value, str) and any(secret in value for secret in secrets)


class Masker:
    """Masks the secrets of one spec (none when ``loaded`` is None) in text and in changes.

    Args:
        plan: also scrub, wherever they show up, the values this plan saw at sensitive
            environment names (a token set by hand in the swarm, a rotated-away value).
    """

    def __init__(self, loaded: LoadedSpec | None, plan: Plan | None = None) -> None:
        self._loaded = loaded
        self._words = sensitive_name_words()
        self._secrets = secret_texts(loaded) | plan_secret_texts(plan, loaded)
        # Longest first: a secret that contains another is replaced whole.
        self._ordered = sorted(self._secrets, key=len, reverse=True)

    def text(self, text: str) -> str:
        """``text`` with every secret value replaced by ``(sensitive)``."""
        for secret in self._ordered:
            text = text.replace(secret, MASK)
        return _URL_PASSWORD.sub(rf"\g<1>{MASK}@", text)

    def value(self, action: Action, path: tuple[str, ...], value: Any) -> Any:
        """The value of field ``path`` of ``action``'s object, or ``(sensitive)``."""
        return _url_passwords_masked(self._value(action, path, value))

    def _value(self, action: Action, path: tuple[str, ...], value: Any) -> Any:
        if value is None:
            return value
        if action.object_kind == "service" and path[:1] == ("environment",):
            if _named_secret(path, self._words):
                return MASK
            if len(path) == 1 and isinstance(value, dict):
                return {
                    key: self.value(action, ("environment", key), item)
                    for key, item in value.items()
                }
        loaded = self._loaded
        section = _SECTIONS.get(action.object_kind)
        if loaded is None or section is None:
            return MASK if _shows_secret(value, self._secrets) else value
        full: FieldPath = (*section, action.key, *path)
        if loaded.is_sensitive(full):
            return MASK
        if isinstance(value, dict):
            return {key: self.value(action, (*path, key), item) for key, item in value.items()}
        # A secret inside a list (command, healthcheck test) sits below this path; and a view
        # field need not follow the spec's path (constraints, mounts), so look at the value too.
        below = any(secret[: len(full)] == full for secret in loaded.sensitive_paths)
        if below or _shows_secret(value, self._secrets):
            return MASK
        return value

    def change(self, action: Action, change: FieldChange) -> FieldChange:
        """``change`` with both sides masked."""
        return FieldChange(
            change.path,
            self.value(action, change.path, change.before),
            self.value(action, change.path, change.after),
        )

    def action(self, action: Action) -> Action:
        """``action`` with every change masked (its ``description`` then shows no secret)."""
        return replace(action, changes=tuple(self.change(action, item) for item in action.changes))


def _url_passwords_masked(value: Any) -> Any:
    if isinstance(value, str):
        return _URL_PASSWORD.sub(rf"\g<1>{MASK}@", value)
    if isinstance(value, list | tuple):
        return type(value)(_url_passwords_masked(item) for item in value)
    if isinstance(value, dict):
        return {key: _url_passwords_masked(item) for key, item in value.items()}
    return value


def scrub(text: str, loaded: LoadedSpec | None, plan: Plan | None = None) -> str:
    """``text`` with every secret of the spec (and of ``plan``) replaced by ``(sensitive)``."""
    return Masker(loaded, plan).text(text)
