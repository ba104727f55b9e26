"""OHIF 3.13 itself, in headless Chromium, opening the 300-slice CT from this server and from Orthanc 1.13 in turn.

    .venv/bin/python benchmarks/ohif.py [--rounds 3] [--views stack,mpr] [--orthanc DIR] [--server-arg=...]

The pinned viewer (scripts/fetch_ohif.py) is served by nginx, which also proxies the DICOMweb root ``/dicomweb/`` to
the server under test (keep-alive to it, unbuffered): the same static files, the same app-config.js (this server's
own, web/viewer.py) and the same proxy for both, so only the DICOMweb server differs. Each run launches a fresh
Chromium (a fresh profile and context, nothing cached) and opens ``/viewer?StudyInstanceUIDs=<study>``: the stack
view, or with ``&hangingprotocolId=mpr`` the MPR layout. Rounds alternate the servers.

Figures, from inside the page (cornerstone's events and the browser's Resource Timing), times from navigation:
* first image: the first viewport canvas that shows an image (the e2e test's non-blank check);
* all frames: every instance of the series loaded and decoded (cornerstone's IMAGE_LOADED, one per image);
* MPR three views: all three viewports of the MPR layout show an image;
* bytes and requests of DICOMweb; CPU seconds of the server, of nginx and of the browser (per process type).
Where the time goes: the page shell (static files and OHIF's start), search + metadata (server time = time to first
byte), frames (time to first byte: server; transfer: network; requests in flight), and what the browser adds after
the bytes arrive (decode, render). Asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from anchors import (
    Nginx,
    Orthanc,
    cli_import,
    cpu_seconds,
    dataset,
    orthanc_announced,
    peer_arguments,
)
from common import Server, machine_line
from pool import ClientPool

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [  # as tests/e2e_ohif: software WebGL (SwiftShader), nothing in the background
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--enable-unsafe-swiftshader",
]
VIEWPORT = {"width": 1280, "height": 900}
TIMEOUT_S = 120

# Recorded in the page: the time each image was loaded (decoded), each viewport first showed an image, the volume
# finished. Viewports are checked on cornerstone's IMAGE_RENDERED (captured on the document) and every 100 ms.
INIT_JS = r"""
performance.setResourceTimingBufferSize(100000);
window.__bench = {loaded: {}, loadedCount: 0, views: {}, viewsBy: {}, volumeDone: null, hooked: null};
(function () {
  const b = window.__bench;
  function nonBlank(canvas) {
    const w = canvas.width, h = canvas.height;
    if (!w || !h) return false;
    const copy = document.createElement('canvas'); copy.width = w; copy.height = h;
    const ctx = copy.getContext('2d'); ctx.drawImage(canvas, 0, 0);
    const data = ctx.getImageData(0, 0, w, h).data, n = 64, values = [];
    for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) {
      const x = Math.floor((i + 0.5) * w / n), y = Math.floor((j + 0.5) * h / n), k = (y * w + x) * 4;
      values.push(Math.round(0.299 * data[k] + 0.587 * data[k + 1] + 0.114 * data[k + 2]));
    }
    const mean = values.reduce((a, v) => a + v, 0) / values.length;
    const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) * (v - mean), 0) / values.length);
    return values.filter(v => v > 8).length / values.length > 0.05 && sd > 5 && new Set(values).size > 16;
  }
  function check(element, how) {
    if (!element || !element.querySelector) return;
    const canvas = element.querySelector('canvas.cornerstone-canvas');
    const id = element.getAttribute('data-viewport-uid') || element.id || String(Array.from(
      document.querySelectorAll('canvas.cornerstone-canvas')).indexOf(canvas));
    if (!canvas || id in b.views) return;
    try { if (nonBlank(canvas)) { b.views[id] = performance.now(); b.viewsBy[id] = how; } } catch (e) {}
  }
  function hook() {
    const cs = window.cornerstone;
    if (!cs || !cs.eventTarget || !cs.Enums) { setTimeout(hook, 5); return; }
    const E = cs.Enums.Events;
    b.hooked = performance.now();
    cs.eventTarget.addEventListener(E.IMAGE_LOADED, (ev) => {
      const id = ev.detail && ev.detail.image && ev.detail.image.imageId;
      if (id && !(id in b.loaded)) { b.loaded[id] = performance.now(); b.loadedCount++; }
    });
    cs.eventTarget.addEventListener(E.IMAGE_VOLUME_LOADING_COMPLETED, () => { b.volumeDone = performance.now(); });
    document.addEventListener(E.IMAGE_RENDERED, (ev) => check(ev.target, 'event'), true);
    setInterval(() => document.querySelectorAll('canvas.cornerstone-canvas').forEach(
      (c) => check(c.closest('.viewport-element') || c.parentElement, 'poll')), 100);
  }
  hook();
})();
"""

COLLECT_JS = """() => ({
  bench: window.__bench,
  resources: performance.getEntriesByType('resource').filter(e => e.name.includes('/dicomweb/')).map(e => ({
    name: e.name, start: e.startTime, requestStart: e.requestStart, responseStart: e.responseStart,
    end: e.responseEnd, transfer: e.transferSize, body: e.encodedBodySize, status: e.responseStatus})),
  navigation: performance.getEntriesByType('navigation').map(e => e.toJSON())[0],
})"""


@dataclass
class Target:
    name: str
    nginx: Nginx
    cpu: Callable[[], float]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx.port}"


@dataclass
class Run:
    """One page load: the figures (ms from navigation), where the time went, bytes, requests, CPU seconds."""

    figures: dict[str, float | None]
    parts: dict[str, float | None]
    bytes: int
    requests: int
    failed: int
    cpu: dict[str, float]
    notes: list[str] = field(default_factory=list)


def fetch_viewer() -> Path:
    """The pinned OHIF build (scripts/fetch_ohif.py: npm pack once, cached in .ohif/)."""
    spec = importlib.util.spec_from_file_location("fetch_ohif", REPO / "scripts" / "fetch_ohif.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Path(module.fetch(log=lambda message: None))


def nginx_for(root: Path, dist: Path, upstream_root: str) -> Nginx:
    """nginx serving OHIF's files and this repository's app-config.js, proxying /dicomweb/ (and Orthanc's own
    /dicom-web/, named in its BulkDataURIs) to the server under test (its port: ``fill["upstream"]``)."""
    from dicomweb_origin.settings import Settings
    from dicomweb_origin.web.viewer import app_config

    root.mkdir(parents=True, exist_ok=True)
    (root / "app-config.js").write_text(app_config(Settings()))
    proxy = (f"proxy_pass http://upstream{upstream_root}; proxy_http_version 1.1; "
             'proxy_set_header Connection ""; proxy_set_header Host $http_host; proxy_buffering off;')
    servers = f"""  upstream upstream {{ server 127.0.0.1:{{upstream}}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{{port}};
    root {dist};
    add_header Cross-Origin-Opener-Policy same-origin always;
    add_header Cross-Origin-Embedder-Policy require-corp always;
    add_header Cross-Origin-Resource-Policy same-origin always;
    location = /app-config.js {{ alias {root}/app-config.js; }}
    location /dicomweb/ {{ {proxy} }}
    location /dicom-web/ {{ {proxy} }}
    location / {{ try_files $uri /index.html; }}
  }}"""
    return Nginx(root, servers)


def browser_cpu() -> dict[str, float]:
    """CPU seconds of this process's Chromium descendants, by process type (renderer, gpu, utility, browser)."""
    out: dict[str, float] = {}
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "chrom" not in p.name():
                continue
            cmd = " ".join(p.cmdline())
            kind = "browser"
            for flag in ("renderer", "gpu-process", "utility", "zygote"):
                if f"--type={flag}" in cmd:
                    kind = flag.replace("-process", "")
            times = p.cpu_times()
            out[kind] = out.get(kind, 0.0) + times.user + times.system
    return out


