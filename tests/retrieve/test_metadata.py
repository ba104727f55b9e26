"""Retrieve Transaction, Metadata Resources (PS3.18 §10.4.1.1.2, Table 10.4.1-2; Annex F; PS3.19 A.1).

The oracle is pydicom's own reading of each reference file (``DataElement.to_json_dict``): the
metadata must equal it element by element, except that large binary values (and the top-level
Pixel Data) are BulkDataURIs, which must resolve to the very bytes pydicom reads.
"""

from __future__ import annotations

import base64
import gzip
import json
import warnings
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import numpy as np
import pytest
from pydicom import Dataset, dcmread

from tests.support.archive import LoadedArchive
from tests.support.http import (
    DICOM_JSON,
    MULTIPART_OCTET,
    MULTIPART_XML,
    absolute,
    get_without_accept,
    media_params,
    parse_multipart,
    path_of,
)
from tests.support.reference import EBE, REFERENCES, Reference, by_feature, dataset, ids, uids

pytestmark = pytest.mark.anyio

LEVELS = ("study", "series", "instance")
THRESHOLD = 1024
_SWAP = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"


def _expected_element(element: Any, big_endian: bool) -> dict[str, Any] | None:
    """pydicom's DICOM JSON for one element, every binary value inline; None if pydicom cannot encode it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            expected = element.to_json_dict(None, THRESHOLD)
        except Exception:  # noqa: BLE001 - pydicom raises many types on values it cannot encode
            return None
    width = _SWAP.get(expected["vr"])
    if big_endian and width and "InlineBinary" in expected:
        # Annex F.2.7: binary values in the byte order of the (little endian) web transfer syntax.
        raw = np.frombuffer(base64.b64decode(expected["InlineBinary"]), dtype=f">u{width}")
        expected["InlineBinary"] = base64.b64encode(raw.astype(f"<u{width}").tobytes()).decode()
    return expected


def compare_with_pydicom(actual: dict[str, Any], source: Dataset, instance_path: str, big_endian: bool,
                         bulk: dict[str, bytes], top: bool = True, where: str = "") -> None:
    """Assert one DICOM JSON object equals pydicom's reading; collect BulkDataURI -> expected bytes."""
    assert list(actual) == sorted(actual), f"{where}: keys are sorted (§F.2.2)"
    expected_keys = set()
    for element in source:
        tag = element.tag
        if tag.group == 0x0002 or tag.element == 0:
            continue  # no File Meta (Table 10.4.1-2 note 1), no group lengths (§F.2.2)
        if tag == 0xFFFCFFFC:
            continue  # Data Set Trailing Padding has no meaning (PS3.10 §7.2): not an attribute to report
        key = f"{int(tag):08X}"
        expected_keys.add(key)
        assert key in actual, f"{where}{key} ({element.keyword or 'private'}) missing"
        value = actual[key]
        if top and tag == 0x7FE00010:
            assert value == {"vr": value["vr"], "BulkDataURI": absolute(instance_path + "/pixeldata")}
            assert value["vr"] in ("OB", "OW")
            continue
        if element.VR == "SQ":
            assert value["vr"] == "SQ", f"{where}{key}"
            items = value.get("Value", [])
            assert len(items) == len(element.value), f"{where}{key}"
            for number, (item, source_item) in enumerate(zip(items, element.value, strict=True), start=1):
                compare_with_pydicom(item, source_item, instance_path, big_endian, bulk, False,
                                     f"{where}{key}/{number}/")
            continue
        expected = _expected_element(element, big_endian)
        if expected is None:
            continue  # a value pydicom itself cannot convert: only its presence is checked
        if "BulkDataURI" in value:
            assert "InlineBinary" in expected, f"{where}{key}: only binary values become bulk data"
            assert value["vr"] == expected["vr"], f"{where}{key}"
            assert value["BulkDataURI"].startswith(absolute(instance_path + "/bulkdata/"))
            bulk[value["BulkDataURI"]] = base64.b64decode(expected["InlineBinary"])
            continue
        assert value == expected, f"{where}{key} ({element.keyword or 'private'})"
    extra = set(actual) - expected_keys - ({"00083002"} if top else set())
    assert not extra, f"{where}: attributes not in the source: {sorted(extra)}"


async def _get_json(client: httpx.AsyncClient, path: str, **headers: str) -> list[dict[str, Any]]:
    response = await client.get(path, headers={"Accept": DICOM_JSON} | headers)
    assert response.status_code == 200, response.text
    assert media_params(response.headers["content-type"])[0] == "application/dicom+json"
    body = response.json()
    assert isinstance(body, list), "always a JSON array, even for one instance (§F.2.1)"
    return body


