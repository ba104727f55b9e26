"""Property-based fuzzing of the HTTP surface: no request, however odd, gets a 5xx or logs a traceback.

Hypothesis generates paths (stored and made-up UIDs, malformed ones, every resource word, frame
lists), query parameters (the Rendered, metadata and search keys of PS3.18 §8.3 with valid and junk
values) and headers (Accept, Accept-Charset, Range, If-None-Match, If-Range, Content-Type), and sends
them through the real ASGI application over the session archive (the reference instances and the
small demo). Every answer must be the server's own 1xx-4xx (bad input gets the status the standard
names, §8.5), and nothing may be logged at ERROR or with a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.archive import LoadedArchive
from tests.support.http import BASE_URL

EXAMPLES = 1250
REQUESTS_PER_EXAMPLE = 8  # 10,000 requests in all

RESOURCES = ["metadata", "rendered", "thumbnail", "pixeldata", "bulkdata", "bulkdata/7FE00010",
             "bulkdata/00282000", "bulkdata/00431029", "bulkdata/0040A730/1/0040A160", "frames/1", "frames/1,2",
             "frames/1/rendered", "frames/2/thumbnail", "frames/0", "", "instances", "series", "junk"]
FRAME_LISTS = ["1", "2", "1,2", "2,1", "0", "-1", "1,,2", "a", "1.5", " 1", "1%2C2", "99999999999999999999",
               "3,1,2", "1,1", "4294967297", "", "%00", "1;2"]
JUNK = ["", " ", "-1", "0", "1e309", "nan", "inf", "%", "%00", "\u00e9", "\u202e", "a" * 300, "1,2,3,4,5,6,7",
        "..", "/", "\\", "*", "?", "'\"", "<x>", "0x10", "9" * 30, "1.2.3", ",", "=", "&"]
RENDERED_KEYS = {
    "window": ["40,400,linear", "40,400", "1,0,linear", "-1e308,1e308,sigmoid", "40,400,linear-exact", "a,b,c"],
    "viewport": ["64,64", "256,256,0,0,-256,256", "1,1", "0,0", "100000,100000", "64,64,-5,-5,10,10", "64"],
    "quality": ["1", "100", "101", "0", "50.5"],
    "annotation": ["patient", "technique", "patient,technique", "bogus", ""],
    "iccprofile": ["no", "yes", "srgb", "adobergb", "rommrgb", "displayp3", "bogus"],
    "charset": ["utf-8", "iso-8859-1", "bogus"],
    "accept": ["image/jpeg", "image/png", "image/gif", "video/mp4", "application/dicom+json", "text/html", "*/*"],
}
SEARCH_KEYS = {
    "limit": ["1", "0", "-1", "100000000000", "x"],
    "offset": ["0", "5", "-3", "x"],
    "fuzzymatching": ["true", "false", "maybe"],
    "emptyvaluematching": ["true", "false"],
    "multiplevaluematching": ["true", "false", "1"],
    "includefield": ["all", "00100010", "PatientName", "0020000D", "bogus", "00081190", "7FE00010", "00400275.00080100"],
    "PatientName": ["demo*", "*", "?", "^", "=", "Doe^John", "\\"],
    "PatientID": ["DEMO-PHANTOM-1", "*", "a\\b"],
    "StudyDate": ["20200101", "20200101-", "-20200101", "20200101-20191231", "2020", "x"],
    "StudyTime": ["1200", "1200-1300", "25", "-"],
    "StudyInstanceUID": ["1.2.3", "1.2.3\\4.5.6", "1.2.3,4.5.6", "x"],
    "Modality": ["CT", "MR", "CT\\MR", ""],
    "ModalitiesInStudy": ["CT", "CT,MR"],
    "00080060": ["CT"],
    "00100020": ["*"],
    "NumberOfFrames": ["1", "x"],
    "InstanceNumber": ["1", "1-2", "x"],
    "00400275.00080100": ["x"],
    "ReferencedSOPSequence.ReferencedSOPClassUID": ["1.2"],
    "SOPClassUID": ["1.2.840.10008.5.1.4.1.1.2"],
}
ACCEPTS = ["application/dicom+json", "application/json", "application/dicom", "application/octet-stream",
           'multipart/related; type="application/dicom"', 'multipart/related; type="application/dicom"; transfer-syntax=*',
           'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.80',
           'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90',
           'multipart/related; type="application/octet-stream"', 'multipart/related; type="application/octet-stream"; '
           'transfer-syntax=*', 'multipart/related; type="application/dicom+xml"', "application/dicom+xml",
           "image/jpeg", "image/png", "image/gif", "image/jp2", "video/mp4", "text/html", "text/plain",
           "application/pdf", "*/*", "image/*", "multipart/related", 'multipart/related; type="image/jpeg"',
           "image/jpeg;q=0", "application/dicom+json;q=0.5, image/png", "text/html;q=abc", ";;;", "a/b/c",
           'multipart/related; type="application/dicom"; type="application/dicom"', "image/jpeg; charset=utf-8"]
CHARSETS = ["utf-8", "iso-8859-1", "*", "utf-8;q=0", "bogus", "", "utf-8;q=x", "ISO_IR 192"]
RANGES = ["bytes=0-10", "bytes=-5", "bytes=10-", "bytes=5-1", "bytes=0-0,2-3", "bytes=999999999-", "bytes=x",
          "lines=1-2", "bytes=0-18446744073709551616", "bytes=-0"]
ETAGS = ['"x"', "*", 'W/"x"', '"a", "b"', "", '"']
CONTENT_TYPES = ['multipart/related; type="application/dicom"; boundary=b',
                 'multipart/related; type="application/dicom"', "application/dicom", "multipart/related; boundary=",
                 'multipart/related; type="application/dicom+json"; boundary=b', "text/plain", "",
                 'multipart/related; boundary="unterminated']


def _uid_strategy(stored: list[str]) -> st.SearchStrategy[str]:
    made_up = st.lists(st.integers(0, 10**12), min_size=1, max_size=8).map(lambda xs: ".".join(map(str, xs)))
    return st.one_of(
        st.sampled_from(stored),
        made_up,
        st.sampled_from(["1.2.3", "0.0", "1..2", ".1", "1.", "01.2", "1.2.a", "1" * 65, "1.2.3%00", "%2e%2e",
                         "..", "1.2.3;x", "1.2.3?x", "\u0661.\u0662", "*", "1,2"]),
        st.text(min_size=0, max_size=20).map(lambda s: quote(s, safe="")),
    )


def _path(uid: st.SearchStrategy[str], triples: list[tuple[str, str, str]]) -> st.SearchStrategy[str]:
    """A path under the root; mostly of a stored instance (so that resources are reached), else made up."""
    resource = st.sampled_from(RESOURCES)
    target = st.one_of(st.sampled_from(triples), st.sampled_from(triples), st.sampled_from(triples),
                       st.tuples(uid, uid, uid))
    frames = st.sampled_from(FRAME_LISTS)
    levels = st.sampled_from(["collection", "study", "series", "instance", "frames"])

    @st.composite
    def build(draw: st.DrawFn) -> str:
        level = draw(levels)
        if level == "collection":
            return "/dicomweb/" + draw(st.sampled_from(["studies", "series", "instances", "", "capabilities",
                                                        "workitems", "studies/", "STUDIES"]))
        study, series, instance = draw(target)
        path = "/dicomweb/studies/" + study
        if level in ("series", "instance", "frames"):
            path += "/series/" + series
        if level in ("instance", "frames"):
            path += "/instances/" + instance
        if level == "frames":
            path += "/frames/" + draw(frames) + draw(st.sampled_from(["", "/rendered", "/thumbnail"]))
        else:
            word = draw(resource)
            path += ("/" + word) if word else ""
        return path

    return build()


def _query() -> st.SearchStrategy[list[tuple[str, str]]]:
    keys = {**RENDERED_KEYS, **SEARCH_KEYS}
    pair = st.sampled_from(sorted(keys)).flatmap(
        lambda key: st.tuples(st.just(key), st.one_of(st.sampled_from(keys[key]), st.sampled_from(JUNK))))
    junk_pair = st.tuples(st.sampled_from(["", "x", "00000000", "FFFFFFFF", "%", "a.b.c", "window "]),
                          st.sampled_from(JUNK))
    return st.lists(st.one_of(pair, pair, pair, junk_pair), max_size=4)


def _headers() -> st.SearchStrategy[dict[str, str]]:
    optional = {
        "Accept": st.one_of(st.sampled_from(ACCEPTS), st.sampled_from(ACCEPTS), st.lists(st.sampled_from(ACCEPTS), min_size=2, max_size=3)
                            .map(", ".join), st.sampled_from(JUNK)),
        "Accept-Charset": st.sampled_from(CHARSETS),
        "Range": st.sampled_from(RANGES),
        "If-None-Match": st.sampled_from(ETAGS),
        "If-Range": st.sampled_from(ETAGS),
        "Accept-Encoding": st.sampled_from(["gzip", "identity", "br", "gzip;q=0", "*", "x"]),
    }
    return st.fixed_dictionaries({}, optional={k: v for k, v in optional.items()})


class _Errors(logging.Handler):
    """Every record at ERROR or above, or with a traceback, from any logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)


