"""The resource table: every DICOMweb resource this server serves, its paths, methods, media types and parameters.

One row per path (PS3.18 §10.4 Retrieve, §10.5 Store, §10.6 Search, Annex H Capabilities, and DELETE), each
path written out in full so that grepping for it (``/renderedmpr``) finds its row; aliases beside it. Each
method names the use case it calls, what it answers (``Representation``s by category of instance, default
first), its query parameters (description, and the function that parses them) and its statuses.

Generated from it: the Starlette routes (``web/routes.py``), the Retrieve Capabilities description
(``web/capabilities.py``), and the resource tables of the conformance statement and the README
(``conformance.py``). What each resource can answer is taken from the use cases' own tables
(``model.media.TRANSFER_SYNTAXES``, ``retrieve.rendered.CATEGORY_TYPES``, ``retrieve.volumes``), so it cannot drift
from them; tests/web/test_resources.py holds every representation the use cases produce against this table.
Framework-free: importable without Starlette.

The order of the rows is the order of routing: ``/studies/{study}/series/rendered3d`` comes before
``/studies/{study}/series/{series}``, which would take ``rendered3d`` for a Series Instance UID.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from ..ingest import Ingest
from ..model.media import TRANSFER_SYNTAXES
from ..retrieve import Retrieve, rendered, volumes
from ..search import Search
from .params import Query, render_params, thumbnail_params, volume_params

Parser = Callable[[Query], tuple[Any, tuple[str, ...]]]  # -> parameters, unsupported annotation values
WADL = "application/vnd.sun.wadl+xml"
OCTET = "application/octet-stream"


class Param(NamedTuple):
    """A query parameter as the Capabilities description gives it (Annex H: WADL ``param``)."""

    name: str
    doc: str
    type: str = "xsd:string"
    repeating: bool = False
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Representation:
    """One media type a method answers in (the payload's, or each part's when ``multipart``)."""

    media_type: str
    multipart: bool = False
    syntaxes: tuple[str, ...] = ()  # transfer-syntax values a request may name for it ("*" among them)
    categories: tuple[str, ...] = ()  # the kinds of instance it is for (Tables 8.7.2-1, 8.7.4-1); () all
    single: bool = False  # single-part types only for a single response item (Table 10.4.4-1 note 3)
    alias: bool = False  # accepted in Accept and answered as the default media type; never a Content-Type

    @property
    def content_type(self) -> str:
        return f'multipart/related; type="{self.media_type}"' if self.multipart else self.media_type


@dataclass(frozen=True, slots=True)
class Method:
    """What one HTTP method does on a resource (HEAD is GET without the payload)."""

    verb: str
    title: str  # the transaction of Table H-1 (unique: it names the method in the Capabilities description)
    section: str  # where the standard defines it
    call: Callable[..., Awaitable[Any]] | None  # the use case; None: answered by the web layer (Capabilities)
    offers: tuple[Representation, ...] = ()  # what it answers, the default first
    params: tuple[Param, ...] = ()  # query parameters besides ``accept`` and ``charset``
    parse: Parser | None = None  # the function that parses ``params``
    text: bool = False  # the payload may be text: charset and Accept-Charset apply (§8.8)
    gzip: bool = False  # the payload is gzip-compressed when the client accepts it (RFC 9110 §8.4)
    accepts: tuple[str, ...] = ()  # media types of the request payload (Store)
    search: str = ""  # the Search resource (Table 10.6.1-1) of a Search method
    success: str = "200"
    failure: str = "400 404 406"
    doc: str = ""

    @property
    def transaction(self) -> str:
        """``retrieve``, ``store``, ``search``, ``delete`` or ``capabilities``: the kind of handler it needs."""
        if self.call is None:
            return "capabilities"
        return {Ingest.store_request: "store", Ingest.delete_request: "delete",
                Search.search_request: "search"}.get(self.call, "retrieve")

    def answers(self, single: bool) -> tuple[Representation, ...]:
        """The representations of a path whose target is one item (``single``) or several, aliases left out."""
        return tuple(r for r in self.offers if not r.alias and (single or not r.single))


@dataclass(frozen=True, slots=True)
class Resource:
    """One path of the table and its methods; ``kind`` labels its requests in the metrics and the access log."""

    kind: str
    path: str
    methods: tuple[Method, ...]
    aliases: tuple[str, ...] = ()  # other spellings of the same resource, with the same methods

    @property
    def single(self) -> bool:
        """Whether the target is one item (an instance, or frames of one): single-part types allowed."""
        return "{instance}" in self.path


# -- What the methods answer -----------------------------------------------------------------------------------

_WEB = [ts for ts in TRANSFER_SYNTAXES.values() if ts.web]


def _bulk(video: bool, bare: bool = True) -> tuple[Representation, ...]:
    """Bulk data and pixel data (Tables 8.7.3-4 and 8.7.3-5): octet-stream, then the compressed types."""
    by_type: dict[str, list[str]] = {}
    for ts in _WEB:
        if ts.encapsulated and (video or not ts.video):
            by_type.setdefault(ts.media_type, []).append(ts.uid)
    offers = [Representation(OCTET, True, ("*",))]
    offers += [Representation(media_type, True, tuple(uids)) for media_type, uids in by_type.items()]
    if bare:
        offers += [Representation(media_type, single=True) for media_type in (OCTET, *by_type)]
    return tuple(offers)


INSTANCES = (
    Representation("application/dicom", True, (*(ts.uid for ts in _WEB), "*")),  # the default (Table 10.4.4-1)
    Representation("application/dicom", single=True),
    *_bulk(video=True, bare=False),  # Table 10.4.4-1 note 2: these mean the Bulkdata resource
)
BULKDATA = _bulk(video=True)
PIXELDATA = _bulk(video=True)
FRAMES = _bulk(video=False)  # a video is served whole, as its pixel data (§8.7.3.3.2)
METADATA = (
    Representation("application/dicom+json"),  # the default; one array (Annex F)
    Representation("application/dicom+xml", True),  # one document per instance (PS3.19 Annex A)
    Representation("application/json", alias=True),
)
STORE_RESPONSE = (Representation("application/dicom+json"), Representation("application/dicom+xml"),
                  Representation("application/json", alias=True))


def _by_category(categories: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """Media type -> the categories it is offered for, in order of first appearance."""
    kinds: dict[str, tuple[str, ...]] = {}
    for category, media_types in categories.items():
        for media_type in media_types:
            kinds[media_type] = (*kinds.get(media_type, ()), category)
    return kinds


_RENDERED = _by_category(rendered.CATEGORY_TYPES)  # Table 8.7.4-1 by category, default first
RENDERED = (*(Representation(t, categories=c, single=True) for t, c in _RENDERED.items()),
            *(Representation(t, True, categories=c) for t, c in _RENDERED.items()))
THUMBNAIL = tuple(Representation(t) for t in rendered.STILL)  # one image, whatever the target (§10.4.1.1.4)
_VOLUME = _by_category({"view": volumes.STILL_TYPES, "animation": volumes.ANIMATION_TYPES,
                        "renderedvolumetricmetadata": volumes.METADATA_TYPES[:1]})
VOLUME = (*(Representation(t, categories=c) for t, c in _VOLUME.items()),  # one part, bare: Annex K
          Representation("application/json", categories=("renderedvolumetricmetadata",), alias=True))
CAPABILITIES = (Representation(WADL), Representation("application/json"))  # §8.9, the 2014-2020 text


# -- Query parameters ------------------------------------------------------------------------------------------

ACCEPT = Param("accept", "media types that take precedence over the Accept header (§8.3.3.1)", repeating=True)
CHARSET = Param("charset", "acceptable character sets; only UTF-8 is served (§8.3.3.2)", repeating=True)
TEMPLATES = {  # the template parameters of the paths
    "study": "Study Instance UID",
    "series": "Series Instance UID",
    "instance": "SOP Instance UID",
    "frames": "frame numbers, 1-based, separated by commas",
    "path": "tag path of a bulk data element, as in a BulkDataURI",
}
# Search query parameters honoured (§8.3.4, Table 8.3.4-1); emptyvaluematching is not supported, so it is not
# advertised (§8.9: advertise what the service supports). A test compares them with what Search parses.
SEARCH_PARAMETERS = (
    Param("includefield", "an attribute keyword or tag to return, or 'all' (§8.3.4.3)", repeating=True),
    Param("limit", "the most results to return; capped by the server's maximum (§8.3.4.4)", "xsd:unsignedInt"),
    Param("offset", "the number of results to skip (§8.3.4.4)", "xsd:unsignedInt"),
    Param("fuzzymatching", "person names also match on a prefix of any component (§8.3.4.6)", "xsd:boolean"),
    Param("multiplevaluematching", "a value list matches when all its values do (§8.3.4.7)", "xsd:boolean"),
)
MATCH_KEYS_DOC = ("Match keys: {attributeID}={value}, the attribute by keyword or tag, a sequence item as"
                  " {sequence}.{attribute} (§8.3.4.1); the attributes and matching kinds are listed in"
                  " the conformance statement (GET /conformance on this server).")
# Rendered and Thumbnail (Table 10.4.1-5, §8.3.5.1-2).
RENDERED_PARAMETERS = (
    Param("annotation", "burn in 'patient' and/or 'technique' text (§8.3.5.1.1); others are ignored"
          " with a Warning", repeating=True),
    Param("quality", "1-100: the JPEG quality (libjpeg scale; default 90), MP4 constant quality (§8.3.5.1.2)",
          "xsd:unsignedInt"),
    Param("viewport", "vw,vh[,sx,sy,sw,sh]: crop to the source region, flip for negative sw/sh, fit"
          " inside vw x vh keeping the aspect ratio (§8.3.5.1.3)"),
    Param("window", "center,width,function with function linear, linear-exact or sigmoid (§8.3.5.1.4)"),
    Param("iccprofile", "no, yes, srgb, adobergb or rommrgb (§8.3.5.1.5)"),
)
THUMBNAIL_PARAMETERS = (Param("viewport", "vw,vh: fit inside vw x vh (default 128 x 128; §8.3.5.2)"),)
# Rendered MPR and Rendered 3D (Table 8.3.5-3), beside the rendering parameters.
VOLUME_PARAMETERS = RENDERED_PARAMETERS + (
    Param("volumeinputreference", "SOP Instance UIDs or frame numbers that form the volume (§8.3.5.3.1)",
          repeating=True),
    Param("match", "attribute=value: keep the instances whose metadata match, QIDO-style (§8.3.5.3.2)",
          repeating=True),
    Param("renderingmethod", "volume_rendered, maximum_ip, minimum_ip or average_ip (§8.3.5.3.3); default"
          " average_ip for /renderedmpr, volume_rendered for /rendered3d",
          options=("volume_rendered", "maximum_ip", "minimum_ip", "average_ip")),
    Param("orientation", "view from the patient's a, p, r, l, h or f side (§8.3.5.3.4); default f for"
          " /renderedmpr, a for /rendered3d", options=("a", "p", "r", "l", "h", "f")),
    Param("viewpointposition", "x,y,z mm: the camera (§8.3.5.3.5), with viewpointlookat and viewpointup"),
    Param("viewpointlookat", "x,y,z mm: the image centre (§8.3.5.3.6)"),
    Param("viewpointup", "x,y,z: the image's up (§8.3.5.3.7)"),
    Param("mprslab", "slab thickness in mm, above 0 (§8.3.5.3.8)", "xsd:decimal"),
    Param("swivelrange", "degrees of a swivel animation (§8.3.5.3.9)", "xsd:decimal"),
    Param("volumetriccurvepoint", "x,y,z mm points of a curve: curved MPR, or a fly-through (§8.3.5.3.10)",
          repeating=True),
    Param("animationstepsize", "degrees (swivel, default 10) or mm (curve) per frame (§8.3.5.3.11)",
          "xsd:unsignedInt"),
    Param("animationrate", "frames per second, default 10 (§8.3.5.3.12)", "xsd:unsignedInt"),
    Param("renderedvolumetricmetadata", "yes: only the Annex K Rendered Volume Response Module (§8.3.5.3.13)",
          options=("yes",)),
)


# -- The methods -----------------------------------------------------------------------------------------------


def _retrieve(title: str, section: str, call: Callable[[Retrieve, Any], Awaitable[Any]],
              offers: tuple[Representation, ...], success: str = "200 206", **more: Any) -> Method:
    """A Retrieve method: 206 where items of a study or series can be left out (Table 10.4.3-1)."""
    return Method("GET", title, f"PS3.18 {section}", call, offers, success=success, **more)


def _instances(level: str) -> Method:
    return _retrieve(f"Retrieve {level}", "§10.4.1.1.1", Retrieve.instances, INSTANCES)


def _metadata(level: str) -> Method:
    return _retrieve(f"Retrieve {level} Metadata", "§10.4.1.1.2", Retrieve.metadata, METADATA, text=True, gzip=True)


def _bulkdata(title: str) -> Method:
    return _retrieve(title, "§10.4.1.1.5", Retrieve.bulkdata, BULKDATA)


def _pixeldata(level: str) -> Method:
    return _retrieve(f"Retrieve {level} Pixel Data", "§10.4.1.1.6", Retrieve.pixeldata, PIXELDATA)


def _rendered(level: str) -> Method:
    return _retrieve(f"Retrieve Rendered {level}", "§10.4.1.1.3", Retrieve.rendered, RENDERED, text=True,
                     params=RENDERED_PARAMETERS, parse=render_params)


def _thumbnail(level: str) -> Method:
    return _retrieve(f"Retrieve {level} Thumbnail", "§10.4.1.1.4", Retrieve.thumbnail, THUMBNAIL, "200", text=True,
                     params=THUMBNAIL_PARAMETERS, parse=thumbnail_params)


def _mpr(title: str) -> Method:
    return _retrieve(f"Retrieve Rendered MPR {title}", "§10.4.1.1.7", Retrieve.renderedmpr, VOLUME, "200",
                     text=True, params=VOLUME_PARAMETERS, parse=volume_params)


def _3d(title: str) -> Method:
    return _retrieve(f"Retrieve Rendered 3D {title}", "§10.4.1.1.8", Retrieve.rendered3d, VOLUME, "200",
                     text=True, params=VOLUME_PARAMETERS, parse=volume_params)


def _search(resource: str, title: str) -> Method:
    return Method("GET", title, "PS3.18 §10.6", Search.search_request, METADATA, SEARCH_PARAMETERS, text=True, gzip=True,
                  search=resource, success="200 204", failure="400 404 406 413", doc=MATCH_KEYS_DOC)


def _store(title: str) -> Method:
    return Method("POST", title, "PS3.18 §10.5", Ingest.store_request, STORE_RESPONSE,
                  accepts=('multipart/related; type="application/dicom"',), success="200 202",
                  failure="400 409 413 415")


def _delete(level: str) -> Method:
    # Not a PS3.18 transaction: what dcm4chee-arc and Orthanc do (docs/conformance.md, "Deleting and correcting").
    return Method("DELETE", f"Delete {level}", "not in PS3.18", Ingest.delete_request, success="204",
                  failure="400 404", doc="Removes the index rows, then the stored files; again after success: 204;"
                                         " retrieving it afterwards: 410 Gone (§8.5).")


CAPABILITIES_METHOD = Method(
    "OPTIONS", "Retrieve Capabilities", "PS3.18 §8.9, Annex H", None, CAPABILITIES, gzip=True, success="200",
    failure="400 403 404 406", doc="On the DICOMweb root: every resource; on a resource's path: that resource"
                                   " and its children, its template parameters fixed to the request's values.")


# -- The table -------------------------------------------------------------------------------------------------

RESOURCES: tuple[Resource, ...] = (
    Resource("capabilities", "/", (CAPABILITIES_METHOD,)),
    # Search (Table 10.6.1-1); POST /studies is Store (Table 10.5.1-1) on the same path.
    Resource("collection", "/studies", (_search("studies", "Search for Studies"), _store("Store Instances"))),
    Resource("collection", "/studies/{study}/series", (_search("study-series", "Search for Study Series"),)),
    Resource("collection", "/series", (_search("series", "Search for Series"),)),
    Resource("collection", "/studies/{study}/instances", (_search("study-instances", "Search for Study Instances"),)),
    Resource("collection", "/studies/{study}/series/{series}/instances",
             (_search("series-instances", "Search for Study Series Instances"),)),
    Resource("collection", "/instances", (_search("instances", "Search for Instances"),)),
    # Instance resources (Table 10.4.1-1), Store into a study (Table 10.5.1-1), and DELETE.
    Resource("uid", "/studies/{study}", (_instances("Study"), _store("Store Study Instances"), _delete("Study"))),
    # Table 10.4.1.8-1 spells the study-level Rendered 3D resource so (read as an erratum for
    # /studies/{study}/rendered3d, served too); examples B.32 and B.35 spell it rendered3D.
    Resource("rendered3d", "/studies/{study}/series/rendered3d", (_3d("Study (Table 10.4.1.8-1 path)"),),
             aliases=("/studies/{study}/series/rendered3D",)),
    Resource("uid", "/studies/{study}/series/{series}", (_instances("Series"), _delete("Series"))),
    Resource("uid", "/studies/{study}/series/{series}/instances/{instance}", (_instances("Instance"), _delete("Instance"))),
    # Metadata resources (Table 10.4.1-2)
    Resource("metadata", "/studies/{study}/metadata", (_metadata("Study"),)),
    Resource("metadata", "/studies/{study}/series/{series}/metadata", (_metadata("Series"),)),
    Resource("metadata", "/studies/{study}/series/{series}/instances/{instance}/metadata", (_metadata("Instance"),)),
    # Bulkdata resources (Table 10.4.1.5-1); every BulkDataURI of the metadata is the last one
    Resource("bulkdata", "/studies/{study}/bulkdata", (_bulkdata("Retrieve Study Bulkdata"),)),
    Resource("bulkdata", "/studies/{study}/series/{series}/bulkdata", (_bulkdata("Retrieve Series Bulkdata"),)),
    Resource("bulkdata", "/studies/{study}/series/{series}/instances/{instance}/bulkdata",
             (_bulkdata("Retrieve Instance Bulkdata"),)),
    Resource("bulkdata", "/studies/{study}/series/{series}/instances/{instance}/bulkdata/{path:path}",
             (_bulkdata("Retrieve Bulkdata"),)),
    # Pixel Data resources (Table 10.4.1.6-1), frames among them
    Resource("pixeldata", "/studies/{study}/pixeldata", (_pixeldata("Study"),)),
    Resource("pixeldata", "/studies/{study}/series/{series}/pixeldata", (_pixeldata("Series"),)),
    Resource("pixeldata", "/studies/{study}/series/{series}/instances/{instance}/pixeldata", (_pixeldata("Instance"),)),
    Resource("frames", "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
             (_retrieve("Retrieve Frames", "§10.4.1.1.6", Retrieve.frames, FRAMES),)),
    # Rendered resources (Table 10.4.1-3)
    Resource("rendered", "/studies/{study}/rendered", (_rendered("Study"),)),
    Resource("rendered", "/studies/{study}/series/{series}/rendered", (_rendered("Series"),)),
    Resource("rendered", "/studies/{study}/series/{series}/instances/{instance}/rendered", (_rendered("Instance"),)),
    Resource("rendered", "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
             (_rendered("Frames"),)),
    # Thumbnail resources (Table 10.4.1-4)
    Resource("thumbnail", "/studies/{study}/thumbnail", (_thumbnail("Study"),)),
    Resource("thumbnail", "/studies/{study}/series/{series}/thumbnail", (_thumbnail("Series"),)),
    Resource("thumbnail", "/studies/{study}/series/{series}/instances/{instance}/thumbnail", (_thumbnail("Instance"),)),
    Resource("thumbnail", "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/thumbnail",
             (_thumbnail("Frames"),)),
    # Rendered MPR and Rendered 3D Volume resources (Tables 10.4.1.7-1 and 10.4.1.8-1); the standard's
    # examples (B.32, B.35) spell them renderedMPR and rendered3D: aliases.
    Resource("renderedmpr", "/studies/{study}/renderedmpr", (_mpr("Study"),), aliases=("/studies/{study}/renderedMPR",)),
    Resource("rendered3d", "/studies/{study}/rendered3d", (_3d("Study"),), aliases=("/studies/{study}/rendered3D",)),
    Resource("renderedmpr", "/studies/{study}/series/{series}/renderedmpr", (_mpr("Series"),),
             aliases=("/studies/{study}/series/{series}/renderedMPR",)),
    Resource("rendered3d", "/studies/{study}/series/{series}/rendered3d", (_3d("Series"),),
             aliases=("/studies/{study}/series/{series}/rendered3D",)),
    Resource("renderedmpr", "/studies/{study}/series/{series}/instances/{instance}/renderedmpr", (_mpr("Instance"),),
             aliases=("/studies/{study}/series/{series}/instances/{instance}/renderedMPR",)),
    Resource("rendered3d", "/studies/{study}/series/{series}/instances/{instance}/rendered3d", (_3d("Instance"),),
             aliases=("/studies/{study}/series/{series}/instances/{instance}/rendered3D",)),
    Resource("renderedmpr", "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/renderedmpr",
             (_mpr("Frames"),), aliases=("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/renderedMPR",)),
    Resource("rendered3d", "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered3d",
             (_3d("Frames"),), aliases=("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered3D",)),
)


def routed() -> Iterator[tuple[str, Resource, bool]]:
    """Every path the server routes, in routing order: (path, its row, whether it is an alias)."""
    for resource in RESOURCES:
        if resource.kind == "capabilities":
            continue  # OPTIONS answers on the root and on every path (web/capabilities.py)
        yield resource.path, resource, False
        for alias in resource.aliases:
            yield alias, resource, True


def method_of(resource: Resource, verb: str, alias: bool = False) -> Method | None:
    """The row's method for ``verb`` (an alias's title says it is one: titles name methods uniquely)."""
    for method in resource.methods:
        if method.verb == verb:
            return replace(method, title=method.title + " (alias)") if alias else method
    return None
