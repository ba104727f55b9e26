"""Read the negotiation headers of a Starlette request (PS3.18 §8.7.5, §8.8); the rules are in ``negotiation``."""

from __future__ import annotations

from starlette.datastructures import Headers


def header_field(headers: Headers, name: str) -> str | None:
    """A list-valued request header, its repeated lines joined with commas (RFC 9110 §5.3); None if absent."""
    lines = headers.getlist(name)
    return ", ".join(lines) if lines else None
