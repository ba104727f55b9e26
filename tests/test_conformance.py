"""The conformance statement's generated tables match the tables the server runs on (PS3.18 §10.4.5)."""

from __future__ import annotations

from pathlib import Path

from dicomweb_origin.conformance import render

DOC = Path(__file__).resolve().parent.parent / "docs" / "conformance.md"


def test_generated_sections_are_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert render(text) == text, "run `python -m dicomweb_origin.conformance` to regenerate docs/conformance.md"


def test_every_transfer_syntax_is_listed() -> None:
    from dicomweb_origin.model import TRANSFER_SYNTAXES

    text = DOC.read_text(encoding="utf-8")
    for uid in TRANSFER_SYNTAXES:
        assert f"`{uid}`" in text
