"""Committed notebooks carry no outputs and no execution counts (run `make strip` to clean them)."""
import json
from pathlib import Path

import pytest

FOLDER = Path(__file__).resolve().parent.parent / "notebooks"
NUMBERED = sorted(FOLDER.glob("*.ipynb"))
SOLUTIONS = sorted((FOLDER / "solutions").glob("*.ipynb"))  # worked solutions to the numbered notebooks' exercises
NOTEBOOKS = NUMBERED + SOLUTIONS


def name(path: Path) -> str:
    return str(path.relative_to(FOLDER))


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS][:1] == ["00_data.ipynb"]
    assert SOLUTIONS, "notebooks/solutions/ holds no notebook"


@pytest.mark.parametrize("path", SOLUTIONS, ids=name)
def test_a_solutions_notebook_belongs_to_a_numbered_notebook(path):
    """notebooks/solutions/NN_<topic>_solutions.ipynb solves exercises of notebooks/NN_<topic>.ipynb and says so
    in its title, which links back to it."""
    assert path.stem.endswith("_solutions"), f"{path.name}: name it after its notebook, NN_<topic>_solutions.ipynb"
    numbered = FOLDER / f"{path.stem.removesuffix('_solutions')}.ipynb"
    assert numbered.exists(), f"{path.name}: no {numbered.name} in notebooks/"
    first = json.loads(path.read_text())["cells"][0]
    title = "".join(first["source"])
    assert first["cell_type"] == "markdown" and title.startswith(f"# {path.name[:2]} · Solutions"), path.name
    assert f"(../{numbered.name})" in title, f"{path.name}: the first cell should link to ../{numbered.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=name)
def test_notebook_is_stripped(path):
    notebook = json.loads(path.read_text())
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    for i, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{name(path)} cell {i} has stored outputs: run `make strip`"
            assert cell.get("execution_count") is None, f"{name(path)} cell {i} has an execution count: run `make strip`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=name)
def test_every_cell_has_a_unique_id(path):
    """nbformat 4.5 requires cell ids; a cell added without one is a validation warning today, an error later."""
    notebook = json.loads(path.read_text())
    ids = [cell.get("id") for cell in notebook["cells"]]
    assert None not in ids, f"{path.name}: cell {ids.index(None)} has no id (open and save it in Jupyter)"
    assert len(set(ids)) == len(ids), f"{path.name}: repeated cell ids"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=name)
def test_every_package_import_of_a_notebook_resolves(path):
    """A name moved between modules breaks a notebook only when CI runs it; this finds it in the unit tier."""
    import ast
    import importlib
    import importlib.util
    notebook = json.loads(path.read_text())
    for i, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "\n".join(line for line in "".join(cell["source"]).split("\n")
                           if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("samod", "data_prep"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    submodule = hasattr(module, "__path__") and importlib.util.find_spec(f"{node.module}.{alias.name}")
                    assert hasattr(module, alias.name) or submodule, f"{path.name} cell {i}: {node.module} has no {alias.name}"
