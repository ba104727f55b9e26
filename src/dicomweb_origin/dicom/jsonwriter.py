"""DICOM JSON metadata (PS3.18 Annex F), built once at ingest with BulkDataURIs for bulk values.

BulkDataURIs are stored relative to the DICOMweb root (``/studies/...``); ``absolutize`` prefixes
the root of the request in one pass over the bytes. The marker it relies on, the raw byte
sequence ``"BulkDataURI":"``, can only occur as a key/value pair: inside a JSON string every
quote is escaped, so no data value can forge it.
"""

from __future__ import annotations

import base64
import re
import warnings
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from ..model.stored import BulkElement

_MARKER = b'"BulkDataURI":"'

# Attributes the index keeps per level (for study/series rows and for search).
STUDY_TAGS = (
    "00080005", "00080020", "00080030", "00080050", "00080090", "00081030", "00100010", "00100020",
    "00100030", "00100040", "00101010", "00101020", "00101030", "00200010", "0020000D",
)
SERIES_TAGS = (
    "00080021", "00080031", "00080060", "0008103E", "00180015", "0020000E", "00200011", "00400244",
    "00400245", "00080070", "00400275",
)
INSTANCE_TAGS = (
    "00080016", "00080018", "00080008", "00200013", "00280010", "00280011", "00280008", "00280100",
    "00280004", "00080023", "00080033", "00200032", "00200037", "00200052",
)


def instance_json(
    dataset: Dataset,
    instance_path: str,
    bulk: dict[str, BulkElement],
    pixel_path: str | None,
    pixel_vr: str | None,
    transfer_syntax_uid: str,
    threshold: int,
) -> dict[str, Any]:
    """The DICOM JSON object of one instance; bulk values become BulkDataURIs under ``instance_path``."""
    result = _dataset_json(dataset, f"{instance_path}/bulkdata/", bulk, "", threshold)
    # Viewers read the stored syntax from here to decide how to ask for frames.
    result["00083002"] = {"vr": "UI", "Value": [transfer_syntax_uid]}
    if pixel_path is not None:
        # The Pixel Data resource of this instance (§10.4.1.1.6) is where its pixel data is found.
        result[pixel_path] = {"vr": pixel_vr or "OB", "BulkDataURI": f"{instance_path}/pixeldata"}
    return dict(sorted(result.items()))


def _dataset_json(
    dataset: Dataset, uri_prefix: str, bulk: dict[str, BulkElement], prefix: str, threshold: int
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for tag in list(dataset.keys()):
        if tag.element == 0 or tag.group == 0x0002:  # group lengths and file meta never appear (§F.2.2)
            continue
        key = f"{int(tag):08X}"
        path = prefix + key
        raw = dataset._dict[tag]
        if path in bulk:
            result[key] = {"vr": bulk[path].vr, "BulkDataURI": uri_prefix + path}
            continue
        if raw.VR == "SQ":
            items = dataset[tag].value
            result[key] = {"vr": "SQ"}
            if items:
                result[key]["Value"] = [
                    _dataset_json(item, uri_prefix, bulk, f"{path}/{number}/", threshold)
                    for number, item in enumerate(items, start=1)
                ]
            continue
        result[key] = _element_json(dataset, tag, threshold)
    return result


def _element_json(dataset: Dataset, tag: Any, threshold: int) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            element = dataset[tag]
            encoded: dict[str, Any] = element.to_json_dict(bulk_data_element_handler=None,
                                                           bulk_data_threshold=threshold)
            return encoded
        except Exception:  # a value pydicom cannot convert: keep it, as its raw bytes, rather than lose it
            raw = dataset._dict[tag]
            value = getattr(raw, "value", b"") or b""
            raw_bytes = value if isinstance(value, bytes) else str(value).encode("utf-8", "replace")
            return {"vr": "UN", "InlineBinary": base64.b64encode(raw_bytes).decode("ascii")}


def level_attributes(instance: dict[str, Any], tags: tuple[str, ...]) -> dict[str, Any]:
    return {tag: instance[tag] for tag in tags if tag in instance}


def absolutize(metadata: bytes, root: str) -> bytes:
    """Prefix every stored BulkDataURI with the DICOMweb root of this request."""
    return metadata.replace(_MARKER, _MARKER + root.encode())


def json_array(parts: list[bytes], root: str) -> bytes:
    """Join stored instance objects into one DICOM JSON array (PS3.18 §F.2.1)."""
    return absolutize(b"[" + b",".join(parts) + b"]", root)


_HEX_TAG = re.compile(r"[0-9A-Fa-f]{8}")


def attribute_path(name: str) -> tuple[str, ...] | None:
    """``PatientID``, ``00100020`` or ``00400275.00400009`` as tags, as QIDO names them (§8.3.4.1); None if not one."""
    tags = []
    for part in name.split("."):
        if _HEX_TAG.fullmatch(part):
            tags.append(part.upper())
            continue
        tag = tag_for_keyword(part) if part.isidentifier() else None
        if tag is None:
            return None
        tags.append(f"{tag:08X}")
    return tuple(tags)
