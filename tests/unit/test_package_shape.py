"""The shape of ``hub_extensions/`` a newcomer can rely on (issue 21): ``<feature>.py`` holds logic and
``<feature>_api.py`` its handlers, the import graph reads top-down (no cycle, function-level imports included),
and no module grows past 500 lines (``ci/`` too, the node agent excepted until the real node retires it)."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest
from tornado import web

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "hub_extensions"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
MAX_LINES = 500


def package_imports(path: Path) -> set[str]:
    """The sibling modules a module imports, wherever the import statement sits."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 1:
            found.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
        elif node.module and node.module.startswith("hub_extensions."):
            found.add(node.module.split(".")[1])
    return found & set(MODULES)


def test_the_import_graph_has_no_cycle() -> None:
    # config wires every feature together, so it sits on top and nothing imports it back
    graph = {m: package_imports(PACKAGE / f"{m}.py") for m in MODULES}
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(graph[module]):
            assert state.get(dep) != "open", "import cycle: " + " -> ".join([*path, dep])
            if dep not in state:
                visit(dep, [*path, dep])
        state[module] = "done"

    for module in MODULES:
        if module not in state:
            visit(module, [module])
    assert not any("config" in deps for m, deps in graph.items() if m != "config")


@pytest.mark.parametrize("module", MODULES)
def test_handlers_live_in_api_modules(module: str) -> None:
    mod = importlib.import_module(f"hub_extensions.{module}")
    own_handlers = [name for name, obj in vars(mod).items()
                    if inspect.isclass(obj) and issubclass(obj, web.RequestHandler) and obj.__module__ == mod.__name__]
    if module.endswith("_api"):
        assert callable(getattr(mod, "handlers", None)), f"{module}.py has no handlers()"
    elif module != "handler_base":  # the one base class of our JSON endpoints
        assert not own_handlers, f"{module}.py defines handlers {own_handlers}: they belong in {module}_api.py"


def test_no_module_is_over_500_lines() -> None:
    files = [*PACKAGE.glob("*.py"), *(REPO / "ci").rglob("*.py")]
    long = {str(p.relative_to(REPO)): n for p in files
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_the_package_docstring_names_every_feature() -> None:
    doc = importlib.import_module("hub_extensions").__doc__ or ""
    features = {m.removesuffix("_api") for m in MODULES if m.endswith("_api")}
    assert not [f for f in sorted(features) if f"`{f}`" not in doc], doc
