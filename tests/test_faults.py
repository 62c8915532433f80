"""Faults (issue 6): each ends in a clear message or a correct handling, and nothing is lost or counted twice.

Where each fault of the issue is tested:

=====================================================  ==========================================================
fault                                                  test
=====================================================  ==========================================================
truncated JPEG, corrupt PNG in a folder (grepq score)  here: test_truncated_jpeg_and_corrupt_png_in_folder
  (read_image naming the file)                         tests/test_io.py::test_truncated_and_corrupt_files_name_the_file
  (garbage .jpg among photos)                          tests/test_cli_score.py::test_folder_with_a_bad_file_carries_on_and_fails
non-image files in a folder                            here: test_non_image_files_are_reported_as_skipped
  (expand_inputs lists them)                           tests/test_io.py::test_expand_inputs_reports_what_it_skips
empty folder                                           here: test_empty_folder_is_a_clear_error
NaN score in a dataset CSV (grepq eval)                here: test_nan_score_in_dataset_csv_names_file_and_line
  (NaN in CLIVE .mat, CSIQ .xlsx, TID2013 .txt)        tests/test_datasets.py (test_clive_count_missing_and_nan, ...)
missing pristine file (grepq score)                    here: test_missing_pristine_file_names_it
  (GRepQ API)                                          tests/test_zero_shot.py::test_missing_weights_are_errors
config typo (grepq eval --config)                      tests/test_cli_eval.py::test_eval_config_file_and_errors
SIGKILL during feature extraction (grepq eval)         here: test_sigkill_during_feature_extraction_then_resume
  (a lost part file and a stray temp file, in-process) tests/test_features.py::test_cache_is_reused_and_resumes
  (killed while a cache part is half written)          here: test_sigkill_while_writing_a_feature_part_then_resume
SIGKILL during prepare                                 tests/test_prepare.py::test_sigkill_mid_run_then_resume_equals_uninterrupted
  (killed while an image file is half written)         here: test_sigkill_while_prepare_writes_an_image_then_resume
SIGKILL during training (mid-epoch, while writing      tests/test_train_resume.py (one process) and
  checkpoint.pth, two processes), another config       tests/test_distributed.py (two processes)
=====================================================  ==========================================================
"""  # noqa: E501 (a table of test names)
import csv
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import photo
from PIL import Image

from grepq.cli import main
from grepq.models.low_level import save_low_level
from grepq.scoring.pristine import write_pristine_hdf5

#: Images of the feature-extraction kill test, and the cache interval it uses.
N_KILL_IMAGES = 30
CACHE_EVERY = 2


@pytest.fixture(scope="module")
def weights(tmp_path_factory, ll_model, small_clip, pristine_patches):
    d = tmp_path_factory.mktemp("fault_weights")
    save_low_level(ll_model, d / "ll.tar", fmt="official")
    torch.save(small_clip.visual.state_dict(), d / "hl.pth")
    torch.save(small_clip.state_dict(), d / "clip.pt")
    write_pristine_hdf5(pristine_patches, d / "pristine.hdf5")
    return d


def score_args(w, *paths, components="ll,hl"):
    out = ["score", *map(str, paths), "--components", components, "--ll-weights", str(w / "ll.tar"),
           "--pristine", str(w / "pristine.hdf5")]
    if "hl" in components:
        out += ["--hl-weights", str(w / "hl.pth"), "--clip-weights", str(w / "clip.pt")]
    return out


def save_photos(folder: Path, names=("astronaut", "coffee", "chelsea", "rocket"), size=(150, 170)):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        Image.fromarray(photo(n, size)).save(folder / f"{n}.png")
    return sorted(folder.glob("*.png"))


