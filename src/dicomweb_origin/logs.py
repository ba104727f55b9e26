"""Logging, configured in one place: the access log and every other record, as JSON lines or readable text.

The access log (``dicomweb_origin.access``, written by ``web.accesslog.AccessLog``) carries its fields in
the record's ``access`` attribute; the JSON formatter writes them as one object per line, the text
formatter as one line in the spirit of the Common Log Format. Codec libraries log INFO lines of their own
(plugin discovery, PyAV's libav messages): they are held at WARNING (``QUIET_LOGGERS``), and uvicorn's
access log stays off (the application writes its own, with the user and the bytes actually sent).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final, TextIO

import orjson

ACCESS_LOGGER: Final = "dicomweb_origin.access"
FORMATS: Final = ("json", "text")
LEVELS: Final = ("debug", "info", "warning", "error", "critical")
# Libraries whose INFO lines say nothing an operator needs: held at WARNING whatever --log-level says.
QUIET_LOGGERS: Final = ("pydicom", "PIL", "libav", "av", "numba", "pylibjpeg", "openjpeg", "libjpeg", "rle",
                        "jpeg_ls", "pyjpegls", "imagecodecs", "pypdfium2", "matplotlib", "asyncio",
                        "uvicorn.access")


def _iso(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: the access fields for access records, time/level/logger/message otherwise."""

    def format(self, record: logging.LogRecord) -> str:
        access: dict[str, Any] | None = getattr(record, "access", None)
        if access is not None:
            return orjson.dumps(access).decode()
        line: dict[str, Any] = {"time": _iso(record.created), "level": record.levelname,
                                "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


class TextFormatter(logging.Formatter):
    """One readable line per record; an access record reads like a Common Log Format line with a duration."""

    def format(self, record: logging.LogRecord) -> str:
        a: dict[str, Any] | None = getattr(record, "access", None)
        if a is not None:
            target = a["path"] + (f"?{a['query']}" if a["query"] else "")
            ended = "" if a.get("completed", True) else " (client disconnected)"
            return (f"{a['time']} {a['client'] or '-'} {a['user'] or '-'} \"{a['method']} {target}\" {a['status']}"
                    f" {a['bytes']} {a['duration_ms']} ms{ended}")
        text = f"{_iso(record.created)} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> logging.Handler:
    """Send every record to one handler on the root logger; return the handler (tests read what it wrote)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: choose one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):  # uvicorn's own handlers would print a second, other format
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    quiet()
    return handler


def quiet() -> None:
    """Hold the codec libraries' loggers at WARNING (their INFO lines are start-up chatter)."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
