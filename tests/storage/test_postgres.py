"""The PostgreSQL index as a deployment runs it: migrations, the command line, several processes, shutdown.

A real PostgreSQL (Debian's package) started by the ``postgres`` fixture; every test has a database of its own.
"""

from __future__ import annotations

import io
import itertools
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from dicomweb_origin.app import build_app
from dicomweb_origin.cli import main
from dicomweb_origin.ingest import Outcome
from dicomweb_origin.settings import Settings
from dicomweb_origin.storage.base import SearchQuery
from dicomweb_origin.storage.postgres import SCHEMA_VERSION, PostgresIndex, SchemaOutdated
from tests.support import REPO
from tests.support.archive import new_postgres_index
from tests.support.postgres import PostgresServer

_DATABASES = itertools.count()
SRC = str(REPO / "src")


@pytest.fixture
def database(postgres: PostgresServer) -> str:
    """The URL of a new, empty database (no schema)."""
    return postgres.url(f"t{next(_DATABASES)}")


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "dicomweb_origin.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_migrate_from_three_processes_at_once_then_again(database: str, postgres: PostgresServer) -> None:
    runs = [_cli("migrate", "--index", database) for _ in range(3)]
    outputs = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    assert sum(f"0 -> {SCHEMA_VERSION}" in out for out, _ in outputs) >= 1
    db = database.rsplit("/", 1)[1]
    assert postgres.psql_db(db, "SELECT version FROM schema_version ORDER BY version").split() == \
        [str(v) for v in range(1, SCHEMA_VERSION + 1)]
    again = _cli("migrate", "--index", database)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0 and "up to date" in out, err