def test_truncated_jpeg_and_corrupt_png_in_folder(weights, tmp_path, capsys):
    d = tmp_path / "photos"
    good = save_photos(d)
    Image.fromarray(photo("astronaut", (200, 200))).save(tmp_path / "whole.jpg", quality=90)
    data = (tmp_path / "whole.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])                       # cut in the middle of the scan
    png = (d / "coffee.png").read_bytes()
    (d / "corrupt.png").write_bytes(png[:60] + bytes(200) + png[260:])            # IHDR intact, IDAT damaged
    status = main(score_args(weights, d, "--output", str(tmp_path / "s.csv")))
    err = capsys.readouterr().err
    assert status == 1, err
    assert "truncated.jpg" in err and "corrupt.png" in err
    assert "2 of 6 images failed; 4 scored" in err
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert sorted(r["image"] for r in rows) == sorted(str(p) for p in good)      # each good image once, no others
    assert all(np.isfinite(float(r["q_total"])) for r in rows)


def test_non_image_files_are_reported_as_skipped(weights, tmp_path):
    d = tmp_path / "mixed"
    good = save_photos(d, names=("astronaut", "chelsea"))
    (d / "notes.txt").write_text("not an image")
    (d / "scores.csv").write_text("image,mos\n")
    out = subprocess.run([sys.executable, "-m", "grepq", *score_args(weights, d, components="ll")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "skipped" in out.stderr and "notes.txt" in out.stderr and "scores.csv" in out.stderr
    rows = list(csv.DictReader(out.stdout.splitlines()))
    assert [r["image"] for r in rows] == [str(p) for p in good]


def test_empty_folder_is_a_clear_error(weights, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    status = main(score_args(weights, tmp_path / "empty", components="ll"))
    err = capsys.readouterr().err
    assert status != 0
    assert "no images found" in err


def test_missing_pristine_file_names_it(weights, tmp_path, capsys):
    save_photos(tmp_path / "p", names=("coffee",))
    args = score_args(weights, tmp_path / "p", components="ll")
    args[args.index("--pristine") + 1] = str(tmp_path / "missing.hdf5")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "missing.hdf5" in err and "not found" in err


def make_dataset(folder: Path, n: int, size=(96, 144)):
    """n noisy crops of four photographs with a scores.csv (image, mos, scene)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = ("astronaut", "coffee", "chelsea", "rocket")
    rows = []
    for k in range(n):
        scene = names[k % 4]
        ref = photo(scene, (size[0] + 40, size[1] + 40)).astype(np.float32) / 255
        y, x = rng.integers(0, 40, 2)
        img = np.clip(ref[y:y + size[0], x:x + size[1]] + rng.normal(0, 0.01 + 0.02 * (k % 7), size + (3,)), 0, 1)
        fname = f"img{k:03d}.png"
        Image.fromarray((img * 255).round().astype(np.uint8)).save(folder / fname)
        rows.append({"image": fname, "mos": f"{5 - (k % 7) * 0.5 + rng.normal(0, 0.1):.4f}", "scene": scene})
    with open(folder / "scores.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image", "mos", "scene"])
        w.writeheader()
        w.writerows(rows)
    return folder / "scores.csv"


def eval_args(w, scores_csv, cache, out):
    return ["eval", "zeroshot", "--dataset", "csv", "--root", str(scores_csv), "--dataset-option", "ref_column=scene",
            "--ll-weights", str(w / "ll.tar"), "--hl-weights", str(w / "hl.pth"), "--clip-weights", str(w / "clip.pt"),
            "--pristine", str(w / "pristine.hdf5"), "--cache", str(cache), "--out", str(out), "--no-plots",
            "--cache-every", str(CACHE_EVERY)]


def test_nan_score_in_dataset_csv_names_file_and_line(weights, tmp_path, capsys):
    scores = make_dataset(tmp_path / "ds", 4)
    lines = scores.read_text().splitlines()
    lines[3] = lines[3].split(",")[0] + ",NaN," + lines[3].split(",")[2]         # line 4 of the file
    scores.write_text("\n".join(lines) + "\n")
    assert main(eval_args(weights, scores, tmp_path / "cache", tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert str(scores) in err and "line 4" in err and "NaN" in err
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("part-*.npz"))


def part_indices(cache: Path):
    """{part file name: the image indices it holds} over every cache part under ``cache``."""
    out = {}
    for part in sorted(cache.rglob("part-*.npz")):
        with np.load(part) as z:
            out[part.name] = z["index"].tolist()
    return out


def test_sigkill_during_feature_extraction_then_resume(weights, tmp_path):
    scores = make_dataset(tmp_path / "ds", N_KILL_IMAGES)
    # the uninterrupted run
    assert main(eval_args(weights, scores, tmp_path / "cache_clean", tmp_path / "out_clean")) == 0
    clean_parts = part_indices(tmp_path / "cache_clean")
    assert sorted(i for v in clean_parts.values() for i in v) == list(range(N_KILL_IMAGES))

    # the same run, killed with SIGKILL once a first cache part is on disk
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-m", "grepq", *eval_args(weights, scores, cache, tmp_path / "out")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if list(cache.rglob("part-*.npz")):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the extraction was not killed (exit {proc.returncode})"
    at_kill = part_indices(cache)
    done_at_kill = sorted(i for v in at_kill.values() for i in v)
    print("images in the cache at the kill:", len(done_at_kill))
    assert 1 <= len(done_at_kill) < N_KILL_IMAGES, done_at_kill
    assert len(done_at_kill) == len(set(done_at_kill))

    # the rerun computes exactly the images missing from the cache, each once
    assert main(eval_args(weights, scores, cache, tmp_path / "out")) == 0
    after = part_indices(cache)
    assert {k: v for k, v in after.items() if k in at_kill} == at_kill              # old parts untouched
    rerun = sorted(i for k, v in after.items() if k not in at_kill for i in v)
    assert len(rerun) == N_KILL_IMAGES - len(done_at_kill)
    assert sorted(rerun + done_at_kill) == list(range(N_KILL_IMAGES))             # nothing lost, nothing twice
    assert not list(cache.rglob(".tmp-*"))

    # and the final per-image scores equal the uninterrupted run's
    def read(out):
        return list(csv.DictReader(open(out / "zeroshot_csv_scores.csv")))
    clean, resumed = read(tmp_path / "out_clean"), read(tmp_path / "out")
    assert len(resumed) == N_KILL_IMAGES
    assert [r["image"] for r in resumed] == [r["image"] for r in clean]
    for a, b in zip(clean, resumed):
        for k in ("q_low", "q_high", "q_total"):
            assert float(b[k]) == pytest.approx(float(a[k]), abs=1e-7), (a["image"], k)


#: ``python -c`` driver: the grepq CLI, killed by SIGKILL in the middle of writing a file: the COUNT-th call of
#: FUNC (a dotted name: numpy.savez, PIL.Image.Image.save) whose first argument is a path under PREFIX writes the
#: file, cuts it to half its size and kills the process before the caller can go on (rename it, mark it done).
KILL_MID_WRITE = """
import importlib, os, signal, sys
owner_name, attr = "FUNC".rsplit(".", 1)
try:
    owner = importlib.import_module(owner_name)
except ImportError:
    module, cls = owner_name.rsplit(".", 1)
    owner = getattr(importlib.import_module(module), cls)
real, calls = getattr(owner, attr), []
def half_written(*args, **kwargs):
    target = args[1] if isinstance(owner, type) else args[0]
    out = real(*args, **kwargs)
    if isinstance(target, (str, os.PathLike)) and str(target).startswith("PREFIX"):
        calls.append(target)
        if len(calls) == COUNT:
            path = str(target) if os.path.exists(str(target)) else str(target) + ".npz"
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
    return out
setattr(owner, attr, half_written)
from grepq.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_killed_mid_write(args, func: str, prefix: Path, count: int):
    code = KILL_MID_WRITE.replace("FUNC", func).replace("PREFIX", str(prefix)).replace("COUNT", str(count))
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def test_sigkill_while_writing_a_feature_part_then_resume(weights, tmp_path):
    """grepq eval killed while its second cache part (np.savez of grepq/eval/features.py) is half written: the
    rerun computes exactly the images not in a complete part, and scores like the uninterrupted run."""
    n = 8
    scores = make_dataset(tmp_path / "ds", n)
    assert main(eval_args(weights, scores, tmp_path / "cache_clean", tmp_path / "out_clean")) == 0
    cache = tmp_path / "cache"
    run_killed_mid_write(eval_args(weights, scores, cache, tmp_path / "out"), "numpy.savez", cache, 2)
    at_kill = part_indices(cache)
    assert len(at_kill) == 1 and len(next(iter(at_kill.values()))) == CACHE_EVERY  # the first part only
    assert len(list(cache.rglob(".tmp-*"))) == 1  # the half-written second part, never renamed
    assert main(eval_args(weights, scores, cache, tmp_path / "out")) == 0
    after = part_indices(cache)
    assert sorted(i for v in after.values() for i in v) == list(range(n))  # nothing lost, nothing twice
    assert not list(cache.rglob(".tmp-*"))
    clean = list(csv.DictReader(open(tmp_path / "out_clean" / "zeroshot_csv_scores.csv")))
    resumed = list(csv.DictReader(open(tmp_path / "out" / "zeroshot_csv_scores.csv")))
    assert [r["image"] for r in resumed] == [r["image"] for r in clean]
    for a, b in zip(clean, resumed):
        for k in ("q_low", "q_high", "q_total"):
            assert float(b[k]) == pytest.approx(float(a[k]), abs=1e-7), (a["image"], k)


def _tree(root: Path):
    """{file path relative to root: SHA-1 of its bytes} of the item folders (the run reports aside)."""
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.parent != root}


def test_sigkill_while_prepare_writes_an_image_then_resume(tmp_path):
    """grepq prepare killed while the 7th image file (the second item's) is half written: the item is not counted
    as done, and the rerun's output is byte-identical to an uninterrupted run's. Options that exist since the first
    release: explicit --types/--levels/--seed, one worker."""
    inputs = tmp_path / "in"
    save_photos(inputs, size=(120, 130))
    opts = ["--types", "jpeg,white_noise", "--levels", "1,5", "--seed", "3", "--workers", "1", "--no-progress"]
    assert main(["prepare", str(inputs), "--out", str(tmp_path / "clean"), *opts]) == 0
    out = tmp_path / "killed"
    run_killed_mid_write(["prepare", inputs, "--out", out, *opts], "PIL.Image.Image.save", out, 7)
    complete = [d for d in out.iterdir() if d.is_dir() and (d / "versions.json").is_file()]
    assert len(complete) == 1  # 5 images per item: the first item is complete, the second was being written
    assert main(["prepare", str(inputs), "--out", str(out), *opts]) == 0
    clean, resumed = _tree(tmp_path / "clean"), _tree(out)
    assert len(clean) == 4 * 7 and resumed == clean  # 4 items x (REF + 4 versions + fsim.npy + versions.json)
