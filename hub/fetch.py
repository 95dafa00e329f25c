"""Download an image from a user-supplied URL without letting the URL reach the server's own network.

The host is resolved once per hop, every resolved address must be public, and the connection goes
to that very address (the original name is kept for the Host header and TLS), so a DNS answer that
changes between check and connect (DNS rebinding) cannot redirect us to an internal service.
Redirects are followed by hand so that every hop goes through the same check.
"""
from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

ALLOW_HOSTS_ENV = "HUB_URL_ALLOW_HOSTS"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 64 * 1024
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
USER_AGENT = "face-attribute-hub/0.1 (image fetch)"


class FetchRefused(ValueError):
    """The URL cannot or may not be fetched; the message is meant for the user."""


@dataclass(frozen=True)
class _Target:
    scheme: str
    hostname: str  # lower-case, IPv6 without brackets
    port: int
    host_header: str
    path: str  # path and query, as sent in the request line


def fetch_image(url: str, *, allow_hosts: frozenset[str] = frozenset(), max_bytes: int = 10_000_000,
                timeout: float = 10.0, max_redirects: int = 3) -> bytes:
    """The body of `url` (at most `max_bytes`, within `timeout` seconds overall).

    Hosts in `allow_hosts` or in $HUB_URL_ALLOW_HOSTS (comma-separated) skip the public-address
    check, e.g. an intranet image server or a test server on 127.0.0.1.
    """
    from_env = os.environ.get(ALLOW_HOSTS_ENV, "").split(",")
    allowed = {host.strip().lower().strip("[]") for host in (*allow_hosts, *from_env)} - {""}
    deadline = time.monotonic() + timeout
    for _hop in range(max_redirects + 1):
        target = _parse(url)
        address = _resolve_once(target, check=target.hostname not in allowed)
        answer = _get(target, address, max_bytes, timeout, deadline)
        if isinstance(answer, bytes):
            return answer
        url = urljoin(url, answer)  # Location may be relative
    raise FetchRefused(f"too many redirects (more than {max_redirects})")


