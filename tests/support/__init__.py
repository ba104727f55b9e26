"""What the tests share: reference instances, HTTP and multipart helpers, archives, real services and servers.

Fixtures are in the conftest.py files; everything a test module imports by name lives here
(``from tests.support.http import parse_multipart``), one module per concern.
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
