"""The access log and request metrics: a pure ASGI middleware that watches what is really sent.

A streamed response (a study retrieve, a multipart of frames) is measured as it goes: the bytes are
counted message by message and the line is written when the last body message is sent, or when the
client goes away (the line then says ``"completed": false`` and holds the bytes sent until then).
The query is logged with the values of credential-like parameters (``access_token``, ``api_key``, a
presigned URL's signature ...) replaced: a log is read by more people than the tokens are meant for.
Pure ASGI rather than ``BaseHTTPMiddleware``, which would buffer nothing but adds a task and a queue
per request and hides disconnects.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import Metrics

log = logging.getLogger("dicomweb_origin.access")


def resource_of(scope: Scope) -> str:
    """The kind of resource the request was routed to (a bounded set: never the raw path)."""
    route = scope.get("route")
    kind = getattr(route, "resource", None)
    if isinstance(kind, str):
        return kind
    name = getattr(route, "name", None)
    return name if isinstance(name, str) and name in OPS_ROUTES else "other"


# Query parameter names whose values are credentials (RFC 6750 §2.3 access_token, OAuth's id_token and
# code, API keys, passwords, presigned URLs' X-Amz-Signature / -Credential / -Security-Token).
CREDENTIAL = re.compile(r"token|secret|passw(or)?d|pwd|signature|credential|api[-_]?key|^(key|sig|code|auth)$",
                        re.IGNORECASE)
REDACTED = "REDACTED"


def redacted_query(query: str) -> str:
    """The raw query string with the value of every credential-like parameter replaced by ``REDACTED``."""
    if "=" not in query:
        return query
    fields = query.split("&")
    for i, field in enumerate(fields):
        name, equals, _ = field.partition("=")
        if equals and CREDENTIAL.search(unquote_plus(name).strip()):
            fields[i] = f"{name}={REDACTED}"
    return "&".join(fields)


# Routes outside the resource table that keep their own label (web/ops.py names them).
OPS_ROUTES = frozenset({"health", "ready", "metrics", "home", "conformance", "capabilities", "viewer"})


class AccessLog:
    """Write one access record per HTTP request and count it in the application's metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        state: dict[str, Any] = {"status": 0, "bytes": 0, "done": False, "logged": False}

        async def counting_send(message: Message) -> None:
            await send(message)  # counted once sent: a send that fails (the client left) sent nothing
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            elif message["type"] == "http.response.body":
                state["bytes"] += len(message.get("body", b""))
                if not message.get("more_body", False):
                    state["done"] = True

        try:
            await self.app(scope, receive, counting_send)
        except BaseException:
            if not state["status"]:
                state["status"] = 500  # Starlette's error middleware answers 500 outside this one
                state["done"] = True
            raise
        finally:
            self._record(scope, stamp, started, state)

    def _record(self, scope: Scope, stamp: str, started: float, state: dict[str, Any]) -> None:
        seconds = time.perf_counter() - started
        client = scope.get("client")
        user = (scope.get("state") or {}).get("user")
        fields = {
            "time": stamp,
            "method": scope["method"],
            "path": scope["path"],
            "query": redacted_query(scope.get("query_string", b"").decode("latin-1")),
            "status": state["status"] or 499,  # nothing was answered: the client went away first
            "bytes": state["bytes"],
            "duration_ms": round(seconds * 1000, 2),
            "client": f"{client[0]}:{client[1]}" if client else None,
            "user": str(user) if user is not None else "-",
            "completed": state["done"],
        }
        resource = resource_of(scope)
        if self.metrics is not None:
            self.metrics.observe(resource, scope["method"], fields["status"], seconds, state["bytes"])
        log.info("%(method)s %(path)s %(status)s", fields, extra={"access": fields | {"resource": resource}})
