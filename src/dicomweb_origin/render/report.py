"""Structured Reports as text/html and text/plain, read from the instance's DICOM JSON metadata.

The SR Document Content module (PS3.3 C.17.3) is a tree of content items; each has a Value
Type (C.17.3.2.1), a Concept Name and a Relationship Type to its parent (C.17.3.2.4), or only
a Referenced Content Item Identifier when the relationship is by reference (C.17.3.2.5).
Both renderings are built from one parsed tree; every string from the data is escaped in HTML.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..dicom import dicomjson as dj

Json = dj.Json

# DICOM JSON keys (PS3.18 Annex F): 8-hex tags
CONCEPT_NAME = "0040A043"
CONTENT_SEQUENCE = "0040A730"
VALUE_TYPE = "0040A040"
RELATIONSHIP = "0040A010"
REFERENCED_ITEM = "0040DB73"
CODE_VALUE, SCHEME, MEANING, LONG_CODE_VALUE, URN_CODE_VALUE = (
    "00080100", "00080102", "00080104", "00080119", "00080120")
UCUM = "UCUM"

# The report header: (label, tag); only patient and study context, PS3.3 C.7.1.1 / C.7.2.1
HEADER: tuple[tuple[str, str], ...] = (
    ("Patient", "00100010"), ("Patient ID", "00100020"), ("Birth date", "00100030"),
    ("Sex", "00100040"), ("Study date", "00080020"), ("Study time", "00080030"),
    ("Accession number", "00080050"), ("Study description", "00081030"),
    ("Referring physician", "00080090"), ("Series description", "0008103E"),
    ("Institution", "00080080"), ("Manufacturer", "00080070"),
    ("Content date", "00080023"), ("Content time", "00080033"),
)
# The document's state, SR Document General module (PS3.3 C.17.2)
FLAGS: tuple[tuple[str, str], ...] = (
    ("Completion", "0040A491"), ("Completion flag description", "0040A492"),
    ("Verification", "0040A493"), ("Preliminary", "0040A496"),
)
VERIFYING_OBSERVER = "0040A073"


@dataclass(slots=True)
class Item:
    """One content item, flattened to display strings, with its children."""

    identifier: str  # "1.2.3": the item's position from the root (PS3.3 C.17.3.2.5)
    relationship: str
    value_type: str
    concept: str
    concept_code: str
    value: str
    children: list[Item] = field(default_factory=list)


def sr_text(metadata: Json) -> str:
    """Render the report as plain text: title, header, then the content tree indented."""
    root = parse(metadata)
    title = root.concept or "Structured Report"
    lines = [title, "=" * len(title), ""]
    lines += [f"{label}: {value}" for label, value in header(metadata)]
    lines += [""]
    for child in root.children:
        _text_item(child, 0, lines)
    return "\n".join(lines).rstrip("\n") + "\n"


def sr_html(metadata: Json) -> str:
    """Render the report as a standalone UTF-8 HTML page: title, header table, nested sections."""
    root = parse(metadata)
    e = html.escape
    title = root.concept or "Structured Report"
    rows = "".join(f"<tr><th>{e(label)}</th><td>{e(value)}</td></tr>" for label, value in header(metadata))
    body = "".join(_html_item(child, 2) for child in root.children)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<header>\n<h1 title=\"{e(root.concept_code)}\">{e(title)}</h1>\n"
        f"<table class=\"header\">{rows}</table>\n</header>\n"
        f"<main>\n<ul class=\"content\">{body}</ul>\n</main>\n</body>\n</html>\n"
    )


def parse(metadata: Json) -> Item:
    """Read the content tree, the dataset itself being the root item (identifier "1")."""
    root = _item(metadata, "1")
    index: dict[str, Item] = {}
    pending = [root]
    while pending:
        item = pending.pop()
        index[item.identifier] = item
        pending += item.children
    for item in index.values():
        target = index.get(item.value.removeprefix("see item ")) if item.value_type == "BY REFERENCE" else None
        if target is not None and target.concept:
            item.value += f" ({target.concept})"
    return root


def header(metadata: Json) -> list[tuple[str, str]]:
    """Return the (label, value) pairs of the header and flags that the dataset has."""
    pairs = [(label, _element_text(metadata.get(tag))) for label, tag in HEADER + FLAGS]
    for observer in dj.items(metadata, VERIFYING_OBSERVER):
        who = _element_text(observer.get("0040A075"))
        organisation = _element_text(observer.get("0040A027"))
        when = _element_text(observer.get("0040A030"))
        pairs.append(("Verified by", ", ".join(part for part in (who, organisation, when) if part)))
    return [(label, value) for label, value in pairs if value]


def _item(data: Json, identifier: str) -> Item:
    """Build one Item and its subtree."""
    value_type = dj.string(data, VALUE_TYPE)
    relationship = dj.string(data, RELATIONSHIP)
    concept = dj.items(data, CONCEPT_NAME)
    references = dj.values(data, REFERENCED_ITEM)
    if references and not value_type:
        # PS3.3 C.17.3.2.5: by-reference relationship to an item elsewhere in the tree
        value_type = "BY REFERENCE"
        value = "see item " + ".".join(str(n) for n in references)
    else:
        value = _VALUES.get(value_type, _unknown)(data)
    children = [_item(child, f"{identifier}.{n}") for n, child in enumerate(dj.items(data, CONTENT_SEQUENCE), 1)]
    return Item(identifier, relationship, value_type, _meaning(concept[0]) if concept else "",
                _code_label(concept[0]) if concept else "", value, children)


# ---- values of each Value Type (PS3.3 C.17.3.2.1, Table C.17.3-7 and C.18.x) ----

def _text(data: Json) -> str:
    return dj.string(data, "0040A160")


def _code(data: Json) -> str:
    codes = dj.items(data, "0040A168")
    return _code_with_meaning(codes[0]) if codes else ""


def _num(data: Json) -> str:
    """Give the measured value with its unit, or the qualifier that replaces a missing one (C.18.1)."""
    measured = dj.items(data, "0040A300")
    if not measured:
        qualifier = dj.items(data, "0040A301")
        return _meaning(qualifier[0]) if qualifier else ""
    value = measured[0]
    number = dj.first(value, "0040A161")
    number = dj.first(value, "0040A30A") if number is None else number
    units = dj.items(value, "004008EA")
    unit = _unit(units[0]) if units else ""
    return f"{_number(number) if number is not None else ''} {unit}".strip()


def _date(data: Json) -> str:
    return _format_date(dj.string(data, "0040A121"))


def _time(data: Json) -> str:
    return _format_time(dj.string(data, "0040A122"))


def _datetime(data: Json) -> str:
    return _format_datetime(dj.string(data, "0040A120"))


def _pname(data: Json) -> str:
    return _person(dj.first(data, "0040A123") or "")


def _uidref(data: Json) -> str:
    return dj.string(data, "0040A124")


def _composite(data: Json) -> str:
    """Name the referenced instance, its frames, segments or channels (C.18.3, C.18.4, C.18.5)."""
    parts = []
    for reference in dj.items(data, "00081199"):
        text = f"SOP Instance {dj.string(reference, '00081155')} (class {dj.string(reference, '00081150')})"
        for label, tag in (("frames", "00081160"), ("segments", "0062000B"), ("channels", "0040A0B0")):
            numbers = dj.values(reference, tag)
            if numbers:
                text += f", {label} {', '.join(_number(n) for n in numbers)}"
        for presentation in dj.items(reference, "00081199"):
            text += f", presentation state {dj.string(presentation, '00081155')}"
        parts.append(text)
    return "; ".join(parts)


def _scoord(data: Json) -> str:
    """Give the graphic type and its (column, row) points (C.18.6)."""
    return f"{dj.string(data, '00700023')} {_points(dj.values(data, '00700022'), 2)}".strip()


def _scoord3d(data: Json) -> str:
    """Give the graphic type, its (x, y, z) points and their Frame of Reference (C.18.9)."""
    text = f"{dj.string(data, '00700023')} {_points(dj.values(data, '00700022'), 3)}".strip()
    frame = dj.string(data, "30060024")
    return f"{text} in frame of reference {frame}" if frame else text


def _tcoord(data: Json) -> str:
    """Give the temporal range type and its sample positions, offsets or times (C.18.7)."""
    text = dj.string(data, "0040A130")
    for label, tag in (("samples", "0040A132"), ("offsets (s)", "0040A138"), ("times", "0040A13A")):
        values = dj.values(data, tag)
        if values:
            text += f" {label} {', '.join(_number(v) for v in values)}"
    return text


def _container(data: Json) -> str:
    return ""


def _unknown(data: Json) -> str:
    return ""


_VALUES: dict[str, Callable[[Json], str]] = {
    "TEXT": _text, "CODE": _code, "NUM": _num, "DATE": _date, "TIME": _time,
    "DATETIME": _datetime, "PNAME": _pname, "UIDREF": _uidref, "IMAGE": _composite,
    "COMPOSITE": _composite, "WAVEFORM": _composite, "SCOORD": _scoord,
    "SCOORD3D": _scoord3d, "TCOORD": _tcoord, "CONTAINER": _container,
}


def _element_text(element: Any) -> str:
    """Render a header element by its VR: names, dates and times made readable."""
    if not isinstance(element, dict):
        return ""
    values = [v for v in element.get("Value", []) if v is not None]
    vr = element.get("vr", "")
    formats: dict[str, Callable[[Any], str]] = {
        "PN": lambda v: _person(v) if isinstance(v, dict) else str(v),
        "DA": lambda v: _format_date(str(v)), "TM": lambda v: _format_time(str(v)),
        "DT": lambda v: _format_datetime(str(v)),
    }
    return ", ".join(formats.get(vr, str)(value) for value in values if not isinstance(value, dict) or vr == "PN")


def _meaning(code: Json) -> str:
    return dj.string(code, MEANING) or _code_value(code)


def _code_value(code: Json) -> str:
    return dj.string(code, CODE_VALUE) or dj.string(code, LONG_CODE_VALUE) or dj.string(code, URN_CODE_VALUE)


def _code_label(code: Json) -> str:
    """Write a code as (Scheme, Value), as PS3.16 tables do."""
    scheme, value = dj.string(code, SCHEME), _code_value(code)
    return f"({scheme}, {value})" if scheme or value else ""


def _code_with_meaning(code: Json) -> str:
    return f"{_meaning(code)} {_code_label(code)}".strip()


def _unit(code: Json) -> str:
    """Write a unit as its UCUM symbol ("mm"); annotations ("{ratio}") and other schemes as codes."""
    value = _code_value(code)
    if dj.string(code, SCHEME) == UCUM and value and not value.startswith("{"):
        return "" if value == "1" else value
    return _code_with_meaning(code)


def _number(value: Any) -> str:
    """Write a DS/FD/IS/UL value without a spurious ".0"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _points(values: list[Any], dimensions: int) -> str:
    groups = [values[i:i + dimensions] for i in range(0, len(values) - dimensions + 1, dimensions)]
    return " ".join("(" + ", ".join(_number(v) for v in group) + ")" for group in groups)


