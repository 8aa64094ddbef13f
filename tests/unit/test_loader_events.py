"""The loader's event-built fast path (``_EventBuilder``) gives the same document as the
node-based one on every spec file of the repository and on the shapes it must hand over."""

from __future__ import annotations

from pathlib import Path

import pytest

from converge import loader
from converge.errors import SpecError

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(
    path
    for folder in (ROOT / "tests" / "fixtures", ROOT / "specs")
    for pattern in ("*.yml", "*.yaml")
    for path in folder.rglob(pattern)
)
SNIPPETS = {
    "empty": "",
    "comment only": "# nothing\n",
    "null document": "~\n",
    "empty document": "---\n",
    "a list": "- a\n",
    "two documents": "a: 1\n---\nb: 2\n",
    "anchor and alias": "x-a: &a {image: x}\nservices:\n  web: *a\n",
    "anchor alone": "services:\n  web: &w {image: x}\n",
    "merge key": "x-a: &a {image: x}\nservices:\n  web: {<<: *a, replicas: 2}\n",
    "duplicate key": "services: {}\nservices: {}\n",
    "duplicate service": "services:\n  web: {image: a}\n  web: {image: b}\n",
    "override tag": "services:\n  web:\n    ports: !override ['80:80']\n",
    "reset tag": "services:\n  web:\n    ports: !reset []\n",
    "override mapping": "services: !override\n  web: {image: x}\n",
    "scalars": "a: 1\nb: 010\nc: 1.5\nd: true\ne: null\nf: '2'\ng: 0x1F\nh: 2026-01-01\n",
    "int keys": "services:\n  1: {image: x}\n  web: {environment: {2: a}}\n",
    "null key": "services:\n  ~: {image: x}\n",
    "complex key": "? [a]\n: b\n",
    "complex service key": "services:\n  mysql:\n  ? image: x\n    replicas: 2\n",
    "sequence service key": "services:\n  ? [web]\n  : {image: x}\n",
    "explicit tags": "a: !!str 1\nb: !!map {c: !!seq [d]}\nc: ! x\n",
    "flow and block": "services: {web: {image: x}, db: {image: y, command: [a, b]}}\n",
    "scalar service": "services:\n  web:\n  db: null\n  lb: text\n",
    "a bad text": "services: [\n",
    "a tab": "services:\n\tweb: {}\n",
    "nested": "a: " + "[" * 60 + "]" * 60 + "\n",
    "unicode": "services:\n  wéb: {image: 'x\u00e9'}\n",
}


def both(text: str) -> tuple[object, object]:
    def shape(document: object) -> object:
        if document is None:
            return None
        assert isinstance(document, loader._Document)
        return (document.data, document.source_sizes)

    return shape(loader._parse_fast("f.yml", text)), shape(loader._parse_fast_nodes("f.yml", text))


@pytest.mark.parametrize("path", FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_spec_file_gives_the_same_document(path: Path) -> None:
    events, nodes = both(path.read_text(encoding="utf-8", errors="replace"))
    assert events == nodes


@pytest.mark.parametrize("text", SNIPPETS.values(), ids=SNIPPETS.keys())
def test_each_shape_gives_the_same_document(text: str) -> None:
    events, nodes = both(text)
    assert events == nodes


def test_a_usual_spec_builds_no_node_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args: object) -> None:
        raise AssertionError("the node tree was built")

    monkeypatch.setattr(loader, "_parse_fast_nodes", refused)
    text = (ROOT / "specs" / "exampleapp.yml").read_text(encoding="utf-8")
    document = loader._parse_fast("exampleapp.yml", text)
    assert document is not None
    assert document.source_sizes
    assert set(document.source_sizes) == set(document.data["services"])


def test_a_mapping_as_a_service_name_is_a_spec_error_with_its_position() -> None:
    # Found by the loader's property test: the services mapping read a key's text before
    # checking that the key was a scalar, and raised AttributeError.
    with pytest.raises(SpecError, match=r"^f\.yml:3:5: invalid YAML: found unhashable key"):
        loader.load_spec_text("services:\n  mysql:\n  ? image: x\n    replicas: 2\n", "f.yml", {})
