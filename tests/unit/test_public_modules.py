"""House rule: every public module says what it exports in ``__all__``, and each name there
exists. Read from the source (``ast``), so no module is imported for it.

A module is public unless its name starts with ``_``; a package's ``__init__.py`` that only
holds its docstring (it defines nothing) needs none, and Alembic's revision scripts
(``rules/migrations``) are Alembic's to read, not modules anybody imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "edge", "firmware_sim", "forewarn", "rules")
MODULES = sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
                 if not (path.name.startswith("_") and path.name != "__init__.py")
                 and "migrations" not in path.relative_to(ROOT).parts)


def _defined(tree: ast.Module) -> set[str]:
    """Top-level names the module binds (definitions, assignments and imports)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.If | ast.Try):  # TYPE_CHECKING blocks, optional imports
            names |= _defined(ast.Module(body=node.body, type_ignores=[]))
    return names


def _exported(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        if not isinstance(node, ast.Assign | ast.AnnAssign):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            value = node.value
            assert isinstance(value, ast.List | ast.Tuple), "__all__ is a literal list"
            return [ast.literal_eval(element) for element in value.elts]
    return None


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(ROOT)) for p in MODULES])
def test_a_public_module_lists_its_exports_in_all(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    defined = _defined(tree)
    exported = _exported(tree)
    if exported is None:
        public = sorted(name for name in defined - {"annotations"} if not name.startswith("_"))
        assert path.name == "__init__.py" and not public, \
            f"{path.relative_to(ROOT)} has no __all__ (public names: {public})"
        return
    assert not set(exported) - defined, \
        f"{path.relative_to(ROOT)}: __all__ names what it does not define: " \
        f"{sorted(set(exported) - defined)}"
