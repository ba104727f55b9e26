"""The ``dicomweb-origin import`` command: its summary, per-file reasons and exit status."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from dicomweb_origin.cli import main
from tests.support.server import free_port, spawn, stop


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


# -- a new user's mistakes: one line that says what is wrong, and a non-zero exit ----------------------

import os  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

CT_SMALL = str(get_testdata_file("CT_small.dcm"))
LOG_RECORD = re.compile(r'\d{4}-\d\d-\d\dT[\d:.]+Z (DEBUG|INFO) |\{"time": ?"[^"]+", ?"level": ?"(DEBUG|INFO)"')  # text or JSON


def _cli(*args: str, cwd: Path | None = None, read_only: Path | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``dicomweb-origin ARGS`` as a process (what a user sees: stderr, exit status).

    ``read_only``: that folder is read-only for the process: a read-only bind mount in a mount namespace of
    its own when run as root (root writes through permission bits), else its permission bits.
    """
    command = [sys.executable, "-m", "dicomweb_origin.cli", *args]
    if read_only is not None and os.geteuid() == 0:
        script = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"'
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(read_only),
                   *command]
    elif read_only is not None:
        read_only.chmod(0o555)
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
                              env=os.environ | {"PYTHONUNBUFFERED": "1"})
    finally:
        if read_only is not None and os.geteuid() != 0:
            read_only.chmod(0o755)


def _one_line(result: subprocess.CompletedProcess[str], *names: str) -> str:
    """The process failed with one line on stderr that names each of ``names``; that line."""
    # (log records of libraries, e.g. botocore's "Found credentials in environment variables", are not the message)
    lines = [line for line in result.stderr.splitlines() if line.strip() and not LOG_RECORD.match(line)]
    assert result.returncode != 0, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def _command(command: str, data: Path, *more: str) -> list[str]:
    tail = {"serve": ["--port", str(free_port())], "import": [CT_SMALL], "demo": []}[command]
    return [command, "--data", str(data), *more, *tail]


@pytest.mark.parametrize("command", ["serve", "import", "demo"])
def test_a_data_folder_that_is_a_file_is_one_line_and_a_failure(tmp_path: Path, command: str) -> None:
    in_the_way = tmp_path / "afile"
    in_the_way.write_text("not a folder\n")
    for data in (in_the_way, in_the_way / "data"):
        line = _one_line(_cli(*_command(command, data)), str(data), "--data")
        assert "not a folder" in line, line


@pytest.mark.parametrize("command", ["serve", "import", "demo"])
def test_a_read_only_data_folder_or_archive_is_one_line_and_a_failure(tmp_path: Path, command: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    line = _one_line(_cli(*_command(command, empty / "data"), read_only=empty), str(empty / "data"), "--data")
    assert "read-only" in line, line
    archive = tmp_path / "archive"
    assert main(["import", "--data", str(archive), CT_SMALL]) == 0
    line = _one_line(_cli(*_command(command, archive), read_only=archive), str(archive), "--data")
    assert "read-only" in line, line


@pytest.mark.parametrize("command", ["serve", "import"])
def test_an_index_or_blob_url_that_cannot_be_opened_is_one_line_and_a_failure(tmp_path: Path, command: str) -> None:
    in_the_way = tmp_path / "afile"
    in_the_way.write_text("not a folder\n")
    index = f"sqlite://{in_the_way}/index.sqlite"
    _one_line(_cli(*_command(command, tmp_path / "data", "--index", index)), "--index", index)
    blobs = f"file://{in_the_way}/blobs"
    _one_line(_cli(*_command(command, tmp_path / "data", "--blobs", blobs)), "--blobs", blobs)
    s3 = "s3://bucket?endpoint=http://127.0.0.1:1"  # nothing listens on port 1
    _one_line(_cli(*_command(command, tmp_path / "data", "--blobs", s3), timeout=300), "--blobs", s3)


def test_serve_on_a_port_in_use_says_so_in_one_line_and_prints_no_banner(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _cli("serve", "--data", str(tmp_path / "data"), "--port", str(port))
    line = _one_line(result, f"127.0.0.1:{port}", "--port")
    assert "in use" in line and "DICOMweb root" not in result.stdout + result.stderr


def test_serve_prints_the_banner_once_it_listens(tmp_path: Path) -> None:
    """Whoever reads "DICOMweb root: URL" can connect to URL at once."""
    server = spawn(["--data", str(tmp_path / "data")], tmp_path / "serve.log")
    try:
        deadline = time.monotonic() + 60
        while "DICOMweb root:" not in server.log.read_text():
            assert server.process.poll() is None and time.monotonic() < deadline, server.log_tail()
            time.sleep(0.005)  # polling the log for the banner, not waiting for anything to happen
        with socket.create_connection(("127.0.0.1", int(server.origin.rsplit(":", 1)[1])), timeout=5):
            pass  # refused if the banner came before the socket listened
    finally:
        stop(server.process)


def test_import_of_nothing_but_files_that_are_not_dicom_fails(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("not an image\n")
    assert main(["import", "--data", str(tmp_path / "data"), str(tmp_path / "notes.txt")]) == 1
    out, err = capsys.readouterr()
    assert "stored: 0  already present: 0  not DICOM: 1  failed: 0" in out
    assert "nothing imported: no file was DICOM" in err


def test_import_without_data_says_where_it_stores(tmp_path: Path) -> None:
    result = _cli("import", CT_SMALL, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"archive: {tmp_path / 'data'}" in result.stderr and "--data" in result.stderr
    assert (tmp_path / "data" / "index.sqlite").is_file()


def test_token_without_a_subcommand_names_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["token"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "add" in err and "remove" in err and "token_command" not in err


def test_serve_help_states_the_on_conflict_default_once(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    start = text.index("--on-conflict {refuse,replace} STOW")
    help_text = text[start:text.index(" --", start + 10)]
    assert help_text.count("default") == 1 and "(default: refuse)" in help_text, help_text
