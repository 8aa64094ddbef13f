"""Where converge connects: the docker CLI's order of --host, --context, variables, contexts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from converge.engine import Endpoint, connect, resolve_endpoint
from converge.errors import EngineError


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty docker CLI config directory with two contexts, as `docker context create` makes."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    (tmp_path / "config.json").write_text("{}")
    _cli_context(tmp_path, "lab", "unix:///run/lab/manager.sock")
    _cli_context(tmp_path, "prod", "ssh://deploy@prod-manager")
    return tmp_path


def _cli_context(config: Path, name: str, host: str) -> None:
    # As `docker context create NAME --docker host=HOST` stores it: the host as written.
    meta = config / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    endpoint = {"Host": host, "SkipTLSVerify": False}
    document = {"Name": name, "Metadata": {}, "Endpoints": {"docker": endpoint}}
    (meta / "meta.json").write_text(json.dumps(document))


def test_host_flag_wins(docker_config: Path) -> None:
    environ = {"DOCKER_HOST": "tcp://env:2376", "DOCKER_CONTEXT": "lab"}
    assert resolve_endpoint("unix:///flag.sock", None, environ) == Endpoint(
        "unix:///flag.sock", "--host"
    )


def test_context_flag_beats_docker_host(docker_config: Path) -> None:
    endpoint = resolve_endpoint(None, "prod", {"DOCKER_HOST": "tcp://env:2376"})
    assert endpoint == Endpoint("ssh://deploy@prod-manager", "context prod (--context)", "prod")


def test_docker_host_beats_docker_context(docker_config: Path) -> None:
    endpoint = resolve_endpoint(
        None, None, {"DOCKER_HOST": "tcp://env:2376", "DOCKER_CONTEXT": "lab"}
    )
    assert endpoint == Endpoint("tcp://env:2376", "DOCKER_HOST")


def test_docker_context_variable_then_the_current_context(docker_config: Path) -> None:
    assert resolve_endpoint(None, None, {"DOCKER_CONTEXT": "lab"}).address == (
        "unix:///run/lab/manager.sock"
    )
    (docker_config / "config.json").write_text(json.dumps({"currentContext": "prod"}))
    endpoint = resolve_endpoint(None, None, {})
    assert endpoint.address == "ssh://deploy@prod-manager"
    assert endpoint.describe() == (
        "ssh://deploy@prod-manager (from context prod (docker context use))"
    )


def test_nothing_set_means_the_local_socket(docker_config: Path) -> None:
    assert resolve_endpoint(None, None, {}) == Endpoint("unix:///var/run/docker.sock", "default")


def test_unknown_context_and_conflicting_flags_are_clear_errors(docker_config: Path) -> None:
    with pytest.raises(EngineError, match=r"docker context 'nope' \(DOCKER_CONTEXT\) does not"):
        resolve_endpoint(None, None, {"DOCKER_CONTEXT": "nope"})
    with pytest.raises(EngineError, match="--host and --context conflict"):
        resolve_endpoint("unix:///a.sock", "lab", {})


def test_ssh_alias_keeps_the_port_of_the_ssh_config(docker_config: Path) -> None:
    # docker-py writes ssh://alias as ssh://alias:22 and would pass "-p 22" to ssh.
    with connect("ssh://lab-node") as engine:
        assert engine._client._custom_adapter.ssh_host == "lab-node"
        assert engine.address == "ssh://lab-node (from --host)"
    with connect("ssh://me@lab-node:2222") as engine:
        assert engine._client._custom_adapter.ssh_host == "me@lab-node:2222"


def test_the_environment_s_proxies_apply_to_tcp_engines_only(
    docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = "http://proxy.example.com:3128"
    for name in ("HTTP_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    with connect("tcp://manager1.example.com:2375") as engine:
        client = engine._client
        settings = client.merge_environment_settings(client.base_url, {}, None, None, None)
        assert settings["proxies"]["http"] == proxy
    # A socket is reached without a proxy; the environment is not even read for one.
    with connect("unix:///run/lab/manager.sock") as engine:
        client = engine._client
        assert client.trust_env is False
        settings = client.merge_environment_settings(client.base_url, {}, None, None, None)
        assert settings["proxies"] == {}