@pytest.mark.parametrize("ref", REFERENCES, ids=ids(REFERENCES))
async def test_instance_metadata_equals_pydicoms_reading(client: httpx.AsyncClient, ref: Reference) -> None:
    (instance,) = await _get_json(client, f"{path_of(ref.name)}/metadata")
    bulk: dict[str, bytes] = {}
    compare_with_pydicom(instance, dataset(ref.name), "/" + path_of(ref.name), ref.syntax == EBE, bulk)
    assert instance["00083002"] == {"vr": "UI", "Value": [ref.stored_syntax]}
    assert ("7FE00010" in instance) is ref.has_pixels
    # Every non-pixel BulkDataURI resolves to the value's bytes (§F.2.6, Table 10.4.1.5-1).
    assert {uri.rsplit("/bulkdata/", 1)[1] for uri in bulk} == set(ref.bulk)
    for uri, expected in bulk.items():
        response = await client.get(uri, headers={"Accept": MULTIPART_OCTET})
        assert response.status_code == 200, uri
        (part,) = parse_multipart(response, "application/octet-stream")
        assert part.content == expected
        assert part.location == uri


@pytest.mark.parametrize("level", LEVELS)
async def test_metadata_at_three_levels(client: httpx.AsyncClient, archive: LoadedArchive, level: str) -> None:
    """Table 10.4.1-2: study and series metadata hold every instance's metadata, in one array."""
    name = "emri_small_RLE"  # its series holds five encodings of one multi-frame MR
    u = uids(name)
    body = await _get_json(client, f"{path_of(name, level)}/metadata")
    records = archive.instances(u.study, None if level == "study" else u.series)
    if level == "instance":
        records = [r for r in records if r.instance_uid == u.instance]
    assert [obj["00080018"]["Value"][0] for obj in body] == [r.instance_uid for r in records]
    references = {uids(ref.name).instance: ref for ref in REFERENCES}
    for obj, record in zip(body, records, strict=True):
        ref = references[record.instance_uid]
        compare_with_pydicom(obj, dataset(ref.name), record.path, ref.syntax == EBE, {})


async def test_demo_study_metadata(client: httpx.AsyncClient, archive: LoadedArchive) -> None:
    """The demo CT study: every slice, each equal to pydicom's reading of the generated file."""
    files = {dcmread(path).SOPInstanceUID: path for path in archive.demo if path.parent.name == "ct"}
    first = dcmread(next(iter(files.values())))
    body = await _get_json(client, f"studies/{first.StudyInstanceUID}/metadata")
    assert {obj["00080018"]["Value"][0] for obj in body} == set(files)
    for obj in body:
        source = dcmread(files[obj["00080018"]["Value"][0]])
        path = f"/studies/{source.StudyInstanceUID}/series/{source.SeriesInstanceUID}/instances/{source.SOPInstanceUID}"
        compare_with_pydicom(obj, source, path, False, {})


CHARSETS = by_feature("charset")


@pytest.mark.parametrize("ref", [r for r in CHARSETS if r.patient_name], ids=ids([r for r in CHARSETS if r.patient_name]))
async def test_text_in_every_character_set_is_decoded(client: httpx.AsyncClient, ref: Reference) -> None:
    """PS3.5 §6.1 Specific Character Sets, delivered in UTF-8 (§F.2): PN component groups (§F.2.2)."""
    (instance,) = await _get_json(client, f"{path_of(ref.name)}/metadata")
    groups = ref.patient_name.split("=") if ref.patient_name else []
    expected = {k: v for k, v in zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False) if v}
    assert instance["00100010"] == {"vr": "PN", "Value": [expected]}
    # Specific Character Set is kept as received (the document itself is UTF-8).
    assert instance["00080005"]["vr"] == "CS"


