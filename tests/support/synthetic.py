"""Many distinct small instances on demand: pydicom's MR_small.dcm under new UIDs (and a patient name)."""

from __future__ import annotations

import functools
import io

from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file

PREFIX = "1.2.826.0.1.3680043.10.1011"  # a test root: nothing real lives under it


@functools.cache
def _template() -> Dataset:
    return dcmread(str(get_testdata_file("MR_small.dcm")))


def instance_bytes(study: str, series: str, instance: str, patient_name: str = "DOE^JOHN",
                   instance_number: int = 1) -> bytes:
    """One Explicit VR Little Endian MR instance (64x64, 16-bit) with these UIDs."""
    ds = _template().copy()
    ds.file_meta = _template().file_meta.copy()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, instance
    ds.file_meta.MediaStorageSOPInstanceUID = instance
    ds.PatientName = patient_name
    ds.InstanceNumber = instance_number
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def uid(*parts: int | str) -> str:
    return ".".join([PREFIX, *(str(p) for p in parts)])
