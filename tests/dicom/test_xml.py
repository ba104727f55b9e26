"""Tests for dicomweb_origin.dicom.xml: DICOM JSON (PS3.18 Annex F) to Native DICOM Model XML (PS3.19 A.1)."""

from __future__ import annotations

import base64
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset, dcmread
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.dataelem import DataElement
from pydicom.valuerep import BYTES_VR

from dicomweb_origin.dicom.xml import json_to_xml

XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"
BULK_BASE = "http://x/bulk/"
PN_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")
INT_VRS = {"IS", "SS", "US", "SL", "UL", "SV", "UV"}
FLOAT_VRS = {"DS", "FL", "FD"}
DS_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")

# Reference instances bundled with pydicom (never downloaded), with what each exercises.
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")  # rtdose.dcm

REFERENCE_FILES = {
    "CT_small.dcm": "private blocks, DS/IS/FL/FD, OW pixel data as bulk data, small OB inline",
    "MR_small.dcm": "MR, multi-valued DS",
    "rtplan.dcm": "nested sequences",
    "rtdose.dcm": "AT values, sequences",
    "reportsi_with_empty_number_tags.dcm": "SR content tree, empty numeric elements, OF",
    "waveform_ecg.dcm": "waveform sequences with OW/OB data",
    "chrH31.dcm": "ISO 2022 Japanese PN with three component groups, empty first charset value",
    "chrX1.dcm": "UTF-8 Chinese PN",
    "chrGreek.dcm": "ISO_IR 126 Greek PN",
    "chrSQEncoding.dcm": "charset change inside a sequence item",
}


def _reference_path(name: str) -> str:
    """Return the local path of a pydicom test file, without ever downloading it."""
    path = get_testdata_file(name, download=False)
    if path is None:
        found = get_charset_files(name)
        path = found[0] if found else None
    if path is None or not Path(path).is_file():
        pytest.skip(f"{name} not available locally")
    return str(path)


def _bulk_uri(elem: DataElement) -> str:
    return f"{BULK_BASE}{elem.tag:08X}"


def _to_json(ds: Dataset) -> dict[str, Any]:
    return ds.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=_bulk_uri)


def _convert(ds: Dataset) -> tuple[dict[str, Any], bytes, ET.Element]:
    dataset_json = _to_json(ds)
    document = json_to_xml(dataset_json)
    return dataset_json, document, ET.fromstring(document)


def _attribute(parent: ET.Element, tag: str) -> ET.Element:
    found = parent.findall(f"DicomAttribute[@tag='{tag}']")
    assert len(found) == 1, f"{tag}: {len(found)} DicomAttribute elements"
    return found[0]


def _values(elem: DataElement) -> list[Any]:
    if elem.VM == 0:
        return []
    return list(elem.value) if elem.VM > 1 else [elem.value]


def _assert_value(vr: str, text: str, expected: Any, where: str) -> None:
    if vr == "AT":
        assert text == f"{expected:08X}", where
    elif vr in INT_VRS:
        assert int(text) == int(expected), where
    elif vr in FLOAT_VRS:
        assert float(text) == float(expected), where
        if vr == "DS":
            assert DS_RE.match(text) and len(text) <= 16, f"{where}: {text!r} is not a valid DS"
    else:
        assert text == expected, where


def _assert_person_name(node: ET.Element, expected: Any, where: str) -> None:
    groups = expected.components if expected is not None else ()
    present = {child.tag: child for child in node}
    for group_name, group in zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False):
        if not group:
            assert group_name not in present, where
            continue
        components = (group.split("^") + [""] * 5)[:5]
        xml_group = present[group_name]
        for component, value in zip(PN_COMPONENTS, components, strict=True):
            assert (xml_group.findtext(component) or "") == value, f"{where} {group_name}.{component}"
    assert set(present) <= {"Alphabetic", "Ideographic", "Phonetic"}, where


