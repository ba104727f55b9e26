"""The ``dicomweb-origin import`` command: its summary, per-file reasons and exit status."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from dicomweb_origin.cli import main


def _folder(tmp_path: Path, *, truncated: bool) -> Path:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    ct = Path(str(get_testdata_file("CT_small.dcm")))
    shutil.copy(ct, folder / "ct.dcm")
    shutil.copy(ct, folder / "sub" / "same-ct.dcm")  # the same instance again: already present
    shutil.copy(str(get_testdata_file("MR_small.dcm")), folder / "sub" / "mr")  # no extension needed
    (folder / "notes.txt").write_text("not an image\n")
    if truncated:  # a Part 10 file (preamble and DICM) cut short is a broken DICOM file, not "not DICOM"
        (folder / "sub" / "cut.dcm").write_bytes(ct.read_bytes()[:200])
    return folder


def test_import_counts_each_outcome_and_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["import", "--data", str(tmp_path / "data"), str(_folder(tmp_path, truncated=False))])
    out, err = capsys.readouterr()
    assert status == 0
    assert "stored: 2  already present: 1  not DICOM: 1  failed: 0" in out
    assert "notes.txt" in err


def test_import_reports_a_broken_file_and_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["import", "--data", str(tmp_path / "data"), str(_folder(tmp_path, truncated=True))])
    out, _ = capsys.readouterr()
    assert status == 1
    assert "stored: 2  already present: 1  not DICOM: 1  failed: 1" in out
    (line,) = [line for line in out.splitlines() if line.startswith("failed: ") and "cut.dcm" in line]
    assert "truncated" in line


def test_import_of_a_missing_path_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "--data", str(tmp_path / "data"), str(tmp_path / "nowhere.dcm")]) == 1
    assert "cannot read" in capsys.readouterr().out


def test_cache_sizes_are_given_in_mib() -> None:
    """``--frame-cache-mb``, ``--rendered-cache-mb`` and ``--volume-cache-mb`` bound the three caches."""
    from dicomweb_origin.cli import parser, serve_settings

    args = parser().parse_args(["serve", "--frame-cache-mb", "8", "--rendered-cache-mb", "16", "--volume-cache-mb", "64"])
    settings = serve_settings(args)
    assert (settings.frame_cache_bytes, settings.rendered_cache_bytes, settings.volume_cache_bytes) == (
        8 << 20, 16 << 20, 64 << 20)
    defaults = serve_settings(parser().parse_args(["serve"]))
    assert (defaults.rendered_cache_bytes, defaults.volume_cache_bytes) == (128 << 20, 1 << 30)
