"""The lite viewer (/lite/) for real: headless Chromium against a real server process holding the demo archive and a
coronal acquisition of the demo CT's phantom (tests/e2e_lite/phantom.py).

Desktop (1280 x 800, mouse) and phone (390 x 844, touch events through the DevTools protocol): the study list and
its thumbnails, a study's series thumbnails, the stack view (wheel, keys, drags, window presets and drags, zoom,
annotation, cine), the MPR view of both acquisitions (orientation letters, the phantom's anatomy where the patient
coordinates put it, crosshairs that move the other planes, oblique rotation, slabs), the 3D view (turning, MIP,
presets), a series that cannot be a volume (the server's 400 message), and a server that asks for a token. Pictures
are read back from the page (a canvas of each <img>) and compared; every request is recorded. No console error may
appear but the 400 a test provokes. Screenshots go to artifacts/lite/; same playwright setup as tests/e2e_ohif
(Debian's Chromium, never `playwright install`).
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pydicom
import pytest

from dicomweb_origin.app import Archive
from dicomweb_origin.cli import main as cli_main
from dicomweb_origin.settings import Settings
from tests.support.server import LiveServer, demo_archive, live_server

from .phantom import CORONAL_DESCRIPTION, coronal_series

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "lite"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SLICES, SIZE = 48, 128  # the demo CT (and so the coronal acquisition: 64 slices of 48 x 128)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 60_000
PLANES = ("Axial", "Coronal", "Sagittal")

# The picture of an <img> (drawn on a canvas at its natural size): luminance statistics, a digest, and the mean
# luminance of 3x3 pixels around given natural pixel positions.
PICTURE_JS = """([selector, points]) => {
  const img = document.querySelector(selector);
  if (!img || !img.naturalWidth) return null;
  const w = img.naturalWidth, h = img.naturalHeight, c = document.createElement('canvas');
  c.width = w; c.height = h;
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, w, h).data;
  const lum = (x, y) => { const k = (y * w + x) * 4; return 0.299 * d[k] + 0.587 * d[k + 1] + 0.114 * d[k + 2]; };
  let sum = 0, sum2 = 0, hash = 0;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const v = lum(x, y); sum += v; sum2 += v * v; hash = (hash * 31 + Math.round(v)) % 1000000007;
  }
  const at = (points || []).map(([x, y]) => {
    let s = 0, n = 0;
    for (let j = -1; j <= 1; j++) for (let i = -1; i <= 1; i++) {
      const X = Math.round(x) + i, Y = Math.round(y) + j;
      if (X >= 0 && Y >= 0 && X < w && Y < h) { s += lum(X, Y); n++; }
    }
    return n ? s / n : -1;
  });
  const mean = sum / (w * h);
  return {width: w, height: h, mean, std: Math.sqrt(Math.max(0, sum2 / (w * h) - mean * mean)), hash, at,
          url: img.dataset.url || '', data: Object.assign({}, img.dataset)};
}"""


@dataclass
class Archive2:
    server: LiveServer
    study: str  # the demo CT's study: the axial series and the coronal acquisition
    series: dict[str, str]  # "axial" / "coronal" -> Series Instance UID
    colour: tuple[str, str]  # (study, series) of a colour picture: no volume
    enhanced: tuple[str, str]  # (study, series) of the enhanced multi-frame CT
    studies: int


def _uids(path: Path) -> tuple[str, str]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)


def build_archive(root: Path) -> tuple[Path, dict[str, Any]]:
    data, paths = demo_archive(root, SLICES, SIZE)
    ct = sorted(p for p in paths if p.parent.name == "ct")
    coronal = coronal_series(ct[0], root / "coronal", SLICES, SIZE)
    archive = Archive(Settings(data_dir=data))
    try:
        for path in coronal:
            with open(path, "rb") as fp:
                assert archive.ingest.store(fp).outcome.value != "failed"
        studies = archive.counts()["studies"]
    finally:
        archive.index.close()
    study, axial = _uids(ct[0])
    return data, {"study": study, "series": {"axial": axial, "coronal": _uids(coronal[0])[1]},
                  "colour": _uids(next(p for p in paths if p.name == "SC_rgb_jpeg_dcmd.dcm")),
                  "enhanced": _uids(next(p for p in paths if p.parent.name == "enhanced-ct")), "studies": studies}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive2]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install --no-install-recommends chromium fonts-liberation",
                    pytrace=False)
    data, found = build_archive(tmp_path_factory.mktemp("e2e-lite"))
    with live_server(data) as server:
        yield Archive2(server, **found)


@dataclass
class Browser:
    """One page with everything it logged and asked for."""

    page: Any
    origin: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    most_in_flight: dict[str, int] = field(default_factory=dict)

    def picture(self, selector: str, points: list[tuple[float, float]] | None = None) -> dict[str, Any]:
        found = self.page.evaluate(PICTURE_JS, [selector, points or []])
        assert found is not None, f"no picture in {selector}"
        return found

    def wait_picture(self, selector: str, other_than: str = "") -> dict[str, Any]:
        """The picture of ``selector`` once one is shown (and it is not the one of blob URL ``other_than``)."""
        self.page.wait_for_function(
            "([s, old]) => { const i = document.querySelector(s); return i && i.naturalWidth > 0"
            " && (i.dataset.url || '') !== old; }", arg=[selector, other_than], timeout=TIMEOUT_MS)
        return self.picture(selector)

    def settle(self) -> None:
        """Wait until no request has been in flight for 0.4 s (the full pictures after a drag are in and shown)."""
        quiet = 0
        for _ in range(1200):
            self.page.wait_for_timeout(100)
            quiet = quiet + 1 if not sum(self.in_flight.values()) else 0
            if quiet >= 4:
                return

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))

    def asked(self, resource: str, since: int = 0) -> list[dict[str, list[str]]]:
        """The query parameters of the requests for ``resource`` (e.g. renderedmpr) from request number ``since``."""
        return [parse_qs(urlsplit(url).query) for url in self.requests[since:] if urlsplit(url).path.endswith(resource)]


def _kind(url: str) -> str:
    path = urlsplit(url).path
    return path.rsplit("/", 1)[-1] if "/rendered" in path or path.endswith("thumbnail") else "other"


@pytest.fixture()
def browser_factory(archive: Archive2) -> Iterator[Callable[..., Browser]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        opened: list[Browser] = []

        def open_page(phone: bool = False, origin: str | None = None) -> Browser:
            options: dict[str, Any] = {"viewport": PHONE, "device_scale_factor": 2, "is_mobile": True,
                                       "has_touch": True} if phone else {"viewport": DESKTOP}
            page = chromium.new_context(**options).new_page()
            browser = Browser(page, origin or archive.server.origin)

            def started(request: Any) -> None:
                browser.requests.append(request.url)
                kind = _kind(request.url)
                browser.in_flight[kind] = browser.in_flight.get(kind, 0) + 1
                browser.most_in_flight[kind] = max(browser.most_in_flight.get(kind, 0), browser.in_flight[kind])

            def ended(request: Any) -> None:
                browser.in_flight[_kind(request.url)] -= 1
                response = request.response() if hasattr(request, "response") else None
                if response is not None and response.status >= 400:
                    browser.failed.append((response.status, request.url))

            page.on("request", started)
            page.on("requestfinished", ended)

            def failed(request: Any) -> None:
                browser.in_flight[_kind(request.url)] -= 1
                browser.errors.append(f"request failed: {request.url} {request.failure}")

            page.on("requestfailed", failed)
            page.on("console", lambda m: browser.errors.append(f"console {m.type}: {m.text}") if m.type == "error"
                    else None)
            page.on("pageerror", lambda e: browser.errors.append(f"page error: {e}"))
            opened.append(browser)
            return browser

        try:
            yield open_page
        finally:
            chromium.close()


def expected_errors(browser: Browser, statuses: tuple[int, ...] = ()) -> list[str]:
    """Console errors other than the 'Failed to load resource' lines of responses with ``statuses``."""
    allowed = sum(1 for status, _ in browser.failed if status in statuses)
    other = [e for e in browser.errors if not (allowed and "Failed to load resource" in e)]
    return other


# -- the LPS point under a picture pixel (the viewer writes each picture's camera into its <img>) -----------------

def lps_to_pixel(picture: dict[str, Any], point: tuple[float, float, float]) -> tuple[float, float]:
    data = picture["data"]
    lookat, right, up = (np.array([float(v) for v in data[k].split(",")]) for k in ("lookat", "right", "up"))
    spacing = float(data["spacing"])
    offset = np.asarray(point) - lookat
    return (picture["width"] / 2 + offset @ right / spacing - 0.5, picture["height"] / 2 - offset @ up / spacing - 0.5)


def at(browser: Browser, selector: str, points: list[tuple[float, float, float]]) -> list[float]:
    picture = browser.picture(selector)
    return browser.picture(selector, [lps_to_pixel(picture, p) for p in points])["at"]


def pane(name: str) -> str:
    return f'.pane[data-pane="{name}"] img'


def letters(browser: Browser, name: str) -> dict[str, str]:
    return {side: browser.page.text_content(f'.pane[data-pane="{name}"] .edge.{side}') or ""
            for side in ("left", "right", "top", "bottom")}


def drag(browser: Browser, selector: str, path: list[tuple[float, float]], button: str = "left",
         touch: bool = False) -> None:
    """A drag along ``path`` (fractions of the element's box), by mouse or by touch events."""
    box = browser.page.locator(selector).bounding_box()
    points = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in path]
    if touch:
        cdp = browser.page.context.new_cdp_session(browser.page)
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": points[0][0], "y": points[0][1]}]})
        for x, y in points[1:]:
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
            browser.page.wait_for_timeout(40)
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        return
    mouse = browser.page.mouse
    mouse.move(*points[0])
    mouse.down(button=button)
    for x, y in points[1:]:
        mouse.move(x, y, steps=2)
        browser.page.wait_for_timeout(40)
    mouse.up(button=button)


