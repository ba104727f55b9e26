"""How an instance is to look: the display pipeline's inputs (PS3.3 C.11, PS3.4 N.2), extracted once at ingest."""

from __future__ import annotations

from dataclasses import dataclass


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
