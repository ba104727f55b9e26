"""Tests for dicomweb_origin.web.viewer: serving a viewer's dist folder beside the DICOMweb root.

A tiny fake dist folder stands in for OHIF; requests go through the real ASGI app (httpx ASGITransport).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from dicomweb_origin.app import build_app
from dicomweb_origin.settings import Settings
from dicomweb_origin.web.viewer import app_config

INDEX = b"<!doctype html><script src=\"/app-config.js\"></script><div id=root></div>"
WASM = b"\x00asm\x01\x00\x00\x00"
ISOLATION = {
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-embedder-policy": "require-corp",
    "cross-origin-resource-policy": "same-origin",
}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dist")
    (root / "index.html").write_bytes(INDEX)
    (root / "app-config.js").write_text("window.config = { fetched: true };")  # must never be served
    (root / "app.bundle.0123abcd.js").write_text("console.log('ohif');")
    (root / "app.bundle.0123abcd01234567.js").write_text("console.log('hashed');")
    (root / "0ddf166f7a343eda.wasm").write_bytes(WASM)
    (root / "1602.css").write_text("body{}")
    (root / "a34f9d1faa5f3315.woff2").write_bytes(b"wOF2")
    (root / "assets").mkdir()
    (root / "assets" / "icon.svg").write_text("<svg/>")
    return root


def get(app: object, *requests: tuple[str, str] | str, headers: dict[str, str] | None = None) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            out = []
            for request in requests:
                method, url = request if isinstance(request, tuple) else ("GET", request)
                out.append(await client.request(method, url, headers=headers))
            return out

    return asyncio.run(run())


@pytest.fixture(scope="module")
def app(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> object:
    return build_app(Settings(data_dir=tmp_path_factory.mktemp("data")), viewer_dir=dist)


@pytest.mark.parametrize("path", ["/", "/viewer", "/viewer/dicomweb", "/segmentation", "/local/1.2.840.10008.1"])
def test_unknown_routes_get_the_app_shell(app: object, path: str) -> None:
    (response,) = get(app, path + "?StudyInstanceUIDs=1.2.3")
    assert response.status_code == 200
    assert response.content == INDEX
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(("path", "media_type", "body"), [
    ("/0ddf166f7a343eda.wasm", "application/wasm", WASM),
    ("/app.bundle.0123abcd.js", "text/javascript; charset=utf-8", b"console.log('ohif');"),
    ("/1602.css", "text/css; charset=utf-8", b"body{}"),
    ("/a34f9d1faa5f3315.woff2", "font/woff2", b"wOF2"),
    ("/assets/icon.svg", "image/svg+xml", b"<svg/>"),
])
def test_files_are_served_with_their_media_type(app: object, path: str, media_type: str, body: bytes) -> None:
    (response,) = get(app, path)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.content == body
    assert response.headers["etag"]


@pytest.mark.parametrize(("path", "cache_control"), [
    ("/0ddf166f7a343eda.wasm", "public, max-age=31536000, immutable"),
    ("/app.bundle.0123abcd01234567.js", "public, max-age=31536000, immutable"),
    ("/app.bundle.0123abcd.js", "no-cache"),
    ("/1602.css", "no-cache"),
    ("/index.html", "no-cache"),
])
def test_content_hashed_files_are_immutable_others_revalidated(app: object, path: str, cache_control: str) -> None:
    (response,) = get(app, path)
    assert response.status_code == 200
    assert response.headers["cache-control"] == cache_control


@pytest.mark.parametrize("path", ["/", "/viewer", "/0ddf166f7a343eda.wasm", "/app-config.js", "/missing.js"])
def test_viewer_responses_make_the_page_cross_origin_isolated(app: object, path: str) -> None:
    (response,) = get(app, path)
    for name, value in ISOLATION.items():
        assert response.headers[name] == value


@pytest.mark.parametrize("path", ["/missing.js", "/assets/missing.png", "/nope.wasm", "/../../etc/passwd.txt"])
def test_missing_files_are_404_not_the_app_shell(app: object, path: str) -> None:
    (response,) = get(app, path)
    assert response.status_code == 404
    assert response.content != INDEX


def test_path_traversal_cannot_leave_the_folder(app: object) -> None:
    for response in get(app, "/..%2f..%2fetc%2fpasswd", "/%2e%2e/%2e%2e/etc/passwd", "/assets/../../index.html"):
        assert b"root:" not in response.content
        assert response.status_code in (200, 404)


def test_app_config_is_generated_not_the_fetched_file(app: object) -> None:
    (response,) = get(app, "/app-config.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "no-cache"
    text = response.text
    assert "fetched" not in text
    assert "window.location.origin + \"/dicomweb\"" in text
    assert "@ohif/extension-default.dataSourcesModule.dicomweb" in text
    for option in ('"qidoSupportsIncludeField": true', '"imageRendering": "wadors"', '"supportsFuzzyMatching": true',
                   '"omitQuotationForMultipartRequest": true', '"bulkDataURI": {"enabled": true}'):
        assert option in text


def test_app_config_uses_the_public_url_when_set() -> None:
    text = app_config(Settings(public_url="https://pacs.example/dicomweb/"))
    assert 'var root = "https://pacs.example/dicomweb";' in text
    assert "window.location.origin" not in text


def test_dicomweb_root_is_not_shadowed_by_the_viewer(app: object) -> None:
    responses = get(app, "/dicomweb", "/dicomweb/", "/dicomweb/no-such-resource",
                    "/dicomweb/studies/1.2.3/series/4.5.6/metadata")
    home = responses[0]  # the server's own page (version, counts, links), since / is the viewer's
    assert home.status_code == 200 and "<h1>dicomweb-origin" in home.text
    for response in responses:
        assert response.content != INDEX
        assert "cross-origin-embedder-policy" not in response.headers  # answered by the server, not the viewer
    for response in responses[1:]:
        assert response.status_code == 404


def test_head_and_conditional_requests(app: object) -> None:
    (head, full) = get(app, ("HEAD", "/0ddf166f7a343eda.wasm"), "/0ddf166f7a343eda.wasm")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == "application/wasm"
    (again,) = get(app, "/0ddf166f7a343eda.wasm", headers={"If-None-Match": full.headers["etag"]})
    assert again.status_code == 304


def test_only_get_and_head(app: object) -> None:
    (response,) = get(app, ("POST", "/viewer"))
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_without_a_viewer_nothing_is_served_at_root(tmp_path: Path) -> None:
    app = build_app(Settings(data_dir=tmp_path))
    (response,) = get(app, "/viewer")
    assert response.status_code == 404


def test_a_folder_without_index_html_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="index.html"):
        build_app(Settings(data_dir=tmp_path / "data"), viewer_dir=tmp_path)


def test_app_config_lets_the_page_pick_ohifs_thumbnail_rendering() -> None:
    """`?thumbnailRendering=` picks one of OHIF's own strategies; 'wadors' stays the default, anything else is ignored.

    (tests/e2e_ohif runs the generated script in OHIF with 'thumbnail' and 'rendered'.)
    """
    text = app_config(Settings())
    assert '"thumbnailRendering": "wadors"' in text
    assert "new URLSearchParams(window.location.search).get('thumbnailRendering')" in text
    assert '["wadors", "thumbnail", "rendered", "thumbnailDirect"].indexOf(thumbnails) >= 0' in text
