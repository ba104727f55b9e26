"""Retrieve Capabilities (PS3.18 §8.9, Annex H): a WADL description of the resources this server routes.

``OPTIONS {root}`` (or ``{root}/``) describes every resource; ``OPTIONS`` on a resource path
describes that resource and its children, its template parameters fixed to the request's values
(the 2014-2017 text of §6.8 allowed any resource; 2024c names only the base URI, which we answer
too). Paths and methods are read from the Starlette route table of the DICOMweb Mount on every
request, so the description cannot drift from what is routed. What each method produces comes
from ``model.TRANSFER_SYNTAXES`` and the small tables below, keyed by the resource names of
Table H-1 (a UID, a collection, ``metadata``, ``bulkdata``, ``pixeldata``, ``frames``); a route
named otherwise is still listed with its methods but without representations, and a test fails.

Representations: ``application/vnd.sun.wadl+xml`` (the default) and ``application/json`` (the
same tree: one key per element name holding a list, attributes as properties, text as ``text``),
the two media types of the §6.8.1.1.2 / §8.9 text we could read. ``application/dicom+xml`` is not
a WADL encoding and gets 406. A missing Accept header means ``*/*`` (our choice: generic HTTP
tools send OPTIONS without one). A CORS pre-flight never reaches this module when CORS origins
are configured: ``CORSMiddleware`` answers it before routing. Without them, one that does (``Origin`` and
``Access-Control-Request-Method``) is refused with 403 rather than answered with the description: it asks
whether a cross-origin request may be made, which no origin may (and the description is 160 KB).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree as ET

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, Route, compile_path
from starlette.types import Scope

from ..errors import CrossOriginRefused, NotAcceptable, NotFound
from ..model import EXPLICIT_VR_LE, TRANSFER_SYNTAXES, check_uid
from ..negotiation import Offer, acceptable_media_types, negotiate
from ..retrieve import Part, Payload, bytes_body, etag
from .negotiate import header_field
from .routes import Endpoints

__all__ = ["Capabilities", "capabilities_mount", "describe"]

WADL_NAMESPACE = "http://wadl.dev.java.net/2009/02"
XSD_NAMESPACE = "http://www.w3.org/2001/XMLSchema"
WADL = "application/vnd.sun.wadl+xml"
# The representations of the Capabilities Description, default first.
FORMATS: tuple[str, ...] = (WADL, "application/json")
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS")


def _multipart(media_type: str) -> str:
    return f'multipart/related; type="{media_type}"'


# -- What each resource produces (Tables 10.4.4-1, 10.6.1-6, 10.5.1-2) --------------------------------

DICOM_JSON = "application/dicom+json"
# Metadata and Search results: DICOM JSON (default), Native XML in multipart, and application/json,
# which retrieve.metadata_kind takes as an alias of DICOM JSON. A test requests each of them.
METADATA_TYPES: tuple[str, ...] = (DICOM_JSON, _multipart("application/dicom+xml"), "application/json")

# Search query parameters we honour (§8.3.4, Table 8.3.4-1); emptyvaluematching is not supported,
# so it is not advertised (§8.9: advertise what the service supports). A test compares this table
# with the reserved names the Search use case parses.
SEARCH_PARAMETERS: tuple[tuple[str, str, bool, str], ...] = (  # name, XSD type, repeating, doc
    ("includefield", "xsd:string", True, "an attribute keyword or tag to return, or 'all' (§8.3.4.3)"),
    ("limit", "xsd:unsignedInt", False, "the most results to return; capped by the server's maximum (§8.3.4.4)"),
    ("offset", "xsd:unsignedInt", False, "the number of results to skip (§8.3.4.4)"),
    ("fuzzymatching", "xsd:boolean", False, "person names also match on a prefix of any component (§8.3.4.6)"),
    ("multiplevaluematching", "xsd:boolean", False, "a value list matches when all its values do (§8.3.4.7)"),
)
MATCH_KEYS_DOC = ("Match keys: {attributeID}={value}, the attribute by keyword or tag, a sequence item as"
                  " {sequence}.{attribute} (§8.3.4.1); the attributes and matching kinds are listed in"
                  " the conformance statement (GET /conformance on this server).")

_TEMPLATE_DOCS = {
    "study": "Study Instance UID",
    "series": "Series Instance UID",
    "instance": "SOP Instance UID",
    "frames": "frame numbers, 1-based, separated by commas",
    "path": "tag path of a bulk data element, as in a BulkDataURI",
}
_LEVELS = {"{study}": "Study", "{series}": "Series", "{instance}": "Instance"}
_COLLECTIONS = {"studies": "Studies", "series": "Series", "instances": "Instances"}


def _dicom_options(level: str) -> tuple[str, ...]:
    multipart = _multipart("application/dicom")
    options = [multipart, *(f"{multipart}; transfer-syntax={ts.uid}" for ts in TRANSFER_SYNTAXES.values() if ts.web),
               f"{multipart}; transfer-syntax=*"]
    if level == "Instance":  # a single instance may be asked for bare (§8.7.3.2)
        options.append("application/dicom")
    return tuple(options)


def _pixel_options(video: bool, bulk: bool) -> tuple[str, ...]:
    """Pixel data in every bulk data media type of Table 8.7.3-5; bare types for a single item."""
    syntaxes = [ts for ts in TRANSFER_SYNTAXES.values()
                if ts.web and (ts.encapsulated or ts.uid == EXPLICIT_VR_LE) and (video or not ts.video)]
    octet = _multipart("application/octet-stream")
    options = [octet, f"{octet}; transfer-syntax=*"]
    options += [f"{_multipart(ts.media_type)}; transfer-syntax={ts.uid}" for ts in syntaxes if ts.encapsulated]
    bare = ["application/octet-stream"] if bulk else []
    bare += [ts.media_type for ts in syntaxes]
    return tuple(options + list(dict.fromkeys(bare)))


def _representations(options: Iterable[str]) -> tuple[str, ...]:
    """The distinct media types of a list of Accept options (their ``transfer-syntax`` dropped)."""
    return tuple(dict.fromkeys(re.sub(r"; transfer-syntax=\S+$", "", option) for option in options))


# -- The method table ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    style: str  # "header", "query" or "template"
    doc: str
    type: str = "xsd:string"
    default: str | None = None
    options: tuple[str, ...] = ()
    repeating: bool = False


@dataclass(frozen=True, slots=True)
class Method:
    """One method of one resource, as WADL describes it."""

    name: str  # the HTTP method
    title: str  # the transaction of Table H-1
    section: str
    params: tuple[Param, ...] = ()
    request_types: tuple[str, ...] = ()  # payload media types (Store)
    response_types: tuple[str, ...] = ()  # success representations, default first
    success: str = "200"
    failure: str = "400 404 406"
    doc: str = ""

    @property
    def id(self) -> str:
        return re.sub(r"[^A-Za-z0-9]", "", self.title.title()) + ("Head" if self.name == "HEAD" else "")


def _negotiated(options: tuple[str, ...], charset: bool = False) -> tuple[Param, ...]:
    params = [
        Param("Accept", "header", "the Acceptable Media Types, best first (§8.7)", default=options[0],
              options=options),
        Param("accept", "query", "media types that take precedence over the Accept header (§8.3.3.1)",
              repeating=True),
    ]
    if charset:
        params.append(Param("charset", "query", "acceptable character sets; only UTF-8 is served (§8.3.3.2)",
                            repeating=True))
    return tuple(params)


def _retrieve(title: str, options: tuple[str, ...], charset: bool = False) -> Method:
    return Method("GET", title, "PS3.18 §10.4", _negotiated(options, charset), response_types=_representations(options),
                  success="200 206")


def _store(title: str) -> Method:
    return Method("POST", title, "PS3.18 §10.5", request_types=(_multipart("application/dicom"),),
                  response_types=(DICOM_JSON,), success="200 202", failure="400 409 413 415")


def _delete(title: str) -> Method:
    # Not a PS3.18 transaction: what dcm4chee-arc and Orthanc do (docs/conformance.md, "Deleting and correcting").
    return Method("DELETE", title, "not in PS3.18", success="204", failure="400 404",
                  doc="Removes the index rows, then the stored files; again after success: 204; retrieving it"
                      " afterwards: 410 Gone (§8.5).")


def _search(title: str) -> Method:
    params = _negotiated(METADATA_TYPES, charset=True) + tuple(
        Param(name, "query", doc, type=kind, repeating=repeating) for name, kind, repeating, doc in SEARCH_PARAMETERS
    )
    return Method("GET", title, "PS3.18 §10.6", params, response_types=METADATA_TYPES, success="200 204",
                  failure="400 404 406 413", doc=MATCH_KEYS_DOC)


# Rendered and Thumbnail resources (Tables 10.4.1-3/-4) and their query parameters (Table 10.4.1-5).
# Single-part types only for a single response item (Table 10.4.4-1 note 3): an instance or one frame.
RENDERED_MULTIPART: tuple[str, ...] = tuple(_multipart(t) for t in (
    "image/jpeg", "image/png", "image/gif", "image/jp2", "video/mp4", "application/pdf", "text/html", "text/plain"))
RENDERED_TYPES: tuple[str, ...] = ("image/jpeg", "image/png", "image/gif", "image/jp2", "video/mp4", "video/mpeg",
                                   "video/H265", "application/pdf", "text/html", "text/plain", "text/xml",
                                   *RENDERED_MULTIPART)
THUMBNAIL_TYPES: tuple[str, ...] = ("image/jpeg", "image/png", "image/gif", "image/jp2")
RENDERED_PARAMETERS: tuple[Param, ...] = (
    Param("annotation", "query", "burn in 'patient' and/or 'technique' text (§8.3.5.1.1); others are ignored"
          " with a Warning", repeating=True),
    Param("quality", "query", "1-100: the JPEG quality (libjpeg scale; default 90), MP4 constant quality"
          " (§8.3.5.1.2)", type="xsd:unsignedInt"),
    Param("viewport", "query", "vw,vh[,sx,sy,sw,sh]: crop to the source region, flip for negative sw/sh, fit"
          " inside vw x vh keeping the aspect ratio (§8.3.5.1.3)"),
    Param("window", "query", "center,width,function with function linear, linear-exact or sigmoid (§8.3.5.1.4)"),
    Param("iccprofile", "query", "no, yes, srgb, adobergb or rommrgb (§8.3.5.1.5)"),
)
THUMBNAIL_PARAMETERS: tuple[Param, ...] = (
    Param("viewport", "query", "vw,vh: fit inside vw x vh (default 128 x 128; §8.3.5.2)"),
)


# Rendered MPR and Rendered 3D (Tables 10.4.1.7-1, 10.4.1.8-1) and the parameters of Table 8.3.5-3.
VOLUME_TYPES: tuple[str, ...] = ("image/jpeg", "image/png", "image/gif", "video/mp4", "application/dicom+json")
VOLUME_PARAMETERS: tuple[Param, ...] = (
    Param("volumeinputreference", "query", "SOP Instance UIDs or frame numbers that form the volume (§8.3.5.3.1)",
          repeating=True),
    Param("match", "query", "attribute=value: keep the instances whose metadata match, QIDO-style (§8.3.5.3.2)",
          repeating=True),
    Param("renderingmethod", "query", "volume_rendered, maximum_ip, minimum_ip or average_ip (§8.3.5.3.3); default"
          " average_ip for /renderedmpr, volume_rendered for /rendered3d",
          options=("volume_rendered", "maximum_ip", "minimum_ip", "average_ip")),
    Param("orientation", "query", "view from the patient's a, p, r, l, h or f side (§8.3.5.3.4); default f for"
          " /renderedmpr, a for /rendered3d", options=("a", "p", "r", "l", "h", "f")),
    Param("viewpointposition", "query", "x,y,z mm: the camera (§8.3.5.3.5), with viewpointlookat and viewpointup"),
    Param("viewpointlookat", "query", "x,y,z mm: the image centre (§8.3.5.3.6)"),
    Param("viewpointup", "query", "x,y,z: the image's up (§8.3.5.3.7)"),
    Param("mprslab", "query", "slab thickness in mm, above 0 (§8.3.5.3.8)", type="xsd:decimal"),
    Param("swivelrange", "query", "degrees of a swivel animation (§8.3.5.3.9)", type="xsd:decimal"),
    Param("volumetriccurvepoint", "query", "x,y,z mm points of a curve: curved MPR, or a fly-through (§8.3.5.3.10)",
          repeating=True),
    Param("animationstepsize", "query", "degrees (swivel, default 10) or mm (curve) per frame (§8.3.5.3.11)",
          type="xsd:unsignedInt"),
    Param("animationrate", "query", "frames per second, default 10 (§8.3.5.3.12)", type="xsd:unsignedInt"),
    Param("renderedvolumetricmetadata", "query", "yes: only the Annex K Rendered Volume Response Module"
          " (§8.3.5.3.13)", options=("yes",)),
)


def _volume(title: str) -> Method:
    params = _negotiated(VOLUME_TYPES, charset=True) + RENDERED_PARAMETERS + VOLUME_PARAMETERS
    return Method("GET", title, "PS3.18 §10.4.1.1.7" if "MPR" in title else "PS3.18 §10.4.1.1.8", params,
                  response_types=VOLUME_TYPES)


def _rendered(title: str, thumbnail: bool, single: bool = True) -> Method:
    options = THUMBNAIL_TYPES if thumbnail else RENDERED_TYPES if single else RENDERED_MULTIPART
    params = _negotiated(options, charset=True) + (THUMBNAIL_PARAMETERS if thumbnail else RENDERED_PARAMETERS)
    return Method("GET", title, "PS3.18 §10.4.1.1.4" if thumbnail else "PS3.18 §10.4.1.1.3", params,
                  response_types=options, success="200" if thumbnail else "200 206")


def describe(segments: Sequence[str], method: str, resource: str | None) -> Method | None:
    """What ``method`` does on a resource of the route table (its kind, ``ResourceRoute.resource``).

    None for a route the table does not know (no ``resource``) or a method it has no row for.
    """
    if method == "HEAD":
        get = describe(segments, "GET", resource)
        if get is None:
            return None
        return Method("HEAD", get.title, get.section, success=get.success, failure=get.failure,
                      doc="The headers GET would answer, without its payload.")
    levels = [_LEVELS[s] for s in segments if s in _LEVELS]
    level = levels[-1] if levels else ""
    last = segments[-1]
    framed = "Frames" if "frames" in segments else ""
    # Method ids are unique (xsd:ID): the camel-case aliases and the seed's study path say what they are.
    variant = (" (seed path)" if len(segments) > 1 and segments[-2] == "series" else "") + (
        " (alias)" if last in ("renderedMPR", "rendered3D") else "")
    key = (method, resource or "")
    builders: dict[tuple[str, str], Callable[[], Method]] = {
        ("GET", "uid"): lambda: _retrieve(f"Retrieve {level}", _dicom_options(level)),
        ("POST", "uid"): lambda: _store(f"Store {level} Instances"),
        ("DELETE", "uid"): lambda: _delete(f"Delete {level}"),
        ("GET", "collection"): lambda: _search(" ".join(["Search for", *levels, _COLLECTIONS[last]])),
        ("POST", "collection"): lambda: _store(" ".join(["Store", *levels, "Instances"])),
        ("GET", "metadata"): lambda: _retrieve(f"Retrieve {level} Metadata", METADATA_TYPES, charset=True),
        ("GET", "bulkdata"): lambda: _retrieve(
            f"Retrieve {level} Bulkdata" if last == "bulkdata" else "Retrieve Bulkdata",
            _pixel_options(video=True, bulk=True)),
        ("GET", "pixeldata"): lambda: _retrieve(f"Retrieve {level} Pixel Data", _pixel_options(video=True, bulk=False)),
        ("GET", "frames"): lambda: _retrieve("Retrieve Frames", _pixel_options(video=False, bulk=False)),
        ("GET", "rendered"): lambda: _rendered(f"Retrieve Rendered {framed or level}", thumbnail=False,
                                               single=level == "Instance"),
        ("GET", "thumbnail"): lambda: _rendered(f"Retrieve {framed or level} Thumbnail", thumbnail=True),
        ("GET", "renderedmpr"): lambda: _volume(f"Retrieve Rendered MPR {framed or level}{variant}"),
        ("GET", "rendered3d"): lambda: _volume(f"Retrieve Rendered 3D {framed or level}{variant}"),
    }
    build = builders.get(key)
    return build() if build is not None else None


# -- The route table as a tree ------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    segments: tuple[str, ...]  # the template, ``{name:convertor}`` written ``{name}``
    methods: frozenset[str]
    regex: re.Pattern[str]
    resource: str | None  # the route table's kind of resource (``ResourceRoute.resource``)


@dataclass(slots=True)
class _Node:
    methods: set[str] = field(default_factory=set)
    children: dict[str, _Node] = field(default_factory=dict)
    resource: str | None = None


def _entries(routes: Iterable[BaseRoute], skip: Callable[[Route], bool], prefix: str = "") -> list[_Entry]:
    entries: list[_Entry] = []
    for route in routes:
        if isinstance(route, Mount):
            entries += _entries(route.routes, skip, prefix + route.path)
        elif isinstance(route, Route) and not skip(route):
            template = prefix + route.path
            normal = re.sub(r"\{(\w+):\w+\}", r"{\1}", template)
            regex = compile_path(template)[0]
            entries.append(_Entry(tuple(normal.strip("/").split("/")), frozenset(route.methods or ()), regex,
                                  getattr(route, "resource", None)))
    return entries


def _tree(entries: Iterable[_Entry]) -> _Node:
    root = _Node()
    for entry in entries:
        node = root
        for segment in entry.segments:
            node = node.children.setdefault(segment, _Node())
        node.methods |= entry.methods  # two routes on one path: the router tries both
        node.resource = node.resource or entry.resource
    return root


def _ordered(methods: Iterable[str]) -> list[str]:
    return sorted(methods, key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m))


# -- WADL -----------------------------------------------------------------------------------------------


def _sub(parent: ET.Element, tag: str, **attributes: str | None) -> ET.Element:
    return ET.SubElement(parent, tag, {k: v for k, v in attributes.items() if v is not None})


def _param(parent: ET.Element, param: Param, fixed: str | None = None) -> None:
    element = _sub(parent, "param", name=param.name, style=param.style, type=param.type, default=param.default,
                   fixed=fixed, required="true" if param.style == "template" else None,
                   repeating="true" if param.repeating else None)
    _sub(element, "doc").text = param.doc
    for option in param.options:
        _sub(element, "option", value=option)


def _method(parent: ET.Element, name: str, segments: Sequence[str], resource: str | None) -> None:
    method = describe(segments, name, resource)
    element = _sub(parent, "method", name=name, id=method.id if method else None)
    if method is None:
        _sub(element, "doc").text = "Not described: this resource is not one of PS3.18 Table H-1."
        return
    _sub(element, "doc", title=method.title).text = " ".join(filter(None, (method.section, method.doc)))
    if method.params or method.request_types:
        request = _sub(element, "request")
        for param in method.params:
            _param(request, param)
        for media_type in method.request_types:
            _sub(request, "representation", mediaType=media_type)
    response = _sub(element, "response", status=method.success)
    if method.name != "HEAD":
        for media_type in method.response_types:
            _sub(response, "representation", mediaType=media_type)
    failure = _sub(element, "response", status=method.failure)
    if method.name != "HEAD":
        _sub(failure, "representation", mediaType="text/plain")


def _resource(parent: ET.Element, path: list[str], node: _Node, ancestors: tuple[str, ...],
              fixed: dict[str, str]) -> None:
    while not node.methods and len(node.children) == 1:  # "frames" has no route: write "frames/{frames}"
        segment, node = next(iter(node.children.items()))
        path = [*path, segment]
    element = _sub(parent, "resource", path="/".join(path))
    segments = (*ancestors, *path)
    for segment in path:
        if segment.startswith("{"):
            name = segment.strip("{}")
            _param(element, Param(name, "template", _TEMPLATE_DOCS.get(name, name)), fixed.get(name))
    for name in _ordered(node.methods):
        _method(element, name, segments, node.resource)
    for segment, child in node.children.items():
        _resource(element, [segment], child, segments, {})


def wadl(base: str, root: _Node, target: tuple[str, ...] = (), fixed: dict[str, str] | None = None) -> ET.Element:
    """The WADL ``application`` for the resource at ``target`` (every resource when empty)."""
    application = ET.Element("application", {"xmlns": WADL_NAMESPACE, "xmlns:xsd": XSD_NAMESPACE})
    _sub(application, "doc", title="dicomweb-origin").text = "DICOMweb origin server (PS3.18 Annex H)"
    resources = _sub(application, "resources", base=base)
    if not target:
        for segment, child in root.children.items():
            _resource(resources, [segment], child, (), {})
        return application
    node = root
    for segment in target:
        node = node.children[segment]
    _resource(resources, list(target), node, (), fixed or {})
    return application


def _as_json(element: ET.Element) -> dict[str, Any]:
    result: dict[str, Any] = {k: v for k, v in element.attrib.items() if not k.startswith("xmlns")}
    if element.text and element.text.strip():
        result["text"] = element.text
    for child in element:
        result.setdefault(child.tag, []).append(_as_json(child))
    return result


def render(application: ET.Element, media_type: str) -> bytes:
    if media_type == WADL:
        xml: bytes = ET.tostring(application, encoding="utf-8", xml_declaration=True)
        return xml
    return orjson.dumps({application.tag: _as_json(application)})


# -- The endpoint ---------------------------------------------------------------------------------------


class Capabilities:
    """Answers OPTIONS on the DICOMweb root and on every resource the sibling routes serve."""

    def __init__(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints
        self.routes: Sequence[BaseRoute] = ()  # the Mount's routes, read on every request

    def _is_own(self, route: Route) -> bool:
        return route.endpoint == self.options

    async def options(self, request: Request) -> Response:
        if "origin" in request.headers and "access-control-request-method" in request.headers:
            raise CrossOriginRefused("cross-origin requests are not allowed by this server (it has no --cors-origin)")
        entries = _entries(self.routes, self._is_own)
        rest = request.path_params.get("resource", "")
        target: tuple[str, ...] = ()
        fixed: dict[str, str] = {}
        allowed = {"OPTIONS"}
        if rest:
            path = "/" + rest
            found = next((e for e in entries if e.regex.match(path)), None)
            if found is None:
                raise NotFound("no such resource")
            match = found.regex.match(path)
            assert match is not None
            target, fixed = found.segments, match.groupdict()
            for name, what in (("study", "Study Instance"), ("series", "Series Instance"), ("instance", "SOP Instance")):
                if name in fixed:
                    check_uid(fixed[name], what)  # as the resource's own methods would: 400, not a description
        tree = _tree(entries)
        if target:
            node = tree
            for segment in target:
                node = node.children[segment]
            allowed |= node.methods
        media_type = _choose(header_field(request.headers, "accept"))
        body = render(wadl(self.endpoints.root(request) + "/", tree, target, fixed), media_type)
        tag = etag("capabilities", media_type, hashlib.sha256(body).hexdigest())
        payload = Payload([Part(media_type, None, len(body), bytes_body(body))], None, tag)
        response = await self.endpoints.send(request, payload, compressible=True)
        response.headers["Allow"] = ", ".join(_ordered(allowed))
        return response


def _choose(accept: str | None) -> str:
    """The representation of the description; §8.9.1.3 makes Accept mandatory, we read none as */*."""
    offer = negotiate(acceptable_media_types(accept or "*/*", []), tuple(Offer(f) for f in FORMATS))
    if offer is None:
        raise NotAcceptable(f"the capabilities description is served as {' or '.join(FORMATS)}")
    return offer.media_type


class _OptionsRoute(Route):
    """A route for OPTIONS only, invisible to other methods: their unknown paths stay 404, not 405."""

    def __init__(self, path: str, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        super().__init__(path, endpoint, methods=["OPTIONS"])

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("method") != "OPTIONS":
            return Match.NONE, {}
        return super().matches(scope)


def capabilities_mount(root_path: str, routes: Sequence[BaseRoute], endpoints: Endpoints) -> list[BaseRoute]:
    """The DICOMweb Mount with ``routes``, plus OPTIONS (Retrieve Capabilities) on the root and every path."""
    capabilities = Capabilities(endpoints)
    mount = Mount(root_path, routes=[*routes, _OptionsRoute("/{resource:path}", capabilities.options)])
    capabilities.routes = mount.routes
    if not root_path:
        return [mount]
    return [_OptionsRoute(root_path, capabilities.options), mount]
