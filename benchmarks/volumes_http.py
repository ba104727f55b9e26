"""End-to-end figures of Rendered MPR / 3D (PS3.18 §10.4.1.1.7-8): ingest, the use case, a real server over HTTP.

    .venv/bin/python benchmarks/volumes_http.py [--rows 512] [--slices 300]

The synthetic CT of ``volumes.synthetic_ct`` is written as single-frame CT files and stored through the normal
ingest into a temporary archive. Then: cold assembly through the Retrieve use case (decode on the executor, in
parallel, and assemble; ``renderedvolumetricmetadata=yes`` so nothing is rendered), the cache's memory; and, on a
real server process, a cold first request and warm oblique 512 x 512 MPRs (each with another look-at point, so the
rendered cache misses and only the assembled volume is reused), and the server's RSS. The 36-frame swivel GIF is
timed through the use case (tens of seconds on 2 loaded cores: past the benchmark client's 120 s socket timeout).
Prints figures; asserts nothing. ``benchmarks/volumes.py`` runs this after its pure figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT_PATH, Server, figure, heading, ingest, latency_figure, measure, mib, temp_dir  # noqa: E402
from pydicom import Dataset  # noqa: E402
from pydicom.dataset import FileMetaDataset  # noqa: E402
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid  # noqa: E402

TARGET_ASSEMBLY_S = 3.0
TARGET_WARM_MPR_MS = 50.0


def write_series(slices: list, out: Path) -> tuple[list[Path], str, str]:  # type: ignore[type-arg]
    """The slices of ``volumes.synthetic_ct`` as CT Image Storage files of one series (shuffled order kept)."""
    out.mkdir(parents=True, exist_ok=True)
    study, series, frame_of_reference = generate_uid(), generate_uid(), slices[0].frame_of_reference_uid
    paths = []
    for n, item in enumerate(slices):
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PatientName, ds.PatientID, ds.Modality = "Bench^Volume", "BENCH-VOL", "CT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_reference
        ds.SeriesDescription, ds.InstanceNumber = "Synthetic CT", n + 1
        ds.ImagePositionPatient = [f"{v:.4f}" for v in item.position]
        ds.ImageOrientationPatient = list(item.orientation)
        ds.PixelSpacing = list(item.pixel_spacing)
        ds.RescaleSlope, ds.RescaleIntercept = item.slope, item.intercept
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.set_pixel_data(item.pixels.astype("int16"), "MONOCHROME2", 16, generate_instance_uid=False)
        path = out / f"{n:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths, study, series


def http_figures(rows: int = 512, slices: int = 300, requests: int = 20) -> None:
    from volumes import synthetic_ct

    from dicomweb_origin.app import Archive
    from dicomweb_origin.model.media import Acceptable
    from dicomweb_origin.model.rendering import VolumeParams
    from dicomweb_origin.retrieve import Target
    from dicomweb_origin.settings import Settings

    with temp_dir() as tmp:
        heading(f"End to end: a {rows}x{rows}x{slices} int16 CT series ingested into a temporary archive")
        start = time.perf_counter()
        paths, study_uid, series_uid = write_series(synthetic_ct(rows, slices), tmp / "series")
        figure("write the series (setup)", f"{time.perf_counter() - start:.1f} s, {len(paths)} files")
        data = tmp / "archive"
        result = ingest(data, paths)
        figure("ingest", f"{result.instances} instances in {result.seconds:.2f} s {result.outcomes}")

        archive = Archive(Settings(data_dir=data))
        target = Target(study_uid, series_uid)
        metadata = VolumeParams(metadata_only=True)
        accept = [Acceptable("application/dicom+json", None)]
        start = time.perf_counter()
        archive.retrieve.volume("mpr", target, None, accept, metadata)
        cold = time.perf_counter() - start
        figure("cold assembly through the use case (decode + assemble)", f"{cold:8.2f} s",
               f"< {TARGET_ASSEMBLY_S:g} s", cold < TARGET_ASSEMBLY_S)
        start = time.perf_counter()
        archive.retrieve.volume("mpr", target, None, accept, metadata)
        figure("the same again (cached volume)", f"{(time.perf_counter() - start) * 1000:8.1f} ms")
        figure("volume cache memory", f"{mib(archive.retrieve.volumes.size)} in {len(archive.retrieve.volumes)}"
               " volume(s)")
        swivel = VolumeParams(rendering_method="MAXIMUM_IP", swivel_range=360.0, step=10, rate=10)
        start = time.perf_counter()
        payload = archive.retrieve.volume("3d", target, None, [Acceptable("image/gif", False)], swivel)
        archive.lanes.heavy.submit(payload.parts[0].materialize).result()  # as the web layer produces it
        gif = time.perf_counter() - start
        figure("36-frame swivel GIF, 3D MIP, through the use case", f"{gif:8.2f} s ({gif * 1000 / 36:.0f} ms a"
               f" frame, {mib(payload.parts[0].length or 0)})")
        archive.lanes.shutdown()
        archive.index.close()

        series = f"{ROOT_PATH}/studies/{study_uid}/series/{series_uid}"
        with Server(data) as server:
            host, port = server.host, server.port
            oblique = "viewpointposition=-300,-300,{z}&viewpointlookat=0,0,{z}&viewpointup=0,0,1&viewport=512,512"
            first = measure(host, port, [f"{series}/renderedmpr?" + oblique.format(z=0)], {"Accept": "image/jpeg"})
            latency_figure("first oblique MPR over HTTP (cold: assembly + MPR)", first)
            warm = [f"{series}/renderedmpr?" + oblique.format(z=f"{i * 0.5:.1f}") for i in range(1, requests + 1)]
            latency_figure("warm oblique MPR 512x512 over HTTP (another plane each)",
                           measure(host, port, warm, {"Accept": "image/jpeg"}), TARGET_WARM_MPR_MS)
            figure("server RSS at the end", mib(server.rss()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    http_figures(args.rows, args.slices, args.requests)


if __name__ == "__main__":
    main()
