"""The resource table (``web/resources.py``) is the one description of every resource, and it is true.

The routes, the Capabilities description and the documents are made from it (checked here and in
test_capabilities.py / test_conformance.py); what the use cases actually answer, over real instances of every
category through the real HTTP stack, is held against what the table advertises.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.routing import Mount, Route

from dicomweb_origin import conformance
from dicomweb_origin.errors import BadRequest
from dicomweb_origin.model.media import TRANSFER_SYNTAXES, default_syntax_for
from dicomweb_origin.retrieve import Retrieve
from dicomweb_origin.search import RESOURCES as SEARCH_RESOURCES
from dicomweb_origin.web import resources
from dicomweb_origin.web.resources import RESOURCES, Method, Representation, Resource, routed
from tests.support.archive import LoadedArchive
from tests.support.http import ROOT, media_params, parse_multipart
from tests.support.reference import uids

REPO = Path(__file__).resolve().parents[2]


# -- The table and what is made from it ---------------------------------------------------------------------


def test_the_table_imports_without_starlette() -> None:
    """Framework-free: the documents are generated from it without the web framework."""
    code = ("import sys; sys.modules['starlette'] = None; import dicomweb_origin.web.resources as r;"
            " import dicomweb_origin.conformance; print(len(r.RESOURCES))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(RESOURCES)


def test_every_path_is_written_out_in_the_table() -> None:
    """A newcomer finds any resource by grepping its path."""
    source = inspect.getsource(resources)
    for path, _, _ in routed():
        assert f'"{path}"' in source, path
    assert '"/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/renderedmpr"' in source


def test_the_routes_are_the_table(archive: LoadedArchive) -> None:
    """Every path of the table is routed, in the table's order, with its methods and kind; nothing else is."""
    mount = next(r for r in archive.app.routes if isinstance(r, Mount) and r.path == ROOT)
    routes = [r for r in mount.routes if isinstance(r, Route) and r.methods != {"OPTIONS"}]
    expected = [(path, {m.verb for m in row.methods} | ({"HEAD"} if any(m.verb == "GET" for m in row.methods)
                                                          else set()), row.kind) for path, row, _ in routed()]
    assert [(r.path, set(r.methods or ()), getattr(r, "resource", None)) for r in routes] == expected


def test_every_method_names_a_use_case_that_exists() -> None:
    for resource in RESOURCES:
        for method in resource.methods:
            if method.verb == "OPTIONS":
                assert method.call is None  # answered by the web layer from this very table
                continue
            assert method.call is not None and inspect.iscoroutinefunction(method.call), method.title
            if method.transaction == "search":
                assert method.search in SEARCH_RESOURCES, method.search


def test_every_resource_of_the_use_case_has_a_row() -> None:
    """Each public coroutine of Retrieve that answers a request is some row's use case."""
    called = {m.call for r in RESOURCES for m in r.methods}
    answering = {f for name, f in vars(Retrieve).items()
                 if inspect.iscoroutinefunction(f) and not name.startswith("_")
                 and list(inspect.signature(f).parameters) == ["self", "request"]}
    assert answering <= called, answering - called


def test_titles_name_methods_uniquely() -> None:
    """They become the method ids of the Capabilities description (xsd:ID)."""
    titles = [getattr(resources.method_of(row, m.verb, alias), "title", None)
              for _, row, alias in routed() for m in row.methods]
    assert len(titles) == len(set(titles))


def _parameters() -> Iterator[tuple[str, Method]]:
    for resource in RESOURCES:
        for method in resource.methods:
            if method.parse is not None:
                yield from ((p.name, method) for p in method.params)


@pytest.mark.parametrize(("name", "method"), list(dict.fromkeys(_parameters())),
                         ids=lambda v: v if isinstance(v, str) else v.title)
def test_every_documented_parameter_is_the_parsers(name: str, method: Method) -> None:
    """A malformed value of each parameter the table documents is a 400 naming it (§8.3.5): the parser reads it."""
    assert method.parse is not None
    with pytest.raises(BadRequest, match=name):
        method.parse(_Query({name: ["!"]}))


class _Query:
    def __init__(self, values: dict[str, list[str]]) -> None:
        self.values = values

    def getlist(self, key: str) -> list[str]:
        return self.values.get(key, [])


def test_the_search_parameters_are_the_use_cases() -> None:
    from dicomweb_origin import search

    documented = {p.name for p in resources.SEARCH_PARAMETERS}
    assert documented == search._RESERVED - {"accept", "charset", "emptyvaluematching"}


def test_the_readme_resource_table_is_current() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert conformance.render(readme) == readme, "run `python -m dicomweb_origin.conformance` to regenerate README.md"
    assert "`/studies/{study}/series/{series}/renderedmpr`" in readme


# -- What the use cases produce, against what the table advertises --------------------------------------------

SAMPLES = ["CT_small", "emri_small_jpeg_2k_lossless", "JPEG2000", "SC_rgb_jpeg_dcmtk", "MR_small_RLE",
           "video_h264", "test_SR", "waveform_ecg"]
SHAPES = {"view": "", "animation": "?swivelrange=30&animationstepsize=15", "renderedvolumetricmetadata":
          "?renderedvolumetricmetadata=yes"}