def one_run(playwright: Any, target: Target, study: str, view: str, instances: int,
            meters: dict[str, Callable[[], float]]) -> Run:
    url = f"{target.url}/viewer?StudyInstanceUIDs={study}" + ("&hangingprotocolId=mpr" if view == "mpr" else "")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        context = browser.new_context(viewport=VIEWPORT)
        context.add_init_script(INIT_JS)
        page = context.new_page()
        page.goto("about:blank")
        before = {name: meter() for name, meter in meters.items()}
        chrome_before = browser_cpu()
        page.goto(url, wait_until="commit")
        views = 3 if view == "mpr" else 1
        try:
            page.wait_for_function(
                f"() => window.__bench && Object.keys(window.__bench.views).length >= {views} && "
                f"window.__bench.loadedCount >= {instances}", polling=200, timeout=TIMEOUT_S * 1000)
        except Exception as exc:  # noqa: BLE001 - playwright's TimeoutError: say what the page got to
            state = page.evaluate(COLLECT_JS)
            shot = Path(tempfile.gettempdir()) / f"ohif-bench-{target.name.split()[0]}-{view}.png"
            page.screenshot(path=str(shot))
            bench = state["bench"]
            raise RuntimeError(
                f"{target.name} {view}: {type(exc).__name__} after {TIMEOUT_S} s: {len(bench['views'])} of {views} "
                f"views shown, {bench['loadedCount']} of {instances} images loaded, {len(state['resources'])} "
                f"DICOMweb requests, cornerstone hooked at {bench['hooked']}; screenshot {shot}") from None
        page.wait_for_timeout(300)  # let the last resource timing entries land
        cpu = {name: meter() - before[name] for name, meter in meters.items()}
        chrome = browser_cpu()
        for kind, seconds in chrome.items():
            cpu[f"browser {kind}"] = seconds - chrome_before.get(kind, 0.0)
        collected = page.evaluate(COLLECT_JS)
        context.close()
    finally:
        browser.close()
    return analyse(collected, view, instances, cpu)


