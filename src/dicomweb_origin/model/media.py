"""Media types and transfer syntaxes (PS3.18 §8.7.3): the transfer syntax table, and one parsed Accept range.

Each syntax's UID is written once, in its row; ``tests/model/test_media.py`` holds every row against pydicom's UID
dictionary (``pydicom.uid``), which the layers that read DICOM use by name. Stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
DEFLATED_EXPLICIT_VR_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BE = "1.2.840.10008.1.2.2"


@dataclass(frozen=True, slots=True)
class TransferSyntax:
    """One row of the transfer syntax table (PS3.18 Tables 8.7.3-2 and 8.7.3-5)."""

    uid: str
    name: str
    media_type: str  # bulk data media type for one frame in this syntax (§8.7.3.3)
    encapsulated: bool
    lossy: bool
    media_default: bool = False  # the syntax a bare ``media_type`` without transfer-syntax means
    video: bool = False
    web: bool = True  # Implicit VR LE and Big Endian are never sent on the web (§8.7.3)

    @property
    def always_lossy(self) -> bool:
        """Lossy whatever the dataset claims: JPEG baseline / extended and the video syntaxes."""
        return self.video or self.uid in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51")


_TS = TransferSyntax
TRANSFER_SYNTAXES: dict[str, TransferSyntax] = {
    ts.uid: ts
    for ts in (
        _TS(EXPLICIT_VR_LE, "Explicit VR Little Endian", "application/octet-stream", False, False, True),
        _TS(IMPLICIT_VR_LE, "Implicit VR Little Endian", "application/octet-stream", False, False, web=False),
        _TS(EXPLICIT_VR_BE, "Explicit VR Big Endian", "application/octet-stream", False, False, web=False),
        _TS(DEFLATED_EXPLICIT_VR_LE, "Deflated Explicit VR Little Endian", "application/octet-stream",
            False, False),
        _TS("1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1)", "image/jpeg", True, True),
        _TS("1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 & 4)", "image/jpeg", True, True),
        _TS("1.2.840.10008.1.2.4.57", "JPEG Lossless (Process 14)", "image/jpeg", True, False),
        _TS("1.2.840.10008.1.2.4.70", "JPEG Lossless SV1 (Process 14)", "image/jpeg", True, False, True),
        _TS("1.2.840.10008.1.2.4.80", "JPEG-LS Lossless", "image/jls", True, False, True),
        _TS("1.2.840.10008.1.2.4.81", "JPEG-LS Near-Lossless", "image/jls", True, True),
        _TS("1.2.840.10008.1.2.4.90", "JPEG 2000 Lossless", "image/jp2", True, False, True),
        _TS("1.2.840.10008.1.2.4.91", "JPEG 2000", "image/jp2", True, True),
        _TS("1.2.840.10008.1.2.4.92", "JPEG 2000 Part 2 Lossless", "image/jpx", True, False, True),
        _TS("1.2.840.10008.1.2.4.93", "JPEG 2000 Part 2", "image/jpx", True, True),
        _TS("1.2.840.10008.1.2.4.201", "HTJ2K Lossless", "image/jph", True, False, True),
        _TS("1.2.840.10008.1.2.4.202", "HTJ2K Lossless RPCL", "image/jph", True, False),
        _TS("1.2.840.10008.1.2.4.203", "HTJ2K", "image/jph", True, True),
        _TS("1.2.840.10008.1.2.5", "RLE Lossless", "image/dicom-rle", True, False, True),
        _TS("1.2.840.10008.1.2.4.100", "MPEG2 MP@ML", "video/mpeg", True, True, video=True),
        _TS("1.2.840.10008.1.2.4.101", "MPEG2 MP@HL", "video/mpeg", True, True, True, video=True),
        _TS("1.2.840.10008.1.2.4.102", "MPEG-4 AVC/H.264 HP@L4.1", "video/mp4", True, True, True, video=True),
        _TS("1.2.840.10008.1.2.4.103", "MPEG-4 AVC/H.264 BD HP@L4.1", "video/mp4", True, True, video=True),
        _TS("1.2.840.10008.1.2.4.104", "MPEG-4 AVC/H.264 HP@L4.2 2D", "video/mp4", True, True, video=True),
        _TS("1.2.840.10008.1.2.4.105", "MPEG-4 AVC/H.264 HP@L4.2 3D", "video/mp4", True, True, video=True),
        _TS("1.2.840.10008.1.2.4.106", "MPEG-4 AVC/H.264 Stereo HP@L4.2", "video/mp4", True, True, video=True),
        _TS("1.2.840.10008.1.2.4.107", "HEVC/H.265 Main", "video/H265", True, True, True, video=True),
        _TS("1.2.840.10008.1.2.4.108", "HEVC/H.265 Main 10", "video/H265", True, True, video=True),
    )
}

# Legacy experimental names still sent by old peers (§8.7.3.3.2 notes).
MEDIA_TYPE_ALIASES = {"image/x-dicom-rle": "image/dicom-rle", "image/x-jls": "image/jls", "video/mpeg2": "video/mpeg"}


def transfer_syntax(uid: str) -> TransferSyntax | None:
    return TRANSFER_SYNTAXES.get(uid)


def counts_as_lossy(transfer_syntax_uid: str, declared: str) -> bool:
    """Whether pixels went through lossy compression (PS3.3 C.7.6.1.1.5), given Lossy Image Compression.

    A syntax that allows lossy coding counts as lossy unless the data set declares "00"; one that is
    only lossy (JPEG baseline / extended, video) counts as lossy whatever the data set says.
    """
    ts = TRANSFER_SYNTAXES.get(transfer_syntax_uid)
    return declared == "01" or bool(ts and (ts.always_lossy or ts.lossy and declared != "00"))


def default_syntax_for(media_type: str) -> str | None:
    """The transfer syntax a media type means when it carries no transfer-syntax parameter."""
    for ts in TRANSFER_SYNTAXES.values():
        if ts.media_type == media_type and ts.media_default:
            return ts.uid
    return None


@dataclass(frozen=True, slots=True)
class Acceptable:
    """One acceptable media type of a request, after parsing (PS3.18 §8.7.5).

    ``media_type`` is the type of each representation (the ``type`` parameter of a
    ``multipart/related`` range); ``multipart`` says whether it was asked for wrapped in
    ``multipart/related`` (True), bare (False) or either (None, for ``*/*``). Wildcards stay as
    written (``*/*``, ``image/*``). ``from_query`` marks entries of the ``accept`` query parameter.
    """

    media_type: str
    multipart: bool | None
    transfer_syntax: str | None = None
    q: float = 1.0
    from_query: bool = False

    def matches(self, media_type: str) -> bool:
        if self.media_type == "*/*":
            return True
        if self.media_type.endswith("/*"):
            return media_type.startswith(self.media_type[:-1])
        return self.media_type == media_type

    @property
    def wildcard(self) -> bool:
        return self.media_type.endswith("*")

    def specificity(self, media_type: str, syntax: str | None, multipart: bool) -> int:
        """How precisely this range names a representation; -1 when it does not match it at all."""
        if not self.matches(media_type) or self.multipart not in (None, multipart):
            return -1
        named_syntax = self.transfer_syntax not in (None, "*")
        if named_syntax and self.transfer_syntax != syntax:
            return -1
        kind = 0 if self.media_type == "*/*" else 1 if self.wildcard else 2
        return kind * 2 + named_syntax + (self.multipart is not None)
