"""The architecture's rules, checked on the source (parsed with ``ast``, nothing imported).

The layer map: the import graph of ``src/``, ``flows/`` and ``tasks/`` (parsed with
``ast``, nothing imported, function-level imports included) has no cycle; every library package
imports only the packages its ``__init__`` names on its ``May import:`` line; and an import inside a
function is only there to load something heavy late (TensorFlow, MLflow, Prefect, statsforecast,
pandas and pyarrow (which the CLI loads only for a command that needs them), or a module of ours
that imports one of them at its top), with a comment saying so.

The same checks run on small injected trees, so a cycle or a broken rule is shown to be caught.

And the edges: nothing under ``src/benchmark`` imports Prefect; only ``tracking/`` imports MLflow;
only ``results/leaderboard.py`` writes Parquet; no library module reads the environment outside
``spec/settings.py``; every module opens with a docstring; no module over 450 lines.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "src" / "benchmark"
MAX_MODULE_LINES = 450
PARQUET_WRITERS = {"to_parquet", "write_table", "write_dataset", "ParquetWriter", "write_to_dataset"}
#: Third-party modules that cost seconds to import (measured in ../shared/STACK_NOTES.md and by
#: ``python -X importtime``): the only ones a function may import late.
HEAVY_THIRD_PARTY = {"tensorflow", "keras", "mlflow", "prefect", "statsforecast", "scipy", "matplotlib",
                     "pandas", "pyarrow"}  # pandas and pyarrow: half a second of a CLI start
#: The top of the library: the command line and its terminal may import every layer.
TOP = {"benchmark.cli", "benchmark.commands", "benchmark.console", "benchmark"}
#: What the Prefect shells may import from the library: the run layer and the spec layer.
SHELL_MAY_IMPORT = {"run", "spec"}


@dataclass
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module, dotted (a module of the tree, or a third-party top name)
    line: int
    in_function: bool
    commented: bool


@dataclass
class Tree:
    """The modules of a source tree and every import between them."""

    modules: dict[str, Path] = field(default_factory=dict)
    imports: list[Import] = field(default_factory=list)

    def internal(self) -> list[Import]:
        return [i for i in self.imports if i.target in self.modules]

    def graph(self) -> dict[str, set[str]]:
        edges: dict[str, set[str]] = {name: set() for name in self.modules}
        for imp in self.internal():
            if imp.target != imp.source:
                edges[imp.source].add(imp.target)
        return edges


def _dotted(path: Path, roots: dict[Path, str]) -> str | None:
    for root, prefix in roots.items():
        if root in path.parents:
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            return ".".join([prefix, *parts] if prefix else parts)
    return None


def scan(roots: dict[Path, str]) -> Tree:
    """Parse every ``.py`` file under ``roots`` (folder -> dotted prefix)."""
    tree = Tree()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" not in path.parts:
                tree.modules[_dotted(path, roots)] = path
    for name, path in tree.modules.items():
        text = path.read_text()
        lines = text.splitlines()
        is_package = path.name == "__init__.py"
        for node, in_function in _walk(ast.parse(text, str(path))):
            commented = "#" in lines[node.lineno - 1] or (
                node.lineno > 1 and lines[node.lineno - 2].strip().startswith("#"))
            for target in _targets(node, name, is_package, tree.modules):
                tree.imports.append(Import(name, target, node.lineno, in_function, commented))
    return tree


def _walk(node: ast.AST, in_function: bool = False):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, in_function
        inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from _walk(child, inner)


def _targets(node: ast.Import | ast.ImportFrom, source: str, is_package: bool, modules) -> list[str]:
    if isinstance(node, ast.Import):
        return [_resolve(alias.name, modules) for alias in node.names]
    base = node.module or ""
    if node.level:
        package = source.split(".") if is_package else source.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    out = []
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        out.append(submodule if submodule in modules else _resolve(base, modules))
    return out


def _resolve(name: str, modules) -> str:
    """The module of the tree that ``name`` names, else its third-party top-level package."""
    return name if name in modules else name.split(".")[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_of(module: str) -> str:
    """``benchmark.run.grid`` -> ``run``; the top modules and the root -> ``top``."""
    if module in TOP or not module.startswith("benchmark."):
        return "top"
    return module.split(".")[1]


def allowed_layers(tree: Tree) -> dict[str, set[str]]:
    """Each library package's ``May import:`` line, read from its ``__init__`` docstring."""
    rules = {}
    for name, path in tree.modules.items():
        if name.count(".") == 1 and path.name == "__init__.py":
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            match = re.search(r"May import:\s*(.+?)\.?\s*$", doc, re.M)
            assert match, f"{path}: its docstring has no 'May import:' line naming the layers it may use"
            line = match.group(1).strip()
            rules[layer_of(name)] = set() if line.startswith("nothing") else {
                part.strip() for part in line.split(",")}
    return rules


