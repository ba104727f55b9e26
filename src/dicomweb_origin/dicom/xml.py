"""Render a DICOM JSON dataset (PS3.18 Annex F) as a Native DICOM Model XML document (PS3.19 A.1).

The input is what ``Dataset.to_json_dict`` produces (BulkDataURIs already absolute); the output is
one UTF-8 XML document, as sent in each part of a ``multipart/related; type="application/dicom+xml"``
metadata response (PS3.18 §10.4.3). Built with string joins, not ElementTree, for speed.

Choices where the standards leave room:

* Whitespace: no indentation between elements, because the root carries ``xml:space="preserve"``
  (PS3.19 A.1) and text such as LT/ST/UT values must survive exactly; a CR in text is written as
  ``&#13;`` (and TAB/LF/CR in attribute values as character references) so XML end-of-line and
  attribute-value normalisation (XML 1.0 §2.11, §3.3.3) do not alter it.
* Characters XML 1.0 cannot carry at all, not even as character references (§2.2: C0 controls
  other than TAB/LF/CR, lone surrogates, U+FFFE, U+FFFF), are replaced by U+FFFD REPLACEMENT
  CHARACTER: the document stays well-formed, the value keeps its length and the loss is visible.
* DS and IS: ints are written as ints; an integral float (``5.0``) as ``5``; other floats by
  ``repr`` (shortest round-trip form), reformatted to at most 16 characters (PS3.5 Table 6.2-1)
  only when ``repr`` is longer. Strings (kept by the JSON encoder to preserve the original text,
  e.g. ``"1.50"``) are written unchanged.
* FL and FD: ``repr`` (``0.0``, ``-77.20406341552734``); non-finite values as the XML Schema
  ``xs:double`` forms ``NaN``, ``INF``, ``-INF``.
* ``privateCreator`` is written on private data elements (gggg,1000-FFFF, gggg odd) whose Private
  Creator element (gggg,00xx) is present in the same dataset or item with a value; never on public
  elements nor on the Private Creator elements themselves. ``keyword`` is omitted for private
  elements and for tags pydicom's dictionary does not know.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from operator import itemgetter
from typing import Any

from pydicom.datadict import keyword_for_tag
from pydicom.valuerep import format_number_as_ds

__all__ = ["json_to_xml"]

_PROLOG = '<?xml version="1.0" encoding="UTF-8"?>\n<NativeDicomModel xml:space="preserve">'
_EPILOG = "</NativeDicomModel>"

# XML 1.0 §2.2 Char: these code points are not allowed anywhere, not even as &#n; references.
_ILLEGAL = "\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff"
_ILLEGAL_RE = re.compile(f"[{_ILLEGAL}]")
_TEXT_SPECIAL_RE = re.compile(f"[&<>\r{_ILLEGAL}]")
_ATTR_SPECIAL_RE = re.compile(f'[&<>"\t\n\r{_ILLEGAL}]')
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTR_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}
)

# PS3.19 A.1: PersonName component groups and, within each, the ^-delimited components in order.
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_PN_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")

_DS_MAX_LEN = 16  # PS3.5 Table 6.2-1: DS is at most 16 bytes
_EXACT_INT_LIMIT = 1e15  # integral floats below this print as exact, short ints


def json_to_xml(dataset: Mapping[str, Any]) -> bytes:
    """Render one DICOM JSON dataset object (PS3.18 Annex F) as a UTF-8 PS3.19 Native DICOM Model document."""
    out: list[str] = [_PROLOG]
    _write_dataset(out, dataset)
    out.append(_EPILOG)
    return "".join(out).encode("utf-8")


def _write_dataset(out: list[str], dataset: Mapping[str, Any]) -> None:
    """Append the ``DicomAttribute`` elements of one dataset or sequence item, in ascending tag order."""
    elements = sorted(((int(key, 16), attr) for key, attr in dataset.items()), key=itemgetter(0))
    creators: dict[int, str] | None = None
    for tag, attr in elements:
        vr = attr.get("vr", "UN")
        group = tag >> 16
        # PS3.5 §7.8.1: odd groups other than 0001, 0003, 0005, 0007 and FFFF are private.
        if group & 1 and 0x0007 < group < 0xFFFF:
            creator = None
            if tag & 0xFFFF >= 0x1000:  # a private data element, owned by (gggg,00xx)
                if creators is None:
                    creators = _private_creators(elements)
                creator = creators.get((tag & 0xFFFF0000) | (tag >> 8 & 0xFF))
            out.append(_private_head(tag, vr, creator))
        else:
            out.append(_public_head(tag, vr))
        _write_content(out, vr, attr)


def _write_content(out: list[str], vr: str, attr: Mapping[str, Any]) -> None:
    """Append the children (one kind only, PS3.19 A.1) and the closing tag of one ``DicomAttribute``."""
    values = attr.get("Value")
    if values is None:
        uri = attr.get("BulkDataURI")
        if uri is not None:
            out.append(f'><BulkData uri="{_attr(uri)}"/></DicomAttribute>')
            return
        inline = attr.get("InlineBinary")
        if inline is not None:
            if not isinstance(inline, str):  # tolerate pydicom's list form: one base64 string per chunk
                inline = base64.b64encode(b"".join(base64.b64decode(part) for part in inline)).decode()
            out.append(f"><InlineBinary>{inline}</InlineBinary></DicomAttribute>")
            return
    if not values:  # PS3.19 A.1: a zero-length element has no child elements
        out.append("/>")
        return
    if not isinstance(values, list | tuple):
        values = [values]
    out.append(">")
    if vr == "SQ":
        for number, item in enumerate(values, 1):
            if item:
                out.append(f'<Item number="{number}">')
                _write_dataset(out, item)
                out.append("</Item>")
            else:
                out.append(f'<Item number="{number}"/>')
    elif vr == "PN":
        for number, name in enumerate(values, 1):
            out.append(_person_name(number, name))
    else:
        fmt = _FORMATTERS.get(vr, _format_generic)
        for number, value in enumerate(values, 1):
            # PS3.18 F.2.5: null is an empty value inside a multi-valued element.
            text = "" if value is None else fmt(value)
            out.append(f'<Value number="{number}">{text}</Value>' if text else f'<Value number="{number}"/>')
    out.append("</DicomAttribute>")


def _person_name(number: int, name: Any) -> str:
    """Return one ``PersonName`` element from a JSON PN value (object, bare string or null)."""
    if isinstance(name, str):
        name = {"Alphabetic": name}
    if not name:
        return f'<PersonName number="{number}"/>'
    parts = [f'<PersonName number="{number}">']
    for group in _PN_GROUPS:
        text = name.get(group)
        if not text:
            continue
        parts.append(f"<{group}>")
        # Split into at most five components; any excess '^' stays inside NameSuffix.
        for component, value in zip(_PN_COMPONENTS, text.split("^", 4), strict=False):
            if value:
                parts.append(f"<{component}>{_text(value)}</{component}>")
        parts.append(f"</{group}>")
    parts.append("</PersonName>")
    return "".join(parts)


def _private_creators(elements: list[tuple[int, Any]]) -> dict[int, str]:
    """Map each Private Creator tag (gggg,0010-00FF) of one dataset to its escaped, non-empty value."""
    creators: dict[int, str] = {}
    for tag, attr in elements:
        if tag >> 16 & 1 and 0x0010 <= tag & 0xFFFF <= 0x00FF:
            values = attr.get("Value")
            if values and isinstance(values, list | tuple) and isinstance(values[0], str) and values[0]:
                creators[tag] = _attr(values[0])
    return creators


@lru_cache(maxsize=8192)
def _private_head(tag: int, vr: str, creator: str | None) -> str:
    """Return the opening of a private element's ``DicomAttribute``; ``creator`` is already escaped."""
    head = f'<DicomAttribute tag="{tag:08X}" vr="{_attr(vr)}"'
    return f'{head} privateCreator="{creator}"' if creator else head