def arc(cx: float, cy: float, radius: float, start: float, stop: float, steps: int = 12) -> list[tuple[float, float]]:
    angles = np.linspace(np.radians(start), np.radians(stop), steps)
    return [(cx + radius * np.cos(a), cy - radius * np.sin(a)) for a in angles]


def open_series(browser: Browser, study: str, series: str, mode: str) -> None:
    browser.page.goto(f"{browser.origin}/lite/#/study/{study}/series/{series}/{mode}")


# -- tests ---------------------------------------------------------------------------------------------------------

def test_study_list_thumbnails_and_series(archive: Archive2, browser_factory: Callable[..., Browser]) -> None:
    browser = browser_factory()
    page = browser.page
    page.goto(archive.server.origin + "/")
    link = page.locator(f'#studies a[href="/lite/#/study/{archive.study}"]')
    assert link.count() == 1, "the home page links each study to the viewer"
    link.click()
    page.wait_for_selector("ul.series li img.thumb[src]", timeout=TIMEOUT_MS)
    assert page.locator("ul.series li").count() == 2
    texts = page.locator("ul.series li").all_text_contents()
    assert any(CORONAL_DESCRIPTION in t for t in texts), texts
    page.wait_for_function("() => Array.from(document.querySelectorAll('ul.series img.thumb'))"
                           ".every(i => i.naturalWidth > 0)", timeout=TIMEOUT_MS)
    browser.shot("desktop-study")
    page.goto(archive.server.origin + "/lite/")
    page.wait_for_selector("a.study", timeout=TIMEOUT_MS)
    assert page.locator("a.study").count() == archive.studies
    page.wait_for_function(f"() => document.querySelectorAll('a.study img.thumb[src]').length === {archive.studies}",
                           timeout=TIMEOUT_MS)
    thumbs = page.evaluate("Array.from(document.querySelectorAll('a.study img.thumb')).map(i => [i.naturalWidth,"
                           " i.naturalHeight])")
    assert all(0 < max(w, h) <= 64 for w, h in thumbs), thumbs
    ct = browser.picture(f'a.study[data-uid="{archive.study}"] img.thumb')
    assert ct["std"] > 10, "the CT study's thumbnail shows the phantom"
    page.fill("input[type=search]", "nobody-has-this-name")
    page.wait_for_selector("li.empty", timeout=TIMEOUT_MS)
    browser.shot("desktop-studies")
    assert page.locator("header a.brand").get_attribute("href") == "#/"
    assert expected_errors(browser) == [], browser.errors


