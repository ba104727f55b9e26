"""The layers of STYLE.md hold: web → use cases → dicom / storage → model, never backwards.

Checked on the import statements of every module, so a shortcut (web code reaching into pydicom
or storage, storage parsing DICOM, a leaf importing a layer above it) fails here, not in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "dicomweb_origin"

# module prefix -> imports it must never make (package-relative names or third-party roots)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "model": ("pydicom", "numpy", "starlette", *(f"dicomweb_origin.{m}" for m in (
        "storage", "dicom", "web", "ingest", "retrieve", "search", "settings", "cache"))),
    "errors": ("dicomweb_origin.", "pydicom", "numpy", "starlette"),
    "settings": ("dicomweb_origin.", "pydicom", "numpy", "starlette"),
    # a leaf beside errors: what one request may use, and returning memory (stdlib only)
    "memory": ("pydicom", "numpy", "starlette", *(f"dicomweb_origin.{m}" for m in (
        "storage", "dicom", "web", "render", "ingest", "retrieve", "search", "settings", "cache"))),
    "storage": ("pydicom", "numpy", "starlette", "dicomweb_origin.web", "dicomweb_origin.dicom",
                "dicomweb_origin.ingest", "dicomweb_origin.retrieve", "dicomweb_origin.search"),
    "dicom": ("starlette", "dicomweb_origin.web", "dicomweb_origin.storage", "dicomweb_origin.ingest",
              "dicomweb_origin.retrieve", "dicomweb_origin.search"),
    "ingest": ("starlette", "dicomweb_origin.web"),
    "retrieve": ("starlette", "dicomweb_origin.web"),
    "search": ("starlette", "dicomweb_origin.web"),
    "check": ("starlette", "pydicom", "dicomweb_origin.web", "dicomweb_origin.dicom"),
    "render": ("pydicom", "starlette", *(f"dicomweb_origin.{m}" for m in (
        "storage", "web", "dicom", "ingest", "retrieve", "search"))),
    # who is asking and may they: no HTTP objects, no archive
    "auth": ("pydicom", "numpy", "starlette", *(f"dicomweb_origin.{m}" for m in (
        "storage", "web", "dicom", "render", "ingest", "retrieve", "search", "cache"))),
    "web": ("pydicom", "numpy", "dicomweb_origin.storage", "dicomweb_origin.dicom.reader",
            "dicomweb_origin.dicom.transcode", "dicomweb_origin.dicom.pixels", "dicomweb_origin.dicom.codecs"),
}
# Nothing imports the composition root.
COMPOSITION = ("dicomweb_origin.app", "dicomweb_origin.cli")


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(relative.parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
                found.add(name)
                found.update(f"{name}.{alias.name}" for alias in node.names)
            else:
                found.add(node.module or "")
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_imports_follow_the_layers(path: Path) -> None:
    module = _module_name(path)
    layer = module.split(".")[1] if "." in module else ""
    imports = _imports(path)
    forbidden = FORBIDDEN.get(layer, ())
    bad = sorted(i for i in imports if any(i == f.rstrip(".") or i.startswith(f) for f in forbidden)
                 and not i.startswith(module))
    assert not bad, f"{module} imports {bad} across the layers of STYLE.md"
    if module not in COMPOSITION:
        assert not [i for i in imports if i in COMPOSITION], f"{module} imports the composition root"
