"""Secret values masked out of everything converge shows: one place, below every renderer.

A value is secret when the spec took it from the environment at a sensitive path (see
``LoadedSpec.sensitive_paths``). It is masked by its path in a plan's changes, and wherever its
text shows up (a task error, a finding's message, a command line).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from converge.actions import Action
from converge.diff import FieldChange
from converge.loader import FieldPath, LoadedSpec

__all__ = ["MASK", "Masker", "scrub", "secret_texts"]

MASK = "(sensitive)"

# The spec's section that holds each kind of object, where its sensitive paths start.
_SECTIONS: dict[str, tuple[str, ...]] = {
    "node": ("x-converge", "nodes"),
    "network": ("networks",),
    "service": ("services",),
}

# Shorter secrets are masked by their path only: hunting them in every value would mask noise.
_MIN_SECRET_TEXT = 4


def secret_texts(loaded: LoadedSpec | None) -> frozenset[str]:
    """The values at the spec's sensitive paths, to be found wherever they show up."""
    if loaded is None or not loaded.sensitive_paths:
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
        shown = "" if value is None or isinstance(value, bool | dict | list | tuple) else str(value)
        if len(shown) >= _MIN_SECRET_TEXT:
            texts.add(shown)
    return frozenset(texts)


def _shows_secret(value: Any, secrets: frozenset[str]) -> bool:
    if isinstance(value, list | tuple):
        return any(_shows_secret(item, secrets) for item in value)
    return isinstance(value, str) and any(secret in value for secret in secrets)


class Masker:
    """Masks the secrets of one spec (none when ``loaded`` is None) in text and in changes."""

    def __init__(self, loaded: LoadedSpec | None) -> None:
        self._loaded = loaded
        self._secrets = secret_texts(loaded)

    def text(self, text: str) -> str:
        """``text`` with every secret value replaced by ``(sensitive)``."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def value(self, action: Action, path: tuple[str, ...], value: Any) -> Any:
        """The value of field ``path`` of ``action``'s object, or ``(sensitive)``."""
        loaded = self._loaded
        if loaded is None or not loaded.sensitive_paths or value is None:
            return value
        section = _SECTIONS.get(action.object_kind)
        if section is None:
            return value
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


def scrub(text: str, loaded: LoadedSpec | None) -> str:
    """``text`` with every secret value of the spec replaced by ``(sensitive)``."""
    return Masker(loaded).text(text)
