"""hub.fetch against a throwaway server on 127.0.0.1; nothing else is ever contacted."""
from __future__ import annotations

import io
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

import hub.fetch
from hub.fetch import FetchRefused, fetch_image

LOCAL = frozenset({"127.0.0.1"})


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


PNG = _png()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stop: threading.Event
    hosts_seen: list[str]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes = b"", length: bool = True, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.hosts_seen.append(self.headers["Host"])
        stop = self.server.stop
        if self.path == "/face.png":
            self._send(200, PNG, Content_Type="image/png")
        elif self.path == "/hop":
            self._send(302, Location="/face.png")
        elif self.path == "/loop":
            self._send(302, Location="/loop")
        elif self.path == "/to-private":
            self._send(302, Location="http://10.0.0.1/face.png")
        elif self.path == "/big-declared":
            self._send(200, b"x" * 50_000)
        elif self.path == "/big-undeclared":  # no Content-Length: HTTP/1.0 body ends when we close
            self._send(200, b"x" * 50_000, length=False)
        elif self.path == "/slow":
            stop.wait(5)
            self._send(200, PNG)
        elif self.path == "/drip":  # each byte well within any per-read timeout, the sum not
            self._send(200, length=False)
            for _ in range(50):
                if stop.wait(0.1):
                    return
                self.wfile.write(b"x")
                self.wfile.flush()
        else:
            self._send(404, b"not here")