async def test_metadata_is_utf8_json(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{path_of('chrH31')}/metadata", headers={"Accept": DICOM_JSON})
    raw = response.content
    assert "山田^太郎".encode() in raw
    assert json.loads(raw.decode("utf-8"))[0]["00100010"]["Value"][0]["Ideographic"] == "山田^太郎"


def _xml_values(attribute: ET.Element) -> list[ET.Element]:
    return [child for child in attribute if child.tag in ("Value", "PersonName", "Item")]


def _pn_string(person: ET.Element, group: str) -> str | None:
    node = person.find(group)
    if node is None:
        return None
    names = [(node.findtext(part) or "") for part in ("FamilyName", "GivenName", "MiddleName", "NamePrefix",
                                                         "NameSuffix")]
    while names and not names[-1]:
        names.pop()
    return "^".join(names)


def compare_xml(attributes: ET.Element, obj: dict[str, Any], where: str = "") -> None:
    """Native DICOM Model (PS3.19 A.1) against the DICOM JSON of the same instance."""
    found = {a.get("tag"): a for a in attributes.findall("DicomAttribute")}
    assert set(found) == set(obj), where
    for key, value in obj.items():
        attribute = found[key]
        assert attribute.get("vr") == value["vr"], f"{where}{key}"
        if "BulkDataURI" in value:
            (bulk,) = list(attribute)
            assert bulk.tag == "BulkData" and bulk.get("uri") == value["BulkDataURI"], f"{where}{key}"
        elif "InlineBinary" in value:
            assert attribute.findtext("InlineBinary") == value["InlineBinary"], f"{where}{key}"
        elif value["vr"] == "SQ":
            items = attribute.findall("Item")
            assert [int(i.get("number", 0)) for i in items] == list(range(1, len(value.get("Value", [])) + 1))
            for number, (item, item_obj) in enumerate(zip(items, value.get("Value", []), strict=True), start=1):
                compare_xml(item, item_obj, f"{where}{key}/{number}/")
        elif value["vr"] == "PN":
            people = attribute.findall("PersonName")
            assert len(people) == len(value.get("Value", [])), f"{where}{key}"
            for person, name in zip(people, value.get("Value", []), strict=True):
                for group in ("Alphabetic", "Ideographic", "Phonetic"):
                    if name and name.get(group):
                        assert _pn_string(person, group) == name[group].rstrip("^"), f"{where}{key} {group}"
        else:
            nodes = attribute.findall("Value")
            values = value.get("Value", [])
            assert [int(n.get("number", 0)) for n in nodes] == list(range(1, len(values) + 1)), f"{where}{key}"
            for node, item in zip(nodes, values, strict=True):
                text = node.text or ""
                if item is None:
                    assert text == ""
                elif isinstance(item, (int, float)) and not isinstance(item, bool):
                    assert float(text) == pytest.approx(float(item), rel=1e-6), f"{where}{key}"
                else:
                    assert text == str(item), f"{where}{key}"


@pytest.mark.parametrize("level", LEVELS)
async def test_xml_metadata_parses_and_matches_the_json(client: httpx.AsyncClient, archive: LoadedArchive,
                                                       level: str) -> None:
    """Table 10.4.4-1: ``multipart/related; type="application/dicom+xml"``, one document per instance."""
    name = "CT_small" if level != "study" else "MR_small"
    url = f"{path_of(name, level)}/metadata"
    response = await client.get(url, headers={"Accept": MULTIPART_XML})
    assert response.status_code == 200
    parts = parse_multipart(response, "application/dicom+xml")
    objects = await _get_json(client, url)
    assert len(parts) == len(objects)
    for part, obj in zip(parts, objects, strict=True):
        assert media_params(part.headers["content-type"])[1].get("charset", "utf-8").lower() == "utf-8"
        root = ET.fromstring(part.content)
        assert root.tag == "NativeDicomModel" and root.get(XML_SPACE) == "preserve"
        uid = obj["00080018"]["Value"][0]
        record = archive.index.get(uid)
        assert part.location == absolute(record.path + "/metadata")
        compare_xml(root, obj)


@pytest.mark.parametrize("ref", [r for r in REFERENCES if {"charset", "sequence", "private"} & r.features],
                         ids=ids([r for r in REFERENCES if {"charset", "sequence", "private"} & r.features]))
async def test_xml_metadata_of_references(client: httpx.AsyncClient, ref: Reference) -> None:
    url = f"{path_of(ref.name)}/metadata"
    response = await client.get(url, headers={"Accept": MULTIPART_XML})
    (part,) = parse_multipart(response, "application/dicom+xml")
    (obj,) = await _get_json(client, url)
    compare_xml(ET.fromstring(part.content), obj)


@pytest.mark.parametrize("accept", [DICOM_JSON, "*/*", "application/*", f"{DICOM_JSON}; q=0.5, application/zip; q=0.9",
                                    f"{MULTIPART_XML}; q=0.4, {DICOM_JSON}"])
async def test_json_is_the_default_and_honours_q(client: httpx.AsyncClient, accept: str) -> None:
    response = await client.get(f"{path_of('CT_small')}/metadata", headers={"Accept": accept})
    assert response.status_code == 200
    assert media_params(response.headers["content-type"])[0] == "application/dicom+json"


async def test_xml_preferred_by_q(client: httpx.AsyncClient) -> None:
    accept = f"{DICOM_JSON}; q=0.2, {MULTIPART_XML}"
    response = await client.get(f"{path_of('CT_small')}/metadata", headers={"Accept": accept})
    parse_multipart(response, "application/dicom+xml")


@pytest.mark.parametrize("accept", ["application/dicom", MULTIPART_OCTET, "image/jpeg", "application/zip"])
async def test_metadata_in_other_types_is_406(client: httpx.AsyncClient, accept: str) -> None:
    response = await client.get(f"{path_of('CT_small')}/metadata", headers={"Accept": accept})
    assert response.status_code == 406


async def test_metadata_without_accept_is_406(client: httpx.AsyncClient) -> None:
    response = await get_without_accept(client, f"{path_of('CT_small')}/metadata")
    assert response.status_code == 406


async def test_gzip_when_accepted(client: httpx.AsyncClient) -> None:
    """§8.4.3: a content coding when the client accepts it; Content-Encoding says so."""
    url = f"{path_of('MR_small', 'study')}/metadata"
    plain = await client.get(url, headers={"Accept": DICOM_JSON, "Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert int(plain.headers["content-length"]) == len(plain.content)
    zipped = await client.get(url, headers={"Accept": DICOM_JSON, "Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["vary"]
    assert zipped.json() == plain.json()  # httpx decodes the gzip body
    assert int(zipped.headers["content-length"]) < len(plain.content)
    refused = await client.get(url, headers={"Accept": DICOM_JSON, "Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers
    async with client.stream("GET", url, headers={"Accept": DICOM_JSON, "Accept-Encoding": "gzip"}) as raw:
        body = b"".join([chunk async for chunk in raw.aiter_raw()])
    assert json.loads(gzip.decompress(body)) == plain.json()


@pytest.mark.parametrize("value", ["latin1", "ISO-8859-1", "utf-16", "utf-8, latin1", '"ISO_IR 100"'])
async def test_unsupported_charset_query_parameter_is_400(client: httpx.AsyncClient, value: str) -> None:
    """§8.3.3.2: an invalid or unsupported ``charset`` query parameter value is a 400."""
    response = await client.get(f"{path_of('chrFren')}/metadata", params={"charset": value},
                                headers={"Accept": DICOM_JSON})
    assert response.status_code == 400


@pytest.mark.parametrize("value", ["utf-8", "UTF-8", '"ISO_IR 192"'])
async def test_utf8_charset_query_parameter_is_served(client: httpx.AsyncClient, value: str) -> None:
    response = await client.get(f"{path_of('chrFren')}/metadata", params={"charset": value},
                                headers={"Accept": DICOM_JSON})
    assert response.status_code == 200
    assert response.json()[0]["00100010"]["Value"][0]["Alphabetic"] == "Buc^Jérôme"


@pytest.mark.parametrize(("header", "status"), [
    ("iso-8859-1", 406),
    ("utf-8;q=0", 406),
    ("iso-8859-1, utf-8;q=0.1", 200),
    ("*", 200),
    ("UTF-8", 200),
    ("iso-8859-1, *;q=0.5", 200),
])
async def test_accept_charset(client: httpx.AsyncClient, header: str, status: int) -> None:
    """§8.8: metadata is UTF-8; an Accept-Charset that excludes it cannot be served (406, §8.8.5)."""
    response = await client.get(f"{path_of('chrFren')}/metadata",
                                headers={"Accept": DICOM_JSON, "Accept-Charset": header})
    assert response.status_code == status


async def test_metadata_etag_and_304(client: httpx.AsyncClient) -> None:
    url = f"{path_of('CT_small', 'series')}/metadata"
    first = await client.get(url, headers={"Accept": DICOM_JSON})
    again = await client.get(url, headers={"Accept": DICOM_JSON, "If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    xml = await client.get(url, headers={"Accept": MULTIPART_XML})
    assert xml.headers["etag"] != first.headers["etag"]


@pytest.mark.parametrize("level", LEVELS)
async def test_metadata_of_unknown_targets_is_404(client: httpx.AsyncClient, level: str) -> None:
    u = uids("CT_small")
    paths = {"study": "studies/1.2.3.4/metadata", "series": f"studies/{u.study}/series/1.2.3.4/metadata",
             "instance": f"studies/{u.study}/series/{u.series}/instances/1.2.3.4/metadata"}
    response = await client.get(paths[level], headers={"Accept": DICOM_JSON})
    assert response.status_code == 404


async def test_metadata_with_a_malformed_uid_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("studies/1.2.abc/metadata", headers={"Accept": DICOM_JSON})
    assert response.status_code == 400


async def test_bulk_data_uris_follow_the_request_host(client: httpx.AsyncClient) -> None:
    """BulkDataURIs are absolute URLs on the origin the client used."""
    response = await client.get(f"{path_of('CT_small')}/metadata",
                                headers={"Accept": DICOM_JSON, "Host": "pacs.example:8042"})
    uri = response.json()[0]["7FE00010"]["BulkDataURI"]
    assert uri == f"http://pacs.example:8042/dicomweb/{path_of('CT_small')}/pixeldata"


@pytest.mark.parametrize("encoding, compressed", [
    ("gzip", True), ("gzip;q=0.5", True), ("gzip;q=0", False), ("gzip;q=0.0", False), ("identity", False),
    ("*", True), ("br, gzip;q=0.000", False),
])
async def test_gzip_follows_the_q_values_of_accept_encoding(client: httpx.AsyncClient, encoding: str,
                                                            compressed: bool) -> None:
    """RFC 9110 §12.5.3: a coding with q=0 is not acceptable."""
    response = await client.get(path_of("CT_small") + "/metadata", headers={
        "Accept": "application/dicom+json", "Accept-Encoding": encoding})
    assert response.status_code == 200
    assert (response.headers.get("content-encoding") == "gzip") is compressed


@pytest.mark.parametrize(("resource", "accept"), [
    ("", "multipart/related; type=\"application/dicom\""),
    ("/bulkdata", "multipart/related; type=\"application/octet-stream\""),
    ("/pixeldata", "multipart/related; type=\"application/octet-stream\""),
    ("/frames/1", "multipart/related; type=\"application/octet-stream\""),
])
async def test_charset_query_parameter_is_checked_on_every_resource(client: httpx.AsyncClient, resource: str,
                                                                    accept: str) -> None:
    """§8.3.3.2 applies to every Retrieve resource: an unsupported ``charset`` value is 400, UTF-8 is fine.

    Accept-Charset, by contrast, does not bear on binary payloads (they have no charset).
    """
    url = f"{path_of('CT_small')}{resource}"
    refused = await client.get(url, params={"charset": "latin1"}, headers={"Accept": accept})
    assert refused.status_code == 400
    assert "latin1" in refused.text
    served = await client.get(url, params={"charset": "utf-8"}, headers={"Accept": accept,
                                                                         "Accept-Charset": "iso-8859-1"})
    assert served.status_code == 200


@pytest.mark.parametrize(("lines", "status"), [
    (["application/foo", DICOM_JSON], 200),  # the second line names what is served
    ([DICOM_JSON, "image/png"], 400),  # DICOM and rendered types together, across lines (§8.7.5)
])
async def test_repeated_accept_lines_are_one_list(client: httpx.AsyncClient, lines: list[str], status: int) -> None:
    """RFC 9110 §5.3: a list-valued header sent on several lines is the comma-joined list."""
    headers = [("Accept", line) for line in lines]
    response = await client.get(f"{path_of('CT_small')}/metadata", headers=headers)
    assert response.status_code == status


async def test_gzip_is_computed_once_per_representation(client: httpx.AsyncClient, archive: LoadedArchive) -> None:
    """Metadata never changes for an ETag: its gzip body is kept and served again, byte for byte (instance metadata:
    a study's or series' gzip body is stored, test_stored_metadata.py)."""
    cache = archive.app.state.gzip_cache
    url = f"{path_of('emri_small')}/metadata"
    headers = {"Accept": DICOM_JSON, "Accept-Encoding": "gzip"}
    bodies = []
    for _ in range(2):
        async with client.stream("GET", url, headers=headers) as raw:
            assert raw.headers["content-encoding"] == "gzip"
            bodies.append(b"".join([chunk async for chunk in raw.aiter_raw()]))
    hits = cache.hits
    async with client.stream("GET", url, headers=headers) as raw:
        third = b"".join([chunk async for chunk in raw.aiter_raw()])
    assert cache.hits == hits + 1
    assert bodies[0] == bodies[1] == third
    assert json.loads(gzip.decompress(third)) == (await client.get(url, headers={"Accept": DICOM_JSON})).json()


@pytest.mark.parametrize("level", ["study", "series", "instance"])
async def test_json_metadata_names_its_resource(client: httpx.AsyncClient, level: str) -> None:
    """§8.6 / errors.md: a payload that represents a resource says which, in Content-Location."""
    url = f"{path_of('CT_small', level)}/metadata"
    response = await client.get(url, headers={"Accept": DICOM_JSON})
    assert response.status_code == 200
    assert response.headers["content-location"] == absolute(url)
