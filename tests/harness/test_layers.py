"""The layering of `harness/` as data, checked on the import graph (every import statement, also the ones
inside functions): an import points to the same layer or one below, the module graph has no cycle, and
the heavy or privileged dependencies stay where they belong."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# bottom first; a module's layer is that of its longest listed prefix
LAYERS = [
    ["harness.registry", "harness.store", "harness.tags", "harness.state", "harness.plugins", "harness.provenance"],
    ["harness.spec", "harness.track", "harness.components"],
    ["harness.train", "harness.estimate", "harness.backends", "harness.session", "harness.runner", "harness.worker", "harness.jobs",
     "harness.tune.trial", "harness.tune", "harness.validate"],
    ["harness.tune.study", "harness.orchestrate"],
    ["harness.pipeline", "harness.report"],
    ["harness.cli", "harness.ui"],
]
# third-party packages only these modules may import (prefixes)
ONLY_IN = {
    "mlflow": ["harness.track"],
    "optuna": ["harness.tune"],
    "ray": ["harness.backends.ray_backend"],
    "submitit": ["harness.backends.slurm"],
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / "harness").rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file; `from pkg import mod` names the submodule."""
    out = []
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((sub if sub in known else base, node.lineno))
    return out


def layer(name: str) -> int:
    if name == "harness":  # the package itself (its __init__ imports nothing)
        return 0
    best = max(((len(p), i) for i, group in enumerate(LAYERS) for p in group if name == p or name.startswith(p + ".")), default=None)
    assert best is not None, f"{name} is in no layer: add it to LAYERS"
    return best[1]


def graph() -> dict[str, list[tuple[str, int]]]:
    mods = modules()
    return {m: [(t, line) for t, line in imports(m, p, set(mods)) if t.startswith("harness")] for m, p in mods.items()}


def test_every_module_has_a_layer():
    for m in modules():
        layer(m)


def test_imports_point_down_or_sideways():
    up = [f"{m}:{line} imports {t} (layer {layer(m)} -> {layer(t)})" for m, edges in graph().items() for t, line in edges
          if layer(t) > layer(m)]
    assert not up, "\n".join(up)


def test_no_import_cycle():
    g = {m: sorted({t for t, _ in edges if t in modules() and t != m}) for m, edges in graph().items()}
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for t in g[m]:
            if state.get(t) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(t):] + [t]))
            if t not in state:
                visit(t)
        path.pop()
        state[m] = 2

    for m in g:
        if m not in state:
            visit(m)


@pytest.mark.parametrize("package", sorted(ONLY_IN))
def test_privileged_packages_stay_in_their_modules(package):
    mods = modules()
    bad = [f"{m}:{line}" for m, p in mods.items() for t, line in imports(m, p, set(mods))
           if (t == package or t.startswith(package + ".")) and not any(m == a or m.startswith(a + ".") for a in ONLY_IN[package])]
    assert not bad, f"{package} imported outside {ONLY_IN[package]}: {bad}"


def test_nothing_imports_the_cli_and_only_track_touches_the_mlflow_client():
    mods = modules()
    assert not [m for m, edges in graph().items() for t, _ in edges if t == "harness.cli" and m != "harness.cli"]
    raw = [f"{m}" for m, p in mods.items() if m != "harness.track" and ".client." in p.read_text()]
    assert not raw, f"MLflow's client used outside harness.track: {raw}"


def test_the_checker_sees_a_violation():
    """The graph reader is not blind: a function-local import and a relative import are both found."""
    src = "def f():\n    from harness import cli\nfrom . import tags\n"
    p = ROOT / "harness" / "_layers_probe.py"
    p.write_text(src)
    try:
        found = imports("harness._layers_probe", p, set(modules()))
    finally:
        p.unlink()
    assert ("harness.cli", 2) in found and ("harness.tags", 3) in found
