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
    # pixels and arrays; DICOM JSON only through its one reader (ALLOWED)
    "render": ("pydicom", "starlette", *(f"dicomweb_origin.{m}" for m in (
        "storage", "web", "dicom", "ingest", "retrieve", "search"))),
    # who is asking and may they: no HTTP objects, no archive
    "auth": ("pydicom", "numpy", "starlette", *(f"dicomweb_origin.{m}" for m in (
        "storage", "web", "dicom", "render", "ingest", "retrieve", "search", "cache"))),
    "web": ("pydicom", "numpy", "dicomweb_origin.storage", "dicomweb_origin.dicom.reader",
            "dicomweb_origin.dicom.transcode", "dicomweb_origin.dicom.pixels", "dicomweb_origin.dicom.codecs"),
}
# Leaves inside a layer that a layer beside it may use (with the packages above them, whose __init__ holds only
# a docstring): the DICOM JSON reader is stdlib and numpy only.
ALLOWED: dict[str, tuple[str, ...]] = {
    "render": ("dicomweb_origin.dicom.dicomjson",),
}
FORBIDDEN["dicom.dicomjson"] = ("pydicom", "starlette", *(f"dicomweb_origin.{m}" for m in (
    "dicom.", "render", "storage", "web", "ingest", "retrieve", "search")))
# Nothing imports the composition root.
COMPOSITION = ("dicomweb_origin.app", "dicomweb_origin.cli")


def _module_name(path: Path, package: Path = PACKAGE) -> str:
    relative = path.relative_to(package.parent).with_suffix("")
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
    forbidden = FORBIDDEN.get(module.removeprefix("dicomweb_origin."), FORBIDDEN.get(layer, ()))
    allowed = ALLOWED.get(layer, ())
    bad = sorted(i for i in imports if any(i == f.rstrip(".") or i.startswith(f) for f in forbidden)
                 and not i.startswith(module) and not any(i.startswith(a) or a.startswith(i + ".") for a in allowed))
    assert not bad, f"{module} imports {bad} across the layers of STYLE.md"
    if module not in COMPOSITION:
        assert not [i for i in imports if i in COMPOSITION], f"{module} imports the composition root"


def _package_modules() -> set[str]:
    return {_module_name(path) for path in MODULES}


def _edges(path: Path, modules: set[str], root: Path = PACKAGE) -> set[str]:
    """The package's modules that ``path`` imports, wherever the import stands (in a function, under TYPE_CHECKING).

    ``from P import x`` leads to the module P.x when x is one, else to P; a package's own ``__init__`` running
    first when one of its modules is imported is Python's order, not an edge.
    """
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{node.module}" if node.module else parent
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {name for name in found if name in modules and name != module}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The sets of modules that import one another (Tarjan's strongly connected components of two or more)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_no_import_circle_among_the_modules() -> None:
    """No module of the package imports itself through others, not even from inside a function."""
    modules = _package_modules()
    circles = _circles({_module_name(path): _edges(path, modules) for path in MODULES})
    assert not circles, f"modules that import each other: {circles}"


def test_the_circle_check_sees_a_circle(tmp_path: Path) -> None:
    """The edges above find two modules that import each other, one of them from inside a function."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "a.py").write_text("from .b import f\n", encoding="utf-8")
    (package / "b.py").write_text("def f():\n    from . import a\n", encoding="utf-8")
    modules = {"pkg", "pkg.a", "pkg.b"}
    graph = {m: _edges(package / f"{m.removeprefix('pkg.')}.py", modules, package) for m in ("pkg.a", "pkg.b")}
    assert graph == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
    assert _circles(graph | {"pkg": set()}) == [["pkg.a", "pkg.b"]]
    assert _circles({"pkg.a": {"pkg.b"}, "pkg.b": set()}) == []


MODULE_LINES = 400


def test_a_module_past_the_size_says_why() -> None:
    """A module in src/ is at most 400 lines, or its docstring says why it is one module (STYLE.md)."""
    unexplained = []
    for path in MODULES:
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MODULE_LINES and "Past 400 lines on purpose" not in (ast.get_docstring(ast.parse(text)) or ""):
            unexplained.append(f"{_module_name(path)} ({lines} lines)")
    assert not unexplained, f"modules over {MODULE_LINES} lines whose docstring gives no reason: {unexplained}"
