"""The shape of the package, read from its source with ``ast`` (ARCHITECTURE.md, "Import rules").

Every import counts, wherever it is written: module-level, inside a function, and
``importlib.import_module("...")`` calls with a literal name. From them:

- no import cycle, however it is closed;
- ``api/`` is imported only by ``api/``, ``app`` and ``cli``; ``services/`` only by ``api/``,
  ``services/``, ``app`` and ``cli``; ``db/`` never by ``schemas/``, the pure packages
  (``orchestration/``, ``scheduling/``, ``parameters/``, ``blocks/``, ``catalog/``,
  ``automations/``) or ``text_search``; ``app`` only by ``cli``;
- a deputy module is imported inside a function only where the list below says why;
- no module over 600 lines (the Alembic history is frozen and left out).

The last test builds a small package with a cycle and forbidden imports and checks that every
rule catches it, so none of these checks can pass vacuously.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import deputy

PACKAGE = Path(deputy.__file__).parent

#: Layers that may import each guarded layer (a layer is ``api``, ``services``, ``app``...).
ONLY_IMPORTED_BY = {
    "api": {"api", "app", "cli"},
    "services": {"api", "services", "app", "cli"},
    "app": {"cli"},
}
#: Layers that must never import each guarded layer.
NEVER_IMPORTED_BY = {
    "db": {
        "schemas",
        "orchestration",
        "scheduling",
        "parameters",
        "blocks",
        "catalog",
        "automations",
        "text_search",
    },
}
#: Modules allowed to import deputy modules inside a function, and why.
LAZY_IMPORTS_ALLOWED = {
    "deputy.cli": "start-up order: lean.py must act before FastAPI is imported, and the "
    "migration runs before the app is imported so the app reuses the memory it freed",
    "deputy.scheduling": "each schedule kind loads its third-party library (croniter, "
    "dateutil, whenever) on first use, not at start-up",
}
MAX_MODULE_LINES = 600


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    in_function: bool


def module_name(path: Path, root: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def layer(module: str) -> str:
    """``deputy.services.events.bus`` -> ``services``; ``deputy.app`` -> ``app``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _targets(node: ast.AST, importer: str, is_package: bool, known: set[str]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        source = _absolute(node, importer, is_package)
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            yield submodule if submodule in known else source
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute | ast.Name)
        and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
        == "import_module"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        yield node.args[0].value


def imports(root: Path) -> list[Import]:
    """Every import of a module of the package at ``root``, by every module in it."""
    found = modules(root)
    known = set(found)
    result: list[Import] = []
    for importer, path in found.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        inside: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                inside.update(id(sub) for sub in ast.walk(node) if sub is not node)
        for node in ast.walk(tree):
            for target in _targets(node, importer, is_package, known):
                if target.split(".")[0] == root.name:
                    lineno = getattr(node, "lineno", 0)
                    result.append(Import(importer, target, lineno, id(node) in inside))
    return result


def cycles(edges: list[Import]) -> list[list[str]]:
    """Strongly connected sets of more than one module, or a module importing itself."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.imported)
        graph.setdefault(edge.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the package is small enough to recurse
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_violations(edges: list[Import]) -> list[str]:
    problems = []
    for edge in edges:
        source, target = layer(edge.importer), layer(edge.imported)
        if source == target:
            continue
        allowed = ONLY_IMPORTED_BY.get(target)
        if (allowed is not None and source not in allowed) or source in NEVER_IMPORTED_BY.get(
            target, set()
        ):
            problems.append(f"{edge.importer}:{edge.line} imports {edge.imported}")
    return problems


def lazy_imports(edges: list[Import]) -> list[str]:
    return [
        f"{edge.importer}:{edge.line} imports {edge.imported} inside a function"
        for edge in edges
        if edge.in_function and edge.importer not in LAZY_IMPORTS_ALLOWED
    ]


def oversized(root: Path) -> list[str]:
    return [
        f"{name}: {lines} lines"
        for name, path in modules(root).items()
        if ".migrations." not in name
        and (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]


def test_no_import_cycles() -> None:
    assert cycles(imports(PACKAGE)) == []


def test_layers_import_only_what_they_may() -> None:
    assert layer_violations(imports(PACKAGE)) == []


def test_deputy_modules_are_imported_at_module_level() -> None:
    assert lazy_imports(imports(PACKAGE)) == []


def test_no_module_is_over_600_lines() -> None:
    assert oversized(PACKAGE) == []


def test_the_rules_catch_a_cycle_a_forbidden_import_and_a_lazy_import(tmp_path: Path) -> None:
    files = {
        "__init__.py": "",
        "app.py": "from deputy.api import routes\n",
        "api/__init__.py": "",
        "api/routes.py": "from deputy.services import runs\n",
        "services/__init__.py": "",
        # runs -> events -> runs, closed once by a function-level import, once by importlib
        "services/runs.py": "from deputy.services import events\n",
        "services/events.py": (
            "import importlib\n\n\ndef recorder():\n"
            "    return importlib.import_module('deputy.services.runs')\n"
        ),
        "services/names.py": "def later():\n    from deputy.services import runs\n",
        "db/__init__.py": "",
        "db/tables.py": "from deputy.api import routes\n",  # db importing api
        "schemas/__init__.py": "",
        "schemas/runs.py": "from ..db import tables\n",  # a schema importing db (relative)
    }
    root = tmp_path / "deputy"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "big.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))

    edges = imports(root)
    assert cycles(edges) == [["deputy.services.events", "deputy.services.runs"]]
    assert layer_violations(edges) == [
        "deputy.db.tables:1 imports deputy.api.routes",
        "deputy.schemas.runs:1 imports deputy.db.tables",
    ]
    assert lazy_imports(edges) == [
        "deputy.services.events:5 imports deputy.services.runs inside a function",
        "deputy.services.names:2 imports deputy.services.runs inside a function",
    ]
    assert oversized(root) == [f"deputy.big: {MAX_MODULE_LINES + 1} lines"]
