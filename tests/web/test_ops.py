"""Operating the server: access log, health and readiness, metrics, home page, 406 text, CLI (issue 10).

Everything goes through the real application (httpx ASGITransport) over the session archive of real
DICOM files, or a fresh archive where a test breaks it; start-up and logging of a real process are
checked once on a real ``serve`` process.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import anyio
import httpx
import pytest

from dicomweb_origin import cli
from dicomweb_origin.app import build_app
from dicomweb_origin.logs import ACCESS_LOGGER, JsonFormatter, TextFormatter, configure_logging
from dicomweb_origin.settings import Settings
from tests.support import REPO
from tests.support.archive import LoadedArchive
from tests.support.http import BASE_URL, MULTIPART_DICOM, path_of
from tests.support.reference import prepared_bytes
from tests.support.server import demo_archive, live_server

pytestmark = pytest.mark.anyio


def _origin_client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)  # type: ignore[arg-type]


@pytest.fixture
def access_lines() -> Iterator[io.StringIO]:
    """What the access logger writes, as JSON lines, while the test runs."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(ACCESS_LOGGER)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


# -- access log ---------------------------------------------------------------------------------------


async def test_access_log_writes_one_json_line_per_request_with_every_field(
        archive: LoadedArchive, access_lines: io.StringIO) -> None:
    async with _origin_client(archive.app) as client:
        response = await client.get("/dicomweb/studies?PatientID=nobody&limit=3",
                                    headers={"Accept": "application/dicom+json"})
    (line,) = _lines(access_lines)
    assert set(line) >= {"time", "method", "path", "query", "status", "bytes", "duration_ms", "client", "user"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(line["time"]))
    assert line["method"] == "GET" and line["path"] == "/dicomweb/studies"
    assert line["query"] == "PatientID=nobody&limit=3"
    assert line["status"] == response.status_code == 200
    assert line["bytes"] == len(response.content)
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["client"] == "127.0.0.1:123"  # what httpx's ASGI transport says the client is
    assert line["user"] == "-"
    assert line["resource"] == "collection"


async def test_access_log_redacts_credentials_in_the_query(
        archive: LoadedArchive, access_lines: io.StringIO) -> None:
    """A token sent as ``?access_token=`` (RFC 6750 §2.3) or another credential never reaches the log."""
    secret = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.c2lnbmF0dXJl"
    async with _origin_client(archive.app) as client:
        await client.get(f"/dicomweb/studies?PatientID=nobody&access_token={secret}&limit=3&api_key={secret}"
                         f"&X-Amz-Signature={secret}&Client%5FSecret={secret}",
                         headers={"Accept": "application/dicom+json"})
    (line,) = _lines(access_lines)
    assert secret not in json.dumps(line)
    assert line["query"] == ("PatientID=nobody&access_token=REDACTED&limit=3&api_key=REDACTED"
                             "&X-Amz-Signature=REDACTED&Client%5FSecret=REDACTED")


async def test_access_log_counts_the_bytes_of_a_streamed_multipart_response(
        archive: LoadedArchive, access_lines: io.StringIO) -> None:
    """A study retrieve larger than the small-body limit streams: every byte is counted, the line comes at the end."""
    study = path_of("CT_small", "study")
    async with _origin_client(archive.app) as client:
        response = await client.get(f"/dicomweb/{study}", headers={"Accept": MULTIPART_DICOM})
    assert response.status_code == 200
    (line,) = _lines(access_lines)
    assert line["bytes"] == len(response.content) > 0
    assert line["completed"] is True and line["resource"] == "uid"


async def test_access_log_streams_big_bodies_and_counts_them(tmp_path: Path, access_lines: io.StringIO) -> None:
    """A body above SMALL_BODY (8 MiB) is a StreamingResponse: many body messages, one line, all bytes."""
    data, _paths = demo_archive(tmp_path, slices=72, size=256)  # 72 x 128 KiB CT slices, and the rest
    app = build_app(Settings(data_dir=data))
    async with _origin_client(app) as client:
        studies = (await client.get("/dicomweb/studies", headers={"Accept": "application/dicom+json"})).json()
        sizes = {}
        for study in studies:
            uid = study["0020000D"]["Value"][0]
            response = await client.get(f"/dicomweb/studies/{uid}", headers={"Accept": MULTIPART_DICOM})
            sizes[uid] = len(response.content)
    lines = [line for line in _lines(access_lines) if line["resource"] == "uid"]
    assert max(sizes.values()) > 8 << 20  # at least one streamed
    assert sorted(cast(int, line["bytes"]) for line in lines) == sorted(sizes.values())


