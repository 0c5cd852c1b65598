"""Layers point down only, read from the source with ast (no import runs).

core < schema < {compute, judge} < {run, audit} < {figures, report} < pipeline < commands < cli.
`tasks/` and `baselines/` know nothing of the suite; no command imports another; no cycles.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "suite"

#: package (or top-level module) of suite/ -> its layer; a module may import its own layer or lower
LAYERS = {"__init__": 0, "errors": 0, "core": 0, "data": 0,
          "schema": 1,
          "compute": 2, "judge": 2,
          "run": 3, "audit": 3,
          "figures": 4, "report": 4,
          "pipeline": 5,
          "commands": 6,
          "cli": 7, "__main__": 7}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, absolute, at any depth of the file (function-level too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path).split(".") if path.is_relative_to(ROOT) else ["suite", "x"]
    if path.name != "__init__.py":
        package = package[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)   # `from suite.run import trainer`
    return out


def suite_modules() -> dict[str, Path]:
    return {module_name(p): p for p in SUITE.rglob("*.py")}


def layer_of(module: str) -> tuple[str, int]:
    part = module.split(".")[1] if "." in module else "__init__"
    if part not in LAYERS:
        raise AssertionError(f"{module}: package '{part}' has no layer in tests/test_layers.py")
    return part, LAYERS[part]


def internal_edges() -> dict[str, set[str]]:
    mods = suite_modules()
    edges = {}
    for name, path in mods.items():
        edges[name] = {m for m in imports_of(path) if m in mods and m != name}
    return edges


def test_every_package_has_a_layer():
    for name in suite_modules():
        layer_of(name)


def test_layers_point_down_only():
    wrong = []
    for name, deps in internal_edges().items():
        part, layer = layer_of(name)
        for dep in deps:
            dep_part, dep_layer = layer_of(dep)
            if dep_layer > layer:
                wrong.append(f"{name} ({part}, {layer}) imports {dep} ({dep_part}, {dep_layer})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_command_imports_another():
    wrong = [f"{name} imports {dep}" for name, deps in internal_edges().items() if name.startswith("suite.commands.")
             for dep in deps if dep.startswith("suite.commands.") and dep != "suite.commands"]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles():
    edges = internal_edges()
    state, stack, cycles = {}, [], []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for d in sorted(edges.get(n, ())):
            if d.endswith("__init__") or d == "suite":
                continue
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n)
    assert not cycles, "\n".join(cycles)


@pytest.mark.parametrize("package", ["tasks", "baselines"])
def test_tasks_and_baselines_know_nothing_of_the_suite(package):
    wrong = [f"{p.relative_to(ROOT)} imports {m}" for p in (ROOT / package).rglob("*.py")
             for m in imports_of(p) if m == "suite" or m.startswith("suite.")]
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_a_violation(tmp_path):
    """The reader is not vacuous: a file importing upward is read as doing so."""
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from suite.commands.reproduce import reproduce\nfrom . import y\n")
    assert "suite.commands.reproduce" in imports_of(f)


def test_no_suite_module_over_400_lines():
    long = {name: n for name, p in suite_modules().items()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert not long, long