@pytest.fixture
def server():
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.stop = threading.Event()
    httpd.hosts_seen = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.stop.set()  # lets /slow and /drip handlers return
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _url(server: _Server, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


@pytest.fixture
def no_connect(monkeypatch):
    """Fails the test if fetch_image ever opens a connection."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"tried to connect: {args}")
    monkeypatch.setattr(hub.fetch, "_connect", refuse)


def test_allowed_host_gets_the_png_bytes(server):
    data = fetch_image(_url(server, "/face.png"), allow_hosts=LOCAL)
    assert data == PNG
    assert Image.open(io.BytesIO(data)).size == (4, 3)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_refused_by_default(server, host):
    port = server.server_address[1]
    with pytest.raises(FetchRefused, match="loopback"):
        fetch_image(f"http://{host}:{port}/face.png")
    assert server.hosts_seen == []


def test_env_var_allows_a_host(server, monkeypatch):
    monkeypatch.setenv(hub.fetch.ALLOW_HOSTS_ENV, "intranet.example, 127.0.0.1")
    assert fetch_image(_url(server, "/face.png")) == PNG


@pytest.mark.parametrize("url", ["ftp://example.com/a.png", "file:///etc/passwd",
                                 "data:image/png;base64,iVBORw0KGgo=", "gopher://example.com/",
                                 "example.com/a.png"])
def test_only_http_and_https(url, no_connect):
    with pytest.raises(FetchRefused, match="only http and https"):
        fetch_image(url)


@pytest.mark.parametrize("url, what", [
    ("http://10.0.0.1/a.png", "private"),
    ("http://192.168.1.20/a.png", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://224.0.0.1/a.png", "multicast"),
    ("http://0.0.0.0/a.png", "unspecified"),
    ("http://[::1]/a.png", "loopback"),
    ("http://[::ffff:127.0.0.1]/a.png", "loopback"),
    ("http://[::ffff:10.1.2.3]/a.png", "private"),
    ("http://[2002:a9fe:a9fe::1]/a.png", "link-local"),  # 6to4 wrapping 169.254.169.254
    ("http://[fe80::1]/a.png", "link-local"),
    ("http://100.64.0.1/a.png", "not a public address"),
])
def test_internal_literal_addresses_refused_without_connecting(url, what, no_connect):
    with pytest.raises(FetchRefused, match=what) as refused:
        fetch_image(url)
    assert str(refused.value).startswith("refused: ")


def test_refused_if_any_resolved_address_is_internal(monkeypatch, no_connect):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 80)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.9.8.7", 80))])
    with pytest.raises(FetchRefused, match="images.example resolves to 10.9.8.7, which is a private address"):
        fetch_image("http://images.example/a.png")


def test_redirect_is_followed(server):
    assert fetch_image(_url(server, "/hop"), allow_hosts=LOCAL) == PNG
    assert len(server.hosts_seen) == 2


def test_redirect_to_private_host_is_refused(server, monkeypatch):
    opened = []
    real_connect = hub.fetch._connect
    monkeypatch.setattr(hub.fetch, "_connect", lambda target, address, timeout: (
        opened.append(address), real_connect(target, address, timeout))[1])
    with pytest.raises(FetchRefused, match="10.0.0.1 is a private address"):
        fetch_image(_url(server, "/to-private"), allow_hosts=LOCAL)
    assert opened == ["127.0.0.1"]  # the first hop only


def test_too_many_redirects(server):
    with pytest.raises(FetchRefused, match="too many redirects"):
        fetch_image(_url(server, "/loop"), allow_hosts=LOCAL, max_redirects=2)
    assert len(server.hosts_seen) == 3  # the first request and two redirects


@pytest.mark.parametrize("path", ["/big-declared", "/big-undeclared"])
def test_oversize_body_refused(server, path):
    with pytest.raises(FetchRefused, match="larger than 10 kB"):
        fetch_image(_url(server, path), allow_hosts=LOCAL, max_bytes=10_000)
    # The limit is on the body, so the same body fits under a larger one.
    assert len(fetch_image(_url(server, path), allow_hosts=LOCAL, max_bytes=60_000)) == 50_000


@pytest.mark.parametrize("n_bytes, text", [(10_000_000, "10 MB"), (2_500_000, "2.5 MB"), (999, "999 bytes")])
def test_size_in_messages_reads_naturally(n_bytes, text):
    assert hub.fetch._size(n_bytes) == text


@pytest.mark.parametrize("path", ["/slow", "/drip"])
def test_slow_server_times_out(server, path):
    started = time.monotonic()
    with pytest.raises(FetchRefused, match="took longer than 0.5 s"):
        fetch_image(_url(server, path), allow_hosts=LOCAL, timeout=0.5)
    assert time.monotonic() - started < 2  # the cap is overall, not per read


def test_404_is_explained(server):
    with pytest.raises(FetchRefused, match="the server answered 404"):
        fetch_image(_url(server, "/missing.png"), allow_hosts=LOCAL)


def test_connects_to_the_address_it_checked(server, monkeypatch):
    """DNS rebinding: the name resolves to a public address, then to 127.0.0.1. Only the first
    answer may be used, and the server must still be addressed by name."""
    answers = iter(["93.184.215.14", "127.0.0.1"])
    lookups = []
    real_getaddrinfo = socket.getaddrinfo

    def rebinding_getaddrinfo(host, port, *args, **kwargs):
        if host != "images.example":
            return real_getaddrinfo(host, port, *args, **kwargs)
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    connected_to = []

    def connect_to_local_server(target, address, timeout):
        connected_to.append(address)  # stand in for 93.184.215.14: no real outside address is contacted
        return socket.create_connection(server.server_address, timeout=timeout)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
    monkeypatch.setattr(hub.fetch, "_connect", connect_to_local_server)
    assert fetch_image("http://images.example:8080/face.png") == PNG
    assert lookups == ["images.example"]
    assert connected_to == ["93.184.215.14"]
    assert server.hosts_seen == ["images.example:8080"]


def test_real_connect_uses_the_given_address_not_the_name(server, monkeypatch):
    """_connect itself must not resolve the host name again."""
    monkeypatch.setattr(socket, "getaddrinfo", _fail_on_name(socket.getaddrinfo, "images.example"))
    target = hub.fetch._Target("http", "images.example", server.server_address[1], "images.example", "/")
    with hub.fetch._connect(target, "127.0.0.1", 1.0) as sock:
        assert sock.getpeername() == server.server_address


def _fail_on_name(real, name):
    def getaddrinfo(host, *args, **kwargs):
        assert host != name, "resolved the host name again"
        return real(host, *args, **kwargs)
    return getaddrinfo


def test_credentials_in_url_refused(no_connect):
    with pytest.raises(FetchRefused, match="user name or password"):
        fetch_image("http://user:secret@example.com/a.png")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for images.example (made with the openssl command line)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=images.example", "-addext",
                    "subjectAltName=DNS:images.example", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_server(server, certificate):
    """The same handler behind TLS; records the SNI name each client sent."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server.sni_names = []
    context.sni_callback = lambda sock, name, ctx: server.sni_names.append(name)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def _public_name(monkeypatch, server, name="images.example", address="93.184.215.14"):
    """`name` resolves to a public `address`; connecting there reaches the local `server` instead."""
    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: (
        [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))] if host == name
        else real_getaddrinfo(host, port, *a, **k)))
    monkeypatch.setattr(hub.fetch, "_connect", lambda target, addr, timeout: socket.create_connection(
        server.server_address, timeout=timeout) if addr == address else pytest.fail(f"connected to {addr}"))


def test_https_verifies_the_host_name_not_the_address(tls_server, certificate, monkeypatch):
    import ssl

    _public_name(monkeypatch, tls_server)
    monkeypatch.setattr(hub.fetch, "_tls_context", lambda: ssl.create_default_context(cafile=certificate[0]))
    assert fetch_image("https://images.example/face.png") == PNG
    assert tls_server.sni_names == ["images.example"]
    assert tls_server.hosts_seen == ["images.example"]


def test_https_refuses_a_certificate_for_another_name(tls_server, certificate, monkeypatch):
    import ssl

    _public_name(monkeypatch, tls_server, name="other.example")
    monkeypatch.setattr(hub.fetch, "_tls_context", lambda: ssl.create_default_context(cafile=certificate[0]))
    with pytest.raises(FetchRefused, match="certificate of other.example"):
        fetch_image("https://other.example/face.png")
    assert tls_server.hosts_seen == []


def test_https_refuses_an_untrusted_certificate(tls_server, monkeypatch):
    _public_name(monkeypatch, tls_server)
    with pytest.raises(FetchRefused, match="certificate of images.example"):
        fetch_image("https://images.example/face.png")
    assert tls_server.hosts_seen == []
