"""The HTTP server: uvicorn with httptools, plus the limits httptools does not enforce.

httptools (uvicorn's fast C parser) buffers a request head of any size and waits for it forever;
uvicorn arms no timer before the first request of a connection nor while a request head arrives.
``GuardedHttpTools`` adds, per connection and without touching the parser's fast path:

- a limit on the request head (request line and header fields) in bytes, whole and per line:
  431 Request Header Fields Too Large (RFC 6585 §5), 414 URI Too Long for the request line
  (RFC 9110 §15.5.15), sent as soon as the limit is passed, not after the whole head arrived;
- a deadline for the request head: a connection that opens and sends nothing, or sends its head
  slowly (slowloris), is closed after ``header_timeout_seconds`` (408 if part of a head arrived);
- a request body the application did not read is not waited for: the connection closes once the
  response is sent (a GET with a dripped body cannot hold the connection). Judged per request: the
  next request on a kept-alive or pipelined connection may be receiving its body by then.

- connection slots (slots.py): ``max_connections`` in all and ``max_connections_per_client`` per client
  address; when they run short an idle connection or the slowest request body makes room, and
  ``/health`` and ``/ready`` are answered even when nothing can (uvicorn's ``limit_concurrency``,
  which answered everyone 503 while slow clients held the connections, is not used).

The request body's pace (idle time, minimum rate) is enforced where it is read (web/stow.py).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from .settings import Settings
from .slots import BODY_GRACE, Admission, Phase, Slots, in_networks
from .web.hosts import trusted_networks

_REASONS = {408: b"Request Timeout", 414: b"URI Too Long", 431: b"Request Header Fields Too Large",
            503: b"Service Unavailable"}
PROBE_PATHS = frozenset({b"/health", b"/ready"})  # web/ops.py: answered even on probation (slots.py)


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request head that broke a limit."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounded request heads (size and time) and connection slots."""

    settings: Settings = Settings()  # bound per server by ``guarded_protocol``
    slots: Slots = Slots(0, 0)  # likewise: the slots of all this server's connections

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0  # bytes received while a request head is incomplete
        self._in_head = True  # waiting for (the rest of) a request head
        self._head_timer: asyncio.TimerHandle | None = None
        self._idle_since = self.loop.time()  # no request in flight since
        self._body_since, self._body_bytes = 0.0, 0  # the request body under way: its start, its bytes
        admission = self.slots.open(self)
        self._probation = admission is Admission.PROBATION
        if admission is Admission.REFUSED:
            self.logger.info("closed a connection from %s: no connection slot is free", self.client)
            self.parser = None  # type: ignore[assignment]
            self._in_head = False
            transport.close()
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self.slots.close(self)
        super().connection_lost(exc)

    # -- the slots' view of this connection (slots.Holder) ------------------------------------------

    @property
    def address(self) -> str:
        return self.client[0] if self.client else ""

    def standing(self, now: float) -> tuple[Phase, float] | None:
        if self.transport.is_closing() or self.parser is None:
            return None
        cycle = self.cycle
        if self.pipeline:
            return None  # requests queued: busy
        if cycle is None or cycle.response_complete:
            return Phase.IDLE, self._idle_since
        if cycle.more_body and not cycle.response_started:
            age = now - self._body_since
            return Phase.YOUNG_BODY if age < BODY_GRACE else Phase.BODY, self._body_bytes / max(age, 1.0)
        return None  # being answered

    def evict(self) -> None:
        """Make room: a connection with a request under way (a head or a body arriving) is told 503."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the application's next send is dropped, its receive ends
            cycle.message_event.set()
            self._refuse(503, f"the server is short of connections and this request body arrived slowest"
                              f" ({self._body_bytes} bytes so far); retry later")
        elif self._head_bytes:
            self._refuse(503, "the server is short of connections and this request head was slowest; retry later")
        else:
            self._cancel_head_timer()
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.parser is None:  # refused: the rest is not read
            return
        if self._in_head:
            if self._head_timer is None:
                self._arm_head_timer()
            self._head_bytes += len(data)  # judged after parsing: the chunk may hold a body too
        self._unset_keepalive_if_required()
        try:  # uvicorn's data_received, which would answer a refusal raised in a callback with a bare 400
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Refused):
                self._refuse(exc.__context__.status, exc.__context__.message)
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self.parser is not None and self._in_head and self._head_bytes > self.settings.max_header_bytes:
            # Still inside a head: every byte counted is a head byte (httptools would buffer them all).
            self._refuse(431, f"the request head exceeds {self.settings.max_header_bytes} bytes")

    # -- parser callbacks -------------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.settings.max_header_line_bytes:
            raise _Refused(414, f"the request target exceeds {self.settings.max_header_line_bytes} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) + 2 > self.settings.max_header_line_bytes:
            raise _Refused(431, f"a header field line exceeds {self.settings.max_header_line_bytes} bytes")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self.settings.max_header_bytes:
            raise _Refused(431, f"the request head exceeds {self.settings.max_header_bytes} bytes")
        if self._probation and not self.slots.promote(self):
            if self.url.split(b"?", 1)[0] not in PROBE_PATHS:
                raise _Refused(503, "the server is short of connections; only /health and /ready are answered"
                                    " now; retry later")
        else:
            self._probation = False
        self._in_head, self._head_bytes = False, 0
        self._body_since, self._body_bytes = self.loop.time(), 0
        self._cancel_head_timer()
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None:  # (None when the head asked for a WebSocket upgrade)
            cycle.on_response = lambda: self._response_complete(cycle)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_head = True
        super().on_message_complete()

    def _response_complete(self, cycle: RequestResponseCycle) -> None:
        """The response to ``cycle`` is sent: close if that request's own body is still arriving.

        Judged by the cycle, not the connection: once a streamed response's last bytes are out, the
        next request on the connection (kept alive or pipelined) may already be receiving its body,
        and that body is not this response's business.
        """
        if cycle.more_body and not self.transport.is_closing():  # an unread body is not waited for
            self.transport.close()
        self._idle_since = self.loop.time()
        self.on_response_complete()

    # -- the head deadline ----------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.settings.header_timeout_seconds, self._head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request in flight (pipelined data waits for it): not this timer's business
        if self._head_bytes:
            self._refuse(408, f"the request head did not arrive within {self.settings.header_timeout_seconds:g} s")
        else:
            self.transport.close()  # an idle connection: nothing to answer

    def _refuse(self, status: int, message: str) -> None:
        """Answer a broken limit with ``status`` and close: the rest of the head is not read."""
        self._cancel_head_timer()
        body = f"{status} {message}\n".encode()
        retry = b"retry-after: 1\r\n" if status == 503 else b""
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
                             b"%sconnection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), retry, body))
        self.logger.info("refused a request from %s: %s", self.client, message)
        self.transport.close()
        self.parser = None  # type: ignore[assignment]
        self._in_head = False


def guarded_protocol(settings: Settings) -> type[GuardedHttpTools]:
    """The protocol class uvicorn instantiates per connection, bound to these settings and one set of slots."""
    slots = Slots(settings.max_connections, settings.max_connections_per_client,
                  in_networks(trusted_networks(settings)))  # a trusted proxy carries many clients
    return type("GuardedHttpTools", (GuardedHttpTools,), {"settings": settings, "slots": slots})


def bind(settings: Settings) -> socket.socket:
    """A socket bound to ``settings.host:port`` (OSError when taken), not yet listening.

    Bound before anything else happens, so a port in use is said at once; connections are refused, not
    queued, until the server listens on it (``run``).
    """
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT does not block
        sock.bind((settings.host.strip("[]"), settings.port))
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server that calls ``on_listening`` once its sockets accept connections."""

    def __init__(self, config: uvicorn.Config, on_listening: Callable[[], None] | None) -> None:
        super().__init__(config)
        self.on_listening = on_listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.on_listening is not None:
            self.on_listening()


def run(app: Any, settings: Settings, sock: socket.socket | None = None,
        on_listening: Callable[[], None] | None = None, **options: Any) -> None:
    """Serve ``app`` on ``sock`` (``bind(settings)``; by default bound here) with the limits of ``settings``.

    ``options`` go to ``uvicorn.Config`` as they are (e.g. ``ssl_certfile`` / ``ssl_keyfile``).
    Forwarded headers are handled by the application (web/hosts.py, ``--trusted-proxy``), never by
    uvicorn, which would otherwise trust them from 127.0.0.1.
    """
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, http=guarded_protocol(settings), proxy_headers=False,
        timeout_keep_alive=settings.keep_alive_seconds,  # type: ignore[arg-type]
        **({"log_level": "info", "access_log": False} | options),  # type: ignore[arg-type]
    )
    _Server(config, on_listening).run(sockets=[sock if sock is not None else bind(settings)])
