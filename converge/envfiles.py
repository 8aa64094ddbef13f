"""Variable files: compose's ``.env`` (``--env-file``) and a service's ``env_file``.

Two formats, as the two tools read them. The ``.env`` file beside the first compose file (or
``--env-file``) supplies variables for interpolation, as ``docker compose`` reads it: ``KEY=VALUE``
lines, an optional ``export``, single quotes taken literally, double quotes with ``\\n``-style
escapes, ``#`` comments. A service's ``env_file`` is read as ``docker stack deploy`` reads it
(docker's ``--env-file`` format): ``KEY=VALUE`` taken as written, quotes included, and a bare
``KEY`` takes its value from the environment or is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["EnvFileError", "parse_dotenv", "parse_env_file"]

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "$": "$"}


class EnvFileError(ValueError):
    """A line of a variable file that cannot be read; ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def parse_dotenv(text: str) -> dict[str, str]:
    """The variables of a compose ``.env`` file, in order.

    Raises:
        EnvFileError: a line is not ``KEY=VALUE``.
    """
    result: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number = index + 1
        line = lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, separator, rest = line.partition("=")
        key = key.strip()
        if not separator:
            if _KEY.fullmatch(key):
                continue  # a bare name in .env sets nothing
            raise EnvFileError(number, f"expected KEY=VALUE, got {line!r}")
        if not _KEY.fullmatch(key):
            raise EnvFileError(number, f"{key!r} is not a variable name")
        rest = rest.lstrip()
        if rest[:1] in ("'", '"'):
            quote = rest[0]
            body = rest[1:]
            # A quoted value may span lines until its closing quote.
            while _closing_quote(body, quote) < 0 and index < len(lines):
                body += "\n" + lines[index]
                index += 1
            end = _closing_quote(body, quote)
            if end < 0:
                raise EnvFileError(number, f"the value of {key} has no closing {quote}")
            value = body[:end]
            result[key] = _unescape(value) if quote == '"' else value
        else:
            value = re.split(r"\s#", rest, maxsplit=1)[0]
            result[key] = value.strip()
    return result


def _closing_quote(text: str, quote: str) -> int:
    position = 0
    while position < len(text):
        if text[position] == "\\" and quote == '"':
            position += 2
            continue
        if text[position] == quote:
            return position
        position += 1
    return -1


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda match: _ESCAPES.get(match[1], "\\" + match[1]), text)


def parse_env_file(text: str, environ: Mapping[str, str]) -> list[str]:
    """A service ``env_file``'s entries as ``KEY=VALUE`` strings (docker's env-file format).

    Raises:
        EnvFileError: a variable name contains whitespace.
    """
    entries: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.lstrip(" \t")
        if not line or line.startswith("#"):
            continue
        key, separator, value = line.partition("=")
        if not key:
            raise EnvFileError(number, f"no variable name on line {line!r}")
        if any(character.isspace() for character in key):
            raise EnvFileError(number, f"variable {key!r} contains whitespace")
        if separator:
            entries.append(f"{key}={value}")
        elif key in environ:
            entries.append(f"{key}={environ[key]}")
    return entries
