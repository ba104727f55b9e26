"""The conformance statement's generated tables match the tables the server runs on (PS3.18 §10.4.5)."""

from __future__ import annotations

from pathlib import Path

from dicomweb_origin.conformance import render

DOC = Path(__file__).resolve().parent.parent / "docs" / "conformance.md"


def test_generated_sections_are_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert render(text) == text, "run `python -m dicomweb_origin.conformance` to regenerate docs/conformance.md"


def test_every_transfer_syntax_is_listed() -> None:
    from dicomweb_origin.model.media import TRANSFER_SYNTAXES

    text = DOC.read_text(encoding="utf-8")
    for uid in TRANSFER_SYNTAXES:
        assert f"`{uid}`" in text



def test_search_attribute_table_lists_what_the_index_keeps() -> None:
    """§10.6.4: the conformance statement lists the attributes Search matches and returns, level by level."""
    from dicomweb_origin.search import _KEPT

    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Search (QIDO-RS"):text.index("## Store (STOW-RS)")]
    listed: dict[str, set[str]] = {}
    level = ""
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("| **"):
            level = cells[0].strip("*").split("*")[0].lower()
        elif line.startswith("| ") and len(cells) == 5 and cells[1].startswith("`"):
            listed.setdefault(level, set()).add(cells[1].strip("`"))
    not_from_the_index = {"00080056", "00081190"}  # InstanceAvailability and RetrieveURL are made per response
    assert {level: tags - not_from_the_index for level, tags in listed.items()} == {
        level: set(tags) for level, tags in _KEPT.items()}