async def test_access_log_names_the_user_the_authentication_sets(
        archive: LoadedArchive, access_lines: io.StringIO) -> None:
    """The log reads ``scope["state"]["user"]``, where authentication puts the token's subject."""
    async with _origin_client(archive.app) as plain, _origin_client(_Outer(archive.app, "dr.house")) as authed:
        await plain.get("/health")
        await authed.get("/health")
    users = [line["user"] for line in _lines(access_lines)]
    assert users == ["-", "dr.house"]


class _Outer:
    """An application whose requests carry a user in their state, as the authentication middleware sets it."""

    def __init__(self, app: object, user: str) -> None:
        self.app, self.user = app, user

    async def __call__(self, scope: dict[str, object], receive: object, send: object) -> None:
        scope["state"] = {"user": self.user}
        await self.app(scope, receive, send)  # type: ignore[operator]


async def test_access_log_records_the_status_of_errors(archive: LoadedArchive, access_lines: io.StringIO) -> None:
    async with _origin_client(archive.app) as client:
        missing = await client.get("/dicomweb/studies/1.2.3/metadata")
        bad = await client.get("/dicomweb/studies?limit=minus-one", headers={"Accept": "application/dicom+json"})
        unknown = await client.get("/no/such/thing")
        refused = await client.post("/dicomweb/studies", content=b"x", headers={"Content-Type": "text/plain"})
    statuses = [(line["path"], line["status"], line["bytes"], line["resource"]) for line in _lines(access_lines)]
    assert statuses == [
        ("/dicomweb/studies/1.2.3/metadata", 404, len(missing.content), "metadata"),
        ("/dicomweb/studies", 400, len(bad.content), "collection"),
        ("/no/such/thing", 404, len(unknown.content), "other"),
        ("/dicomweb/studies", 415, len(refused.content), "collection"),
    ]
    assert (missing.status_code, bad.status_code, unknown.status_code, refused.status_code) == (404, 400, 404, 415)


def test_text_format_is_one_readable_line() -> None:
    fields = {"time": "2026-12-02T10:00:00.000Z", "method": "GET", "path": "/dicomweb/studies", "query": "limit=1",
              "status": 200, "bytes": 123, "duration_ms": 4.5, "client": "10.0.0.1:5000", "user": "alice",
              "completed": True}
    record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 1, "x", None, None)
    record.access = fields
    assert TextFormatter().format(record) == (
        '2026-12-02T10:00:00.000Z 10.0.0.1:5000 alice "GET /dicomweb/studies?limit=1" 200 123 4.5 ms')
    other = logging.LogRecord("dicomweb_origin", logging.WARNING, __file__, 1, "index %s", ("slow",), None)
    assert re.fullmatch(r"\S+Z WARNING dicomweb_origin: index slow", TextFormatter().format(other))
    assert json.loads(JsonFormatter().format(other))["message"] == "index slow"


async def test_text_format_through_the_app(archive: LoadedArchive) -> None:
    out = io.StringIO()
    handler = configure_logging("info", "text", out)
    try:
        async with _origin_client(archive.app) as client:
            await client.get("/health")
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
    (line,) = [line for line in out.getvalue().splitlines() if "/health" in line and '"GET' in line]
    assert re.fullmatch(r'\S+Z 127\.0\.0\.1:123 - "GET /health" 200 15 [0-9.]+ ms', line)


def test_codec_loggers_are_held_at_warning() -> None:
    out = io.StringIO()
    handler = configure_logging("debug", "json", out)
    try:
        for name in ("pydicom", "pydicom.pixels.decoders", "PIL.PngImagePlugin", "libav.swscaler", "numba",
                     "pylibjpeg"):
            logging.getLogger(name).info("chatter from %s", name)
            logging.getLogger(name).warning("a real problem in %s", name)
        logging.getLogger("dicomweb_origin").debug("our own debug line")
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
    text = out.getvalue()
    assert "chatter" not in text
    assert text.count("a real problem") == 6
    assert "our own debug line" in text


# -- health, readiness, metrics ---------------------------------------------------------------------


async def test_health_and_ready_answer_at_the_server_root(archive: LoadedArchive) -> None:
    async with _origin_client(archive.app) as client:
        health = await client.get("/health")
        ready = await client.get("/ready")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checked": ["index", "blob store"]}


