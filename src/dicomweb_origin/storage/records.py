"""How records and attributes become rows, for every index: the record codec, the column maps, match keys.

* ``record_to_json`` / ``record_from_json``: an ``InstanceRecord`` (frames, bulk elements, display pipeline)
  as the compact JSON the SQL indexes store in ``instance.record``.
* ``STUDY_COLUMNS`` / ``SERIES_COLUMNS``: the attributes kept in indexed columns of the study and series rows;
  ``column_value`` reads one from DICOM JSON as a plain column value.
* ``fold``: a person name as compared (PS3.4 C.2.2.2.1.1, case- and accent-insensitive); ``match_keys``: every
  attribute's values as matched, computed once at ingest.
* ``search_matches``: the rows of a search back into DICOM JSON matches.
* ``RecordCache``: parsed records by (UID, revision), so a record read again is not parsed again.
"""

from __future__ import annotations

import array
import base64
import dataclasses
import sys
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from ..model.appearance import Display, FrameDisplay, Lut, Window
from ..model.stored import BulkElement, InstanceRecord, PixelDescription

STUDY_COLUMNS = {
    "00100020": "patient_id",
    "00100010": "patient_name",
    "00100030": "patient_birth_date",
    "00100040": "patient_sex",
    "00080020": "study_date",
    "00080030": "study_time",
    "00080050": "accession_number",
    "00200010": "study_id",
    "00081030": "study_description",
    "00080090": "referring_physician_name",
}
SERIES_COLUMNS = {
    "00080060": "modality",
    "00200011": "series_number",
    "0008103E": "series_description",
    "00080021": "series_date",
    "00080031": "series_time",
}
NUMERIC_COLUMNS = frozenset({"series_number", "instance_number"})


def fold(name: str | None) -> str | None:
    """A person name for comparison: accents removed, upper case, trailing empty components dropped."""
    if name is None:
        return None
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper().rstrip("^ ")


def text(value: Any) -> str | None:
    """A column or match-key string; NUL, which PostgreSQL text and JSONB cannot hold, is dropped."""
    return None if value is None else str(value).replace("\x00", "")


def integer(value: Any) -> int | None:
    """An IS value as an integer column value; None when it is not a whole number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() and abs(number) < 1 << 62 else None


def column_value(attributes: dict[str, Any], tag: str) -> Any:
    """The first value of a DICOM JSON attribute as a plain column value (PN as its Alphabetic form)."""
    element = attributes.get(tag)
    if not element or not element.get("Value"):
        return None
    value = element["Value"][0]
    if isinstance(value, dict):
        return value.get("Alphabetic")
    return value


def study_columns(attributes: dict[str, Any]) -> tuple[Any, ...]:
    """The values of ``STUDY_COLUMNS``, then the folded patient and referring physician names."""
    return (*(text(column_value(attributes, t)) for t in STUDY_COLUMNS),
            fold(text(column_value(attributes, "00100010"))), fold(text(column_value(attributes, "00080090"))))


def series_columns(attributes: dict[str, Any]) -> tuple[Any, ...]:
    """The values of ``SERIES_COLUMNS`` (SeriesNumber as an integer)."""
    return tuple(integer(column_value(attributes, t)) if column == "series_number"
                 else text(column_value(attributes, t)) for t, column in SERIES_COLUMNS.items())


def match_keys(attributes: dict[str, Any]) -> dict[str, list[Any]]:
    """Every attribute's values as stored for matching: PN folded (Alphabetic group), items as nested keys."""
    keys: dict[str, list[Any]] = {}
    for tag, element in attributes.items():
        if not isinstance(element, dict):
            continue
        values = element.get("Value")
        if not values:
            continue
        out: list[Any] = []
        for value in values:
            if isinstance(value, dict):
                if element.get("vr") == "PN":
                    folded = fold(text(value.get("Alphabetic")))
                    if folded is not None:
                        out.append(folded)
                else:
                    out.append(match_keys(value))
            elif isinstance(value, str):
                out.append(text(value))
            elif value is not None:
                out.append(value)
        if out:
            keys[tag] = out
    return keys


