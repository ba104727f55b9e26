"""The `ohif` marker: `pytest -m ohif` runs only the OHIF end-to-end test, `-m "not ohif"` skips it."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ohif: drives the real OHIF viewer in headless Chromium against a real server")
