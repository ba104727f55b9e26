"""Content negotiation (PS3.18 §8.7.8): a request's Acceptable Media Types, and the one rule that picks an offer.

Parsing (``acceptable_media_types``): the ``accept`` query parameter and the Accept header become one list of
``Acceptable`` ranges, best first (§8.3.3.1, §8.7.5, §8.7.7); ``check_charset`` holds the ``charset`` query
parameter and Accept-Charset against UTF-8, the one charset this server writes text in (§8.3.3.2, §8.8).

Selection (``negotiate``): over the representations a resource can send one item in (its ``Offer``s, the
server's preference first), the steps of §8.7.8.1:

1. The ranges are taken best first: the ``accept`` query parameter's before the header's, each by q, ties as
   written (§8.7.8.1 steps 2-3). A range with q=0 selects nothing.
2. A range admits an offer when
   - its wrapping agrees: a bare type takes a single-part offer, ``multipart/related; type=...`` a multipart one,
     a wildcard either (a resource offers single-part types only for a single item, Table 10.4.4-1 note 3);
   - its media type is the offer's, or it is a wildcard (``*/*``, ``type/*``, ``multipart/related`` without
     ``type``) that covers the offer and the offer is one a wildcard may take (§8.7.7: the category's default,
     or, where it has none, any of its types; each resource marks its offers);
   - its ``transfer-syntax`` fits (§8.7.8.2): none means the default transfer syntax of the media type for this
     item; ``*`` means any, the bytes as stored first (§8.7.3.5.2), and on ``application/octet-stream`` the
     stored bytes whatever their media type; a UID means that syntax. Media types that carry no transfer syntax
     (rendered types, §8.7.4) are admitted only by ranges without one.
3. The first offer the range admits is selected, unless the most specific range that matches it says q=0
   (§8.7.8.1: each representation has the q of the most specific range that matches it); then the next offer
   the range admits.
4. When no range selects an offer the answer is None: the resource answers 406 (§8.7.8.1 step 5), or its default.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .errors import BadRequest, NotAcceptable
from .model.media import MEDIA_TYPE_ALIASES, Acceptable

__all__ = ["Offer", "acceptable_media_types", "check_charset", "check_charset_parameter", "excluded",
           "negotiate", "parse_media_range", "quality", "split_list", "token_quality"]

OCTET = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Offer:
    """One representation an item can be sent in: a media type, its transfer syntax, bare or in multipart/related.

    ``default``: what a range naming this media type without ``transfer-syntax`` gets (§8.7.8.2). ``stored``: the
    bytes as stored, which ``transfer-syntax=*`` prefers. ``wildcard``: a wildcard range may take it (§8.7.7).
    """

    media_type: str
    syntax: str | None = None  # None: a media type without transfer syntax (rendered, §8.7.4)
    multipart: bool = False
    default: bool = True
    stored: bool = False
    wildcard: bool = True


def _always(offer: Offer) -> bool:
    return True


def negotiate(accept: Sequence[Acceptable], offers: Sequence[Offer],
              can: Callable[[Offer], bool] = _always) -> Offer | None:
    """The offer §8.7.8.1 selects for one item, or None; ``can`` says whether this item can really be sent in it."""
    for acceptable in accept:
        if acceptable.q <= 0:
            continue
        admitted: Iterable[Offer] = (offer for offer in offers if admits(acceptable, offer))
        if acceptable.transfer_syntax == "*":
            admitted = sorted(admitted, key=lambda offer: not offer.stored)  # as stored first (§8.7.3.5.2)
        for offer in admitted:
            if can(offer) and not excluded(accept, offer.media_type, offer.syntax, offer.multipart):
                return offer
    return None


def admits(acceptable: Acceptable, offer: Offer) -> bool:
    """Whether one acceptable range asks for ``offer`` (step 2 of ``negotiate``)."""
    if acceptable.multipart is not None and acceptable.multipart != offer.multipart:
        return False
    wanted = acceptable.transfer_syntax
    if acceptable.wildcard:
        if not offer.wildcard or not acceptable.matches(offer.media_type):
            return False
    elif acceptable.media_type != offer.media_type and not (wanted == "*" and acceptable.media_type == OCTET
                                                              and offer.stored):
        return False
    if offer.syntax is None:
        return wanted is None
    if wanted is None:
        return offer.default or acceptable.wildcard
    return wanted == "*" or wanted == offer.syntax


def quality(accept: Sequence[Acceptable], media_type: str, syntax: str | None, multipart: bool) -> float:
    """The q of the most specific acceptable range that matches a representation (PS3.18 §8.7.8.1).

    0 means not acceptable: either nothing matches or the closest match says ``q=0``.
    """
    best, q = -1, 0.0
    for acceptable in accept:
        rank = acceptable.specificity(media_type, syntax, multipart)
        if rank < 0:
            continue
        if rank > best or rank == best and acceptable.q > q:
            best, q = rank, acceptable.q
    return q


def excluded(accept: Sequence[Acceptable], media_type: str, syntax: str | None, multipart: bool) -> bool:
    """True when the most specific range that matches a representation says ``q=0`` (§8.7.8.1)."""
    matched = any(a.specificity(media_type, syntax, multipart) >= 0 for a in accept)
    return matched and quality(accept, media_type, syntax, multipart) <= 0


# -- Parsing: the accept query parameter and the Accept header (§8.3.3.1, §8.7.5-7) -------------------------

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


# -- Character sets (§8.3.3.2, §8.8): text is written in UTF-8 only -----------------------------------------


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
    """Text is always UTF-8: accept the request only if UTF-8 is acceptable (§8.3.3.2, §8.8.5: else 406)."""
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
