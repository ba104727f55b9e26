"""The package type-checks under mypy --strict, the tests under mypy too, and everything passes ruff (STYLE.md).

The tests' mypy level is set in pyproject.toml ([[tool.mypy.overrides]] for ``tests.*``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_mypy_strict() -> None:
    result = _run("mypy", "src/dicomweb_origin")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_on_the_tests() -> None:
    result = _run("mypy", "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff() -> None:
    result = _run("ruff", "check", "src", "tests", "benchmarks", "scripts")
    assert result.returncode == 0, result.stdout + result.stderr
