"""The package's layering: no import cycle in samod/ and data_prep/, and inference loads no training code.

The import graph is read from the source with `ast`, counting imports at module level and inside functions
alike (an import written inside a function to dodge a cycle is still an edge of the cycle).
"""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("samod", "data_prep")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(node: ast.AST, known: set[str]) -> set[str]:
    """The package modules an import statement names (`from samod import weights` names samod.weights)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif node.level == 0 and node.module:
        names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    else:
        return set()
    found = set()
    for name in names:
        while name and name not in known:  # `import samod.x.y` -> samod.x.y, else its package
            name = name.rpartition(".")[0]
        found |= {name} if name else set()
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its source (module level and inside functions)."""
    files = {module_name(p): p for package in PACKAGES for p in sorted((REPO / package).glob("*.py"))}
    graph = {}
    for name, path in files.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= imported_modules(node, set(files))
        graph[name] = edges - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each a cycle or a knot of them."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "samod.weights" in graph["samod.generation"]  # a module-level import
    assert "samod.generation" in graph["samod"]  # samod.__getattr__ imports it inside a function


def test_samod_and_data_prep_have_no_import_cycle():
    graph = import_graph()
    found = cycles(graph)
    for component in found:
        print("import cycle among:", ", ".join(component))
        for module in component:
            print(f"  {module} imports {sorted(graph[module] & set(component))}")
    assert not found, f"import cycles: {found}"


def test_imports_inside_functions_say_which_dependency_they_defer():
    """Inside a function an import is kept only to defer a heavy or optional dependency, named in a comment."""
    bare = []
    for package in PACKAGES:
        for path in sorted((REPO / package).glob("*.py")):
            lines = path.read_text().splitlines()
            for node in ast.walk(ast.parse("\n".join(lines))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    for inner in ast.walk(node):
                        if isinstance(inner, (ast.Import, ast.ImportFrom)) and "#" not in lines[inner.lineno - 1]:
                            bare.append(f"{path.relative_to(REPO)}:{inner.lineno}: {lines[inner.lineno - 1].strip()}")
    assert not bare, "imports inside functions without a comment naming the dependency they defer:\n" + "\n".join(bare)


def test_generating_loads_no_training_module():
    code = ("import json, sys\n"
            "from samod.generation import load_pipeline\n"
            "from samod.profiles import get_profile\n"
            "load_pipeline(get_profile('tiny'), device='cpu')\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[-1].endswith('_training'))))\n")
    env = {"SAMOD_PROFILE": "tiny", "SAMOD_WEIGHTS": "reference", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **env}, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    loaded = json.loads(run.stdout.strip().splitlines()[-1])
    assert loaded == [], f"load_pipeline imported training code: {loaded}"
