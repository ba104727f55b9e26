"""Generate the tables of the conformance statement and the README from the tables the server runs on.

``python -m dicomweb_origin.conformance`` rewrites the generated sections of ``docs/conformance.md`` and
``README.md`` (between ``<!-- BEGIN name -->`` and ``<!-- END name -->``); tests check that they are current.
The resource tables come from the resource table of the web layer (``web/resources.py``), the others from
the use cases' own tables.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .dicom import decoders, pixels, transcode
from .dicom.reader import NORMALIZED_SYNTAXES
from .model.media import TRANSFER_SYNTAXES
from .model.stored import PixelDescription
from .web.resources import RESOURCES, Method, Resource

_SAMPLES = {
    "8-bit grey": PixelDescription(64, 64, 1, 8, 8, 0, "MONOCHROME2"),
    "16-bit grey": PixelDescription(64, 64, 1, 16, 12, 1, "MONOCHROME2"),
    "8-bit RGB": PixelDescription(64, 64, 3, 8, 8, 0, "RGB"),
}


def transfer_syntax_table() -> str:
    lines = [
        "| Transfer syntax | UID | Bulk data media type | Lossy | Stored and served as is | Decoded | "
        + " | ".join(f"Encoded ({name})" for name in _SAMPLES) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(_SAMPLES),
    ]
    for ts in TRANSFER_SYNTAXES.values():
        stored = "no: re-encoded as Explicit VR LE at ingest" if ts.uid in NORMALIZED_SYNTAXES else "yes"
        decoded = "yes" if not ts.encapsulated or transcode.can_decode(ts.uid) else "no"
        encoded = [
            "yes" if ts.web and not ts.video and (not ts.encapsulated and ts.web or transcode.can_encode(ts.uid, p))
            else "no"
            for p in _SAMPLES.values()
        ]
        default = " (default)" if ts.media_default else ""
        lines.append(
            f"| {ts.name} | `{ts.uid}` | `{ts.media_type}`{default} | {'yes' if ts.lossy else 'no'} | {stored} | "
            f"{decoded} | " + " | ".join(encoded) + " |"
        )
    return "\n".join(lines)


def _decoder_name(uid: str, pi: str, lossy: bool) -> str:
    name = decoders.decoder_for(uid, pi, lossy)
    if name != decoders.PYDICOM:
        return decoders.DECODER_NAMES[name]
    plugins = decoders.pydicom_plugins(uid)
    return f"pydicom ({', '.join(plugins)})" if plugins else "pydicom"


def decoder_table() -> str:
    """Which library decodes which stored bitstream (``dicom.decoders.DECODERS``)."""
    lines = ["| Transfer syntax | Greyscale | Colour, reversible codestream | Colour, irreversible codestream |",
             "|---|---|---|---|"]
    for ts in TRANSFER_SYNTAXES.values():
        if not pixels.can_decode(ts.uid):
            continue
        grey = {_decoder_name(ts.uid, "MONOCHROME2", lossy) for lossy in (False, True)}
        cells = [" / ".join(sorted(grey)), _decoder_name(ts.uid, "YBR_RCT", False), _decoder_name(ts.uid, "YBR_ICT", True)]
        lines.append(f"| {ts.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rendered_types_table() -> str:
    """Which rendered media types each category of instance can become (Table 8.7.4-1), default first."""
    from .retrieve.rendered import CATEGORY_TYPES

    names = {"single-frame": "Single-frame image", "multi-frame": "Multi-frame image",
             "video": "Video (MPEG-2, H.264, HEVC)", "pdf": "Encapsulated PDF", "text": "Structured Report",
             "presentation": "Grayscale / Color Softcopy Presentation State (the images it references)"}
    lines = ["| Category | Rendered media types (first = what a wildcard gets) |", "|---|---|"]
    for kind, types in CATEGORY_TYPES.items():
        lines.append(f"| {names.get(kind, kind)} | " + ", ".join(f"`{t}`" for t in types) + " |")
    return "\n".join(lines)


def volume_table() -> str:
    """What the Rendered MPR / 3D resources serve and choose when the request does not say (§10.4.1.1.7-8)."""
    from .dicom.volumetric import PLANAR_MPR_VPS, VOLUMETRIC_STATES
    from .retrieve import volumes

    names = {"mpr": "`/renderedmpr`", "3d": "`/rendered3d`"}
    lines = ["| Resource | Default renderingmethod | Default orientation | Reformatting Operation Type |", "|---|---|---|---|"]
    for kind in ("mpr", "3d"):
        lines.append(f"| {names[kind]} | `{volumes.DEFAULT_METHOD[kind]}` | `{volumes.DEFAULT_ORIENTATION[kind]}` |"
                     f" `{volumes.OPERATION[kind]}`{' (`SLAB` with mprslab)' if kind == 'mpr' else ''} |")
    lines += ["", "| Request | Media types (first = the default) |", "|---|---|",
              "| a view | " + ", ".join(f"`{t}`" for t in volumes.STILL_TYPES) + " |",
              "| an animation (swivelrange, volumetriccurvepoint) | "
              + ", ".join(f"`{t}`" for t in volumes.ANIMATION_TYPES) + " (a still type: the first frame) |",
              "| renderedvolumetricmetadata=yes | " + ", ".join(f"`{t}`" for t in volumes.METADATA_TYPES) + " |",
              "", "| Volumetric Presentation State | SOP Class UID | Resources |", "|---|---|---|"]
    for uid, name in VOLUMETRIC_STATES.items():
        where = "`/renderedmpr`, `/rendered3d`" if uid in PLANAR_MPR_VPS else "`/rendered3d`"
        lines.append(f"| {name} | `{uid}` | {where} |")
    lines += ["", f"Animation defaults: step {volumes.DEFAULT_SWIVEL_STEP}° (swivel) or the finest voxel spacing rounded"
              f" up to whole mm (curve); rate {volumes.DEFAULT_RATE} steps per second; at most {volumes.MAX_FRAMES}"
              " frames."]
    return "\n".join(lines)



_NAMES = {"capabilities": "Capabilities", "collection": "Search for", "uid": "Study, Series, Instance",
          "metadata": "Metadata", "bulkdata": "Bulkdata", "pixeldata": "Pixel Data", "frames": "Frames",
          "rendered": "Rendered", "thumbnail": "Thumbnail", "renderedmpr": "Rendered MPR Volume",
          "rendered3d": "Rendered 3D Volume"}
_SEARCHED = {"study": "Studies", "series": "Series", "instance": "Instances"}  # Table 10.6.1-1, by result level


def _groups() -> dict[str, list[Resource]]:
    """The rows of the resource table by the resource they are at several levels (in the order of ``_NAMES``)."""
    from .search import RESOURCES as SEARCHES

    groups: dict[str, list[Resource]] = {}
    for resource in sorted(RESOURCES, key=lambda r: list(_NAMES).index(r.kind)):  # stable: table order within
        name = _NAMES[resource.kind]
        if resource.kind == "collection":
            name += " " + _SEARCHED[SEARCHES[resource.methods[0].search].level]
        groups.setdefault(name, []).append(resource)
    return groups


def _by_method(rows: list[Resource]) -> dict[str, tuple[Method, list[str]]]:
    """Each HTTP method of a resource: what it does (its first row's) and every path it is on, aliases included."""
    methods: dict[str, tuple[Method, list[str]]] = {}
    for row in rows:
        for method in row.methods:
            methods.setdefault(method.verb, (method, []))[1].extend((row.path, *row.aliases))
    return methods


def _answers(method: Method) -> str:
    shown = []
    for offer in method.offers:
        notes = [n for n, on in (("single item", offer.single), ("read as the default", offer.alias)) if on]
        shown.append(f"`{offer.content_type}`" + (f" ({', '.join(notes)})" if notes else ""))
    return ", ".join(dict.fromkeys(shown)) or "none"


def resource_table() -> str:
    """Every resource of ``web/resources.py``: paths, methods, the use case each calls, what it answers."""
    lines = ["| Resource | Method | Paths | Use case | Media types (first = default) | Query parameters |",
             "|---|---|---|---|---|---|"]
    for name, rows in _groups().items():
        for verb, (method, paths) in _by_method(rows).items():
            call = "the web layer" if method.call is None else f"`{method.call.__qualname__}`"
            params = ["accept", *(["charset"] if method.text else []), *(p.name for p in method.params)]
            lines.append(f"| {name} ({method.section.removeprefix('PS3.18 ')}) | {verb} |"
                         f" {'<br>'.join(f'`{p}`' for p in paths)} | {call} | {_answers(method)} |"
                         f" {', '.join(params) if verb == 'GET' else '-'} |")
            name = "″"  # the resource of the row above
    return "\n".join(lines)


def readme_resource_table() -> str:
    """The README's short form: paths, methods and the default media type (the conformance statement has all)."""
    lines = ["| Resource | Paths | Methods | Default media type |", "|---|---|---|---|"]
    for name, rows in _groups().items():
        methods = _by_method(rows)
        answered = [method for verb, (method, _) in methods.items() if verb in ("GET", "OPTIONS")]
        defaults = dict.fromkeys(m.answers(single)[0].content_type for m in answered for single in (False, True))
        default = " (a single item: ".join(f"`{d}`" for d in defaults) + ")" * (len(defaults) - 1)
        paths = dict.fromkeys(p for _, paths in methods.values() for p in paths)
        lines.append(f"| {name} | {'<br>'.join(f'`{p}`' for p in paths)} | {', '.join(methods)} | {default} |")
    return "\n".join(lines)


def product_table() -> str:
    """PS3.2 §A.1-style identification: the product, its version and its implementation model."""
    from importlib import metadata

    try:
        version = metadata.version("dicomweb-origin")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return "\n".join([
        "| Product | Version | Implementation model |",
        "|---|---|---|",
        f"| dicomweb-origin | {version} | one process: an ASGI application (Starlette on uvicorn) over an embedded"
        " archive (an SQLite index and a folder of Part 10 blobs, or the backends of `storage/`); two bounded"
        " lanes of threads do all CPU work: heavy (decoding, transcoding, rendering, volumes) and light"
        " (metadata), so light requests never queue behind heavy ones |",
    ])


def sop_class_table() -> str:
    """What each kind of SOP class gets (Store any, Retrieve any; Rendered by category, Table 8.7.2-1)."""
    from pydicom.uid import UID

    from .retrieve.rendered import _PRESENTATION_STATES, _SR_PREFIX, CATEGORY_TYPES, ENCAPSULATED_PDF

    def types(kind: str) -> str:
        return ", ".join(f"`{t}`" for t in CATEGORY_TYPES[kind])

    every = "Instances, Metadata, Bulk Data"
    pixels_too = every + ", Pixel Data, Frames"
    rows = [
        ("Any Storage SOP class (stored as sent: no SOP class is refused)", "any", every,
         "none (Thumbnail: an icon of the kind of instance)"),
        ("Any image SOP class (an instance with Pixel Data), one frame", "any", pixels_too, types("single-frame")),
        ("Any image SOP class, several frames", "any", pixels_too, types("multi-frame")),
        ("Video (MPEG-2, H.264 or HEVC transfer syntaxes)", "any", every + ", Pixel Data (whole)", types("video")),
        (UID(ENCAPSULATED_PDF).name, f"`{ENCAPSULATED_PDF}`", every, types("pdf")),
        ("Structured Report Storage SOP classes", f"`{_SR_PREFIX}*`", every, types("text")),
        *((UID(uid).name, f"`{uid}`", every, types("presentation") + " (the images it references)")
          for uid in sorted(_PRESENTATION_STATES)),
    ]
    lines = ["| SOP class | UID | Store (STOW-RS) | Retrieve resources | Rendered / Thumbnail media types |",
             "|---|---|---|---|---|"]
    lines += [f"| {name} | {uid} | yes | {retrieve} | {rendered} |" for name, uid, retrieve, rendered in rows]
    return "\n".join(lines)


def scope_table() -> str:
    """The scope each HTTP method needs (``auth.REQUIRED_SCOPE``)."""
    from .auth import REQUIRED_SCOPE

    lines = ["| Method | Scope needed |", "|---|---|"]
    lines += [f"| {method} | `{scope}` |" for method, scope in REQUIRED_SCOPE.items()]
    return "\n".join(lines)


GENERATED = {"product": product_table, "volumes": volume_table, "sop-classes": sop_class_table,
             "rendered-types": rendered_types_table, "transfer-syntaxes": transfer_syntax_table,
             "decoders": decoder_table, "scopes": scope_table, "resources": resource_table,
             "readme-resources": readme_resource_table}


def render(text: str) -> str:
    for name, make in GENERATED.items():
        pattern = re.compile(rf"(<!-- BEGIN {name} -->\n)(?:.*?\n)?(<!-- END {name} -->)", re.S)
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + "\n" + m.group(2), text)  # type: ignore[misc]
    return text


def main(argv: list[str] | None = None) -> int:
    for path in map(Path, argv or ["docs/conformance.md", "README.md"]):
        current = path.read_text(encoding="utf-8")
        updated = render(current)
        if updated != current:
            path.write_text(updated, encoding="utf-8")
            print(f"updated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
