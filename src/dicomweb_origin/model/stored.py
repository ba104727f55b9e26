"""What is stored for an instance: its record in the index (pixels, frames, bulk data) and what ingest hands over.

Everything here is immutable: a stored instance never changes, which is what lets every layer cache freely and
give every response a stable ETag.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .appearance import Display
from .media import TRANSFER_SYNTAXES, TransferSyntax


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
