"""The web layer reads requests and writes answers; the use cases decide where work runs.

Checked on the import statements and calls of each module of ``web/``: no module that serves a DICOMweb resource
names an executor, a thread pool or a CPU lane; the metrics read the lanes' public figures only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "src" / "dicomweb_origin" / "web"
POOLS = ("starlette.concurrency", "concurrent.futures", "anyio.to_thread", "run_in_threadpool",
         "iterate_in_threadpool", "ThreadPoolExecutor", "dicomweb_origin.retrieve.lanes")
# Modules outside the resources of the table, with why they wait in a thread of their own.
OWN_THREADS = {
    "ops.py": "the operations pages: readiness probes, the metrics scrape, the conformance statement's HTML",
    "bearer.py": "fetching the issuer's keys over the network",
    "stow.py": "writing the request body to its spool file (blocking file I/O)",
}


def _names(path: Path) -> set[str]:
    """Every module imported and every dotted name used in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                module = "dicomweb_origin." + ("web." if node.level == 1 else "") + module
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.Name):
            found.add(node.id)
    return found


@pytest.mark.parametrize("path", sorted(p for p in WEB.glob("*.py") if p.name not in OWN_THREADS), ids=lambda p: p.name)
def test_the_web_layer_names_no_thread_pool(path: Path) -> None:
    names = _names(path)
    named = sorted(n for n in names for pool in POOLS if n == pool or n.startswith(pool + "."))
    assert not named, f"web/{path.name} names {named}: the use case decides where work runs"


def test_the_metrics_read_the_lanes_public_figures_only() -> None:
    source = (WEB / "application.py").read_text(encoding="utf-8")
    assert "lanes=retrieve.lanes.figures" in source
    for path in WEB.glob("*.py"):
        assert "_work_queue" not in path.read_text(encoding="utf-8"), path.name


def test_the_exceptions_are_few_and_say_why() -> None:
    for name in OWN_THREADS:
        assert (WEB / name).exists(), name
    assert "anyio.to_thread" in _names(WEB / "stow.py")
