"""The README works as written: every example runs as pasted, and its Layout section is current.

The examples run against a real server over the demo archive, in the README's order, each with bash and the real
curl (made to fail on an HTTP error with ``--fail-with-body``), then the STOW-RS block and the dicomweb-client
example. The demo is generated at 40 slices of 256²: the Enhanced CT and the report have the UIDs of the full-size
demo `make serve` loads (the Enhanced CT is at most 40 x 256², the report does not depend on the size; checked).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomweb_origin import demo
from tests.support.server import LiveServer, demo_archive, live_server

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DEFAULT_URL = "http://127.0.0.1:8080/dicomweb"


def section(text: str, heading: str) -> str:
    """The text of a ``## heading`` section, up to the next one."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def fenced(text: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced code block."""
    return re.findall(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S)


def inline_commands(text: str) -> list[str]:
    """Every inline code span outside fenced blocks that is a curl command."""
    prose = re.sub(r"^```.*?^```$", "", text, flags=re.M | re.S)
    return [span for span in re.findall(r"`([^`\n]+)`", prose) if span.startswith("curl ")]


def table_rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("| ") and not line.startswith("|---")]


# The first bytes (or a check) of each file a README command writes with -o.
OUTPUTS = {
    ".jpg": lambda b: b.startswith(b"\xff\xd8\xff"), ".png": lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"),
    ".gif": lambda b: b.startswith(b"GIF8"), ".mp4": lambda b: b[4:8] == b"ftyp",
    ".pdf": lambda b: b.startswith(b"%PDF-"), ".html": lambda b: b"<html" in b[:200].lower(),
    ".dcm": lambda b: b[128:132] == b"DICM", ".multipart": lambda b: b.startswith(b"--"),
    ".raw": lambda b: len(b) == 256 * 256 * 2,  # one Enhanced CT frame: 256 x 256, 16 bits
    ".bin": lambda b: b == demo.report_pdf()[:1024],  # bytes 0-1023 of the PDF document
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data, _ = demo_archive(tmp_path_factory.mktemp("readme"), slices=demo.ENHANCED_FRAMES, size=demo.ENHANCED_SIZE)
    with live_server(data) as running:
        yield running


def _bash(prelude: str, command: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """``command`` after ``prelude`` in bash, curl failing on HTTP errors (the output is what a user sees)."""
    script = "set -eo pipefail\ncurl() { command curl --fail-with-body -sS \"$@\"; }\n" + prelude + "\n" + command
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, timeout=300, check=False)


def test_the_readme_uids_are_those_of_the_demo() -> None:
    """The variables block names the Enhanced CT and the report of the demo `make serve` loads, and so does Python."""
    import inspect

    examples = section(README.read_text(encoding="utf-8"), "Examples for each resource")
    variables = dict(re.findall(r"^(\w+)=([0-9.]+)$", fenced(examples)[0][1], re.M))
    defaults = inspect.signature(demo.generate_demo).parameters
    slices, size = defaults["slices"].default, defaults["size"].default
    enhanced = demo._enhanced_ct(demo._Geometry(min(slices, demo.ENHANCED_FRAMES), min(size, demo.ENHANCED_SIZE)))
    sr, pdf = demo._report_sr(), demo._report_pdf_instance()
    assert variables == {
        "S": enhanced.StudyInstanceUID, "SE": enhanced.SeriesInstanceUID, "I": enhanced.SOPInstanceUID,
        "REPORT": sr.StudyInstanceUID, "SR_SE": sr.SeriesInstanceUID, "SR_I": sr.SOPInstanceUID,
        "PDF_SE": pdf.SeriesInstanceUID, "PDF_I": pdf.SOPInstanceUID}
    assert pdf.StudyInstanceUID == sr.StudyInstanceUID and int(enhanced.NumberOfFrames) > 2
    assert f"SOPClassUID={enhanced.SOPClassUID}&" in examples  # the search that finds it
    python = next(code for language, code in fenced(examples) if language == "python")
    for name in ("S", "SE", "I"):
        assert f'{name} = "{variables[name]}"' in python


def test_every_readme_example_works_as_pasted(server: LiveServer, tmp_path: Path) -> None:
    examples = section(README.read_text(encoding="utf-8"), "Examples for each resource")
    blocks = fenced(examples)
    variables, stow = blocks[0][1], next(code for language, code in blocks[1:] if language == "sh")
    python = next(code for language, code in blocks if language == "python")
    assert variables.startswith(f"R={DEFAULT_URL}\n")
    prelude = variables.replace(f"R={DEFAULT_URL}", f"R={server.url}", 1)
    for row in table_rows(section(README.read_text(encoding="utf-8"), "Examples for each resource"))[1:]:
        assert "`curl " in row[1] or row[1] == "see below", row  # every row is a command to paste

    problems: list[str] = []
    commands = inline_commands(examples)
    assert len(commands) >= 30
    for command in commands:
        result = _bash(prelude, command, tmp_path)
        if result.returncode != 0:
            problems.append(f"{command}\n  exit {result.returncode}: {(result.stdout + result.stderr)[-300:]!r}")
        elif b"\0" in result.stdout:  # what curl refuses to print: "Binary output can mess up your terminal"
            problems.append(f"{command}\n  prints binary output: give it -o FILE")
        output = re.search(r" -o (\S+)", command)
        if output is not None and result.returncode == 0:
            written = (tmp_path / output.group(1)).read_bytes()
            if not OUTPUTS[Path(output.group(1)).suffix](written):
                problems.append(f"{command}\n  wrote {len(written)} bytes that are not a {output.group(1)}: "
                                f"{written[:40]!r}")
    assert not problems, "\n".join(problems)

    stored = _bash(prelude, stow, tmp_path)  # after the DELETE row: the instance is stored again
    assert stored.returncode == 0, stored.stdout + stored.stderr
    assert b"00081199" in stored.stdout and b"00081198" not in stored.stdout  # ReferencedSOPSequence; no failures
    run = subprocess.run([sys.executable, "-c", python.replace(DEFAULT_URL, server.url)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]


def test_the_layout_section_is_generated_from_the_module_docstrings() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_layout", ROOT / "scripts" / "readme_layout.py")
    assert spec is not None and spec.loader is not None
    readme_layout = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(readme_layout)
    text = README.read_text(encoding="utf-8")
    assert readme_layout.render(text) == text, "run `python scripts/readme_layout.py` to regenerate README.md"
    layout = section(text, "Layout")
    modules = sorted(p.relative_to(readme_layout.PACKAGE) for p in readme_layout.PACKAGE.rglob("*.py"))
    for module in modules:  # every module is listed, under its folder
        if module.name != "__init__.py":
            assert f"- `{module.name}`: " in layout, module
    assert "retrieve.py" not in layout  # the tree the old section described (retrieve/ is a package now)


# -- what `make test` installs -----------------------------------------------------------------------------------


def test_make_test_says_what_it_installs_and_waits_for_apt() -> None:
    """Every apt-get of the Makefile waits for the dpkg lock; the README names each package and why."""
    dry = subprocess.run(["make", "-n", "node", "browser", "services", "postgres"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    calls = re.findall(r"apt-get[^;&|]*", dry)
    assert len(calls) >= 10, dry  # update and install, for each of the five targets
    assert all("-o DPkg::Lock::Timeout=" in call for call in calls), calls
    packages = set(re.findall(r"--no-install-recommends ([^>]+)>", dry))
    two_commands = section(README.read_text(encoding="utf-8"), "Two commands")
    for names in packages:
        assert f"| `{names.strip()}` |" in two_commands, names  # a row of the table: the packages and why


def test_the_license_is_an_spdx_expression() -> None:
    """PEP 639: ``project.license`` as an SPDX string (the table form makes setuptools print a deprecation box)."""
    import tomllib
    from importlib.metadata import metadata

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "MIT"
    assert "setuptools>=77" in project["build-system"]["requires"]  # the first to take the string form
    assert metadata("dicomweb-origin")["License-Expression"] == "MIT"  # as installed (make reinstalls)