def layer_violations(tree: Tree) -> list[str]:
    rules = allowed_layers(tree)
    out = []
    for imp in tree.internal():
        if not imp.source.startswith("benchmark.") or imp.target == "benchmark":
            continue
        source, target = layer_of(imp.source), layer_of(imp.target)
        if source == "top" or source == target:
            continue
        if target == "top" or target not in rules.get(source, set()):
            out.append(f"{imp.source}:{imp.line} imports {imp.target} ({source} may import: "
                       f"{', '.join(sorted(rules.get(source, ()))) or 'nothing'})")
    return out


def shell_violations(tree: Tree) -> list[str]:
    return [f"{imp.source}:{imp.line} imports {imp.target} (flows/ and tasks/ may import: "
            f"{', '.join(sorted(SHELL_MAY_IMPORT))})"
            for imp in tree.internal()
            if imp.source.split(".")[0] in ("flows", "tasks") and imp.target.startswith("benchmark.")
            and layer_of(imp.target) not in SHELL_MAY_IMPORT]


def heavy_modules(tree: Tree) -> set[str]:
    """Modules of the tree whose import (top-level imports, transitively) loads a heavy package."""
    top_level: dict[str, set[str]] = {name: set() for name in tree.modules}
    heavy = set()
    for imp in tree.imports:
        if imp.in_function:
            continue
        if imp.target in tree.modules:
            top_level[imp.source].add(imp.target)
        elif imp.target in HEAVY_THIRD_PARTY:
            heavy.add(imp.source)
    changed = True
    while changed:
        changed = False
        for name, targets in top_level.items():
            if name not in heavy and targets & heavy:
                heavy.add(name)
                changed = True
    return heavy


def late_import_violations(tree: Tree) -> list[str]:
    heavy = heavy_modules(tree)
    out = []
    for imp in tree.imports:
        if not imp.in_function:
            continue
        internal = imp.target in tree.modules
        if internal and imp.target not in heavy:
            out.append(f"{imp.source}:{imp.line} imports {imp.target} inside a function, and it is light: "
                       "import it at the top (a cycle behind it is the thing to fix)")
        elif (internal or imp.target in HEAVY_THIRD_PARTY) and not imp.commented:
            out.append(f"{imp.source}:{imp.line} imports {imp.target} late without a comment saying why")
    return out


def project_tree() -> Tree:
    return scan({ROOT / "src" / "benchmark": "benchmark", ROOT / "flows": "flows", ROOT / "tasks": "tasks"})


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports (top level or inside functions)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _uses(path: Path, module: str) -> bool:
    return any(name == module or name.startswith(module + ".") for name in _imports(path))


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# --------------------------------------------------------------------------- the project


def test_no_import_cycles():
    found = cycles(project_tree().graph())
    assert found == [], "import cycles (each a set of modules that import each other): " + "; ".join(
        " <-> ".join(c) for c in found)


def test_every_package_imports_only_the_layers_below_it():
    violations = layer_violations(project_tree())
    assert violations == [], "imports that break a layer rule:\n" + "\n".join(violations)


def test_flows_and_tasks_use_only_the_run_and_spec_layers():
    violations = shell_violations(project_tree())
    assert violations == [], "\n".join(violations)


def test_late_imports_only_load_heavy_modules_and_say_why():
    violations = late_import_violations(project_tree())
    assert violations == [], "\n".join(violations)


def test_every_layer_package_states_its_rule():
    rules = allowed_layers(project_tree())
    assert set(rules) >= {"spec", "data", "models", "forecasters", "results", "tracking", "report", "run"}
    for layer, allowed in rules.items():
        unknown = allowed - set(rules)
        assert not unknown, f"benchmark.{layer} may import unknown layers {unknown}"


# --------------------------------------------------------------------------- the checks catch faults


def _write(root: Path, files: dict[str, str]) -> Tree:
    for name, text in files.items():
        path = root / "benchmark" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return scan({root / "benchmark": "benchmark"})


LOW = '"""Low.\n\nMay import: nothing of tlbench.\n"""\n'
HIGH = '"""High.\n\nMay import: low.\n"""\n'


