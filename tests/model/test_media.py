"""The transfer syntax table (``model/media.py``) names each syntax once, and pydicom agrees with every row.

The model layer is stdlib only, so its rows spell their UIDs; every other module names a transfer syntax through
that table or through ``pydicom.uid``. Checked here: each row is a transfer syntax of pydicom's UID dictionary
(PS3.6 Table A-1), and no other module of the package writes a transfer syntax UID of its own.
"""

from __future__ import annotations

import re
from pathlib import Path

import pydicom.uid
import pytest

from dicomweb_origin.model import media
from dicomweb_origin.model.media import TRANSFER_SYNTAXES
from dicomweb_origin.render.video import VIDEO_CODECS

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "dicomweb_origin"
# "1.2.840.10008.1.2" is the root of every transfer syntax UID of the standard (PS3.5 Annex A).
TRANSFER_SYNTAX_UID = re.compile(r"1\.2\.840\.10008\.1\.2(?![0-9])")


@pytest.mark.parametrize("uid", sorted(TRANSFER_SYNTAXES))
def test_every_row_is_a_transfer_syntax_pydicom_knows(uid: str) -> None:
    known = pydicom.uid.UID(uid)
    assert known.is_transfer_syntax, f"{uid} ({TRANSFER_SYNTAXES[uid].name}) is no transfer syntax of PS3.6"
    assert known.is_compressed == TRANSFER_SYNTAXES[uid].encapsulated


def test_the_named_syntaxes_are_pydicoms() -> None:
    assert media.EXPLICIT_VR_LE == pydicom.uid.ExplicitVRLittleEndian
    assert media.IMPLICIT_VR_LE == pydicom.uid.ImplicitVRLittleEndian
    assert media.DEFLATED_EXPLICIT_VR_LE == pydicom.uid.DeflatedExplicitVRLittleEndian
    assert media.EXPLICIT_VR_BE == pydicom.uid.ExplicitVRBigEndian


def test_the_video_codecs_cover_the_video_syntaxes_and_their_fragmentable_variants() -> None:
    video = {uid for uid, ts in TRANSFER_SYNTAXES.items() if ts.video}
    assert video <= set(VIDEO_CODECS)
    for uid in VIDEO_CODECS:
        assert pydicom.uid.UID(uid).is_transfer_syntax, uid
        assert uid in video or uid.removesuffix(".1") in video, uid


def test_no_other_module_writes_a_transfer_syntax_uid() -> None:
    table = PACKAGE / "model" / "media.py"
    writers = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                     if path != table and TRANSFER_SYNTAX_UID.search(path.read_text(encoding="utf-8")))
    assert not writers, f"{writers} write transfer syntax UIDs: name them through model.media or pydicom.uid"
    assert TRANSFER_SYNTAX_UID.search(table.read_text(encoding="utf-8"))
