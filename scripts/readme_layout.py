#!/usr/bin/env python3
"""Write the README's Layout section from the package's module docstrings (their first line).

`python scripts/readme_layout.py` rewrites the list between `<!-- BEGIN layout -->` and `<!-- END layout -->` in
README.md; tests/test_readme.py checks that it is current, as tests/test_conformance.py does for the conformance
statement. A module without a docstring fails here: every module says what it is for.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "dicomweb_origin"
README = ROOT / "README.md"
BEGIN, END = "<!-- BEGIN layout -->", "<!-- END layout -->"


def summary(path: Path) -> str:
    """The first line of a module's docstring."""
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    if not docstring:
        raise ValueError(f"{path.relative_to(ROOT)} has no module docstring")
    return docstring.splitlines()[0].strip()


def tree(folder: Path, depth: int = 0) -> list[str]:
    """One list item per module, then per subpackage (with its own modules indented beneath)."""
    indent = "  " * depth
    lines = [f"{indent}- `{path.name}`: {summary(path)}" for path in sorted(folder.glob("*.py"))
             if path.name != "__init__.py"]
    for package in sorted(p for p in folder.iterdir() if (p / "__init__.py").is_file()):
        lines.append(f"{indent}- `{package.name}/`: {summary(package / '__init__.py')}")
        lines += tree(package, depth + 1)
    return lines


def layout() -> str:
    return "\n".join([f"- `src/{PACKAGE.name}/`: {summary(PACKAGE / '__init__.py')}", *tree(PACKAGE, 1)])


def render(text: str) -> str:
    """``text`` (the README) with its generated Layout list replaced by the current one."""
    pattern = re.compile(re.escape(BEGIN) + r"\n.*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"the README has no {BEGIN} ... {END} section")
    return pattern.sub(lambda _: f"{BEGIN}\n{layout()}\n{END}", text, count=1)


def main() -> int:
    text = README.read_text(encoding="utf-8")
    updated = render(text)
    if updated != text:
        README.write_text(updated, encoding="utf-8")
        print(f"rewrote the Layout section of {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
