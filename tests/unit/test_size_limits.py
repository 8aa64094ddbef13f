"""Size limits: a service the engine would refuse is caught at validate time, and a spec too
large to plan in bounded memory is refused before it is parsed."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from converge.checks import ENGINE_SPEC_LIMIT
from converge.cli import app
from converge.errors import SpecError
from converge.loader import MAX_SPEC_BYTES, load_spec

SPEC = """x-converge:
  stack: big
services:
  small:
    image: app:v1
  web:
    image: app:v1
    environment:
      BLOB: "{blob}"
"""


def test_a_service_above_the_engines_message_limit_is_refused_naming_it(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yml"
    spec.write_text(SPEC.format(blob="x" * (ENGINE_SPEC_LIMIT + 1024)))
    with pytest.raises(SpecError) as raised:
        load_spec([spec])
    (problem,) = raised.value.problems
    assert problem.path == "services.web"
    assert problem.message.startswith(
        "service 'web' is 4.0 MiB as sent to the engine; the engine refuses a service spec "
        "above 4 MiB (its gRPC message limit)"
    )
    result = CliRunner().invoke(app, ["validate", str(spec)])
    assert result.exit_code == 1
    # Just below the limit is fine.
    spec.write_text(SPEC.format(blob="x" * (ENGINE_SPEC_LIMIT - 4096)))
    assert set(load_spec([spec]).spec.services) == {"small", "web"}


def test_a_spec_file_above_the_limit_is_refused_before_parsing_in_bounded_memory(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "huge.yml"
    size = 6 * MAX_SPEC_BYTES
    with spec.open("w") as handle:  # not even YAML past the first line: it is never parsed
        handle.write("name: big\n")
        handle.write("[" * (size - 10))
    tracemalloc.start()
    try:
        with pytest.raises(SpecError) as raised:
            load_spec([spec])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (problem,) = raised.value.problems
    assert problem.file == str(spec)
    assert problem.message.startswith("the file is larger than 8 MiB, the most converge reads")
    assert peak < 3 * MAX_SPEC_BYTES  # the file was not read whole


def test_several_files_count_together(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yml", tmp_path / "b.yml"
    first.write_text("# " + "x" * (MAX_SPEC_BYTES // 2 + 10) + "\nname: s\n")
    second.write_text("# " + "x" * (MAX_SPEC_BYTES // 2 + 10) + "\n")
    with pytest.raises(SpecError, match="the spec files are larger than 8 MiB"):
        load_spec([first, second])