def test_serve_and_import_refuse_a_database_without_the_schema(database: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    ct = str(get_testdata_file("CT_small.dcm"))
    assert main(["import", "--data", str(tmp_path / "d"), "--index", database, ct]) == 2
    err = capsys.readouterr().err
    assert "run `dicomweb-origin migrate --index" in err and "Traceback" not in err
    assert main(["serve", "--data", str(tmp_path / "d"), "--index", database, "--port", "1"]) == 2
    assert "migrate" in capsys.readouterr().err
    with pytest.raises(SchemaOutdated):
        PostgresIndex(database)


def test_a_newer_schema_is_refused_too(database: str, postgres: PostgresServer) -> None:
    assert main(["migrate", "--index", database]) == 0
    postgres.psql_db(database.rsplit("/", 1)[1], f"INSERT INTO schema_version (version) VALUES ({SCHEMA_VERSION + 1})")
    with pytest.raises(SchemaOutdated, match="older than the database"):
        PostgresIndex(database)


def test_unknown_schemes_and_unreachable_databases_are_one_line_errors(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    ct = str(get_testdata_file("CT_small.dcm"))
    assert main(["import", "--data", str(tmp_path), "--index", "mysql://db/x", ct]) == 2
    assert "unknown scheme 'mysql'" in capsys.readouterr().err
    assert main(["import", "--data", str(tmp_path), "--blobs", "ftp://host/x", ct]) == 2
    assert "unknown scheme 'ftp'" in capsys.readouterr().err
    assert main(["migrate", "--index", "postgresql://nobody:secret@127.0.0.1:1/x"]) == 2
    err = capsys.readouterr().err
    assert "cannot connect" in err and "secret" not in err


def test_import_and_serve_from_postgresql(database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--index", database]) == 0
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(str(get_testdata_file(name)), folder / name)
    blobs = (tmp_path / "blobs").as_uri()
    assert main(["import", "--data", str(tmp_path / "d"), "--index", database, "--blobs", blobs, str(folder)]) == 0
    assert "stored: 2" in capsys.readouterr().out
    assert main(["import", "--data", str(tmp_path / "d"), "--index", database, "--blobs", blobs, str(folder)]) == 0
    assert "already present: 2" in capsys.readouterr().out
    assert len(list((tmp_path / "blobs").rglob("*.dcm"))) == 2
    assert not (tmp_path / "d" / "index.sqlite").exists()
    index = PostgresIndex(database)
    assert index.count() == 2 and index.search(SearchQuery("study")).total == 2
    index.close()


@pytest.mark.anyio
async def test_the_app_lifespan_closes_the_pool(postgres: PostgresServer, tmp_path: Path) -> None:
    app = build_app(Settings(data_dir=tmp_path, index_url=new_postgres_index(postgres)))
    index = app.state.archive.index
    async with app.router.lifespan_context(app):
        assert index.count() == 0
        assert not index._pool.closed
    assert index._pool.closed


_WRITER = textwrap.dedent("""
    import sys, threading
    sys.path[:0] = [{src!r}, {repo!r}]
    from tests.support.records import stored
    from dicomweb_origin.storage.postgres import PostgresIndex
    index = PostgresIndex(sys.argv[1])
    taken = []
    def add(k):
        for n in range(k, 60, 4):  # 60 instances of 3 series of one study, each added by both processes
            taken.append(index.add(stored("4.1", f"4.1.{{n % 3}}", f"4.1.{{n % 3}}.{{n}}")) is None)
    threads = [threading.Thread(target=add, args=(k,)) for k in range(4)]
    sys.stdin.readline()  # both processes start together
    [t.start() for t in threads]
    [t.join() for t in threads]
    index.close()
    print(sum(taken))
""")


def test_two_processes_storing_the_same_instances_store_each_once(postgres: PostgresServer) -> None:
    url = new_postgres_index(postgres)
    script = _WRITER.format(src=SRC, repo=str(REPO))
    writers = [subprocess.Popen([sys.executable, "-c", script, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [w.communicate("go\n", timeout=120) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], outputs
    assert sum(int(out) for out, _ in outputs) == 60  # each instance stored by exactly one of them
    index = PostgresIndex(url)
    assert index.count() == 60
    (study,) = index.search(SearchQuery("study")).matches
    assert study["00201206"]["Value"] == [3] and study["00201208"]["Value"] == [60]
    series = index.search(SearchQuery("series")).matches
    assert [s["00201209"]["Value"] for s in series] == [[20], [20], [20]]
    index.close()


def test_a_series_stored_under_another_study_is_refused_at_ingest(empty_archive: object) -> None:
    """On every index (the suite's DICOMWEB_TEST_INDEX): a failed instance with the reason, nothing stored."""
    ingest = empty_archive.app.state.archive.ingest  # type: ignore[attr-defined]
    ds = dcmread(str(get_testdata_file("CT_small.dcm")))
    first = io.BytesIO()
    ds.save_as(first)
    assert ingest.store(first).outcome is Outcome.STORED
    ds.StudyInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid()
    second = io.BytesIO()
    ds.save_as(second)
    result = ingest.store(second)
    assert result.outcome is Outcome.FAILED and "already belongs to study" in (result.reason or "")
    assert empty_archive.index.count() == 1  # type: ignore[attr-defined]


def test_without_psycopg_the_error_names_what_to_install(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['psycopg'] = None; from dicomweb_origin.cli import main;"
            f" sys.exit(main(['import', '--data', {str(tmp_path)!r}, '--index', 'postgresql://h/db',"
            f" {str(get_testdata_file('CT_small.dcm'))!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "pip install 'dicomweb-origin[postgresql]'" in done.stderr and "Traceback" not in done.stderr


def test_two_archives_storing_the_same_files_keep_one_instance_and_one_blob_each(postgres: PostgresServer,
                                                                                 tmp_path: Path) -> None:
    """Two server processes' archives (one PostgreSQL index, one blob folder) racing on the same files."""
    import threading

    settings = Settings(data_dir=tmp_path / "d", index_url=new_postgres_index(postgres))
    archives = [build_app(settings).state.archive for _ in range(2)]
    ds = dcmread(str(get_testdata_file("CT_small.dcm")))
    files = []
    for _ in range(12):
        ds.SOPInstanceUID = generate_uid()
        out = io.BytesIO()
        ds.save_as(out)
        files.append(out.getvalue())
    outcomes: list[Outcome] = []
    barrier = threading.Barrier(2)

    def store(archive: object) -> None:
        barrier.wait()
        for data in files:
            outcomes.append(archive.ingest.store(io.BytesIO(data)).outcome)  # type: ignore[attr-defined]

    threads = [threading.Thread(target=store, args=(a,)) for a in archives]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o.value for o in outcomes) == sorted([Outcome.STORED.value] * 12 + [Outcome.PRESENT.value] * 12)
    assert archives[0].index.count() == 12
    assert len(list(settings.blob_dir.rglob("*.dcm"))) == 12  # the loser's copy deleted, the winner's kept
    for archive in archives:
        archive.close()