def _assert_matches(parent: ET.Element, ds: Dataset, dataset_json: dict[str, Any], path: str = "") -> None:
    """Check every element of ``ds`` against its DicomAttribute under ``parent``, recursively."""
    attributes = parent.findall("DicomAttribute")
    assert [a.get("tag") for a in attributes] == sorted(dataset_json), f"{path}: tags or order differ"
    assert [child.tag for child in parent] == ["DicomAttribute"] * len(attributes)
    for elem in ds:
        key = f"{elem.tag:08X}"
        if elem.tag.element == 0:  # group length: never in DICOM JSON (PS3.18 F.2)
            assert key not in dataset_json
            continue
        where = f"{path}{key}"
        node = _attribute(parent, key)
        attr_json = dataset_json[key]
        assert node.get("vr") == elem.VR == attr_json["vr"], where
        if elem.tag.is_private:
            assert node.get("keyword") is None, where
            if elem.tag.element >= 0x1000 and elem.private_creator:
                assert node.get("privateCreator") == elem.private_creator, where
            else:
                assert node.get("privateCreator") is None, where
        else:
            assert node.get("keyword") == (elem.keyword or None), where
            assert node.get("privateCreator") is None, where
        children = list(node)
        if "BulkDataURI" in attr_json:
            assert [c.tag for c in children] == ["BulkData"], where
            assert children[0].get("uri") == attr_json["BulkDataURI"] == _bulk_uri(elem), where
        elif "InlineBinary" in attr_json:
            assert [c.tag for c in children] == ["InlineBinary"], where
            assert base64.b64decode(children[0].text or "") == elem.value, where
        elif elem.VR == "SQ":
            assert [c.tag for c in children] == ["Item"] * len(elem.value), where
            for number, (item_node, item) in enumerate(zip(children, elem.value, strict=True), 1):
                assert item_node.get("number") == str(number), where
                _assert_matches(item_node, item, attr_json["Value"][number - 1], f"{where}[{number}].")
        elif elem.VR in BYTES_VR:
            assert elem.is_empty and children == [], where
        elif elem.VR == "PN":
            expected = _values(elem)
            assert [c.tag for c in children] == ["PersonName"] * len(expected), where
            for number, (pn_node, value) in enumerate(zip(children, expected, strict=True), 1):
                assert pn_node.get("number") == str(number), where
                _assert_person_name(pn_node, value, f"{where}/{number}")
        else:
            expected = _values(elem)
            assert [c.tag for c in children] == ["Value"] * len(expected), where
            for number, (value_node, value) in enumerate(zip(children, expected, strict=True), 1):
                assert value_node.get("number") == str(number), where
                assert list(value_node) == [], where
                text = value_node.text or ""
                if value is None or value == "":
                    assert text == "", where
                else:
                    _assert_value(elem.VR, text, value, f"{where}/{number}")


@pytest.mark.parametrize("name", sorted(REFERENCE_FILES))
def test_matches_pydicom_reading(name: str) -> None:
    ds = dcmread(_reference_path(name))
    dataset_json, document, root = _convert(ds)
    assert document.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert root.tag == "NativeDicomModel"
    assert root.get(XML_SPACE) == "preserve"
    _assert_matches(root, ds, dataset_json)


def _xml_to_json(parent: ET.Element) -> dict[str, Any]:
    """Read a NativeDicomModel (or Item) back into DICOM JSON, to compare with the input."""
    result: dict[str, Any] = {}
    for node in parent.findall("DicomAttribute"):
        vr = node.get("vr") or ""
        attr: dict[str, Any] = {"vr": vr}
        children = list(node)
        kind = children[0].tag if children else None
        if kind == "BulkData":
            attr["BulkDataURI"] = children[0].get("uri")
        elif kind == "InlineBinary":
            attr["InlineBinary"] = children[0].text
        elif kind == "Item":
            attr["Value"] = [_xml_to_json(item) for item in children]
        elif kind == "PersonName":
            attr["Value"] = [
                {
                    group.tag: "^".join(group.findtext(c) or "" for c in PN_COMPONENTS).rstrip("^")
                    for group in pn
                }
                for pn in children
            ]
        elif kind == "Value":
            attr["Value"] = [_typed(vr, child.text) for child in children]
        result[node.get("tag") or ""] = attr
    return result


def _typed(vr: str, text: str | None) -> Any:
    if vr in INT_VRS:
        return None if text is None else int(text)
    if vr in FLOAT_VRS:
        return None if text is None else float(text)
    return text or ""


def _normalized(dataset_json: dict[str, Any]) -> dict[str, Any]:
    """Drop the distinctions the XML model cannot carry: empty ``Value`` arrays, trailing '^' in PN."""
    result: dict[str, Any] = {}
    for key, attr in dataset_json.items():
        attr = dict(attr)
        values = attr.get("Value")
        if values == []:
            del attr["Value"]
        elif attr["vr"] == "SQ":
            assert values is not None
            attr["Value"] = [_normalized(item) for item in values]
        elif attr["vr"] == "PN" and values:
            attr["Value"] = [{g: s.rstrip("^") for g, s in pn.items()} if pn else pn for pn in values]
        result[key] = attr
    return result


