"""The README's commands must not rot: every ``grepq`` command line in it parses with grepq's own parser, every
config file it names exists, CI runs its two commands, and its examples run as written — the Python example and
one ``score``, ``prepare``, ``train`` and ``eval`` command, taken from the README's text — on small random weights
saved under the README's file names in the released formats (official LL .tar, HL visual state dict, a TorchScript
CLIP archive like OpenAI's RN50.pt, pristine-patch HDF5), in a temporary working folder. The only changes to the
commands: paths under /data/ point to toy folders, ``--workers N`` becomes 1, and the CLIVE stand-in (13 images
instead of 1169) is read with ``--dataset-option strict_count=false``."""
import ast
import contextlib
import csv
import io
import re
import shlex
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import photo
from PIL import Image

from grepq.cli import build_parser, main

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
    assert lines[0] + " --check" in ci.splitlines(), ".ci/run must run the README's main command (with --check)"


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


# ------------------------------------------------------------------------------------------- examples that run

RELEASED = ("low_level_model_weights.tar", "high_level_model_weights.pth", "RN50.pt",
            "pristine_patches_096_0.75_0.80.hdf5")


def readme_command(prefix: str):
    """The first README command line starting with ``prefix`` (e.g. "grepq score "), as argv after "grepq"."""
    for line in shell_lines():
        if line.startswith(prefix):
            return shlex.split(line)[1:]
    raise AssertionError(f"the README has no command starting with {prefix!r}")


def toy_paths(argv, data_root: Path):
    """README paths under /data/ moved to ``data_root``; ``--workers N`` -> 1 (2 CPU cores here)."""
    out = [str(data_root / a[len("/data/"):]) if a.startswith("/data/") else a for a in argv]
    if "--workers" in out:
        out[out.index("--workers") + 1] = "1"
    return out


@pytest.fixture(scope="module")
def readme_dir(tmp_path_factory, ll_model, small_clip, pristine_patches):
    """A working folder holding the README's released file names (small random weights in the released formats),
    ``photos/`` and ``one.jpg``."""
    from grepq.models.low_level import save_low_level
    from grepq.scoring.pristine import write_pristine_hdf5
    d = tmp_path_factory.mktemp("readme")
    save_low_level(ll_model, d / RELEASED[0], fmt="official")
    torch.save(small_clip.visual.state_dict(), d / RELEASED[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(small_clip, (torch.zeros(1, 3, 224, 224), torch.zeros(1, 77, dtype=torch.long)))
        torch.jit.save(traced, str(d / RELEASED[2]))
    write_pristine_hdf5(pristine_patches, d / RELEASED[3])
    (d / "photos").mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(photo(name, (160, 200))).save(d / "photos" / f"{name}.png")
    Image.fromarray(photo("rocket", (180, 150))).save(d / "one.jpg", quality=90)
    return d


def test_readme_python_example_runs_as_written(readme_dir, monkeypatch, one_thread):
    (block,) = [b for b in blocks("python") if "from grepq import GRepQ" in b]
    monkeypatch.chdir(readme_dir)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(block, "README.md", "exec"), {})
    rows = [line.split() for line in printed.getvalue().splitlines()]
    assert len(rows) == 4  # photos/ (3 images) and one.jpg
    for image, q_low, q_high, q_total in rows:
        assert float(q_total) == pytest.approx(float(q_low) + float(q_high), abs=1e-6)
    readme_python_scores.update({Path(r[0]).name: float(r[3]) for r in rows})


readme_python_scores = {}


def test_readme_quality_map_example_runs_as_written(readme_dir, monkeypatch, one_thread):
    first, maps = [b for b in blocks("python") if "from grepq import GRepQ" in b or "maps=True" in b]
    monkeypatch.chdir(readme_dir)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(first + maps, "README.md", "exec"), {})
    shape, (q_map, q_low) = printed.getvalue().splitlines()[-2:], printed.getvalue().split()[-2:]
    assert shape[0] == "torch.Size([2, 2])" and q_map == q_low          # one.jpg is 150 x 180: upsampled
    assert (readme_dir / "one_map.png").stat().st_size > 1000


