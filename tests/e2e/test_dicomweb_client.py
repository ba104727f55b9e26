"""End to end: the real server process (``python -m dicomweb_origin.cli serve``) driven by dicomweb-client.

One server per module, on a free loopback port, over an empty archive that the first test fills
through STOW-RS; the process is stopped (by its pid) when the module ends.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client import DICOMwebClient
from pydicom import Dataset, dcmread
from pydicom.encaps import generate_frames

from tests.support.reference import J2K_LOSSLESS, JLS_LOSSLESS, RLE, dataset, prepared_bytes, uids
from tests.support.server import LiveServer, live_server

pytestmark = pytest.mark.e2e

NAMES = ("CT_small", "MR_small_RLE", "emri_small_jpeg_2k_lossless", "examples_overlay", "SC_rgb", "emri_small",
         "chrH31")

@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("e2e") / "data") as server:
        yield server


@pytest.fixture(scope="module")
def server(live: LiveServer) -> str:
    return live.url


@pytest.fixture(scope="module")
def client(server: str) -> DICOMwebClient:
    return DICOMwebClient(url=server)


def _sent(name: str) -> bytes:
    """The bytes dicomweb-client sends for a dataset (it re-encodes with pydicom.dcmwrite)."""
    out = io.BytesIO()
    pydicom.dcmwrite(out, dcmread(io.BytesIO(prepared_bytes(name))))
    return out.getvalue()


@pytest.fixture(scope="module")
def stored(client: DICOMwebClient) -> dict[str, Any]:
    datasets = [dcmread(io.BytesIO(prepared_bytes(name))) for name in NAMES]
    response = client.store_instances(datasets=datasets)
    return {"response": response}


def test_store_instances(stored: dict[str, Any]) -> None:
    response: Dataset = stored["response"]
    assert [item.ReferencedSOPInstanceUID for item in response.ReferencedSOPSequence] == [
        uids(name).instance for name in NAMES]
    assert "FailedSOPSequence" not in response
    for item, name in zip(response.ReferencedSOPSequence, NAMES, strict=True):
        assert item.ReferencedSOPClassUID == uids(name).sop_class
        assert item.RetrieveURL.endswith(uids(name).path)


def test_retrieve_study_series_and_instance(client: DICOMwebClient, stored: dict[str, Any]) -> None:
    u = uids("emri_small")
    study = client.retrieve_study(u.study)
    in_study = {ds.SOPInstanceUID for ds in study}
    assert {uids(n).instance for n in NAMES if uids(n).study == u.study} == in_study
    series = client.retrieve_series(u.study, u.series)
    assert {ds.SOPInstanceUID for ds in series} == {uids(n).instance for n in NAMES if uids(n).series == u.series}
    instance = client.retrieve_instance(u.study, u.series, u.instance)
    assert instance.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    np.testing.assert_array_equal(instance.pixel_array, dataset("emri_small").pixel_array)


def test_retrieve_instance_as_stored_and_transcoded(client: DICOMwebClient, stored: dict[str, Any]) -> None:
    u = uids("MR_small_RLE")
    as_stored = client.retrieve_instance(u.study, u.series, u.instance, media_types=(("application/dicom", "*"),))
    assert as_stored.file_meta.TransferSyntaxUID == RLE
    buffer = io.BytesIO()
    as_stored.save_as(buffer, enforce_file_format=True)
    for syntax in (J2K_LOSSLESS, JLS_LOSSLESS):
        ds = client.retrieve_instance(u.study, u.series, u.instance, media_types=(("application/dicom", syntax),))
        assert ds.file_meta.TransferSyntaxUID == syntax
        np.testing.assert_array_equal(ds.pixel_array, dataset("MR_small_RLE").pixel_array)


def test_retrieve_series_and_study_in_a_transfer_syntax(client: DICOMwebClient, stored: dict[str, Any]) -> None:
    """§8.7.3.5.2 per part: every instance with pixel data comes in the asked syntax, pixels unchanged."""
    u = uids("emri_small")
    for retrieved in (client.retrieve_series(u.study, u.series, media_types=(("application/dicom", JLS_LOSSLESS),)),
                      client.retrieve_study(u.study, media_types=(("application/dicom", JLS_LOSSLESS),))):
        assert retrieved
        by_uid = {uids(n).instance: n for n in NAMES}
        for ds in retrieved:
            assert ds.file_meta.TransferSyntaxUID == JLS_LOSSLESS
            np.testing.assert_array_equal(ds.pixel_array, dataset(by_uid[ds.SOPInstanceUID]).pixel_array)


def test_retrieve_instance_bytes_are_what_was_sent(server: str, stored: dict[str, Any]) -> None:
    """A Part 10 file in Explicit VR LE is kept byte for byte (through a plain HTTP GET)."""
    u = uids("CT_small")
    response = requests.get(f"{server}{u.path}", headers={"Accept": "application/dicom"}, timeout=30)
    assert response.status_code == 200
    assert response.content == _sent("CT_small")


def test_retrieve_metadata_at_three_levels(client: DICOMwebClient, stored: dict[str, Any]) -> None:
    u = uids("chrH31")
    instance = client.retrieve_instance_metadata(u.study, u.series, u.instance)
    assert instance["00100010"]["Value"][0]["Ideographic"] == "山田^太郎"
    series = client.retrieve_series_metadata(u.study, u.series)
    assert u.instance in {m["00080018"]["Value"][0] for m in series}
    study = client.retrieve_study_metadata(u.study)
    assert len(study) >= len(series)
    ds = Dataset.from_json(instance, bulk_data_uri_handler=lambda tag, vr, uri: b"")
    assert ds.SOPInstanceUID == u.instance


def test_retrieve_and_iterate_frames(client: DICOMwebClient, stored: dict[str, Any]) -> None:
    u = uids("emri_small_jpeg_2k_lossless")
    source = dataset("emri_small_jpeg_2k_lossless")
    frames = client.retrieve_instance_frames(u.study, u.series, u.instance, frame_numbers=[1, 2, 10],
                                             media_types=(("image/jp2", J2K_LOSSLESS),))
    stored_frames = list(generate_frames(source.PixelData, number_of_frames=10))
    assert frames == [stored_frames[0], stored_frames[1], stored_frames[9]]
    decoded = list(client.iter_instance_frames(u.study, u.series, u.instance, frame_numbers=[3, 4],
                                               media_types=("application/octet-stream",)))
    assert decoded == [np.ascontiguousarray(source.pixel_array[i]).tobytes() for i in (2, 3)]


def test_retrieve_bulkdata_from_metadata_uris(server: str, client: DICOMwebClient, stored: dict[str, Any]) -> None:
    """BulkDataURIs are absolute URLs of this server, even though dicomweb-client sends Host without port."""
    u = uids("examples_overlay")
    metadata = client.retrieve_instance_metadata(u.study, u.series, u.instance)
    assert metadata["7FE00010"]["BulkDataURI"] == f"{server}{u.path}/pixeldata"
    source = dataset("examples_overlay")
    overlay = client.retrieve_bulkdata(metadata["60003000"]["BulkDataURI"])
    assert overlay == [source[0x60003000].value]
    icon = client.retrieve_bulkdata(metadata["00880200"]["Value"][0]["7FE00010"]["BulkDataURI"])
    assert icon == [source.IconImageSequence[0].PixelData]
    pixels = client.retrieve_bulkdata(metadata["7FE00010"]["BulkDataURI"])
    assert pixels == [source.PixelData]


def test_server_log_has_no_tracebacks(live: LiveServer, stored: dict[str, Any]) -> None:
    log = live.log
    assert "Traceback" not in log.read_text(errors="replace")
