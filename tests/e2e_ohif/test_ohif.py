"""OHIF 3.13.2, for real: the pinned viewer in headless Chromium against a real server process and the demo data.

The test fetches the viewer (`scripts/fetch_ohif.py`, npm pack, cached in `.ohif/`), generates and imports the demo
archive, starts `dicomweb-origin serve --viewer DIST` on a free loopback port, and drives Debian's Chromium with
playwright (never `playwright install`). The main run goes through a proxy on another port that forwards `Host`
unchanged (as OHIF's development server and reverse proxies that keep `Host` do), so every request says
`Host: 127.0.0.1:PROXYPORT`; the thumbnail runs talk to the server's own port.
It opens the study list, opens the demo CT, checks that the viewport canvas
shows an image (not a black canvas), scrolls 40 slices, then opens the JPEG 2000 and enhanced multi-frame studies
and the study whose UIDs have leading-zero components (listed in the study list too).
That run uses OHIF's `thumbnailRendering: 'wadors'` (it decodes a frame itself); two more open the CT with
`'thumbnail'` and `'rendered'` (`?thumbnailRendering=` of the generated app-config.js) and check that the study
browser's thumbnail is the JPEG this server rendered (the same browser and server).
No DICOMweb request may fail (thumbnails may answer 404) and the page may raise no error. Screenshots and a summary
go to `artifacts/ohif/`.

Nothing here skips: without Chromium, playwright or the npm registry the test fails and says what is missing.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image

from tests.support.server import host_keeping_proxy, start, stop

pytestmark = [pytest.mark.ohif, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "ohif"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    # Software WebGL (SwiftShader) is what renders with --disable-gpu; newer Chromium wants it asked for.
    "--enable-unsafe-swiftshader",
]
VIEWPORT = {"width": 1280, "height": 900}
DESCRIPTIONS = {"ct": "Demo CT phantom", "j2k": "Demo CT phantom, JPEG 2000", "enhanced": "Demo enhanced multi-frame",
                "leading-zero": "Demo leading-zero UIDs"}  # UIDs such as 1.2...0000217... (PS3.5 §9.1 says no)
CANVAS = "canvas.cornerstone-canvas"
THUMBNAIL_IMG = '[data-cy="study-browser-thumbnail"] img'  # the study browser's series thumbnails
INDEX_OVERLAY = '[data-cy="viewport-overlay-bottom-right"] [title="Instance Number"]'
TIMEOUT_S = 90  # per wait; CI runs this beside the rest of the suite on 2 cores, with software WebGL

# Sample a grid of the canvas (copied onto a 2D canvas, so a WebGL canvas reads too) and describe it.
# An <img> reads at its natural size, the same way.
CANVAS_STATS_JS = """(canvas) => {
  const w = canvas.naturalWidth || canvas.width, h = canvas.naturalHeight || canvas.height;
  if (!w || !h) return {samples: 0, bright: 0, stddev: 0, levels: 0, mean: 0, width: w, height: h};
  const copy = document.createElement('canvas');
  copy.width = w; copy.height = h;
  const ctx = copy.getContext('2d');
  ctx.drawImage(canvas, 0, 0);
  const data = ctx.getImageData(0, 0, w, h).data;
  const n = 128, values = [];
  for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) {
    const x = Math.floor((i + 0.5) * w / n), y = Math.floor((j + 0.5) * h / n), k = (y * w + x) * 4;
    values.push(Math.round(0.299 * data[k] + 0.587 * data[k + 1] + 0.114 * data[k + 2]));
  }
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) * (b - mean), 0) / values.length;
  return {samples: values.length, bright: values.filter(v => v > 8).length / values.length,
          stddev: Math.sqrt(variance), levels: new Set(values).size, mean: mean, width: w, height: h};
}"""


def non_blank(stats: dict[str, Any]) -> bool:
    """A rendered image, not a black or flat canvas (thresholds measured with OHIF here, see clients/ohif.md)."""
    return bool(stats["bright"] > 0.05 and stats["stddev"] > 5 and stats["levels"] > 16)


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def timings() -> dict[str, float]:
    return {}


@pytest.fixture(scope="module")
def ohif_dist(timings: dict[str, float]) -> Path:
    """The pinned OHIF build, fetched with npm on first use (a clear failure without npm or network)."""
    spec = importlib.util.spec_from_file_location("fetch_ohif", REPO / "scripts" / "fetch_ohif.py")
    assert spec is not None and spec.loader is not None
    fetch_ohif = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch_ohif)
    started = time.monotonic()
    try:
        dist: Path = fetch_ohif.fetch(log=lambda message: None)
    except fetch_ohif.FetchError as exc:
        pytest.fail(f"cannot fetch OHIF {fetch_ohif.VERSION} (the npm registry is needed once): {exc}", pytrace=False)
    timings["fetch_ohif_s"] = round(time.monotonic() - started, 2)
    return dist


@pytest.fixture(scope="module")
def playwright_module() -> Any:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install --no-install-recommends chromium fonts-liberation "
                    "(.ci/run does it)", pytrace=False)
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]' (never `playwright install`)",
                    pytrace=False)
    return sync_api


@dataclass
class Server:
    url: str
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def server(ohif_dist: Path, tmp_path_factory: pytest.TempPathFactory, timings: dict[str, float]) -> Iterator[Server]:
    """`dicomweb-origin serve --viewer` as a real process over the default demo archive."""
    root = tmp_path_factory.mktemp("ohif-server")
    data, log = root / "data", root / "server.log"
    cli = [sys.executable, "-m", "dicomweb_origin.cli"]
    started = time.monotonic()
    demo = subprocess.run([*cli, "demo", "--data", str(data)], check=False, capture_output=True,
                          text=True, timeout=600)
    if demo.returncode != 0:
        pytest.fail(f"`dicomweb-origin demo` failed ({demo.returncode}):\n{demo.stdout[-2000:]}{demo.stderr[-2000:]}",
                    pytrace=False)
    timings["demo_import_s"] = round(time.monotonic() - started, 2)
    started = time.monotonic()
    live = start(["--data", str(data), "--viewer", str(ohif_dist)], log, probe="/")
    timings["server_start_s"] = round(time.monotonic() - started, 2)
    try:
        yield Server(live.origin, log)
    finally:
        stop(live.process, sig=signal.SIGINT)


@pytest.fixture(scope="module")
def proxied(server: Server) -> Iterator[Server]:
    """The same server through a proxy on another loopback port that keeps ``Host`` (tests/support/server.py)."""
    with host_keeping_proxy(server.url) as origin:
        yield Server(origin, server.log)


def study_uids(server: Server) -> dict[str, str]:
    """StudyInstanceUID of each demo study, asked by QIDO-RS as OHIF does (§10.6)."""
    request = urllib.request.Request(server.url + "/dicomweb/studies?includefield=00081030",
                                     headers={"Accept": "application/dicom+json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            studies = json.loads(response.read() or b"[]")
    except OSError as exc:
        pytest.fail(f"QIDO-RS GET /dicomweb/studies failed ({exc}); OHIF's study list needs Search", pytrace=False)
    by_description = {
        study.get("00081030", {}).get("Value", [None])[0]: study["0020000D"]["Value"][0] for study in studies
    }
    missing = [d for d in DESCRIPTIONS.values() if d not in by_description]
    assert not missing, f"QIDO-RS /studies lacks the demo studies {missing}: {sorted(map(str, by_description))}"
    return {key: by_description[description] for key, description in DESCRIPTIONS.items()}


# -- what the browser saw ---------------------------------------------------------------------------


def request_kind(path: str) -> str:
    """A short name for a DICOMweb request path (for the summary)."""
    for pattern, kind in (
        (r"/frames/[\d,]+$", "frames"), (r"/thumbnail$", "thumbnail"), (r"/rendered$", "rendered"),
        (r"/metadata$", "metadata"), (r"/bulkdata/", "bulkdata"), (r"/instances$", "search instances"),
        (r"/series$", "search series"), (r"/studies$", "search studies"),
    ):
        if re.search(pattern, path):
            return kind
    return "other"


@dataclass
class Recorder:
    """Every DICOMweb response, failure and page error of a browser context."""

    kinds: Counter[str] = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)  # status >= 400 (thumbnails excepted)
    thumbnails_404: int = 0
    aborted: list[str] = field(default_factory=list)  # cancelled by the page (navigation, prefetch)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def attach(self, context: Any) -> None:
        context.on("response", self.on_response)
        context.on("requestfailed", self.on_request_failed)
        context.on("page", self.attach_page)
        for page in context.pages:
            self.attach_page(page)

    def attach_page(self, page: Any) -> None:
        page.on("pageerror", lambda error: self.page_errors.append(str(error)[:500]))
        page.on("console", lambda m: self.console_errors.append(m.text[:300]) if m.type == "error" else None)

    def on_response(self, response: Any) -> None:
        path = urlsplit(response.url).path
        if not path.startswith("/dicomweb/"):
            return
        kind = request_kind(path)
        self.kinds[kind] += 1
        if response.status < 400:
            return
        if kind == "thumbnail" and response.status == 404:
            self.thumbnails_404 += 1
            return
        accept = response.request.headers.get("accept", "")
        self.failed.append(f"{response.status} {response.request.method} {response.url} (Accept: {accept})")

    def on_request_failed(self, request: Any) -> None:
        if not urlsplit(request.url).path.startswith("/dicomweb/"):
            return
        failure = request.failure or "unknown"
        entry = f"{failure} {request.method} {request.url}"
        if "ERR_ABORTED" in failure:
            self.aborted.append(entry)
        else:
            self.failed.append(entry)


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def canvas_stats(page: Any) -> dict[str, Any] | None:
    canvas = page.locator(CANVAS).first
    if canvas.count() == 0:
        return None
    try:
        return canvas.evaluate(CANVAS_STATS_JS)
    except Exception:  # noqa: BLE001 - the canvas was replaced while reading it
        return None


def wait_for_image(page: Any, what: str) -> dict[str, Any]:
    last: list[dict[str, Any] | None] = [None]

    def rendered() -> dict[str, Any] | None:
        last[0] = canvas_stats(page)
        return last[0] if last[0] and non_blank(last[0]) else None

    try:
        return wait_until(rendered, TIMEOUT_S, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last canvas sample: {last[0]}") from None


def overlay_index(page: Any) -> tuple[int, int] | None:
    """The viewport's position in its stack from the overlay text `I:41 (41/128)`."""
    item = page.locator(INDEX_OVERLAY).first
    if item.count() == 0:
        return None
    match = re.search(r"\((\d+)/(\d+)\)", item.inner_text())
    return (int(match.group(1)), int(match.group(2))) if match else None


