"""What the Markdown renderers share."""

from __future__ import annotations


def markdown_cell(text: str) -> str:
    """Text that stays inside one Markdown table cell (a value may hold ``|`` or newlines)."""
    return text.replace("|", "\\|").replace("\n", " ")