@pytest.fixture
def embedded_archive(tmp_path: Path) -> Iterator[LoadedArchive]:
    """SQLite + files whatever DICOMWEB_TEST_INDEX / _BLOBS say: these tests break the file and the folder."""
    settings = Settings(data_dir=tmp_path / "data")
    loaded = LoadedArchive(build_app(settings), settings, {})
    yield loaded
    loaded.app.state.archive.close()


async def test_ready_is_503_when_the_blob_folder_is_gone(embedded_archive: LoadedArchive) -> None:
    empty_archive = embedded_archive
    shutil.rmtree(empty_archive.settings.blob_dir)
    async with _origin_client(empty_archive.app) as client:
        ready = await client.get("/ready")
        health = await client.get("/health")
    assert ready.status_code == 503
    assert set(ready.json()["failed"]) == {"blob store"}
    assert "is gone" in ready.json()["failed"]["blob store"]
    assert health.status_code == 200  # alive, not ready


async def test_ready_is_503_when_the_index_does_not_answer(embedded_archive: LoadedArchive) -> None:
    """The index file replaced by something that is not a database (a failed disk, a bad restore)."""
    empty_archive = embedded_archive
    index = empty_archive.settings.index_path
    empty_archive.index.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    index.write_bytes(b"this is not an SQLite database" * 100)
    async with _origin_client(empty_archive.app) as client:
        ready = await client.get("/ready")
    assert ready.status_code == 503
    assert list(ready.json()["failed"]) == ["index"]
    # SQLite finds a file that is not a database; PostgreSQL (DICOMWEB_TEST_INDEX) a closed connection pool.
    expected = "DatabaseError" if empty_archive.settings.index_url is None else "PoolClosed"
    assert expected in ready.json()["failed"]["index"]


