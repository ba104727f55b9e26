"""Broken and hostile files: refused with a reason at ingest, or, once stored, a clean error per request.

Mutants of real files (bit flips, overwritten bytes, truncations, corrupted lengths, inserted and
zeroed runs) go through Store and then every Retrieve use case. Nothing may escape as anything but
the server's own errors (PS3.18 §8.5): no "processing failure" at ingest, no unexpected exception.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import anyio
import httpx
import pytest
from pydicom.data import get_testdata_file

from dicomweb_origin.app import Archive
from dicomweb_origin.errors import DicomWebError
from dicomweb_origin.negotiation import acceptable_media_types
from dicomweb_origin.retrieve import RetrieveRequest, Target
from dicomweb_origin.settings import Settings
from tests.support.archive import LoadedArchive
from tests.support.http import MULTIPART_OCTET

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning:pydicom"), pytest.mark.anyio]

SOURCES = ["CT_small.dcm", "MR_small.dcm", "emri_small.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm",
           "SC_rgb_jpeg_dcmtk.dcm", "rtplan.dcm", "emri_small_jpeg_2k_lossless.dcm", "MR_small_bigendian.dcm",
           "MR_small_implicit.dcm", "image_dfl.dcm", "SC_rgb_small_odd.dcm", "test-SR.dcm",
           "JPGLosslessP14SV1_1s_1f_8b.dcm", "waveform_ecg.dcm"]
REQUESTS = [
    ("metadata", "application/dicom+json"),
    ("metadata", 'multipart/related; type="application/dicom+xml"'),
    ("instances", 'multipart/related; type="application/dicom"'),
    ("instances", 'multipart/related; type="application/dicom"; transfer-syntax=*'),
    ("pixeldata", MULTIPART_OCTET),
    ("bulkdata", MULTIPART_OCTET),
]


def _mutate(data: bytes, r: random.Random) -> bytes:
    b = bytearray(data)
    kind = r.choice(["flip", "bytes", "truncate", "length", "insert", "zero"])
    if kind == "flip":
        for _ in range(r.randint(1, 20)):
            b[r.randrange(len(b))] ^= 1 << r.randrange(8)
    elif kind == "bytes":
        for _ in range(r.randint(1, 5)):
            at = r.randrange(len(b))
            b[at:at + 4] = r.randbytes(4)
    elif kind == "truncate":
        del b[r.randrange(len(b)):]
    elif kind == "length":
        at = r.randrange(132, min(len(b), 2000))
        b[at:at + 4] = r.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x80", b"\xfe\xff\x00\x00", r.randbytes(4)])
    elif kind == "insert":
        at = r.randrange(len(b))
        b[at:at] = r.randbytes(r.randint(1, 64))
    else:
        at = r.randrange(len(b))
        size = r.randint(1, 4096)
        b[at:at + size] = bytes(len(b[at:at + size]))
    return bytes(b)


@pytest.mark.parametrize("seed", range(4))
def test_mutated_files_are_refused_or_served_without_unexpected_errors(tmp_path: Path, seed: int) -> None:
    sources = [Path(str(get_testdata_file(name))).read_bytes() for name in SOURCES]
    r = random.Random(seed)
    stored = 0
    for number in range(100):
        mutant = _mutate(r.choice(sources), r)
        archive = Archive(Settings(data_dir=tmp_path / f"{number}"))  # a fresh archive: no UID clashes
        result = archive.ingest.store(io.BytesIO(mutant))
        assert not (result.reason or "").startswith("processing failure"), (number, result.reason)
        if result.record is None:
            continue
        stored += 1
        record = result.record
        target = Target.parse(record.study_uid, record.series_uid, record.instance_uid)
        for use_case, accept in REQUESTS:
            acceptable = acceptable_media_types(accept, [])
            try:
                request = RetrieveRequest(target, acceptable, "http://testserver/dicomweb")
                payload = anyio.run(getattr(archive.retrieve, use_case), request)
                for part in payload.parts:
                    part.read_all()
            except DicomWebError:
                pass  # a clean, mapped error (404, 406, 500 DecodeError, ...)
    assert stored > 10  # the mutants reach Retrieve, not only the ingest checks


async def test_a_codec_panic_is_a_decode_error_for_that_request(empty_archive: LoadedArchive,
                                                                empty_client: httpx.AsyncClient) -> None:
    """pylibjpeg-rle (Rust) panics on this segment; the panic is not an Exception, yet it is one request's 406."""
    data = bytearray(Path(str(get_testdata_file("MR_small_RLE.dcm"))).read_bytes())
    data[7578:7582] = bytes([216, 140, 180, 50])  # inside the RLE segment of the only frame
    result = empty_archive.app.state.archive.ingest.store(io.BytesIO(bytes(data)))
    assert result.record is not None, result.reason
    path = result.record.path.lstrip("/")
    decoded = await empty_client.get(f"{path}/frames/1", headers={"Accept": MULTIPART_OCTET})
    assert decoded.status_code == 406  # no representation in the acceptable types (errors.DecodeError)
    assert decoded.text.startswith(f"406 frame 1 of instance {result.record.instance_uid} (stored as RLE Lossless)"
                                   " does not decode:")
    stored = await empty_client.get(f"{path}/frames/1", headers={"Accept": f"{MULTIPART_OCTET}; transfer-syntax=*"})
    assert stored.status_code == 200  # the stored bitstream is still served as it is