def click_if_shown(page: Any, locator: Any, timeout_s: float) -> bool:
    try:
        locator.first.wait_for(state="visible", timeout=timeout_s * 1000)
    except Exception:  # noqa: BLE001 - playwright's TimeoutError: not shown
        return False
    locator.first.click()
    return True


def scroll(page: Any, slices: int) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """Mouse-wheel over the viewport, one notch per slice; return the overlay index before and after.

    Each notch waits for the overlay to move before the next: a renderer busy decoding (2 shared cores) merges
    wheel events that arrive together into one, which OHIF scrolls as one slice.
    """
    before = overlay_index(page)
    box = page.locator(CANVAS).first.bounding_box()
    assert box is not None, "the viewport canvas has no box"
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for notch in range(slices):
        shown = overlay_index(page)
        page.mouse.wheel(0, 100)
        try:
            def moved(shown: Any = shown) -> bool:
                return bool(overlay_index(page) != shown)

            wait_until(moved, 10, f"notch {notch + 1} to scroll", 0.02)
        except AssertionError:
            break  # the end of the stack, or a notch that did nothing: the final count says which
    settled: list[Any] = [None, 0]

    def stable() -> bool:
        now = overlay_index(page)
        settled[1] = settled[1] + 1 if now == settled[0] else 0
        settled[0] = now
        return now != before and settled[1] >= 4

    wait_until(stable, TIMEOUT_S, f"the overlay index to move from {before} and settle")
    return before, settled[0]


