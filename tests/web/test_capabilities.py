"""Retrieve Capabilities (PS3.18 §8.9, Annex H) through the real ASGI application.

The expected resources are read from the application's own route table, so a route added without
a description in ``web/capabilities.py`` fails here.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from dicomweb_origin import search as search_module
from dicomweb_origin.app import build_app
from dicomweb_origin.model.media import TRANSFER_SYNTAXES
from dicomweb_origin.settings import Settings
from dicomweb_origin.web import capabilities, resources
from tests.support.archive import LoadedArchive
from tests.support.http import BASE_URL, ROOT
from tests.support.reference import Uids, uids

pytestmark = pytest.mark.anyio

W = "{http://wadl.dev.java.net/2009/02}"
WADL = "application/vnd.sun.wadl+xml"
ORIGIN = "http://viewer.example"


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)


@pytest.fixture
async def bare(tmp_path: Path) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    app = build_app(Settings(data_dir=tmp_path / "data"))
    async with _client(app) as client:
        yield app, client


@pytest.fixture
async def cors(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(build_app(Settings(data_dir=tmp_path / "data", cors_origins=(ORIGIN,)))) as client:
        yield client


def routed(app: Starlette) -> dict[str, set[str]]:
    """Path template (``{name}`` form, relative to the root) -> methods, from the app's route table."""
    mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == ROOT)
    result: dict[str, set[str]] = {}
    for route in mount.routes:
        assert isinstance(route, Route)
        if route.methods == {"OPTIONS"}:
            continue  # the capabilities route itself (Annex H: WADL does not describe itself)
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path).strip("/")
        result.setdefault(path, set()).update(route.methods or ())
    return result


def described(element: ET.Element, prefix: str = "") -> dict[str, tuple[ET.Element, set[str]]]:
    """Full resource path -> (resource element, methods) for every resource of a WADL tree."""
    result: dict[str, tuple[ET.Element, set[str]]] = {}
    for resource in element.findall(f"{W}resource"):
        path = f"{prefix}/{resource.get('path')}".strip("/")
        result[path] = (resource, {m.get("name", "") for m in resource.findall(f"{W}method")})
        result.update(described(resource, path))
    return result


def parse(response: httpx.Response) -> ET.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == WADL
    root = ET.fromstring(response.content)
    assert root.tag == f"{W}application"
    assert len(root.findall(f"{W}resources")) == 1  # Annex H: one resources element
    return root


def sample(template: str, u: Any) -> str:
    values = {"study": u.study, "series": u.series, "instance": u.instance, "frames": "1", "path": "00431029"}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)


async def test_root_describes_every_routed_resource(bare: tuple[Starlette, httpx.AsyncClient]) -> None:
    app, client = bare
    for path in (ROOT, ROOT + "/"):
        response = await client.options(path)
        root = parse(response)
        assert response.headers["allow"] == "OPTIONS"
        resources = root.find(f"{W}resources")
        assert resources is not None and resources.get("base") == f"{BASE_URL}{ROOT}/"
        tree = described(resources)
        assert {p: methods for p, (_, methods) in tree.items() if methods} == routed(app)
        ids = [m.get("id") for m in root.iter(f"{W}method")]
        assert None not in ids and len(ids) == len(set(ids))  # xsd:ID: unique
        for resource_path, (resource, _methods) in tree.items():
            for name in re.findall(r"\{(\w+)\}", resource.get("path", "")):
                param = resource.find(f"{W}param[@name='{name}']")
                assert param is not None and param.get("style") == "template", (resource_path, name)
            for method in resource.findall(f"{W}method"):
                doc = method.find(f"{W}doc")
                assert doc is not None and doc.get("title"), (resource_path, method.get("name"))
                if method.get("name") == "HEAD":
                    continue
                success = method.find(f"{W}response")
                if method.get("name") == "DELETE":  # 204 No Content: nothing to represent
                    assert success is not None and success.get("status") == "204"
                    assert not success.findall(f"{W}representation")
                    continue
                assert success is not None and success.get("status", "").startswith("200")
                types = [r.get("mediaType") for r in success.findall(f"{W}representation")]
                assert types, f"{method.get('name')} {resource_path} has no representation"
                accept = method.find(f"{W}request/{W}param[@name='Accept']")
                if method.get("name") == "GET":
                    assert accept is not None and accept.get("style") == "header"
                    assert accept.get("default") == types[0]
                    options = [o.get("value") for o in accept.findall(f"{W}option")]
                    assert options[0] == types[0]
                    assert None not in options and None not in types, resource_path
                    assert all(any(o is not None and t is not None and o.startswith(t) for o in options)
                               for t in types), resource_path