def _person(value: Any) -> str:
    """Write a PN value (JSON object with Alphabetic/Ideographic/Phonetic) as "Family, Given Middle"."""
    if isinstance(value, dict):
        alphabetic = str(value.get("Alphabetic") or value.get("Ideographic") or value.get("Phonetic") or "")
    else:
        alphabetic = str(value)
    family, given, middle, prefix, suffix = (alphabetic.split("^") + [""] * 5)[:5]
    forenames = " ".join(part for part in (prefix, given, middle) if part)
    name = ", ".join(part for part in (family, forenames) if part)
    return f"{name} {suffix}".strip()


def _format_date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def _format_time(value: str) -> str:
    digits, _, fraction = value.partition(".")
    if not digits.isdigit() or len(digits) not in (2, 4, 6):
        return value
    text = ":".join(digits[i:i + 2] for i in range(0, len(digits), 2))
    return f"{text}.{fraction}" if fraction else text


def _format_datetime(value: str) -> str:
    zone = ""
    for sign in "+-":
        if sign in value[8:]:
            value, _, offset = value.rpartition(sign)
            zone = f" {sign}{offset}"
    return f"{_format_date(value[:8])} {_format_time(value[8:])}".strip() + zone


# ---- the two layouts ----

def _label(item: Item) -> str:
    return f"{item.concept}: {item.value}" if item.concept and item.value else item.concept or item.value