@lru_cache(maxsize=8192)
def _public_head(tag: int, vr: str) -> str:
    """Return the opening of a public element's ``DicomAttribute`` with pydicom's keyword, if known."""
    keyword = keyword_for_tag(tag)  # repeating groups (50xx, 60xx, 7Fxx) included
    head = f'<DicomAttribute tag="{tag:08X}" vr="{_attr(vr)}"'
    return f'{head} keyword="{keyword}"' if keyword else head


def _text(value: str) -> str:
    """Escape character data; replace characters XML 1.0 cannot represent with U+FFFD."""
    if _TEXT_SPECIAL_RE.search(value) is None:
        return value
    return _ILLEGAL_RE.sub("\ufffd", value).translate(_TEXT_ESCAPES)


def _attr(value: str) -> str:
    """Escape an attribute value (without its quotes) so that XML normalisation leaves it intact."""
    if _ATTR_SPECIAL_RE.search(value) is None:
        return value
    return _ILLEGAL_RE.sub("\ufffd", value).translate(_ATTR_ESCAPES)


def _format_generic(value: Any) -> str:
    """Format a string or integer value (text VRs, US/SS/UL/SL/UV/SV, URs)."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, float):
        return _format_double(value)
    return str(int(value))


def _format_decimal(value: Any) -> str:
    """Format a DS or IS value: integral numbers as ints, others by repr within DS's 16 characters."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if not math.isfinite(value):
        return _format_double(value)  # not a valid DS; at least keep the document well-formed
    if value.is_integer() and abs(value) < _EXACT_INT_LIMIT:
        return str(int(value))
    text = repr(value)
    return text if len(text) <= _DS_MAX_LEN else format_number_as_ds(value)


def _format_double(value: Any) -> str:
    """Format an FL or FD value by repr; non-finite values in their xs:double forms."""
    value = float(value)
    if math.isfinite(value):
        return repr(value)
    if math.isnan(value):
        return "NaN"
    return "INF" if value > 0 else "-INF"


def _format_tag(value: Any) -> str:
    """Format an AT value as eight uppercase hex digits (PS3.19 A.1)."""
    if isinstance(value, int):
        return f"{value:08X}"
    return _text(value.upper())


_FORMATTERS: dict[str, Callable[[Any], str]] = {
    "DS": _format_decimal,
    "IS": _format_decimal,
    "FL": _format_double,
    "FD": _format_double,
    "AT": _format_tag,
}
