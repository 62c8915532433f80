"""The benchmarks' bookkeeping (no timing here): the photo folder is named or refused, never switched silently; the
results of each benchmark are stored and docs/benchmarks.md is written from them alone, each section naming its own
run; a GPU results file of another format is shown key by key; the official checkout's commit is read with git."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import bench_inputs  # noqa: E402
import run_all  # noqa: E402


@pytest.fixture(autouse=True)
def clean_inputs(monkeypatch):
    monkeypatch.delenv(bench_inputs.ENV, raising=False)
    monkeypatch.setattr(bench_inputs, "_USED", {})


def _photo(path: Path, value: int = 0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 60, 3), value, np.uint8)).save(path)


def test_without_a_folder_the_inputs_are_scikit_image_and_said_so():
    assert bench_inputs.select(None) is None
    imgs = bench_inputs.load("test", 3, "test")
    assert len(imgs) == len(bench_inputs.SKIMAGE_NAMES) and imgs[0].dtype == np.uint8
    d = bench_inputs.describe()
    assert d == {"inputs": "scikit-image data", "count": 3,
                 "files": ["skimage.data.astronaut", "skimage.data.coffee", "skimage.data.chelsea"]}


def test_a_missing_folder_is_refused_not_replaced(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="does not exist"):
        bench_inputs.select(str(tmp_path / "nope"))
    monkeypatch.setenv(bench_inputs.ENV, str(tmp_path / "nope"))
    with pytest.raises(SystemExit, match="GREPQ_BENCH_PHOTOS"):
        bench_inputs.select(None)
    (tmp_path / "empty").mkdir()
    bench_inputs.select(str(tmp_path / "empty"))
    with pytest.raises(bench_inputs.PhotoFolderError, match="no photographs"):
        bench_inputs.load("test", 2)


def test_a_folder_is_named_by_its_name_and_files_never_by_its_path(tmp_path):
    root = tmp_path / "bsds"
    for split in ("train", "test"):
        for i in range(3):
            _photo(root / split / f"{i}.jpg", 10 * i)
    assert bench_inputs.select(str(root)) == root.resolve()
    assert len(bench_inputs.load("test", 2, "test")) == 2
    assert len(bench_inputs.load("val", 10, "pristine")) == 6  # no val subfolder: the whole folder
    d = bench_inputs.describe()
    assert d["inputs"] == "folder bsds" and d["count"] == 6
    assert d["files_by_role"]["test"] == ["test/0.jpg", "test/1.jpg"]
    assert str(tmp_path) not in json.dumps(d)


def test_a_cached_input_is_reused_only_for_the_same_source(tmp_path):
    marker = tmp_path / "cache" / ".inputs.json"
    marker.parent.mkdir()
    bench_inputs.load(None, 2, "test")
    bench_inputs.remember(marker, "test")
    assert bench_inputs.recall(marker, "test")
    folder = tmp_path / "photos"
    _photo(folder / "a.png")
    bench_inputs.select(str(folder))
    assert not bench_inputs.recall(marker, "test")  # made from scikit-image's photographs: rebuild


def _record(name, commit, started, met=True):
    return {"benchmark": name, "command": f"python benchmarks/run_all.py --only {name}",
            "grepq": {"commit": commit, "describe": commit[:7]}, "started": started, "ended": started, "seconds": 3.0,
            "load_start": [0.5, 0.4, 0.3], "load_end": [1.5, 0.6, 0.3],
            "machine": {"cpu": "Some CPU", "cores": "2", "ram": "1 GiB", "python": "3", "torch": "2.x",
                        "torch_threads": "2"},
            "rows": [{"benchmark": f"{name} row", "compared": "a vs b", "target": ">= 1x", "measured": "1.5x",
                      "met": met, "detail": ""}],
            "raw": {"inputs": "scikit-image data", "files": ["skimage.data.astronaut"], "count": 1}}


def test_the_page_is_written_from_the_results_files_each_section_with_its_own_run(tmp_path):
    results, doc = tmp_path / "results", tmp_path / "benchmarks.md"
    run_all.save_result(results, "protocol", _record("protocol", "a" * 40, "2026-01-01 10:00:00 UTC"))
    run_all.save_result(results, "fsim", _record("fsim", "b" * 40, "2026-02-02 11:00:00 UTC", met=False))
    gpu = {"gpu": "Some GPU", "images": 100, "runs": {"grepq_bf16": {"images_per_s": 123.4}}}
    (results / "gpu.json").write_text(json.dumps(gpu))
    assert run_all.main(["--render-only", "--results", str(results), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "not all measured in one run" in text  # two commits
    assert text.index("## FSIM precomputation") < text.index("## Data-efficient protocol")  # run_all's order
    for when, commit in (("2026-01-01 10:00:00 UTC", "a" * 40), ("2026-02-02 11:00:00 UTC", "b" * 40)):
        assert when in text and commit in text
    assert "0.5/0.4/0.3 at the start, 1.5/0.6/0.3 at the end" in text
    assert "Inputs: scikit-image data (1 files: `skimage.data.astronaut`)" in text
    assert "| fsim row | a vs b | >= 1x | 1.5x | **no** |" in text
    assert "## Zero-shot on a GPU" in text and "| `runs.grepq_bf16.images_per_s` | 123.4 |" in text
    assert "| `gpu` | Some GPU |" in text


def test_the_committed_page_is_what_the_committed_results_give(tmp_path):
    doc = tmp_path / "benchmarks.md"
    run_all.main(["--render-only", "--doc", str(doc)])
    assert doc.read_text() == (BENCH.parent / "docs" / "benchmarks.md").read_text(), \
        "docs/benchmarks.md is not the rendering of benchmarks/results: run python benchmarks/run_all.py --render-only"


def test_the_official_commit_is_read_from_the_checkout_with_git(tmp_path):
    import official_parity as op

    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(op.NotACheckout, match="not the top of a git checkout"):
        op.official_commit(plain)
    repo = tmp_path / "GRepQ"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "networks.py").write_text("x = 1\n")
    subprocess.run(git + ["add", "networks.py"], check=True)
    subprocess.run(git + ["commit", "-qm", "c"], check=True)
    head = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert op.official_commit(repo) == head
    (repo / "networks.py").write_text("x = 2\n")
    assert op.official_commit(repo) == head + "-dirty"
    (repo / "sub").mkdir()
    with pytest.raises(op.NotACheckout):  # a folder inside a checkout would report that checkout's commit
        op.official_commit(repo / "sub")