def _parse(url: str) -> _Target:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise FetchRefused("this is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchRefused("only http and https URLs are allowed")
    if not parts.hostname:
        raise FetchRefused("the URL has no host name")
    if parts.username is not None or parts.password is not None:
        raise FetchRefused("URLs with a user name or password are not supported")
    try:
        hostname = parts.hostname.lower().encode("idna").decode("ascii")  # headers and SNI are ASCII
    except UnicodeError:
        raise FetchRefused("this is not a valid host name") from None
    host_header = f"[{hostname}]" if ":" in hostname else hostname
    if port is not None:
        host_header += f":{port}"
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return _Target(scheme, hostname, port or (443 if scheme == "https" else 80), host_header, path)


def _resolve_once(target: _Target, check: bool) -> str:
    """The address to connect to; with `check`, refuses unless every address of the host is public."""
    try:
        infos = socket.getaddrinfo(target.hostname, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise FetchRefused(f"could not find the host {target.hostname}") from None
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise FetchRefused(f"could not find the host {target.hostname}")
    if check:
        for address in addresses:
            problem = _why_not_public(address)
            if problem is None:
                continue
            if address == target.hostname:
                raise FetchRefused(f"refused: {address} is {problem}")
            raise FetchRefused(f"refused: {target.hostname} resolves to {address}, which is {problem}")
    return addresses[0]


def _why_not_public(address: str) -> str | None:
    """None for an address on the public internet, else what it is (for the message)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 scope id
    if isinstance(ip, ipaddress.IPv6Address):
        # These IPv6 forms carry an IPv4 address that the network may end up reaching.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in NAT64_PREFIX:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return _why_not_public(str(embedded))
    for flag, what in (("is_unspecified", "an unspecified address"), ("is_loopback", "a loopback address"),
                       ("is_link_local", "a link-local address"), ("is_multicast", "a multicast address"),
                       ("is_private", "a private address"), ("is_reserved", "a reserved address")):
        if getattr(ip, flag):
            return what
    if not ip.is_global:  # e.g. 100.64.0.0/10 (carrier-grade NAT), which is neither of the above
        return "not a public address"
    return None


def _connect(target: _Target, address: str, timeout: float) -> socket.socket:
    """A TCP connection to `address` itself (never re-resolving `target.hostname`)."""
    return socket.create_connection((address, target.port), timeout=timeout)


class _Watchdog:
    """Enforces the overall deadline: socket timeouts bound each receive, not their sum, so a server
    dripping a byte at a time would never trip them. Shutting the socket down ends any pending read."""

    def __init__(self, sock: socket.socket, seconds: float):
        self.sock = sock  # replaced by the TLS socket once it wraps this one
        self.fired = False
        self._lock = threading.Lock()
        self._done = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:  # never after cancel(): the descriptor may be closed and reused by then
            if self._done:
                return
            self.fired = True
            try:
                # The plain-socket method: SSLSocket.shutdown would drop TLS state under the reader.
                socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()


def _get(target: _Target, address: str, max_bytes: int, timeout: float, deadline: float) -> bytes | str:
    """The body on 200, the Location on a redirect; anything else is refused."""
    too_slow = FetchRefused(f"the server took longer than {timeout:g} s")
    try:
        sock = _connect(target, address, _time_left(deadline, timeout))
    except TimeoutError:
        raise too_slow from None
    except OSError:
        raise FetchRefused(f"could not connect to {target.hostname}") from None
    watchdog = _Watchdog(sock, max(deadline - time.monotonic(), 0.0))  # fires at once if late
    connection = http.client.HTTPConnection(address, target.port)
    try:
        if target.scheme == "https":
            # SNI and certificate checked against the name the user gave, not the address.
            sock = _tls_context().wrap_socket(sock, server_hostname=target.hostname,
                                              do_handshake_on_connect=False)
            watchdog.sock = sock
            sock.do_handshake()
        connection.sock = sock  # http.client uses a socket it is given instead of connecting itself
        connection.request("GET", target.path, headers={
            "Host": target.host_header, "User-Agent": USER_AGENT, "Accept": "image/*",
            "Accept-Encoding": "identity", "Connection": "close"})
        response = connection.getresponse()
        if response.status in REDIRECT_STATUSES:
            location = response.getheader("Location")
            if not location:
                raise FetchRefused(f"the server answered {response.status} without saying where to go")
            return location
        if response.status != 200:
            raise FetchRefused(f"the server answered {response.status}")
        body = _read_body(response, max_bytes)
        if watchdog.fired:  # a cut-short body without Content-Length looks complete
            raise too_slow
        return body
    except ssl.SSLCertVerificationError:
        raise FetchRefused(f"the certificate of {target.hostname} could not be verified") from None
    except (OSError, http.client.HTTPException) as error:
        if watchdog.fired or isinstance(error, TimeoutError):
            raise too_slow from None
        raise FetchRefused(f"could not download from {target.hostname}") from None
    finally:
        watchdog.cancel()
        connection.close()
        sock.close()


def _read_body(response: http.client.HTTPResponse, max_bytes: int) -> bytes:
    too_big = FetchRefused(f"the image is larger than {_size(max_bytes)}")
    declared = response.getheader("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_big
    body = bytearray()
    while chunk := response.read1(CHUNK_BYTES):  # read1: one receive, so the watchdog check is prompt
        body += chunk
        if len(body) > max_bytes:
            raise too_big
    return bytes(body)


def _tls_context() -> ssl.SSLContext:
    try:
        import certifi  # the same trust store requests uses, when available
        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:
        return ssl.create_default_context()


def _time_left(deadline: float, timeout: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchRefused(f"the server took longer than {timeout:g} s")
    return left


def _size(n_bytes: int) -> str:
    if n_bytes >= 1_000_000:
        return f"{n_bytes / 1_000_000:g} MB"
    if n_bytes >= 1_000:
        return f"{n_bytes / 1_000:g} kB"
    return f"{n_bytes} bytes"
