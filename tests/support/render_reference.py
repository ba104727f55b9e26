"""Test helpers for render/: a ``Display`` and ``PixelDescription`` read from a pydicom dataset.

This is test code: it plays the part of the ingest step that extracts the display values once.
"""

from __future__ import annotations

import warnings

import numpy as np
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.pixels.processing import _expand_segmented_lut
from pydicom.pixels.utils import pixel_array

from dicomweb_origin.model.appearance import Display, FrameDisplay, Lut, Window
from dicomweb_origin.model.stored import PixelDescription


def read(name: str) -> Dataset:
    """A bundled pydicom / pydicom-data file, never downloaded."""
    path = get_testdata_file(name, download=False)
    assert path is not None, name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dcmread(path)


def _lut(item: Dataset, signed_first: bool) -> Lut:
    entries, first, bits = (int(v) for v in item.LUTDescriptor)
    if signed_first and first > 0x7FFF:
        first -= 0x10000
    data = item.LUTData
    values = list(data) if isinstance(data, list | tuple) else [int(data)]
    return Lut(first_mapped=first, bits=bits, data=tuple(int(v) for v in values[: entries or 65536]))


def _windows(ds: Dataset) -> tuple[Window, ...]:
    if "WindowCenter" not in ds:
        return ()
    centers = ds.WindowCenter if ds["WindowCenter"].VM > 1 else [ds.WindowCenter]
    widths = ds.WindowWidth if ds["WindowWidth"].VM > 1 else [ds.WindowWidth]
    function = str(ds.get("VOILUTFunction", "LINEAR"))
    return tuple(Window(float(c), float(w), function) for c, w in zip(centers, widths, strict=False))


def _palette(ds: Dataset) -> tuple[Lut, Lut, Lut]:
    luts = []
    for colour in ("Red", "Green", "Blue"):
        entries, first, bits = (int(v) for v in ds[f"{colour}PaletteColorLookupTableDescriptor"].value)
        dtype = "<u2" if bits == 16 else "u1"
        if f"Segmented{colour}PaletteColorLookupTableData" in ds:
            raw = ds[f"Segmented{colour}PaletteColorLookupTableData"].value
            segments = np.frombuffer(raw, dtype="<u2" if bits == 16 else "u1")
            values = _expand_segmented_lut(tuple(int(v) for v in segments), "<H" if bits == 16 else "B")
        else:
            values = np.frombuffer(ds[f"{colour}PaletteColorLookupTableData"].value, dtype=dtype).tolist()
        luts.append(Lut(first, bits, tuple(int(v) for v in values)))
    return luts[0], luts[1], luts[2]


def display_of(ds: Dataset) -> Display:
    """What the ingest step would record for ``ds`` (data set level values only)."""
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    modality_lut = _lut(ds.ModalityLUTSequence[0], signed) if "ModalityLUTSequence" in ds else None
    voi_luts = tuple(_lut(item, signed) for item in ds.get("VOILUTSequence", []))
    frame = FrameDisplay(
        rescale_slope=float(ds.get("RescaleSlope", 1.0)),
        rescale_intercept=float(ds.get("RescaleIntercept", 0.0)),
        modality_lut=modality_lut, windows=_windows(ds), voi_luts=voi_luts)
    palette = _palette(ds) if ds.PhotometricInterpretation == "PALETTE COLOR" else None
    shape = ds.get("PresentationLUTShape")
    return Display(frames=(frame,), presentation_lut_shape=str(shape) if shape else None, palette=palette,
                   modality=ds.get("Modality"))


def pixel_of(ds: Dataset, photometric: str | None = None) -> PixelDescription:
    """The Image Pixel description, with the photometric interpretation the decoded array holds."""
    return PixelDescription(
        rows=ds.Rows, columns=ds.Columns, samples_per_pixel=ds.SamplesPerPixel,
        bits_allocated=ds.BitsAllocated, bits_stored=ds.BitsStored,
        pixel_representation=ds.PixelRepresentation,
        photometric_interpretation=photometric or ds.PhotometricInterpretation,
        number_of_frames=int(ds.get("NumberOfFrames", 1)))


def decoded_frame(ds: Dataset, index: int = 0) -> np.ndarray:
    """One frame as the server's decoder returns it: no colour conversion, full resolution."""
    frames = int(ds.get("NumberOfFrames", 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = pixel_array(ds, index=index if frames > 1 else None, as_rgb=False)
    return np.asarray(arr)
