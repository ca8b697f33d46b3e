"""The core a student reads is textbook code only (issue 21): read statically from every import statement,
those inside functions too, without importing anything."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "minibn"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, mods: dict[str, Path]) -> set[str]:
    """The minibn modules that ``name`` imports (the package itself, minibn/__init__.py, not counted)."""
    found = set()
    for node in ast.walk(ast.parse(mods[name].read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:  # a submodule, or the module
            targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target not in mods and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in mods and target not in (name, "minibn"):
                found.add(target)
    return found


def closure(roots: list[str], mods: dict[str, Path]) -> set[str]:
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(imports(name, mods))
    return seen


def test_models_and_optim_import_no_fast_path_and_at_most_1800_lines():
    mods = modules()
    core = closure(["minibn.models", "minibn.optim"], mods)
    assert not [name for name in core if name.startswith("minibn.fast")]
    lines = sum(len(mods[name].read_text().splitlines()) for name in core)
    assert lines <= 1800, f"{lines} lines in {sorted(core)}"


def test_no_core_module_imports_the_fast_package():
    mods = modules()
    core = [name for name in mods if name.count(".") == 1 and name not in (
        "minibn.fast", "minibn.checks", "minibn.bench", "minibn.opcount", "minibn.__main__")]
    assert {name for name in core if any(m.startswith("minibn.fast") for m in imports(name, mods))} == set()


def test_no_import_cycle():
    mods = modules()
    edges = {name: imports(name, mods) for name in mods}
    for start in edges:  # a module that can reach itself is on a cycle
        assert start not in closure(sorted(edges[start]), mods), f"{start} is on an import cycle"
