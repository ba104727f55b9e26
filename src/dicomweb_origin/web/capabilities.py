"""Retrieve Capabilities (PS3.18 §8.9, Annex H): a WADL description of the resources this server routes.

``OPTIONS {root}`` (or ``{root}/``) describes every resource; ``OPTIONS`` on a resource path
describes that resource and its children, its template parameters fixed to the request's values
(the 2014-2017 text of §6.8 allowed any resource; 2024c names only the base URI, which we answer
too). Paths and methods are read from the Starlette route table of the DICOMweb Mount on every
request, so the description cannot drift from what is routed; what each method does, answers and
takes comes from the route's row of the resource table (``web/resources.py``). A route without a
row is still listed with its methods, but without a description.

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
from ..model.uids import check_uid
from ..negotiation import Offer, acceptable_media_types, negotiate
from ..retrieve import Part, Payload, bytes_body, etag
from ..settings import Settings
from .request import header_field, root
from .resources import (
    ACCEPT,
    CAPABILITIES_METHOD,
    CHARSET,
    TEMPLATES,
    WADL,
    Method,
    Param,
    Resource,
    method_of,
    routed,
)
from .send import Writer

__all__ = ["Capabilities", "capabilities_mount", "describe"]

WADL_NAMESPACE = "http://wadl.dev.java.net/2009/02"
XSD_NAMESPACE = "http://www.w3.org/2001/XMLSchema"
# The representations of the Capabilities Description, default first.
FORMATS: tuple[str, ...] = tuple(r.media_type for r in CAPABILITIES_METHOD.offers)
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS")


@dataclass(frozen=True, slots=True)
class WadlParam:
    """A WADL ``param``: a header, query or template parameter."""

    name: str
    style: str  # "header", "query" or "template"
    doc: str
    type: str = "xsd:string"
    default: str | None = None
    options: tuple[str, ...] = ()
    repeating: bool = False


@dataclass(frozen=True, slots=True)
class Described:
    """One method of one resource, as WADL describes it."""

    name: str  # the HTTP method
    title: str  # the transaction of Table H-1
    section: str
    params: tuple[WadlParam, ...] = ()
    request_types: tuple[str, ...] = ()  # payload media types (Store)
    response_types: tuple[str, ...] = ()  # success representations, default first
    success: str = "200"
    failure: str = "400 404 406"
    doc: str = ""

    @property
    def id(self) -> str:
        return re.sub(r"[^A-Za-z0-9]", "", self.title.title()) + ("Head" if self.name == "HEAD" else "")


def _query(param: Param) -> WadlParam:
    return WadlParam(param.name, "query", param.doc, param.type, options=param.options, repeating=param.repeating)


def _described(method: Method, single: bool) -> Described:
    """What the resource table says of ``method`` on a path whose target is one item (``single``) or several."""
    answers = method.answers(single)
    if method.verb != "GET":
        return Described(method.verb, method.title, method.section, request_types=method.accepts,
                         response_types=tuple(r.content_type for r in answers), success=method.success,
                         failure=method.failure, doc=method.doc)
    options: list[str] = []
    for offer in method.offers:
        if single or not offer.single:
            options += [offer.content_type, *(f"{offer.content_type}; transfer-syntax={s}" for s in offer.syntaxes)]
    types = tuple(dict.fromkeys(r.content_type for r in answers))
    params = [WadlParam("Accept", "header", "the Acceptable Media Types, best first (§8.7)", default=types[0],
                        options=tuple(dict.fromkeys(options))), _query(ACCEPT)]
    if method.text:
        params.append(_query(CHARSET))
    params += [_query(p) for p in method.params]
    return Described("GET", method.title, method.section, tuple(params), response_types=types,
                     success=method.success, failure=method.failure, doc=method.doc)


def _describe(row: Resource | None, verb: str, alias: bool) -> Described | None:
    """What ``verb`` does on a route of the resource table; None for a route without a row or a verb it lacks."""
    if row is None:
        return None
    if verb == "HEAD":
        get = _describe(row, "GET", alias)
        if get is None:
            return None
        return Described("HEAD", get.title, get.section, success=get.success, failure=get.failure,
                         doc="The headers GET would answer, without its payload.")
    method = method_of(row, verb, alias)
    return None if method is None else _described(method, row.single)


def describe(segments: Sequence[str], verb: str) -> Described | None:
    """What ``verb`` does on the resource whose path template is ``segments`` (``["studies", "{study}"]``)."""
    path = "/" + "/".join(segments)
    for routed_path, row, alias in routed():
        if re.sub(r"\{(\w+):\w+\}", r"{\1}", routed_path) == path:
            return _describe(row, verb, alias)
    return None


# -- The route table as a tree ------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    segments: tuple[str, ...]  # the template, ``{name:convertor}`` written ``{name}``
    methods: frozenset[str]
    regex: re.Pattern[str]
    row: Resource | None  # the route's row of the resource table (``ResourceRoute.row``)
    alias: bool = False


@dataclass(slots=True)
class _Node:
    methods: set[str] = field(default_factory=set)
    children: dict[str, _Node] = field(default_factory=dict)
    row: Resource | None = None
    alias: bool = False


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
                                  getattr(route, "row", None), getattr(route, "alias", False)))
    return entries


def _tree(entries: Iterable[_Entry]) -> _Node:
    root = _Node()
    for entry in entries:
        node = root
        for segment in entry.segments:
            node = node.children.setdefault(segment, _Node())
        node.methods |= entry.methods  # two routes on one path: the router tries both
        if node.row is None:
            node.row, node.alias = entry.row, entry.alias
    return root


def _ordered(methods: Iterable[str]) -> list[str]:
    return sorted(methods, key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m))


# -- WADL -----------------------------------------------------------------------------------------------


def _sub(parent: ET.Element, tag: str, **attributes: str | None) -> ET.Element:
    return ET.SubElement(parent, tag, {k: v for k, v in attributes.items() if v is not None})


def _param(parent: ET.Element, param: WadlParam, fixed: str | None = None) -> None:
    element = _sub(parent, "param", name=param.name, style=param.style, type=param.type, default=param.default,
                   fixed=fixed, required="true" if param.style == "template" else None,
                   repeating="true" if param.repeating else None)
    _sub(element, "doc").text = param.doc
    for option in param.options:
        _sub(element, "option", value=option)


def _method(parent: ET.Element, name: str, node: _Node) -> None:
    method = _describe(node.row, name, node.alias)
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


def _resource(parent: ET.Element, path: list[str], node: _Node, fixed: dict[str, str]) -> None:
    while not node.methods and len(node.children) == 1:  # "frames" has no route: write "frames/{frames}"
        segment, node = next(iter(node.children.items()))
        path = [*path, segment]
    element = _sub(parent, "resource", path="/".join(path))
    for segment in path:
        if segment.startswith("{"):
            name = segment.strip("{}")
            _param(element, WadlParam(name, "template", TEMPLATES.get(name, name)), fixed.get(name))
    for name in _ordered(node.methods):
        _method(element, name, node)
    for segment, child in node.children.items():
        _resource(element, [segment], child, {})


def wadl(base: str, root: _Node, target: tuple[str, ...] = (), fixed: dict[str, str] | None = None) -> ET.Element:
    """The WADL ``application`` for the resource at ``target`` (every resource when empty)."""
    application = ET.Element("application", {"xmlns": WADL_NAMESPACE, "xmlns:xsd": XSD_NAMESPACE})
    _sub(application, "doc", title="dicomweb-origin").text = "DICOMweb origin server (PS3.18 Annex H)"
    resources = _sub(application, "resources", base=base)
    if not target:
        for segment, child in root.children.items():
            _resource(resources, [segment], child, {})
        return application
    node = root
    for segment in target:
        node = node.children[segment]
    _resource(resources, list(target), node, fixed or {})
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

    def __init__(self, writer: Writer, settings: Settings) -> None:
        self.writer = writer
        self.settings = settings
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
        body = render(wadl(root(request, self.settings) + "/", tree, target, fixed), media_type)
        tag = etag("capabilities", media_type, hashlib.sha256(body).hexdigest())
        payload = Payload([Part(media_type, None, len(body), bytes_body(body))], None, tag)
        response = await self.writer.send(request, payload, compressible=CAPABILITIES_METHOD.gzip)
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


def capabilities_mount(root_path: str, routes: Sequence[BaseRoute], writer: Writer,
                       settings: Settings) -> list[BaseRoute]:
    """The DICOMweb Mount with ``routes``, plus OPTIONS (Retrieve Capabilities) on the root and every path."""
    capabilities = Capabilities(writer, settings)
    mount = Mount(root_path, routes=[*routes, _OptionsRoute("/{resource:path}", capabilities.options)])
    capabilities.routes = mount.routes
    if not root_path:
        return [mount]
    return [_OptionsRoute(root_path, capabilities.options), mount]
