"""The layout shows the design: five subpackages, imports flowing one way, a serving core that stands alone.

Every module of the package is parsed with ``ast`` (nothing is imported) and each of its imports,
lazy ones inside functions included, is checked against the rule of its subpackage:

    scoring  <-  spark  <-  tools          training -> scoring        bench -> scoring, spark

* ``fink_t2.scoring`` (the serving core) imports no other fink_t2 subpackage, and of third-party
  code only numpy, pandas, pyarrow, pyyaml and the LiteRT interpreter: never pyspark or TensorFlow;
* ``fink_t2.spark`` imports only the core (and pyspark);
* ``fink_t2.tools`` imports the core and the Spark layer; its CLI imports the training and bench
  sides lazily, inside the sub-commands that need them;
* ``fink_t2.training`` imports only the core (never spark, tools, bench);
* ``fink_t2.bench`` imports the core and the Spark layer;
* the package's ``__init__`` (the facade) imports the core and the Spark layer's light ``__init__``;
* no import cycle, between subpackages or between modules.

The checker is tested on a deliberately bad package too, so a clean result means something.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUBPACKAGES = ("scoring", "spark", "tools", "training", "bench")
#: fink_t2 subpackages each one may import (the facade, ``fink_t2/__init__.py``, is "fink_t2").
ALLOWED: dict[str, set[str]] = {
    "fink_t2": {"scoring", "spark"},
    "scoring": set(),
    "spark": {"scoring"},
    "tools": {"scoring", "spark"},
    "training": {"scoring"},
    "bench": {"scoring", "spark"},
}
#: Further subpackages a module may import lazily only (inside a function).
LAZY_ALLOWED: dict[str, set[str]] = {"fink_t2.tools.cli": {"training", "bench"}}
#: Third-party top-level packages the serving core may import (the standard library aside).
CORE_THIRD_PARTY = {"numpy", "pandas", "pyarrow", "pyarrow_hotfix", "yaml", "ai_edge_litert", "tflite_runtime"}
#: Never imported by the serving core, not even lazily.
CORE_FORBIDDEN = {"pyspark", "tensorflow", "tf_keras", "tensorflow_model_optimization", "keras"}


@dataclass(frozen=True)
class Import:
    module: str  # importing module, dotted (fink_t2.scoring.runtime)
    target: str  # imported module, dotted (fink_t2.scoring.lightcurves, pyspark.sql, numpy)
    line: int
    lazy: bool  # inside a function


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(root: Path, dotted: str) -> bool:
    base = root.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(path: Path, root: Path) -> list[Import]:
    """Every import of the file at ``path`` (``root`` holds the ``fink_t2`` folder), lazy ones marked."""
    name = module_name(path, root)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend(Import(name, alias.name, child.lineno, lazy) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:  # relative: resolved against the importing module's package
                    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    kept = package[: len(package) - child.level + 1]
                    base = ".".join(kept + ([child.module] if child.module else []))
                else:
                    base = child.module or ""
                found.append(Import(name, base, child.lineno, lazy))
                for alias in child.names:  # ``from fink_t2.scoring import runtime`` imports a module too
                    if base.split(".")[0] == "fink_t2" and _is_module(root, f"{base}.{alias.name}"):
                        found.append(Import(name, f"{base}.{alias.name}", child.lineno, lazy))
            visit(child, inner)

    visit(tree, False)
    return found


def package_modules(root: Path) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted((root / "fink_t2").rglob("*.py"))}


def subpackage(dotted: str) -> str | None:
    """``scoring`` for ``fink_t2.scoring.runtime``, ``fink_t2`` for the facade, None outside the package."""
    parts = dotted.split(".")
    if parts[0] != "fink_t2":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in SUBPACKAGES else "fink_t2"


def standard_library() -> set[str]:
    """Top-level names of the standard library (``sys.stdlib_module_names`` from Python 3.10; listed on 3.9)."""
    if hasattr(sys, "stdlib_module_names"):
        return set(sys.stdlib_module_names)
    import pkgutil
    import sysconfig

    folder = sysconfig.get_paths()["stdlib"]
    return {m.name for m in pkgutil.iter_modules([folder, f"{folder}/lib-dynload"])} | set(sys.builtin_module_names)


def violations(root: Path) -> list[str]:
    """Every import that breaks the layout rule, as 'module:line: what' (empty when the layout holds)."""
    stdlib = standard_library()
    problems = []
    for name, path in package_modules(root).items():
        own = subpackage(name)
        for imp in imports_of(path, root):
            top = imp.target.split(".")[0]
            where = f"{name}:{imp.line}: imports {imp.target}" + (" (lazily)" if imp.lazy else "")
            target = subpackage(imp.target)
            if target is not None:
                if not _is_module(root, imp.target):
                    problems.append(f"{where}, which is no module of the package")
                if target == own:
                    continue
                allowed = ALLOWED[own] | (LAZY_ALLOWED.get(name, set()) if imp.lazy else set())
                if target not in allowed:
                    problems.append(f"{where}: {own} may import only {sorted(ALLOWED[own]) or 'itself'}")
            elif own == "scoring" and (top in CORE_FORBIDDEN or top not in stdlib | CORE_THIRD_PARTY):
                problems.append(f"{where}: the serving core imports no pyspark, TensorFlow or other extras")
            elif own == "spark" and top in CORE_FORBIDDEN - {"pyspark"}:
                problems.append(f"{where}: the Spark layer never imports TensorFlow")
    return problems


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (node -> successors) as a path, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := walk(node)):
            return found
    return None


def module_graph(root: Path) -> dict[str, set[str]]:
    """fink_t2 module -> the fink_t2 modules it imports (lazy imports included; a package counts as its
    ``__init__``, and importing ``a.b.c`` runs ``a.b`` first, which is not an edge of the design)."""
    modules = package_modules(root)
    return {name: {imp.target for imp in imports_of(path, root)
                   if imp.target in modules and imp.target != name}
            for name, path in modules.items()}


def subpackage_graph(root: Path) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, targets in module_graph(root).items():
        own = subpackage(name)
        graph.setdefault(own, set()).update(t for t in map(subpackage, targets) if t not in (None, own))
    return graph


# --------------------------------------------------------------------------- the package


def test_every_import_follows_the_layout_rule():
    assert violations(ROOT) == []


def test_no_import_cycle_between_subpackages_or_modules():
    assert _cycle(subpackage_graph(ROOT)) is None
    assert _cycle(module_graph(ROOT)) is None


def test_the_checker_sees_the_imports_it_should():
    """What the rule allows is really there: the checks above look at real edges, lazy ones included."""
    modules = package_modules(ROOT)
    assert {subpackage(m) for m in modules} == {"fink_t2", *SUBPACKAGES}
    assert len([m for m in modules if subpackage(m) == "scoring"]) >= 12
    graph = subpackage_graph(ROOT)
    assert graph["spark"] == {"scoring"}
    assert graph["tools"] == {"scoring", "spark", "training", "bench"}  # the last two lazily, from the CLI
    assert graph["training"] == {"scoring"} and graph["bench"] == {"scoring", "spark"}
    assert graph["scoring"] == set()
    cli = imports_of(modules["fink_t2.tools.cli"], ROOT)
    assert {i.target for i in cli if i.lazy} >= {"fink_t2.training.train", "fink_t2.bench.harness"}
    processor = {i.target.split(".")[0] for i in imports_of(modules["fink_t2.spark.processor"], ROOT)}
    assert "pyspark" in processor
    train = imports_of(modules["fink_t2.training.train"], ROOT)
    assert any(i.target == "tensorflow" and i.lazy for i in train)
    # The cycle of issue 12 (config -> scoring -> lightcurves -> config) is gone, and would be seen.
    assert "fink_t2.scoring.config" in module_graph(ROOT)["fink_t2.scoring.lightcurves"]
    assert _cycle({"config": {"scoring"}, "scoring": {"lightcurves"}, "lightcurves": {"config"}}) == [
        "config", "scoring", "lightcurves", "config"]


def test_the_checker_flags_a_bad_layout(tmp_path):
    """A package that breaks every rule: each break is reported."""
    files = {
        "__init__.py": "from fink_t2.tools import cli\n",
        "scoring/__init__.py": "",
        "scoring/core.py": "import numpy\nimport pyspark.sql\nfrom fink_t2.spark import udf\n"
                           "def later():\n    import tensorflow\n    import matplotlib\n",
        "spark/__init__.py": "",
        "spark/udf.py": "from fink_t2.scoring import core\nfrom fink_t2.tools import batch\n",
        "tools/__init__.py": "",
        "tools/batch.py": "from fink_t2.spark import udf\nfrom fink_t2.training import train\n",
        "tools/cli.py": "def train_command():\n    from fink_t2.training import train\n",
        "training/__init__.py": "",
        "training/train.py": "from fink_t2.bench import harness\nimport fink_t2.scoring.missing\n",
        "bench/__init__.py": "",
        "bench/harness.py": "from fink_t2.training.train import fit\n",
    }
    for name, text in files.items():
        path = tmp_path / "fink_t2" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    found = violations(tmp_path)
    expected = [
        "fink_t2:1: imports fink_t2.tools",
        "fink_t2.scoring.core:2: imports pyspark.sql",
        "fink_t2.scoring.core:3: imports fink_t2.spark",
        "fink_t2.scoring.core:5: imports tensorflow (lazily)",
        "fink_t2.scoring.core:6: imports matplotlib (lazily)",
        "fink_t2.spark.udf:2: imports fink_t2.tools",
        "fink_t2.tools.batch:2: imports fink_t2.training",
        "fink_t2.training.train:1: imports fink_t2.bench",
        "fink_t2.training.train:2: imports fink_t2.scoring.missing, which is no module",
        "fink_t2.bench.harness:1: imports fink_t2.training.train",
    ]
    for text in expected:
        assert any(problem.startswith(text) for problem in found), (text, found)
    assert not any(p.startswith("fink_t2.tools.cli") for p in found), found  # lazy, and allowed
    assert not any("imports numpy" in p for p in found), found
    assert "fink_t2.scoring.core:1:" not in " ".join(found)
    assert _cycle(subpackage_graph(tmp_path)) is not None  # scoring -> spark -> scoring
    assert _cycle(module_graph(tmp_path)) is not None


def test_the_serving_core_imports_without_pyspark_or_tensorflow():
    """``import fink_t2.scoring`` and each of its modules, with pyspark and TensorFlow unimportable."""
    names = sorted(m for m in package_modules(ROOT) if subpackage(m) == "scoring")
    code = ("import importlib, sys\n"
            "for blocked in ('pyspark', 'tensorflow', 'tf_keras'):\n"
            "    sys.modules[blocked] = None\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            "import fink_t2.scoring as scoring\n"
            "assert all(getattr(scoring, name) is not None for name in scoring.__all__)\n"
            "assert not [m for m in sys.modules if m.startswith(('pyspark.', 'tensorflow.'))]\n"
            "print(len(scoring.__all__))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) > 30


@pytest.mark.parametrize("old", ["processor", "batch", "benchmark", "training.py", "lightcurves", "runtime",
                                 "scoring.py", "classes", "cli", "stream", "config", "paths", "fink_deployed"])
def test_the_flat_modules_are_gone(old):
    """No re-export shim is left at an old flat path (``fink_t2/training`` is now a package)."""
    name = old if old.endswith(".py") else f"{old}.py"
    assert not (ROOT / "fink_t2" / name).exists()