def test_an_injected_cycle_is_caught(tmp_path):
    tree = _write(tmp_path, {"__init__.py": "", "low/__init__.py": LOW, "high/__init__.py": HIGH,
                             "low/a.py": "from benchmark.low import b\n",
                             "low/b.py": "def f():\n    from benchmark.low import a  # late\n"})
    assert cycles(tree.graph()) == [["benchmark.low.a", "benchmark.low.b"]]


def test_an_import_up_a_layer_is_caught(tmp_path):
    tree = _write(tmp_path, {"__init__.py": "", "low/__init__.py": LOW, "high/__init__.py": HIGH,
                             "low/a.py": "from benchmark.high.c import X\n",
                             "high/c.py": "from benchmark.low.a import Y\nX = 1\n"})
    assert layer_violations(tree) == ["benchmark.low.a:1 imports benchmark.high.c (low may import: nothing)"]
    assert cycles(tree.graph()) == [["benchmark.high.c", "benchmark.low.a"]]


def test_a_late_import_of_a_light_module_is_caught(tmp_path):
    tree = _write(tmp_path, {"__init__.py": "", "low/__init__.py": LOW, "high/__init__.py": HIGH,
                             "low/light.py": "import json\n",
                             "low/heavy.py": "import tensorflow\n",
                             "high/c.py": ("def f():\n    from benchmark.low import light\n"
                                           "def g():\n    from benchmark.low import heavy  # TensorFlow: late\n"
                                           "def h():\n    import mlflow\n")})
    found = late_import_violations(tree)
    assert len(found) == 2
    assert found[0].startswith("benchmark.high.c:2 imports benchmark.low.light inside a function, and it is light")
    assert found[1] == "benchmark.high.c:6 imports mlflow late without a comment saying why"


# --------------------------------------------------------------------------- the edges


def test_the_library_never_imports_prefect():
    offenders = [_relative(p) for p in _modules(LIBRARY) if _uses(p, "prefect")]
    assert offenders == [], f"modules under src/benchmark import prefect: {offenders}"


def test_only_tracking_imports_mlflow():
    offenders = [_relative(p) for p in _modules(LIBRARY)
                 if _uses(p, "mlflow") and p.relative_to(LIBRARY).parts[0] != "tracking"]
    assert offenders == [], f"only src/benchmark/tracking/ may import mlflow; also: {offenders}"


def test_only_the_leaderboard_writes_parquet():
    offenders = []
    for path in _modules(LIBRARY) + _modules(ROOT / "flows") + _modules(ROOT / "tasks"):
        if path == LIBRARY / "results" / "leaderboard.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
            if name in PARQUET_WRITERS:
                offenders.append(f"{_relative(path)}:{node.lineno} {name}")
    assert offenders == [], f"only src/benchmark/results/leaderboard.py may write Parquet: {offenders}"


def test_the_library_reads_the_environment_only_in_settings():
    """``settings.py`` reads it; the CLI and its commands (an edge) and a worker process's start-up
    only set process-level variables of TensorFlow and Prefect before those are imported."""
    allowed_setters = {LIBRARY / "cli.py", LIBRARY / "commands.py", LIBRARY / "run" / "engines.py"}
    offenders = []
    for path in _modules(LIBRARY):
        if path == LIBRARY / "spec" / "settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv"):
                line = ast.get_source_segment(path.read_text(), node) or ""
                parent_ok = path in allowed_setters
                if not parent_ok:
                    offenders.append(f"{_relative(path)}:{node.lineno} {line}")
    assert offenders == [], f"environment access outside settings.py: {offenders}"


def test_every_library_module_says_what_it_owns():
    missing = [_relative(p) for p in _modules(LIBRARY) if not ast.get_docstring(ast.parse(p.read_text()))]
    assert missing == [], f"modules without a docstring: {missing}"


def test_modules_stay_small_and_functions_take_few_parameters():
    too_long = [f"{_relative(p)} ({n})" for p in _modules(LIBRARY)
                if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert too_long == [], f"modules over {MAX_MODULE_LINES} lines (one job per module): {too_long}"
    wide = []
    for path in _modules(LIBRARY) + _modules(ROOT / "flows") + _modules(ROOT / "tasks"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs
                         if a.arg not in ("self", "cls")]
                if len(names) > 7:
                    wide.append(f"{_relative(path)}:{node.lineno} {node.name}({len(names)})")
    # The Prefect flows' parameters are the deployment's form (one field each), not a call signature.
    wide = [w for w in wide if not w.startswith(("flows/grid.py", "flows/nightly.py"))]
    assert wide == [], f"functions with more than 7 parameters (use a spec object): {wide}"
