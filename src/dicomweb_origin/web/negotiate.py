"""Parse Accept, the ``accept`` query parameter and the charset preferences (PS3.18 §8.3.3, §8.7, §8.8).

Turns request headers into an ordered list of ``Acceptable`` media types; choosing among them for
the stored data is the use case's job, since it depends on what each instance can become.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers

from ..errors import BadRequest, NotAcceptable
from ..model import MEDIA_TYPE_ALIASES, Acceptable

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(rf'\s*;\s*({_TOKEN})\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s"]*)')  # an unclosed quote fails
_RANGE = re.compile(rf"\s*({_TOKEN})/({_TOKEN})")
_Q = re.compile(r"^(0(\.\d{0,3})?|1(\.0{0,3})?)$")

# Rendered-only types: asking for these together with DICOM types is an error (§8.7.5).
_RENDERED_ONLY = frozenset({"image/png", "image/gif", "text/html", "text/plain", "text/xml", "text/rtf",
                            "application/pdf", "image/jxl"})
_DICOM_ONLY = frozenset({"application/dicom", "application/dicom+json", "application/dicom+xml",
                         "application/octet-stream", "image/jls", "image/dicom-rle"})  # never rendered types
MAX_MEDIA_RANGES = 64  # selection weighs every range against every instance: keep it bounded
UTF8_NAMES = frozenset({"utf-8", "utf8", "iso_ir 192", "iso-ir-192"})


def split_list(header: str) -> list[str]:
    """Split a header on commas that are not inside quoted strings."""
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in header:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            items.append("".join(current))
            current = []
            continue
        current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def parse_media_range(text: str) -> tuple[str, dict[str, str]] | None:
    """``type/subtype`` (lower case) and its parameters, quotes removed; None if malformed."""
    match = _RANGE.match(text)
    if not match:
        return None
    media_type = f"{match.group(1)}/{match.group(2)}".lower()
    params: dict[str, str] = {}
    rest = text[match.end():]
    position = 0
    while position < len(rest.rstrip()):
        param = _PARAM.match(rest, position)
        if not param:
            return None
        name, value = param.group(1).lower(), param.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        if name in params and name != "q":
            return None  # a repeated parameter makes the range invalid (§8.7.3.5.2)
        params.setdefault(name, value)
        position = param.end()
    return media_type, params


def _acceptable(text: str, from_query: bool) -> Acceptable | None:
    parsed = parse_media_range(text)
    if parsed is None:
        return None
    media_type, params = parsed
    q_text = params.get("q", "1")
    if not _Q.match(q_text):
        return None
    q = float(q_text)
    syntax = params.get("transfer-syntax")
    if media_type == "multipart/related":
        inner = params.get("type")
        if inner is None:
            return Acceptable("*/*", True, syntax, q, from_query)
        inner_parsed = parse_media_range(inner)
        if inner_parsed is None:
            return None
        return Acceptable(MEDIA_TYPE_ALIASES.get(inner_parsed[0], inner_parsed[0]), True, syntax, q, from_query)
    if media_type == "multipart/*":
        return Acceptable("*/*", True, syntax, q, from_query)
    multipart = None if media_type == "*/*" or media_type.endswith("/*") else False
    return Acceptable(MEDIA_TYPE_ALIASES.get(media_type, media_type), multipart, syntax, q, from_query)


def acceptable_media_types(header: str | None, query: list[str]) -> list[Acceptable]:
    """The request's Acceptable Media Types, best first; the query parameter's before the header's.

    Invalid or unsupported values in the Accept header are ignored (§8.7.7). A request without
    an Accept header gets 406 (§8.7.5); wildcards in the ``accept`` query parameter are a 400
    (§8.3.3.1), as are DICOM and rendered-only types mixed together.
    """
    if header is None:
        raise NotAcceptable("an Accept header is required (PS3.18 §8.7.5)")
    from_query: list[Acceptable] = []
    for value in query:
        for item in split_list(value):
            parsed = _acceptable(item, True)
            if parsed is None:
                raise BadRequest(f"invalid media type {item!r} in the accept query parameter")
            if "*" in item.split(";")[0] or ("type=" in item and "*" in parsed.media_type):
                raise BadRequest(f"wildcards are not allowed in the accept query parameter: {item!r}")
            from_query.append(parsed)
    header_items = split_list(header)
    if len(header_items) + len(from_query) > MAX_MEDIA_RANGES:
        raise BadRequest(f"too many media ranges in Accept (at most {MAX_MEDIA_RANGES})")
    from_header = [a for a in (_acceptable(item, False) for item in header_items) if a is not None]
    # A browser's own Accept header (text/html, ..., */*) must not turn a link carrying
    # ?accept=application/dicom+json into an error, so rendered types in the header are not held
    # against DICOM types in the query; every other mix is.
    query_kinds = {a.media_type for a in from_query if a.q > 0}
    header_kinds = {a.media_type for a in from_header if a.q > 0}
    if (query_kinds & _RENDERED_ONLY and (query_kinds | header_kinds) & _DICOM_ONLY
            or header_kinds & _RENDERED_ONLY and header_kinds & _DICOM_ONLY):
        raise BadRequest("DICOM and rendered media types cannot be requested together (PS3.18 §8.7.5)")
    ordered = sorted(from_query, key=lambda a: -a.q) + sorted(from_header, key=lambda a: -a.q)
    # q=0 entries stay in the list (at its end): they exclude what they name from wider ranges (§8.7.8.1).
    return ordered


def header_field(headers: Headers, name: str) -> str | None:
    """A list-valued request header, its repeated lines joined with commas (RFC 9110 §5.3); None if absent."""
    lines = headers.getlist(name)
    return ", ".join(lines) if lines else None


def check_charset_parameter(query: list[str]) -> None:
    """Refuse a ``charset`` query parameter naming anything but UTF-8, on any resource (§8.3.3.2: 400)."""
    for value in query:
        if not value.strip():
            raise BadRequest("the charset query parameter is empty: name a charset such as UTF-8")
        for item in split_list(value):
            name = item.split(";")[0].strip().strip('"').lower()
            if name not in UTF8_NAMES:
                raise BadRequest(f"unsupported charset {name!r} in the charset query parameter: only UTF-8 is served")


def check_charset(query: list[str], header: str | None) -> None:
    """Metadata is always UTF-8: accept the request only if UTF-8 is acceptable (§8.3.3.2, §8.8)."""
    check_charset_parameter(query)
    if header is None or not _token_entries(header):  # absent, or nothing valid in it: no constraint
        return
    q = token_quality(header, UTF8_NAMES)
    if q is not None and q > 0:
        return
    raise NotAcceptable("metadata is served in UTF-8, which the Accept-Charset header does not accept")


def _token_entries(header: str) -> list[tuple[str, float]]:
    """The valid ``token[;q=x]`` entries of a list header such as Accept-Charset; invalid ones are dropped."""
    entries = []
    for item in split_list(header):
        name, *params = (piece.strip() for piece in item.split(";"))
        name = name.strip('"').lower()
        q: float | None = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                q = float(value.strip()) if _Q.match(value.strip()) else None
        if q is not None and re.fullmatch(_TOKEN, name):
            entries.append((name, q))
    return entries


def token_quality(header: str, names: frozenset[str]) -> float | None:
    """The q of ``names`` in a token list such as Accept-Charset or Accept-Encoding (RFC 9110 §12.4.2).

    An entry naming one of ``names`` is more specific than ``*`` and wins over it; None when
    neither is listed. Invalid entries are ignored (§8.7.7).
    """
    named: float | None = None
    star: float | None = None
    for name, q in _token_entries(header):
        if name in names:
            named = q if named is None else max(named, q)
        elif name == "*":
            star = q
    return named if named is not None else star