@pytest.fixture
def errors() -> Iterator[_Errors]:
    handler = _Errors()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@pytest.mark.filterwarnings("ignore::UserWarning:pydicom")
def test_no_request_gets_a_5xx_or_logs_a_traceback(archive: LoadedArchive, errors: _Errors) -> None:
    records = [r.record for r in [*archive.results.values(), *archive.demo.values()] if r.record is not None]
    triples = sorted({(r.study_uid, r.series_uid, r.instance_uid) for r in records})
    stored = sorted({u for t in triples for u in t})
    request = st.tuples(
        st.sampled_from(["GET"] * 12 + ["HEAD", "POST", "OPTIONS", "PUT", "PATCH"]),  # no DELETE: a shared archive
        _path(_uid_strategy(stored), triples), _query(), _headers(),
        st.sampled_from(CONTENT_TYPES), st.sampled_from([b"", b"--b\r\n\r\nx\r\n--b--\r\n", b"\0" * 100]))
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=archive.app), base_url=BASE_URL, timeout=60)
    sent: list[int] = []

    async def send(method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str],
                   content_type: str, body: bytes) -> httpx.Response:
        if method == "POST":
            headers = headers | {"Content-Type": content_type}
        else:
            body = b""
        raw = [(k.encode(), v.encode()) for k, v in headers.items()]  # non-ASCII values as a client may send
        # list is invariant: httpx's stub wants list[tuple[str, str | int | ...]] though it takes these pairs
        return await client.request(method, path, params=query, headers=raw, content=body)  # type: ignore[arg-type]

    async def send_all(batch: list[tuple[str, str, list[tuple[str, str]], dict[str, str], str, bytes]]
                       ) -> list[httpx.Response]:
        return list(await asyncio.gather(*(send(*r) for r in batch)))

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(request, min_size=REQUESTS_PER_EXAMPLE, max_size=REQUESTS_PER_EXAMPLE))
    def run(batch: list[tuple[str, str, list[tuple[str, str]], dict[str, str], str, bytes]]) -> None:
        errors.records.clear()  # each example answers for its own requests
        responses = loop.run_until_complete(send_all(batch))
        sent.append(len(responses))
        for r, response in zip(batch, responses, strict=True):
            assert response.status_code < 500, (r, response.status_code, response.text[:300])
        assert not errors.records, [errors.format(rec) for rec in errors.records[:3]]

    try:
        run()
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()
    assert sum(sent) >= 10_000
