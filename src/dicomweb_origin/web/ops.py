"""What an operator asks of a running server: is it alive, is it ready, its metrics, and a home page.

``GET /health`` answers while the process serves at all; ``GET /ready`` only when the index and the
blob store answer (each check runs in a thread of its own with a time limit, so a hung backend is a 503,
not a hung probe). ``GET /metrics`` is the Prometheus scrape. ``GET /`` (unless a viewer is mounted
there) and ``GET {root}`` are a small HTML page: version, archive counts and links to the
conformance statement (``GET /conformance``), the viewer, and how to ask for the capabilities
description (an ``OPTIONS`` request, which a link cannot make).

``GET /conformance`` is the conformance statement: Markdown as written, or HTML for a browser (a client that
names ``text/html`` and prefers it), rendered with markdown-it-py (CommonMark and GitHub's tables, headings with
GitHub's anchors, so the statement's own ``#section`` links work).
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ..negotiation import parse_media_range, split_list
from ..settings import Settings
from .metrics import CONTENT_TYPE, Metrics

READY_TIMEOUT = 5.0  # seconds a readiness check may take before the backend counts as not answering


@dataclass(frozen=True)
class Probes:
    """What the composition root tells the web layer about the archive behind it."""

    version: str = "unknown"
    # readiness: name -> a call that returns when that part answers and raises when it does not
    checks: Mapping[str, Callable[[], object]] = field(default_factory=dict)
    counts: Callable[[], Mapping[str, int]] = lambda: {}  # studies, series, instances
    # the first studies of the index: (Study Instance UID, what the page shows of it) for the viewer's links
    studies: Callable[[], Sequence[tuple[str, str]]] = lambda: ()
    conformance: Path | None = None  # the conformance statement (Markdown), when it can be found


def _check(call: Callable[[], object], timeout: float) -> str | None:
    """None when ``call`` returns within ``timeout``; else what went wrong, in a few words."""
    outcome: list[str | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", said in the answer
            outcome.append(f"{type(exc).__name__}: {exc}"[:300])

    thread = threading.Thread(target=run, name="ready-check", daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


class Ops:
    """The operator's endpoints of one application."""

    def __init__(self, probes: Probes, metrics: Metrics, settings: Settings, viewer: bool) -> None:
        self.probes = probes
        self.metrics = metrics
        self.settings = settings
        self.viewer = viewer
        self._rendered: tuple[int, str] | None = None  # the conformance statement as HTML, by file mtime

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        failed: dict[str, str] = {}
        for name, call in self.probes.checks.items():
            problem = await run_in_threadpool(_check, call, READY_TIMEOUT)
            if problem is not None:
                failed[name] = problem
        if failed:
            return JSONResponse({"status": "unavailable", "failed": failed}, status_code=503)
        return JSONResponse({"status": "ready", "checked": list(self.probes.checks)})

    async def scrape(self, request: Request) -> Response:
        return Response(await run_in_threadpool(self.metrics.scrape), media_type=CONTENT_TYPE)

    async def conformance(self, request: Request) -> Response:
        path = self.probes.conformance
        if path is None or not path.is_file():
            return PlainTextResponse("404 the conformance statement is not installed with this server\n", 404)
        headers = {"Vary": "Accept"}
        if prefers_html(request.headers.get("accept")):
            return HTMLResponse(await run_in_threadpool(self._conformance_html, path), headers=headers)
        text = await run_in_threadpool(path.read_text, encoding="utf-8")
        return PlainTextResponse(text, media_type="text/markdown; charset=utf-8", headers=headers)

    def _conformance_html(self, path: Path) -> str:
        """The statement as an HTML page, rendered once per version of the file (it takes ~0.15 s)."""
        stamp = path.stat().st_mtime_ns
        if self._rendered is None or self._rendered[0] != stamp:
            self._rendered = (stamp, markdown_page(path.read_text(encoding="utf-8"), self.probes.version))
        return self._rendered[1]

    async def home(self, request: Request) -> Response:
        try:
            counts = dict(await run_in_threadpool(self.probes.counts))
            studies = list(await run_in_threadpool(self.probes.studies))
        except Exception as exc:  # noqa: BLE001 - the page still says what it can
            counts, studies = {}, []
            problem = f"the index does not answer ({type(exc).__name__})"
        else:
            problem = ""
        public = self.settings.public_url
        url = public.rstrip("/") if public else str(request.base_url).rstrip("/") + self.settings.root_path
        return HTMLResponse(home_page(self.probes.version, counts, self.settings.root_path, self.viewer, problem, url,
                                      studies), headers={"Cache-Control": "no-cache"})


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dicomweb-origin {version}</title><link rel="icon" href="data:,">
<style>body{{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}
code{{background:#f3f3f3;padding:0 .2em}}td{{padding:0 1em 0 0}}</style></head>
<body><h1>dicomweb-origin {version}</h1>
<p>A DICOMweb origin server: WADO-RS Retrieve, STOW-RS and QIDO-RS. DICOMweb root: <a href="{root}/studies"><code>{root}</code></a></p>
<h2>Archive</h2>
<table id="counts">{counts}</table>{problem}{studies}
<h2>Links</h2>
<ul>
<li><a href="/lite/">Viewer</a> (built in: stack, MPR and 3D rendered by this server; nothing to install)</li>
<li><a href="{root}/studies">Studies</a> (QIDO-RS: <code>GET {root}/studies</code>, DICOM JSON)</li>
<li>Capabilities: <code>curl -X OPTIONS {url} -H 'Accept: application/vnd.sun.wadl+xml'</code>
(or <code>application/json</code>; the Retrieve Capabilities transaction is an OPTIONS request, PS3.18 §8.9)</li>
<li><a href="/conformance">Conformance statement</a></li>
{viewer}<li><a href="/health">Health</a>, <a href="/ready">readiness</a>, <a href="/metrics">metrics</a> (Prometheus)</li>
</ul></body></html>
"""


def home_page(version: str, counts: Mapping[str, int], root: str, viewer: bool, problem: str = "",
              url: str = "", studies: Sequence[tuple[str, str]] = ()) -> str:
    """The page; ``url`` is the absolute DICOMweb root for the capabilities command (the path alone if empty)."""
    rows = "".join(f"<tr><td>{html.escape(name.capitalize())}</td><td>{value}</td></tr>"
                   for name, value in counts.items())
    listed = "".join(f'<li><a href="/lite/#/study/{html.escape(uid)}">{html.escape(label)}</a></li>'
                     for uid, label in studies)
    return PAGE.format(version=html.escape(version), root=html.escape(root), url=html.escape(url or root), counts=rows,
                       studies=f'<h2>Studies</h2>\n<ul id="studies">{listed}</ul>' if listed else "",
                       problem=f"<p>{html.escape(problem)}</p>" if problem else "",
                       viewer='<li><a href="/">Viewer</a> (OHIF)</li>\n' if viewer else "")


def prefers_html(accept: str | None) -> bool:
    """Whether a client names ``text/html`` and prefers it to Markdown (RFC 9110 §12.5.1).

    A browser (``text/html, ..., */*;q=0.8``) gets HTML; ``*/*`` alone (curl, scripts) gets the Markdown:
    on equal quality the more specific range wins, and Markdown named as much as HTML wins.
    """
    best = {"html": (0.0, -1), "markdown": (0.0, -1)}  # (q, specificity) of the best range for each
    for item in split_list(accept or ""):
        parsed = parse_media_range(item)
        if parsed is None:
            continue
        media_type, params = parsed
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            continue
        if media_type == "text/html":
            best["html"] = max(best["html"], (q, 2))
        elif media_type in ("text/markdown", "text/*", "*/*"):
            specificity = {"text/markdown": 2, "text/*": 1, "*/*": 0}[media_type]
            best["markdown"] = max(best["markdown"], (q, specificity))
    return best["html"][0] > 0 and best["html"] > best["markdown"]


CONFORMANCE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dicomweb-origin {version}: conformance statement</title>
<style>body{{font-family:system-ui,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}
code{{background:#f3f3f3;padding:0 .2em}}pre{{background:#f3f3f3;padding:.5em;overflow-x:auto}}
table{{border-collapse:collapse;margin:1em 0}}th,td{{border:1px solid #ccc;padding:.2em .5em;vertical-align:top}}
th{{background:#f3f3f3}}</style></head>
<body>
<p><a href="/conformance" type="text/markdown">Markdown source</a></p>
{body}</body></html>
"""


def markdown_page(text: str, version: str) -> str:
    """A Markdown document as a page: CommonMark plus tables and strikethrough, headings with GitHub's anchors."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.anchors import anchors_plugin

    renderer = MarkdownIt("commonmark").enable(["table", "strikethrough"]).use(anchors_plugin, max_level=6)
    return CONFORMANCE_PAGE.format(version=html.escape(version), body=renderer.render(text))


def ops_routes(ops: Ops) -> list[BaseRoute]:
    """The routes outside the DICOMweb root, and the root's own page; they go before every Mount."""
    found: list[BaseRoute] = [
        Route("/health", ops.health, methods=["GET"], name="health"),
        Route("/ready", ops.ready, methods=["GET"], name="ready"),
        Route("/metrics", ops.scrape, methods=["GET"], name="metrics"),
        Route("/conformance", ops.conformance, methods=["GET"], name="conformance"),
    ]
    root = ops.settings.root_path.rstrip("/")
    if root:
        found.append(Route(root, ops.home, methods=["GET"], name="home"))
    if not ops.viewer or not root:  # with a viewer, / is the viewer's
        found.append(Route("/", ops.home, methods=["GET"], name="home"))
    return found
