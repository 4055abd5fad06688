"""The package's layout keeps its promises: wings that import only downwards (the model never imports a rule, the
training loop or a tool), no import circle, short modules and functions, a circuit step path without closures,
and a locality check that taps the circuit through its recording interface instead of patching it."""

from __future__ import annotations

import ast
from pathlib import Path

import bioleaf

PACKAGE = Path(bioleaf.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The bioleaf modules ``path`` imports, at module level or inside functions."""
    name, out = _module_name(path), set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                out.add(f"{module}.{alias.name}" if node.module is None else module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("bioleaf")}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    resolve = lambda m: m if m in modules else m.rpartition(".")[0]  # noqa: E731  (from .x import name)
    return {m: {resolve(d) for d in _imports(p)} - {m} for m, p in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> list[str] | None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if d not in graph:
                continue
            if state.get(d) == 1:
                return path + [m, d]
            if d not in state and (found := visit(d, path + [m])):
                return found
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m, [])):
            return found
    return None


WINGS = [  # lowest first; a module may import its own wing and the wings below
    ("base", ("bioleaf.errors", "bioleaf.parsing", "bioleaf.data")),
    ("model", ("bioleaf.model",)),
    ("configuration", ("bioleaf.config", "bioleaf.presets")),
    ("rules", ("bioleaf.rules",)),
    ("training", ("bioleaf.training",)),
    ("tools", ("bioleaf.tools",)),
    ("interfaces", ("bioleaf.cli", "bioleaf.api", "bioleaf.__main__", "bioleaf")),
]
VERSION_ONLY = "bioleaf"  # the package root, imported below the interfaces for its version string only


def _wing(module: str) -> int:
    for floor, (_, prefixes) in enumerate(WINGS):
        if any(module == p or module.startswith(p + ".") for p in prefixes if p != "bioleaf"):
            return floor
    assert module == "bioleaf", module
    return len(WINGS) - 1


def _upward(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a module from a wing above its own."""
    return [f"{m} ({WINGS[_wing(m)][0]}) imports {d} ({WINGS[_wing(d)][0]})" for m, deps in sorted(graph.items())
            for d in sorted(deps) if d != VERSION_ONLY and _wing(d) > _wing(m)]


def test_the_import_graph_has_no_circle():
    graph = _graph()
    assert "bioleaf.model.circuit.step" in graph["bioleaf.model.circuit.presentation"]  # it sees real imports
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_every_wing_imports_only_itself_and_the_wings_below():
    graph = _graph()
    assert any(_wing(m) == 1 for m in graph) and any(_wing(m) == 5 for m in graph)
    assert not _upward(graph), _upward(graph)


def test_no_model_module_imports_a_tool_a_rule_or_the_training_loop():
    graph = _graph()
    model = {m: deps for m, deps in graph.items() if m.startswith("bioleaf.model")}
    assert len(model) > 10
    assert not [(m, d) for m, deps in model.items() for d in deps
                if d.startswith(("bioleaf.tools", "bioleaf.rules", "bioleaf.training"))]


def test_the_wing_check_finds_an_upward_import():
    assert _upward({"bioleaf.model.neurons": {"bioleaf.tools.bench"}})
    assert _upward({"bioleaf.rules.base": {"bioleaf.training.trainer"}})
    assert not _upward({"bioleaf.tools.bench": {"bioleaf.model.neurons", "bioleaf.rules.base"}})


def test_the_cycle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None


def test_no_function_is_longer_than_50_lines():
    long = [f"{_module_name(p)}.{n.name}: {n.end_lineno - n.lineno + 1} lines"
            for p in PACKAGE.rglob("*.py") for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 50]
    assert not long, long


def test_no_module_is_longer_than_350_lines():
    long = [f"{_module_name(p)}: {n} lines" for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 350]
    assert not long, long


STEP_PATH = ["model/neurons.py", "model/network.py", *(f"model/circuit/{p.name}" for p in (PACKAGE / "model/circuit").glob("*.py"))]


def _closures(tree: ast.AST) -> list[str]:
    """The lambdas and the functions defined inside functions of ``tree``."""
    found = [f"lambda at line {n.lineno}" for n in ast.walk(tree) if isinstance(n, ast.Lambda)]
    for outer in ast.walk(tree):
        if isinstance(outer, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found += [f"{inner.name} inside {outer.name}" for inner in ast.walk(outer)
                      if inner is not outer and isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return found


def test_the_circuit_step_path_has_no_lambda_and_no_nested_function():
    assert len(STEP_PATH) > 10
    found = {path: c for path in STEP_PATH if (c := _closures(ast.parse((PACKAGE / path).read_text())))}
    assert not found, found


def test_the_closure_finder_finds_a_lambda_and_a_nested_function():
    assert len(_closures(ast.parse("def f():\n    def g():\n        pass\n    h = lambda: 1\n"))) == 2


def test_the_locality_check_neither_patches_nor_inspects_the_stack():
    paths = list((PACKAGE / "tools/locality").glob("*.py"))
    assert len(paths) > 2
    tree = ast.Module(body=[n for p in paths for n in ast.parse(p.read_text()).body], type_ignores=[])
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not imported & {"unittest", "unittest.mock", "inspect", "sys", "traceback"}, imported
    assert not any("_getframe" in p.read_text() for p in paths)