def search_matches(rows: Iterable[Sequence[Any]], level: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Each row's match, with its study's attributes parsed once per study; also the studies by UID.

    Rows are ``study_uid, study JSON, series count, instance count`` then, below study level,
    ``series_uid, series JSON, instance count`` and, at instance level, ``instance_uid, instance JSON, SOP class``.
    """
    studies: dict[str, dict[str, Any]] = {}
    matches = []
    for row in rows:
        study = studies.get(row[0])
        if study is None:
            study = studies[row[0]] = orjson.loads(row[1]) | {
                "00201206": {"vr": "IS", "Value": [row[2]]},
                "00201208": {"vr": "IS", "Value": [row[3]]},
            }
        match = dict(study)
        match["0020000D"] = {"vr": "UI", "Value": [row[0]]}
        if level != "study":
            match.update(orjson.loads(row[5]))
            match["0020000E"] = {"vr": "UI", "Value": [row[4]]}
            match["00201209"] = {"vr": "IS", "Value": [row[6]]}
        if level == "instance":
            match.update(orjson.loads(row[8]))
            match["00080018"] = {"vr": "UI", "Value": [row[7]]}
            match["00083002"] = {"vr": "UI", "Value": [row[9]]}
        matches.append(match)
    return studies, matches


# -- the record codec ----------------------------------------------------------------------------


def record_to_json(record: InstanceRecord) -> bytes:
    return orjson.dumps(record, default=_encode, option=orjson.OPT_PASSTHROUGH_DATACLASS)


def _encode(value: Any) -> Any:
    """Dataclasses as objects of their fields; LUT data as base64 of little-endian uint16.

    A 16-bit palette (3 x 65536 entries) as JSON integers makes a 1.1 MB record; as base64 0.5 MB.
    """
    if isinstance(value, Lut):
        return {"first_mapped": value.first_mapped, "bits": value.bits, "data": _pack(value.data)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise TypeError(f"cannot encode {type(value).__name__}")


def _pack(data: tuple[int, ...]) -> str | tuple[int, ...]:
    if all(0 <= v <= 0xFFFF for v in data):
        table = array.array("H", data)
        if sys.byteorder == "big":
            table.byteswap()
        return base64.b64encode(table.tobytes()).decode("ascii")
    return data  # not 16-bit entries: kept as integers


# Identical LUTs (every instance of a series with one palette) share one tuple in memory.
_LUT_DATA: OrderedDict[str, tuple[int, ...]] = OrderedDict()
_LUT_DATA_SIZE = 64
_LUT_LOCK = threading.Lock()


def _unpack(data: str | list[int]) -> tuple[int, ...]:
    if not isinstance(data, str):
        return tuple(data)
    with _LUT_LOCK:
        cached = _LUT_DATA.get(data)
        if cached is not None:
            _LUT_DATA.move_to_end(data)
            return cached
    table = array.array("H", base64.b64decode(data))
    if sys.byteorder == "big":
        table.byteswap()
    values = tuple(table)
    with _LUT_LOCK:
        _LUT_DATA[data] = values
        while len(_LUT_DATA) > _LUT_DATA_SIZE:
            _LUT_DATA.popitem(last=False)
    return values


def _lut(raw: dict[str, Any] | None) -> Lut | None:
    return Lut(raw["first_mapped"], raw["bits"], _unpack(raw["data"])) if raw else None


_SHARED: dict[Any, Any] = {}  # values every record of a series repeats, one object each (bounded below)


def _shared(value: Any) -> Any:
    """The one kept object equal to ``value`` (hashable): a study's records share their pixel description."""
    found = _SHARED.get(value)
    if found is None:
        if len(_SHARED) > 4096:
            _SHARED.clear()
        found = _SHARED[value] = value
    return found


def _floats(raw: list[float] | None) -> Any:
    return None if raw is None else _shared(tuple(map(float, raw)))


def _frame_display(raw: dict[str, Any]) -> FrameDisplay:
    get = raw.get
    windows = get("windows")
    voi_luts = get("voi_luts")
    return FrameDisplay(
        get("rescale_slope", 1.0),
        get("rescale_intercept", 0.0),
        _lut(get("modality_lut")),
        _shared(tuple(Window(w["center"], w["width"], w.get("function", "LINEAR")) for w in windows))
        if windows else (),
        tuple(lut for lut in map(_lut, voi_luts) if lut is not None) if voi_luts else (),
        None if (position := get("position")) is None else tuple(map(float, position)),  # type: ignore[arg-type]
        _floats(get("orientation")),
        _floats(get("pixel_spacing")),
    )


def _display(raw: dict[str, Any] | None) -> Display | None:
    if raw is None:
        return None
    get = raw.get
    palette = [_lut(p) for p in get("palette") or ()]
    return Display(
        tuple(map(_frame_display, get("frames", ()))) or (FrameDisplay(),),
        get("presentation_lut_shape"),
        _lut(get("presentation_lut")),
        (palette[0], palette[1], palette[2]) if len(palette) == 3 and all(palette) else None,  # type: ignore[arg-type]
        get("icc_profile_path"),
        get("frame_time_ms"),
        get("modality"),
        get("frame_of_reference_uid"),
    )


def record_from_json(data: bytes) -> InstanceRecord:
    """The record of ``record_to_json``; what a series' records repeat is one object in memory (``_shared``)."""
    raw = orjson.loads(data)
    get = raw.get
    pixel = get("pixel")
    bulk = get("bulk")
    return InstanceRecord(  # positionally, in the fields' order: a few microseconds less per record
        _shared(raw["study_uid"]),
        _shared(raw["series_uid"]),
        raw["instance_uid"],
        _shared(raw["sop_class_uid"]),
        _shared(raw["transfer_syntax_uid"]),
        _shared(raw["source_transfer_syntax_uid"]),
        raw["blob_key"],
        raw["size"],
        raw["digest"],
        get("instance_number"),
        get("number_of_frames", 0),
        _shared(PixelDescription(**pixel)) if pixel else None,
        get("pixel_path"),
        tuple([tuple([(int(o), int(n)) for o, n in frame]) for frame in get("frames", ())]),
        tuple([BulkElement(**b) for b in bulk]) if bulk else (),
        get("lossy", False),
        _display(get("display")),
    )


class RecordCache:
    """Parsed records by (SOP Instance UID, revision): a row rewritten by any process has a new revision."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._records: OrderedDict[tuple[str, int], InstanceRecord] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, uid: str, revision: int, blob: bytes) -> InstanceRecord:
        key = (uid, revision)
        with self._lock:
            cached = self._records.get(key)
            if cached is not None:
                self._records.move_to_end(key)
                return cached
        record = record_from_json(blob)
        self.put(uid, revision, record)
        return record

    def put(self, uid: str, revision: int, record: InstanceRecord) -> None:
        with self._lock:
            self._records[(uid, revision)] = record
            self._records.move_to_end((uid, revision))
            while len(self._records) > self.size:
                self._records.popitem(last=False)
