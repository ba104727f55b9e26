"""Records and tables shared by every layer: transfer syntaxes, stored instances, UIDs.

Stdlib only. Everything here is immutable: a stored instance never changes, which is what
lets every layer cache freely and give every response a stable ETag.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import BadRequest

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


# PS3.5 §9.1: a UID is at most 64 characters, components of digits separated by dots. The rule
# that a component has no leading zero is not enforced: real modalities write such UIDs
# (``1.2.246.352.91.0000217...``) and they compare exactly as strings. Empty components and a
# leading or trailing dot are refused: no real file has them, and "." / ".." would be path names.
UID_MAX_LENGTH = 64
_UID_CHARACTERS = frozenset("0123456789.")


def uid_problem(value: str) -> str | None:
    """Say what keeps ``value`` from being a UID (the words after the UID in a message), or None."""
    if not value:
        return "is empty"
    if bad := next((c for c in value if c not in _UID_CHARACTERS), None):
        return f"contains {bad!r}; a UID is digits and dots"
    if len(value) > UID_MAX_LENGTH:
        return f"is {len(value)} characters; a UID is at most {UID_MAX_LENGTH}"
    if value.startswith("."):
        return "starts with a dot; a UID starts with a digit"
    if value.endswith("."):
        return "ends with a dot; a UID ends with a digit"
    if ".." in value:
        return "has an empty component ('..'); a UID's components are digits"
    return None


def is_valid_uid(value: str) -> bool:
    return uid_problem(value) is None


def uid_error(value: str, label: str) -> str | None:
    """The sentence a refusal gives for the UID ``value`` named ``label``, or None when it is valid."""
    problem = uid_problem(value)
    if problem is None:
        return None
    if not value:
        return f"{label} is empty"
    shown = value if len(value) <= 80 else value[:77] + "..."
    return f"{label} {shown!r} {problem}"


def check_uid(value: str, what: str) -> str:
    """Return ``value`` or raise 400 saying what is wrong with it (PS3.5 §9.1)."""
    if (error := uid_error(value, f"{what} UID")) is not None:
        raise BadRequest(error)
    return value


@dataclass(frozen=True, slots=True)
class PixelDescription:
    """The Image Pixel attributes a codec needs, recorded at ingest."""

    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric_interpretation: str
    planar_configuration: int = 0
    number_of_frames: int = 1

    @property
    def frame_bits(self) -> int:
        return self.rows * self.columns * self.samples_per_pixel * self.bits_allocated

    @property
    def packed_unaligned(self) -> bool:
        """1-bit frames whose bits do not fill whole bytes: frame n starts inside a byte."""
        return self.bits_allocated == 1 and self.frame_bits % 8 != 0

    @property
    def frame_length(self) -> int:
        """Bytes of one native (uncompressed) frame, rounded up to whole bytes."""
        samples = self.samples_per_pixel
        if self.photometric_interpretation == "YBR_FULL_422":
            samples = 2  # two chroma samples shared by each pair of pixels (PS3.3 C.7.6.3.1.2)
        bits = self.rows * self.columns * samples * self.bits_allocated
        return (bits + 7) // 8


@dataclass(frozen=True, slots=True)
class BulkElement:
    """A bulk data value inside the stored blob, addressed by its tag path.

    ``path`` is the tag path as it appears in the BulkDataURI: ``7FE00010`` at the top level,
    ``00540016/0/00181078`` inside item 0 of a sequence.
    """

    path: str
    vr: str
    offset: int
    length: int


# A frame is one or more fragments: (offset, length) byte ranges of the stored blob.
Frame = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """What the index holds for one stored instance: everything retrieve needs without the file."""

    study_uid: str
    series_uid: str
    instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str  # of the stored blob
    source_transfer_syntax_uid: str  # as received
    blob_key: str
    size: int
    digest: str  # sha256 of the stored blob, hex
    instance_number: int | None = None
    number_of_frames: int = 0
    pixel: PixelDescription | None = None
    pixel_path: str | None = None  # "7FE00010", "7FE00008" or "7FE00009"
    frames: tuple[Frame, ...] = ()
    bulk: tuple[BulkElement, ...] = field(default=())
    lossy: bool = False
    display: Display | None = None  # None: no pixel data (or stored before display was extracted)

    @property
    def syntax(self) -> TransferSyntax:
        return TRANSFER_SYNTAXES.get(self.transfer_syntax_uid) or TransferSyntax(
            self.transfer_syntax_uid, "unknown", "application/octet-stream", True, True
        )

    def bulk_element(self, path: str) -> BulkElement | None:
        for element in self.bulk:
            if element.path == path:
                return element
        return None

    @property
    def path(self) -> str:
        """The instance resource path under the DICOMweb root."""
        return f"/studies/{self.study_uid}/series/{self.series_uid}/instances/{self.instance_uid}"


@dataclass(frozen=True, slots=True)
class StudyRecord:
    """Study-level attributes kept by the index (for search and study-level responses)."""

    study_uid: str
    attributes: dict[str, object]  # DICOM JSON of the study-level attributes


@dataclass(frozen=True, slots=True)
class StoredInstance:
    """What ingest hands to the index: the record, its metadata and its search attributes."""

    record: InstanceRecord
    metadata: bytes  # DICOM JSON object (orjson), BulkDataURIs relative to the DICOMweb root
    study_attributes: dict[str, object]
    series_attributes: dict[str, object]
    instance_attributes: dict[str, object]


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


# -- The display pipeline (PS3.3 C.11, PS3.4 N.2): what rendering needs, extracted once at ingest --


@dataclass(frozen=True, slots=True)
class Lut:
    """A lookup table as PS3.3 C.11.1.1 describes it: first mapped input, bits per entry, entries."""

    first_mapped: int
    bits: int
    data: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Window:
    """A VOI window (PS3.3 C.11.2.1.2); ``function`` is a VOI LUT Function value."""

    center: float
    width: float
    function: str = "LINEAR"  # LINEAR, LINEAR_EXACT or SIGMOID


@dataclass(frozen=True, slots=True)
class FrameDisplay:
    """The per-frame part of the pipeline: the data set's values, or one frame's functional groups."""

    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    modality_lut: Lut | None = None  # Modality LUT Sequence; replaces rescale when present
    windows: tuple[Window, ...] = ()
    voi_luts: tuple[Lut, ...] = ()
    position: tuple[float, float, float] | None = None  # Image Position (Patient), mm (LPS)
    orientation: tuple[float, float, float, float, float, float] | None = None  # Image Orientation (Patient)
    pixel_spacing: tuple[float, float] | None = None  # (row spacing, column spacing), mm


@dataclass(frozen=True, slots=True)
class Display:
    """What rendering an instance needs besides its pixels, so that no request parses a file.

    ``frames`` holds one entry shared by every frame, or one entry per frame (Enhanced multi-frame
    per-frame functional groups); ``frame(index)`` hides the difference.
    """

    frames: tuple[FrameDisplay, ...] = (FrameDisplay(),)
    presentation_lut_shape: str | None = None  # IDENTITY or INVERSE
    presentation_lut: Lut | None = None
    palette: tuple[Lut, Lut, Lut] | None = None  # red, green, blue (PALETTE COLOR, segmented ones expanded)
    icc_profile_path: str | None = None  # tag path of ICC Profile among the record's bulk elements
    frame_time_ms: float | None = None  # Frame Time, or derived from Frame Time Vector / Cine Rate
    modality: str | None = None
    frame_of_reference_uid: str | None = None

    def frame(self, index: int) -> FrameDisplay:
        return self.frames[index] if len(self.frames) > 1 else self.frames[0]


@dataclass(frozen=True, slots=True)
class Viewport:
    """The ``viewport`` parameter (PS3.18 §8.3.5.1.3): output size and an optional source region.

    Source values are in source pixels; a negative width or height flips that axis; None means the
    default (0 for the origin, to the far edge for the size).
    """

    width: int
    height: int
    sx: float | None = None
    sy: float | None = None
    sw: float | None = None
    sh: float | None = None

    @property
    def has_region(self) -> bool:
        return any(v is not None for v in (self.sx, self.sy, self.sw, self.sh))


@dataclass(frozen=True, slots=True)
class RenderParams:
    """Every rendering parameter of a request, parsed and checked (PS3.18 §8.3.5.1); keys the cache and ETag."""

    window: Window | None = None
    viewport: Viewport | None = None
    quality: int | None = None  # 1-100 for lossy media types
    annotation: tuple[str, ...] = ()  # supported keywords only: "patient", "technique"
    iccprofile: str | None = None  # no, yes, srgb, adobergb, rommrgb
    charset: str = "utf-8"


# -- Rendered MPR and Rendered 3D (PS3.18 §10.4.1.1.7-8, §8.3.5.3): the parsed query ------------------

Vector = tuple[float, float, float]

RENDERING_METHODS = {"volume_rendered": "VOLUME_RENDERED", "maximum_ip": "MAXIMUM_IP", "minimum_ip": "MINIMUM_IP",
                     "average_ip": "AVERAGE_IP"}  # §8.3.5.3.3 → Rendering Method (0070,120D)
ORIENTATIONS = ("a", "p", "r", "l", "h", "f")  # §8.3.5.3.4


@dataclass(frozen=True, slots=True)
class VolumeSelector:
    """``volumeinputreference`` and ``match`` (§8.3.5.3.1-2): which instances or frames form the volume."""

    instance_uids: tuple[str, ...] = ()
    frame_numbers: tuple[int, ...] = ()  # 1-based, of the one multi-frame instance of the target
    match: tuple[tuple[str, str], ...] = ()  # (attribute keyword or tag, value), as given

    @property
    def empty(self) -> bool:
        return not (self.instance_uids or self.frame_numbers or self.match)


@dataclass(frozen=True, slots=True)
class VolumeParams:
    """Every parameter of a Rendered MPR / 3D request, parsed and checked; keys the caches and ETag.

    Unset values are None: what the server chooses instead is decided by the use case and reported
    (Annex K), never here.
    """

    render: RenderParams = RenderParams()
    selector: VolumeSelector = VolumeSelector()
    rendering_method: str | None = None  # a Rendering Method value (VOLUME_RENDERED, MAXIMUM_IP, ...)
    orientation: str | None = None  # a p r l h f
    viewpoint: tuple[Vector, Vector, Vector] | None = None  # position, lookat, up (§8.3.5.3.5-7)
    slab: float | None = None  # mprslab, mm (> 0)
    swivel_range: float | None = None  # degrees
    curve: tuple[Vector, ...] = ()  # volumetriccurvepoint, mm
    step: int | None = None  # animationstepsize: degrees (swivel) or mm (curve)
    rate: int | None = None  # animationrate: steps per second
    metadata_only: bool = False  # renderedvolumetricmetadata=yes

    @property
    def animated(self) -> bool:
        return self.swivel_range is not None or bool(self.curve)