def analyse(collected: dict[str, Any], view: str, instances: int, cpu: dict[str, float]) -> Run:
    bench, resources = collected["bench"], collected["resources"]
    frames = [r for r in resources if "/frames/" in r["name"]]
    other = [r for r in resources if "/frames/" not in r["name"]]
    views = sorted(bench["views"].values())
    loaded = sorted(bench["loaded"].values())
    figures: dict[str, float | None] = {
        "first image": views[0] if views else None,
        "all frames": loaded[instances - 1] if len(loaded) >= instances else None,
    }
    if view == "mpr":
        figures = {"MPR three views": views[2] if len(views) >= 3 else None,
                   "MPR all frames": figures["all frames"]}
    first_call = min((r["start"] for r in resources), default=None)
    # The page shell (the same static files from the same nginx) is noise here: the same figures counted from
    # OHIF's first DICOMweb request are the part a DICOMweb server can change.
    for key, value in list(figures.items()):
        figures[f"{key}, from the first DICOMweb request"] = (
            value - first_call if value is not None and first_call is not None else None)
    parts: dict[str, float | None] = {}
    parts["page shell (static files, OHIF starts) until the first DICOMweb request"] = first_call
    metadata = [r for r in other if r["name"].split("?")[0].endswith("/metadata")]
    if first_call is not None and metadata:
        parts["search + metadata (until the series metadata arrived)"] = metadata[0]["end"] - first_call
        parts["  of which the server's time to first byte, summed"] = sum(
            r["responseStart"] - r["requestStart"] for r in other)
        parts["  of which the metadata transfer"] = metadata[0]["end"] - metadata[0]["responseStart"]
    if frames:
        first = min(frames, key=lambda r: r["end"])
        start = min(r["start"] for r in frames)
        end = max(r["end"] for r in frames)
        parts["frames: first request to the last byte of the last frame"] = end - start
        parts["  per frame: time to first byte (server + proxy), median"] = statistics.median(
            r["responseStart"] - r["requestStart"] for r in frames)
        parts["  per frame: transfer (network, and the browser taking the bytes), median"] = statistics.median(r["end"] - r["responseStart"]
                                                                            for r in frames)
        parts["  per frame: queued in the browser before it was sent, median"] = statistics.median(
            max(0.0, r["requestStart"] - r["start"]) for r in frames)
        parts["  requests on the wire, mean"] = sum(r["end"] - r["requestStart"] for r in frames) / max(end - start, 1)
        parts["  time with no frame request on the wire (the browser sets the pace)"] = idle(frames, start, end)
        by_url = {r["name"]: r["end"] for r in frames}
        after = [t - by_url[i.removeprefix("wadors:")] for i, t in bench["loaded"].items()
                 if i.removeprefix("wadors:") in by_url]
        if after:
            parts["browser: last byte of a frame to its image loaded (decode), median"] = statistics.median(after)
        if figures.get("all frames") or figures.get("MPR all frames"):
            done = figures.get("all frames") or figures.get("MPR all frames")
            parts["browser: last frame's bytes to all frames loaded"] = (done or 0) - end
        first_view = views[0] if views else None
        if first_view is not None:
            parts["first frame: request to last byte"] = first["end"] - first["start"]
            parts["browser: first frame's bytes to the first image shown"] = first_view - first["end"]
    notes = []
    failed = [r for r in resources if r.get("status") and r["status"] >= 400]
    if failed:
        notes.append(f"{len(failed)} DICOMweb answers >= 400, e.g. {failed[0]['status']} {failed[0]['name'][:100]}")
    return Run(figures, parts, sum(r["transfer"] for r in resources), len(resources), len(failed), cpu, notes)