@pytest.mark.parametrize("name", sorted(REFERENCE_FILES))
def test_round_trip_through_json(name: str) -> None:
    # pydicom has no XML reader: read the XML back into DICOM JSON and let pydicom rebuild the dataset.
    ds = dcmread(_reference_path(name))
    dataset_json = ds.to_json_dict(bulk_data_threshold=1 << 30)  # everything inline
    root = ET.fromstring(json_to_xml(dataset_json))
    assert _xml_to_json(root) == _normalized(dataset_json)
    rebuilt = Dataset.from_json(_xml_to_json(root))
    assert rebuilt == Dataset.from_json(_normalized(dataset_json))
    for elem in ds:
        if elem.tag.element != 0 and elem.VR != "PN":
            assert rebuilt[elem.tag] == elem, f"{elem.tag}"


def test_private_creator_only_on_private_data_elements() -> None:
    ds = dcmread(_reference_path("CT_small.dcm"))
    _, _, root = _convert(ds)
    assert _attribute(root, "00091001").get("privateCreator") == "GEMS_IDEN_01"
    assert _attribute(root, "00431028").get("privateCreator") == "GEMS_PARM_01"
    creator = _attribute(root, "00090010")  # the Private Creator element itself
    assert creator.get("privateCreator") is None and creator.get("keyword") is None
    assert creator.findtext("Value") == "GEMS_IDEN_01"
    for node in root.iter("DicomAttribute"):
        if not int(node.get("tag", "0")[:4], 16) & 1:
            assert node.get("privateCreator") is None


def test_private_creator_resolved_per_block_and_per_item() -> None:
    item = {
        "00290010": {"vr": "LO", "Value": ["ITEM CREATOR"]},
        "00291001": {"vr": "LO", "Value": ["in item"]},
    }
    dataset = {
        "00090010": {"vr": "LO", "Value": ["FIRST"]},
        "00090011": {"vr": "LO", "Value": ["SECOND & <CO>"]},
        "00091001": {"vr": "LO", "Value": ["a"]},
        "00091101": {"vr": "LO", "Value": ["b"]},
        "00091201": {"vr": "LO", "Value": ["no creator"]},
        "00111001": {"vr": "LO", "Value": ["creator absent"]},
        "00091002": {"vr": "SQ", "Value": [item]},
    }
    root = ET.fromstring(json_to_xml(dataset))
    assert _attribute(root, "00091001").get("privateCreator") == "FIRST"
    assert _attribute(root, "00091101").get("privateCreator") == "SECOND & <CO>"
    assert _attribute(root, "00091201").get("privateCreator") is None
    assert _attribute(root, "00111001").get("privateCreator") is None
    sequence = _attribute(root, "00091002")
    assert sequence.get("privateCreator") == "FIRST"
    item_node = sequence.find("Item")
    assert item_node is not None
    assert _attribute(item_node, "00291001").get("privateCreator") == "ITEM CREATOR"


def test_person_name_component_groups() -> None:
    ds = dcmread(_reference_path("chrH31.dcm"))
    _, document, root = _convert(ds)
    pn = _attribute(root, "00100010").find("PersonName")
    assert pn is not None and pn.get("number") == "1"
    assert pn.findtext("Alphabetic/FamilyName") == "Yamada"
    assert pn.findtext("Alphabetic/GivenName") == "Tarou"
    assert pn.findtext("Ideographic/FamilyName") == "山田"
    assert pn.findtext("Ideographic/GivenName") == "太郎"
    assert pn.findtext("Phonetic/FamilyName") == "やまだ"
    assert pn.findtext("Phonetic/GivenName") == "たろう"
    assert pn.find("Alphabetic/MiddleName") is None
    assert "山田".encode() in document  # UTF-8, whatever the Specific Character Set


def test_person_name_all_components_and_nulls() -> None:
    dataset = {
        "00100010": {
            "vr": "PN",
            "Value": [{"Alphabetic": "Doe^John^Q^Dr.^Jr.^extra"}, None, {"Alphabetic": "Doe^^^Mr"}],
        },
        "00081060": {"vr": "PN"},
    }
    root = ET.fromstring(json_to_xml(dataset))
    names = _attribute(root, "00100010").findall("PersonName")
    assert [n.get("number") for n in names] == ["1", "2", "3"]
    first = names[0].find("Alphabetic")
    assert first is not None
    assert [first.findtext(c) for c in PN_COMPONENTS] == ["Doe", "John", "Q", "Dr.", "Jr.^extra"]
    assert list(names[1]) == []
    assert [child.tag for child in names[2].iter()][2:] == ["FamilyName", "NamePrefix"]
    assert list(_attribute(root, "00081060")) == []


