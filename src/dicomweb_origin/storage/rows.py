"""What the SQL indexes share: turning a search's result rows into DICOM JSON matches."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson


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