def test_stack_scrolls_windows_zooms_and_annotates(archive: Archive2, browser_factory: Callable[..., Browser]) -> None:
    browser = browser_factory()
    page = browser.page
    open_series(browser, archive.study, archive.series["axial"], "stack")
    img = pane("Stack")
    first = browser.wait_picture(img)
    index = page.get_attribute('.pane[data-pane="Stack"]', "data-index")
    assert index == str(SLICES // 2 + 1), "the stack opens at its middle slice"
    assert letters(browser, "Stack") == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    box = page.locator(".pane").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(5):
        page.mouse.wheel(0, 100)
        page.wait_for_timeout(60)
    browser.settle()
    scrolled = browser.picture(img)
    assert page.get_attribute('.pane[data-pane="Stack"]', "data-index") == str(SLICES // 2 + 6)
    assert scrolled["hash"] != first["hash"], "scrolling changes the picture"
    page.keyboard.press("ArrowUp")
    browser.settle()
    assert page.get_attribute('.pane[data-pane="Stack"]', "data-index") == str(SLICES // 2 + 5)
    drag(browser, ".pane", [(0.5, 0.4), (0.5, 0.5), (0.5, 0.6)])  # the scroll tool: 8 pixels a slice
    browser.settle()
    assert int(page.get_attribute('.pane[data-pane="Stack"]', "data-index") or 0) > SLICES // 2 + 5
    before = browser.picture(img)
    page.select_option('select[aria-label="Window preset"]', "Lung")
    browser.settle()
    lung = browser.picture(img)
    assert lung["hash"] != before["hash"] and "-600.0,1500.0,linear" in browser.asked("rendered")[-1]["window"][0]
    since = len(browser.requests)
    drag(browser, ".pane", [(0.5, 0.5), (0.6, 0.45), (0.7, 0.4)], button="right")  # free window/level
    browser.settle()
    dragged = browser.asked("rendered", since)
    assert any(q["quality"] == ["50"] for q in dragged), "while dragging: lower quality"
    assert dragged[-1]["quality"] == ["90"], "when the drag stops: the full picture"
    assert browser.picture(img)["hash"] != lung["hash"]
    since = len(browser.requests)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -300)
    page.keyboard.up("Control")
    browser.settle()
    viewport = browser.asked("rendered", since)[-1]["viewport"][0].split(",")
    assert len(viewport) == 6, f"zoomed in, the viewport names a source region: {viewport}"
    page.click("text=Annotation")
    browser.settle()
    assert browser.asked("rendered")[-1]["annotation"] == ["patient,technique"]
    browser.shot("desktop-stack")
    assert browser.most_in_flight.get("rendered", 0) == 1, "one request in flight at a time"
    assert expected_errors(browser) == [], browser.errors


def test_cine_plays_a_multi_frame_instance(archive: Archive2, browser_factory: Callable[..., Browser]) -> None:
    browser = browser_factory()
    open_series(browser, *archive.enhanced, "stack")
    browser.wait_picture(pane("Stack"))
    start = int(browser.page.get_attribute('.pane[data-pane="Stack"]', "data-index") or 0)
    browser.page.click("button.cine")
    browser.page.wait_for_timeout(1500)
    browser.page.click("button.cine")
    browser.settle()
    assert int(browser.page.get_attribute('.pane[data-pane="Stack"]', "data-index") or 0) != start
    assert all("/frames/" in urlsplit(u).path for u in browser.requests if urlsplit(u).path.endswith("/rendered"))
    assert expected_errors(browser) == [], browser.errors


# Points of the phantom (demo._slice_hu, LPS mm) and what the soft tissue window shows there.
BRIGHT, DARK = 150, 60  # luminance above / below


@pytest.mark.parametrize("acquisition", ["axial", "coronal"])
def test_mpr_planes_show_the_phantom_the_right_way_round(archive: Archive2, browser_factory: Callable[..., Browser],
                                                         acquisition: str) -> None:
    browser = browser_factory()
    open_series(browser, archive.study, archive.series[acquisition], "mpr")
    for name in PLANES:
        browser.wait_picture(pane(name))
    browser.settle()
    assert letters(browser, "Axial") == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert letters(browser, "Coronal") == {"left": "R", "right": "L", "top": "H", "bottom": "F"}
    assert letters(browser, "Sagittal") == {"left": "A", "right": "P", "top": "H", "bottom": "F"}
    for name in PLANES:  # the viewer knows the size the server renders (its crosshairs depend on it)
        picture = browser.picture(pane(name))
        expected = [int(v) for v in picture["data"]["expected"].split(",")]
        assert abs(picture["width"] - expected[0]) <= 1 and abs(picture["height"] - expected[1]) <= 1, (name, picture)
    z = float(browser.picture(pane("Axial"))["data"]["lookat"].split(",")[2])
    # Axial: the contrast inserts brighten towards the patient's left (600 HU at x = +60, -100 HU at x = -60),
    # the posterior arch of the spine (750 HU) is at the back.
    left, right, arch, front = at(browser, pane("Axial"), [(60, -88, z), (-60, -88, z), (0, 106, z), (0, -106, z)])
    assert left > BRIGHT and right < DARK and arch > BRIGHT and front < DARK, (left, right, arch, front)
    # Coronal: the lungs (-820 HU) reach up to z = 95 and end at z = -55; the ventricle (180 HU) is left of centre.
    y = float(browser.picture(pane("Coronal"))["data"]["lookat"].split(",")[1])
    lung, below, heart, mirror = at(browser, pane("Coronal"), [(-72, y, 60), (-72, y, -75), (15, y, 0), (-15, y, 0)])
    assert lung < DARK and below > DARK and heart > mirror + 30, (lung, below, heart, mirror)
    # Sagittal: the spine's arch behind, fat in front.
    x = float(browser.picture(pane("Sagittal"))["data"]["lookat"].split(",")[0])
    arch, front = at(browser, pane("Sagittal"), [(x, 106, 0), (x, -106, 0)])
    assert arch > BRIGHT and front < DARK, (arch, front)
    browser.shot(f"desktop-mpr-{acquisition}")

    # The crosshairs: a click in the axial pane at the right lung's outer part moves the sagittal plane there.
    before = browser.picture(pane("Sagittal"))
    axial = browser.picture(pane("Axial"))
    col, row = lps_to_pixel(axial, (-100, 5, z))
    box = browser.page.locator('.pane[data-pane="Axial"] img').bounding_box()
    scale = box["width"] / axial["width"]
    browser.page.mouse.click(box["x"] + (col + 0.5) * scale, box["y"] + (row + 0.5) * scale)
    browser.settle()
    moved = browser.picture(pane("Sagittal"))
    assert moved["hash"] != before["hash"]
    assert abs(float(moved["data"]["lookat"].split(",")[0]) + 100) < 2, moved["data"]
    # At x = -100 the lung (above z = -55) sits over the liver (60 HU, below it).
    lung, liver = at(browser, pane("Sagittal"), [(-100, 0, 40), (-100, 0, -65)])
    assert lung < DARK and liver > DARK, (lung, liver)
    browser.shot(f"desktop-mpr-{acquisition}-moved")
    assert expected_errors(browser) == [], browser.errors


def _changed_and_not_blank(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after["hash"] != before["hash"], "a new picture"
    assert after["std"] > 10 and after["mean"] > 5, f"not blank: {after['mean']:.1f} ± {after['std']:.1f}"


def test_oblique_drag_slab_and_windows(archive: Archive2, browser_factory: Callable[..., Browser]) -> None:
    browser = browser_factory()
    open_series(browser, archive.study, archive.series["axial"], "mpr")
    for name in PLANES:
        browser.wait_picture(pane(name))
    browser.settle()
    before = {name: browser.picture(pane(name)) for name in PLANES}
    browser.page.click('.choice[aria-label="Tool"] button[data-value="rotate"]')
    since = len(browser.requests)
    drag(browser, '.pane[data-pane="Axial"]', arc(0.5, 0.5, 0.3, 0, 50))
    browser.settle()
    for name in ("Coronal", "Sagittal"):
        _changed_and_not_blank(before[name], browser.picture(pane(name)))
    assert browser.picture(pane("Axial"))["hash"] == before["Axial"]["hash"], "the pane dragged in stays"
    asked = browser.asked("renderedmpr", since)
    assert any(q["quality"] == ["50"] for q in asked) and asked[-1]["quality"] == ["90"]
    assert browser.most_in_flight["renderedmpr"] <= 3, "one request in flight per pane"
    coronal = browser.picture(pane("Coronal"))
    right = np.array([float(v) for v in coronal["data"]["right"].split(",")])
    assert abs(right[0]) < 0.95 and abs(right[1]) > 0.3, f"the coronal plane is oblique now: right {right}"
    assert letters(browser, "Coronal")["right"] in ("LA", "AL", "LP", "PL"), letters(browser, "Coronal")
    browser.shot("desktop-mpr-oblique")
    oblique = {name: browser.picture(pane(name)) for name in PLANES}
    browser.page.select_option('select[aria-label="Slab thickness"]', "20")
    browser.page.click('.choice[aria-label="Slab method"] button[data-value="maximum_ip"]')
    browser.settle()
    assert browser.asked("renderedmpr")[-1]["mprslab"] == ["20"]
    assert browser.asked("renderedmpr")[-1]["renderingmethod"] == ["maximum_ip"]
    slab = {name: browser.picture(pane(name)) for name in PLANES}
    assert all(slab[n]["hash"] != oblique[n]["hash"] for n in PLANES)
    browser.page.select_option('select[aria-label="Window preset"]', "Bone")
    browser.settle()
    assert all(browser.picture(pane(n))["hash"] != slab[n]["hash"] for n in PLANES), "the preset changes them all"
    browser.shot("desktop-mpr-slab-bone")
    assert expected_errors(browser) == [], browser.errors


def test_3d_turns_and_presets(archive: Archive2, browser_factory: Callable[..., Browser]) -> None:
    browser = browser_factory()
    open_series(browser, archive.study, archive.series["coronal"], "3d")
    img = pane("3D")
    front = browser.wait_picture(img)
    browser.settle()
    front = browser.picture(img)
    assert front["std"] > 10
    since = len(browser.requests)
    drag(browser, ".pane", [(0.3 + 0.04 * n, 0.5) for n in range(11)])
    browser.settle()
    turned = browser.picture(img)
    _changed_and_not_blank(front, turned)
    asked = browser.asked("rendered3d", since)
    assert any(q["quality"] == ["50"] for q in asked) and asked[-1]["quality"] == ["90"]
    assert browser.most_in_flight["rendered3d"] == 1
    browser.shot("desktop-3d-turned")
    browser.page.click('.choice[aria-label="Rendering"] button[data-value="maximum_ip"]')
    browser.settle()
    mip = browser.picture(img)
    assert mip["hash"] != turned["hash"] and browser.asked("rendered3d")[-1]["renderingmethod"] == ["maximum_ip"]
    browser.page.select_option('select[aria-label="Window preset"]', "Bone")
    browser.settle()
    assert browser.picture(img)["hash"] != mip["hash"]
    browser.page.click('.choice[aria-label="View"] button[data-value="L"]')
    browser.settle()
    assert browser.asked("rendered3d")[-1]["viewpointup"] == ["0.000000,0.000000,1.000000"]
    assert letters(browser, "3D") == {"left": "A", "right": "P", "top": "H", "bottom": "F"}
    browser.shot("desktop-3d-mip-left")
    assert expected_errors(browser) == [], browser.errors


def test_a_series_that_is_no_volume_says_why(archive: Archive2, browser_factory: Callable[..., Browser]) -> None:
    browser = browser_factory()
    open_series(browser, *archive.colour, "mpr")
    browser.page.wait_for_selector("p.error", timeout=TIMEOUT_MS)
    message = browser.page.text_content("p.error") or ""
    assert message.startswith("400 ") and "a volume needs" in message, message  # the server's own words
    assert [s for s, _ in browser.failed] == [400]
    browser.shot("desktop-no-volume")
    assert expected_errors(browser, (400,)) == [], browser.errors


def test_phone_with_touch(archive: Archive2, browser_factory: Callable[..., Browser]) -> None:
    browser = browser_factory(phone=True)
    page = browser.page
    page.goto(archive.server.origin + "/lite/")
    page.wait_for_function(f"() => document.querySelectorAll('a.study img.thumb[src]').length === {archive.studies}",
                           timeout=TIMEOUT_MS)
    browser.shot("phone-studies")
    page.locator(f'a.study[data-uid="{archive.study}"]').tap()
    page.wait_for_selector("ul.series li img.thumb[src]", timeout=TIMEOUT_MS)
    browser.shot("phone-study")
    page.locator(f'li[data-uid="{archive.series["axial"]}"] a.open').tap()
    img = pane("Stack")
    first = browser.wait_picture(img)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "nothing wider than the phone"
    drag(browser, ".pane", [(0.5, 0.3 + 0.03 * n) for n in range(10)], touch=True)
    browser.settle()
    assert browser.picture(img)["hash"] != first["hash"], "a touch drag scrolls"
    browser.shot("phone-stack")

    open_series(browser, archive.study, archive.series["coronal"], "mpr")
    for name in PLANES:
        browser.wait_picture(pane(name))
    browser.settle()
    boxes = [page.locator(f'.pane[data-pane="{n}"]').bounding_box() for n in PLANES]
    assert boxes[0]["y"] < boxes[1]["y"] < boxes[2]["y"], "one plane under the other on a narrow screen"
    assert letters(browser, "Axial")["right"] == "L" and letters(browser, "Coronal")["top"] == "H"
    before = {name: browser.picture(pane(name)) for name in PLANES}
    drag(browser, '.pane[data-pane="Axial"]', [(0.5 - 0.02 * n, 0.5 + 0.01 * n) for n in range(10)], touch=True)
    browser.settle()
    for name in ("Coronal", "Sagittal"):
        _changed_and_not_blank(before[name], browser.picture(pane(name)))
    browser.page.tap('.choice[aria-label="Tool"] button[data-value="rotate"]')
    before = {name: browser.picture(pane(name)) for name in PLANES}
    drag(browser, '.pane[data-pane="Axial"]', arc(0.5, 0.5, 0.35, 10, 60), touch=True)
    browser.settle()
    _changed_and_not_blank(before["Sagittal"], browser.picture(pane("Sagittal")))
    browser.shot("phone-mpr")

    open_series(browser, archive.study, archive.series["axial"], "3d")
    front = browser.wait_picture(pane("3D"))
    browser.settle()
    front = browser.picture(pane("3D"))
    drag(browser, ".pane", [(0.5, 0.3 + 0.04 * n) for n in range(10)], touch=True)
    browser.settle()
    _changed_and_not_blank(front, browser.picture(pane("3D")))
    browser.shot("phone-3d")
    assert expected_errors(browser) == [], browser.errors


def test_token_given_once_goes_with_every_request(tmp_path_factory: pytest.TempPathFactory,
                                                  browser_factory: Callable[..., Browser]) -> None:
    root = tmp_path_factory.mktemp("e2e-lite-auth")
    tokens = root / "tokens"
    out = io.StringIO()
    stdout, sys.stdout = sys.stdout, out
    try:
        assert cli_main(["token", "add", "viewer", "--scopes", "dicomweb.read", "--tokens", str(tokens)]) == 0
    finally:
        sys.stdout = stdout
    token = out.getvalue().strip()
    data, _ = demo_archive(root, 4, 32)
    with live_server(data, "--tokens", str(tokens)) as server:
        browser = browser_factory(origin=server.origin)
        page = browser.page
        headers: list[str | None] = []
        page.on("request", lambda r: headers.append(r.headers.get("authorization"))
                if "/dicomweb/" in r.url else None)
        page.goto(server.origin + "/lite/")
        page.wait_for_selector("#token:not([hidden])", timeout=TIMEOUT_MS)  # the search answered 401
        assert "401" in (page.text_content("#token .note") or "")
        page.fill("#token input", token)
        page.click("#token .save")
        page.wait_for_function("() => document.querySelectorAll('a.study img.thumb').length > 0 && Array.from("
                               "document.querySelectorAll('a.study img.thumb')).every(i => i.getAttribute('src'))",
                               timeout=TIMEOUT_MS)
        page.reload()  # given once: kept for the tab
        page.wait_for_selector("a.study", timeout=TIMEOUT_MS)
        assert headers[0] is None and all(h == f"Bearer {token}" for h in headers[1:]), headers
        assert [s for s, _ in browser.failed] == [401]
        assert expected_errors(browser, (401,)) == [], browser.errors

