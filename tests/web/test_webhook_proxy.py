"""Webhook deliveries behind a forward proxy (HTTP_PROXY / HTTPS_PROXY, NO_PROXY): a real proxy on 127.0.0.1
is asked for the checked address, never the name; private targets are refused before the proxy is asked."""

from __future__ import annotations

import base64
import shutil
import ssl

import pytest
from clients import ForwardProxy, tls_receiver

from deckchat.domain import notify


@pytest.fixture
def proxy(monkeypatch):
    """A forward proxy that the environment names for http and https, with credentials."""
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    with ForwardProxy() as running:
        address = running.url.replace("http://", "http://deck:s%40cret@")
        monkeypatch.setenv("HTTP_PROXY", address)
        monkeypatch.setenv("HTTPS_PROXY", address)
        yield running


def test_http_goes_through_the_proxy_to_the_checked_address(proxy, receiver, monkeypatch):
    port = receiver.server.server_address[1]
    assert notify.post_json(f"http://localhost:{port}/hook?x=1", {"event": "visit.ended"}, allow_private=True) == 200
    line, auth = proxy.requests[0]
    # The proxy is given the address checked here, so its own DNS answer cannot send the POST elsewhere.
    assert line == f"POST http://127.0.0.1:{port}/hook?x=1 HTTP/1.1"
    assert auth == "Basic " + base64.b64encode(b"deck:s@cret").decode()
    assert receiver.bodies == [{"event": "visit.ended"}] and receiver.headers[0]["Host"] == f"localhost:{port}"
    assert "Proxy-Authorization" not in receiver.headers[0]

    monkeypatch.setenv("NO_PROXY", "localhost")  # NO_PROXY: straight to the receiver
    assert notify.post_json(f"http://localhost:{port}/hook", {"event": "again"}, allow_private=True) == 200
    assert len(proxy.requests) == 1 and receiver.bodies[-1] == {"event": "again"}


def test_a_private_target_is_refused_before_the_proxy_is_asked(proxy):
    with pytest.raises(notify.PrivateTargetError):
        notify.post_json("http://localhost:9/hook", {"event": "visit.ended"})
    assert proxy.requests == []


def test_a_proxy_that_is_not_http_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "socks5://127.0.0.1:1080")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(ValueError, match="webhook proxy must be an http:// URL"):
        notify.post_json("http://localhost:9/hook", {}, allow_private=True)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_https_tunnels_to_the_checked_address_and_checks_the_name(proxy, tmp_path):
    receiver, cert, names = tls_receiver(tmp_path)
    via = notify.Proxy("127.0.0.1", proxy.server.server_address[1], {"Proxy-Authorization": "Basic eDp5"})
    with receiver:
        port = receiver.server.server_address[1]
        for name, ok in (("hooks.test", True), ("other.test", False)):
            conn = notify._TunnelHTTPS(via, name=name, address="127.0.0.1", port=port, timeout=5,
                                       context=ssl.create_default_context(cafile=str(cert)))
            try:
                conn.request("POST", "/hook", b"{}", {"Content-Type": "application/json", "Host": f"{name}:{port}"})
                assert ok and conn.getresponse().status == 200
            except ssl.SSLCertVerificationError:
                assert not ok
            finally:
                conn.close()
    assert [line.split(" ")[:2] for line, _ in proxy.requests] == [["CONNECT", f"127.0.0.1:{port}"]] * 2
    assert proxy.requests[0][1] == "Basic eDp5"
    assert names[0] == "hooks.test" and receiver.headers[0]["Host"] == f"hooks.test:{port}"
    assert len(receiver.bodies) == 1