def test_empty_values_and_zero_length_elements() -> None:
    dataset = {
        "00080005": {"vr": "CS", "Value": [None, "ISO 2022 IR 87"]},
        "00080008": {"vr": "CS", "Value": ["bar", None, "foo"]},
        "00100030": {"vr": "DA"},
        "00280030": {"vr": "DS", "Value": [None, 0.5]},
        "00081140": {"vr": "SQ", "Value": []},
        "00081150": {"vr": "UI", "Value": []},
        "00400275": {"vr": "SQ", "Value": [{}, {"00400007": {"vr": "LO", "Value": ["x"]}}]},
        "7FE00010": {"vr": "OW"},
    }
    document = json_to_xml(dataset)
    root = ET.fromstring(document)
    charset = _attribute(root, "00080005").findall("Value")
    assert [(v.get("number"), v.text) for v in charset] == [("1", None), ("2", "ISO 2022 IR 87")]
    image_type = _attribute(root, "00080008").findall("Value")
    assert [(v.get("number"), v.text) for v in image_type] == [("1", "bar"), ("2", None), ("3", "foo")]
    spacing = _attribute(root, "00280030").findall("Value")
    assert [(v.get("number"), v.text) for v in spacing] == [("1", None), ("2", "0.5")]
    for tag in ("00100030", "00081140", "00081150", "7FE00010"):
        assert list(_attribute(root, tag)) == [], tag
    items = _attribute(root, "00400275").findall("Item")
    assert [(i.get("number"), len(i)) for i in items] == [("1", 0), ("2", 1)]
    assert b'<DicomAttribute tag="00100030" vr="DA" keyword="PatientBirthDate"/>' in document


def test_attribute_tag_values_are_uppercase_hex() -> None:
    dataset = {"00209165": {"vr": "AT", "Value": ["0020000d", "7FE00010", 0x00181063]}}
    root = ET.fromstring(json_to_xml(dataset))
    values = [v.text for v in _attribute(root, "00209165").findall("Value")]
    assert values == ["0020000D", "7FE00010", "00181063"]


@pytest.mark.parametrize(
    ("vr", "value", "text"),
    [
        ("IS", 7, "7"),
        ("IS", -12, "-12"),
        ("IS", 5.0, "5"),
        ("IS", "+0012", "+0012"),  # strings keep the original text
        ("DS", 5.0, "5"),  # integral DS floats are written as ints
        ("DS", -1024.0, "-1024"),
        ("DS", 0.0, "0"),
        ("DS", 0.5, "0.5"),
        ("DS", 133.699997, "133.699997"),
        ("DS", 1e-7, "1e-07"),
        ("DS", 1e20, "1e+20"),
        ("DS", 0.1 + 0.2, "0.30000000000000"),  # repr is 19 characters: reformatted to 16
        ("DS", "1.50", "1.50"),
        ("FD", 0.0, "0.0"),
        ("FD", -77.20406341552734, "-77.20406341552734"),
        ("FD", math.nan, "NaN"),
        ("FL", math.inf, "INF"),
        ("FD", -math.inf, "-INF"),
        ("US", 512, "512"),
        ("SV", -(2**63), str(-(2**63))),
        ("UV", "18446744073709551615", "18446744073709551615"),
    ],
)
def test_number_formatting(vr: str, value: Any, text: str) -> None:
    root = ET.fromstring(json_to_xml({"00181150": {"vr": vr, "Value": [value]}}))
    assert _attribute(root, "00181150").findtext("Value") == text
    if vr == "DS":
        assert len(text) <= 16 and DS_RE.match(text)


def test_special_characters_are_escaped_and_preserved() -> None:
    text = 'a < b && c > "d" \'e\'\r\nline two\ttab ]]>'
    dataset = {
        "00324000": {"vr": "LT", "Value": [text]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "O'Brien & <Sons>^Ann"}]},
        "7FE00010": {"vr": "OW", "BulkDataURI": 'http://h/a?x=1&y="2"\t<z>'},
        "00091001": {"vr": "LO", "Value": ["v"]},
        "00090010": {"vr": "LO", "Value": ['Creator "Q"\n& Co']},
    }
    root = ET.fromstring(json_to_xml(dataset))
    assert _attribute(root, "00324000").findtext("Value") == text  # CR survives end-of-line handling
    assert _attribute(root, "00100010").findtext("PersonName/Alphabetic/FamilyName") == "O'Brien & <Sons>"
    bulk = _attribute(root, "7FE00010").find("BulkData")
    assert bulk is not None and bulk.get("uri") == 'http://h/a?x=1&y="2"\t<z>'
    assert _attribute(root, "00091001").get("privateCreator") == 'Creator "Q"\n& Co'


