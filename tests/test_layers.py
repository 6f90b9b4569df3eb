"""The architecture in the imports: bench -> trainer -> lab <- service, and nothing upward;
client/ stands alone (it speaks HTTP to the service).

`lab/` is the core both halves share (numpy + onnxruntime): it imports neither Flask nor torch
nor the two halves; `trainer/` never imports `service/` (models/ is their only contract), and
`service/` never imports `trainer/` or torch. Every import statement counts, also those inside
functions. No package has an import cycle among its modules.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "client": {"lab", "service", "trainer", "bench", "flask", "werkzeug", "torch", "onnxruntime"},
    "lab": {"service", "trainer", "bench", "flask", "werkzeug", "gunicorn", "torch"},
    "trainer": {"service", "bench", "flask", "werkzeug", "gunicorn"},
    "service": {"trainer", "bench", "torch"},
}


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement of the file names (absolute, dotted)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom):  # relative: resolve against the file's package
            package = path.relative_to(ROOT).with_suffix("").parts[: -node.level]
            base = ".".join(package + ((node.module,) if node.module else ()))
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return found


def modules(package: str) -> dict[str, Path]:
    """{dotted module name: file} of every .py file of a top-level package."""
    files = sorted((ROOT / package).rglob("*.py"))
    names = {}
    for path in files:
        parts = path.relative_to(ROOT).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_points_the_wrong_way(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules(package).values()
        for name in sorted(imported_modules(path))
        if name.split(".")[0] in FORBIDDEN[package]
    ]
    assert not wrong, "\n".join(wrong)


def import_graph(package: str) -> dict[str, set[str]]:
    """{module: the package's modules it imports} (a name imported from a package counts as
    the submodule when one exists, else as the package itself)."""
    known = modules(package)
    graph = {}
    for name, path in known.items():
        targets = set()
        for imported in imported_modules(path):
            while imported and imported not in known:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = "open", stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node], _ = "done", stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


@pytest.mark.parametrize("package", ["client", "lab", "service", "trainer", "bench"])
def test_no_import_cycles(package: str) -> None:
    cycle = find_cycle(import_graph(package))
    assert cycle is None, " -> ".join(cycle or [])


def test_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
