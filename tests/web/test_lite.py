"""The built-in viewer's mount (web/lite.py) through the real ASGI app: files, config, headers, auth, links.

Its behaviour in a browser is tests/e2e_lite; here what the server answers for it, that the installed package
carries its files, and that the conformance statement names every request it makes.
"""

from __future__ import annotations

import asyncio
import fnmatch
import io
import re
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

from dicomweb_origin.app import build_app
from dicomweb_origin.cli import main as cli_main
from dicomweb_origin.demo import generate_demo
from dicomweb_origin.settings import Settings
from dicomweb_origin.web.lite import FILES
from tests.support import REPO


def get(app: object, *paths: str, headers: dict[str, str] | None = None,
        method: str = "GET") -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return [await client.request(method, path, headers=headers) for path in paths]

    return asyncio.run(run())


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> object:
    data = tmp_path_factory.mktemp("lite-data")
    application = build_app(Settings(data_dir=data))
    for path in generate_demo(tmp_path_factory.mktemp("lite-demo"), slices=2, size=32)[:3]:
        with open(path, "rb") as fp:
            application.state.archive.ingest.store(fp)
    return application


def test_the_page_its_modules_and_config(app: object) -> None:
    page, script, style, config = get(app, "/lite/", "/lite/app.js", "/lite/lite.css", "/lite/config.json")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="app.js">' in page.text
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    assert config.json() == {"root": "/dicomweb"}
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "img-src 'self' blob: data:" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-cache"  # a new version is picked up at once


def test_redirects_and_refusals(app: object) -> None:
    bare, missing, traversal = get(app, "/lite", "/lite/nothing.js", "/lite/%2e%2e/lite.py")
    assert bare.status_code == 308 and bare.headers["location"] == "/lite/"
    assert missing.status_code == 404 and traversal.status_code == 404
    (post,) = get(app, "/lite/", method="POST")
    assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"


def test_a_public_url_is_the_root_and_may_be_fetched(tmp_path: Path) -> None:
    app = build_app(Settings(data_dir=tmp_path, public_url="https://pacs.example/prefix/dicomweb/"))
    page, config = get(app, "/lite/", "/lite/config.json")
    assert config.json() == {"root": "https://pacs.example/prefix/dicomweb"}
    assert "connect-src 'self' https://pacs.example;" in page.headers["content-security-policy"]


def test_with_tokens_the_files_are_public_and_the_data_is_not(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    out = io.StringIO()
    stdout, sys.stdout = sys.stdout, out
    try:
        assert cli_main(["token", "add", "viewer", "--scopes", "dicomweb.read", "--tokens", str(tokens)]) == 0
    finally:
        sys.stdout = stdout
    app = build_app(Settings(data_dir=tmp_path / "data", tokens_file=tokens))
    page, script, config, studies, home = get(app, "/lite/", "/lite/api.js", "/lite/config.json",
                                              "/dicomweb/studies", "/")
    assert (page.status_code, script.status_code, config.status_code) == (200, 200, 200)
    assert studies.status_code == 401 and home.status_code == 401  # the home page lists studies
    (allowed,) = get(app, "/dicomweb/studies", headers={"Authorization": f"Bearer {out.getvalue().strip()}"})
    assert allowed.status_code == 200


def test_beside_an_ohif_viewer_at_the_root(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<!doctype html><title>OHIF</title>")
    app = build_app(Settings(data_dir=tmp_path / "data"), viewer_dir=dist)
    lite, bare, ohif = get(app, "/lite/", "/lite", "/viewer")
    assert "app.js" in lite.text and bare.status_code == 308 and "OHIF" in ohif.text


def test_the_home_page_links_the_viewer_and_each_study(app: object) -> None:
    (home,) = get(app, "/")
    studies = get(app, "/dicomweb/studies", headers={"Accept": "application/dicom+json"})[0].json()
    assert '<a href="/lite/">Viewer</a>' in home.text
    for study in studies:
        uid = study["0020000D"]["Value"][0]
        assert f'<a href="/lite/#/study/{uid}">Demo Phantom · 2024-01-15 · ' in home.text


def test_the_package_carries_every_file_of_the_viewer() -> None:
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "dicomweb_origin.web"]
    files = sorted(p.relative_to(FILES.parent).as_posix() for p in FILES.iterdir())
    assert files and all(any(fnmatch.fnmatch(f, pattern) for pattern in patterns) for f in files), files


def test_the_viewer_needs_nothing_from_elsewhere() -> None:
    """No build step and no download: plain modules that import only each other, no URL of another origin."""
    for path in FILES.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path.name
        for module in re.findall(r"from '([^']+)'", text):
            assert module.startswith("./") and (FILES / module).is_file(), (path.name, module)


def test_the_conformance_statement_names_what_the_viewer_asks_for() -> None:
    text = (REPO / "docs" / "conformance.md").read_text(encoding="utf-8")
    section = text.split("## The lite viewer", 1)[1].split("\n## ", 1)[0]
    sources = "".join(p.read_text(encoding="utf-8") for p in FILES.glob("*.js"))
    resources = set(re.findall(r"/(studies|series|instances|frames|thumbnail|rendered|renderedmpr|rendered3d|"
                               r"metadata)\b", sources))
    parameters = set(re.findall(r"\b(viewport|window|quality|annotation|mprslab|renderingmethod|viewpointposition|"
                                r"viewpointlookat|viewpointup|includefield|fuzzymatching|limit|PatientName)\b",
                                sources))
    for name in sorted(resources | parameters):
        assert name in section, f"the viewer asks for {name}; docs/conformance.md does not say so"
    for value in re.findall(r"'((?:average|maximum|minimum)_ip|volume_rendered)'", sources):
        assert value in section, value
