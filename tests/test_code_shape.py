"""The code stays as small as its ideas: no function in grepq/ over 80 lines or over 10 parameters (dataclass
constructors, which are generated, aside). A function that needs more takes a settings object."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "grepq"
MAX_LINES, MAX_PARAMS = 80, 10


def functions():
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path.relative_to(ROOT.parent), node


def n_params(fn: ast.FunctionDef) -> int:
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
    return len(names) + (a.vararg is not None) + (a.kwarg is not None)


def test_the_checks_see_the_functions():
    found = {str(p) + ":" + fn.name for p, fn in functions()}
    assert "grepq/eval/protocols.py:data_efficient" in found and len(found) > 300


@pytest.mark.parametrize("limit", ["lines", "params"])
def test_no_function_is_too_long_or_takes_too_many_parameters(limit):
    bad = []
    for path, fn in functions():
        lines = fn.end_lineno - fn.lineno + 1
        if limit == "lines" and lines > MAX_LINES:
            bad.append(f"{path}:{fn.lineno} {fn.name}: {lines} lines")
        if limit == "params" and n_params(fn) > MAX_PARAMS:
            bad.append(f"{path}:{fn.lineno} {fn.name}: {n_params(fn)} parameters")
    assert not bad, "\n".join(bad)
