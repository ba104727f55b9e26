"""The archive of the lite viewer's browser tests: the demo, and a coronal acquisition of the same phantom.

The coronal series reslices the demo CT's phantom (``demo.phantom_volume``) along y into the demo CT's study and
Frame of Reference: rows run from the head down (Image Orientation (Patient) 1,0,0,0,0,-1), slices step from
anterior to posterior. The same anatomy must then appear in the same place, whichever way it was acquired.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

from dicomweb_origin.demo import FOV_MM, Z_EXTENT_MM, demo_uid, phantom_volume

CORONAL_DESCRIPTION = "Phantom coronal"


def coronal_series(template: Path, out: Path, slices: int, size: int, step: int = 2) -> list[Path]:
    """Coronal slices (every ``step``-th row of the axial phantom) in the study of the demo CT file ``template``."""
    volume = phantom_volume(slices, size)  # (z up, y to posterior, x to the left)
    source = pydicom.dcmread(template)
    spacing, thickness = round(FOV_MM / size, 6), round(Z_EXTENT_MM / slices, 6)
    corner = round(-FOV_MM / 2 + spacing / 2, 4)
    top = round(-Z_EXTENT_MM / 2 + (slices - 0.5) * thickness, 4)
    series = demo_uid("coronal", slices, size, "series")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, row in enumerate(range(0, size, step), start=1):
        ds = copy.deepcopy(source)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(
            entropy_srcs=["coronal", str(slices), str(size), str(row)])
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = series, 2, CORONAL_DESCRIPTION
        ds.InstanceNumber = number
        ds.ImageType = ["ORIGINAL", "PRIMARY", "CORONAL"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # rows to the patient's left, columns down to the feet
        y = round(-FOV_MM / 2 + (row + 0.5) * spacing, 4)
        ds.ImagePositionPatient = [corner, y, top]
        ds.PixelSpacing = [thickness, spacing]  # between rows (along z), between columns (along x)
        ds.SliceThickness = ds.SpacingBetweenSlices = round(spacing * step, 6)
        ds.SliceLocation = y
        pixels = np.ascontiguousarray(volume[::-1, row, :])  # the head at the top
        ds.set_pixel_data(pixels, "MONOCHROME2", 16, generate_instance_uid=False)
        path = out / f"{number:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