async def test_every_resource_path_answers_its_subtree_and_allow(bare: tuple[Starlette, httpx.AsyncClient]) -> None:
    app, client = bare
    u = uids("CT_small")
    for template, methods in routed(app).items():
        response = await client.options(f"{ROOT}/{sample(template, u)}")
        root = parse(response)
        allow = [m.strip() for m in response.headers["allow"].split(",")]
        assert set(allow) == methods | {"OPTIONS"} and len(allow) == len(set(allow)), template
        resources = root.find(f"{W}resources")
        assert resources is not None
        top = resources.findall(f"{W}resource")
        assert [r.get("path") for r in top] == [template]
        for param in top[0].findall(f"{W}param[@style='template']"):
            fixed = param.get("fixed")
            assert fixed and fixed in sample(template, u), template
        tree = described(resources)
        children = {p for p in routed(app) if p == template or p.startswith(template + "/")}
        assert {p for p, (_, m) in tree.items() if m} == children


async def test_routes_are_read_at_request_time(bare: tuple[Starlette, httpx.AsyncClient]) -> None:
    """A route the description does not know is still listed, with its methods but no description."""
    app, client = bare
    mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == ROOT)

    async def unknown(request: Any) -> Any:
        raise AssertionError("not called")

    mount.routes.insert(0, Route("/studies/{study}/annotations", unknown, methods=["GET"]))
    response = await client.options(f"{ROOT}/studies/1.2.3/annotations")
    assert response.headers["allow"] == "GET, HEAD, OPTIONS"
    resources = parse(response).find(f"{W}resources")
    assert resources is not None
    [(resource, methods)] = described(resources).values()
    assert methods == {"GET", "HEAD"} and resource.find(f"{W}method/{W}response") is None


