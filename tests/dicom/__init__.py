"""Tests of dicomweb_origin.dicom: reading, decoding and transcoding DICOM (PS3.5, PS3.3)."""