def _accepts(method: Method, single: bool) -> list[str]:
    """What to ask each method for: each representation it offers, as stored, and the wildcards."""
    asked = ["*/*", "image/*", 'multipart/related; type="image/*"', "multipart/related", "application/*"]
    for offer in method.offers:
        if single or not offer.single:
            asked.append(offer.content_type)
            if offer.syntaxes:
                asked.append(f"{offer.content_type}; transfer-syntax=*")
    return list(dict.fromkeys(asked))


def _syntaxes(method: Method, media_type: str) -> set[str]:
    """The transfer syntaxes the table advertises for a media type: those named, and its default (§8.7.8.2)."""
    named = {s for r in method.offers if r.media_type == media_type for s in r.syntaxes}
    return named | {default_syntax_for(media_type) or ""} - {""}


def _check(method: Method, single: bool, response: httpx.Response) -> str:
    """Every media type and transfer syntax of an answer is advertised; returns what was answered."""
    answers = method.answers(single)
    media_type, params = media_params(response.headers["content-type"])
    if media_type == "multipart/related":
        assert params["type"] in {r.media_type for r in answers if r.multipart}, response.headers["content-type"]
        for part in parse_multipart(response):
            assert part.media_type in {r.media_type for r in answers if r.multipart}, part.headers
            if part.transfer_syntax is not None:
                assert part.transfer_syntax in _syntaxes(method, part.media_type), part.headers
        return f'multipart/related; type="{params["type"]}"'
    assert media_type in {r.media_type for r in answers if not r.multipart}, response.headers["content-type"]
    if "transfer-syntax" in params:
        assert params["transfer-syntax"] in _syntaxes(method, media_type), response.headers["content-type"]
    return media_type


def _targets(archive: LoadedArchive) -> Iterator[tuple[str, dict[str, str]]]:
    for name in SAMPLES:
        u = uids(name)
        record = archive.record(name)
        bulk = record.bulk[0].path if record.bulk else "00000000"
        yield name, {"study": u.study, "series": u.series, "instance": u.instance, "frames": "1", "path": bulk}
    for result in archive.demo.values():  # the demo's report as an Encapsulated PDF, and its Enhanced CT volume
        record = result.record
        if record is not None and record.sop_class_uid in ("1.2.840.10008.5.1.4.1.1.104.1",
                                                             "1.2.840.10008.5.1.4.1.1.2.1"):
            yield record.sop_class_uid, {"study": record.study_uid, "series": record.series_uid,
                                         "instance": record.instance_uid, "frames": "1,2,3", "path": "00000000"}


def _fill(template: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m.group(1)], template).lstrip("/")


def _get_rows() -> list[Resource]:
    return [r for r in RESOURCES if any(m.verb == "GET" and m.transaction == "retrieve" for m in r.methods)]


@pytest.mark.anyio
async def test_every_answer_is_advertised(client: httpx.AsyncClient, archive: LoadedArchive) -> None:
    """Ask each Retrieve resource of instances of every category for everything it offers (and wildcards):
    whatever comes back, bare or each part, is a media type and transfer syntax the table advertises."""
    produced: dict[str, set[str]] = {}
    for sample, values in _targets(archive):
        for row in _get_rows():
            method = next(m for m in row.methods if m.verb == "GET")
            if row.kind in ("renderedmpr", "rendered3d") and sample != "1.2.840.10008.5.1.4.1.1.2.1":
                continue  # a volume: the demo's Enhanced CT only
            url = _fill(row.path, values)
            shapes = SHAPES.values() if row.kind in ("renderedmpr", "rendered3d") else [""]
            for shape in shapes:
                for accept in _accepts(method, row.single):
                    response = await client.get(url + shape, headers={"Accept": accept})
                    assert response.status_code in (200, 206, 400, 404, 406), (url, accept, response.text[:300])
                    if response.status_code in (200, 206):
                        produced.setdefault(row.kind, set()).add(_check(method, row.single, response))
    # The categories the samples hold produced what the standard makes the defaults and more.
    assert 'multipart/related; type="application/dicom"' in produced["uid"]
    assert {"text/html", "application/pdf", "video/mp4", "image/gif", "image/jpeg"} <= produced["rendered"]
    assert {'multipart/related; type="video/mp4"', 'multipart/related; type="text/xml"'} <= produced["rendered"]
    assert {"application/dicom+json", "video/mp4", "image/gif"} <= produced["rendered3d"]


def test_a_representation_is_offered_once_per_wrapping() -> None:
    for resource in RESOURCES:
        for method in resource.methods:
            keys = [(r.media_type, r.multipart, r.alias) for r in method.offers]
            assert len(keys) == len(set(keys)), method.title


def test_advertised_transfer_syntaxes_are_known() -> None:
    for resource in RESOURCES:
        for method in resource.methods:
            for offer in method.offers:
                for syntax in offer.syntaxes:  # a DICOM instance in any; a bulk data type in its own
                    assert syntax == "*" or offer.media_type == "application/dicom" or (
                        TRANSFER_SYNTAXES[syntax].media_type == offer.media_type), (method.title, syntax)


def test_representation_content_type() -> None:
    assert Representation("image/jpeg", True).content_type == 'multipart/related; type="image/jpeg"'
    assert Representation("image/jpeg").content_type == "image/jpeg"
