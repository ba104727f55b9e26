"""Rendered and Thumbnail URLs in plain `<img>` elements of headless Chromium, against a real server process.

A `file://` page holds one `<img>` per URL (instance, frame, series and study renderings and thumbnails, an animated
GIF of a multi-frame instance, with and without `viewport` and `window`). The browser sends its own image Accept
header (`image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8`): `image/*` matches each category's
first type (§8.7.7: JPEG for a still, GIF for a multi-frame instance), and `<img>` needs no CORS. Every image must
decode (`naturalWidth > 0`) at the size the request implies. Same playwright setup as tests/e2e_ohif (Debian's
Chromium, never `playwright install`); a screenshot goes to `artifacts/browser/`.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pydicom
import pytest

from tests.support.server import LiveServer, demo_server

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "browser"
SLICES, SIZE = 4, 64  # demo CT slices (and enhanced frames), matrix size
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [  # as in tests/e2e_ohif
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
THUMBNAIL_MAX = 128  # the server's default thumbnail fits in 128 x 128 (docs/conformance)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, list[Path]]]]:
    with demo_server(tmp_path_factory.mktemp("e2e-browser"), SLICES, SIZE) as served:
        yield served


def _path(file: Path) -> tuple[str, str]:
    """(study path, instance path) under the DICOMweb root."""
    ds = pydicom.dcmread(file, stop_before_pixels=True)
    study = f"/studies/{ds.StudyInstanceUID}"
    return study, f"{study}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def images(files: dict[str, list[Path]]) -> list[tuple[str, str, str, tuple[int, int] | None]]:
    """(name, path under the root, the media type expected, the exact size expected or None: fits in 128²)."""
    study, ct = _path(files["ct"][1])
    series = ct.rsplit("/instances/", 1)[0]
    _, enhanced = _path(files["enhanced-ct"][0])
    full, half = (SIZE, SIZE), (SIZE // 2, SIZE // 2)
    return [
        ("instance rendered", f"{ct}/rendered", "image/jpeg", full),
        ("instance rendered, viewport", f"{ct}/rendered?viewport=32,32", "image/jpeg", half),
        ("instance rendered, window", f"{ct}/rendered?window=-600,1500,linear", "image/jpeg", full),
        ("instance rendered, window+viewport+quality",
         f"{ct}/rendered?window=40,400,linear&viewport=32,32&quality=60", "image/jpeg", half),
        ("instance rendered, annotation", f"{ct}/rendered?annotation=patient,technique", "image/jpeg", full),
        ("frame 2 rendered", f"{enhanced}/frames/2/rendered", "image/jpeg", full),
        ("frame 2 rendered, viewport", f"{enhanced}/frames/2/rendered?viewport=32,32", "image/jpeg", half),
        ("multi-frame instance rendered (animated GIF)", f"{enhanced}/rendered", "image/gif", full),
        ("frames 1,2,3 rendered (animated GIF), window", f"{enhanced}/frames/1,2,3/rendered?window=-600,1500,linear",
         "image/gif", full),
        ("instance thumbnail", f"{ct}/thumbnail", "image/jpeg", None),
        ("instance thumbnail, viewport", f"{ct}/thumbnail?viewport=32,32", "image/jpeg", half),
        ("frame 2 thumbnail", f"{enhanced}/frames/2/thumbnail", "image/jpeg", None),
        ("series thumbnail", f"{series}/thumbnail", "image/jpeg", None),
        ("series thumbnail, viewport", f"{series}/thumbnail?viewport=48,48", "image/jpeg", (48, 48)),
        ("study thumbnail", f"{study}/thumbnail", "image/jpeg", None),
    ]


PAGE = """<!doctype html><meta charset="utf-8"><title>dicomweb-origin rendered images</title>
<style>figure {{ display: inline-block; margin: 4px; font: 10px sans-serif; width: 140px }}</style>
{figures}"""


def test_every_rendered_and_thumbnail_url_decodes_in_an_img_element(
    demo: tuple[LiveServer, dict[str, list[Path]]], tmp_path: Path
) -> None:
    server, files = demo
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install --no-install-recommends chromium fonts-liberation",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    cases = images(files)
    figures = "\n".join(
        f'<figure><img id="i{n}" src="{html.escape(server.url + path)}"><figcaption>{html.escape(name)}'
        "</figcaption></figure>" for n, (name, path, _, _) in enumerate(cases))
    page_file = tmp_path / "rendered.html"
    page_file.write_text(PAGE.format(figures=figures))
    responses: list[Any] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 700})
            page.on("response", lambda r: responses.append(r) if urlsplit(r.url).scheme == "http" else None)
            page.goto(page_file.as_uri())
            page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=60_000)
            decoded = page.evaluate(
                "Array.from(document.images).map(i => [i.id, i.naturalWidth, i.naturalHeight])")
            # URL -> status, Content-Type, the Accept header the browser sent (as it went on the wire)
            answers = {r.url: (r.status, r.headers.get("content-type", ""), r.request.all_headers().get("accept", ""))
                       for r in responses}
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "rendered-images.png"), full_page=True)
        finally:
            browser.close()

    problems = []
    for (name, path, media_type, size), (_, width, height) in zip(cases, decoded, strict=True):
        status, content_type, accept = answers.get(server.url + path, (0, "", ""))
        if status != 200 or content_type != media_type:
            problems.append(f"{name}: {path} answered {status} {content_type!r} to Accept {accept!r}")
        if width <= 0 or height <= 0:
            problems.append(f"{name}: the <img> did not decode ({width}x{height})")
        elif size is not None and (width, height) != size:
            problems.append(f"{name}: decoded {width}x{height}, not {size[0]}x{size[1]}")
        elif size is None and not 0 < max(width, height) <= THUMBNAIL_MAX:
            problems.append(f"{name}: a thumbnail of {width}x{height}, not within {THUMBNAIL_MAX}²")
    accepts = {accept for _, _, accept in answers.values()}
    assert accepts and all("image/*" in a for a in accepts), f"not the browser's image Accept header: {accepts}"
    assert len(answers) == len(cases), sorted(answers)
    assert not problems, "\n".join(problems) + f"\n(server log tail:)\n{server.log_tail()}"
