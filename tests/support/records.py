"""Index records made by hand: what ingest would hand the index for an instance, without a DICOM file."""

from __future__ import annotations

from typing import Any

from dicomweb_origin.model.stored import InstanceRecord, PixelDescription, StoredInstance

CT = "1.2.840.10008.5.1.4.1.1.2"
SC = "1.2.840.10008.5.1.4.1.1.7"
PIXEL = PixelDescription(rows=2, columns=2, samples_per_pixel=1, bits_allocated=16, bits_stored=12,
                         pixel_representation=0, photometric_interpretation="MONOCHROME2")


def stored(study: str, series: str, instance: str, *, number: int | None = None, series_number: int | None = None,
           name: str = "DOE^JOHN", modality: str = "CT", sop_class: str = CT, study_date: str | None = None,
           study_time: str | None = None, study_extra: dict[str, Any] | None = None,
           series_extra: dict[str, Any] | None = None, instance_extra: dict[str, Any] | None = None,
           pixel: bool = False, digest: str | None = None) -> StoredInstance:
    """A StoredInstance as ingest would hand it over (attributes as DICOM JSON)."""
    record = InstanceRecord(
        study_uid=study, series_uid=series, instance_uid=instance, sop_class_uid=sop_class,
        transfer_syntax_uid="1.2.840.10008.1.2.1", source_transfer_syntax_uid="1.2.840.10008.1.2.1",
        blob_key=f"{study}/{series}/{instance}.dcm", size=8, digest=digest or instance.encode().hex(),
        instance_number=number, number_of_frames=1 if pixel else 0, pixel=PIXEL if pixel else None,
        pixel_path="7FE00010" if pixel else None, frames=(((100, 8),),) if pixel else (),
    )
    study_attrs: dict[str, Any] = {"00100010": {"vr": "PN", "Value": [{"Alphabetic": name}]},
                                   "00100020": {"vr": "LO", "Value": [f"PID-{study}"]}}
    if study_date is not None:
        study_attrs["00080020"] = {"vr": "DA", "Value": [study_date]}
    if study_time is not None:
        study_attrs["00080030"] = {"vr": "TM", "Value": [study_time]}
    series_attrs: dict[str, Any] = {"00080060": {"vr": "CS", "Value": [modality]}}
    if series_number is not None:
        series_attrs["00200011"] = {"vr": "IS", "Value": [series_number]}
    instance_attrs: dict[str, Any] = {"00080016": {"vr": "UI", "Value": [sop_class]}}
    if number is not None:
        instance_attrs["00200013"] = {"vr": "IS", "Value": [number]}
    metadata = f'{{"00080018":{{"vr":"UI","Value":["{instance}"]}}}}'.encode()
    return StoredInstance(record, metadata, study_attrs | (study_extra or {}), series_attrs | (series_extra or {}),
                          instance_attrs | (instance_extra or {}))