async def test_json_representation_is_the_same_tree(bare: tuple[Starlette, httpx.AsyncClient]) -> None:
    app, client = bare
    response = await client.options(ROOT + "/", headers={"Accept": "application/json"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    document = orjson.loads(response.content)

    def walk(resources: list[dict[str, Any]], prefix: str = "") -> dict[str, set[str]]:
        result: dict[str, set[str]] = {}
        for resource in resources:
            path = f"{prefix}/{resource['path']}".strip("/")
            if resource.get("method"):
                result[path] = {m["name"] for m in resource["method"]}
            result.update(walk(resource.get("resource", []), path))
        return result

    [resources] = document["application"]["resources"]
    assert resources["base"] == f"{BASE_URL}{ROOT}/"
    assert walk(resources["resource"]) == routed(app)


async def test_negotiation_and_conditional_request(bare: tuple[Starlette, httpx.AsyncClient]) -> None:
    _, client = bare
    request = client.build_request("OPTIONS", ROOT)
    del request.headers["accept"]
    parse(await client.send(request))  # no Accept: the default representation
    parse(await client.options(ROOT, headers={"Accept": "application/json;q=0.5, application/vnd.sun.wadl+xml"}))
    for accept in ("application/dicom+xml", 'multipart/related; type="application/dicom+xml"', "image/png"):
        response = await client.options(ROOT, headers={"Accept": accept})
        assert response.status_code == 406, accept
    first = await client.options(ROOT)
    etag = first.headers["etag"]
    again = await client.options(ROOT, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag and not again.content


@pytest.mark.parametrize("path", ["studies/abc", "studies/1.2.3/series/1..2", f"studies/1.2/series/3/instances/{'9' * 65}"])
async def test_a_malformed_uid_is_400_for_options_too(bare: tuple[Starlette, httpx.AsyncClient], path: str) -> None:
    """The resource's own methods answer 400 for a malformed UID; describing it would be odd."""
    _, client = bare
    response = await client.options(f"{ROOT}/{path}")
    assert response.status_code == 400
    assert "UID" in response.text


async def test_unknown_paths_are_404(bare: tuple[Starlette, httpx.AsyncClient]) -> None:
    _, client = bare
    for path in ("nothing", "studies/1.2.3/nothing", "studies/1.2.3/series/4.5/instances/6.7/frames",
                 "studies/1.2.3/bulkdata/00431029"):
        response = await client.options(f"{ROOT}/{path}")
        assert response.status_code == 404, path
    # The OPTIONS route is invisible to other methods: an unknown path stays 404, not 405.
    for path in ("nothing", "studies/1.2.3/series/4.5/instances/6.7/frames/"):
        assert (await client.get(f"{ROOT}/{path}")).status_code == 404, path
    assert (await client.get(f"{ROOT}/studies", headers={"Accept": "application/dicom+json"})).status_code == 200


async def test_cors_preflight_is_still_answered_by_the_middleware(cors: httpx.AsyncClient) -> None:
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "accept"}
    for path in (f"{ROOT}/studies", f"{ROOT}/studies/1.2.3/metadata"):
        response = await cors.options(path, headers=preflight)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert "GET" in response.headers["access-control-allow-methods"]
        assert not response.headers.get("content-type", "").startswith(WADL)
    # Without Access-Control-Request-Method it is not a pre-flight: the capabilities, with CORS headers.
    response = await cors.options(f"{ROOT}/studies", headers={"Origin": ORIGIN})
    parse(response)
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["allow"] == "GET, HEAD, POST, OPTIONS"


async def test_a_preflight_without_cors_is_refused_not_described(bare: tuple[Starlette, httpx.AsyncClient]) -> None:
    """No --cors-origin: a pre-flight asks for what no origin may do; it gets a short 403, not the 160 KB WADL."""
    _, client = bare
    for path in (ROOT, f"{ROOT}/studies", f"{ROOT}/studies/1.2.3/metadata"):
        response = await client.options(path, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
        assert response.status_code == 403, path
        assert response.text == "403 cross-origin requests are not allowed by this server (it has no --cors-origin)\n"
        assert "access-control-allow-origin" not in response.headers
    # An OPTIONS with Origin alone is a Capabilities request (e.g. from a same-origin page).
    parse(await client.options(f"{ROOT}/studies", headers={"Origin": ORIGIN}))


async def test_advertised_types_are_served(client: httpx.AsyncClient, archive: LoadedArchive) -> None:
    """Every GET resource answers its advertised default; metadata and search answer every type."""
    u = uids("CT_small")
    root = parse(await client.options(""))  # the client's base URL is the DICOMweb root
    resources = root.find(f"{W}resources")
    assert resources is not None
    for template, (resource, _) in described(resources).items():
        get = resource.find(f"{W}method[@name='GET']")
        if get is None:
            continue
        success = get.find(f"{W}response")
        assert success is not None
        types = [r.get("mediaType", "") for r in success.findall(f"{W}representation")]
        section = get.find(f"{W}doc")
        assert section is not None
        everything = template.endswith("metadata") or "§10.6" in (section.text or "")
        url = sample(template, u)
        if template.lower().endswith(("renderedmpr", "rendered3d")):  # a volume: frames of the demo's Enhanced CT
            url = sample(template, _enhanced_ct(archive)).replace("/frames/1/", "/frames/1,2,3/")
        for media_type in types if everything else types[:1]:
            response = await client.get(url, headers={"Accept": media_type})
            assert response.status_code in (200, 204), (template, media_type, response.text[:200])


def _enhanced_ct(archive: LoadedArchive) -> Uids:
    """The demo's Enhanced CT multi-frame instance: one volume that every Rendered MPR / 3D level holds."""
    for result in archive.demo.values():
        record = result.record
        if record is not None and record.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2.1":
            return Uids(record.study_uid, record.series_uid, record.instance_uid, record.sop_class_uid)
    raise AssertionError("the demo has no Enhanced CT")


def test_tables_follow_the_server() -> None:
    advertised = {name for name, *_ in resources.SEARCH_PARAMETERS}
    assert advertised == search_module._RESERVED - {"accept", "charset", "emptyvaluematching"}
    web = {ts.uid for ts in TRANSFER_SYNTAXES.values() if ts.web}
    options = capabilities.describe(["studies", "{study}"], "GET")
    assert options is not None
    syntaxes = {m.group(1) for o in options.params[0].options if (m := re.search(r"transfer-syntax=([\d.]+)$", o))}
    assert syntaxes == web