def skip_tour(page: Any, timeout_s: float) -> bool:
    """OHIF's first-run tour dims the view and swallows the mouse wheel: skip it."""
    return click_if_shown(page, page.get_by_text("Skip all", exact=True), timeout_s)


# -- the test ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(playwright_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium (a persistent context, fresh profile) for every test of the module."""
    with playwright_module.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
            headless=True, viewport=VIEWPORT,
        )
        try:
            yield context
        finally:
            context.close()


def test_ohif_displays_and_scrolls_the_demo_studies(proxied: Server, browser: Any, timings: dict[str, float]) -> None:
    """OHIF from another port than the server's, through a proxy that keeps Host (see the module doc)."""
    server = proxied
    uids = study_uids(server)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    recorder = Recorder()
    results: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    started_all = time.monotonic()

    recorder.attach(browser)
    page = browser.pages[0] if browser.pages else browser.new_page()
    page.set_default_timeout(TIMEOUT_S * 1000)

    def case(name: str, steps: Callable[[dict[str, Any]], None]) -> None:
        result: dict[str, Any] = {}
        results[name] = result
        started = time.monotonic()
        try:
            steps(result)
        except Exception as exc:  # noqa: BLE001 - keep going: each study gets its own verdict and screenshot
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
            page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"))
        result["seconds"] = round(time.monotonic() - started, 2)

    def ct(result: dict[str, Any]) -> None:
        started = time.monotonic()
        page.goto(server.url + "/")
        row = page.get_by_text(DESCRIPTIONS["ct"], exact=True)
        row.wait_for()
        result["study_list_s"] = round(time.monotonic() - started, 2)
        leading_zero = page.get_by_text(DESCRIPTIONS["leading-zero"], exact=True)
        try:  # the study whose UIDs have leading-zero components is listed too
            leading_zero.wait_for(timeout=15_000)
        except Exception as exc:  # noqa: BLE001 - playwright's TimeoutError
            raise AssertionError(f"the study list lacks {DESCRIPTIONS['leading-zero']!r}") from exc
        result["leading_zero_listed"] = True
        assert page.evaluate("crossOriginIsolated"), "the viewer page is not cross-origin isolated"
        click_if_shown(page, page.get_by_role("button", name="Confirm and hide"), 5)
        page.screenshot(path=str(ARTIFACTS / "study-list.png"))
        row.click()
        started = time.monotonic()
        page.get_by_role("button", name="Basic Viewer").click()
        result["first_image"] = wait_for_image(page, "the CT's first image")
        result["first_image_s"] = round(time.monotonic() - started, 2)
        result["tour_skipped"] = skip_tour(page, 15)
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / "ct.png"))
        before, after = scroll(page, 40)
        result["index_before"], result["index_after"] = before, after
        result["scrolled_image"] = wait_for_image(page, "the CT image after scrolling")
        page.screenshot(path=str(ARTIFACTS / "ct-scrolled.png"))

    def by_url(key: str, slices: int) -> Callable[[dict[str, Any]], None]:
        def steps(result: dict[str, Any]) -> None:
            started = time.monotonic()
            page.goto(f"{server.url}/viewer?StudyInstanceUIDs={uids[key]}")
            result["first_image"] = wait_for_image(page, f"the {key} study's first image")
            result["first_image_s"] = round(time.monotonic() - started, 2)
            result["tour_skipped"] = skip_tour(page, 3)
            page.wait_for_timeout(300)
            page.screenshot(path=str(ARTIFACTS / f"{key}.png"))
            before, after = scroll(page, slices)
            result["index_before"], result["index_after"] = before, after
            result["scrolled_image"] = wait_for_image(page, f"the {key} image after scrolling")
            page.screenshot(path=str(ARTIFACTS / f"{key}-scrolled.png"))
        return steps

    def shown(key: str) -> Callable[[dict[str, Any]], None]:
        def steps(result: dict[str, Any]) -> None:
            started = time.monotonic()
            page.goto(f"{server.url}/viewer?StudyInstanceUIDs={uids[key]}")
            result["first_image"] = wait_for_image(page, f"the {key} study's image")
            result["first_image_s"] = round(time.monotonic() - started, 2)
            page.screenshot(path=str(ARTIFACTS / f"{key}.png"))
        return steps

    case("ct", ct)
    case("j2k", by_url("j2k", 10))
    case("enhanced", by_url("enhanced", 10))
    case("leading-zero", shown("leading-zero"))

    timings["browser_s"] = round(time.monotonic() - started_all, 2)
    summary = {
        "server": server.url, "studies": uids, "timings": timings, "results": results,
        "dicomweb_responses": dict(recorder.kinds), "failed": recorder.failed,
        "thumbnails_404": recorder.thumbnails_404, "aborted": recorder.aborted[:50],
        "page_errors": recorder.page_errors, "console_errors": recorder.console_errors[:50],
        "problems": problems,
    }
    (ARTIFACTS / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(json.dumps(summary, indent=2, default=str))

    report = "\n".join(problems + [f"DICOMweb request failed: {f}" for f in recorder.failed]
                       + [f"page error: {e}" for e in recorder.page_errors])
    assert not report, f"{report}\n(see {ARTIFACTS}; server log tail:)\n{server.log_tail()}"
    for name, slices in (("ct", 40), ("j2k", 10), ("enhanced", 10)):  # one slice per wheel notch
        before, after = results[name]["index_before"], results[name]["index_after"]
        assert after[0] - before[0] >= slices, f"{name}: scrolled from {before} to {after}, not {slices} slices"


# -- thumbnails this server renders (OHIF's thumbnailRendering 'thumbnail' and 'rendered') -----------


def grid_stats(image: Any, n: int = 128) -> dict[str, float]:
    """Luminance at the grid CANVAS_STATS_JS samples, computed from the JPEG decoded with Pillow."""
    rgb = image.convert("RGB")
    w, h = rgb.size
    values = []
    for j in range(n):
        for i in range(n):
            r, g, b = rgb.getpixel((int((i + 0.5) * w / n), int((j + 0.5) * h / n)))
            values.append(round(0.299 * r + 0.587 * g + 0.114 * b))
    return {"mean": sum(values) / len(values), "levels": len(set(values))}


def dicom_json(server: Server, path: str) -> list[dict[str, Any]]:
    request = urllib.request.Request(server.url + path, headers={"Accept": "application/dicom+json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.parametrize("mode", ["thumbnail", "rendered"])
def test_ohif_study_browser_shows_the_thumbnails_this_server_rendered(
    server: Server, browser: Any, timings: dict[str, float], mode: str
) -> None:
    """OHIF with `thumbnailRendering: '{mode}'` shows, in its study browser, the JPEG this server rendered.

    OHIF asks for the series' middle instance, `.../instances/{I}/{mode}?accept=image/jpeg`, with its bulk data
    Accept header `multipart/related; type="application/octet-stream"`: the `accept` query parameter replaces the
    header (PS3.18 §8.3.3.1), and the single-part image/jpeg answer (§10.4.1.1.3-4) becomes the `<img>` of the
    thumbnail as a blob URL. The image in the page must be that JPEG (same size, same pixels) and not blank.
    """
    uid = study_uids(server)["ct"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    seen: list[Any] = []
    page_errors: list[str] = []
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_S * 1000)
    page.on("response", lambda r: seen.append(r) if request_kind(urlsplit(r.url).path) in ("thumbnail", "rendered")
            and urlsplit(r.url).path.startswith("/dicomweb/") else None)
    page.on("pageerror", lambda error: page_errors.append(str(error)[:500]))
    started = time.monotonic()
    last: list[Any] = [None]
    try:
        page.goto(f"{server.url}/viewer?StudyInstanceUIDs={uid}&thumbnailRendering={mode}")
        thumb = page.locator(THUMBNAIL_IMG).first

        def shown() -> dict[str, Any] | None:
            if thumb.count() == 0:
                return None
            try:
                last[0] = thumb.evaluate(CANVAS_STATS_JS)
            except Exception:  # noqa: BLE001 - not decoded yet, or replaced while reading it
                return None
            return last[0] if last[0]["width"] and non_blank(last[0]) else None

        try:
            stats = wait_until(shown, TIMEOUT_S, f"a non-blank thumbnail in the study browser ({mode})")
        except AssertionError as exc:
            page.screenshot(path=str(ARTIFACTS / f"thumbnails-{mode}-failure.png"))
            raise AssertionError(f"{exc}; last sample: {last[0]}; responses: {[r.url for r in seen]}") from None
        timings[f"thumbnail_{mode}_s"] = round(time.monotonic() - started, 2)
        src = thumb.get_attribute("src") or ""
        thumb.screenshot(path=str(ARTIFACTS / f"thumbnail-{mode}.png"))
        page.screenshot(path=str(ARTIFACTS / f"thumbnails-{mode}.png"))
        answers = [(r.url, r.status, r.headers.get("content-type", ""), r.request.headers.get("accept", ""),
                    r.body() if r.status == 200 else b"") for r in seen]
        (ARTIFACTS / f"thumbnails-{mode}.json").write_text(json.dumps({
            "seconds": timings[f"thumbnail_{mode}_s"], "img": stats, "src": src[:80],
            "responses": [{"url": a[0], "status": a[1], "content_type": a[2], "accept": a[3], "bytes": len(a[4])}
                          for a in answers]}, indent=2))
    finally:
        page.close()

    assert not page_errors, page_errors
    asked = [a for a in answers if re.search(rf"/instances/[^/]+/{mode}$", urlsplit(a[0]).path)]
    assert asked, f"OHIF asked for no instance {mode} resource: {[a[0] for a in answers]}"
    for url, status, content_type, accept, _ in answers:
        assert status == 200 and content_type == "image/jpeg", f"{url} (Accept: {accept}): {status} {content_type}"
        assert "accept=image%2Fjpeg" in url, url
    assert src.startswith("blob:"), f"the thumbnail is not the fetched image: {src[:80]}"
    decoded = [Image.open(io.BytesIO(a[4])) for a in asked]
    assert all(image.format == "JPEG" for image in decoded)
    sizes = {image.size for image in decoded}
    assert (stats["width"], stats["height"]) in sizes, f"the <img> is {stats['width']}x{stats['height']}, not {sizes}"
    image = next(image for image in decoded if image.size == (stats["width"], stats["height"]))
    expected = grid_stats(image)
    assert abs(stats["mean"] - expected["mean"]) < 2, f"the <img> is not the served JPEG: {stats} vs {expected}"
    path = re.sub(r"/(thumbnail|rendered)$", "/metadata", urlsplit(asked[0][0]).path)
    (meta,) = dicom_json(server, path)
    matrix = (meta["00280011"]["Value"][0], meta["00280010"]["Value"][0])  # Columns, Rows
    if mode == "rendered":  # no viewport: the instance's own matrix (§8.3.5.1.3)
        assert image.size == matrix
    else:  # a thumbnail is smaller than the image (§8.3.5.2: the server chooses its size)
        assert max(image.size) < max(matrix)