def _text_item(item: Item, depth: int, lines: list[str]) -> None:
    indent = "  " * depth
    if item.value_type == "CONTAINER":
        heading = f"{item.identifier} {item.concept or 'Section'}"
        lines += [f"{indent}{heading} [{item.relationship}]" if item.relationship else f"{indent}{heading}"]
    else:
        relationship = f"[{item.relationship}] " if item.relationship else ""
        first, *rest = f"{indent}- {relationship}{item.value_type}: {_label(item)}".rstrip().split("\n")
        lines += [first] + [f"{indent}    {line}" for line in rest]
    for child in item.children:
        _text_item(child, depth + 1, lines)
    if item.value_type == "CONTAINER":
        lines.append("")


def _html_item(item: Item, level: int) -> str:
    e = html.escape
    relationship = f"<span class=\"rel\">{e(item.relationship)}</span> " if item.relationship else ""
    children = "".join(_html_item(child, level + 1) for child in item.children)
    nested = f"<ul class=\"content\">{children}</ul>" if children else ""
    if item.value_type == "CONTAINER":
        tag = f"h{min(level, 6)}"
        return (f"<li class=\"container\" id=\"item-{e(item.identifier)}\"><section>"
                f"{relationship}<{tag} title=\"{e(item.concept_code)}\">{e(item.concept or 'Section')}</{tag}>"
                f"{nested}</section></li>")
    concept = (f"<span class=\"concept\" title=\"{e(item.concept_code)}\">{e(item.concept)}</span>: "
               if item.concept else "")
    return (f"<li id=\"item-{e(item.identifier)}\" data-value-type=\"{e(item.value_type)}\">{relationship}"
            f"{concept}<span class=\"value\">{e(item.value)}</span>{nested}</li>")


_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:60em}"
    "table.header th{text-align:left;padding-right:1em}"
    "ul.content{list-style:none;padding-left:1.2em}"
    ".rel{color:#777;font-size:75%;text-transform:lowercase}"
    ".concept{font-weight:bold}.value{white-space:pre-wrap}"
)
