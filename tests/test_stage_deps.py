"""dvc.yaml lists each stage's code deps by hand, so that a change re-runs exactly the stages it
can affect: here every module a stage's entry point imports, directly or through the modules it
imports, must be among them (a missing one would leave results that its change alters marked up
to date).  Imports are read from the source (inside functions too)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ip", "pipeline", "study", "analysis")
# writes only the stage record's step-time probe (a timing, never a result)
NOT_A_RESULT = {"pipeline/plan.py"}


def module_file(name: str) -> Path | None:
    path = ROOT / Path(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


def imported(path: Path, name: str) -> set[str]:
    """The project's modules that ``path`` (module ``name``) imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)   # `from ip import distributed`
    return {m for m in found if m.split(".")[0] in PACKAGES}


def closure(entry: str) -> set[str]:
    """The files of every project module that running ``entry`` can execute code of.  A root
    package's ``__init__`` is not followed: it only re-exports (checked below)."""
    seen: dict[str, Path] = {}
    todo = [entry]
    while todo:
        name = todo.pop()
        path = module_file(name)
        if path is None or name in seen or name in PACKAGES:
            continue
        seen[name] = path
        todo.extend(imported(path, name))
    return {path.relative_to(ROOT).as_posix() for path in seen.values()}


def stages() -> list[tuple[str, str, list[str]]]:
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return [(name, stage["cmd"].split()[2], stage.get("deps", [])) for name, stage in spec.items()]


def covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


@pytest.mark.parametrize("name,entry,deps", stages(), ids=[s[0] for s in stages()])
def test_every_module_a_stage_runs_is_one_of_its_deps(name, entry, deps):
    missing = sorted(f for f in closure(entry) - NOT_A_RESULT if not covered(f, deps))
    assert not missing, f"dvc.yaml: stage {name} runs {missing} without listing them in its deps"


@pytest.mark.parametrize("package", ["ip", "pipeline", "study"])
def test_a_root_package_init_only_re_exports(package):
    """What the closure above leaves out may hold no code that runs: imports, names, a docstring."""
    tree = ast.parse((ROOT / package / "__init__.py").read_text())
    for node in tree.body:
        docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        names = isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(getattr(node, "value", None),
                                                                            (ast.Constant, ast.List, ast.Tuple))
        assert isinstance(node, (ast.Import, ast.ImportFrom)) or docstring or names, \
            f"{package}/__init__.py line {node.lineno}: code that runs on import (deps would miss it)"


def test_the_closure_finds_an_import_inside_a_function():
    """pipeline.common imports pipeline.plan only inside a function."""
    assert "pipeline/plan.py" in closure("pipeline.common")
    assert "ip/sparse_files.py" in closure("pipeline.train")
