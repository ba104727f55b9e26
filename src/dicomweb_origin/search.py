"""The Search use case (QIDO-RS, PS3.18 §10.6): from a resource and its query to a payload.

Framework-free: the web layer hands over the decoded query parameters, the Acceptable Media Types
and the service root; this module validates them (400 naming the parameter, §8.3), turns match keys
into ``Condition``s for the index (PS3.4 C.2.2.2), picks the return keys (§10.6.3.3) and renders
``application/dicom+json`` (one array) or ``multipart/related; type="application/dicom+xml"`` (one
part per match). Everything comes from the index; no file is opened.

The attributes the index keeps at each level, how each is matched and returned, and the choices
made where the standard leaves room are declared in ``docs/conformance.md`` (Search); a test keeps
that table in step with ``_KEPT``.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import orjson
from pydicom.datadict import dictionary_VR

from .dicom import jsonwriter
from .dicom.xml import json_to_xml
from .errors import BadRequest
from .model.media import Acceptable
from .model.uids import uid_error
from .retrieve import Part, Payload, bytes_body, metadata_kind  # one rule for metadata media types
from .storage.base import Condition, ItemCondition, Level, SearchIndex, SearchQuery

__all__ = ["RESOURCES", "Resource", "Search", "SearchResult"]


@dataclass(frozen=True, slots=True)
class Resource:
    """One Search resource of PS3.18 Table 10.6.1-1."""

    name: str
    level: Level  # one result per entity of this level
    match_levels: frozenset[str]  # Table 10.6.1-4: levels whose attributes are match keys
    default_levels: tuple[Level, ...]  # §10.6.3.3.1-3: levels whose default return keys are returned
    include_levels: frozenset[str]  # levels whose includefield attributes are returned


_EVERY = frozenset({"study", "series", "instance"})
RESOURCES: dict[str, Resource] = {
    "studies": Resource("All Studies", "study", frozenset({"study"}), ("study",), frozenset({"study"})),
    "study-series": Resource("Study's Series", "series", frozenset({"series"}), ("series",),
                             frozenset({"study", "series"})),
    "series": Resource("All Series", "series", frozenset({"study", "series"}), ("study", "series"),
                       frozenset({"study", "series"})),
    "study-instances": Resource("Study's Instances", "instance", frozenset({"series", "instance"}),
                                ("series", "instance"), _EVERY),
    "series-instances": Resource("Study's Series' Instances", "instance", frozenset({"instance"}),
                                 ("instance",), _EVERY),
    "instances": Resource("All Instances", "instance", _EVERY, ("study", "series", "instance"), _EVERY),
}

# Return keys of Tables 10.6.3-3, -4, -5 as (tag, required); a required key is sent empty when
# unknown. Series and instance results also echo their parents' UIDs (clients rely on them).
_DEFAULTS: dict[str, tuple[tuple[str, bool], ...]] = {
    "study": (
        ("00080020", True), ("00080030", True), ("00080050", True), ("00080056", False), ("00080061", False),
        ("00080090", True), ("00081190", False), ("00100010", True), ("00100020", True), ("00100030", True),
        ("00100040", True), ("0020000D", True), ("00200010", True), ("00201206", True), ("00201208", True),
    ),
    "series": (
        ("00080060", True), ("0008103E", False), ("00081190", False), ("0020000D", True), ("0020000E", True),
        ("00200011", True), ("00201209", True), ("00400244", False), ("00400245", False), ("00400275", False),
    ),
    "instance": (
        ("00080016", True), ("00080018", True), ("00080056", False), ("00081190", False), ("0020000D", True),
        ("0020000E", True), ("00200013", True), ("00280008", False), ("00280010", False), ("00280011", False),
        ("00280100", False),
    ),
}
_KEPT: dict[Level, frozenset[str]] = {
    "study": frozenset(jsonwriter.STUDY_TAGS) - {"00080005"} | {"00080061", "00080062", "00201206", "00201208"},
    "series": frozenset(jsonwriter.SERIES_TAGS) | {"00201209"},
    "instance": frozenset(jsonwriter.INSTANCE_TAGS) | {"00083002"},
}
_LEVEL_OF: dict[str, Level] = {tag: level for level, tags in _KEPT.items() for tag in tags}
_COMPUTED = frozenset({"00080061", "00080062"})  # derived from lower levels, computed on request
_RETURN_ONLY = frozenset({"00201206", "00201208", "00201209"})
_RETRIEVE_URL, _AVAILABILITY = "00081190", "00080056"
# Combined date-time matching pairs (§8.3.4.1.1).
_DATE_TIME = {"00080020": "00080030", "00080021": "00080031", "00080023": "00080033", "00400244": "00400245"}

_RESERVED = frozenset({"includefield", "fuzzymatching", "limit", "offset", "emptyvaluematching",
                       "multiplevaluematching", "accept", "charset"})  # Table 8.3.4-1, §8.3.3
_BOOLEAN = frozenset({"fuzzymatching", "emptyvaluematching", "multiplevaluematching"})
_INTEGER_VRS = frozenset({"IS", "US", "UL", "SS", "SL", "UV", "SV"})
_DECIMAL_VRS = frozenset({"DS", "FL", "FD"})
_MULTI_VALUE_VRS = frozenset({"AE", "AS", "CS", "LO", "PN", "SH", "UC"})  # C.2.2.2.8
_TEMPORAL = {
    "DA": r"\d{8}",
    "TM": r"(?:[01]\d|2[0-3])(?:[0-5]\d(?:[0-5]\d(?:\.\d{1,6})?)?)?",
    "DT": r"\d{4}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?)?)?(?:[+-]\d{4})?",
}
_MAX_INT = 1 << 62


@dataclass(frozen=True, slots=True)
class SearchResult:
    payload: Payload | None  # None: no match, in a media type that cannot be empty (204)
    warnings: list[str]  # texts of ``Warning: 299 {service}: {text}`` headers (§8.3.4.4)


@dataclass(slots=True)
class _Parsed:
    conditions: list[Condition | ItemCondition]
    returns: dict[str, bool]  # tag -> required
    offset: int
    limit: int | None
    warnings: list[str]


class Search:
    """Answers the six Search resources from a ``SearchIndex``."""

    def __init__(self, index: SearchIndex, max_results: int = 10_000) -> None:
        self.index = index
        self.max_results = max_results  # the most matches one response holds (§10.6.5)

    async def search_request(self, resource: str, params: Sequence[tuple[str, str]], accept: Sequence[Acceptable],
                             root: str, study_uid: str | None = None, series_uid: str | None = None) -> SearchResult:
        """``search`` for one request, off the event loop (the index blocks): what the web layer awaits."""
        return await anyio.to_thread.run_sync(self.search, resource, params, accept, root, study_uid, series_uid)

    def search(self, resource: str, params: Sequence[tuple[str, str]], accept: Sequence[Acceptable], root: str,
               study_uid: str | None = None, series_uid: str | None = None) -> SearchResult:
        """Run one search; ``params`` are the decoded query parameters, in request order."""
        where = RESOURCES[resource]
        kind = metadata_kind(accept)  # Table 10.6.1-6: the two DICOM metadata media types
        parsed = _parse(where, params)
        if study_uid is not None:
            parsed.conditions.append(Condition("0020000D", "study", "equal", (study_uid,)))
        if series_uid is not None:
            parsed.conditions.append(Condition("0020000E", "series", "equal", (series_uid,)))
        limit = min(parsed.limit or self.max_results, self.max_results)
        page = self.index.search(SearchQuery(where.level, tuple(parsed.conditions), parsed.offset, limit,
                                             frozenset(parsed.returns) & _COMPUTED))
        results = [_result(match, parsed.returns, where.level, root) for match in page.matches]
        remaining = page.total - parsed.offset - len(results)
        if remaining > 0:  # §8.3.4.4: the response was truncated by limit or max_results
            parsed.warnings.append(f"There are {remaining} additional results that can be requested")
        return SearchResult(_payload(results, kind, root), parsed.warnings)


# -- Parsing the query (§8.3.4) ---------------------------------------------------------------------

def _parse(where: Resource, params: Sequence[tuple[str, str]]) -> _Parsed:
    options: dict[str, str] = {}
    includes: list[str] = []
    keys: dict[tuple[str, ...], tuple[str, str]] = {}  # attribute path -> (name as sent, value)
    warnings: list[str] = []
    for name, value in params:
        if name == "includefield":
            includes.append(value)
        elif name in ("accept", "charset"):
            continue  # §8.3.3: the web layer negotiates these
        elif name in _RESERVED:
            if name in options:
                raise BadRequest(f"the query parameter {name} is repeated")
            options[name] = value
        elif (path := jsonwriter.attribute_path(name)) is None:
            warnings.append(f"Query parameter {_printable(name)} is not supported and was ignored")  # §8.3
        elif path in keys:  # §8.3.4.1: an attribute shall not be repeated
            raise BadRequest(f"the match attribute {name} is repeated")
        else:
            keys[path] = (name, value)
    flags = {flag: _boolean(flag, options.get(flag)) for flag in _BOOLEAN}
    if flags["emptyvaluematching"]:  # §8.3.4.5
        warnings.append("The emptyvaluematching parameter is not supported. Empty Value Matching has not been"
                        " performed.")
    returns = {tag: required for level in where.default_levels for tag, required in _DEFAULTS[level]}
    conditions = _conditions(where, keys, flags, returns, warnings)
    _include(where, includes, returns)
    limit = _uint("limit", options.get("limit"))
    return _Parsed(conditions, returns, _uint("offset", options.get("offset")) or 0, limit or None, warnings)


def _vr(tag: str) -> str | None:
    try:
        vr = dictionary_VR(int(tag, 16))
    except KeyError:
        return None
    return vr.split(" ")[0]  # "US or SS": the first


def _conditions(where: Resource, keys: dict[tuple[str, ...], tuple[str, str]], flags: dict[str, bool],
                returns: dict[str, bool], warnings: list[str]) -> list[Condition | ItemCondition]:
    conditions: list[Condition | ItemCondition] = []
    items: dict[str, list[Condition]] = {}
    temporal: dict[str, tuple[str, str, Level, bool]] = {}  # tag -> (low, high, level, is a range)
    for path, (name, value) in keys.items():
        tag = path[0]
        level = _LEVEL_OF.get(tag)
        if level is None or len(path) > 2 or (len(path) == 2 and _vr(tag) != "SQ"):
            warnings.append(f"Query parameter {_printable(name)} is not supported and was ignored")
            continue
        if level not in where.match_levels:  # Table 10.6.1-4
            warnings.append(f"Query parameter {_printable(name)} is not supported by the {where.name} resource"
                            " and was ignored")
            continue
        _request(returns, tag)  # a match key is also a return key (§8.3.4.1)
        if tag in _RETURN_ONLY:
            if value:
                warnings.append(f"Matching on {_printable(name)} is not supported: it is returned, not matched")
            continue
        vr = _vr(path[-1]) or "UN"
        if len(path) == 2:
            items.setdefault(tag, []).extend(_match(name, path[1], level, vr, value, flags))
        elif vr in ("DA", "TM", "DT") and value:
            temporal[tag] = (*_temporal(name, vr, value), level, "-" in value)
        else:
            conditions.extend(_match(name, tag, level, vr, value, flags))
    for date, (low, high, level, is_range) in list(temporal.items()):
        time = _DATE_TIME.get(date)
        if time in temporal and is_range and temporal[time][3] and bool(low) == bool(temporal[time][0]) \
                and bool(high) == bool(temporal[time][1]):  # §8.3.4.1.1: combined date-time matching
            t_low, t_high = temporal.pop(time)[:2]
            del temporal[date]
            conditions.append(Condition(date, level, "range", (low + t_low, _end(high + t_high)), time_tag=time))
    for tag, (low, high, level, _) in temporal.items():
        conditions.append(Condition(tag, level, "range", (low, _end(high))))
    conditions.extend(ItemCondition(tag, _LEVEL_OF[tag], tuple(inner)) for tag, inner in items.items() if inner)
    return conditions


def _match(name: str, tag: str, level: Level, vr: str, value: str, flags: dict[str, bool]) -> list[Condition]:
    """The conditions of one non-temporal match key: none for universal matching (C.2.2.2.3)."""
    if not value:
        return []
    if vr == "SQ":
        raise BadRequest(f"{name}: a sequence is matched through its item attributes ({name}.Keyword=value)")
    if vr == "UI":  # C.2.2.2.2 List of UID matching: commas in QIDO, backslashes in DIMSE
        uids = [uid.strip() for uid in re.split(r"[,\\]", value) if uid.strip()]
        if not uids:
            raise BadRequest(f"{name}: {value!r} holds no UID")
        for uid in uids:  # PS3.5 §9.1, as for the UIDs of a path
            if (error := uid_error(uid, name)) is not None:
                raise BadRequest(error)
        return [Condition(tag, level, "equal", tuple(uids))]
    if vr in ("DA", "TM", "DT"):
        low, high = _temporal(name, vr, value)
        return [Condition(tag, level, "range", (low, _end(high)))]
    if vr in _INTEGER_VRS or vr in _DECIMAL_VRS:
        try:
            number: float = int(value) if vr in _INTEGER_VRS else float(value)
        except ValueError:
            raise BadRequest(f"{name}: {value!r} is not a number") from None
        return [Condition(tag, level, "equal", (number,))]
    alternatives = [v.strip(" ") for v in re.split(r"[,\\]" if vr == "CS" else r"\\", value)]
    if vr == "PN":
        alternatives = [v.split("=")[0] for v in alternatives]  # the Alphabetic group
    alternatives = [v for v in alternatives if v]
    if not alternatives or "*" in alternatives:
        return []  # C.2.2.2.3: "*" alone is universal matching
    person_name = vr == "PN"
    if flags["multiplevaluematching"] and vr in _MULTI_VALUE_VRS and "\\" in value:
        groups = [[v] for v in alternatives]  # C.2.2.2.8: every value must be present
    else:
        groups = [alternatives]
    conditions = []
    for group in groups:
        wildcard = any("*" in v or "?" in v for v in group)
        kind: Any = "fuzzy" if person_name and flags["fuzzymatching"] else "pattern" if wildcard else "equal"
        conditions.append(Condition(tag, level, kind, tuple(group), person_name=person_name))
    return conditions


def _temporal(name: str, vr: str, value: str) -> tuple[str, str]:
    """``(low, high)`` of a DA/TM/DT single value or range (C.2.2.2.5); ``""`` for an open end."""
    syntax = _TEMPORAL[vr]
    match = re.fullmatch(f"({syntax})?(-)?({syntax})?", value)
    if match is None or (match.group(2) is None and match.group(3) is not None) or not (match.group(1) or
                                                                                          match.group(3)):
        raise BadRequest(f"{name}: {value!r} is not a {vr} value or range")
    low = match.group(1) or ""
    high = (match.group(3) or "") if match.group(2) else low
    if vr == "DT":  # offsets are not applied: values compare as stored
        low, high = (re.sub(r"[+-]\d{4}$", "", v) for v in (low, high))
    for end in (low, high):
        if vr in ("DA", "DT") and len(end) >= 8:
            try:
                datetime.date(int(end[:4]), int(end[4:6]), int(end[6:8]))
            except ValueError:
                raise BadRequest(f"{name}: {end!r} is not a valid date") from None
    if low and high and low > high:
        raise BadRequest(f"{name}: the range {value!r} ends before it starts")
    return low, high


def _end(high: str) -> str:
    """The inclusive upper bound of a possibly truncated value: everything it is a prefix of."""
    return high + "~" if high else ""


def _include(where: Resource, includes: list[str], returns: dict[str, bool]) -> None:
    """§8.3.4.3: includefield lists (commas, repeated parameters) or ``all``."""
    names = [item.strip() for value in includes for item in value.split(",") if item.strip()]
    if "all" in names:
        if len(names) > 1:
            raise BadRequest("includefield=all cannot be combined with other includefield values")
        for tag in sorted(_KEPT[where.level]):
            returns.setdefault(tag, False)
        return
    for item in names:
        path = jsonwriter.attribute_path(item)
        if path is None:
            raise BadRequest(f"includefield: {item!r} is neither an attribute keyword nor a tag")
        tag = path[0]
        # §10.6.3.3: attributes of levels below the result level are not returned.
        if _LEVEL_OF.get(tag) in where.include_levels or tag in (_RETRIEVE_URL, _AVAILABILITY):
            _request(returns, tag)


def _request(returns: dict[str, bool], tag: str) -> None:
    """A key the client names is returned, empty when unknown, as a C-FIND return key would be."""
    returns[tag] = returns.get(tag, False) or tag not in _COMPUTED  # never an empty ModalitiesInStudy


def _boolean(name: str, value: str | None) -> bool:
    if value is None:
        return False
    if value.lower() not in ("true", "false"):
        raise BadRequest(f"{name} must be true or false, not {value!r}")
    return value.lower() == "true"


def _uint(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    if not re.fullmatch(r"\d+", value.strip()):
        raise BadRequest(f"{name} must be an unsigned integer, not {value!r}")
    return min(int(value), _MAX_INT)


def _printable(name: str) -> str:
    """A parameter name safe to quote in a header."""
    return re.sub(r"[^\x21-\x7e]", "?", name)[:64]


# -- Results (§10.6.3.3) --------------------------------------------------------------------------

def _result(match: dict[str, Any], returns: dict[str, bool], level: str, root: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for tag in sorted(returns):
        element = match.get(tag)
        if element is not None:
            result[tag] = element
        elif tag == _RETRIEVE_URL:
            result[tag] = {"vr": "UR", "Value": [root + _location(match, level)]}
        elif tag == _AVAILABILITY:
            result[tag] = {"vr": "CS", "Value": ["ONLINE"]}
        elif returns[tag]:
            result[tag] = {"vr": _vr(tag) or "UN"}
    return result


def _location(match: dict[str, Any], level: str) -> str:
    path = f"/studies/{match['0020000D']['Value'][0]}"
    if level != "study":
        path += f"/series/{match['0020000E']['Value'][0]}"
    if level == "instance":
        path += f"/instances/{match['00080018']['Value'][0]}"
    return path


def _payload(results: list[dict[str, Any]], kind: str, root: str) -> Payload | None:
    vary = ("Accept", "Accept-Encoding")
    if kind == "json":
        body = jsonwriter.absolutize(orjson.dumps(results), root)
        return Payload([Part("application/dicom+json", None, len(body), bytes_body(body))], None, _etag(body),
                       vary=vary)
    if not results:
        return None
    documents = [json_to_xml(orjson.loads(jsonwriter.absolutize(orjson.dumps(r), root))) for r in results]
    parts = [Part("application/dicom+xml; charset=utf-8", None, len(d), bytes_body(d)) for d in documents]
    return Payload(parts, "application/dicom+xml", _etag(*documents), vary=vary)


def _etag(*bodies: bytes) -> str:
    digest = hashlib.sha256()
    for body in bodies:
        digest.update(body)
    return f'"{digest.hexdigest()[:32]}"'
