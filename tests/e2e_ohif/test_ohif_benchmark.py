"""benchmarks/ohif.py runs end to end on a tiny CT: OHIF 3.13 in Chromium behind nginx, its figures read from the page.

Figures are not judged (tests time nothing). Orthanc 1.13 is pointed at a folder where it is not built: only its
column is left out, and the output says so. Needs what test_ohif.py needs (Chromium, the pinned viewer) and nginx.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ohif, pytest.mark.e2e]

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "ohif.py"


def test_ohif_benchmark_reads_first_image_and_all_frames(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--orthanc", str(tmp_path / "no-orthanc"),
         "--files", str(tmp_path / "files")],
        capture_output=True, text=True, timeout=600, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert f"Orthanc 1.13: not built in {tmp_path / 'no-orthanc'}" in output
    for figure in ("first image", "all frames"):
        row = re.search(rf"^\| stack: {figure} \| ([\d,.]+) \|$", output, re.MULTILINE)
        assert row and float(row.group(1).replace(",", "")) > 0, output[-4000:]
    requests = re.search(r"^\| stack: DICOMweb requests \| ([\d.]+) \|$", output, re.MULTILINE)
    assert requests and float(requests.group(1)) == 13, output[-4000:]  # 5 searches + metadata, 8 frames
    assert re.search(r"^\| frames: first request to the last byte of the last frame \| [\d,.]+ \|$", output,
                     re.MULTILINE), output[-4000:]
    assert "DICOMweb answers >= 400" not in output