def idle(requests: list[dict[str, Any]], start: float, end: float) -> float:
    """Time in [start, end] covered by no request between its send and its last byte."""
    spans = sorted((r["requestStart"], r["end"]) for r in requests)
    covered, reach = 0.0, start
    for a, b in spans:
        a, b = max(a, reach), min(b, end)
        if b > a:
            covered += b - a
            reach = b
    return (end - start) - covered


# -- printing ------------------------------------------------------------------------------------------------


def med(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def report(runs: dict[tuple[str, str], list[Run]], names: list[str], views: list[str]) -> None:
    print("\n== figures (median of the rounds; ms from navigation; ratio ours / Orthanc with the per-round range)")
    head = ["figure", *names] + (["ours / Orthanc 1.13"] if len(names) == 2 else [])
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for view in views:
        keys = list(runs[(view, names[0])][0].figures)
        for key in keys:
            values = {n: [r.figures.get(key) for r in runs[(view, n)]] for n in names}
            cells = [f"{view}: {key}", *(_ms(med(values[n])) for n in names)]
            if len(names) == 2:
                pairs = [(a, b) for a, b in zip(values[names[0]], values[names[1]], strict=False) if a and b]
                mid = (med(values[names[0]]) or 0) / (med(values[names[1]]) or 1) if pairs else None
                cells.append("—" if mid is None else f"{mid:.2f}× ({min(a / b for a, b in pairs):.2f}–"
                             f"{max(a / b for a, b in pairs):.2f})")
            print("| " + " | ".join(cells) + " |")
        for label, get in (("DICOMweb bytes (MB)", lambda r: r.bytes / 1e6), ("DICOMweb requests", lambda r: r.requests)):
            cells = [f"{view}: {label}", *(f"{med([get(r) for r in runs[(view, n)]]):,.1f}" for n in names)]
            print("| " + " | ".join(cells) + (" | |" if len(names) == 2 else " |"))
        cpu_keys = sorted({k for n in names for r in runs[(view, n)] for k in r.cpu})
        for key in cpu_keys:
            cells = [f"{view}: CPU s, {key}", *(f"{med([r.cpu.get(key) for r in runs[(view, n)]]) or 0:.2f}"
                                                 for n in names)]
            print("| " + " | ".join(cells) + (" | |" if len(names) == 2 else " |"))
    print("\n== where the time goes (median of the rounds, ms)")
    for view in views:
        print(f"| {view} | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
        keys = list(dict.fromkeys(k for n in names for r in runs[(view, n)] for k in r.parts))
        for key in keys:
            print(f"| {key} | " + " | ".join(_ms(med([r.parts.get(key) for r in runs[(view, n)]])) for n in names)
                  + " |")
    for (view, name), items in runs.items():
        for r in items:
            for note in r.notes:
                print(f"  NOTE {view} {name}: {note}")


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.2f}"


# -- main ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--views", default="stack,mpr", help="stack, mpr or both (default stack,mpr)")
    parser.add_argument("--slices", type=int, default=300, help="CT slices (default 300)")
    parser.add_argument("--size", type=int, default=512, help="CT matrix (default 512)")
    peer_arguments(parser)
    parser.add_argument("--viewer", type=Path, default=None, help="OHIF dist folder (default: scripts/fetch_ohif.py)")
    parser.add_argument("--json", type=Path, default=None, help="also write every run's figures to this file")
    parser.add_argument("--tiny", action="store_true", help="8 small slices, stack view, 1 round: checks the script")
    args = parser.parse_args(argv)
    if args.tiny:
        args.slices, args.size, args.rounds, args.views = 8, 64, 1, "stack"
    views = [v for v in args.views.split(",") if v]

    print(f"OHIF 3.13 in headless Chromium on {machine_line()}", flush=True)
    from playwright.sync_api import sync_playwright

    problem = orthanc_announced(args.orthanc)
    dist = args.viewer or fetch_viewer()
    rest = {"meta_slices": 12, "meta_size": 32, "frames": 4, "j2k_slices": 5} if args.tiny else {}
    ct = dataset(args.files, slices=args.slices, size=args.size, **rest).ct
    pool = ClientPool(4)
    runs: dict[tuple[str, str], list[Run]] = {}
    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="dicomweb-ohif-"))
        stack.callback(shutil.rmtree, tmp, True)
        stack.callback(pool.close)
        run = cli_import(tmp / "ours", ct.files, [])
        if run.problem:
            raise RuntimeError(f"import failed: {run.problem}")
        # Behind a proxy our server is told its public URL (as in deploy/), which it puts in BulkDataURIs.
        proxy = nginx_for(tmp / "nginx-ours", dist, "")
        server = stack.enter_context(Server(tmp / "ours", "--public-url", f"http://127.0.0.1:{proxy.port}/dicomweb",
                                            *args.server_arg, log_path=tmp / "ours.log"))
        proxy.fill["upstream"] = str(server.port)
        stack.enter_context(proxy)
        targets = [Target("ours", proxy, lambda: cpu_seconds([server.pid]))]
        if problem is None:
            orthanc = stack.enter_context(Orthanc(args.orthanc, "ohif"))
            upload = orthanc.upload(pool, ct.files, 4)
            if upload.problem:
                raise RuntimeError(f"upload into Orthanc failed: {upload.problem}")
            front = nginx_for(tmp / "nginx-orthanc", dist, "/dicom-web/")
            front.fill["upstream"] = str(orthanc.port)
            stack.enter_context(front)
            targets.append(Target("Orthanc 1.13", front, orthanc.cpu))
        playwright = stack.enter_context(sync_playwright())
        print(f"  {len(ct.files)} slices {ct.frame_bytes // 2 ** 10} KiB each; OHIF from {dist}", flush=True)
        # Warm each server's caches and the page cache (untimed), as a viewer that opened the study before.
        for target in targets if not args.tiny else []:
            one_run(playwright, target, ct.study_uid, "stack", len(ct.files), {})
        for r in range(args.rounds):
            for view in views:
                order = targets if (r + views.index(view)) % 2 == 0 else targets[::-1]
                for target in order:
                    meters = {"server": target.cpu, "nginx (static + proxy)": target.nginx.cpu}
                    result = one_run(playwright, target, ct.study_uid, view, len(ct.files), meters)
                    runs.setdefault((view, target.name), []).append(result)
                    shown = ", ".join(f"{k} {_ms(v)} ms" for k, v in result.figures.items())
                    print(f"  round {r + 1} {view:<5} {target.name:<13} {shown}; {result.requests} requests, "
                          f"{result.bytes / 1e6:,.1f} MB, server CPU {result.cpu['server']:.2f} s", flush=True)
        names = [t.name for t in targets]
        report(runs, names, views)
        if args.json:
            args.json.write_text(json.dumps({f"{v} {n}": [r.__dict__ for r in rs] for (v, n), rs in runs.items()},
                                            indent=1))
        if problem:
            print(f"\n(Orthanc 1.13 skipped: {problem})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
