"""Which names may appear in returned URLs: a Host allow-list, and forwarded headers from trusted proxies.

RetrieveURL, BulkDataURI, Content-Location and the capabilities document are built from the
request's Host (web/request.py ``root``) unless ``--public-url`` is set. A client that
sends ``Host: evil.example`` would otherwise have the server hand out links to another machine
(and poison any cache in front of it). ``HostGuard`` answers 400 to a request whose Host is not a
configured name (RFC 9112 §3.2: a server responds 400 to an invalid Host), and applies
``Forwarded`` (RFC 7239) / ``X-Forwarded-Proto`` / ``-Host`` / ``-For`` only when the connection
comes from a ``--trusted-proxy`` address; from anyone else they are ignored.

This machine's names (loopback names, the listening address and, listening on every address, its host
name and FQDN) are allowed at any port: a viewer served from another port through a proxy that keeps
``Host`` (OHIF's development server at ``localhost:3000``) names this machine, never another one. A
Host without a port names the scheme's default port (RFC 9110 §7.2), except a name of this machine
reached directly: that is the socket's port (clients that leave the port out, a bare ``curl -H``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any
from urllib.parse import urlsplit

from ..settings import Settings

Scope = dict[str, Any]
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})(?::([0-9]{1,5}))?")
_LOOPBACK = ("localhost", "127.0.0.1", "[::1]")
_WILDCARD = ("0.0.0.0", "::", "[::]", "")
_FORWARDED_PAIR = re.compile(r'\s*([A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)\s*')


def split_host(value: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a Host value (lower-case name, IPv6 in brackets); None when malformed."""
    match = _HOST.fullmatch(value.strip())
    if match is None:
        return None
    port = int(match.group(2)) if match.group(2) else None
    if port is not None and not 0 < port < 65536:
        return None
    return match.group(1).lower(), port


def _bracketed(address: str) -> str:
    """An IPv6 address as a Host names it (``[::1]``); other names as they are, lower-case."""
    return f"[{address.strip('[]')}]".lower() if ":" in address else address.lower()


def machine_names(settings: Settings) -> frozenset[str]:
    """The names of this machine: loopback names and the listening address (or its own names on every address)."""
    # Listening on every address: the machine's own names are how clients on the network reach it.
    own = (socket.gethostname(), socket.getfqdn()) if settings.host in _WILDCARD else (settings.host,)
    return frozenset(_bracketed(name) for name in (*_LOOPBACK, *own))


def allowed_names(settings: Settings) -> frozenset[tuple[str, int | None]] | None:
    """The configured names (a port of None: any port); None when every well-formed Host is taken."""
    if settings.allowed_hosts is None:
        return None
    # This machine's names at any port: a name of this machine in a returned URL never sends a client elsewhere.
    names: set[tuple[str, int | None]] = {(name, None) for name in machine_names(settings)}
    if settings.public_url:
        netloc = urlsplit(settings.public_url).netloc.rsplit("@", 1)[-1]
        if (public := split_host(netloc)) is not None:
            names.add(public)
    for entry in settings.allowed_hosts:
        parsed = split_host(entry)
        if parsed is None:
            raise ValueError(f"--allowed-host {entry!r}: expected NAME or NAME:PORT")
        names.add(parsed)
    return frozenset(names)


Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def trusted_networks(settings: Settings) -> Networks:
    """The ``--trusted-proxy`` addresses and networks."""
    try:
        return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in settings.trusted_proxies)
    except ValueError as exc:
        raise ValueError(f"--trusted-proxy: {exc}") from None


def _last(value: str) -> str:
    """The last comma-separated value: the one the nearest (trusted) proxy appended."""
    return value.rsplit(",", 1)[-1].strip()


def _forwarded(value: str) -> dict[str, str]:
    """The pairs of the last element of a ``Forwarded`` header (RFC 7239 §4)."""
    pairs = {}
    for match in _FORWARDED_PAIR.finditer(_last(value)):
        text = match.group(2)
        if text.startswith('"'):
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        pairs[match.group(1).lower()] = text
    return pairs


class HostGuard:
    """ASGI middleware: forwarded headers from trusted proxies, then the Host allow-list (400).

    A Host without a port that names this machine gets the socket's port written into it, so that
    every URL built from the request (web/request.py ``root``) names the port reached.
    """

    def __init__(self, app: Any, allowed: frozenset[tuple[str, int | None]] | None, proxies: Networks,
                 local: frozenset[str] = frozenset(_LOOPBACK)) -> None:
        self.app = app
        self.allowed = allowed  # from allowed_names(settings): checked when the application is built
        self.proxies = proxies
        self.local = local  # machine_names(settings)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hosts = [v.decode("latin-1") for k, v in scope["headers"] if k == b"host"]
        if len(hosts) > 1:  # RFC 9112 §3.2: a request with more than one Host field is answered 400
            problem: str | None = "more than one Host header"
        else:
            proxied = bool(self.proxies) and self._from_proxy(scope)
            if proxied:
                scope = self._apply_forwarded(scope)
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
            problem = None if not host and scope.get("http_version") == "1.0" else self._problem(scope, host, proxied)
        if problem is not None:
            body = f"400 {problem}\n".encode()
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def _problem(self, scope: Scope, host: str, proxied: bool) -> str | None:
        """Why ``host`` is refused (None: it is not); a port-less name of this machine gets the socket's port."""
        parsed = split_host(host)
        if parsed is None:
            # RFC 9112 §3.2: 400 for a missing or invalid Host (HTTP/1.0 may omit it); not echoed back.
            return "malformed Host header" if host else "the request has no Host header"
        name, port = parsed
        if port is None:
            port = self._implied_port(scope, name, proxied)
            if port != (443 if scope.get("scheme") == "https" else 80):
                scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"host"] + [
                    (b"host", f"{name}:{port}".encode())]
        if self.allowed is None or any(n == name and p in (None, port) for n, p in self.allowed):
            return None
        return f"Host {host[:100]!r} is not a name of this server (--allowed-host, --public-url)"

    def _implied_port(self, scope: Scope, name: str, proxied: bool) -> int:
        """The port a Host without one means: the socket's for this machine's names reached directly."""
        server = scope.get("server")
        if not proxied and server and server[1] and (name in self.local or name == _bracketed(str(server[0]))):
            return int(server[1])
        return 443 if scope.get("scheme") == "https" else 80  # RFC 9110 §7.2: the scheme's default port

    def _from_proxy(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client:
            return False
        try:
            address = ipaddress.ip_address(str(client[0]))
        except ValueError:
            return False
        return any(address in network for network in self.proxies)

    @staticmethod
    def _apply_forwarded(scope: Scope) -> Scope:
        """The scope as the trusted proxy's client sent it."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        pairs = _forwarded(headers["forwarded"]) if "forwarded" in headers else {}
        proto = pairs.get("proto") or _last(headers.get("x-forwarded-proto", ""))
        host = pairs.get("host") or _last(headers.get("x-forwarded-host", ""))
        client = pairs.get("for") or _last(headers.get("x-forwarded-for", ""))
        scope = dict(scope)
        if proto.lower() in ("http", "https"):
            scope["scheme"] = proto.lower()
        if host:
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"host"] + [(b"host", host.encode())]
        if client:
            scope["client"] = (client.strip("[]").split("]:")[0], 0)
        return scope
