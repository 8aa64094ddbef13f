"""Size limits: a service the engine would refuse is caught at validate time, and a spec too
large to plan in bounded memory is refused before it is parsed."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

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


# The size bound: a service whose source is small is not converted to measure it, so the bound
# must hold for every way a small source becomes a large Engine API spec.
IMPLICIT = ["1.0e+15", "on", "~", ".5"]  # YAML values whose text is shorter than what is sent
WORST_CASES = {
    "port ranges": "ports: ['1-3000:1-3000', 7000-7999/udp]",
    "short ports": "ports: [" + ",".join(str(port) for port in range(1, 400)) + "]",
    "capabilities": "cap_add: [" + ",".join("a" * (index % 3 + 1) for index in range(300)) + "]",
    "implicit values": "environment: {"
    + ", ".join(f"K{index}: {value}" for index, value in enumerate(IMPLICIT * 50))
    + "}\n    labels: {"
    + ", ".join(f"l{index}: on" for index in range(100))
    + "}",
    "astral characters": "image: "
    + "\U0001f600" * 200
    + "\n    labels: {a: "
    + "\U0001f600" * 200
    + "}",
    "escapes": 'hostname: "' + "\\0\\L" * 200 + '"\n    user: "' + "\\t" * 100 + '"',
    "named volumes": "volumes: [" + ", ".join(f"v:/d{index}" for index in range(200)) + "]",
    "anonymous and bind mounts": "volumes: ["
    + ", ".join(f"/a{index}" for index in range(100))
    + ", "
    + ", ".join(f"./b:/b{index}" for index in range(100))
    + "]",
    "secrets and configs": "secrets: [s]\n    configs: [c]",
    "networks": "networks: {n: {aliases: [a, b]}, m: {}}",
    "numbers": "ulimits: {"
    + ", ".join(f"u{index}: 9223372036854775807" for index in range(50))
    + "}\n    healthcheck: {test: x, interval: 1.0e+8, timeout: 1.0e+8, retries: 1}"
    + "\n    stop_grace_period: 1.0e+8\n    deploy: {replicas: 1.0e+4, resources: {limits: "
    + "{cpus: 1, memory: 1T}, reservations: {generic_resources: ["
    + ", ".join("{discrete_resource_spec: {kind: k, value: 1.0e+15}}" for _ in range(50))
    + "]}}, restart_policy: {delay: 1.0e+8, window: 1.0e+8}, update_config: {delay: 1.0e+8}}",
    "the rest": "command: a b c d e f g h\n    entrypoint: [x]\n    extra_hosts: {h: 1.2.3.4}"
    "\n    dns: [1.1.1.1]\n    dns_search: [a]\n    dns_opt: [b]\n    sysctls: {a: 1}"
    "\n    logging: {driver: d, options: {a: b}}\n    working_dir: /w\n    init: true"
    "\n    read_only: on\n    tty: on\n    stdin_open: on\n    stop_signal: S\n    isolation: i"
    "\n    restart: on-failure:9",
    "interpolation and env files": "image: ${IMAGE}\n    env_file: big.env"
    "\n    environment: [FROM_ENV]",
}

DECLARED = """
volumes:
  v:
    driver: {long}
    driver_opts: {{o: {long}}}
    labels: {{a: {long}}}
networks:
  n:
    name: {long}
  m: {{}}
secrets:
  s:
    external: true
    name: {long}
configs:
  c:
    content: x
    name: {long}
"""


@pytest.mark.parametrize("case", sorted(WORST_CASES))
def test_the_size_bound_holds_where_a_small_source_grows_most(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from converge import loader
    from converge.checks import _size_bound, check_spec
    from converge.engine_spec import service_engine_spec

    seen: dict[str, int] = {}

    def recording(spec: Any, source_sizes: Any = None) -> Any:
        seen.update(source_sizes)
        return check_spec(spec, source_sizes)

    monkeypatch.setattr(loader, "check_spec", recording)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "big.env").write_text("A=" + "y" * 5000 + "\nFROM_FILE\n")
    environ = {"IMAGE": "i" * 3000, "FROM_ENV": "e" * 3000, "FROM_FILE": "f" * 3000}
    text = (
        "x-converge: {stack: a-rather-long-stack-name}\nservices:\n  s:\n    image: app\n    "
        + WORST_CASES[case].replace("image: app\n    ", "")
        + "\n"
        + DECLARED.format(long="n" * 50)
    )
    if "image:" in WORST_CASES[case]:
        text = text.replace("    image: app\n", "", 1)
    loaded = loader.load_spec_text(text, environ=environ)
    exact = len(json.dumps(service_engine_spec(loaded.spec, "s"), separators=(",", ":")))
    bound = _size_bound(loaded.spec, "s", seen["s"], {})
    assert exact <= bound, (exact, bound)


def test_a_small_source_that_grows_past_the_limit_is_still_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each way the bound counts something beyond the service's text, pushed past 4 MiB."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "big.env").write_text("A=" + "y" * ENGINE_SPEC_LIMIT + "\n")
    environ = {"BIG": "z" * ENGINE_SPEC_LIMIT}
    cases = {
        "env_file": "env_file: big.env",
        "interpolation": "environment: {A: '${BIG}'}",
        "environment": "environment: [BIG]",
        "port ranges": "ports: ['1-65535:1-65535', '1-65535:1-65535/udp']",
    }
    for case, lines in cases.items():
        text = f"x-converge: {{stack: big}}\nservices:\n  web:\n    image: app\n    {lines}\n"
        with pytest.raises(SpecError) as raised:
            loader_text(text, environ)
        (problem,) = raised.value.problems
        assert problem.path == "services.web", case
        assert "as sent to the engine; the engine refuses a service spec" in problem.message


def loader_text(text: str, environ: dict[str, str]) -> object:
    from converge.loader import load_spec_text

    return load_spec_text(text, environ=environ)
