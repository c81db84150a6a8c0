"""The architecture's rules, checked on the source (a static scan with ``ast``, nothing imported):
nothing under ``src/benchmark`` imports Prefect; only ``tracking.py`` imports MLflow; only
``leaderboard.py`` writes Parquet; ``flows/`` and ``tasks/`` reach the library only through its
orchestration surface; no library module reads the environment outside ``settings.py``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "src" / "benchmark"
#: What flows/ and tasks/ may import from the library: the grid, its stages and jobs, the
#: settings, spec/config types and errors, and the engines (where jobs run).
SHELL_ALLOWED = {"benchmark", "benchmark.grid", "benchmark.stages", "benchmark.jobs", "benchmark.settings",
                 "benchmark.config", "benchmark.errors", "benchmark.engines"}
PARQUET_WRITERS = {"to_parquet", "write_table", "write_dataset", "ParquetWriter", "write_to_dataset"}


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


def test_the_library_never_imports_prefect():
    offenders = [_relative(p) for p in _modules(LIBRARY) if _uses(p, "prefect")]
    assert offenders == [], f"modules under src/benchmark import prefect: {offenders}"


def test_only_tracking_imports_mlflow():
    offenders = [_relative(p) for p in _modules(LIBRARY) if _uses(p, "mlflow") and p.name != "tracking.py"]
    assert offenders == [], f"only src/benchmark/tracking.py may import mlflow; also: {offenders}"


def test_only_the_leaderboard_writes_parquet():
    offenders = []
    for path in _modules(LIBRARY) + _modules(ROOT / "flows") + _modules(ROOT / "tasks"):
        if path.name == "leaderboard.py" and path.parent == LIBRARY:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
            if name in PARQUET_WRITERS:
                offenders.append(f"{_relative(path)}:{node.lineno} {name}")
    assert offenders == [], f"only src/benchmark/leaderboard.py may write Parquet: {offenders}"


@pytest.mark.parametrize("folder", ["flows", "tasks"])
def test_the_shell_uses_only_the_orchestration_surface(folder):
    offenders = sorted({f"{_relative(p)}: {name}" for p in _modules(ROOT / folder) for name in _imports(p)
                        if name.startswith("benchmark") and name not in SHELL_ALLOWED
                        and name.rsplit(".", 1)[0] not in SHELL_ALLOWED - {"benchmark"}})
    assert offenders == [], f"{folder}/ reaches into the library beyond {sorted(SHELL_ALLOWED)}: {offenders}"


def test_the_library_reads_the_environment_only_in_settings():
    """``settings.py`` reads it; the CLI (an edge) and a worker process's start-up only set
    process-level variables of TensorFlow and Prefect before those are imported."""
    allowed_setters = {"cli.py", "engines.py"}
    offenders = []
    for path in _modules(LIBRARY):
        if path.name == "settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv"):
                line = ast.get_source_segment(path.read_text(), node) or ""
                parent_ok = path.name in allowed_setters
                if not parent_ok:
                    offenders.append(f"{_relative(path)}:{node.lineno} {line}")
    assert offenders == [], f"environment access outside settings.py: {offenders}"


def test_every_library_module_says_what_it_owns():
    missing = [_relative(p) for p in _modules(LIBRARY) if not ast.get_docstring(ast.parse(p.read_text()))]
    assert missing == [], f"modules without a docstring: {missing}"


def test_modules_stay_small_and_functions_take_few_parameters():
    too_long = [f"{_relative(p)} ({n})" for p in _modules(LIBRARY)
                if (n := len(p.read_text().splitlines())) > 600]
    assert too_long == [], f"modules over 600 lines: {too_long}"
    assert len((LIBRARY / "grid.py").read_text().splitlines()) < 350
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
