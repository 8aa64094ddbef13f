"""TLS with -H as with DOCKER_HOST, and only DOCKER_CERT_PATH's CA (docs/gitops.md, over TLS)."""

from __future__ import annotations

from pathlib import Path

import pytest

from converge.engine import connect


@pytest.fixture
def certs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("")
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
    # What a corporate proxy set-up leaves behind; requests would prefer it to the engine's CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "proxy-bundle.pem"))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(tmp_path / "proxy-bundle.pem"))
    return tmp_path


def test_the_tls_variables_apply_to_the_host_option(certs: Path) -> None:
    with connect("tcp://manager1.example.com:2376") as engine:
        client = engine._client
        assert client.base_url == "https://manager1.example.com:2376"
        assert client.verify == str(certs / "ca.pem")
        assert client.cert == (str(certs / "cert.pem"), str(certs / "key.pem"))
        # What requests would verify a request with: the engine's CA, not the proxy's bundle.
        settings = client.merge_environment_settings(client.base_url, {}, None, None, None)
        assert settings["verify"] == str(certs / "ca.pem")


def test_without_the_variables_the_host_option_is_plain(
    certs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKER_TLS_VERIFY")
    monkeypatch.delenv("DOCKER_CERT_PATH")
    with connect("tcp://manager1.example.com:2375") as engine:
        assert engine._client.base_url == "http://manager1.example.com:2375"
