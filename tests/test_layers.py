"""The layers of grepq (docs/architecture.md): a module imports only from its own layer or the layers below, and no
modules import each other in a circle. Every import counts: module level or inside a function, relative or absolute."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "grepq"

#: Bottom to top; a module's layer is the first whose prefix matches its name (longest prefixes listed first).
LAYERS = [
    ("shared", ("grepq.version", "grepq.utils", "grepq.fingerprint", "grepq.config", "grepq.parallel")),
    ("data", ("grepq.data",)),
    ("models and losses", ("grepq.models", "grepq.losses")),
    ("scoring", ("grepq.scoring", "grepq.api", "grepq")),
    ("eval and train", ("grepq.eval", "grepq.train")),
    ("commands", ("grepq.commands", "grepq.cli", "grepq.__main__", "grepq.demo")),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or (module.startswith(p + ".") and p != "grepq") for p in prefixes):
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to docs/architecture.md)")


def imports(module: str) -> set:
    """The grepq modules ``module`` imports (``from pkg import name`` counts as ``pkg.name`` when that is a module)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "grepq")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "grepq":
                continue
            names = [a.name for a in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            out.update(submodules or [target])
    out.discard(module)
    return {m for m in out if m in MODULES}


GRAPH = {m: imports(m) for m in MODULES}


def test_every_module_has_a_layer():
    for m in MODULES:
        layer(m)


def test_imports_run_down():
    up = [f"{m} ({LAYERS[layer(m)][0]}) imports {t} ({LAYERS[layer(t)][0]})"
          for m, targets in sorted(GRAPH.items()) for t in sorted(targets) if layer(t) > layer(m)]
    assert not up, "imports running up a layer:\n" + "\n".join(up)


def test_no_import_circles():
    """Depth-first search: a module met again while it is still on the path closes a circle."""
    circles, done = [], set()

    def visit(m, path):
        if m in path:
            circles.append(" -> ".join(path[path.index(m):] + [m]))
            return
        if m in done:
            return
        for t in sorted(GRAPH[m]):
            visit(t, path + [m])
        done.add(m)

    for m in sorted(GRAPH):
        visit(m, [])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_check_sees_a_back_arrow():
    """The rule itself: data importing eval would run up two layers."""
    assert layer("grepq.eval.metrics") > layer("grepq.data.io") > layer("grepq.config")
    assert "grepq.data.io" in GRAPH["grepq.data.training_set"]
