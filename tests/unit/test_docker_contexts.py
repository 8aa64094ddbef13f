"""The docker CLI's contexts are found where the docker CLI keeps them.

docker-py's own reader looks next to the first config.json it finds, and in the working
directory when there is none: a context made by ``docker context create`` (which writes no
config.json) was "not found", and ``DOCKER_CONFIG`` lost to ``~/.docker`` when only the latter
had a config.json.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from converge.contexts import DockerContext, config_dir, current_context_name, load_context
from converge.engine import Endpoint, connect, resolve_endpoint
from converge.errors import EngineError


def _store(config: Path, name: str, endpoint: dict[str, object]) -> Path:
    """A context as `docker context create` (CLI 28) stores it; its TLS directory."""
    identity = hashlib.sha256(name.encode()).hexdigest()
    meta = config / "contexts" / "meta" / identity
    meta.mkdir(parents=True)
    document = {"Name": name, "Metadata": {}, "Endpoints": {"docker": endpoint}}
    (meta / "meta.json").write_text(json.dumps(document))
    return config / "contexts" / "tls" / identity / "docker"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    for name in ("DOCKER_CONFIG", "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY"):
        monkeypatch.delenv(name, raising=False)
    return home


def test_a_context_is_found_without_any_config_json(home: Path) -> None:
    _store(home / ".docker", "lab", {"Host": "unix:///run/lab.sock", "SkipTLSVerify": False})
    assert not (home / ".docker" / "config.json").exists()
    assert load_context("lab") == DockerContext("lab", "unix:///run/lab.sock")
    assert resolve_endpoint(None, None, {"DOCKER_CONTEXT": "lab"}) == Endpoint(
        "unix:///run/lab.sock", "context lab (DOCKER_CONTEXT)", "lab"
    )


def test_docker_config_is_the_only_place_looked_at_when_set(
    home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (home / ".docker" / "config.json").write_text(json.dumps({"currentContext": "elsewhere"}))
    _store(home / ".docker", "lab", {"Host": "unix:///home.sock"})
    chosen = tmp_path / "chosen"
    _store(chosen, "lab", {"Host": "unix:///chosen.sock"})
    monkeypatch.setenv("DOCKER_CONFIG", str(chosen))

    assert config_dir() == chosen
    assert current_context_name() == "default"  # chosen/ has no config.json
    assert load_context("lab") == DockerContext("lab", "unix:///chosen.sock")
    assert resolve_endpoint(None, None, {}).address == "unix:///var/run/docker.sock"


def test_the_current_context_comes_from_config_json(home: Path) -> None:
    _store(home / ".docker", "prod", {"Host": "ssh://deploy@prod"})
    (home / ".docker" / "config.json").write_text(json.dumps({"currentContext": "prod"}))
    assert current_context_name() == "prod"
    assert resolve_endpoint(None, None, {}).describe() == (
        "ssh://deploy@prod (from context prod (docker context use))"
    )


def test_an_unreadable_config_or_context_is_a_clear_error(home: Path) -> None:
    (home / ".docker" / "config.json").write_text("{not json")
    with pytest.raises(EngineError, match=r"cannot read the docker CLI's config .*config\.json"):
        current_context_name()
    _store(home / ".docker", "no-endpoint", {})
    with pytest.raises(EngineError, match=r"docker context 'no-endpoint' .* no docker endpoint"):
        load_context("no-endpoint")
    identity = hashlib.sha256(b"broken").hexdigest()
    meta = home / ".docker" / "contexts" / "meta" / identity
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text("{not json")
    with pytest.raises(EngineError, match="cannot read docker context 'broken'"):
        load_context("broken")
    assert load_context("absent") is None


def test_tls_material_of_a_context(home: Path) -> None:
    tls = _store(home / ".docker", "remote", {"Host": "tcp://remote:2376", "SkipTLSVerify": False})
    tls.mkdir(parents=True)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tls / name).write_text("")
    found = load_context("remote")
    assert found == DockerContext(
        "remote", "tcp://remote:2376", False, tls / "ca.pem", tls / "cert.pem", tls / "key.pem"
    )
    assert found.uses_tls
    _store(home / ".docker", "insecure", {"Host": "tcp://x:2376", "SkipTLSVerify": True})
    insecure = load_context("insecure")
    assert insecure is not None
    assert insecure.uses_tls
    assert not DockerContext("plain", "tcp://x:2375").uses_tls


def test_connect_through_a_tls_context_verifies_with_its_ca(home: Path) -> None:
    tls = _store(home / ".docker", "remote", {"Host": "tcp://remote:2376", "SkipTLSVerify": False})
    tls.mkdir(parents=True)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tls / name).write_text("")
    with connect(context="remote") as engine:
        adapter = engine._client
        assert adapter.base_url == "https://remote:2376"
        assert adapter.verify == str(tls / "ca.pem")
        assert adapter.cert == (str(tls / "cert.pem"), str(tls / "key.pem"))
