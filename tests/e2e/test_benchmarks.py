"""The side-by-side benchmarks run end to end on a tiny data set (figures are not judged: tests time nothing).

Each script starts real processes (our server, nginx, client processes) over a few small generated files. Orthanc 1.13
is pointed at a folder where it is not built, so these runs also check that its absence leaves only its column out
and is said in the output. Every answer the scripts time is checked by them; a wrong answer marks its figure
INVALID, which fails these tests. The OHIF benchmark's run is in tests/e2e_ohif (it needs Chromium and the viewer).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

pytestmark = pytest.mark.e2e

BENCHMARKS = REPO / "benchmarks"
ROWS = ("series metadata", "study metadata", "one CT frame 64², 1 client", "one CT frame 64², 8 clients",
        "one frame of a 4-frame", "study retrieve", "rendered JPEG 64², cold", "rendered JPEG 64², cached",
        "J2K frame 64² decoded, cold", "J2K frame 64² decoded, cached", "import, CLI", "import, STOW")


def run(script: str, tmp_path: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--tiny", "--orthanc", str(tmp_path / "no-orthanc"),
         "--files", str(tmp_path / "files")],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, f"{script} failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    assert f"Orthanc 1.13: not built in {tmp_path / 'no-orthanc'}" in result.stdout
    assert "INVALID" not in result.stdout and "BAD" not in result.stdout, result.stdout[-3000:]
    return result.stdout


def table_row(output: str, label: str) -> list[str]:
    rows = [line for line in output.splitlines() if line.startswith(f"| {label}")]
    assert len(rows) == 1, f"no single table row for {label!r}:\n{output[-3000:]}"
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def test_compare_prints_every_figure_beside_nginx_without_orthanc(tmp_path: Path) -> None:
    output = run("compare.py", tmp_path)
    header = next(line for line in output.splitlines() if line.startswith("| workload"))
    assert "Orthanc" not in header.split("server CPU")[0], header  # only its column is left out
    assert "(Orthanc 1.13 column skipped: not built in" in output
    for label in ROWS:
        cells = table_row(output, label)
        ours, nginx = cells[1], cells[2]
        assert re.fullmatch(r"[\d,.]+ (ms|MB/s|inst/s)", ours), (label, cells)
        if "cold" in label or "import" in label:
            assert nginx == "—", (label, cells)  # nothing prepared in advance to send
        else:
            assert re.fullmatch(r"[\d,.]+ (ms|MB/s)", nginx), (label, cells)
            assert re.fullmatch(r"[\d.]+× \([\d.]+–[\d.]+\) \((time|rate)\)", cells[3]), (label, cells)


def test_viewers_finds_a_capacity_without_orthanc(tmp_path: Path) -> None:
    output = run("viewers.py", tmp_path)
    assert re.search(r"ours\s+alone:\s+[\d.]+ s, server CPU\s+[\d.]+ s per load", output), output
    assert re.search(r"^\s+2\s+[\d.]+ s\s+[\d.]+x (pass|FAIL)\s+[\d.]+ s/load", output, re.MULTILINE), output
    assert re.search(r"ours\s+N = \d+", output), output
    assert "Orthanc 1.13  N =" not in output
    assert "(Orthanc 1.13 skipped: not built in" in output


SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if p.name not in ("common.py", "anchors.py", "pool.py"))  # libraries, or a subcommand


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_benchmark_script_starts(script: str) -> None:
    """Each script imports what it uses (the package, tests/support helpers) and parses its options."""
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), "--help"], capture_output=True, text=True,
                            timeout=120, check=False, cwd=REPO)
    assert result.returncode == 0, f"{script} --help failed:\n{result.stderr[-2000:]}"
    assert "usage:" in result.stdout