def test_characters_illegal_in_xml_are_replaced() -> None:
    # XML 1.0 §2.2: C0 controls other than TAB/LF/CR, lone surrogates, U+FFFE/U+FFFF cannot appear.
    raw = "a\x00b\x1bc\x0cd\udcffe\ufffff\tg"
    dataset = {
        "00324000": {"vr": "LT", "Value": [raw]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Es\x1bc^X"}]},
        "7FE00010": {"vr": "OW", "BulkDataURI": "http://h/\x01"},
    }
    document = json_to_xml(dataset)
    document.decode("utf-8")  # strict: no surrogates leaked into the bytes
    root = ET.fromstring(document)
    assert _attribute(root, "00324000").findtext("Value") == "a\ufffdb\ufffdc\ufffdd\ufffde\ufffdf\tg"
    assert _attribute(root, "00100010").findtext("PersonName/Alphabetic/FamilyName") == "Es\ufffdc"
    bulk = _attribute(root, "7FE00010").find("BulkData")
    assert bulk is not None and bulk.get("uri") == "http://h/\ufffd"


def test_bulk_data_and_inline_binary() -> None:
    ds = dcmread(_reference_path("CT_small.dcm"))
    dataset_json, _, root = _convert(ds)
    assert "BulkDataURI" in dataset_json["7FE00010"]
    pixel_data = list(_attribute(root, "7FE00010"))
    assert [c.tag for c in pixel_data] == ["BulkData"]
    assert pixel_data[0].get("uri") == f"{BULK_BASE}7FE00010"
    assert pixel_data[0].attrib == {"uri": f"{BULK_BASE}7FE00010"}
    inline = list(_attribute(root, "00431028"))
    assert [c.tag for c in inline] == ["InlineBinary"]
    assert base64.b64decode(inline[0].text or "") == ds[0x00431028].value
    chunked = json_to_xml({"00420011": {"vr": "OB", "InlineBinary": ["AAEC", "AwQ="]}})
    assert ET.fromstring(chunked).findtext("DicomAttribute/InlineBinary") == "AAECAwQ="


def test_sequences_nest_items() -> None:
    ds = dcmread(_reference_path("rtplan.dcm"))
    _, _, root = _convert(ds)
    beams = _attribute(root, "300A00B0").findall("Item")
    assert len(beams) == len(ds.BeamSequence) >= 1
    control_points = _attribute(beams[0], "300A0111").findall("Item")
    assert len(control_points) == len(ds.BeamSequence[0].ControlPointSequence)
    assert [i.get("number") for i in control_points] == [str(n) for n in range(1, len(control_points) + 1)]


def test_output_is_compact_and_sorted() -> None:
    dataset = {
        "00100020": {"vr": "LO", "Value": ["id"]},
        "00080060": {"vr": "CS", "Value": ["CT"]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
    }
    document = json_to_xml(dataset).decode()
    assert document == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<NativeDicomModel xml:space="preserve">'
        '<DicomAttribute tag="00080060" vr="CS" keyword="Modality">'
        '<Value number="1">CT</Value></DicomAttribute>'
        '<DicomAttribute tag="00100010" vr="PN" keyword="PatientName"><PersonName number="1">'
        "<Alphabetic><FamilyName>Doe</FamilyName><GivenName>Jane</GivenName></Alphabetic>"
        "</PersonName></DicomAttribute>"
        '<DicomAttribute tag="00100020" vr="LO" keyword="PatientID">'
        '<Value number="1">id</Value></DicomAttribute>'
        "</NativeDicomModel>"
    )


def test_repeating_group_and_unknown_keywords() -> None:
    dataset = {
        "60003000": {"vr": "OW", "InlineBinary": "AAAA"},
        "60020010": {"vr": "US", "Value": [512]},
        "00471234": {"vr": "LO", "Value": ["private, no creator"]},
        "00000000": {"vr": "UL", "Value": [4]},
    }
    root = ET.fromstring(json_to_xml(dataset))
    assert _attribute(root, "60003000").get("keyword") == "OverlayData"
    assert _attribute(root, "60020010").get("keyword") == "OverlayRows"
    assert _attribute(root, "00471234").get("keyword") is None
    assert _attribute(root, "00000000").get("keyword") == "CommandGroupLength"