async def test_metrics_count_requests_by_resource_and_status(empty_archive: LoadedArchive) -> None:
    async with _origin_client(empty_archive.app) as client:
        for data in (prepared_bytes("CT_small"), prepared_bytes("MR_small"), b"not dicom at all"):
            body = (b"--b42\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n--b42--\r\n")
            await client.post("/dicomweb/studies", content=body,
                              headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b42'})
        found = (await client.get("/dicomweb/studies", headers={"Accept": "application/dicom+json"})).json()
        study = found[0]["0020000D"]["Value"][0]
        instance = empty_archive.index.instances(study)[0].path
        for _ in range(2):  # the second is a gzip cache hit (that of a study's metadata is stored, not cached)
            await client.get(f"/dicomweb{instance}/metadata",
                             headers={"Accept": "application/dicom+json", "Accept-Encoding": "gzip"})
        await client.get("/dicomweb/studies/1.2.3/metadata")
        text = (await client.get("/metrics")).text
    metric = _metrics(text)
    assert metric['dicomweb_requests_total{method="POST",resource="collection",status="200"}'] == 2
    assert metric['dicomweb_requests_total{method="POST",resource="collection",status="409"}'] == 1
    assert metric['dicomweb_requests_total{method="GET",resource="metadata",status="200"}'] == 2
    assert metric['dicomweb_requests_total{method="GET",resource="metadata",status="404"}'] == 1
    assert metric['dicomweb_request_duration_seconds_count{resource="metadata"}'] == 3
    assert metric['dicomweb_response_bytes_total{resource="metadata"}'] > 0
    assert metric['dicomweb_instances_total{outcome="stored"}'] == 2
    assert metric['dicomweb_instances_total{outcome="failed"}'] == 1
    assert metric['dicomweb_cache_hits_total{cache="gzip"}'] == 1
    assert metric['dicomweb_cache_misses_total{cache="gzip"}'] >= 1
    assert metric['dicomweb_cache_size_bytes{cache="gzip"}'] > 0
    assert metric['dicomweb_cache_limit_bytes{cache="frames"}'] == empty_archive.settings.frame_cache_bytes
    assert metric['dicomweb_executor_queue_depth{lane="heavy"}'] == 0
    assert metric['dicomweb_executor_queue_depth{lane="light"}'] == 0
    assert metric['dicomweb_executor_running{lane="light"}'] == 0
    assert not any("1.2.3" in key for key in metric)  # labels are resource kinds, never paths


async def test_metrics_show_frame_cache_hits(archive: LoadedArchive) -> None:
    """A transcoded frame asked for twice: one miss that fills the cache, then a hit."""
    frame = path_of("CT_small") + "/frames/1"
    accept = 'multipart/related; type="image/jls"; transfer-syntax=1.2.840.10008.1.2.4.80'  # a transcode
    async with _origin_client(archive.app) as client:
        before = _metrics((await client.get("/metrics")).text)
        for _ in range(2):
            assert (await client.get(f"/dicomweb/{frame}", headers={"Accept": accept})).status_code == 200
        after = _metrics((await client.get("/metrics")).text)
    key = '{cache="frames"}'
    assert after["dicomweb_cache_hits_total" + key] - before["dicomweb_cache_hits_total" + key] >= 1
    assert after["dicomweb_cache_size_bytes" + key] > 0


async def test_each_app_has_its_own_metrics(tmp_path: Path) -> None:
    first, second = (build_app(Settings(data_dir=tmp_path / name)) for name in ("a", "b"))
    async with _origin_client(first) as a, _origin_client(second) as b:
        await a.get("/health")
        await a.get("/health")
        text = (await b.get("/metrics")).text
    assert 'resource="health"' not in text


def _metrics(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


# -- home page and conformance statement --------------------------------------------------------------


async def test_home_page_says_version_counts_and_links(archive: LoadedArchive) -> None:
    counts = archive.app.state.archive.counts()
    async with _origin_client(archive.app) as client:
        root = await client.get("/")
        dicomweb = await client.get("/dicomweb")
        conformance = await client.get("/conformance")
    assert root.status_code == dicomweb.status_code == 200
    assert root.headers["content-type"].startswith("text/html")
    assert root.text == dicomweb.text
    page = root.text
    assert "dicomweb-origin 0.1.0" in page
    stored = [r.record for r in [*archive.results.values(), *archive.demo.values()] if r.record is not None]
    assert counts["studies"] == len({r.study_uid for r in stored}) > 3
    assert counts["series"] == len({r.series_uid for r in stored})
    assert counts["instances"] == len({r.instance_uid for r in stored})
    for name in ("Studies", "Series", "Instances"):
        assert f"<tr><td>{name}</td><td>{counts[name.lower()]}</td></tr>" in page
    assert 'href="/conformance"' in page and 'href="/dicomweb/studies"' in page
    assert "curl -X OPTIONS http://testserver/dicomweb -H" in page  # the capabilities: an OPTIONS request
    assert 'href="/metrics"' in page and 'href="/ready"' in page
    assert '<a href="/">Viewer</a>' not in page  # no OHIF mounted; the built-in viewer is always there:
    assert '<a href="/lite/">Viewer</a>' in page
    assert len(re.findall(r'<a href="/lite/#/study/[0-9.]+">', page)) == min(counts["studies"], 20)
    assert conformance.status_code == 200 and conformance.text.startswith("# dicomweb-origin")


@pytest.mark.parametrize("accept", [
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",  # Chromium, Firefox
    "text/html", "text/html, */*", "text/markdown;q=0.5, text/html"])
async def test_a_browser_gets_the_conformance_statement_as_html(archive: LoadedArchive, accept: str) -> None:
    """Rendered from the Markdown (tables, code, headings with the anchors its own #links point to)."""
    async with _origin_client(archive.app) as client:
        response = await client.get("/conformance", headers={"Accept": accept})
        again = await client.get("/conformance", headers={"Accept": accept})
    assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
    assert "Accept" in response.headers["vary"] and again.text == response.text
    page = response.text
    assert page.startswith("<!doctype html>") and "<h1 id=" in page and "# dicomweb-origin" not in page
    assert page.count("<table>") >= 10 and "<td><code>1.2.840.10008.1.2.4.90</code></td>" in page
    source = (REPO / "docs" / "conformance.md").read_text(encoding="utf-8")
    ids = set(re.findall(r' id="([^"]+)"', page))
    links = set(re.findall(r"\]\(#([^)]+)\)", source))
    assert links and links <= ids, links - ids  # every in-document link lands on a heading
    assert "<!-- BEGIN" in page and "&lt;!--" not in page  # the generated sections' markers stay comments


@pytest.mark.parametrize("accept", ["*/*", "text/markdown", "text/plain", "text/markdown, text/html", None,
                                    "text/html;q=0, */*"])
async def test_other_clients_get_the_conformance_statement_as_markdown(archive: LoadedArchive,
                                                                      accept: str | None) -> None:
    async with _origin_client(archive.app) as client:
        headers = {"Accept": accept} if accept is not None else {}
        response = await client.get("/conformance", headers=headers)
    assert response.status_code == 200 and response.headers["content-type"] == "text/markdown; charset=utf-8"
    assert response.text.startswith("# dicomweb-origin") and "Accept" in response.headers["vary"]


async def test_with_a_viewer_the_root_stays_the_viewer(tmp_path: Path) -> None:
    viewer = tmp_path / "dist"
    viewer.mkdir()
    (viewer / "index.html").write_text("<html>the viewer</html>")
    app = build_app(Settings(data_dir=tmp_path / "data"), viewer)
    async with _origin_client(app) as client:
        root = await client.get("/")
        page = await client.get("/dicomweb")
        health = await client.get("/health")
    assert root.text == "<html>the viewer</html>"
    assert page.status_code == 200 and '<a href="/">Viewer</a>' in page.text
    assert "<tr><td>Studies</td><td>0</td></tr>" in page.text
    assert health.json() == {"status": "ok"}


# -- 406 -------------------------------------------------------------------------------------------------


async def test_not_acceptable_lists_the_media_types_the_resource_can_produce(client: httpx.AsyncClient) -> None:
    frames = await client.get(path_of("CT_small") + "/frames/1", headers={"Accept": 'multipart/related; type="image/gif"'})
    instance = await client.get(path_of("CT_small"), headers={"Accept": "application/dicom; transfer-syntax=1.2.3"})
    for response in (frames, instance):
        assert response.status_code == 406
        assert "docs/" not in response.text
    assert 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1' in frames.text
    assert 'type="image/jls"; transfer-syntax=1.2.840.10008.1.2.4.80' in frames.text
    assert 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1' in instance.text
    assert "transfer-syntax=1.2.840.10008.1.2.4.90" in instance.text  # JPEG 2000: a transcode this server makes
    # ... and what was asked for, as the client wrote it (nothing internal: no reprs of parsed values)
    assert frames.text.startswith('406 none of the acceptable media types (multipart/related; type="image/gif")')
    assert instance.text.startswith("406 none of the acceptable media types (application/dicom; transfer-syntax=1.2.3)")
    assert "Acceptable(" not in frames.text + instance.text


# -- command line ----------------------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == "dicomweb-origin 0.1.0"


@pytest.mark.parametrize("command", ["serve", "import", "demo"])
def test_help_gives_every_option_with_a_default_its_default(command: str) -> None:
    sub = next(a for a in cli.parser()._actions if isinstance(a, type(cli.parser()._subparsers._actions[-1])))
    parser = sub.choices[command]
    text = " ".join(parser.format_help().split())
    for action in parser._actions:
        if action.help == "show this help message and exit":
            continue
        assert action.help, f"{action.dest} has no help"
        if action.default not in (None, False, []):
            assert f"(default: {action.default})" in text, action.dest
    if command == "serve":
        assert "in MiB (default: 256)" in text
        assert "(default: 127.0.0.1)" in text and "(default: 8080)" in text and "(default: json)" in text


def test_startup_lines_name_the_archive_and_what_it_holds(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", host="0.0.0.0", port=9000)
    lines = cli.startup_lines(settings, {"studies": 3, "series": 4, "instances": 5}, viewer=tmp_path)
    assert lines[0] == f"archive: {(tmp_path / 'data').resolve()} (3 studies, 4 series, 5 instances)"
    assert "DICOMweb root: http://0.0.0.0:9000/dicomweb" in lines
    assert "viewer: http://0.0.0.0:9000/" in lines


@pytest.mark.e2e
def test_a_real_serve_process_prints_its_archive_and_logs_json(tmp_path: Path) -> None:
    """The real process: start-up lines, one JSON access line per request, no INFO lines of codec libraries."""
    data, paths = demo_archive(tmp_path, slices=4, size=64)
    with live_server(data) as server:
        studies = server.json("/studies")
        for study in studies:
            uid = study["0020000D"]["Value"][0]
            for path, accept in ((f"/studies/{uid}/rendered", 'multipart/related; type="image/jpeg"'),
                                 (f"/studies/{uid}", MULTIPART_DICOM + "; transfer-syntax=1.2.840.10008.1.2.4.80")):
                httpx.get(server.url + path, headers={"Accept": accept}, timeout=60)
        metrics = httpx.get(server.origin + "/metrics", timeout=10).text
        log = server.log.read_text()
    lines = log.splitlines()
    assert f"archive: {data.resolve()} ({len(studies)} studies," in log
    assert any(line.startswith("DICOMweb root: http://127.0.0.1:") for line in lines)
    records = [json.loads(line) for line in lines if line.startswith("{")]
    access = [r for r in records if "method" in r]
    assert len(access) >= 2 * len(studies) + 1
    assert {r["resource"] for r in access} >= {"collection", "rendered", "uid"}
    others = [r for r in records if "method" not in r]
    assert not [r for r in others if r["level"] == "INFO" and not r["logger"].startswith(("dicomweb_origin",
                                                                                       "uvicorn"))], others
    assert not [line for line in lines if "INFO" in line and not line.startswith("{")]  # uvicorn's own format
    assert "dicomweb_requests_total" in metrics and len(paths) > 5


def test_conformance_statement_has_the_ps32_shape_and_says_what_is_logged() -> None:
    text = (REPO / "docs" / "conformance.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, re.M)
    for heading in ("Product and implementation model", "SOP classes", "Roles and transactions", "Transfer syntaxes",
                    "Logging and monitoring"):
        assert heading in headings
    assert "| dicomweb-origin | 0.1.0 |" in text
    assert "`1.2.840.10008.5.1.4.1.1.104.1`" in text  # Encapsulated PDF, from the rendered category table
    logging_section = text[text.index("## Logging and monitoring"):]
    logging_section = logging_section[:logging_section.index("\n## ", 5)]
    for field_name in ("time", "method", "path", "query", "status", "bytes", "duration_ms", "client", "user"):
        assert f"`{field_name}`" in logging_section
    for endpoint in ("/health", "/ready", "/metrics", "/conformance"):
        assert f"`GET {endpoint}`" in logging_section


async def test_access_log_writes_the_line_when_the_client_goes_away(tmp_path: Path, access_lines: io.StringIO) -> None:
    """A client that disconnects in the middle of a streamed study: one line, the bytes sent so far, not completed."""
    data, _paths = demo_archive(tmp_path, slices=72, size=256)
    app = build_app(Settings(data_dir=data))
    async with _origin_client(app) as client:
        studies = (await client.get("/dicomweb/studies?includefield=00201208",
                                    headers={"Accept": "application/dicom+json"})).json()
    biggest = max(studies, key=lambda s: s["00201208"]["Value"][0])["0020000D"]["Value"][0]
    bodies: list[int] = []
    gone = anyio.Event()

    async def receive() -> dict[str, object]:
        if not bodies and not gone.is_set():
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.body":
            if len(bodies) == 3:
                gone.set()
                raise OSError("connection reset by peer")
            bodies.append(len(message.get("body", b"")))  # type: ignore[arg-type]

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": f"/dicomweb/studies/{biggest}", "raw_path": b"",
             "query_string": b"", "root_path": "", "client": ("10.1.2.3", 4567), "server": ("127.0.0.1", 8080),
             "headers": [(b"host", b"127.0.0.1:8080"), (b"accept", MULTIPART_DICOM.encode())]}
    with contextlib.suppress(Exception):  # Starlette re-raises the disconnect once the response has started
        await app(scope, receive, send)
    (line,) = [line for line in _lines(access_lines) if line["path"] == scope["path"]]
    assert line["completed"] is False
    assert line["bytes"] == sum(bodies) > 0
    assert line["status"] == 200 and line["client"] == "10.1.2.3:4567"


async def test_access_log_names_the_token_of_a_real_authenticated_request(tmp_path: Path,
                                                                           access_lines: io.StringIO) -> None:
    """With --tokens, the token's name is the access log's user; a refused request is logged with its 401."""
    from dicomweb_origin.auth import add_token

    tokens = tmp_path / "tokens"
    token = add_token(tokens, "night-shift", ["dicomweb.read"])
    app = build_app(Settings(data_dir=tmp_path / "data", tokens_file=tokens))
    async with _origin_client(app) as client:
        ok = await client.get("/dicomweb/studies", headers={"Authorization": f"Bearer {token}",
                                                            "Accept": "application/dicom+json"})
        refused = await client.get("/dicomweb/studies")
        health = await client.get("/health")
    assert (ok.status_code, refused.status_code, health.status_code) == (200, 401, 200)
    assert [(line["status"], line["user"]) for line in _lines(access_lines)] == [
        (200, "night-shift"), (401, "-"), (200, "-")]