def test_readme_score_command_runs_as_written(readme_dir, monkeypatch, one_thread):
    argv = readme_command("grepq score ")
    assert all(name in argv for name in RELEASED)
    monkeypatch.chdir(readme_dir)
    assert main(argv) == 0
    out = argv[argv.index("--output") + 1]
    rows = list(csv.DictReader(open(readme_dir / out)))
    assert len(rows) == 4 and set(rows[0]) >= {"image", "q_low", "q_high", "q_total"}
    if readme_python_scores:  # the command and the Python example score alike
        for r in rows:
            assert float(r["q_total"]) == pytest.approx(readme_python_scores[Path(r["image"]).name], abs=1e-5)


def _toy_clive(root: Path, n: int = 6):
    """CLIVE's files as distributed (Data/*.mat, Images/), with 7 training images and n others."""
    from scipy.io import savemat
    names = [f"t{i}.bmp" for i in range(7)] + [f"{100 + i}.bmp" for i in range(n)]
    (root / "Images" / "trainingImages").mkdir(parents=True)
    (root / "Data").mkdir()
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        img = photo(("astronaut", "coffee", "chelsea", "rocket")[i % 4], (120, 140)).astype(float)
        img = np.clip(img + rng.normal(0, 4 * (i % 5), img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / "Images" / ("trainingImages/" if i < 7 else "") / name)
    cell = np.empty((len(names), 1), dtype=object)
    cell[:, 0] = names
    savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": cell})
    savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": rng.uniform(20, 80, (1, len(names)))})


def test_readme_prepare_train_and_eval_commands_run_as_written(readme_dir, tmp_path, monkeypatch, one_thread):
    """The README's ``grepq prepare`` on a folder of photographs, its CPU try-out ``grepq train`` on the result (the
    paths chain as in the README) and its zero-shot ``grepq eval`` on a CLIVE stand-in."""
    data_root = tmp_path / "data_root"
    photos = data_root / "flive_5000"
    photos.mkdir(parents=True)
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        Image.fromarray(photo(name, (96, 112))).save(photos / f"{name}.png")
    _toy_clive(data_root / "ChallengeDB_release")
    work = tmp_path / "work"
    work.mkdir()
    for name in RELEASED:
        (work / name).symlink_to(readme_dir / name)
    monkeypatch.chdir(work)

    prepare = toy_paths(readme_command("grepq prepare "), data_root)
    assert main(prepare) == 0
    out = Path(prepare[prepare.index("--out") + 1])
    assert len([d for d in out.iterdir() if (d / "versions.json").is_file()]) == 4

    train = readme_command("grepq train --config configs/ll_tiny_cpu.yaml ")
    assert train[train.index("--data") + 1] == str(out).replace(str(work) + "/", "")  # the README's chain
    repo_config = str(ROOT / train[train.index("--config") + 1])
    train[train.index("--config") + 1] = repo_config  # configs/ of the repository, run from another folder
    assert main(train) == 0
    run_dir = Path(train[train.index("--run-dir") + 1])
    assert (run_dir / "ll_weights.pt").is_file() and (run_dir / "log.jsonl").stat().st_size > 0

    evaluate = toy_paths(readme_command("grepq eval zeroshot "), data_root) + ["--dataset-option", "strict_count=false"]
    assert main(evaluate) == 0
    results = Path(evaluate[evaluate.index("--out") + 1])
    assert any(results.rglob("*.json")) and any(results.rglob("*.csv"))


def test_every_claim_points_to_a_test_or_script_that_exists():
    """The README's claims table names test files, test functions (or unique parts of their names) and scripts:
    each exists, so a renamed test cannot leave a claim unbacked."""
    section = README.split("### Claims, and what proves each", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| claim")]
    assert len(rows) >= 4
    for row in rows:
        proof = row.rsplit("|", 2)[-2]
        refs = re.findall(r"`((?:tests|benchmarks)/[\w/]+\.py)(?:::(\w+))?", proof)
        assert refs, f"claim without a test or script: {row}"
        for path, name in refs:
            text = (ROOT / path).read_text()
            assert not name or f"def {name}(" in text, f"{path}::{name} not found"
        for path in re.findall(r"`(tests/[\w/]+\.py)` \(([^)]*)\)", proof):
            text = (ROOT / path[0]).read_text()
            for part in re.findall(r"`\.*(\w+?)\.*`", path[1]):
                assert re.search(rf"def test\w*{part}", text), f"{path[0]}: no test named like {part}"
